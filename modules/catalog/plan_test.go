package catalog_test

import (
	"context"
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
