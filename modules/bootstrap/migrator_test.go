package bootstrap_test

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// runSummaryIndex is the partial covering index SPEC §4.9 names.
const runSummaryIndex = "idx_spine_events_source_run_summary"

// schemaObjects lists the tables and indexes of the database, so two schemas can be compared.
func schemaObjects(t *testing.T, db *bun.DB) []string {
	t.Helper()
	ctx := context.Background()
	var q string
	if bootstrap.DialectOf(db) == bootstrap.Postgres {
		q = `SELECT 'table:' || tablename FROM pg_tables WHERE schemaname = current_schema()
			UNION ALL SELECT 'index:' || indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = current_schema()`
	} else {
		q = `SELECT type || ':' || name || ':' || coalesce(sql, '') FROM sqlite_master WHERE type IN ('table', 'index')`
	}
	var out []string
	if err := db.NewRaw(q).Scan(ctx, &out); err != nil {
		t.Fatalf("list schema objects: %v", err)
	}
	sort.Strings(out)
	return out
}

func indexState(t *testing.T, st bootstrap.State, name string) bootstrap.IndexState {
	t.Helper()
	for _, ix := range st.Indexes {
		if ix.Name == name {
			return ix
		}
	}
	t.Fatalf("index %s is not reported; got %+v", name, st.Indexes)
	return bootstrap.IndexState{}
}

func requireAllIndexesExist(t *testing.T, st bootstrap.State) {
	t.Helper()
	want := bootstrap.RequiredIndexes()
	if len(st.Indexes) != len(want) {
		t.Fatalf("state reports %d indexes, %d are required", len(st.Indexes), len(want))
	}
	for _, ix := range st.Indexes {
		if !ix.Exists {
			t.Errorf("required index %s does not exist", ix.Name)
		}
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		m := bootstrap.NewMigrator(db)
		before := schemaObjects(t, db)

		first, err := m.Migrate(ctx)
		if err != nil {
			t.Fatalf("first Migrate on a migrated database: %v", err)
		}
		second, err := m.Migrate(ctx)
		if err != nil {
			t.Fatalf("second Migrate: %v", err)
		}
		for i, st := range []bootstrap.State{first, second} {
			if st.SchemaVersion == "" {
				t.Errorf("run %d: empty schema version", i+1)
			}
			if len(st.Pending) != 0 {
				t.Errorf("run %d: pending migrations %v", i+1, st.Pending)
			}
			requireAllIndexesExist(t, st)
			for _, ix := range st.Indexes {
				if ix.Recreated {
					t.Errorf("run %d: index %s recreated although it existed", i+1, ix.Name)
				}
			}
		}
		if first.SchemaVersion != second.SchemaVersion {
			t.Errorf("schema version changed between runs: %q then %q", first.SchemaVersion, second.SchemaVersion)
		}
		wantDialect := bootstrap.SQLite
		if t.Name() == "TestMigrateIsIdempotent/postgres" {
			wantDialect = bootstrap.Postgres
		}
		if second.Dialect != wantDialect {
			t.Errorf("dialect = %q, want %q", second.Dialect, wantDialect)
		}
		if after := schemaObjects(t, db); strings.Join(after, "\n") != strings.Join(before, "\n") {
			t.Errorf("schema changed by re-running migrations:\nbefore %v\nafter  %v", before, after)
		}
		inspected, err := m.Inspect(ctx)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if inspected.SchemaVersion != second.SchemaVersion || len(inspected.Pending) != 0 {
			t.Errorf("Inspect = version %q pending %v, want %q and none", inspected.SchemaVersion, inspected.Pending, second.SchemaVersion)
		}
		requireAllIndexesExist(t, inspected)
	})
}

