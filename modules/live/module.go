package live

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/auth"
	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
	"connsum/modules/revision"
	"connsum/modules/summary"
)

// NewServiceHub returns the service's hub over its database and projector, following the feed
// from the start of the service to its stop: woken by this process's commits (revision.Watch),
// by NOTIFY from every replica (Listen, PostgreSQL) and by its poll.
func NewServiceHub(lc fx.Lifecycle, db *bun.DB, bo bootstrap.Options, p *summary.Projector, now bootstrap.Clock, o Options, log *slog.Logger, _ *bootstrap.Ready) *Hub {
	h := NewHub(p, revision.Reader{DB: db}, now, o, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			local, unwatch := revision.Watch(db)
			remote := Listen(ctx, db, func(ctx context.Context) (*pgx.Conn, error) {
				// Bounded like every connect (db.connect_timeout), never a pooled connection.
				return bootstrap.ConnectOwn(ctx, bo.URL, bo.Pool)
			}, log)
			go func() {
				defer close(done)
				defer unwatch()
				h.Run(ctx, local, remote)
			}()
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			<-done
			return nil
		},
	})
	return h
}

// Module provides the hub and the stream route. The app ends the streams (Hub.Drain) before it
// shuts the HTTP server down, so open streams never hold the shutdown up.
var Module = fx.Module("live",
	fx.Provide(
		NewServiceHub,
		func(a *auth.Service) Credentials { return a },
		NewHandlers,
		fx.Annotate(func(h *Handlers) httpx.Registrar { return h }, fx.ResultTags(`group:"routes"`)),
	),
)
