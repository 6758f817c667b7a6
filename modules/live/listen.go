package live

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/revision"
)

// Listen follows PostgreSQL's NOTIFY channel of the feed (revision.Channel) on a connection of
// its own (connect; never one of the pool, which the requests need) until ctx ends, and signals the returned channel for every notification — a commit on
// any replica — and after every (re)connection, since notifications sent while it was not
// listening are lost (the hub then recovers them from the revision). On SQLite it returns nil:
// SQLite is single-process, and the in-process watcher (revision.Watch) sees every commit.
func Listen(ctx context.Context, db *bun.DB, connect func(context.Context) (*pgx.Conn, error), log *slog.Logger) <-chan struct{} {
	if bootstrap.DialectOf(db) != bootstrap.Postgres {
		return nil
	}
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := listenOnce(ctx, connect, signal)
			if ctx.Err() != nil {
				return
			}
			log.Warn("live: the NOTIFY listener lost its connection; reconnecting", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return out
}

func listenOnce(ctx context.Context, connect func(context.Context) (*pgx.Conn, error), signal func()) error {
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+revision.Channel); err != nil {
		return err
	}
	signal() // whatever was committed while nobody listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		signal()
	}
}
