package runs

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
)

// lastQuery records the SQL text of the statements run through a bun.DB.
type lastQuery struct {
	mu sync.Mutex
	q  []string
}

func (l *lastQuery) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (l *lastQuery) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.q = append(l.q, e.Query)
}

func (l *lastQuery) last(t *testing.T) string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.q) == 0 {
		t.Fatal("no statement was recorded")
	}
	return l.q[len(l.q)-1]
}

// TestRunLookupsTakeTheKeyIndexWithStaleStatistics: on PostgreSQL with statistics taken while the
// tables were small (this machine runs without autovacuum), the append path's lookups by run —
// the stored read-model rows and the events of the touched runs — probe the full-key index per run
// instead of walking one connector's whole history through another index. (The former shape,
// `connector_id = ? AND run_id IN (…)`, was planned as an index scan of
// idx_run_summaries_connector_order filtering every row of the connector.)
func TestRunLookupsTakeTheKeyIndexWithStaleStatistics(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	for _, s := range []string{
		`INSERT INTO run_summaries (connector_id, run_id, first_at, last_at, event_count, status_key, known_gaps, collection_facts, last_event_seq)
			SELECT 'c' || (i % 5), 'r' || i, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 1, 'succeeded', '[]', 'null', i
			FROM generate_series(1, 100) i`,
		`INSERT INTO spine_events (event_id, event_type, occurred_at, recorded_at, run_id, source_kind, source_id, content_hash)
			SELECT 'e' || i, 'run.completed', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'r' || i, 'connector', 'c' || (i % 5), 'h'
			FROM generate_series(1, 100) i`,
		"ANALYZE run_summaries", "ANALYZE spine_events",
		// The statistics above now say one connector has 20 runs; 'big' then gets 60 000.
		`INSERT INTO run_summaries (connector_id, run_id, first_at, last_at, event_count, status_key, known_gaps, collection_facts, last_event_seq)
			SELECT 'big', 'r' || i, '2026-01-01T00:00:00.000Z', to_char(i, 'FM0000000000'), 1, 'succeeded', '[]', 'null', 1000 + i
			FROM generate_series(1, 60000) i`,
		`INSERT INTO spine_events (event_id, event_type, occurred_at, recorded_at, run_id, source_kind, source_id, content_hash)
			SELECT 'big' || i, 'run.completed', to_char(i, 'FM0000000000'), '2026-01-01T00:00:00.000Z', 'r' || i, 'connector', 'big', 'h'
			FROM generate_series(1, 60000) i`,
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%.60s: %v", s, err)
		}
	}
	rec := &lastQuery{}
	traced := db.WithQueryHook(rec)
	ids := []string{"r5", "r77", "r9000", "r59999", "r3"}
	explain := func(q string) string {
		t.Helper()
		var lines []string
		if err := db.NewRaw("EXPLAIN "+q).Scan(ctx, &lines); err != nil {
			t.Fatalf("explain: %v", err)
		}
		return strings.Join(lines, "\n")
	}

	rows, err := storedRuns(ctx, traced, "big", ids)
	if err != nil || len(rows) != len(ids) {
		t.Fatalf("storedRuns: %d rows, %v", len(rows), err)
	}
	plan := explain(rec.last(t))
	if !strings.Contains(plan, "run_summaries_pkey") || strings.Contains(plan, "idx_run_summaries_connector_order") {
		t.Errorf("the stored-row lookup does not probe the primary key:\n%s", plan)
	}
	evs, err := runEvents(ctx, traced, "big", ids)
	if err != nil || len(evs) != len(ids) {
		t.Fatalf("runEvents: %d runs, %v", len(evs), err)
	}
	plan = explain(rec.last(t))
	if !strings.Contains(plan, "idx_spine_events_source_run_summary") || strings.Contains(plan, "idx_spine_events_source_recent") {
		t.Errorf("the run-events lookup does not probe the run-summary index:\n%s", plan)
	}
	if strings.Contains(plan, "Seq Scan on spine_events") {
		t.Errorf("the run-events lookup scans the log:\n%s", plan)
	}
}
