package auth

import (
	"context"
	"mime"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/httpx"
)

var (
	errNoToken      = &httpx.Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "a token is required: Authorization: Bearer <token>, or log in at /login"}
	errBadToken     = &httpx.Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "the token is not valid"}
	errNoSession    = &httpx.Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "the browser session has expired or ended; log in again at /login"}
	errWrongToken   = &httpx.Error{Status: fiber.StatusForbidden, Code: "forbidden", Message: "this credential does not grant access to this route"}
	errCrossSite    = &httpx.Error{Status: fiber.StatusForbidden, Code: "forbidden", Message: "cross-site request refused: a write with the session cookie must come from the console's own origin (Origin or Sec-Fetch-Site); API clients use Authorization: Bearer"}
	errNoOrigin     = &httpx.Error{Status: fiber.StatusForbidden, Code: "forbidden", Message: "a write with the session cookie needs a same-origin Origin or Sec-Fetch-Site header; API clients use Authorization: Bearer"}
	errCookieNoJSON = &httpx.Error{Status: fiber.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "a write with the session cookie must be Content-Type: application/json"}
)

// unsafeMethod reports whether a request with method m may change state (RFC 9110 §9.2.1).
func unsafeMethod(m string) bool {
	switch m {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions, fiber.MethodTrace:
		return false
	}
	return true
}

// Guard is the handler in front of every route of access class a. Bearer tokens work as before
// for every client. A browser session (the cookie) grants the owner routes; a cookie-authenticated
// unsafe request must also be application/json and same-origin, which a cross-site page cannot
// send without a CORS preflight that this service never answers (see checkCookieWrite).
func (s *Service) Guard(a httpx.Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if a == httpx.Public {
			return c.Next()
		}
		if a == httpx.Admin && s.tokens.Admin == "" {
			return httpx.NotFound("", "no route %s %s", c.Method(), c.Path())
		}
		if h := c.Get(fiber.HeaderAuthorization); h != "" {
			tok, ok := strings.CutPrefix(h, "Bearer ")
			if !ok {
				return errBadToken
			}
			want, other := s.tokens.Owner, s.tokens.Admin
			if a == httpx.Admin {
				want, other = s.tokens.Admin, s.tokens.Owner
			}
			switch tok = strings.TrimSpace(tok); {
			case tok == "":
				return errNoToken
			case equal(tok, want):
				return c.Next()
			case equal(tok, other):
				return errWrongToken
			}
			return errBadToken
		}
		secret := c.Cookies(CookieName)
		if secret == "" {
			return s.toLogin(c, errNoToken)
		}
		if unsafeMethod(c.Method()) {
			if err := checkCookieWrite(c); err != nil {
				return err
			}
		}
		if s.store == nil {
			return s.toLogin(c, errNoSession)
		}
		sess, err := s.store.Lookup(c.UserContext(), secret)
		if err != nil {
			return err
		}
		if sess == nil {
			clearCookie(c, s.secure(c))
			return s.toLogin(c, errNoSession)
		}
		if a == httpx.Admin {
			return errWrongToken // sessions are the owner's; the admin uses the admin token
		}
		return c.Next()
	}
}

// Credential returns how to ask, later, whether the credential the request was let in with is
// still good: a bearer token always is (tokens change only with a restart); a browser session is
// while it is live (Store.Alive). Long-lived answers (the change stream) ask it now and then. A
// database error counts as still good: the stream ends on its own when the database is gone.
func (s *Service) Credential(c *fiber.Ctx) func(ctx context.Context) bool {
	secret := c.Cookies(CookieName)
	if c.Get(fiber.HeaderAuthorization) != "" || secret == "" || s.store == nil {
		return func(context.Context) bool { return true }
	}
	return func(ctx context.Context) bool {
		ok, err := s.store.Alive(ctx, secret)
		return ok || err != nil
	}
}

// toLogin sends a browser that navigates to an owner page without a live session to the login
// form (and back afterwards); API clients get the 401.
func (s *Service) toLogin(c *fiber.Ctx, err *httpx.Error) error {
	if c.Method() == fiber.MethodGet && strings.Contains(c.Get(fiber.HeaderAccept), "text/html") && s.store != nil {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	return err
}

// checkCookieWrite is the CSRF rule for unsafe requests that carry only the session cookie:
//   - Sec-Fetch-Site, when the browser sends it, must be same-origin (a page cannot forge it);
//   - without it, Origin must be present and name this host (browsers send Origin with every
//     unsafe request, including no-cors ones);
//   - a POST, and any request with a body, must declare it application/json: a cross-site form
//     or no-cors fetch can only POST text/plain, form or multipart bodies (or none) without a
//     preflight. (PUT, PATCH and DELETE never leave a browser cross-site without a preflight;
//     a bodiless DELETE has no content type to declare.)
//
// Non-browser clients with the cookie alone must therefore send Origin; API clients use Bearer.
func checkCookieWrite(c *fiber.Ctx) error {
	if err := sameOrigin(c, true); err != nil {
		return err
	}
	if c.Method() != fiber.MethodPost && len(c.Request().Body()) == 0 && len(c.Request().Header.ContentType()) == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(string(c.Request().Header.ContentType()))
	if err != nil || mt != fiber.MIMEApplicationJSON {
		return errCookieNoJSON
	}
	return nil
}

// sameOrigin checks that a browser request comes from this service's own pages. strict requires
// the evidence (cookie writes); otherwise a request without Origin and Sec-Fetch-Site (a CLI)
// passes, and only one a browser marks as cross-site or same-site is refused (login, logout).
func sameOrigin(c *fiber.Ctx, strict bool) error {
	switch site := strings.ToLower(c.Get("Sec-Fetch-Site")); site {
	case "same-origin":
		return nil
	case "":
	case "none":
		if !strict {
			return nil // the user typed or bookmarked it
		}
		return errCrossSite
	default:
		return errCrossSite
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		if strict {
			return errNoOrigin
		}
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
		!strings.EqualFold(u.Host, string(c.Request().Host())) {
		return errCrossSite
	}
	return nil
}

// secure reports whether the session cookie of this request gets the Secure attribute.
func (s *Service) secure(c *fiber.Ctx) bool {
	switch s.opts.CookieSecure {
	case SecureAlways:
		return true
	case SecureNever:
		return false
	}
	return c.Protocol() == "https"
}

// contentSecurityPolicy allows the service's own assets only: scripts, styles, images and
// fetches from this origin, no inline script at all (the console has none), inline styles only
// by the hash of each known stylesheet (Options.StyleSources: the console's), no plugins, no
// framing, forms post only here. data: images are the console's empty favicon.
func contentSecurityPolicy(styleSources []string) string {
	style := strings.Join(append([]string{"'self'"}, styleSources...), " ")
	return "default-src 'none'; script-src 'self'; style-src " + style + "; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

// SecurityHeaders sets the browser-security headers on every response, API and error answers
// included (a JSON body sniffed as HTML, or framed, is an attack surface too); HSTS only over HTTPS.
func (s *Service) SecurityHeaders() fiber.Handler {
	csp := contentSecurityPolicy(s.opts.StyleSources)
	return func(c *fiber.Ctx) error {
		h := &c.Response().Header
		h.Set(fiber.HeaderContentSecurityPolicy, csp)
		h.Set(fiber.HeaderXFrameOptions, "DENY")
		h.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		h.Set(fiber.HeaderReferrerPolicy, "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set(fiber.HeaderCrossOriginResourcePolicy, "same-origin")
		if c.Protocol() == "https" {
			h.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
		}
		return c.Next()
	}
}
