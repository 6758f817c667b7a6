// Package dbtest gives store and pipeline tests a fresh, migrated database on each engine:
// SQLite in a temp file per test, PostgreSQL in a database per test cloned from a migrated
// template.
package dbtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
)

// DefaultPGDSN is used when CONNSUM_TEST_PG_DSN is not set.
const DefaultPGDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	tplOnce sync.Once
	tplName string
	tplErr  error
	seq     atomic.Int64
	createM sync.Mutex
)

// PGAdminDSN returns the DSN of the PostgreSQL server used by tests.
func PGAdminDSN() string {
	if v := os.Getenv("CONNSUM_TEST_PG_DSN"); v != "" {
		return v
	}
	return DefaultPGDSN
}

func withDatabase(dsn, name string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	u.Path = "/" + name
	return u.String()
}

// Engines runs fn once per engine as subtests named "sqlite" and "postgres".
func Engines(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
}

// EngineURLs runs fn once per engine with a database URL instead of an open handle, for tests
// that start the whole service.
func EngineURLs(t *testing.T, fn func(t *testing.T, dbURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, PostgresURL(t)) })
}

// SQLiteURL returns the URL of a fresh, migrated SQLite file.
func SQLiteURL(t *testing.T) string {
	t.Helper()
	u := "sqlite:" + filepath.Join(t.TempDir(), "connsum.db")
	db, err := bootstrap.Open(context.Background(), u, bootstrap.PoolOptions{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	defer db.Close()
	if _, err := bootstrap.NewMigrator(db).Migrate(context.Background()); err != nil {
		t.Fatalf("migrate sqlite: %v", err)
	}
	return u
}

// SQLite returns a fresh, migrated SQLite database closed at the end of the test.
func SQLite(t *testing.T) *bun.DB {
	t.Helper()
	db, err := bootstrap.Open(context.Background(), SQLiteURL(t), bootstrap.PoolOptions{})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresURL returns the URL of a fresh, migrated PostgreSQL database dropped after the test.
// When the server is unreachable it skips loudly, or fails when CONNSUM_REQUIRE_PG=1.
func PostgresURL(t *testing.T) string {
	t.Helper()
	admin := PGAdminDSN()
	tplOnce.Do(func() { tplName, tplErr = makeTemplate(admin) })
	if tplErr != nil {
		if os.Getenv("CONNSUM_REQUIRE_PG") == "1" {
			t.Fatalf("PostgreSQL required (CONNSUM_REQUIRE_PG=1) but unavailable: %v", tplErr)
		}
		t.Skipf("!!! PostgreSQL UNAVAILABLE, PostgreSQL half SKIPPED: %v (set CONNSUM_TEST_PG_DSN)", tplErr)
	}
	name := fmt.Sprintf("connsum_t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
	ctx := context.Background()
	adb, err := bootstrap.Open(ctx, admin, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatalf("postgres admin: %v", err)
	}
	defer adb.Close()
	createM.Lock()
	_, err = adb.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tplName)
	createM.Unlock()
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		adb, err := bootstrap.Open(context.Background(), admin, bootstrap.PoolOptions{MaxOpenConns: 1})
		if err != nil {
			return
		}
		defer adb.Close()
		_, _ = adb.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(admin, name)
}

// Postgres returns a fresh, migrated PostgreSQL database (see PostgresURL).
func Postgres(t *testing.T) *bun.DB {
	t.Helper()
	u := PostgresURL(t)
	db, err := bootstrap.Open(context.Background(), u, bootstrap.PoolOptions{MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// makeTemplate creates and migrates a template database once per test process. Leftover
// templates of dead processes are dropped first.
func makeTemplate(admin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adb, err := bootstrap.Open(ctx, admin, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		return "", err
	}
	defer adb.Close()
	name := fmt.Sprintf("connsum_tpl_%d", os.Getpid())
	rows, err := adb.QueryContext(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'connsum_t%'")
	if err == nil {
		var stale []string
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil && !pidAlive(n) {
				stale = append(stale, n)
			}
		}
		_ = rows.Close()
		for _, n := range stale {
			_, _ = adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+n+" WITH (FORCE)")
		}
	}
	if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	tdb, err := bootstrap.Open(ctx, withDatabase(admin, name), bootstrap.PoolOptions{MaxOpenConns: 2})
	if err != nil {
		return "", err
	}
	_, err = bootstrap.NewMigrator(tdb).Migrate(ctx)
	_ = tdb.Close()
	return name, err
}

// pidAlive reports whether the process that made a test database still runs.
func pidAlive(dbName string) bool {
	parts := strings.Split(dbName, "_")
	if len(parts) < 3 {
		return false
	}
	var pid int
	if _, err := fmt.Sscanf(parts[2], "%d", &pid); err != nil || pid <= 0 {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
