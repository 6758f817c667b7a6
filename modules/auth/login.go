package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"math"
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/console/theme"
	"connsum/modules/httpx"
)

// Routes implements httpx.Registrar: login and logout (public: they check what they need
// themselves) and the admin's session list and revocation.
func (s *Service) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/login", Access: httpx.Public, Handler: s.loginPage},
		{Method: fiber.MethodPost, Path: "/login", Access: httpx.Public, Handler: s.loginWithToken},
		{Method: fiber.MethodPost, Path: "/logout", Access: httpx.Public, Handler: s.logout},
		{Method: fiber.MethodGet, Path: "/admin/sessions", Access: httpx.Admin, Handler: s.listSessions},
		{Method: fiber.MethodDelete, Path: "/admin/sessions", Access: httpx.Admin, Handler: s.revokeAll},
		{Method: fiber.MethodDelete, Path: "/admin/sessions/:id", Access: httpx.Admin, Handler: s.revoke},
	}
}

// IssueLoginLink stores a one-time login link and returns its path (/login?link=…) and expiry;
// `connsum serve` prints it instead of a URL carrying the long-lived owner token.
func (s *Service) IssueLoginLink(ctx context.Context) (string, time.Time, error) {
	if s.store == nil {
		return "", time.Time{}, errNoSession
	}
	code, exp, err := s.store.IssueLink(ctx)
	if err != nil {
		return "", time.Time{}, err
	}
	return "/login?link=" + code, exp, nil
}

var loginForm = template.Must(theme.New("login").Parse(`{{template "document-head" .}}
<body>
<header class="top"><span class="brand">connsum</span></header>
<main class="narrow">
<section class="card login">
<h1>Log in to the owner console</h1>
{{if .Message}}<p class="alert" role="alert">{{.Message}}</p>{{else if ne .Next "/dashboard"}}<p>Log in to open that page.</p>{{end}}
<form method="post" action="/login">
<label for="token">Owner token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{{.Next}}">
<button type="submit">Log in</button>
</form>
<p class="hint">Or open the one-time login link that <code>connsum serve</code> printed (valid 10 minutes, once).
The owner token is the <code>auth.owner_token</code> setting, or the file <code>owner_token</code> in the data directory.</p>
</section>
</main>
</body>
</html>
`))

