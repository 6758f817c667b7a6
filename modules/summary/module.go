package summary

import (
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/revision"
	"connsum/modules/runs"
)

// Options configures the overview cache.
type Options struct {
	CacheTTL    time.Duration // summary.cache.ttl; 0 disables
	CacheSQLite bool          // summary.cache.sqlite: enable on SQLite too
	// CacheMaxEntries is summary.cache.max_entries, the most entries the cache holds (0:
	// DefaultCacheMaxEntries).
	CacheMaxEntries int
	// ComputeTimeout bounds a cached computation, which runs detached from the request that
	// started it (db.request_timeout): a computation stuck on a database that stopped answering
	// must not keep every later request of its key waiting after the database is back.
	ComputeTimeout time.Duration
}

// NewCache picks the cache: on by default on PostgreSQL only (SPEC §4.7).
func NewCache(o Options, db *bun.DB, now bootstrap.Clock) ResultCache {
	switch {
	case o.CacheTTL <= 0:
		return NewNoCache[*Result]("disabled: summary.cache.ttl is 0")
	case bootstrap.DialectOf(db) == bootstrap.SQLite && !o.CacheSQLite:
		return NewNoCache[*Result]("off on SQLite by default (set summary.cache.sqlite: true to enable)")
	}
	c := NewOverviewCache[*Result](o.CacheTTL, now).WithMaxEntries(o.CacheMaxEntries)
	if o.ComputeTimeout > 0 {
		c.timeout = o.ComputeTimeout
	}
	return c
}

// Module provides the projector, the cache, the feed's metrics (on the metrics module's
// registry) and the feed/admin routes. The projector's overview evidence is the runs module's
// `name:"overview"` value: the read model, or runs.Shallow.
var Module = fx.Module("summary",
	fx.Provide(
		NewCache,
		func(c ResultCache) catalog.ChangeNotifier { return c },
		NewFeedMetrics,
		fx.Annotate(NewProjector, fx.ParamTags(``, ``, ``, `name:"overview"`)),
		func(db *bun.DB) Revisions { return revision.Reader{DB: db} },
		func(p *Projector, c ResultCache, cat catalog.Reader, ev runs.Evidence, m *FeedMetrics, revs Revisions, ro runs.Options) *Feed {
			return NewFeed(p, c, cat, ev, m, revs).WithShape("stale_after=" + ro.WithDefaults().StaleAfter.String())
		},
		fx.Annotate(NewHandlers, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
