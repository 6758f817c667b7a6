package health_test

import (
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"
	"go.uber.org/fx/fxtest"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/health"
	"connsum/modules/httpx"
	"connsum/modules/httpx/httpxtest"
)

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
		notReady := httpxtest.App(health.NewRoutes(db, &bootstrap.Ready{}, &health.FaultWatcher{}))
		if status, body := httpxtest.GetJSON(t, notReady, "/readyz"); status != fiber.StatusServiceUnavailable || body["error"] == nil {
			t.Errorf("/readyz before bootstrap = %d %v, want 503 with an error object", status, body)
		}
		if status, _ := httpxtest.GetJSON(t, notReady, "/healthz"); status != fiber.StatusOK {
			t.Errorf("/healthz = %d, want 200", status)
		}

		lc := fxtest.NewLifecycle(t)
		ready := bootstrap.NewReady(lc, m, bootstrap.Options{AutoMigrate: true})
		lc.RequireStart()
		defer lc.RequireStop()
		app := httpxtest.App(health.NewRoutes(db, ready, health.NewFaultWatcher(health.Options{})))
		if status, body := httpxtest.GetJSON(t, app, "/readyz"); status != fiber.StatusOK || body["status"] != "ready" {
			t.Errorf("/readyz after bootstrap = %d %v, want 200 ready", status, body)
		}
	})
}
