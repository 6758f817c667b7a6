package bootstrap

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/httpx"
)

// Options configures the database.
type Options struct {
	URL         string
	AutoMigrate bool
	Pool        PoolOptions
	// FaultHold is how long /readyz keeps reporting a storage fault (disk full, read-only) that a
	// write ran into before it probes with a write of its own; 0 means DefaultFaultHold.
	FaultHold time.Duration
}

// DefaultFaultHold is the FaultHold when none is set: a few load-balancer probe intervals, so a
// replica whose writes fail stays out of rotation instead of flapping with every small write
// that happens to fit (SQLite reuses WAL space), yet comes back within seconds of the fix.
const DefaultFaultHold = 5 * time.Second

// Ready records that bootstrap (migrations and index verification) finished, and whether writes
// are failing for a storage fault; /readyz needs both. The zero value is usable (not done, no
// fault, DefaultFaultHold, the wall clock).
type Ready struct {
	done atomic.Bool
	hold time.Duration
	now  func() time.Time

	mu     sync.Mutex
	reason string    // the storage fault (FaultDiskFull, FaultReadOnly); "" when writes work
	since  time.Time // first fault of this episode
	last   time.Time // latest fault seen, by a request or a failed probe
}

// Done reports whether bootstrap completed.
func (r *Ready) Done() bool { return r.done.Load() }

func (r *Ready) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

// ObserveWrite records err when it is a storage fault (see StorageFault) and reports whether it was.
func (r *Ready) ObserveWrite(err error) bool {
	reason, ok := StorageFault(err)
	if !ok {
		return false
	}
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reason == "" {
		r.since = now
	}
	r.reason, r.last = reason, now
	return true
}

// WritesSucceeded ends a storage-fault episode: a write went through.
func (r *Ready) WritesSucceeded() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reason = ""
}

// WriteFault returns the current storage fault, when it began, and whether the fault was seen
// within the hold (so /readyz need not probe yet).
func (r *Ready) WriteFault() (reason string, since time.Time, fresh bool) {
	hold := r.hold
	if hold <= 0 {
		hold = DefaultFaultHold
	}
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reason, r.since, r.reason != "" && now.Sub(r.last) < hold
}

// Middleware watches every request's outcome: a storage fault puts /readyz in the degraded
// state, and a successful write to the API (a 2xx answer to an unsafe /_ref/ request) ends it.
func (r *Ready) Middleware() httpx.Middleware {
	return httpx.Middleware{Name: "bootstrap.write_health", Handler: func(c *fiber.Ctx) error {
		err := c.Next()
		if err != nil {
			r.ObserveWrite(err)
			return err
		}
		switch c.Method() {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		default:
			if st := c.Response().StatusCode(); st >= 200 && st < 300 && strings.HasPrefix(c.Path(), "/_ref/") {
				r.WritesSucceeded()
			}
		}
		return nil
	}}
}

// NewDB opens the database and closes it when the app stops.
func NewDB(lc fx.Lifecycle, o Options) (*bun.DB, error) {
	db, err := Open(context.Background(), o.URL, o.Pool)
	if err != nil {
		return nil, err
	}
	lc.Append(fx.StopHook(db.Close))
	return db, nil
}

// NewReady registers the start hook that applies migrations (db.auto_migrate) or, without them,
// refuses a schema that is behind; either way every required index is verified and a missing
// one recreated.
func NewReady(lc fx.Lifecycle, m *Migrator, o Options) *Ready {
	r := &Ready{hold: o.FaultHold}
	lc.Append(fx.StartHook(func(ctx context.Context) error {
		m, done, err := startMigrator(ctx, m, o)
		if err != nil {
			return err
		}
		defer done()
		if o.AutoMigrate {
			_, err = m.Migrate(ctx)
		} else {
			// Check the schema before repairing indexes: on a schema that is behind, the
			// tables an index needs may not exist yet.
			var st State
			st, err = m.verify(ctx, false)
			if err == nil && len(st.Pending) > 0 {
				err = fmt.Errorf("bootstrap: the schema is behind (%d pending migrations) and db.auto_migrate is false: run `connsum migrate`", len(st.Pending))
			}
			if err == nil {
				_, err = m.verify(ctx, true)
			}
		}
		if err != nil {
			return err
		}
		r.done.Store(true)
		return nil
	}))
	return r
}

