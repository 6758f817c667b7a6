package summary

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the service's Prometheus metrics, on a registry of their own (no globals).
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.HistogramVec
	projections *prometheus.HistogramVec
	statements  *prometheus.HistogramVec
	cache       *prometheus.CounterVec
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connsum_http_request_duration_seconds",
		Help: "HTTP request durations by route and status class.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)},
		[]string{"method", "route", "code"})
	m.projections = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connsum_projection_duration_seconds",
		Help: "Feed projections and their durations by pipeline.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)},
		[]string{"pipeline", "result"})
	m.statements = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connsum_projection_statements",
		Help: "SQL statements issued per projection.", Buckets: []float64{1, 2, 3, 4, 5, 6, 8, 12, 20, 50, 100, 200}},
		[]string{"pipeline"})
	m.cache = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "connsum_summary_cache_requests_total",
		Help: "Feed requests by cache outcome (hit, miss, shared, bypass, off)."}, []string{"outcome"})
	m.reg.MustRegister(m.requests, m.projections, m.statements, m.cache,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe records one projection.
func (m *Metrics) Observe(p Pipeline, r *Result, err error) {
	if err != nil || r == nil {
		m.projections.WithLabelValues(string(p), "error").Observe(0)
		return
	}
	m.projections.WithLabelValues(string(p), "ok").Observe(r.Stats.Total.Seconds())
	m.statements.WithLabelValues(string(p)).Observe(float64(r.Stats.Statements))
}

// CacheOutcome counts a feed request by cache outcome.
func (m *Metrics) CacheOutcome(o Outcome) { m.cache.WithLabelValues(string(o)).Inc() }

// Middleware records request durations by route pattern (never the raw path, which would
// explode the label set).
func (m *Metrics) Middleware() fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		code := c.Response().StatusCode()
		if err != nil {
			if fe, ok := err.(*fiber.Error); ok {
				code = fe.Code
			}
		}
		route := "unmatched"
		if r := c.Route(); r != nil && r.Path != "/" {
			route = r.Path
		}
		// fiber's strings alias fasthttp buffers that the next request reuses; the registry keeps
		// label values, so they must be copies or a stored series changes its labels later.
		m.requests.WithLabelValues(strings.Clone(c.Method()), strings.Clone(route), string(rune('0'+code/100))+"xx").Observe(time.Since(start).Seconds())
		return err
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}
