package httpx

import (
	"bytes"
	"encoding/json"

	"github.com/gofiber/fiber/v2"
)

// Access says which credential a route needs.
type Access int

// The route classes of SPEC §2.1.
const (
	Public Access = iota // no token
	Owner                // owner token (bearer or cookie)
	Admin                // admin token; 404 when none is configured
)

// String names the access class.
func (a Access) String() string {
	return [...]string{"public", "owner", "admin"}[a]
}

// Route is one HTTP route a module contributes. The app registers it behind the guard of its
// Access class.
type Route struct {
	Method  string
	Path    string
	Access  Access
	Handler fiber.Handler
}

// Registrar is what modules put in the fx value group "routes".
type Registrar interface {
	Routes() []Route
}

// JSON writes v with status and the JSON content type.
func JSON(c *fiber.Ctx, status int, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	c.Status(status)
	c.Set(fiber.HeaderContentType, ContentTypeJSON)
	return c.Send(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// ContentTypeJSON is the content type of every JSON answer.
const ContentTypeJSON = "application/json; charset=utf-8"

// Middleware is a handler every request passes through before routing; modules put it in the
// fx value group "middleware" (e.g. request metrics). The app runs them by Order, then Name: a
// lower Order is further out (sees what the later ones answer).
type Middleware struct {
	Name    string
	Order   int
	Handler fiber.Handler
}

// OrderOutermost is the Order of a middleware that must see every answer the others give, such
// as request metrics.
const OrderOutermost = -100
