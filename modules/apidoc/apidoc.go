// Package apidoc serves the service's OpenAPI 3.1 document (embedded by package docs) at
// GET /openapi.json. The route is public: the document describes routes and shapes, never data
// or credentials, and a client needs it before it holds a token.
package apidoc

import (
	"github.com/gofiber/fiber/v2"

	"connsum/docs"
	"connsum/modules/httpx"
)

// Path is where the document is served.
const Path = "/openapi.json"

// Routes serves the document. The JSON is made once, when the service is built, so a document
// that does not convert stops the start instead of failing requests.
type Routes struct {
	body []byte
}

// NewRoutes converts the embedded document to JSON.
func NewRoutes() (*Routes, error) {
	body, err := docs.OpenAPIJSON()
	if err != nil {
		return nil, err
	}
	return &Routes{body: body}, nil
}

// Routes implements httpx.Registrar.
func (r *Routes) Routes() []httpx.Route {
	return []httpx.Route{{Method: fiber.MethodGet, Path: Path, Access: httpx.Public, Handler: r.serve}}
}

func (r *Routes) serve(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, httpx.ContentTypeJSON)
	return c.Status(fiber.StatusOK).Send(r.body)
}
