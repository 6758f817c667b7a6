package runs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

// consoleWorld seeds n gmail connections; connection i gets 3+i completed runs one hour apart
// (ending at feedT0 + 10 h), and connection 0 also a failed run and a started run without end.
func consoleWorld(t *testing.T, db *bun.DB, n int) (*feedFixture, []string) {
	f := newFeedFixture(t, db)
	f.connector("gmail", `{"display_name":"Gmail"}`)
	var ids []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("cin_g%d", i)
		ids = append(ids, id)
		f.connection("gmail", id, catalog.StatusActive)
		for r := 0; r < 3+i; r++ {
			run := fmt.Sprintf("run_%s_%02d", id, r)
			at := feedT0.Add(10*time.Hour - time.Duration(r)*time.Hour - time.Duration(i)*time.Minute)
			f.add(feedEv{"event_id": run, "event_type": "run.completed", "occurred_at": at.Format(time.RFC3339Nano),
				"run_id": run, "connection_id": id, "status": "succeeded"})
		}
	}
	f.add(feedEv{"event_id": "fail", "event_type": "run.failed", "occurred_at": feedAt(11 * time.Hour), "run_id": "run_fail",
		"connection_id": ids[0], "status": "failed", "data": map[string]any{"reason": "login_required"}},
		feedEv{"event_id": "st", "event_type": "run.started", "occurred_at": feedAt(12 * time.Hour), "run_id": "run_started",
			"connection_id": ids[0]})
	return f, ids
}

func TestConsoleHistoryReads(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f, ids := consoleWorld(t, db, 3)
		f.clock.Set(feedT0.Add(12*time.Hour + time.Minute)) // run_started is in progress
		h := runs.ConsoleHistoryOf(runs.NewReadModelEvidence(runs.NewReadModel(db, runs.Options{}, f.clock.Now)))
		if h == nil {
			t.Fatal("no console history over the read model")
		}
		if runs.ConsoleHistoryOf(runs.Shallow{}) != nil {
			t.Error("console history over the shallow evidence")
		}
		ctx := context.Background()

		recent, err := h.Recent(ctx, ids, 4)
		if err != nil {
			t.Fatal(err)
		}
		got := func(list []runs.Summary) string {
			s := ""
			for _, r := range list {
				s += r.RunID + ":" + r.Status + " "
			}
			return s
		}
		if g, want := got(recent[ids[0]]), "run_started:in_progress run_fail:failed run_cin_g0_00:succeeded run_cin_g0_01:succeeded "; g != want {
			t.Errorf("strip of %s = %q, want %q", ids[0], g, want)
		}
		if n := len(recent[ids[2]]); n != 4 {
			t.Errorf("strip of %s has %d runs, want 4", ids[2], n)
		}

		// The timeline merges connections in run order and pages with a keyset.
		page, err := h.Timeline(ctx, []string{"gmail"}, ids, "", nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		var order string
		for _, r := range page {
			order += r.ConnectionID + "/" + r.RunID + " "
		}
		want := "cin_g0/run_started cin_g0/run_fail cin_g0/run_cin_g0_00 cin_g1/run_cin_g1_00 cin_g2/run_cin_g2_00 "
		if order != want {
			t.Errorf("timeline = %q, want %q (4 runs and the one that says there are more)", order, want)
		}
		k := runs.KeyOf(&page[3].Summary)
		next, err := h.Timeline(ctx, []string{"gmail"}, ids, "", &k, 2)
		if err != nil || len(next) != 3 || next[0].RunID != "run_cin_g2_00" || next[1].RunID != "run_cin_g0_01" {
			t.Errorf("next page after %v = %v (%v)", k, next, err)
		}
		only, err := h.Timeline(ctx, []string{"gmail"}, ids[1:2], "", nil, 50)
		if err != nil || len(only) != 4 {
			t.Errorf("timeline of %s alone = %d runs (%v), want its 4", ids[1], len(only), err)
		}
		for _, r := range only {
			if r.ConnectionID != ids[1] {
				t.Errorf("timeline of %s lists %s's run %s", ids[1], r.ConnectionID, r.RunID)
			}
		}
		failed, err := h.Timeline(ctx, []string{"gmail"}, ids, runs.StatusFailed, nil, 10)
		if err != nil || len(failed) != 1 || failed[0].RunID != "run_fail" {
			t.Errorf("failed timeline = %v (%v), want run_fail", failed, err)
		}
		// Later the started run is orphaned: a failed run, found by the failed filter.
		f.clock.Set(feedT0.Add(14 * time.Hour))
		failed, err = h.Timeline(ctx, []string{"gmail"}, ids, runs.StatusFailed, nil, 10)
		if err != nil || len(failed) != 2 || failed[0].RunID != "run_started" || failed[0].FailureReason == nil {
			t.Errorf("failed timeline after stale_after = %v (%v), want the orphaned run first", failed, err)
		}

		running, err := h.Timeline(ctx, []string{"gmail"}, ids, runs.StatusInProgress, nil, 10)
		if err != nil || len(running) != 0 {
			t.Errorf("in-progress timeline after stale_after = %v (%v), want none", running, err)
		}
		f.clock.Set(feedT0.Add(12*time.Hour + time.Minute))
		running, err = h.Timeline(ctx, []string{"gmail"}, ids, runs.StatusInProgress, nil, 10)
		if err != nil || len(running) != 1 || running[0].RunID != "run_started" {
			t.Errorf("in-progress timeline = %v (%v), want run_started", running, err)
		}
		f.clock.Set(feedT0.Add(14 * time.Hour))

		days, total, err := h.Daily(ctx, ids[0], feedT0.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 || len(days) != 1 || days[0].Day != feedT0.Format("2006-01-02") ||
			days[0].ByStatus["succeeded"] != 3 || days[0].ByStatus["failed"] != 2 {
			t.Errorf("daily of %s = %v total %d, want one day with 3 succeeded and 2 failed (one orphaned), total 5", ids[0], days, total)
		}
		days, total, err = h.Daily(ctx, ids[0], feedT0.Add(48*time.Hour))
		if err != nil || total != 5 || len(days) != 0 {
			t.Errorf("daily after the runs = %v total %d (%v), want no day and total 5", days, total, err)
		}
	})
}

// TestConsoleHistoryStatementsAreConstant: every console read is one statement for 2 or 12
// connections.
func TestConsoleHistoryStatementsAreConstant(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f, ids := consoleWorld(t, db, 12)
		h := runs.ConsoleHistoryOf(runs.NewReadModelEvidence(runs.NewReadModel(db, runs.Options{}, f.clock.Now)))
		for _, n := range []int{2, 12} {
			reads := map[string]func(ctx context.Context) error{
				"recent": func(ctx context.Context) error { _, err := h.Recent(ctx, ids[:n], 24); return err },
				"timeline-rare": func(ctx context.Context) error {
					_, err := h.Timeline(ctx, []string{"gmail"}, ids[:n], runs.StatusCancelled, nil, 50)
					return err
				},
				"timeline": func(ctx context.Context) error {
					_, err := h.Timeline(ctx, []string{"gmail"}, ids[:n], runs.StatusSucceeded, nil, 50)
					return err
				},
				"daily": func(ctx context.Context) error { _, _, err := h.Daily(ctx, ids[0], feedT0); return err },
			}
			for name, read := range reads {
				var c bootstrap.StatementCounter
				if err := read(bootstrap.WithStatementCounter(context.Background(), &c)); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if c.Count() != 1 {
					t.Errorf("%s over %d connections: %d statements, want 1", name, n, c.Count())
				}
			}
		}
	})
}
