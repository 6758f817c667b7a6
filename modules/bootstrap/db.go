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
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
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

// PoolOptions bounds the database/sql connection pool.
type PoolOptions struct {
	MaxOpenConns int
	MaxIdleConns int
}

// ParseURL validates a db.url value and reports its engine and the driver DSN.
// SQLite URLs are `sqlite:PATH` (or `sqlite://PATH`); PostgreSQL URLs start with `postgres://` or `postgresql://`.
func ParseURL(raw string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("not a valid postgres URL")
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
// hits a lock upgrade deadlock ("database is locked"), and foreign keys on.
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_txlock=immediate"
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
		sqldb, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: open postgres: %w", err)
		}
		db = bun.NewDB(sqldb, pgdialect.New())
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
	db.AddQueryHook(StatementHook{})
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
