package runs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
)

// TestRunPageQueriesUseTheirIndexes checks on PostgreSQL that the two run-page statements are
// served by the required indexes of SPEC §4.9 (idx_spine_events_source_run_summary and
// idx_spine_events_source_recent), also on a database whose default collation is not bytes.
// Sequential scans are disabled on the session so that a small table cannot hide a missing or
// unusable index; with sorts disabled too, the newest-first scans must take their order from the
// index (an index whose collation differed from the ORDER BY's could not give it).
func TestRunPageQueriesUseTheirIndexes(t *testing.T) {
	t.Run("postgres", func(t *testing.T) { testRunPagePlans(t, dbtest.Postgres(t)) })
	t.Run("postgres_icu", func(t *testing.T) { testRunPagePlans(t, dbtest.PostgresICU(t)) })
}

func testRunPagePlans(t *testing.T, db *bun.DB) {
	f := newFeedFixture(t, db)
	var evs []feedEv
	for _, c := range []string{"amazon", "chase", "gmail", "slack"} {
		for i := 0; i < 250; i++ {
			evs = append(evs, runEvents(c, fmt.Sprintf("r%d", i), "", time.Duration(i)*time.Minute, "run.completed", nil,
				feedEv{"data": map[string]any{"known_gaps": []string{}}})...)
		}
	}
	// Events without a run (not in the partial indexes).
	for i := 0; i < 500; i++ {
		evs = append(evs, feedEv{"event_type": "record.changed", "occurred_at": feedAt(time.Duration(i) * time.Second),
			"source_kind": "connector", "source_id": "amazon"})
	}
	f.add(evs...)

	conn, err := db.Conn(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, s := range []string{"VACUUM ANALYZE spine_events", "SET enable_seqscan = off"} {
		if _, err := conn.ExecContext(f.ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	explain := func(q string) string {
		t.Helper()
		rows, err := conn.QueryContext(f.ctx, "EXPLAIN "+q)
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
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(lines, "\n")
	}
	cases := []struct{ query, index string }{
		{`SELECT run_id, event_seq, event_type, occurred_at, status, connection_ref, failure_reason, bs_present, bs_status,
			bs_wait_reason, bs_profile_key FROM spine_events WHERE source_kind = 'connector' AND source_id = 'amazon'
			AND run_id IN ('r1','r2') ORDER BY run_id, event_seq`, "idx_spine_events_source_run_summary"},
		// The page load as the service issues it: data of terminal events only.
		{`SELECT run_id, event_seq, event_type, occurred_at, status, connection_ref, failure_reason, bs_present, bs_status,
			bs_wait_reason, bs_profile_key, CASE WHEN event_type IN ('run.completed','run.failed','run.cancelled','run.abandoned')
			THEN data END AS data FROM spine_events WHERE source_kind = 'connector' AND source_id = 'amazon'
			AND run_id IN ('r1','r2') ORDER BY run_id, event_seq`, "idx_spine_events_source_run_summary"},
		{`SELECT run_id, occurred_at FROM spine_events WHERE source_kind = 'connector' AND source_id = 'amazon'
			AND run_id IS NOT NULL ORDER BY occurred_at DESC, run_id DESC LIMIT 512`, "idx_spine_events_source_recent"},
		// The continuation of the newest-first scan.
		{`SELECT run_id, occurred_at FROM spine_events WHERE source_kind = 'connector' AND source_id = 'amazon'
			AND run_id IS NOT NULL AND (occurred_at, run_id) < ('2026-11-20T10:00:00.000Z', 'r100')
			ORDER BY occurred_at DESC, run_id DESC LIMIT 512`, "idx_spine_events_source_recent"},
	}
	for _, c := range cases {
		plan := explain(c.query)
		if !strings.Contains(plan, c.index) {
			t.Errorf("plan does not use %s:\n%s\nquery: %s", c.index, plan, c.query)
		}
	}
	for _, s := range []string{"SET enable_sort = off", "SET enable_bitmapscan = off"} {
		if _, err := conn.ExecContext(f.ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	for _, c := range cases[2:] {
		if plan := explain(c.query); !strings.Contains(plan, c.index) || strings.Contains(plan, "Sort") {
			t.Errorf("the newest-first scan does not take its order from %s:\n%s\nquery: %s", c.index, plan, c.query)
		}
	}
}

// TestHeadStatementsStopAtTheFirstRun checks on PostgreSQL that the two head statements of every
// append (recomputeHeads, as the service issues them) read a connection's runs only through a
// LIMIT 1 probe: an EXISTS on run_summaries became a semi or anti join over a bitmap scan that
// read every index entry of the connection, a cost that grew with its history (7 ms per
// statement at 37 000 runs). Bitmap scans are disabled neither here nor in the service.
func TestHeadStatementsStopAtTheFirstRun(t *testing.T) {
	db := dbtest.Postgres(t)
	f := newFeedFixture(t, db)
	f.connector("gmail", `{"display_name":"Gmail"}`)
	f.connection("gmail", "cin_g", "active")
	var evs []feedEv
	for i := 0; i < 300; i++ {
		evs = append(evs, runEvents("gmail", fmt.Sprintf("r%d", i), "", time.Duration(i)*time.Minute, "run.completed",
			feedEv{"connection_id": "cin_g"}, nil)...)
	}
	f.add(evs...)
	if _, err := db.ExecContext(f.ctx, "ANALYZE run_summaries"); err != nil {
		t.Fatal(err)
	}
	texts := &statementTexts{}
	db.AddQueryHook(texts)
	f.add(runEvents("gmail", "r_last", "", 400*time.Minute, "run.completed", feedEv{"connection_id": "cin_g"}, nil)...)
	var heads []string
	texts.mu.Lock()
	for _, joined := range texts.q { // the tail statements go as one (bootstrap.ExecJoined)
		for _, q := range strings.Split(joined, ";\n") {
			if strings.Contains(q, "INTO run_heads") || strings.Contains(q, `DELETE FROM "run_heads"`) {
				heads = append(heads, q)
			}
		}
	}
	texts.mu.Unlock()
	if len(heads) != 2 {
		t.Fatalf("want the upsert and the delete of the heads, got %d statements: %q", len(heads), heads)
	}
	for _, q := range heads {
		rows, err := db.QueryContext(f.ctx, "EXPLAIN "+q)
		if err != nil {
			t.Fatalf("explain: %v\n%s", err, q)
		}
		var plan []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, l)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		for _, bad := range []string{"Semi Join", "Anti Join", "Bitmap Heap Scan on run_summaries", "Seq Scan on run_summaries"} {
			if strings.Contains(text, bad) {
				t.Errorf("the plan reads a connection's runs beyond the first (%s):\n%s\nquery: %s", bad, text, q)
			}
		}
		if !strings.Contains(text, "Limit") {
			t.Errorf("no LIMIT 1 probe in the plan:\n%s\nquery: %s", text, q)
		}
	}
}
