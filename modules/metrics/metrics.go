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
// explode the label set).
func (r *Registry) Middleware() httpx.Middleware {
	return httpx.Middleware{Name: "metrics", Handler: func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		code := c.Response().StatusCode()
		if err != nil {
			if fe, ok := err.(*fiber.Error); ok {
				code = fe.Code
			}
		}
		route := "unmatched"
		if rt := c.Route(); rt != nil && rt.Path != "/" {
			route = rt.Path
		}
		// fiber's strings alias fasthttp buffers that the next request reuses; the registry keeps
		// label values, so they must be copies or a stored series changes its labels later.
		r.requests.WithLabelValues(strings.Clone(c.Method()), strings.Clone(route), string(rune('0'+code/100))+"xx").Observe(time.Since(start).Seconds())
		return err
	}}
}

// Routes implements httpx.Registrar: GET /metrics in the Prometheus text format, for the admin.
func (r *Registry) Routes() []httpx.Route {
	return []httpx.Route{{Method: fiber.MethodGet, Path: "/metrics", Access: httpx.Admin,
		Handler: adaptor.HTTPHandler(promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))}}
}
