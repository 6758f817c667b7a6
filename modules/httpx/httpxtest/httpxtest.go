// Package httpxtest mounts a module's routes for its own tests, without the service around them.
package httpxtest

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/httpx"
)

// App mounts the routes of reg without guards, rendering a returned *httpx.Error in the JSON
// error shape as the service's error handler does (anything else as the internal error).
func App(reg httpx.Registrar) *fiber.App {
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		e, ok := httpx.As(err)
		if !ok {
			e = httpx.Internal
		}
		return httpx.JSON(c, e.Status, fiber.Map{"error": e})
	}})
	for _, rt := range reg.Routes() {
		app.Add(rt.Method, rt.Path, rt.Handler)
	}
	return app
}

// GetJSON sends GET path to app and returns the status and the body, which must be a JSON object.
func GetJSON(t *testing.T, app *fiber.App, path string) (int, map[string]any) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("GET %s: body %q is not a JSON object: %v", path, raw, err)
	}
	return resp.StatusCode, body
}
