package app

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"connsum/modules/auth"
	"connsum/modules/bootstrap"
	"connsum/modules/console/theme"
	"connsum/modules/httpx"
)

// Tokens are the credentials of SPEC §2.1.
type Tokens = auth.Tokens

// ServerParams are what NewServer needs.
type ServerParams struct {
	Config *Config
	Tokens Tokens
	// Auth guards the routes and sets the security headers; nil builds one from Tokens that
	// accepts bearer tokens only (no browser sessions without a database).
	Auth       *auth.Service
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
		RequestMethods:        requestMethods(), // fiber's and unknownMethod (methods.go)
	})
	app.Use(recover.New())
	app.Use(requestDeadline(p.Config.DBRequestTimeout))
	authn := p.Auth
	if authn == nil {
		authn = auth.NewService(p.Tokens, auth.Options{}, nil, p.Log)
	}
	app.Use(authn.SecurityHeaders()) // before any module middleware, so every answer has them
	sort.Slice(p.Middleware, func(i, j int) bool {
		if p.Middleware[i].Order != p.Middleware[j].Order {
			return p.Middleware[i].Order < p.Middleware[j].Order
		}
		return p.Middleware[i].Name < p.Middleware[j].Name
	})
	for _, m := range p.Middleware {
		app.Use(m.Handler)
	}
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
	registerRoutes(app, routes, authn.Guard) // HEAD where GET is, 405 with Allow (methods.go)
	app.Use(func(c *fiber.Ctx) error {
		// Past every route: 501 for a method the service does not know, fiber's 405 (with
		// Allow) for a path served under other methods only, else a 404.
		if c.Method() == unknownMethod {
			return errUnknownMethod
		}
		err := c.Next()
		if fe, ok := err.(*fiber.Error); ok && fe.Code == fiber.StatusNotFound {
			return httpx.NotFound("", "no route %s %s", c.Method(), c.Path())
		}
		return err
	})
	renameUnknownMethods(app)
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
			if reason, ok := bootstrap.StorageFault(err); ok {
				e = storageFault(reason)
			}
			log.Warn("database unavailable", "method", c.Method(), "path", safePath(c), "err", err)
		default:
			e = httpx.Internal
			log.Error("request failed", "method", c.Method(), "path", safePath(c), "err", err)
		}
		if e.Status == fiber.StatusServiceUnavailable {
			c.Set(fiber.HeaderRetryAfter, retryAfterSeconds)
		}
		if wantsHTML(c) {
			// A browser navigating to a page gets a page; the JSON shape stays for every other
			// client, byte for byte.
			next := ""
			if p := c.OriginalURL(); strings.HasPrefix(p, "/dashboard") {
				next = p
			}
			c.Status(e.Status)
			c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
			c.Set(fiber.HeaderCacheControl, "no-store")
			return c.Send(theme.ErrorPage(theme.ErrorPageData{Status: e.Status, Code: e.Code, Message: e.Message, Next: next}))
		}
		return httpx.JSON(c, e.Status, fiber.Map{"error": e})
	}
}

// wantsHTML reports whether an error answer should be an HTML page: a GET or HEAD whose Accept
// prefers text/html to JSON (a browser's navigation), and not the console's data fetch
// (?_data=1). API clients (no Accept, */*, application/json) keep the JSON error shape.
func wantsHTML(c *fiber.Ctx) bool {
	if (c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead) || c.Query("_data") != "" {
		return false
	}
	accept := strings.ToLower(c.Get(fiber.HeaderAccept))
	h := strings.Index(accept, "text/html")
	if h < 0 {
		return false
	}
	j := strings.Index(accept, "application/json")
	return j < 0 || h < j
}

// storageFault is the 503 of a write the database refused for its storage (disk full, read-only):
// the request was fine and may be sent again once the operator acted; /readyz says degraded.
func storageFault(reason string) *httpx.Error {
	return &httpx.Error{Status: fiber.StatusServiceUnavailable, Code: "unavailable",
		Message: "the database cannot take writes right now (" + reason + "); nothing was stored, retry later"}
}

func fiberError(fe *fiber.Error) *httpx.Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return httpx.NotFound("", "no such route")
	case fiber.StatusRequestEntityTooLarge:
		return &httpx.Error{Status: fe.Code, Code: "too_large", Message: "the request body is too large"}
	case fiber.StatusMethodNotAllowed:
		return errMethodNotAllowed
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
