package metrics_test

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"

	"connsum/modules/httpx"
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

// TestStatusLabelIsTheStatusTheClientReceived: an error a handler returns becomes its status in
// the app's error handler; the series must count that status, not the 200 the response held
// while the error travelled up. Before, 503s, 401s and 404s returned as errors counted as 2xx.
func TestStatusLabelIsTheStatusTheClientReceived(t *testing.T) {
	reg, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: func(c *fiber.Ctx, err error) error {
		e, ok := httpx.As(err)
		if !ok {
			e = httpx.Internal
		}
		return httpx.JSON(c, e.Status, fiber.Map{"error": e})
	}})
	app.Use(func(c *fiber.Ctx) error { // a middleware outside metrics sees no error left to handle
		if err := c.Next(); err != nil {
			t.Errorf("an error reached the middleware outside metrics: %v", err)
			return err
		}
		return nil
	})
	app.Use(reg.Middleware().Handler)
	app.Get("/ok", func(c *fiber.Ctx) error { return c.SendString("ok") })
	app.Get("/unavailable", func(c *fiber.Ctx) error { return httpx.Unavailable })
	app.Get("/denied", func(c *fiber.Ctx) error { return &httpx.Error{Status: 401, Code: "unauthorized", Message: "no"} })
	app.Get("/gone", func(c *fiber.Ctx) error { return httpx.NotFound("", "gone") })
	app.Get("/broken", func(c *fiber.Ctx) error { return errors.New("boom") })
	for _, r := range reg.Routes() {
		app.Add(r.Method, r.Path, r.Handler)
	}
	for path, want := range map[string]int{"/ok": 200, "/unavailable": 503, "/denied": 401, "/gone": 404, "/broken": 500} {
		if status, _, body := get(t, app, path); status != want {
			t.Errorf("GET %s = %d %s, want %d", path, status, body, want)
		}
	}
	_, _, body := get(t, app, "/metrics")
	for _, want := range []string{
		`connsum_http_request_duration_seconds_count{code="2xx",method="GET",route="/ok"} 1`,
		`connsum_http_request_duration_seconds_count{code="5xx",method="GET",route="/unavailable"} 1`,
		`connsum_http_request_duration_seconds_count{code="4xx",method="GET",route="/denied"} 1`,
		`connsum_http_request_duration_seconds_count{code="4xx",method="GET",route="/gone"} 1`,
		`connsum_http_request_duration_seconds_count{code="5xx",method="GET",route="/broken"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, wrong := range []string{`code="2xx",method="GET",route="/unavailable"`, `code="2xx",method="GET",route="/denied"`, `code="2xx",method="GET",route="/gone"`} {
		if strings.Contains(body, wrong) {
			t.Errorf("/metrics counts an error answer as 2xx: %s", wrong)
		}
	}
}

// TestAPanicCountsAs5xx: a panicking handler unwinds through the middleware to the recover
// middleware outside it, which answers 500; the request is counted as 5xx, not lost.
func TestAPanicCountsAs5xx(t *testing.T) {
	reg, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(recover.New())
	app.Use(reg.Middleware().Handler)
	app.Get("/panic", func(c *fiber.Ctx) error { panic("boom") })
	for _, r := range reg.Routes() {
		app.Add(r.Method, r.Path, r.Handler)
	}
	if status, _, _ := get(t, app, "/panic"); status != 500 {
		t.Errorf("GET /panic = %d, want 500", status)
	}
	if _, _, body := get(t, app, "/metrics"); !strings.Contains(body, `connsum_http_request_duration_seconds_count{code="5xx",method="GET",route="/panic"} 1`) {
		t.Error("/metrics does not count the panic as 5xx")
	}
}
