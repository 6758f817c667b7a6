package runs_test

import (
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

const amazonManifest = `{"display_name":"Amazon","version":"1.4.0","streams":[{"name":"orders"}],
	"capabilities":{"browser_surface":{"profile_key":"amazon-shopping"},"refresh_policy":{"maximum_staleness_seconds":86400}}}`

// seedAttribution builds the sibling scenario of SPEC §4.2: browser-backed Amazon siblings and a
// draft shell, and a mail connector whose runs carry no profile key.
func seedAttribution(f *feedFixture) {
	f.connector("amazon", amazonManifest)
	f.connector("mail", `{"display_name":"Mail"}`)
	f.connection("amazon", "cin_amz_a", catalog.StatusActive)
	f.connection("amazon", "cin_amz_b", catalog.StatusActive)
	f.connection("amazon", "cin_amz_shell", catalog.StatusDraft)
	for _, id := range []string{"cin_mail_1", "cin_mail_2", "cin_mail_3", "cin_mail_4"} {
		f.connection("mail", id, catalog.StatusActive)
	}
	h := time.Hour
	var evs []feedEv
	add := func(e []feedEv) { evs = append(evs, e...) }
	// Amazon: A's own run is the oldest; every newer run belongs to someone else or to nobody.
	add(runEvents("amazon", "r_a_ok", "amazon-shopping:cin_amz_a", 0, "run.completed", nil, nil))
	add(runEvents("amazon", "r_b_named_a", "amazon-shopping:cin_amz_b", 30*time.Minute, "run.failed",
		feedEv{"connection_id": "cin_amz_a"}, feedEv{"data": map[string]any{"reason": "b_failed"}}))
	add(runEvents("amazon", "r_b_ok", "amazon-shopping:cin_amz_b", 1*h, "run.completed", nil, nil))
	add(runEvents("amazon", "r_shell_fail", "amazon-shopping:cin_amz_shell", 2*h, "run.failed", nil,
		feedEv{"data": map[string]any{"reason": "login_required"}}))
	add(runEvents("amazon", "r_bare_a", "cin_amz_a", 3*h, "run.failed", nil, nil))
	add(runEvents("amazon", "r_connector_key_a", "amazon:cin_amz_a", 4*h, "run.failed", nil, nil))
	add(runEvents("amazon", "r_base_key", "amazon-shopping", 5*h, "run.completed", nil, nil))
	// Mail: no profile keys; only explicit ids match, top-level or inside data.
	add(runEvents("mail", "r_m1", "", 1*h, "run.completed", feedEv{"connection_id": "cin_mail_1"}, nil))
	add(runEvents("mail", "r_m2", "", 2*h, "run.completed", feedEv{"data": map[string]any{"connector_instance_id": "cin_mail_2"}}, nil))
	add(runEvents("mail", "r_m3_old_ok", "", 0, "run.completed", feedEv{"data": map[string]any{"connection_id": "cin_mail_3"}}, nil))
	add(runEvents("mail", "r_m3", "", 3*h, "run.failed", feedEv{"connector_instance_id": "cin_mail_3"}, nil))
	add(runEvents("mail", "r_m_nobody", "", 6*h, "run.failed", nil, nil))
	f.add(evs...)
}

func TestSpineEvidenceAttribution(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		seedAttribution(f)
		entries := f.entries("cin_amz_shell")
		ev := runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{}, f.clock.Now))
		var req runs.Request
		for _, e := range entries {
			req.Entries = append(req.Entries, e)
		}
		req.Trail = true
		got, err := ev.For(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][2]string{ // last_run, last_successful_run
			"cin_amz_a":     {"r_a_ok", "r_a_ok"},
			"cin_amz_b":     {"r_b_ok", "r_b_ok"},
			"cin_amz_shell": {"r_shell_fail", "<nil>"},
			"cin_mail_1":    {"r_m1", "r_m1"},
			"cin_mail_2":    {"r_m2", "r_m2"},
			"cin_mail_3":    {"r_m3", "r_m3_old_ok"},
			"cin_mail_4":    {"<nil>", "<nil>"},
		}
		if len(got) != len(want) {
			t.Errorf("evidence for %d connections, want %d", len(got), len(want))
		}
		for id, w := range want {
			e := got[id]
			if e == nil {
				t.Errorf("%s: no evidence", id)
				continue
			}
			if runIDOf(e.LastRun) != w[0] || runIDOf(e.LastSuccessfulRun) != w[1] {
				t.Errorf("%s: last_run %s, last_successful_run %s; want %s, %s", id, runIDOf(e.LastRun), runIDOf(e.LastSuccessfulRun), w[0], w[1])
			}
		}
		// Every run a connection lists must be its own (no sibling's, no shell's, no unkeyed run).
		own := map[string][]string{
			"cin_amz_a": {"r_a_ok"}, "cin_amz_b": {"r_b_ok", "r_b_named_a"}, "cin_amz_shell": {"r_shell_fail"},
			"cin_mail_1": {"r_m1"}, "cin_mail_2": {"r_m2"}, "cin_mail_3": {"r_m3", "r_m3_old_ok"}, "cin_mail_4": nil,
		}
		for id, runIDs := range own {
			e := got[id]
			if e == nil {
				continue
			}
			var ids []string
			for _, s := range e.Runs {
				ids = append(ids, s.RunID)
			}
			if len(ids) != len(runIDs) {
				t.Errorf("%s: runs %v, want exactly %v", id, ids, runIDs)
				continue
			}
			for i := range ids {
				if ids[i] != runIDs[i] {
					t.Errorf("%s: runs %v, want %v in run order", id, ids, runIDs)
					break
				}
			}
		}
		// The trail names the rule of every candidate.
		rules := map[string]runs.Rule{}
		matched := map[string]bool{}
		for _, c := range got["cin_amz_a"].Candidates {
			if c.Page.Status == "" {
				rules[c.RunID], matched[c.RunID] = c.Rule, c.Matched
			}
		}
		wantRules := map[string]runs.Rule{
			"r_a_ok": runs.RuleProfileKeyMatch, "r_b_ok": runs.RuleProfileKeyMismatch, "r_b_named_a": runs.RuleProfileKeyMismatch,
			"r_shell_fail": runs.RuleProfileKeyMismatch, "r_bare_a": runs.RuleProfileKeyMismatch,
			"r_connector_key_a": runs.RuleProfileKeyMismatch, "r_base_key": runs.RuleProfileKeyMismatch,
		}
		for id, r := range wantRules {
			if rules[id] != r || matched[id] != (r == runs.RuleProfileKeyMatch) {
				t.Errorf("cin_amz_a candidate %s: rule %q matched %v, want %q", id, rules[id], matched[id], r)
			}
		}
		if len(rules) != len(wantRules) {
			t.Errorf("cin_amz_a candidates %v, want the %d amazon runs (never a mail run)", rules, len(wantRules))
		}
		// The mail runs name a sibling: a run naming another connection is explicit_id_mismatch,
		// with the id it carried beside the expected key; r_m_nobody carries nothing.
		for _, c := range got["cin_mail_4"].Candidates {
			if c.RunID == "r_m_nobody" {
				if c.Matched || c.Rule != runs.RuleNoConnectionEvidence || c.ConnectionID != nil || c.ProfileKey != nil {
					t.Errorf("cin_mail_4 candidate %+v, want no_connection_evidence without evidence", c)
				}
				continue
			}
			if c.Matched || c.Rule != runs.RuleExplicitIDMismatch || c.ConnectionID == nil || *c.ConnectionID == "cin_mail_4" ||
				c.ProfileKey != nil || c.ExpectedProfileKey != "mail:cin_mail_4" {
				t.Errorf("cin_mail_4 candidate %+v, want explicit_id_mismatch carrying another connection's id", c)
			}
		}
		// Without Trail, no candidates are collected.
		quiet, err := ev.For(f.ctx, runs.Request{Entries: []catalog.Entry{entries["cin_amz_a"]}})
		if err != nil {
			t.Fatal(err)
		}
		if c := quiet["cin_amz_a"].Candidates; len(c) != 0 {
			t.Errorf("candidates without Trail: %d", len(c))
		}
		if runIDOf(quiet["cin_amz_a"].LastRun) != "r_a_ok" {
			t.Errorf("alone: last_run %s, want r_a_ok", runIDOf(quiet["cin_amz_a"].LastRun))
		}
	})
}

