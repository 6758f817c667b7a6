package runs_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/runs"
)

// Pure tests of the spine fold (SPEC §4.1). Expectations come from the SPEC's rules.

const foldStale = 30 * time.Minute

func foPtr(s string) *string { return &s }

// ts renders minute m (and optional milliseconds) after 08:00 on the fixture day in the stored form.
func foTS(m int) string {
	return feedT0.Add(time.Duration(m) * time.Minute).Format(bootstrap.TimeFormat)
}

func foTime(m int) time.Time { return feedT0.Add(time.Duration(m) * time.Minute) }

type foOpt func(*runs.EventRow)

func foStatus(s string) foOpt { return func(r *runs.EventRow) { r.Status = foPtr(s) } }

func foRef(s string) foOpt { return func(r *runs.EventRow) { r.ConnectionRef = foPtr(s) } }

func foReason(s string) foOpt { return func(r *runs.EventRow) { r.FailureReason = foPtr(s) } }

func foData(s string) foOpt { return func(r *runs.EventRow) { r.Data = foPtr(s) } }

// bs gives the event a data.browser_surface object; "" leaves a field absent.
func foBS(st, wait, key string) foOpt {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return foPtr(s)
	}
	return func(r *runs.EventRow) {
		r.BSPresent, r.BSStatus, r.BSWaitReason, r.BSProfileKey = true, opt(st), opt(wait), opt(key)
	}
}

func foRow(seq int64, typ string, minute int, opts ...foOpt) runs.EventRow {
	r := runs.EventRow{RunID: "run_1", Seq: seq, Type: typ, OccurredAt: foTS(minute)}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func foldAt(now time.Time, rows ...runs.EventRow) runs.Summary {
	return runs.Fold("run_1", rows, now, foldStale)
}

func foStr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func foWantStr(t *testing.T, what string, got *string, want string) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s = %s, want %q", what, foStr(got), want)
	}
}

func foWantNil(t *testing.T, what string, got *string) {
	t.Helper()
	if got != nil {
		t.Errorf("%s = %s, want null", what, foStr(got))
	}
}

func foSameJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func TestFoldTerminalEventBeatsLaterSubEvents(t *testing.T) {
	s := foldAt(foTime(600),
		foRow(1, "run.started", 0),
		foRow(2, "run.completed", 5, foStatus("succeeded")),
		foRow(3, "run.progress", 6, foStatus("running")),
		foRow(4, "run.browser_surface_released", 7, foStatus("released"), foBS("released", "", "amazon-shopping:cin_a")),
	)
	if s.Status != runs.StatusSucceeded {
		t.Fatalf("status = %q, want succeeded: a run.progress after run.completed must not reopen the run", s.Status)
	}
	if s.EventCount != 4 || s.FirstAt != foTS(0) || s.LastAt != foTS(7) {
		t.Errorf("count/first/last = %d %s %s, want 4 %s %s", s.EventCount, s.FirstAt, s.LastAt, foTS(0), foTS(7))
	}
	foWantStr(t, "started_at", s.StartedAt, foTS(0))
	foWantStr(t, "finished_at", s.FinishedAt, foTS(7))
	foWantNil(t, "failure_reason", s.FailureReason)
	foWantStr(t, "browser_surface_status", s.BrowserSurfaceStatus, "released")
}

func TestFoldLatestTerminalByEventSeqNotTime(t *testing.T) {
	// run.completed is later in time but earlier in event_seq than run.failed: event_seq decides.
	s := foldAt(foTime(600),
		foRow(1, "run.started", 0),
		foRow(2, "run.completed", 10, foStatus("succeeded"), foData(`{"known_gaps":["a"],"collection_facts":{"orders":1}}`)),
		foRow(3, "run.failed", 5, foStatus("failed"), foReason("login_required"), foData(`{"reason":"login_required","known_gaps":["b"]}`)),
	)
	if s.Status != runs.StatusFailed {
		t.Fatalf("status = %q, want failed (latest terminal by event_seq)", s.Status)
	}
	foWantStr(t, "failure_reason", s.FailureReason, "login_required")
	foSameJSON(t, "known_gaps", s.KnownGaps, `["b"]`)
	foSameJSON(t, "collection_facts", s.CollectionFacts, `null`)
	if s.FirstAt != foTS(0) || s.LastAt != foTS(10) {
		t.Errorf("first/last = %s %s, want %s %s", s.FirstAt, s.LastAt, foTS(0), foTS(10))
	}
}

