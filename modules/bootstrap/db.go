// Package bootstrap opens the database (embedded SQLite or PostgreSQL), applies the embedded
// migrations and verifies the indexes the read paths depend on.
package bootstrap

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
)

// Dialect names the storage engine behind a *bun.DB.
type Dialect string

// The two supported engines.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DialectOf reports which engine db talks to.
func DialectOf(db bun.IDB) Dialect {
	if db.Dialect().Name() == dialect.PG {
		return Postgres
	}
	return SQLite
}

// DefaultConnectTimeout bounds the opening of a new PostgreSQL connection (TCP, TLS and the
// startup exchange) when neither PoolOptions nor the URL's connect_timeout says otherwise, so
// that no caller, not even a CLI command with a background context, waits on an unreachable
// server forever.
const DefaultConnectTimeout = 5 * time.Second

// ApplicationName is the application_name of every PostgreSQL connection (pg_stat_activity),
// unless the URL names another.
const ApplicationName = "connsum"

// QueryExecMode is how pgx sends statements to PostgreSQL. bun formats every argument into the
// SQL text and passes no driver arguments, so every batch ingest (and every scoped read, cursor
// page…) is a new text; pgx's default mode (cache_statement) kept each distinct text as a
// prepared statement on the server, up to 512 per connection, and one backend grew from 19 MB to
// 584 MB after 250 batches. The simple protocol keeps no per-text state on the server and sends
// a statement as one message: it measured 3-10 % faster per feed statement than the other
// stateless mode (exec: Parse, Bind, Describe, Execute, Sync) and equal on ingest.
const QueryExecMode = pgx.QueryExecModeSimpleProtocol

// PoolOptions bounds the database/sql connection pool and the work one pooled connection may do.
// The zero value is what the CLI's maintenance commands use: no statement timeout, since a
// migration's index build or a rebuild may rightly run long.
type PoolOptions struct {
	MaxOpenConns int
	MaxIdleConns int
	// StatementTimeout is PostgreSQL's statement_timeout, set as a runtime parameter of each
	// pooled connection: the server cancels a statement that runs longer (SQLSTATE 57014) even
	// when the client can no longer tell it to. 0 leaves the server's setting.
	StatementTimeout time.Duration
	// IdleInTransactionTimeout is PostgreSQL's idle_in_transaction_session_timeout: the server
	// ends a session that sits in an open transaction longer, so a client that vanished behind
	// a network fault mid-transaction cannot hold its locks (the ingest advisory lock among
	// them) until TCP keepalive notices, hours later. 0 leaves the server's setting.
	IdleInTransactionTimeout time.Duration
	// ConnectTimeout bounds the opening of a new connection; 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// ParseURL validates a db.url value and reports its engine and the driver DSN.
// SQLite URLs are `sqlite:PATH` (or `sqlite://PATH`); PostgreSQL URLs start with `postgres://` or `postgresql://`.
func ParseURL(raw string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("not a valid postgres URL")
		}
		// pgx's own parse finds what url.Parse lets through (a bad port, sslmode or
		// connect_timeout), so the start stops on db.url instead of on the first connection.
		if _, err := pgx.ParseConfig(raw); err != nil {
			return "", "", fmt.Errorf("not a valid postgres URL: %w", redact(err))
		}
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(raw, "sqlite:"), "//")
		if q := strings.IndexByte(path, '?'); q >= 0 {
			path = path[:q]
		}
		if path == "" {
			return "", "", fmt.Errorf("sqlite URL needs a file path, e.g. sqlite:./data/connsum.db")
		}
		return SQLite, path, nil
	default:
		return "", "", fmt.Errorf("must start with sqlite: or postgres://")
	}
}

// sqliteDSN turns a file path into a modernc DSN: WAL for concurrent readers, a busy timeout so
// writers queue instead of failing, IMMEDIATE transactions so a read-then-write transaction never
// hits a lock upgrade deadlock ("database is locked"), and foreign keys on. The busy timeout
// (10 s) is below the default request deadline (db.request_timeout), so a lock wait ends in a
// 503 of its own before the request's deadline would.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
}