// page renders the login form with status and an optional message.
func page(c *fiber.Ctx, status int, message, next string) error {
	var buf bytes.Buffer
	if next == "" {
		next = "/dashboard"
	}
	if err := loginForm.Execute(&buf, struct {
		Title, Message, Next string
		CSS                  template.CSS
	}{"Log in", message, next, theme.CSS()}); err != nil {
		return err
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// safeNext is the console page to land on after login; anything else (other sites, other paths,
// header injection) is ignored.
func safeNext(next string) string {
	if (next == "/dashboard" || strings.HasPrefix(next, "/dashboard/") || strings.HasPrefix(next, "/dashboard?")) &&
		!strings.ContainsAny(next, "\\\r\n") {
		return next
	}
	return "/dashboard"
}

var (
	errTokenInURL   = httpx.Invalid("token", "the owner token is not accepted in a URL (it would stay in the browser history and server logs): POST it to /login")
	errLoginType    = &httpx.Error{Status: fiber.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "POST /login takes application/x-www-form-urlencoded (the login form) or application/json {\"token\": …}"}
	errLinkUsed     = &httpx.Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "this login link is not valid: it has expired or was used already"}
	errLoginLimited = &httpx.Error{Status: fiber.StatusTooManyRequests, Code: "rate_limited", Message: "too many failed logins from this address; retry later"}
)

// noStore keeps login answers (they may set a session cookie) out of every cache.
func noStore(c *fiber.Ctx) { c.Set(fiber.HeaderCacheControl, "no-store") }

// limited answers 429 with Retry-After when the client has no login attempt left.
func (s *Service) limited(c *fiber.Ctx, html bool) (bool, error) {
	wait := s.limiter.Wait(ClientKey(c.IP()))
	if wait <= 0 {
		return false, nil
	}
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	if html {
		return true, page(c, fiber.StatusTooManyRequests, errLoginLimited.Message, "")
	}
	return true, errLoginLimited
}

// loginPage is GET /login: the form, or the one-time link (?link=…). A token in the query is
// refused, so it is never worth putting one in a bookmark or a shared URL.
func (s *Service) loginPage(c *fiber.Ctx) error {
	noStore(c)
	next := safeNext(c.Query("next"))
	if c.Request().URI().QueryArgs().Has("token") {
		return page(c, fiber.StatusBadRequest, errTokenInURL.Message, next)
	}
	code := c.Query("link")
	if code == "" {
		return page(c, fiber.StatusOK, "", next)
	}
	if stop, err := s.limited(c, true); stop {
		return err
	}
	if s.store == nil {
		return page(c, fiber.StatusUnauthorized, errLinkUsed.Message, next)
	}
	secret, _, ok, err := s.store.ConsumeLink(c.UserContext(), code, c.Get(fiber.HeaderUserAgent), c.IP())
	if err != nil {
		return err
	}
	if !ok {
		s.limiter.Failed(ClientKey(c.IP()))
		return page(c, fiber.StatusUnauthorized, errLinkUsed.Message, next)
	}
	s.setCookie(c, secret)
	return c.Redirect(next, fiber.StatusSeeOther)
}

// loginWithToken is POST /login with the owner token: the form (303 to the console) or JSON
// (200 with the session's public form). Either way the cookie carries a new session id.
func (s *Service) loginWithToken(c *fiber.Ctx) error {
	noStore(c)
	mt, _, _ := mime.ParseMediaType(string(c.Request().Header.ContentType()))
	asJSON := mt == fiber.MIMEApplicationJSON
	fail := func(status int, e *httpx.Error, next string) error {
		if asJSON {
			return e
		}
		return page(c, status, e.Message, next)
	}
	if err := sameOrigin(c, false); err != nil {
		return fail(fiber.StatusForbidden, errCrossSite, "")
	}
	if c.Request().URI().QueryArgs().Has("token") {
		return fail(fiber.StatusBadRequest, errTokenInURL, "")
	}
	var token, next string
	switch mt {
	case fiber.MIMEApplicationForm:
		args := c.Request().PostArgs() // the body only: FormValue would read the query too
		token, next = string(args.Peek("token")), safeNext(string(args.Peek("next")))
	case fiber.MIMEApplicationJSON:
		var in struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(c.Body(), &in); err != nil {
			return httpx.Invalid("", "the body must be a JSON object {\"token\": …}")
		}
		token = in.Token
	default:
		return fail(fiber.StatusUnsupportedMediaType, errLoginType, "")
	}
	if stop, err := s.limited(c, !asJSON); stop {
		return err
	}
	if !equal(token, s.tokens.Owner) || s.store == nil {
		s.limiter.Failed(ClientKey(c.IP()))
		if token == "" && !asJSON {
			// The same refusal; the form says what is missing rather than "not valid".
			return page(c, fiber.StatusUnauthorized, "Enter the owner token.", next)
		}
		return fail(fiber.StatusUnauthorized, errBadToken, next)
	}
	secret, sess, err := s.store.Create(c.UserContext(), ViaToken, c.Get(fiber.HeaderUserAgent), c.IP())
	if err != nil {
		return err
	}
	s.setCookie(c, secret)
	if asJSON {
		return httpx.JSON(c, fiber.StatusOK, fiber.Map{"session": sess})
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// logout is POST /logout: it ends the session of the cookie, if any, and clears the cookie. A
// form post (the console's header) is sent to the login page, other clients get 204. Only a
// request a browser marks as cross-site is refused: logging out needs no other proof.
func (s *Service) logout(c *fiber.Ctx) error {
	noStore(c)
	if err := sameOrigin(c, false); err != nil {
		return err
	}
	if secret := c.Cookies(CookieName); secret != "" && s.store != nil {
		if err := s.store.End(c.UserContext(), secret); err != nil {
			return err
		}
	}
	clearCookie(c, s.secure(c))
	if strings.Contains(c.Get(fiber.HeaderAccept), "text/html") {
		return c.Redirect("/login", fiber.StatusSeeOther)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// setCookie hands the browser its session: HttpOnly (no script reads it), SameSite=Lax (not sent
// on cross-site subresource requests and posts), Secure over HTTPS or when configured, and it
// expires with the session.
func (s *Service) setCookie(c *fiber.Ctx, secret string) {
	c.Cookie(&fiber.Cookie{Name: CookieName, Value: secret, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: s.secure(c), MaxAge: int(s.opts.SessionTTL / time.Second)})
}

// clearCookie tells the browser to drop the session cookie.
func clearCookie(c *fiber.Ctx, secure bool) {
	c.Cookie(&fiber.Cookie{Name: CookieName, Value: "", Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode,
		Secure: secure, Expires: time.Unix(0, 0)})
}

func (s *Service) listSessions(c *fiber.Ctx) error {
	if s.store == nil {
		return httpx.JSON(c, fiber.StatusOK, fiber.Map{"object": "list", "data": []Session{}})
	}
	list, err := s.store.List(c.UserContext())
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, fiber.Map{"object": "list", "data": list,
		"session_ttl": s.opts.SessionTTL.String(), "session_idle": s.opts.SessionIdle.String()})
}

func (s *Service) revoke(c *fiber.Ctx) error {
	id := c.Params("id")
	ok := false
	if s.store != nil && strings.HasPrefix(id, "ses_") && len(id) <= 64 {
		var err error
		if ok, err = s.store.Revoke(c.UserContext(), id); err != nil {
			return err
		}
	}
	if !ok {
		return httpx.NotFound("id", "no live session %q", id)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Service) revokeAll(c *fiber.Ctx) error {
	n := 0
	if s.store != nil {
		var err error
		if n, err = s.store.RevokeAll(c.UserContext()); err != nil {
			return err
		}
	}
	return httpx.JSON(c, fiber.StatusOK, fiber.Map{"revoked": n})
}
