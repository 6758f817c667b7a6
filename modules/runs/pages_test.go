package runs_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

func pageIDs(p *runs.Page) []string {
	ids := make([]string, 0, len(p.Runs))
	for _, s := range p.Runs {
		ids = append(ids, s.RunID)
	}
	return ids
}

func wantIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestRunPageStatusFilterBeforeLimit: with page_size 4 and 10 runs of which only the two oldest
// succeeded, the succeeded page holds those two (SPEC §4.3: the filter applies before the limit).
func TestRunPageStatusFilterBeforeLimit(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("shop", `{"display_name":"Shop"}`)
		f.connector("other", `{"display_name":"Other"}`)
		var evs []feedEv
		for i := 0; i < 10; i++ {
			term := "run.failed"
			if i < 2 {
				term = "run.completed"
			}
			evs = append(evs, runEvents("shop", fmt.Sprintf("r%02d", i), "", time.Duration(i)*time.Hour, term, nil, nil)...)
		}
		// Another connector's newer runs, one of them with a run_id that shop also uses, and an
		// event without a derivable source: none of them belong to shop's pages.
		evs = append(evs, runEvents("other", "r05", "", 20*time.Hour, "run.completed", nil, nil)...)
		evs = append(evs, runEvents("other", "o1", "", 21*time.Hour, "run.completed", nil, nil)...)
		evs = append(evs, feedEv{"event_type": "run.completed", "occurred_at": feedAt(22 * time.Hour), "run_id": "r_nosource"})
		f.add(evs...)

		src := runs.NewPageSource(db, runs.Options{PageSize: 4}, f.clock.Now)
		ok, err := src.Read(f.ctx, runs.PageKey{ConnectorID: "shop", Status: runs.StatusSucceeded})
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "succeeded page", pageIDs(ok), []string{"r01", "r00"})
		if !ok.Exhausted {
			t.Error("succeeded page holds every succeeded run but is not marked exhausted")
		}
		for _, s := range ok.Runs {
			if s.Status != runs.StatusSucceeded {
				t.Errorf("succeeded page holds %s with status %s", s.RunID, s.Status)
			}
		}

		all, err := src.Read(f.ctx, runs.PageKey{ConnectorID: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "unfiltered page", pageIDs(all), []string{"r09", "r08", "r07", "r06"})
		if all.Exhausted {
			t.Error("unfiltered page of 4 out of 10 runs is marked exhausted")
		}

		failed, err := src.Read(f.ctx, runs.PageKey{ConnectorID: "shop", Status: runs.StatusFailed})
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "failed page", pageIDs(failed), []string{"r09", "r08", "r07", "r06"})

		// r05 of shop is folded from shop's events only.
		big, err := runs.NewPageSource(db, runs.Options{PageSize: 64}, f.clock.Now).Read(f.ctx, runs.PageKey{ConnectorID: "shop"})
		if err != nil {
			t.Fatal(err)
		}
		if len(big.Runs) != 10 || !big.Exhausted {
			t.Fatalf("page of 64: %d runs exhausted=%v, want 10 and exhausted", len(big.Runs), big.Exhausted)
		}
		for _, s := range big.Runs {
			if s.RunID == "r05" && (s.Status != runs.StatusFailed || s.EventCount != 2) {
				t.Errorf("shop r05: status %s events %d, want failed and 2 (other's r05 must not mix in)", s.Status, s.EventCount)
			}
		}
	})
}

// TestRunPageLongRun: a run with more events than one scan step still counts once, and the page
// keeps scanning until it has page_size runs.
func TestRunPageLongRun(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("shop", `{"display_name":"Shop"}`)
		var evs []feedEv
		for i := 1; i <= 5; i++ {
			evs = append(evs, runEvents("shop", fmt.Sprintf("r%d", i), "", time.Duration(i)*time.Hour, "run.completed", nil, nil)...)
		}
		evs = append(evs, feedEv{"event_type": "run.started", "occurred_at": feedAt(10 * time.Hour), "run_id": "r_big", "source_kind": "connector", "source_id": "shop"})
		for i := 0; i < 100; i++ {
			evs = append(evs, feedEv{"event_type": "run.progress", "occurred_at": feedAt(10*time.Hour + time.Duration(i+1)*time.Second),
				"run_id": "r_big", "source_kind": "connector", "source_id": "shop"})
		}
		evs = append(evs, feedEv{"event_type": "run.completed", "occurred_at": feedAt(11 * time.Hour), "run_id": "r_big", "source_kind": "connector", "source_id": "shop"})
		f.add(evs...)
		src := runs.NewPageSource(db, runs.Options{PageSize: 4}, f.clock.Now)
		for _, status := range []string{"", runs.StatusSucceeded} {
			p, err := src.Read(f.ctx, runs.PageKey{ConnectorID: "shop", Status: status})
			if err != nil {
				t.Fatal(err)
			}
			wantIDs(t, "page "+status, pageIDs(p), []string{"r_big", "r5", "r4", "r3"})
			if len(p.Runs) > 0 && p.Runs[0].EventCount != 102 {
				t.Errorf("r_big event_count = %d, want 102", p.Runs[0].EventCount)
			}
		}
	})
}