func TestFoldOrphanedStartedRun(t *testing.T) {
	evs := []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.progress", 10)}
	lastAt := foTime(10)

	before := runs.Fold("run_1", evs, lastAt.Add(10*time.Minute), foldStale)
	if before.Status != runs.StatusInProgress {
		t.Errorf("before stale_after: status = %q, want in_progress", before.Status)
	}
	foWantNil(t, "in_progress finished_at", before.FinishedAt)
	foWantNil(t, "in_progress failure_reason", before.FailureReason)

	edge := runs.Fold("run_1", evs, lastAt.Add(foldStale), foldStale)
	if edge.Status != runs.StatusInProgress {
		t.Errorf("now - last_at == stale_after: status = %q, want in_progress (<=)", edge.Status)
	}

	after := runs.Fold("run_1", evs, lastAt.Add(foldStale+time.Millisecond), foldStale)
	if after.Status != runs.StatusFailed {
		t.Fatalf("after stale_after: status = %q, want failed", after.Status)
	}
	foWantStr(t, "orphaned failure_reason", after.FailureReason, runs.OrphanedReason)
	foWantStr(t, "orphaned finished_at", after.FinishedAt, foTS(10))

	// The decision is made against last_at, not first_at: a long run with a recent event is live.
	long := runs.Fold("run_1", []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.progress", 120)}, foTime(130), foldStale)
	if long.Status != runs.StatusInProgress {
		t.Errorf("long run with recent progress: status = %q, want in_progress", long.Status)
	}
}

func TestFoldStatusFromLatestNonEmptyStatus(t *testing.T) {
	s := foldAt(foTime(600),
		foRow(1, "run.browser_surface_requested", 0, foStatus("waiting_for_browser_surface"), foBS("waiting_for_browser_surface", "capacity_full", "k:cin_a")),
		foRow(2, "run.browser_surface_probe_failed", 1, foStatus("unknown")),
		foRow(3, "run.progress", 2, foStatus("")),
		foRow(4, "run.progress", 3),
	)
	if s.Status != "waiting_for_browser_surface" {
		t.Fatalf("status = %q, want waiting_for_browser_surface (unknown and empty statuses are skipped)", s.Status)
	}
	foWantNil(t, "finished_at of a waiting run", s.FinishedAt)
	foWantNil(t, "failure_reason of a waiting run", s.FailureReason)
	foWantStr(t, "browser_surface_wait_reason", s.BrowserSurfaceWaitReason, "capacity_full")

	latest := foldAt(foTime(600),
		foRow(1, "run.browser_surface_queued", 0, foStatus("waiting_for_browser_surface")),
		foRow(2, "run.browser_surface_starting", 1, foStatus("starting_surface")),
	)
	if latest.Status != "starting_surface" {
		t.Errorf("status = %q, want the latest status starting_surface", latest.Status)
	}

	none := foldAt(foTime(600), foRow(1, "run.progress", 0), foRow(2, "run.progress", 1, foStatus("unknown")))
	if none.Status != runs.StatusUnknown {
		t.Errorf("no status: %q, want unknown", none.Status)
	}
	foWantNil(t, "finished_at of an unknown run", none.FinishedAt)
}

func TestFoldSurfaceFailedFailureReasonChain(t *testing.T) {
	cases := []struct {
		name   string
		events []runs.EventRow
		want   string
	}{
		{"wait reason", []runs.EventRow{
			foRow(1, "run.browser_surface_requested", 0, foStatus("waiting_for_browser_surface"), foBS("waiting_for_browser_surface", "capacity_full", "k:cin_a")),
			foRow(2, "run.browser_surface_failed", 1, foStatus("surface_failed"), foBS("surface_failed", "surface_start_failed", "k:cin_a")),
		}, "surface_start_failed"},
		{"browser_surface_status when the latest object has no wait reason", []runs.EventRow{
			// The earlier object's wait reason must not leak: browser fields come from the latest object.
			foRow(1, "run.browser_surface_requested", 0, foStatus("waiting_for_browser_surface"), foBS("waiting_for_browser_surface", "capacity_full", "k:cin_a")),
			foRow(2, "run.browser_surface_lost", 1, foStatus("surface_failed"), foBS("lost", "", "k:cin_a")),
		}, "lost"},
		{"empty strings count as absent", []runs.EventRow{
			foRow(1, "run.browser_surface_requested", 0, foStatus("waiting_for_browser_surface"), foBS("waiting_for_browser_surface", "capacity_full", "k:cin_a")),
			foRow(2, "run.browser_surface_failed", 1, foStatus("surface_failed"), func(r *runs.EventRow) {
				r.BSPresent, r.BSStatus, r.BSWaitReason, r.BSProfileKey = true, foPtr(""), foPtr(""), foPtr("k:cin_a")
			}),
		}, "browser_surface_failed"},
		{"no browser object at all", []runs.EventRow{
			foRow(1, "run.browser_surface_failed", 0, foStatus("surface_failed")),
		}, "browser_surface_failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := foldAt(foTime(600), c.events...)
			if s.Status != runs.StatusSurfaceFailed {
				t.Fatalf("status = %q, want surface_failed", s.Status)
			}
			foWantStr(t, "failure_reason", s.FailureReason, c.want)
			foWantStr(t, "finished_at", s.FinishedAt, s.LastAt)
		})
	}
}

