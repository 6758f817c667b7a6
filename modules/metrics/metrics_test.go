package metrics_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"connsum/modules/metrics"
)

func get(t *testing.T, app *fiber.App, path string) (int, string, string) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// TestRequestDurationsByRoutePattern: requests are counted by route pattern and status class,
// never by raw path, and /metrics serves them with the Go and process collectors in the
// Prometheus text format.
func TestRequestDurationsByRoutePattern(t *testing.T) {
	reg, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(reg.Middleware().Handler)
	app.Get("/items/:id", func(c *fiber.Ctx) error { return c.SendString("ok") })
	for _, r := range reg.Routes() {
		app.Add(r.Method, r.Path, r.Handler)
	}
	for _, path := range []string{"/items/one", "/items/two", "/nowhere"} {
		get(t, app, path)
	}
	status, ct, body := get(t, app, "/metrics")
	if status != 200 || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics = %d %s", status, ct)
	}
	for _, want := range []string{
		`connsum_http_request_duration_seconds_count{code="2xx",method="GET",route="/items/:id"} 2`,
		`connsum_http_request_duration_seconds_count{code="4xx",method="GET",route="unmatched"} 1`,
		"go_goroutines", "process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%.2000s", want, body)
		}
	}
	if strings.Contains(body, "/items/one") {
		t.Error("a raw path became a label value")
	}
}

// TestRegisterRefusesADuplicate: a module registering a name twice gets an error, not a panic.
func TestRegisterRefusesADuplicate(t *testing.T) {
	reg, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	c := func() prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "connsum_test_total", Help: "Test."})
	}
	if err := reg.Register(c()); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(c()); err == nil {
		t.Error("a second collector with the same name was registered")
	}
}