func TestMigrateOnEmptyDatabaseCreatesEverything(t *testing.T) {
	ctx := context.Background()
	db, err := bootstrap.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "nested", "empty.db"), bootstrap.PoolOptions{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	m := bootstrap.NewMigrator(db)
	st, err := m.Inspect(ctx)
	if err != nil {
		t.Fatalf("Inspect before migrating: %v", err)
	}
	if len(st.Pending) == 0 || st.SchemaVersion != "" {
		t.Fatalf("an empty database reports version %q and pending %v; want no version and pending migrations", st.SchemaVersion, st.Pending)
	}
	for _, ix := range st.Indexes {
		if ix.Exists {
			t.Errorf("index %s reported on an empty database", ix.Name)
		}
	}
	st, err = m.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if st.SchemaVersion == "" || len(st.Pending) != 0 {
		t.Fatalf("after Migrate: version %q pending %v", st.SchemaVersion, st.Pending)
	}
	requireAllIndexesExist(t, st)
	for _, table := range []string{"connectors", "connections", "spine_events", "retained_streams", "retained_connections"} {
		if _, err := db.NewSelect().Table(table).Count(ctx); err != nil {
			t.Errorf("table %s missing after Migrate: %v", table, err)
		}
	}
}

func TestMigrateRecreatesDroppedRequiredIndex(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		m := bootstrap.NewMigrator(db)
		if _, err := db.ExecContext(ctx, "DROP INDEX "+runSummaryIndex); err != nil {
			t.Fatalf("drop index: %v", err)
		}
		st, err := m.Inspect(ctx)
		if err != nil {
			t.Fatalf("Inspect: %v", err)
		}
		if ix := indexState(t, st, runSummaryIndex); ix.Exists || ix.Recreated {
			t.Fatalf("after DROP INDEX Inspect reports exists=%v recreated=%v; want false/false (Inspect must not repair)", ix.Exists, ix.Recreated)
		}
		if st, err = m.Inspect(ctx); err != nil || indexState(t, st, runSummaryIndex).Exists {
			t.Fatalf("a second Inspect repaired the index (err %v)", err)
		}

		st, err = m.Migrate(ctx)
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		for _, ix := range st.Indexes {
			want := ix.Name == runSummaryIndex
			if ix.Recreated != want {
				t.Errorf("index %s recreated=%v, want %v", ix.Name, ix.Recreated, want)
			}
			if !ix.Exists {
				t.Errorf("index %s does not exist after Migrate", ix.Name)
			}
		}
		st, err = m.Inspect(ctx)
		if err != nil {
			t.Fatalf("Inspect after Migrate: %v", err)
		}
		requireAllIndexesExist(t, st)
		if ix := indexState(t, st, runSummaryIndex); ix.Recreated {
			t.Errorf("Inspect reports recreated=true; it never changes anything")
		}

		// The recreated index is the partial index of SPEC §4.9, not some other index of that name.
		def := indexDefinition(t, db, runSummaryIndex)
		for _, part := range []string{"source_kind", "source_id", "run_id", "occurred_at", "where", "run_id is not null"} {
			if !strings.Contains(strings.ToLower(strings.NewReplacer("(", "", ")", "").Replace(def)), part) {
				t.Errorf("recreated index definition %q lacks %q", def, part)
			}
		}
	})
}

func indexDefinition(t *testing.T, db *bun.DB, name string) string {
	t.Helper()
	q := "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?"
	if bootstrap.DialectOf(db) == bootstrap.Postgres {
		q = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?"
	}
	var def string
	if err := db.QueryRowContext(context.Background(), q, name).Scan(&def); err != nil {
		t.Fatalf("index definition of %s: %v", name, err)
	}
	return def
}

