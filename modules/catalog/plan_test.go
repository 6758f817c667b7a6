package catalog_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
)

// recordedSQL keeps the SQL text of the statements run through a bun.DB.
type recordedSQL struct {
	mu sync.Mutex
	q  []string
}

func (r *recordedSQL) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (r *recordedSQL) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.q = append(r.q, e.Query)
}

// TestOverviewPageTakesItsOrderFromTheFeedIndex: on PostgreSQL, also on a database whose default
// collation is not bytes, a keyset page of the overview — `(connector_id, created_at,
// connection_id) > (?, ?, ?)` in feed order with a limit — is an index scan of
// idx_connections_feed_order that needs no sort: the index's byte order is the ORDER BY's.
func TestOverviewPageTakesItsOrderFromTheFeedIndex(t *testing.T) {
	for name, open := range map[string]func(*testing.T) *bun.DB{"postgres": dbtest.Postgres, "postgres_icu": dbtest.PostgresICU} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			for _, s := range []string{
				`INSERT INTO connectors (connector_id, display_name, listed, manifest, created_at, updated_at)
					SELECT 'c' || i, 'C', TRUE, '{"display_name":"C"}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'
					FROM generate_series(1, 20) i`,
				`INSERT INTO connections (connection_id, connector_id, display_name, status, source_kind, source_binding_key, created_at, updated_at)
					SELECT 'cin_' || i, 'c' || (i % 20 + 1), 'A', 'active', 'account', 'k' || i, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'
					FROM generate_series(1, 5000) i`,
				"ANALYZE connectors", "ANALYZE connections",
			} {
				if _, err := db.ExecContext(ctx, s); err != nil {
					t.Fatalf("%.60s: %v", s, err)
				}
			}
			rec := &recordedSQL{}
			store := catalog.NewStore(db.WithQueryHook(rec), time.Now)
			after := catalog.Key{ConnectorID: "c5", CreatedAt: "2026-01-01T00:00:00.000Z", ConnectionID: "cin_30"}
			page, err := store.Visible(ctx, catalog.Filter{After: &after, Limit: 100})
			if err != nil || len(page) != 101 {
				t.Fatalf("Visible: %d rows, %v", len(page), err)
			}
			rec.mu.Lock()
			q := rec.q[len(rec.q)-1]
			rec.mu.Unlock()

			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, s := range []string{"SET enable_seqscan = off", "SET enable_sort = off", "SET enable_bitmapscan = off"} {
				if _, err := conn.ExecContext(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := conn.QueryContext(ctx, "EXPLAIN "+q)
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			defer rows.Close()
			var lines []string
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					t.Fatal(err)
				}
				lines = append(lines, l)
			}
			plan := strings.Join(lines, "\n")
			if !strings.Contains(plan, "idx_connections_feed_order") || strings.Contains(plan, "Sort") {
				t.Errorf("the keyset page does not take its order from idx_connections_feed_order:\n%s\nquery: %s", plan, q)
			}
		})
	}
}

// TestSQLitePageTakesItsOrderFromTheFeedIndex: on SQLite, with statistics taken while the tables
// were small, a page of the overview and the id set that the page's retained rows and run heads
// are read by (catalog.IDs) scan connections in feed order through idx_connections_feed_order and
// probe each connector by its key: no scan of connectors with a search of each one's connections,
// which had to sort every connection in a temporary b-tree before the limit.
func TestSQLitePageTakesItsOrderFromTheFeedIndex(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx := context.Background()
	insert := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, err := db.ExecContext(ctx, `INSERT INTO connections (connection_id, connector_id, display_name, status,
				source_kind, source_binding_key, created_at, updated_at) VALUES (?, ?, 'A', 'active', 'account', ?, ?, ?)`,
				fmt.Sprintf("cin_%05d", i), fmt.Sprintf("c%02d", i%20), fmt.Sprintf("k%d", i),
				"2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO connectors (connector_id, display_name, listed, manifest, created_at, updated_at)
			VALUES (?, 'C', TRUE, '{"display_name":"C"}', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`, fmt.Sprintf("c%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	insert(0, 40)
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	insert(40, 2000) // the statistics now say 2 connections per connector; there are 100

	rec := &recordedSQL{}
	store := catalog.NewStore(db.WithQueryHook(rec), time.Now)
	page, err := store.Visible(ctx, catalog.Filter{Limit: 100})
	if err != nil || len(page) != 101 {
		t.Fatalf("Visible: %d rows, %v", len(page), err)
	}
	rec.mu.Lock()
	visible := rec.q[len(rec.q)-1]
	rec.mu.Unlock()
	ids, err := db.NewSelect().Column("connection_id").Table("connections").
		Where("connection_id ?", catalog.IDs(db, catalog.Filter{Limit: 100})).AppendQuery(db.QueryGen(), nil)
	if err != nil {
		t.Fatal(err)
	}
	explain := func(q string) string {
		t.Helper()
		rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q)
		if err != nil {
			t.Fatalf("explain: %v", err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	for name, q := range map[string]string{"page": visible, "id set": string(ids)} {
		plan := explain(q)
		if !strings.Contains(plan, "SCAN c USING INDEX idx_connections_feed_order") || strings.Contains(plan, "SCAN k") {
			t.Errorf("%s: connections are not read in feed order from idx_connections_feed_order:\n%s\nquery: %s", name, plan, q)
		}
		// The page's own statement sorts its 101 rows for the manifest window; the id set sorts nothing.
		if name == "id set" && strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("the id set sorts:\n%s", plan)
		}
	}
}
