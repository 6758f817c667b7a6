package bootstrap

import (
	"context"
	"fmt"
	"sync/atomic"

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
}

// Ready records that bootstrap (migrations and index verification) finished; /readyz (package
// health) and the modules that must start after the migrations depend on it. The zero value is
// usable (not done).
type Ready struct {
	done atomic.Bool
}

// Done reports whether bootstrap completed.
func (r *Ready) Done() bool { return r.done.Load() }

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
	r := &Ready{}
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

// Routes serves /admin/bootstrap.
type Routes struct {
	m *Migrator
}

// NewRoutes returns the bootstrap routes.
func NewRoutes(m *Migrator) *Routes {
	return &Routes{m: m}
}

// Routes implements httpx.Registrar.
func (r *Routes) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/admin/bootstrap", Access: httpx.Admin, Handler: r.bootstrap},
	}
}

func (r *Routes) bootstrap(c *fiber.Ctx) error {
	st, err := r.m.Inspect(c.UserContext())
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, st)
}

// Module provides the database, the migrator, Ready (bootstrap done) and /admin/bootstrap.
var Module = fx.Module("bootstrap",
	fx.Provide(
		NewDB,
		NewMigrator,
		NewReady,
		fx.Annotate(NewRoutes, fx.As(new(httpx.Registrar)), fx.ResultTags(`group:"routes"`)),
	),
)
