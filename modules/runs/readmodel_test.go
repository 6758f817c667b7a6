package runs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
)

// rmWorld is a randomly generated owner: connectors, siblings, draft shells, connections created
// after their runs, browser and non-browser runs.
type rmWorld struct {
	rng     *rand.Rand
	now     time.Time
	conns   map[string][]string // connector → connection ids (including not-yet-created ones)
	later   map[string]bool     // connections created after the events
	drafts  map[string]bool
	keys    map[string]string // connector → manifest profile key ("" for none)
	events  []map[string]any
	nextRun int
}

func newWorld(seed int64) *rmWorld {
	w := &rmWorld{rng: rand.New(rand.NewSource(seed)), now: feedT0.Add(48 * time.Hour),
		conns: map[string][]string{}, later: map[string]bool{}, drafts: map[string]bool{},
		keys: map[string]string{"amazon": "amazon-shopping", "chase": "", "gmail": ""}}
	for _, c := range []string{"amazon", "chase", "gmail"} {
		n := 2 + w.rng.Intn(3)
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("cin_%s_%d", c, i)
			w.conns[c] = append(w.conns[c], id)
			switch w.rng.Intn(6) {
			case 0:
				w.later[id] = true
			case 1:
				w.drafts[id] = true
			}
		}
		if w.rng.Intn(3) == 0 { // a legacy connection whose id is the connector id
			w.conns[c] = append(w.conns[c], c)
		}
	}
	return w
}

func (w *rmWorld) expectedKey(connector, id string) string {
	base := connector
	if k := w.keys[connector]; k != "" {
		base = k
	}
	if id == connector {
		return base
	}
	return base + ":" + id
}

// run appends the events of one random run.
func (w *rmWorld) run() {
	connectors := []string{"amazon", "chase", "gmail"}
	c := connectors[w.rng.Intn(len(connectors))]
	owner := w.conns[c][w.rng.Intn(len(w.conns[c]))]
	w.nextRun++
	runID := fmt.Sprintf("run_%04d", w.nextRun)
	if w.rng.Intn(10) == 0 { // run ids repeat across connectors: still separate runs
		runID = fmt.Sprintf("run_%04d", 1+w.rng.Intn(w.nextRun))
	}
	browser := c != "gmail" && w.rng.Intn(4) != 0
	start := feedT0.Add(time.Duration(w.rng.Intn(47*60)) * time.Minute)
	evidence := func(e map[string]any, data map[string]any) {
		switch {
		case browser:
			key := w.expectedKey(c, owner)
			switch w.rng.Intn(8) {
			case 0:
				key = owner // the bare connection id: never a match
			case 1:
				key = w.expectedKey(c, w.conns[c][w.rng.Intn(len(w.conns[c]))])
			}
			data["browser_surface"] = map[string]any{"pending_run_id": runID, "browser_surface_profile_key": key,
				"browser_surface_status": []string{"leased", "surface_failed", "waiting_for_browser_surface"}[w.rng.Intn(3)]}
			if w.rng.Intn(3) == 0 {
				data["browser_surface"].(map[string]any)["browser_surface_wait_reason"] = "capacity_full"
			}
		default:
			switch w.rng.Intn(5) {
			case 0:
				e["connection_id"] = owner
			case 1:
				e["connector_instance_id"] = owner
			case 2:
				data["connection_id"] = owner
			case 3: // no evidence at all
			default:
				e["connection_id"] = owner
			}
		}
	}
	types := []string{"run.started", "run.progress", "run.progress", "run.completed", "run.failed", "run.cancelled",
		"run.abandoned", "run.browser_surface_requested", "run.browser_surface_failed"}
	statuses := []string{"", "running", "failed", "rejected", "succeeded", "unknown", "surface_failed", "waiting_for_browser_surface"}
	n := 1 + w.rng.Intn(6)
	for i := 0; i < n; i++ {
		data := map[string]any{}
		e := map[string]any{"event_id": fmt.Sprintf("%s_%s_%d_%d", c, runID, w.nextRun, i), "event_type": types[w.rng.Intn(len(types))],
			"occurred_at": start.Add(time.Duration(w.rng.Intn(7200)) * time.Second).Format(time.RFC3339Nano),
			"run_id":      runID, "source_kind": "connector", "source_id": c}
		if s := statuses[w.rng.Intn(len(statuses))]; s != "" {
			e["status"] = s
		}
		if w.rng.Intn(2) == 0 {
			evidence(e, data)
		}
		if w.rng.Intn(3) == 0 {
			data["reason"] = []string{"login_required", "", "rate_limited"}[w.rng.Intn(3)]
		}
		if e["event_type"] == "run.completed" && w.rng.Intn(2) == 0 {
			data["known_gaps"] = []string{"returns"}
			data["collection_facts"] = map[string]any{"seen": w.rng.Intn(100)}
		}
		if len(data) > 0 {
			e["data"] = data
		}
		w.events = append(w.events, e)
	}
}

