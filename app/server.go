package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
)

// OwnerCookie is the session cookie set by /login.
const OwnerCookie = "connsum_owner"

// Tokens are the credentials of SPEC §2.1.
type Tokens struct {
	Owner string
	Admin string // empty: admin routes answer 404
}

// ServerParams are what NewServer needs.
type ServerParams struct {
	Config     *Config
	Tokens     Tokens
	Registrars []httpx.Registrar
	Middleware []httpx.Middleware
	Log        *slog.Logger
}

// NewServer builds the fiber app with every route behind its guard. It does not listen, so
// tests drive it with app.Test.
func NewServer(p ServerParams) *fiber.App {
	app := fiber.New(fiber.Config{
		BodyLimit:             p.Config.HTTPBodyLimit,
		ReadTimeout:           p.Config.HTTPReadTimeout,
		WriteTimeout:          p.Config.HTTPWriteTimeout,
		IdleTimeout:           p.Config.HTTPIdleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(p.Log),
	})
	app.Use(recover.New())
	app.Use(requestDeadline(p.Config.DBRequestTimeout))
	sort.Slice(p.Middleware, func(i, j int) bool { return p.Middleware[i].Name < p.Middleware[j].Name })
	for _, m := range p.Middleware {
		app.Use(m.Handler)
	}
	g := guards{tokens: p.Tokens}
	var routes []httpx.Route
	for _, r := range p.Registrars {
		routes = append(routes, r.Routes()...)
	}
	// fx value groups have no order; register in a fixed one so static paths beat parameters.
	sort.SliceStable(routes, func(i, j int) bool {
		if routes[i].Path != routes[j].Path {
			return routes[i].Path > routes[j].Path
		}
		return routes[i].Method < routes[j].Method
	})
	app.Get("/login", g.login)
	for _, r := range routes {
		app.Add(r.Method, r.Path, g.guard(r.Access), r.Handler)
	}
	app.Use(func(c *fiber.Ctx) error {
		return httpx.NotFound("", "no route %s %s", c.Method(), c.Path())
	})
	return app
}

// requestDeadline puts db.request_timeout on the request's context. Every module hands
// c.UserContext() to the database, so waiting for a pooled connection, opening one and every
// statement end by the deadline — pgx unblocks a read on a silent socket by setting a deadline
// on the net.Conn, and closes that connection so the pool never hands it out again — and the
// error handler answers 503. The deadline is set before any guard or module middleware, so no
// route can run without it.
func requestDeadline(d time.Duration) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if d <= 0 {
			return c.Next()
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), d)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	}
}

// retryAfterSeconds is the Retry-After of every 503: long enough that a retrying client does
// not add to a database that is failing or overloaded, short enough to come back soon after it
// recovers (the pool discards dead connections, so the next request after recovery succeeds).
const retryAfterSeconds = "2"

type guards struct{ tokens Tokens }

func equal(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// credential returns the presented token: the bearer header, else the session cookie.
func credential(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return "\x00invalid"
	}
	return c.Cookies(OwnerCookie)
}

var (
	errNoToken    = &httpx.Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "a token is required: Authorization: Bearer <token> or the login cookie"}
	errBadToken   = &httpx.Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "the token is not valid"}
	errWrongToken = &httpx.Error{Status: fiber.StatusForbidden, Code: "forbidden", Message: "this token does not grant access to this route"}
)

func (g guards) guard(a httpx.Access) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if a == httpx.Public {
			return c.Next()
		}
		if a == httpx.Admin && g.tokens.Admin == "" {
			return httpx.NotFound("", "no route %s %s", c.Method(), c.Path())
		}
		tok := credential(c)
		want, other := g.tokens.Owner, g.tokens.Admin
		if a == httpx.Admin {
			want, other = g.tokens.Admin, g.tokens.Owner
		}
		switch {
		case tok == "":
			return errNoToken
		case equal(tok, want):
			return c.Next()
		case equal(tok, other):
			return errWrongToken
		default:
			return errBadToken
		}
	}
}

// login sets the owner cookie for a valid token and redirects to the console.
func (g guards) login(c *fiber.Ctx) error {
	if !equal(c.Query("token"), g.tokens.Owner) {
		return errBadToken
	}
	c.Cookie(&fiber.Cookie{Name: OwnerCookie, Value: g.tokens.Owner, Path: "/", HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
	// next may name a console page to land on; anything else (other sites, other paths) is ignored.
	target := "/dashboard"
	if next := c.Query("next"); strings.HasPrefix(next, "/dashboard") && !strings.ContainsAny(next, "\\\r\n") && !strings.HasPrefix(next, "//") {
		target = next
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}

// errorHandler renders every error as the JSON error shape; 5xx never carry internals, and a
// 503 (database unavailable, out of its deadline, statement cancelled by statement_timeout)
// says when to retry.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		e, ok := httpx.As(err)
		var fe *fiber.Error
		switch {
		case ok:
		case errors.As(err, &fe):
			e = fiberError(fe)
		case bootstrap.IsUniqueViolation(err):
			// A write raced another one on a unique key and lost; the stores retry the races they
			// know, so this is a conflict the client may retry, never an internal error.
			e = httpx.Conflict("", "a concurrent request wrote the same resource; retry")
			log.Warn("unique key conflict", "method", c.Method(), "path", safePath(c), "err", err)
		case bootstrap.IsUnavailable(err):
			e = httpx.Unavailable
			log.Warn("database unavailable", "method", c.Method(), "path", safePath(c), "err", err)
		default:
			e = httpx.Internal
			log.Error("request failed", "method", c.Method(), "path", safePath(c), "err", err)
		}
		if e.Status == fiber.StatusServiceUnavailable {
			c.Set(fiber.HeaderRetryAfter, retryAfterSeconds)
		}
		return httpx.JSON(c, e.Status, fiber.Map{"error": e})
	}
}

func fiberError(fe *fiber.Error) *httpx.Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return httpx.NotFound("", "no such route")
	case fiber.StatusRequestEntityTooLarge:
		return &httpx.Error{Status: fe.Code, Code: "too_large", Message: "the request body is too large"}
	case fiber.StatusMethodNotAllowed:
		return &httpx.Error{Status: fe.Code, Code: "method_not_allowed", Message: "method not allowed"}
	case fiber.StatusBadRequest:
		return httpx.Invalid("", "bad request")
	case fiber.StatusRequestTimeout:
		return &httpx.Error{Status: fe.Code, Code: "timeout", Message: "request timeout"}
	}
	if fe.Code >= 500 {
		return httpx.Internal
	}
	return &httpx.Error{Status: fe.Code, Code: "error", Message: strings.ToLower(fe.Message)}
}

// safePath is the request path without its query, which may carry a login token.
func safePath(c *fiber.Ctx) string {
	p, _ := url.PathUnescape(c.Path())
	return p
}
