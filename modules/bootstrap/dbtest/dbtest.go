// Package dbtest gives store and pipeline tests a fresh, migrated database on each engine:
// SQLite in a temp file per test, PostgreSQL in a database per test cloned from a migrated
// template. Ordering tests also get a PostgreSQL database whose default collation is linguistic
// (ICU en-US), where text order is not byte order unless the schema says so.
package dbtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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

// template is a migrated database that per-test databases are cloned from, made once per test
// process. A clone inherits the template's locale, so each collation needs its own template.
type template struct {
	prefix  string // database name prefix; the process id follows
	options string // CREATE DATABASE options
	once    sync.Once
	name    string
	err     error
}

var (
	// defaultTemplate has the server's default locale.
	defaultTemplate = &template{prefix: "connsum_tpl"}
	// icuTemplate has a linguistic default collation: ICU en-US orders punctuation and case
	// unlike bytes (a_b < a-b < a.b, RW > run_a), which is what ordering tests must survive.
	icuTemplate = &template{prefix: "connsum_tplicu",
		options: " TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"}
	seq     atomic.Int64
	createM sync.Mutex
	// pgSkipOnce makes the skip loud once per test process (package), not once per test.
	pgSkipOnce sync.Once
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

// OrderingEngines runs fn on SQLite, on PostgreSQL, and on a PostgreSQL database whose default
// collation is linguistic (subtest "postgres_icu"): answers that depend on text order must be
// the same on all three.
func OrderingEngines(t *testing.T, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	Engines(t, fn)
	t.Run("postgres_icu", func(t *testing.T) { fn(t, PostgresICU(t)) })
}

// OrderingEngineURLs is OrderingEngines with database URLs, for tests that start the service.
func OrderingEngineURLs(t *testing.T, fn func(t *testing.T, dbURL string)) {
	t.Helper()
	EngineURLs(t, fn)
	t.Run("postgres_icu", func(t *testing.T) { fn(t, PostgresICUURL(t)) })
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
	return cloneURL(t, defaultTemplate)
}

// PostgresICUURL returns the URL of a fresh, migrated PostgreSQL database whose default
// collation is ICU en-US instead of the server's (usually byte-order) default, dropped after the
// test. It skips or fails like PostgresURL.
func PostgresICUURL(t *testing.T) string {
	t.Helper()
	return cloneURL(t, icuTemplate)
}

// Postgres returns a fresh, migrated PostgreSQL database (see PostgresURL).
func Postgres(t *testing.T) *bun.DB {
	t.Helper()
	return openPostgres(t, PostgresURL(t))
}

// PostgresICU returns a fresh, migrated PostgreSQL database with a linguistic default collation
// (see PostgresICUURL).
func PostgresICU(t *testing.T) *bun.DB {
	t.Helper()
	return openPostgres(t, PostgresICUURL(t))
}

func openPostgres(t *testing.T, u string) *bun.DB {
	t.Helper()
	db, err := bootstrap.Open(context.Background(), u, bootstrap.PoolOptions{MaxOpenConns: 8})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// cloneURL creates a database from tpl (made on first use) and drops it after the test.
func cloneURL(t *testing.T, tpl *template) string {
	t.Helper()
	admin := PGAdminDSN()
	tpl.once.Do(func() { tpl.name, tpl.err = makeTemplate(admin, tpl) })
	if tpl.err != nil {
		if os.Getenv("CONNSUM_REQUIRE_PG") == "1" {
			t.Fatalf("PostgreSQL required (CONNSUM_REQUIRE_PG=1) but unavailable: %v", tpl.err)
		}
		pgSkipOnce.Do(func() {
			Loudly(fmt.Sprintf("!!! %s: PostgreSQL UNAVAILABLE (%v): the PostgreSQL half of its tests is SKIPPED (set CONNSUM_TEST_PG_DSN; CONNSUM_REQUIRE_PG=1 fails instead)", packageName(), tpl.err))
		})
		t.Skipf("!!! PostgreSQL UNAVAILABLE, PostgreSQL half SKIPPED: %v (set CONNSUM_TEST_PG_DSN)", tpl.err)
	}
	name := fmt.Sprintf("connsum_t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
	ctx := context.Background()
	adb, err := bootstrap.Open(ctx, admin, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatalf("postgres admin: %v", err)
	}
	defer adb.Close()
	createM.Lock()
	_, err = adb.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tpl.name)
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

// makeTemplate creates and migrates a template database once per test process. Leftover
// databases of dead processes are dropped first.
func makeTemplate(admin string, tpl *template) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adb, err := bootstrap.Open(ctx, admin, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		return "", err
	}
	defer adb.Close()
	name := fmt.Sprintf("%s_%d", tpl.prefix, os.Getpid())
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
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name+tpl.options); err != nil {
		return "", fmt.Errorf("create template %s: %w", name, err)
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

// Loudly prints line where a person running `go test ./...` sees it even without -v: go test
// drops a passing package's output unless -v (a line from TestMain to stderr is dropped too), so
// without -v the line goes to the go command's own standard error (the test binary's parent) when
// that is a terminal, a pipe or a file opened for appending, else to ours. For skips that must not
// pass unnoticed (a whole half of the suite).
func Loudly(line string) {
	w := os.Stderr
	if !testing.Verbose() {
		parent := fmt.Sprintf("/proc/%d/fd/2", os.Getppid())
		if f, err := os.OpenFile(parent, os.O_WRONLY|os.O_APPEND, 0); err == nil {
			defer f.Close()
			a, b := statOf(f), statOf(os.Stderr)
			same := a != nil && b != nil && os.SameFile(a, b)
			// A file the go command writes without O_APPEND (`go test > log`) would have this
			// line overwritten by its next write: leave such a file alone.
			if !same && a != nil && (!a.Mode().IsRegular() || appending(fmt.Sprintf("/proc/%d/fdinfo/2", os.Getppid()))) {
				w = f
			}
		}
	}
	fmt.Fprintln(w, line)
}

// appending reports whether the descriptor that fdinfo describes was opened with O_APPEND.
func appending(fdinfo string) bool {
	raw, err := os.ReadFile(fdinfo)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "flags:"); ok {
			flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64)
			return err == nil && flags&uint64(os.O_APPEND) != 0
		}
	}
	return false
}

func statOf(f *os.File) os.FileInfo {
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	return st
}

// packageName names the package under test (its directory) for loud lines.
func packageName() string {
	if wd, err := os.Getwd(); err == nil {
		return filepath.Base(wd)
	}
	return filepath.Base(os.Args[0])
}