// postgresConfig is the pgx configuration of every PostgreSQL connection: the statement mode
// that keeps no server state per SQL text, the connect timeout, and the session limits of
// pool. A value the URL sets explicitly (connect_timeout, application_name, statement_timeout,
// idle_in_transaction_session_timeout, default_query_exec_mode) wins over these defaults.
func postgresConfig(dsn string, pool PoolOptions) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: parse postgres URL: %w", redact(err))
	}
	if u, err := url.Parse(dsn); err != nil || !u.Query().Has("default_query_exec_mode") {
		// No statement or description cache either: the simple protocol does not use them.
		cfg.DefaultQueryExecMode = QueryExecMode
		cfg.StatementCacheCapacity, cfg.DescriptionCacheCapacity = 0, 0
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pool.ConnectTimeout
		if cfg.ConnectTimeout <= 0 {
			cfg.ConnectTimeout = DefaultConnectTimeout
		}
	}
	setDefault := func(param, value string) {
		if _, ok := cfg.RuntimeParams[param]; !ok && value != "" {
			cfg.RuntimeParams[param] = value
		}
	}
	setDefault("application_name", ApplicationName)
	setDefault("statement_timeout", milliseconds(pool.StatementTimeout))
	setDefault("idle_in_transaction_session_timeout", milliseconds(pool.IdleInTransactionTimeout))
	// bun formats every value into the SQL text and quotes it for standard_conforming_strings =
	// on, where a backslash is an ordinary character. A server or database configured with it
	// off would let a value ending in a backslash close bun's quote and run the rest as SQL, so
	// every session sets it, whatever the URL or the database says.
	cfg.RuntimeParams["standard_conforming_strings"] = "on"
	return cfg, nil
}

// milliseconds renders d as a PostgreSQL duration setting (an integer of milliseconds, at least
// 1 so that a sub-millisecond duration does not turn into 0, which means "no limit"); "" for
// d <= 0, which leaves the setting alone.
func milliseconds(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// Open connects to the database named by rawURL. For SQLite it creates the parent directory.
func Open(ctx context.Context, rawURL string, pool PoolOptions) (*bun.DB, error) {
	d, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	var db *bun.DB
	switch d {
	case Postgres:
		cfg, err := postgresConfig(dsn, pool)
		if err != nil {
			return nil, err
		}
		db = bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	default:
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("bootstrap: create data directory: %w", err)
			}
		}
		sqldb, err := sql.Open(sqliteshim.ShimName, sqliteDSN(dsn))
		if err != nil {
			return nil, fmt.Errorf("bootstrap: open sqlite: %w", err)
		}
		db = bun.NewDB(sqldb, sqlitedialect.New())
	}
	db = db.WithQueryHook(StatementHook{}) // a clone over the same pool
	if pool.MaxOpenConns > 0 {
		db.SetMaxOpenConns(pool.MaxOpenConns)
	}
	if pool.MaxIdleConns > 0 {
		db.SetMaxIdleConns(pool.MaxIdleConns)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bootstrap: connect: %w", redact(err))
	}
	return db, nil
}

// redact keeps connection errors free of credentials that a DSN may carry.
func redact(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		if j := strings.Index(msg[i:], "@"); j >= 0 {
			return errors.New(msg[:i+3] + "***" + msg[i+j:])
		}
	}
	return err
}

// ConnectOwn opens one PostgreSQL connection of its own, outside the pool, configured like the
// pool's (postgresConfig): for a session that waits for a long time (the change stream's LISTEN),
// which must never take a connection the requests need.
func ConnectOwn(ctx context.Context, rawURL string, pool PoolOptions) (*pgx.Conn, error) {
	d, dsn, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if d != Postgres {
		return nil, fmt.Errorf("bootstrap: %s has no connections of its own", d)
	}
	cfg, err := postgresConfig(dsn, pool)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: connect: %w", redact(err))
	}
	return conn, nil
}
