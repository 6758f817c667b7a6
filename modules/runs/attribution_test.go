package runs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
)

const shopManifest = `{"display_name":"Shop","capabilities":{"browser_surface":{"profile_key":"shop-web"}}}`

// surface is a browser-surface event of run id carrying data.browser_surface (key "\x00": an
// object without browser_surface_profile_key).
func surface(runID, key string, at time.Duration, extra feedEv) feedEv {
	bs := map[string]any{"browser_surface_status": "leased"}
	if key != "\x00" {
		bs["browser_surface_profile_key"] = key
	}
	e := feedEv{"event_type": "run.browser_surface_leased", "occurred_at": feedAt(at), "run_id": runID, "status": "leased",
		"source_kind": "connector", "source_id": "shop", "data": map[string]any{"browser_surface": bs}}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

// plain is a run event of shop with the given extra fields.
func plain(runID, typ string, at time.Duration, extra feedEv) feedEv {
	e := feedEv{"event_type": typ, "occurred_at": feedAt(at), "run_id": runID, "source_kind": "connector", "source_id": "shop"}
	for k, v := range extra {
		if v == nil {
			delete(e, k)
			continue
		}
		e[k] = v
	}
	return e
}

// TestConnectionEvidenceRules pins the rules for a run's connection evidence that SPEC §4.1/§4.2
// leave open, with both evidence implementations:
//   - different events of one run naming different connections: the first by event_seq decides
//     (never the earliest occurred_at), and later ids are ignored;
//   - on one event, top-level connector_instance_id/connection_id beat data's, and inside data
//     connector_instance_id beats connection_id (the top-level pair must agree; data's need not);
//   - an empty profile key counts as absent (the explicit id decides); a blank one ("  ") is a
//     key and matches nothing;
//   - the profile key is the latest browser_surface object's: a later object without a key
//     leaves the run without one;
//   - a source-less event naming a connection that does not exist yet is stored without a source
//     and is never attributed, not even once the connection is created (a sourced run naming it
//     is).
func TestConnectionEvidenceRules(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("shop", shopManifest)
		f.connection("shop", "cin_a", catalog.StatusActive)
		f.connection("shop", "cin_b", catalog.StatusActive)
		m := time.Minute
		f.add(
			plain("r_a_then_b", "run.started", 1*m, feedEv{"connection_id": "cin_a"}),
			plain("r_a_then_b", "run.completed", 2*m, feedEv{"connector_instance_id": "cin_b"}),
			plain("r_b_first_in_seq", "run.started", 20*m, feedEv{"connector_instance_id": "cin_b"}),
			plain("r_top_beats_data", "run.completed", 4*m, feedEv{"connection_id": "cin_a", "data": map[string]any{"connection_id": "cin_b"}}),
			plain("r_data_instance_first", "run.completed", 5*m, feedEv{"data": map[string]any{"connector_instance_id": "cin_b", "connection_id": "cin_a"}}),
			surface("r_empty_key", "", 6*m, feedEv{"connection_id": "cin_a"}),
			surface("r_blank_key", "  ", 7*m, feedEv{"connection_id": "cin_a"}),
			surface("r_key_cleared", "shop-web:cin_b", 8*m, nil),
			surface("r_key_cleared", "\x00", 9*m, feedEv{"connection_id": "cin_a"}),
			plain("r_sourced_later", "run.completed", 10*m, feedEv{"connection_id": "cin_later"}),
			plain("r_sourceless_later", "run.completed", 11*m, feedEv{"source_kind": nil, "source_id": nil, "connection_id": "cin_later"}),
		)
		// A later batch whose event is older by occurred_at still comes later by event_seq.
		f.add(plain("r_b_first_in_seq", "run.completed", 3*m, feedEv{"connection_id": "cin_a"}))

		var source struct {
			Kind *string `bun:"source_kind"`
			ID   *string `bun:"source_id"`
		}
		if err := db.NewSelect().Table("spine_events").Column("source_kind", "source_id").Where("run_id = 'r_sourceless_later'").Scan(f.ctx, &source); err != nil {
			t.Fatal(err)
		}
		if source.Kind != nil || source.ID != nil {
			t.Fatalf("a source-less event naming a connection that does not exist got source %v/%v", source.Kind, source.ID)
		}
		f.connection("shop", "cin_later", catalog.StatusActive)

		want := map[string][]string{
			"cin_a":     {"r_key_cleared", "r_empty_key", "r_top_beats_data", "r_a_then_b"},
			"cin_b":     {"r_b_first_in_seq", "r_data_instance_first"},
			"cin_later": {"r_sourced_later"},
		}
		rm := runs.NewReadModel(db, runs.Options{}, f.clock.Now)
		for name, ev := range map[string]runs.Evidence{
			"spine":      runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{}, f.clock.Now)),
			"read_model": runs.NewReadModelEvidence(rm),
		} {
			entries := f.entries()
			req := runs.Request{History: runs.HistoryPerConnection, Trail: true}
			for _, id := range []string{"cin_a", "cin_b", "cin_later"} {
				req.Entries = append(req.Entries, entries[id])
			}
			got, err := ev.For(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for id, runIDs := range want {
				ids := []string{}
				for _, s := range got[id].Runs {
					ids = append(ids, s.RunID)
				}
				if !reflect.DeepEqual(ids, runIDs) {
					t.Errorf("%s: runs of %s = %v, want %v", name, id, ids, runIDs)
				}
			}
			rules := map[string]runs.Rule{}
			for _, c := range got["cin_a"].Candidates {
				rules[c.RunID] = c.Rule
			}
			for run, rule := range map[string]runs.Rule{"r_blank_key": runs.RuleProfileKeyMismatch, "r_empty_key": runs.RuleExplicitIDMatch,
				"r_b_first_in_seq": runs.RuleExplicitIDMismatch, "r_key_cleared": runs.RuleExplicitIDMatch} {
				if rules[run] != rule {
					t.Errorf("%s: cin_a candidate %s rule %q, want %q", name, run, rules[run], rule)
				}
			}
			if _, ok := rules["r_sourceless_later"]; ok {
				t.Errorf("%s: a source-less run is a candidate of a shop connection", name)
			}
		}
		compareWithSpine(t, db, rm, f.clock.Now, runstest.AllEntries(t, f.ctx, db, f.cat))
	})
}