// foldParsed parses client JSON events (as ingest does), gives them event_seq in order and
// loads data for terminal events only, as the run page query does.
func foldParsed(t *testing.T, now time.Time, raws ...string) runs.Summary {
	t.Helper()
	rows := make([]runs.EventRow, 0, len(raws))
	for i, raw := range raws {
		e, err := runs.ParseEvent([]byte(raw), "x")
		if err != nil {
			t.Fatalf("parse %s: %v", raw, err)
		}
		r := runs.EventRow{RunID: "run_1", Seq: int64(i + 1), Type: e.EventType, OccurredAt: e.OccurredAt, Status: e.Status,
			ConnectionRef: e.ConnectionRef, FailureReason: e.FailureReason, BSPresent: e.BSPresent, BSStatus: e.BSStatus,
			BSWaitReason: e.BSWaitReason, BSProfileKey: e.BSProfileKey}
		switch e.EventType {
		case "run.completed", "run.failed", "run.cancelled", "run.abandoned":
			r.Data = e.Data
		}
		rows = append(rows, r)
	}
	return runs.Fold("run_1", rows, now, foldStale)
}

func TestFoldFailureReasonFromEventData(t *testing.T) {
	now := foTime(600)
	ev := func(typ, st, data string, minute int) string {
		s := fmt.Sprintf(`{"event_type":%q,"occurred_at":%q,"run_id":"run_1"`, typ, foTS(minute))
		if st != "" {
			s += fmt.Sprintf(`,"status":%q`, st)
		}
		if data != "" {
			s += `,"data":` + data
		}
		return s + "}"
	}
	started := ev("run.started", "", "", 0)
	cases := []struct {
		name   string
		events []string
		want   *string
	}{
		{"data.reason", []string{started, ev("run.failed", "failed", `{"reason":"login_required","failure_reason":"other"}`, 1)}, foPtr("login_required")},
		{"data.failure_reason fallback", []string{started, ev("run.failed", "failed", `{"failure_reason":"captcha"}`, 1)}, foPtr("captcha")},
		{"empty reason is absent", []string{started, ev("run.failed", "failed", `{"reason":"","failure_reason":"captcha"}`, 1)}, foPtr("captcha")},
		{"run.failed without a reason", []string{started, ev("run.failed", "failed", "", 1)}, nil},
		{"first failing event by event_seq", []string{started,
			ev("run.progress", "rejected", `{"reason":"quota_exceeded"}`, 1),
			ev("run.failed", "failed", `{"reason":"login_required"}`, 2)}, foPtr("quota_exceeded")},
		{"status failed on a non-terminal event", []string{started,
			ev("run.progress", "failed", `{"failure_reason":"parse_error"}`, 1),
			ev("run.failed", "", `{"reason":"later"}`, 2)}, foPtr("parse_error")},
		{"a reason on a non-failing event is ignored", []string{started,
			ev("run.progress", "", `{"reason":"slow"}`, 1),
			ev("run.completed", "succeeded", "", 2)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := foldParsed(t, now, c.events...)
			if c.want == nil {
				foWantNil(t, "failure_reason", s.FailureReason)
			} else {
				foWantStr(t, "failure_reason", s.FailureReason, *c.want)
			}
		})
	}
}

