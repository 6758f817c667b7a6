package summary

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"connsum/modules/metrics"
)

// FeedMetrics are the feed's own metrics (projections, their statements, cache outcomes),
// registered on the service's metrics registry.
type FeedMetrics struct {
	projections *prometheus.HistogramVec
	statements  *prometheus.HistogramVec
	cache       *prometheus.CounterVec
}

// NewFeedMetrics registers the feed's metrics on reg.
func NewFeedMetrics(reg *metrics.Registry) (*FeedMetrics, error) {
	m := &FeedMetrics{
		projections: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connsum_projection_duration_seconds",
			Help: "Feed projections and their durations by pipeline.", Buckets: metrics.DurationBuckets()},
			[]string{"pipeline", "result"}),
		statements: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "connsum_projection_statements",
			Help: "SQL statements issued per projection.", Buckets: []float64{1, 2, 3, 4, 5, 6, 8, 12, 20, 50, 100, 200}},
			[]string{"pipeline"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "connsum_summary_cache_requests_total",
			Help: "Feed requests by cache outcome (hit, miss, shared, bypass, off)."}, []string{"outcome"}),
	}
	if err := reg.Register(m.projections, m.statements, m.cache); err != nil {
		return nil, fmt.Errorf("summary: feed metrics: %w", err)
	}
	return m, nil
}

// Observe records one projection.
func (m *FeedMetrics) Observe(p Pipeline, r *Result, err error) {
	if err != nil || r == nil {
		m.projections.WithLabelValues(string(p), "error").Observe(0)
		return
	}
	m.projections.WithLabelValues(string(p), "ok").Observe(r.Stats.Total.Seconds())
	m.statements.WithLabelValues(string(p)).Observe(float64(r.Stats.Statements))
}

// CacheOutcome counts a feed request by cache outcome.
func (m *FeedMetrics) CacheOutcome(o Outcome) { m.cache.WithLabelValues(string(o)).Inc() }
