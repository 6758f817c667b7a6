// Package metrics holds the service's Prometheus metrics: one registry (no globals) with the
// Go and process collectors, the HTTP request durations of every route, and GET /metrics.
// Modules report their own metrics by registering collectors on the Registry (the summary feed
// registers its projection and cache metrics there).
package metrics

import (
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"connsum/modules/httpx"
)

// DurationBuckets are the histogram buckets of the service's durations, from 0.1 ms up to about
// 15 s, shared so that request and projection durations line up.
func DurationBuckets() []float64 { return prometheus.ExponentialBuckets(0.0001, 2.5, 14) }

// Registry is the service's metrics registry with the service-wide HTTP metrics.
type Registry struct {
	reg      *prometheus.Registry
	requests *prometheus.HistogramVec
}

// New returns a registry holding the HTTP request durations and the Go and process collectors.
func New() (*Registry, error) {
	r := &Registry{reg: prometheus.NewRegistry()}
	r.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connsum_http_request_duration_seconds",
		Help: "HTTP request durations by route and status class.", Buckets: DurationBuckets()},
		[]string{"method", "route", "code"})
	if err := r.Register(r.requests, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return r, nil
}

// Register adds a module's collectors; a name registered twice is an error, not a panic.
func (r *Registry) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := r.reg.Register(c); err != nil {
			return fmt.Errorf("metrics: register: %w", err)
		}
	}
	return nil
}

// Middleware records request durations by route pattern (never the raw path, which would
// explode the label set) and by the class of the status the client received. An error a
// handler returns only becomes its status in the app's error handler (an *httpx.Error its own
// status, a database that cannot answer 503, anything else 500), so the middleware runs that
// handler itself, as fiber's logger does, and reads the status it wrote; it is the outermost
// module middleware (OrderOutermost) so that no error reaches a middleware outside it. A panic
// is counted as the 500 the recover middleware makes of it.
func (r *Registry) Middleware() httpx.Middleware {
	return httpx.Middleware{Name: "metrics", Order: httpx.OrderOutermost, Handler: func(c *fiber.Ctx) error {
		start := time.Now()
		observe := func(code int) {
			route := "unmatched"
			if rt := c.Route(); rt != nil && rt.Path != "/" {
				route = rt.Path
			}
			// fiber's strings alias fasthttp buffers that the next request reuses; the registry
			// keeps label values, so they must be copies or a stored series changes its labels.
			r.requests.WithLabelValues(strings.Clone(c.Method()), strings.Clone(route), statusClass(code)).Observe(time.Since(start).Seconds())
		}
		panicked := true
		defer func() {
			if panicked {
				observe(fiber.StatusInternalServerError)
			}
		}()
		if err := c.Next(); err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				_ = c.SendStatus(fiber.StatusInternalServerError)
			}
		}
		panicked = false
		observe(c.Response().StatusCode())
		return nil
	}}
}

// statusClass is the code label: "2xx", "4xx", …
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "5xx" // fasthttp answers an out-of-range status as 500
	}
	return string(rune('0'+code/100)) + "xx"
}

// Routes implements httpx.Registrar: GET /metrics in the Prometheus text format, for the admin.
func (r *Registry) Routes() []httpx.Route {
	return []httpx.Route{{Method: fiber.MethodGet, Path: "/metrics", Access: httpx.Admin,
		Handler: adaptor.HTTPHandler(promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))}}
}