func TestFoldKnownGapsAndCollectionFacts(t *testing.T) {
	now := foTime(600)
	plain := foldParsed(t, now,
		`{"event_type":"run.started","occurred_at":"`+foTS(0)+`","run_id":"run_1"}`,
		`{"event_type":"run.completed","occurred_at":"`+foTS(1)+`","run_id":"run_1","status":"succeeded"}`)
	foSameJSON(t, "default known_gaps", plain.KnownGaps, `[]`)
	foSameJSON(t, "default collection_facts", plain.CollectionFacts, `null`)

	full := foldParsed(t, now,
		`{"event_type":"run.started","occurred_at":"`+foTS(0)+`","run_id":"run_1","data":{"known_gaps":["not_terminal"]}}`,
		`{"event_type":"run.completed","occurred_at":"`+foTS(1)+`","run_id":"run_1","status":"succeeded",`+
			`"data":{"known_gaps":["orders_before_2019"],"collection_facts":{"orders":12,"pages":3}}}`)
	foSameJSON(t, "known_gaps", full.KnownGaps, `["orders_before_2019"]`)
	foSameJSON(t, "collection_facts", full.CollectionFacts, `{"orders":12,"pages":3}`)

	// Only the latest terminal event counts: its missing known_gaps gives the default.
	latest := foldParsed(t, now,
		`{"event_type":"run.failed","occurred_at":"`+foTS(0)+`","run_id":"run_1","data":{"known_gaps":["x"],"collection_facts":{"a":1}}}`,
		`{"event_type":"run.completed","occurred_at":"`+foTS(1)+`","run_id":"run_1"}`)
	if latest.Status != runs.StatusSucceeded {
		t.Errorf("status = %q, want succeeded", latest.Status)
	}
	foSameJSON(t, "known_gaps of latest terminal", latest.KnownGaps, `[]`)
	foSameJSON(t, "collection_facts of latest terminal", latest.CollectionFacts, `null`)

	// A non-running run (no terminal event) has the defaults too.
	open := foldParsed(t, now, `{"event_type":"run.progress","occurred_at":"`+foTS(0)+`","run_id":"run_1","data":{"known_gaps":["x"]}}`)
	foSameJSON(t, "known_gaps without terminal", open.KnownGaps, `[]`)
}

