package live

import (
	"context"
	"database/sql/driver"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/revision"
)

// Listen follows PostgreSQL's NOTIFY channel of the feed (revision.Channel) on a connection of
// its own until ctx ends, and signals the returned channel for every notification — a commit on
// any replica — and after every (re)connection, since notifications sent while it was not
// listening are lost (the hub then recovers them from the revision). On SQLite it returns nil:
// SQLite is single-process, and the in-process watcher (revision.Watch) sees every commit.
func Listen(ctx context.Context, db *bun.DB, log *slog.Logger) <-chan struct{} {
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
			err := listenOnce(ctx, db, signal)
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

func listenOnce(ctx context.Context, db *bun.DB, signal func()) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+revision.Channel); err != nil {
			return driver.ErrBadConn
		}
		signal() // whatever was committed while nobody listened
		for {
			if _, err := pc.WaitForNotification(ctx); err != nil {
				// Never hand a listening (or broken) connection back to the pool.
				return driver.ErrBadConn
			}
			signal()
		}
	})
}