func parseAll(t *testing.T, evs []map[string]any) []*runs.Event {
	t.Helper()
	return runstest.Parse(t, evs...)
}

func summaryJSON(s *runs.Summary) string {
	if s == nil {
		return "null"
	}
	b, _ := json.Marshal(s)
	ref := ""
	if s.ConnectionRef != nil {
		ref = *s.ConnectionRef
	}
	return string(b) + " ref=" + ref
}

// TestReadModelEqualsSpineFold is the property test of SPEC §4.8: over random event streams
// (siblings, drafts, late connections, duplicates, out-of-order arrival across batches) the
// read model's evidence equals the spine fold with an unlimited window, for every connection.
func TestReadModelEqualsSpineFold(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		for seed := int64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { checkEquivalence(t, db, seed) })
		}
	})
}

func checkEquivalence(t *testing.T, db *bun.DB, seed int64) {
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "DELETE FROM run_heads; DELETE FROM run_summaries; DELETE FROM read_model_state; DELETE FROM spine_events; DELETE FROM connections; DELETE FROM connectors"); err != nil {
		// SQLite's driver runs one statement per Exec: clear table by table.
		for _, tbl := range []string{"run_heads", "run_summaries", "read_model_state", "spine_events", "connections", "connectors"} {
			if _, err := db.ExecContext(ctx, "DELETE FROM "+tbl); err != nil {
				t.Fatal(err)
			}
		}
	}
	w := newWorld(seed)
	clock := func() time.Time { return w.now }
	o := runs.Options{PageSize: 1 << 20, StaleAfter: 30 * time.Minute}
	rm := runs.NewReadModel(db, o, clock)
	cat := catalog.NewStore(db, clock).WithHook(rm)
	ing := runs.NewIngester(db, clock, rm)
	for _, c := range []string{"amazon", "chase", "gmail"} {
		manifest := fmt.Sprintf(`{"display_name":%q}`, c)
		if k := w.keys[c]; k != "" {
			manifest = fmt.Sprintf(`{"display_name":%q,"capabilities":{"browser_surface":{"profile_key":%q}}}`, c, k)
		}
		m, _ := catalog.ParseManifest([]byte(manifest))
		if _, _, err := cat.PutConnector(ctx, c, m); err != nil {
			t.Fatal(err)
		}
	}
	create := func(late bool) {
		for c, ids := range w.conns {
			for _, id := range ids {
				if w.later[id] != late {
					continue
				}
				status := catalog.StatusActive
				if w.drafts[id] {
					status = catalog.StatusDraft
				}
				if _, _, err := cat.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: c, ConnectionID: id,
					Status: status, SourceKind: "account", SourceBindingKey: id}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	create(false)
	for i := 0; i < 120; i++ {
		w.run()
	}
	// Out-of-order arrival: shuffle all events, post them in random batches, re-post some.
	w.rng.Shuffle(len(w.events), func(i, j int) { w.events[i], w.events[j] = w.events[j], w.events[i] })
	for i := 0; i < len(w.events); {
		n := 1 + w.rng.Intn(40)
		batch := w.events[i:min(i+n, len(w.events))]
		if _, err := ing.Append(ctx, parseAll(t, batch)); err != nil {
			t.Fatal(err)
		}
		if w.rng.Intn(4) == 0 {
			if res, err := ing.Append(ctx, parseAll(t, batch)); err != nil || res.Duplicates != len(batch) {
				t.Fatalf("re-post: %+v %v", res, err)
			}
		}
		i += n
	}
	create(true) // connections created after their runs were stored

	entries := runstest.AllEntries(t, ctx, db, cat)
	spine, err := runs.NewSpineEvidence(runs.NewPageSource(db, o, clock)).For(ctx, runs.Request{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	model, err := runs.NewReadModelEvidence(rm).For(ctx, runs.Request{Entries: entries, History: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, e := range entries {
		id := e.Connection.ConnectionID
		s, m := spine[id], model[id]
		if got, want := summaryJSON(m.LastRun), summaryJSON(s.LastRun); got != want {
			t.Errorf("%s last_run:\n read model %s\n spine fold %s", id, got, want)
		}
		if got, want := summaryJSON(m.LastSuccessfulRun), summaryJSON(s.LastSuccessfulRun); got != want {
			t.Errorf("%s last_successful_run:\n read model %s\n spine fold %s", id, got, want)
		}
		if len(m.Runs) != len(s.Runs) {
			t.Errorf("%s: read model lists %d runs, spine fold %d", id, len(m.Runs), len(s.Runs))
		} else {
			for i := range m.Runs {
				if a, b := summaryJSON(&m.Runs[i]), summaryJSON(&s.Runs[i]); a != b {
					t.Errorf("%s run %d:\n read model %s\n spine fold %s", id, i, a, b)
				}
			}
		}
		if s.LastRun != nil {
			matched++
		}
	}
	if matched < 3 {
		t.Errorf("only %d connections have runs: the generator does not exercise attribution", matched)
	}
}

// TestReadModelHasNoPageWindow: a connection whose only run is older than a page of sibling
// runs gets null from the spine pipeline (its documented window) and its run from the read model.
func TestReadModelHasNoPageWindow(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("amazon", `{"display_name":"Amazon","capabilities":{"browser_surface":{"profile_key":"amz"}}}`)
		f.connection("amazon", "cin_old", catalog.StatusActive)
		f.connection("amazon", "cin_busy", catalog.StatusActive)
		ev := func(run, conn string, at time.Time) feedEv {
			return feedEv{"event_id": run, "event_type": "run.completed", "occurred_at": at.Format(time.RFC3339Nano),
				"run_id": run, "source_kind": "connector", "source_id": "amazon",
				"data": map[string]any{"browser_surface": map[string]any{"browser_surface_profile_key": "amz:" + conn}}}
		}
		f.add(ev("run_old", "cin_old", feedT0))
		for i := 0; i < 70; i++ {
			f.add(ev(fmt.Sprintf("run_busy_%02d", i), "cin_busy", feedT0.Add(time.Duration(i+1)*time.Minute)))
		}
		o := runs.Options{PageSize: 64}
		e, err := f.cat.Connection(f.ctx, "cin_old")
		if err != nil {
			t.Fatal(err)
		}
		req := runs.Request{Entries: []catalog.Entry{*e}}
		spine, err := runs.NewSpineEvidence(runs.NewPageSource(db, o, f.clock.Now)).For(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if spine["cin_old"].LastRun != nil {
			t.Errorf("spine pipeline found %s beyond its 64-run window", spine["cin_old"].LastRun.RunID)
		}
		model, err := runs.NewReadModelEvidence(runs.NewReadModel(db, o, f.clock.Now)).For(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := model["cin_old"].LastRun; got == nil || got.RunID != "run_old" {
			t.Errorf("read model last_run = %v, want run_old", got)
		}
	})
}

// TestRebuildRestoresReadModel breaks the model on purpose and checks that Rebuild restores it
// and says what it fixed.
func TestRebuildRestoresReadModel(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("gmail", `{"display_name":"Gmail"}`)
		f.connection("gmail", "cin_a", catalog.StatusActive)
		f.connection("gmail", "cin_b", catalog.StatusActive)
		for i, conn := range []string{"cin_a", "cin_b", "cin_a"} {
			f.add(feedEv{"event_id": fmt.Sprint("e", i), "event_type": "run.completed", "run_id": fmt.Sprint("r", i),
				"occurred_at": feedT0.Add(time.Duration(i) * time.Minute).Format(time.RFC3339Nano), "connection_id": conn})
		}
		rm := runs.NewReadModel(db, runs.Options{}, f.clock.Now)
		read := func() map[string]*runs.ConnectionEvidence {
			var entries []catalog.Entry
			for _, id := range []string{"cin_a", "cin_b"} {
				e, err := f.cat.Connection(f.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, *e)
			}
			ev, err := runs.NewReadModelEvidence(rm).For(f.ctx, runs.Request{Entries: entries})
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		before := read()
		if before["cin_a"].LastRun == nil || before["cin_a"].LastRun.RunID != "r2" {
			t.Fatalf("cin_a last_run before breaking: %v", before["cin_a"].LastRun)
		}
		// Break it: drop a head row and a run row, corrupt another row.
		for _, q := range []string{
			"DELETE FROM run_heads WHERE connection_id = 'cin_a'",
			"DELETE FROM run_summaries WHERE run_id = 'r1'",
			"UPDATE run_summaries SET status_key = 'failed' WHERE run_id = 'r0'",
		} {
			if _, err := db.ExecContext(f.ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if read()["cin_a"].LastRun != nil {
			t.Fatal("deleting the head row did not break the read model")
		}
		rep, err := rm.Rebuild(f.ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.RunsInserted != 1 || rep.RunsChanged != 1 || rep.RunsScanned != 3 {
			t.Errorf("rebuild report %+v, want 3 scanned, 1 inserted (r1), 1 changed (r0)", rep)
		}
		fixed := map[string]bool{}
		for _, id := range rep.FixedHeadIDs {
			fixed[id] = true
		}
		// cin_b's head row still named r1, whose run row came back: only cin_a's head was fixed.
		if len(rep.FixedHeadIDs) != 1 || !fixed["cin_a"] {
			t.Errorf("fixed heads %v, want [cin_a]", rep.FixedHeadIDs)
		}
		after := read()
		for _, id := range []string{"cin_a", "cin_b"} {
			if summaryJSON(after[id].LastRun) != summaryJSON(before[id].LastRun) ||
				summaryJSON(after[id].LastSuccessfulRun) != summaryJSON(before[id].LastSuccessfulRun) {
				t.Errorf("%s after rebuild: %s, want %s", id, summaryJSON(after[id].LastRun), summaryJSON(before[id].LastRun))
			}
		}
		again, err := rm.Rebuild(f.ctx, db, nil)
		if err != nil || again.RunsInserted+again.RunsChanged+again.RunsRemoved+again.HeadsFixed != 0 {
			t.Errorf("a second rebuild changed something: %+v %v", again, err)
		}
	})
}

// compareWithSpine checks the read model's heads against the spine fold for the given connections.
func compareWithSpine(t *testing.T, db *bun.DB, rm *runs.ReadModel, clock func() time.Time, entries []catalog.Entry) {
	t.Helper()
	ctx := context.Background()
	spine, err := runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{PageSize: 1 << 20}, clock)).For(ctx, runs.Request{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	model, err := runs.NewReadModelEvidence(rm).For(ctx, runs.Request{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		id := e.Connection.ConnectionID
		if a, b := summaryJSON(model[id].LastRun), summaryJSON(spine[id].LastRun); a != b {
			t.Errorf("%s last_run: read model %s, spine %s", id, a, b)
		}
		if a, b := summaryJSON(model[id].LastSuccessfulRun), summaryJSON(spine[id].LastSuccessfulRun); a != b {
			t.Errorf("%s last_successful_run: read model %s, spine %s", id, a, b)
		}
	}
}

// TestCatchUpAndProfileKeyChange: events stored while the model was not maintained are caught up
// from the log; changing a connector's profile key re-attributes its runs in the same write.
func TestCatchUpAndProfileKeyChange(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		clock := func() time.Time { return feedT0.Add(48 * time.Hour) }
		rm := runs.NewReadModel(db, runs.Options{}, clock)
		cat := catalog.NewStore(db, clock).WithHook(rm)
		m, _ := catalog.ParseManifest([]byte(`{"display_name":"Amazon","capabilities":{"browser_surface":{"profile_key":"old-key"}}}`))
		if _, _, err := cat.PutConnector(ctx, "amazon", m); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"cin_a", "cin_b"} {
			if _, _, err := cat.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: "amazon", ConnectionID: id,
				Status: "active", SourceKind: "browser_collector", SourceBindingKey: id}); err != nil {
				t.Fatal(err)
			}
		}
		var evs []map[string]any
		for i, key := range []string{"old-key:cin_a", "new-key:cin_b", "new-key:cin_a", "old-key:cin_b"} {
			evs = append(evs, map[string]any{"event_id": fmt.Sprint("e", i), "event_type": "run.completed",
				"run_id": fmt.Sprint("r", i), "source_kind": "connector", "source_id": "amazon",
				"occurred_at": feedT0.Add(time.Duration(i) * time.Hour).Format(time.RFC3339Nano),
				"data":        map[string]any{"browser_surface": map[string]any{"browser_surface_profile_key": key}}})
		}
		// Stored without the model (runs.evidence=spine): nothing in it yet.
		if _, err := runs.NewIngester(db, clock, nil).Append(ctx, parseAll(t, evs)); err != nil {
			t.Fatal(err)
		}
		entries := runstest.AllEntries(t, ctx, db, cat)
		if ev, _ := runs.NewReadModelEvidence(rm).For(ctx, runs.Request{Entries: entries}); ev["cin_a"].LastRun != nil {
			t.Fatal("the model has a run before catching up")
		}
		n, err := rm.CatchUp(ctx, db)
		if err != nil || n == 0 {
			t.Fatalf("catch-up: %d events, %v", n, err)
		}
		compareWithSpine(t, db, rm, clock, entries)
		if ev, _ := runs.NewReadModelEvidence(rm).For(ctx, runs.Request{Entries: entries}); lastRunID(ev["cin_a"].LastRun) != "r0" {
			t.Errorf("cin_a with old-key: last run %q, want r0", lastRunID(ev["cin_a"].LastRun))
		}
		m2, _ := catalog.ParseManifest([]byte(`{"display_name":"Amazon","capabilities":{"browser_surface":{"profile_key":"new-key"}}}`))
		if _, _, err := cat.PutConnector(ctx, "amazon", m2); err != nil {
			t.Fatal(err)
		}
		entries = runstest.AllEntries(t, ctx, db, cat)
		compareWithSpine(t, db, rm, clock, entries)
		if ev, _ := runs.NewReadModelEvidence(rm).For(ctx, runs.Request{Entries: entries}); lastRunID(ev["cin_a"].LastRun) != "r2" || lastRunID(ev["cin_b"].LastRun) != "r1" {
			t.Errorf("after the key change: cin_a %q, cin_b %q, want r2 and r1", lastRunID(ev["cin_a"].LastRun), lastRunID(ev["cin_b"].LastRun))
		}
	})
}

func lastRunID(s *runs.Summary) string {
	if s == nil {
		return ""
	}
	return s.RunID
}
