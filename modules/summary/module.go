package summary

import (
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/retained"
	"connsum/modules/runs"
)

// Options configures the overview cache.
type Options struct {
	CacheTTL    time.Duration // summary.cache.ttl; 0 disables
	CacheSQLite bool          // summary.cache.sqlite: enable on SQLite too
}

// NewCache picks the cache: on by default on PostgreSQL only (SPEC §4.7).
func NewCache(o Options, db *bun.DB, now bootstrap.Clock) Cache {
	switch {
	case o.CacheTTL <= 0:
		return NewNoCache("disabled: summary.cache.ttl is 0")
	case bootstrap.DialectOf(db) == bootstrap.SQLite && !o.CacheSQLite:
		return NewNoCache("off on SQLite by default (set summary.cache.sqlite: true to enable)")
	}
	return NewOverviewCache(o.CacheTTL, now)
}

// Module provides the projector, the cache, the metrics and the feed/admin routes.
var Module = fx.Module("summary",
	fx.Provide(
		NewCache,
		func(c Cache) catalog.ChangeNotifier { return c },
		NewMetrics,
		func(c catalog.Reader, r retained.Snapshot, ev runs.Evidence, ov runs.OverviewEvidence, now bootstrap.Clock) *Projector {
			return NewProjector(c, r, ev, ov.Evidence, now)
		},
		NewFeed,
		NewHandlers,
		fx.Annotate(func(h *Handlers) *Handlers { return h }, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
		fx.Annotate(func(m *Metrics) httpx.Middleware { return httpx.Middleware{Name: "metrics", Handler: m.Middleware()} },
			fx.ResultTags(`group:"middleware"`)),
	),
)