func TestFoldDecisionsUseEventSeq(t *testing.T) {
	// Passed in reverse and with occurred_at against event_seq order.
	rows := []runs.EventRow{
		foRow(3, "run.progress", 1, foRef("cin_late")),
		foRow(2, "run.browser_surface_ready", 0, foStatus("leased"), foBS("leased", "", "k:cin_two")),
		foRow(1, "run.browser_surface_requested", 9, foStatus("waiting_for_browser_surface"), foRef("cin_first"), foBS("waiting_for_browser_surface", "capacity_full", "k:cin_one")),
	}
	s := foldAt(foTime(600), rows...)
	if s.Status != "leased" {
		t.Errorf("status = %q, want leased (latest status by event_seq, not by time)", s.Status)
	}
	foWantStr(t, "browser_surface_profile_key", s.BrowserSurfaceProfileKey, "k:cin_two")
	foWantNil(t, "browser_surface_wait_reason", s.BrowserSurfaceWaitReason)
	foWantStr(t, "connection evidence", s.ConnectionRef, "cin_first")
	if s.FirstAt != foTS(0) || s.LastAt != foTS(9) || s.EventCount != 3 {
		t.Errorf("first/last/count = %s %s %d, want %s %s 3", s.FirstAt, s.LastAt, s.EventCount, foTS(0), foTS(9))
	}
	if rows[0].Seq != 3 {
		t.Error("Fold must not reorder the caller's slice")
	}
}

func TestFoldFinishedAtOnlyForTerminalStatuses(t *testing.T) {
	now := foTime(20)
	cases := []struct {
		status   string
		events   []runs.EventRow
		finished bool
	}{
		{"succeeded", []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.completed", 2)}, true},
		{"failed", []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.failed", 2)}, true},
		{"cancelled", []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.cancelled", 2)}, true},
		{"abandoned", []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.abandoned", 2)}, true},
		{"surface_failed", []runs.EventRow{foRow(1, "run.browser_surface_failed", 2, foStatus("surface_failed"))}, true},
		{"in_progress", []runs.EventRow{foRow(1, "run.started", 0), foRow(2, "run.progress", 2)}, false},
		{"waiting_for_browser_surface", []runs.EventRow{foRow(1, "run.browser_surface_queued", 2, foStatus("waiting_for_browser_surface"))}, false},
		{"unknown", []runs.EventRow{foRow(1, "run.progress", 2)}, false},
	}
	for _, c := range cases {
		s := foldAt(now, c.events...)
		if s.Status != c.status {
			t.Errorf("%s: status = %q", c.status, s.Status)
			continue
		}
		foWantStr(t, c.status+" started_at", s.StartedAt, s.FirstAt)
		if c.finished {
			foWantStr(t, c.status+" finished_at", s.FinishedAt, foTS(2))
		} else {
			foWantNil(t, c.status+" finished_at", s.FinishedAt)
		}
	}
}

func TestSortRunsOrder(t *testing.T) {
	mk := func(id string, minute int) runs.Summary { return runs.Summary{RunID: id, LastAt: foTS(minute)} }
	s := []runs.Summary{mk("run_b", 0), mk("run_a", 0), mk("run_0", 60), mk("run_c", 0), mk("run_z", -5)}
	runs.SortRuns(s)
	var got []string
	for _, r := range s {
		got = append(got, r.RunID)
	}
	want := []string{"run_0", "run_c", "run_b", "run_a", "run_z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("run order = %v, want %v (last_at DESC, then run_id DESC)", got, want)
	}
	a, b := mk("run_b", 0), mk("run_a", 0)
	if !runs.Before(&a, &b) || runs.Before(&b, &a) || runs.Before(&a, &a) {
		t.Error("Before must be a strict order: equal last_at falls back to run_id DESC")
	}
}

func TestSummaryJSONShape(t *testing.T) {
	s := foldAt(foTime(600), foRow(1, "run.started", 0, foRef("cin_x")), foRow(2, "run.completed", 1))
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"browser_surface_profile_key", "browser_surface_status", "browser_surface_wait_reason", "collection_facts",
		"event_count", "failure_reason", "finished_at", "first_at", "known_gaps", "last_at", "run_id", "started_at", "status"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("run summary keys = %v, want %v", keys, want)
	}
	if string(m["known_gaps"]) != "[]" || string(m["collection_facts"]) != "null" || string(m["failure_reason"]) != "null" {
		t.Errorf("defaults: known_gaps %s collection_facts %s failure_reason %s", m["known_gaps"], m["collection_facts"], m["failure_reason"])
	}
}