// TestRunPageWindowLimit: a connection whose latest run is older than page_size sibling runs gets
// a null last_run — the documented limit of the deep pipeline (SPEC §4.3).
func TestRunPageWindowLimit(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("amazon", amazonManifest)
		f.connection("amazon", "cin_busy", catalog.StatusActive)
		f.connection("amazon", "cin_old", catalog.StatusActive)
		f.connection("amazon", "cin_old_ok", catalog.StatusActive)
		var evs []feedEv
		evs = append(evs, runEvents("amazon", "run_old", "amazon-shopping:cin_old", 0, "run.failed", nil, nil)...)
		evs = append(evs, runEvents("amazon", "run_old_ok", "amazon-shopping:cin_old_ok", -time.Hour, "run.completed", nil, nil)...)
		for i := 1; i <= 4; i++ {
			evs = append(evs, runEvents("amazon", fmt.Sprintf("run_busy_%d", i), "amazon-shopping:cin_busy", time.Duration(i)*time.Hour, "run.failed", nil, nil)...)
		}
		f.add(evs...)
		e := f.entries()
		req := runs.Request{Entries: []catalog.Entry{e["cin_busy"], e["cin_old"], e["cin_old_ok"]}}

		got, err := runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{PageSize: 4}, f.clock.Now)).For(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if runIDOf(got["cin_busy"].LastRun) != "run_busy_4" {
			t.Errorf("cin_busy last_run = %s, want run_busy_4", runIDOf(got["cin_busy"].LastRun))
		}
		if got["cin_old"].LastRun != nil || got["cin_old"].LastSuccessfulRun != nil {
			t.Errorf("cin_old: last_run %s last_successful_run %s, want null/null outside the window",
				runIDOf(got["cin_old"].LastRun), runIDOf(got["cin_old"].LastSuccessfulRun))
		}
		// The succeeded page is read separately, so an old success is still found.
		if got["cin_old_ok"].LastRun != nil || runIDOf(got["cin_old_ok"].LastSuccessfulRun) != "run_old_ok" {
			t.Errorf("cin_old_ok: last_run %s last_successful_run %s, want null / run_old_ok",
				runIDOf(got["cin_old_ok"].LastRun), runIDOf(got["cin_old_ok"].LastSuccessfulRun))
		}

		// Control: with a window that reaches it, the old run is found.
		wide, err := runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{PageSize: 5}, f.clock.Now)).For(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if runIDOf(wide["cin_old"].LastRun) != "run_old" {
			t.Errorf("page_size 5: cin_old last_run = %s, want run_old", runIDOf(wide["cin_old"].LastRun))
		}
	})
}

// TestPageReaderReadsEachPageOnce: concurrent readers of one page share one read.
func TestPageReaderReadsEachPageOnce(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("shop", `{"display_name":"Shop"}`)
		var evs []feedEv
		for i := 0; i < 12; i++ {
			evs = append(evs, runEvents("shop", fmt.Sprintf("r%02d", i), "", time.Duration(i)*time.Hour, "run.completed", nil, nil)...)
		}
		f.add(evs...)
		src := runs.NewPageSource(db, runs.Options{PageSize: 4}, f.clock.Now)
		key := runs.PageKey{ConnectorID: "shop"}

		var once bootstrap.StatementCounter
		if _, err := src.Read(bootstrap.WithStatementCounter(f.ctx, &once), key); err != nil {
			t.Fatal(err)
		}
		if once.Count() == 0 {
			t.Fatal("statement counter saw nothing: is the hook installed?")
		}

		var shared bootstrap.StatementCounter
		ctx := bootstrap.WithStatementCounter(f.ctx, &shared)
		reader := runs.NewPageReader(src)
		pages := make([]*runs.Page, 16)
		var wg sync.WaitGroup
		for i := range pages {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				p, err := reader.Page(ctx, key)
				if err != nil {
					t.Error(err)
				}
				pages[i] = p
			}(i)
		}
		wg.Wait()
		if shared.Count() != once.Count() {
			t.Errorf("16 concurrent readers issued %d statements, one read issues %d", shared.Count(), once.Count())
		}
		for _, p := range pages {
			if p != pages[0] {
				t.Fatal("concurrent readers got different pages")
			}
		}
		wantIDs(t, "page", pageIDs(pages[0]), []string{"r11", "r10", "r09", "r08"})
		if _, err := reader.Page(ctx, runs.PageKey{ConnectorID: "shop", Status: runs.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
		if _, err := reader.Page(ctx, key); err != nil {
			t.Fatal(err)
		}
		if got := reader.Read(); len(got) != 2 || got[0] != key || got[1].Status != runs.StatusSucceeded {
			t.Errorf("pages read = %v, want the unfiltered then the succeeded page, once each", got)
		}
	})
}