// TestAppendReportsUnattributedRuns: the ingest answer counts the runs the batch touched that
// belong to no connection afterwards and shows the first five in batch order, with the evidence
// each carried and why it matched nothing; runs attributed (now, or by a connection created
// since) are not reported, nor provider_native runs. Without a read model the report is nil.
func TestAppendReportsUnattributedRuns(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("shop", shopManifest)
		f.connection("shop", "cin_a", catalog.StatusActive)
		m := time.Minute
		batch1 := []feedEv{
			surface("r_wrong_base", "shop:cin_a", 1*m, nil),
			plain("r_unknown", "run.started", 2*m, feedEv{"connection_id": "cin_nope"}),
			plain("r_nothing", "run.started", 3*m, nil),
			surface("r_right", "shop-web:cin_a", 4*m, nil),
			plain("r_sourceless", "run.started", 5*m, feedEv{"source_kind": nil, "source_id": nil, "connection_id": "cin_nope2"}),
			plain("r_native", "run.started", 6*m, feedEv{"source_kind": "provider_native", "source_id": "shop"}),
			plain("r_other_connector", "run.started", 7*m, feedEv{"source_id": "ghost", "connection_id": "cin_a"}),
			plain("r_derived", "run.started", 8*m, feedEv{"source_kind": nil, "source_id": nil, "connection_id": "cin_a"}),
			surface("r_wrong_base", "shop:cin_a", 9*m, nil),
		}
		for i := 0; i < 3; i++ {
			batch1 = append(batch1, plain(fmt.Sprintf("r_more_%d", i), "run.started", time.Duration(10+i)*m, nil))
		}
		res, err := f.ing.Append(f.ctx, runstest.Parse(t, batch1...))
		if err != nil {
			t.Fatal(err)
		}
		str := func(s string) *string { return &s }
		wantExamples := []runs.UnattributedRun{
			{RunID: "r_wrong_base", ConnectorID: str("shop"), ProfileKey: str("shop:cin_a"), ExpectedProfileKey: str("shop-web:cin_a"), Reason: runs.UnattributedNoMatchingKey},
			{RunID: "r_unknown", ConnectorID: str("shop"), ConnectionID: str("cin_nope"), Reason: runs.UnattributedUnknownConnection},
			{RunID: "r_nothing", ConnectorID: str("shop"), Reason: runs.UnattributedNoEvidence},
			{RunID: "r_sourceless", ConnectionID: str("cin_nope2"), Reason: runs.UnattributedUnknownConnection},
			{RunID: "r_other_connector", ConnectorID: str("ghost"), ConnectionID: str("cin_a"), Reason: runs.UnattributedUnknownConnection},
		}
		if res.Unattributed == nil || *res.Unattributed != 8 {
			t.Errorf("unattributed = %v, want 8 (5 examples + 3 more without evidence)", res.Unattributed)
		}
		if !reflect.DeepEqual(res.UnattributedExamples, wantExamples) {
			t.Errorf("examples:\n got %s\nwant %s", mustJSON(t, res.UnattributedExamples), mustJSON(t, wantExamples))
		}

		// cin_nope is created: r_unknown is attributed to it at once. Touching r_unknown, r_right
		// and r_nothing again reports only r_nothing.
		f.connection("shop", "cin_nope", catalog.StatusActive)
		batch2 := runstest.Parse(t,
			plain("r_unknown", "run.completed", 20*m, nil),
			plain("r_right", "run.completed", 21*m, nil),
			plain("r_nothing", "run.completed", 22*m, feedEv{"event_id": "ev_nothing_done"}),
		)
		res, err = f.ing.Append(f.ctx, batch2)
		if err != nil {
			t.Fatal(err)
		}
		if res.Unattributed == nil || *res.Unattributed != 1 || len(res.UnattributedExamples) != 1 || res.UnattributedExamples[0].RunID != "r_nothing" {
			t.Errorf("second batch: %s, want r_nothing alone", mustJSON(t, res))
		}
		// A batch of duplicates touches nothing: 0 and [], not null.
		res, err = f.ing.Append(f.ctx, runstest.Parse(t, plain("r_nothing", "run.completed", 22*m, feedEv{"event_id": "ev_nothing_done"})))
		if err != nil {
			t.Fatal(err)
		}
		if got := mustJSON(t, res); res.Duplicates != 1 || res.Unattributed == nil || *res.Unattributed != 0 || res.UnattributedExamples == nil {
			t.Errorf("duplicates-only batch: %s, want unattributed 0 and []", got)
		}

		// Without a read model (runs.evidence=spine) attribution happens at read time only.
		spine := runs.NewIngester(db, f.clock.Now, nil)
		res, err = spine.Append(f.ctx, runstest.Parse(t, plain("r_spine", "run.started", 30*m, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if got := mustJSON(t, res); res.Unattributed != nil || res.UnattributedExamples != nil {
			t.Errorf("spine ingester: %s, want unattributed and unattributed_examples null", got)
		}
	})
}

// TestAppendStatementsDoNotDependOnAttribution: the unattributed report is computed from what the
// read-model update already holds, so an append's statements are the same for 5 or 300
// unattributed runs, and no more than for attributed runs.
func TestAppendStatementsDoNotDependOnAttribution(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("shop", shopManifest)
		f.connection("shop", "cin_a", catalog.StatusActive)
		count := func(prefix string, n int, evidence feedEv) (int, runs.IngestResult) {
			var evs []feedEv
			for i := 0; i < n; i++ {
				evs = append(evs, plain(fmt.Sprintf("%s_%03d", prefix, i), "run.completed", time.Duration(i)*time.Second, evidence))
			}
			var c bootstrap.StatementCounter
			res, err := f.ing.Append(bootstrap.WithStatementCounter(context.Background(), &c), runstest.Parse(t, evs...))
			if err != nil {
				t.Fatal(err)
			}
			return c.Count(), res
		}
		few, resFew := count("few", 5, feedEv{"connection_id": "cin_nope"})
		many, resMany := count("many", 300, feedEv{"connection_id": "cin_nope"})
		attributed, resAttr := count("mine", 5, feedEv{"connection_id": "cin_a"})
		if *resFew.Unattributed != 5 || *resMany.Unattributed != 300 || len(resMany.UnattributedExamples) != 5 || *resAttr.Unattributed != 0 {
			t.Fatalf("reports: %d, %d (%d examples), %d", *resFew.Unattributed, *resMany.Unattributed, len(resMany.UnattributedExamples), *resAttr.Unattributed)
		}
		if few == 0 || few != many {
			t.Errorf("append statements: %d for 5 unattributed runs, %d for 300: the report must not add statements", few, many)
		}
		if few > attributed {
			t.Errorf("append statements: %d for unattributed runs, %d for attributed ones", few, attributed)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
