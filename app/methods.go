package app

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"connsum/modules/httpx"
)

// registerRoutes adds the modules' routes, each behind the guard of its access class, and gives
// every path the HTTP method semantics a client expects (RFC 9110 §9.3.2, §15.5.6):
//   - HEAD is served wherever GET is, by the same guard and handler; the server sends the
//     headers of the GET answer without its body, so an unauthenticated HEAD is still a 401.
//   - A method the path does not serve is a 405 in the JSON error shape with an Allow header
//     naming the methods it does serve. That answer sits behind the path's guard as well: a
//     client without credentials learns nothing about an owner path's methods (401), and admin
//     paths stay hidden (404) while no admin token is configured.
//
// Every route also refuses a NUL or invalid UTF-8 in its query string (queryText). The 405
// routes are registered after every real route, so a real route of another path that the same
// pattern would match (a static path beside a parameter) always wins. A path registered outside
// routes gets fiber's own 405 with Allow (unguarded) from the last route; an unknown path is a
// 404.
func registerRoutes(app *fiber.App, routes []httpx.Route, guard func(httpx.Access) fiber.Handler) {
	type pathInfo struct {
		methods []string
		access  httpx.Access
	}
	var order []string
	paths := map[string]*pathInfo{}
	for _, r := range routes {
		app.Add(r.Method, r.Path, guard(r.Access), queryText, r.Handler)
		if r.Method == fiber.MethodGet {
			app.Add(fiber.MethodHead, r.Path, guard(r.Access), queryText, r.Handler)
		}
		p := paths[r.Path]
		if p == nil {
			p = &pathInfo{access: r.Access}
			paths[r.Path] = p
			order = append(order, r.Path)
		}
		p.methods = append(p.methods, r.Method)
		if r.Method == fiber.MethodGet {
			p.methods = append(p.methods, fiber.MethodHead)
		}
		// A path whose routes differ in access (none today) answers its 405 behind the strictest.
		p.access = max(p.access, r.Access)
	}
	all := fiber.DefaultMethods // unknownMethod is answered 501 by the last route, never 405
	for _, path := range order {
		p := paths[path]
		var allow []string
		for _, m := range all { // in fiber's method order, so Allow is stable
			if slices.Contains(p.methods, m) {
				allow = append(allow, m)
			}
		}
		notAllowed := methodNotAllowed(strings.Join(allow, ", "))
		for _, m := range all {
			if !slices.Contains(p.methods, m) {
				app.Add(m, path, guard(p.access), notAllowed)
			}
		}
	}
}

// queryText refuses a query parameter (name or value) holding U+0000 or invalid UTF-8, naming
// the parameter, before any handler reads it: the rule of every text field in a body
// (httpx.ParseObject) holds for query strings too, whatever the route does with the value (a
// NUL in ?connection= reached PostgreSQL as a 500). Path segments reach handlers undecoded, so
// they cannot carry either.
func queryText(c *fiber.Ctx) error {
	var bad *httpx.Error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if bad != nil {
			return
		}
		name := strings.ToValidUTF8(string(k), "\uFFFD")
		switch {
		case bytes.IndexByte(k, 0) >= 0 || bytes.IndexByte(v, 0) >= 0:
			bad = httpx.Invalid(name, "must not contain U+0000 (NUL)")
		case !utf8.Valid(k) || !utf8.Valid(v):
			bad = httpx.Invalid(name, "must be valid UTF-8 (invalid bytes are refused, never replaced)")
		}
	})
	if bad != nil {
		return bad
	}
	return c.Next()
}

// errMethodNotAllowed is the 405 of a known path asked with a method it does not serve.
var errMethodNotAllowed = &httpx.Error{Status: fiber.StatusMethodNotAllowed, Code: "method_not_allowed",
	Message: "this path does not serve this method; the Allow header lists those it serves"}

func methodNotAllowed(allow string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderAllow, allow)
		return errMethodNotAllowed
	}
}

// unknownMethod stands in for a request method fiber does not know at all (e.g. "FOO"). fiber
// answers those itself, before any middleware or the error handler, with a plain-text 400
// ("Invalid http method"): no security headers, no metrics, not the error shape. The server's
// handler is wrapped to rename such a method to this one, which fiber knows (requestMethods)
// but no route serves, so the request passes every middleware and ends in the last route,
// which answers 501 in the JSON error shape (RFC 9110 §15.6.2). The metrics label is then this
// one name, whatever a client invents.
const unknownMethod = "X-UNKNOWN-METHOD"

// requestMethods are the methods fiber routes: its defaults and unknownMethod.
func requestMethods() []string { return append(slices.Clone(fiber.DefaultMethods), unknownMethod) }

// errUnknownMethod is the 501 of a request method the service does not know.
var errUnknownMethod = &httpx.Error{Status: fiber.StatusNotImplemented, Code: "not_implemented", Message: "unknown request method"}

// renameUnknownMethods wraps the server's handler so that a method outside fiber's defaults
// reaches the routes as unknownMethod.
func renameUnknownMethods(app *fiber.App) {
	srv := app.Server()
	next := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		method := ctx.Method()
		for _, m := range fiber.DefaultMethods {
			if string(method) == m { // compared without allocating
				next(ctx)
				return
			}
		}
		ctx.Request.Header.SetMethod(unknownMethod)
		next(ctx)
	}
}