// TestSpineEvidenceSiblingNewerFailure checks the other direction: the sibling's newer run is a
// failure, and each connection keeps its own last successful run.
func TestSpineEvidenceSiblingNewerFailure(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("amazon", amazonManifest)
		f.connection("amazon", "cin_x", catalog.StatusActive)
		f.connection("amazon", "cin_y", catalog.StatusActive)
		var evs []feedEv
		evs = append(evs, runEvents("amazon", "run_x_ok", "amazon-shopping:cin_x", 0, "run.completed", nil, nil)...)
		evs = append(evs, runEvents("amazon", "run_y_ok", "amazon-shopping:cin_y", time.Hour, "run.completed", nil, nil)...)
		surface := feedEv{"event_type": "run.browser_surface_failed", "occurred_at": feedAt(3 * time.Hour), "run_id": "run_y_surface",
			"source_kind": "connector", "source_id": "amazon", "status": "surface_failed",
			"data": map[string]any{"browser_surface": map[string]any{"browser_surface_status": "surface_failed",
				"browser_surface_wait_reason": "surface_start_failed", "browser_surface_profile_key": "amazon-shopping:cin_y"}}}
		evs = append(evs, surface)
		f.add(evs...)
		e := f.entries()
		got, err := runs.NewSpineEvidence(runs.NewPageSource(db, runs.Options{}, f.clock.Now)).
			For(f.ctx, runs.Request{Entries: []catalog.Entry{e["cin_x"], e["cin_y"]}})
		if err != nil {
			t.Fatal(err)
		}
		if x := got["cin_x"]; runIDOf(x.LastRun) != "run_x_ok" || runIDOf(x.LastSuccessfulRun) != "run_x_ok" {
			t.Errorf("cin_x: %s / %s, want run_x_ok / run_x_ok", runIDOf(x.LastRun), runIDOf(x.LastSuccessfulRun))
		}
		y := got["cin_y"]
		if runIDOf(y.LastRun) != "run_y_surface" || runIDOf(y.LastSuccessfulRun) != "run_y_ok" {
			t.Fatalf("cin_y: %s / %s, want run_y_surface / run_y_ok", runIDOf(y.LastRun), runIDOf(y.LastSuccessfulRun))
		}
		if y.LastRun.Status != runs.StatusSurfaceFailed || y.LastRun.FailureReason == nil || *y.LastRun.FailureReason != "surface_start_failed" {
			t.Errorf("cin_y last_run: status %s failure_reason %s, want surface_failed / surface_start_failed", y.LastRun.Status, foStr(y.LastRun.FailureReason))
		}
	})
}
