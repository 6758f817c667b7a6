package bootstrap

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// The write concurrency design (README "Concurrency"): every write that can change which
// connection a run belongs to — spine appends, connection creates, connector PUTs, and the
// read-model catch-up and rebuild — runs in a Serialized transaction. On PostgreSQL that
// transaction first takes one transaction-level advisory lock, the attribution lock; under READ
// COMMITTED each later statement takes its snapshot after the lock was granted, so it sees every
// write of the previous holder, which committed before releasing the lock. On SQLite every write
// transaction is BEGIN IMMEDIATE (see sqliteDSN): the database's one write lock already serialises
// them the same way. Writes that touch one row family only (a connection PATCH, retained figures)
// lock that connection's row instead (LockRows), so they never wait for ingest.

// attributionLockKey is the PostgreSQL advisory lock that serialises attribution writes. It was
// the ingest lock before connection and connector writes took it too, and keeps its value so that
// replicas of different versions still exclude each other during a rolling deploy.
const attributionLockKey = 7780_0002

// txAttempts bounds how often a transaction that lost a serialization or deadlock race is run.
const txAttempts = 6

// RunInTx runs fn in a transaction and runs it again (up to txAttempts times, with jittered
// exponential backoff) when PostgreSQL aborted it for a serialization failure or a deadlock. fn
// must be safe to run again: it may only change state through tx.
func RunInTx(ctx context.Context, db bun.IDB, fn func(ctx context.Context, tx bun.Tx) error) error {
	return runInTx(ctx, db, false, fn)
}

// runInTx is RunInTx; with dedicated, on PostgreSQL over a *bun.DB, each attempt runs on a
// connection taken from the pool for it, whose pgx connection WithPgx hands to fn's statements.
func runInTx(ctx context.Context, db bun.IDB, dedicated bool, fn func(ctx context.Context, tx bun.Tx) error) error {
	d, isDB := db.(*bun.DB)
	if isDB && DialectOf(d) == SQLite {
		release, err := sqliteWriteTurn(ctx, d.DB)
		if err != nil {
			return err
		}
		defer release()
	}
	backoff := 2 * time.Millisecond
	for attempt := 1; ; attempt++ {
		hooks := &afterCommit{}
		actx := context.WithValue(ctx, afterCommitKey{}, hooks)
		var err error
		if dedicated && isDB && DialectOf(d) == Postgres {
			err = runOnConn(actx, d, fn)
		} else {
			err = db.RunInTx(actx, nil, fn)
		}
		if err == nil {
			hooks.run()
			return nil
		}
		if !IsRetryable(err) || attempt == txAttempts {
			return err
		}
		wait := backoff + rand.N(backoff)
		backoff *= 2
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// afterCommitKey is the context key of the current attempt's after-commit list.
type afterCommitKey struct{}

// afterCommit holds what one transaction attempt asked to run once it committed.
type afterCommit struct {
	mu  sync.Mutex
	fns []func()
}

func (a *afterCommit) run() {
	a.mu.Lock()
	fns := a.fns
	a.fns = nil
	a.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// AfterCommit asks that f run once the transaction of ctx (a RunInTx attempt) has committed;
// an attempt that rolls back or is retried forgets it. It reports false, without running f,
// when ctx is not inside RunInTx. It is how a write tells in-process listeners (the feed's
// change stream) about what it made visible, never before it is visible.
func AfterCommit(ctx context.Context, f func()) bool {
	a, ok := ctx.Value(afterCommitKey{}).(*afterCommit)
	if !ok {
		return false
	}
	a.mu.Lock()
	a.fns = append(a.fns, f)
	a.mu.Unlock()
	return true
}

// RunSerialized is RunInTx holding the attribution lock for the whole transaction. On
// PostgreSQL (over a *bun.DB) the transaction runs on a connection of its own, so that its
// statements may also use pgx directly through WithPgx (ingest's COPY).
func RunSerialized(ctx context.Context, db bun.IDB, fn func(ctx context.Context, tx bun.Tx) error) error {
	return runInTx(ctx, db, true, func(ctx context.Context, tx bun.Tx) error {
		if DialectOf(tx) == Postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", attributionLockKey); err != nil {
				return err
			}
		}
		return fn(ctx, tx)
	})
}

// LockRows makes q lock the rows it reads until the transaction ends. FOR NO KEY UPDATE
// excludes other writers of those rows (a read-modify-write, the sums of a connection's retained
// streams) but not the key-share locks of foreign-key checks, so inserts that reference the rows
// do not wait. SQLite transactions are exclusive already.
func LockRows(q *bun.SelectQuery) *bun.SelectQuery {
	if DialectOf(q.DB()) == Postgres {
		return q.For("NO KEY UPDATE")
	}
	return q
}

// sqliteWriteGates holds one turn per SQLite database opened by this process (SQLite is
// single-process by design, SPEC §9). SQLite lets a writer that finds the database locked sleep
// and try again (busy_timeout), in no order: with several concurrent writers some waited seconds
// while others went again and again (bench write: p99 2.5-3.1 s, 0.77× the one-writer rate).
// Taking turns here, in arrival order (a channel's waiters are served first come, first served),
// makes the wait a queue. The map holds a few bytes per database ever opened.
var sqliteWriteGates sync.Map // *sql.DB → chan struct{}

// sqliteWriteTurn waits for db's write turn (or ctx) and returns its release.
func sqliteWriteTurn(ctx context.Context, db *sql.DB) (func(), error) {
	g, _ := sqliteWriteGates.LoadOrStore(db, make(chan struct{}, 1))
	gate := g.(chan struct{})
	select {
	case gate <- struct{}{}:
		return func() { <-gate }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// IsRetryable reports whether err is PostgreSQL aborting a transaction so that it can be run
// again: a serialization failure (40001) or a detected deadlock (40P01).
func IsRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// pgxConnKey is the context key of the *sql.Conn a dedicated transaction attempt runs on.
type pgxConnKey struct{}

// runOnConn runs one attempt of fn in a transaction on a connection taken from d's pool for it,
// and gives the connection back (a broken one is discarded by database/sql).
func runOnConn(ctx context.Context, d *bun.DB, fn func(ctx context.Context, tx bun.Tx) error) error {
	conn, err := d.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	return conn.RunInTx(context.WithValue(ctx, pgxConnKey{}, conn.Conn), nil, fn)
}

// HasPgx reports whether WithPgx would run its function in ctx.
func HasPgx(ctx context.Context) bool {
	_, ok := ctx.Value(pgxConnKey{}).(*sql.Conn)
	return ok
}

// WithPgx runs fn with the pgx connection of ctx's transaction — RunSerialized on PostgreSQL —
// so that the transaction's work can use what database/sql does not offer (CopyFrom). What fn
// does through the connection is part of that transaction. It reports false, without running
// fn, when ctx's transaction has no such connection (SQLite, or a transaction begun elsewhere).
func WithPgx(ctx context.Context, fn func(conn *pgx.Conn) error) (bool, error) {
	c, ok := ctx.Value(pgxConnKey{}).(*sql.Conn)
	if !ok {
		return false, nil
	}
	ran := false
	err := c.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return nil
		}
		ran = true
		return fn(sc.Conn())
	})
	return ran, err
}