func TestDataSurvivesReopen(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := bootstrap.Open(ctx, url, bootstrap.PoolOptions{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		st1, err := bootstrap.NewMigrator(db).Migrate(ctx)
		if err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		const at = "2026-11-20T07:01:02.345Z"
		if _, err := db.ExecContext(ctx, `INSERT INTO connectors (connector_id, display_name, listed, manifest, created_at, updated_at)
			VALUES ('amazon', 'Amazon', TRUE, '{"display_name":"Amazon"}', ?, ?)`, at, at); err != nil {
			t.Fatalf("insert connector: %v", err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO spine_events (event_id, event_type, occurred_at, recorded_at, content_hash)
			VALUES ('evt_1', 'run.started', ?, ?, 'h1'), ('evt_2', 'run.completed', ?, ?, 'h2')`, at, at, at, at); err != nil {
			t.Fatalf("insert events: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		db, err = bootstrap.Open(ctx, url, bootstrap.PoolOptions{})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer db.Close()
		// A restart runs the migrations again; that must keep the data.
		st2, err := bootstrap.NewMigrator(db).Migrate(ctx)
		if err != nil {
			t.Fatalf("Migrate after reopen: %v", err)
		}
		if st2.SchemaVersion != st1.SchemaVersion {
			t.Errorf("schema version %q after reopen, was %q", st2.SchemaVersion, st1.SchemaVersion)
		}
		var name string
		if err := db.QueryRowContext(ctx, "SELECT display_name FROM connectors WHERE connector_id = 'amazon'").Scan(&name); err != nil || name != "Amazon" {
			t.Fatalf("connector after reopen: %q, %v", name, err)
		}
		var ids []string
		if err := db.NewRaw("SELECT event_id FROM spine_events ORDER BY event_seq").Scan(ctx, &ids); err != nil {
			t.Fatalf("events after reopen: %v", err)
		}
		if strings.Join(ids, ",") != "evt_1,evt_2" {
			t.Errorf("events after reopen = %v, want [evt_1 evt_2]", ids)
		}
		// The identity continues after the stored rows instead of restarting.
		var maxSeq, newSeq int64
		if err := db.QueryRowContext(ctx, "SELECT max(event_seq) FROM spine_events").Scan(&maxSeq); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `INSERT INTO spine_events (event_id, event_type, occurred_at, recorded_at, content_hash)
			VALUES ('evt_3', 'run.progress', ?, ?, 'h3') RETURNING event_seq`, at, at).Scan(&newSeq); err != nil {
			t.Fatalf("insert after reopen: %v", err)
		}
		if newSeq <= maxSeq {
			t.Errorf("event_seq after reopen = %d, not above %d", newSeq, maxSeq)
		}
	})
}

func TestParseURL(t *testing.T) {
	cases := []struct {
		in      string
		dialect bootstrap.Dialect
		dsn     string
		ok      bool
	}{
		{"sqlite:./data/connsum.db", bootstrap.SQLite, "./data/connsum.db", true},
		{"sqlite:///tmp/x.db", bootstrap.SQLite, "/tmp/x.db", true},
		{"sqlite:/tmp/x.db?cache=shared", bootstrap.SQLite, "/tmp/x.db", true},
		{"postgres://postgres@127.0.0.1:5432/connsum?sslmode=disable", bootstrap.Postgres, "postgres://postgres@127.0.0.1:5432/connsum?sslmode=disable", true},
		{"postgresql://u@h/db", bootstrap.Postgres, "postgresql://u@h/db", true},
		{"sqlite:", "", "", false},
		{"mysql://x", "", "", false},
		{"", "", "", false},
		{"./connsum.db", "", "", false},
	}
	for _, c := range cases {
		d, dsn, err := bootstrap.ParseURL(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseURL(%q) error = %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && (d != c.dialect || dsn != c.dsn) {
			t.Errorf("ParseURL(%q) = %q, %q; want %q, %q", c.in, d, dsn, c.dialect, c.dsn)
		}
	}
}

func TestStatementCounterCountsNestedContexts(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		outer, inner := &bootstrap.StatementCounter{}, &bootstrap.StatementCounter{}
		octx := bootstrap.WithStatementCounter(context.Background(), outer)
		ictx := bootstrap.WithStatementCounter(octx, inner)
		for i := 0; i < 2; i++ {
			if _, err := db.NewSelect().Table("connectors").Count(octx); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			if _, err := db.NewSelect().Table("connections").Count(ictx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.NewSelect().Table("connections").Count(context.Background()); err != nil {
			t.Fatal(err)
		}
		if outer.Count() != 5 || inner.Count() != 3 {
			t.Errorf("outer=%d inner=%d, want 5 and 3", outer.Count(), inner.Count())
		}
	})
}
