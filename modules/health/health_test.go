package health_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"
	"go.uber.org/fx/fxtest"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/health"
	"connsum/modules/httpx"
)

// routesApp mounts the health routes without guards, rendering errors like the app does.
func routesApp(r *health.Routes) *fiber.App {
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		e, ok := httpx.As(err)
		if !ok {
			e = httpx.Internal
		}
		return httpx.JSON(c, e.Status, fiber.Map{"error": e})
	}})
	for _, rt := range r.Routes() {
		app.Add(rt.Method, rt.Path, rt.Handler)
	}
	return app
}

func get(t *testing.T, app *fiber.App, path string) (int, map[string]any) {
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

func TestRouteAccessClasses(t *testing.T) {
	want := map[string]httpx.Access{"/healthz": httpx.Public, "/readyz": httpx.Public}
	got := map[string]httpx.Access{}
	for _, r := range health.NewRoutes(nil, &bootstrap.Ready{}, &health.FaultWatcher{}).Routes() {
		got[r.Path] = r.Access
	}
	for path, a := range want {
		if g, ok := got[path]; !ok || g != a {
			t.Errorf("%s access = %v (present %v), want %v", path, g, ok, a)
		}
	}
}

func TestReadyzFollowsBootstrap(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		m := bootstrap.NewMigrator(db)

		// Bootstrap not finished: /readyz answers 503 with the JSON error; /healthz is alive.
		notReady := routesApp(health.NewRoutes(db, &bootstrap.Ready{}, &health.FaultWatcher{}))
		if status, body := get(t, notReady, "/readyz"); status != fiber.StatusServiceUnavailable || body["error"] == nil {
			t.Errorf("/readyz before bootstrap = %d %v, want 503 with an error object", status, body)
		}
		if status, _ := get(t, notReady, "/healthz"); status != fiber.StatusOK {
			t.Errorf("/healthz = %d, want 200", status)
		}

		lc := fxtest.NewLifecycle(t)
		ready := bootstrap.NewReady(lc, m, bootstrap.Options{AutoMigrate: true})
		lc.RequireStart()
		defer lc.RequireStop()
		app := routesApp(health.NewRoutes(db, ready, health.NewFaultWatcher(health.Options{})))
		if status, body := get(t, app, "/readyz"); status != fiber.StatusOK || body["status"] != "ready" {
			t.Errorf("/readyz after bootstrap = %d %v, want 200 ready", status, body)
		}
	})
}