// startMigrator is the migrator of the start hook. On PostgreSQL the start migrates over a
// short-lived pool of its own, as `connsum migrate` does: the service's pool carries
// statement_timeout, which a migration's or an index repair's build on a large table may rightly
// exceed, and it may be as small as one connection, which the advisory lock would hold while the
// migrations wait for another (two connections: the lock holds one). Without a URL (a caller
// that only hands over an open database) it migrates through m.
func startMigrator(ctx context.Context, m *Migrator, o Options) (*Migrator, func(), error) {
	if DialectOf(m.db) != Postgres || o.URL == "" {
		return m, func() {}, nil
	}
	db, err := Open(ctx, o.URL, PoolOptions{MaxOpenConns: 2, ConnectTimeout: o.Pool.ConnectTimeout})
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap: open the migration connection: %w", err)
	}
	return NewMigrator(db), func() { _ = db.Close() }, nil
}

// Routes serves /healthz, /readyz and /admin/bootstrap.
type Routes struct {
	db    *bun.DB
	m     *Migrator
	ready *Ready
}

// NewRoutes returns the bootstrap routes.
func NewRoutes(db *bun.DB, m *Migrator, ready *Ready) *Routes {
	return &Routes{db: db, m: m, ready: ready}
}

// Routes implements httpx.Registrar.
func (r *Routes) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/healthz", Access: httpx.Public, Handler: func(c *fiber.Ctx) error {
			return httpx.JSON(c, fiber.StatusOK, fiber.Map{"status": "ok"})
		}},
		{Method: fiber.MethodGet, Path: "/readyz", Access: httpx.Public, Handler: r.readyz},
		{Method: fiber.MethodGet, Path: "/admin/bootstrap", Access: httpx.Admin, Handler: r.bootstrap},
	}
}

// readyz answers 200 only when bootstrap completed, the database answers and it takes writes.
// A PostgreSQL server that is read-only (a standby, default_transaction_read_only) is seen at
// once; a full disk, or a read-only SQLite file, shows only when a write fails, so a storage
// fault that a request ran into is reported for the hold, and then a write probe decides.
func (r *Routes) readyz(c *fiber.Ctx) error {
	if !r.ready.Done() {
		return &httpx.Error{Status: fiber.StatusServiceUnavailable, Code: "unavailable", Message: "bootstrap has not completed"}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if DialectOf(r.db) == Postgres {
		var readOnly bool
		if err := r.db.QueryRowContext(ctx, "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'").Scan(&readOnly); err != nil {
			return httpx.Unavailable
		}
		if readOnly {
			return degraded(FaultReadOnly, time.Time{})
		}
	} else if err := r.db.PingContext(ctx); err != nil {
		return httpx.Unavailable
	}
	if reason, since, fresh := r.ready.WriteFault(); reason != "" {
		if fresh {
			return degraded(reason, since)
		}
		if err := r.probe(ctx); err != nil {
			if r.ready.ObserveWrite(err) {
				reason, since, _ = r.ready.WriteFault()
				return degraded(reason, since)
			}
			return httpx.Unavailable
		}
		r.ready.WritesSucceeded()
	}
	return httpx.JSON(c, fiber.StatusOK, fiber.Map{"status": "ready"})
}

// probe writes the one row of readiness_probe: a committed write, refused like any other while
// the storage is read-only or (on PostgreSQL) full.
func (r *Routes) probe(ctx context.Context) error {
	_, err := r.db.NewUpdate().Table("readiness_probe").Set("probed_at = ?", FormatTime(r.ready.clock())).Where("id = 1").Exec(ctx)
	return err
}

// degraded is the 503 of /readyz while writes fail; the error handler adds Retry-After.
func degraded(reason string, since time.Time) *httpx.Error {
	msg := reason + ": the database refuses writes"
	if !since.IsZero() {
		msg += " since " + FormatTime(since)
	}
	return &httpx.Error{Status: fiber.StatusServiceUnavailable, Code: "degraded", Message: msg + "; reads are still served"}
}

func (r *Routes) bootstrap(c *fiber.Ctx) error {
	st, err := r.m.Inspect(c.UserContext())
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, st)
}

// Module provides the database, the migrator, readiness (with the write-health middleware) and
// the bootstrap routes.
var Module = fx.Module("bootstrap",
	fx.Provide(
		NewDB,
		NewMigrator,
		NewReady,
		fx.Annotate(NewRoutes, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
		fx.Annotate((*Ready).Middleware, fx.ResultTags(`group:"middleware"`)),
	),
)
