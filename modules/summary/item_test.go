package summary_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// Pure tests of Project: freshness and health (SPEC §4.4), evidence and retained fields.

var itemNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func itemEntry(status, manifest string) catalog.Entry {
	version := "1.0.0"
	var revoked *string
	if status == catalog.StatusRevoked {
		r := "2026-11-01T00:00:00.000Z"
		revoked = &r
	}
	k := &catalog.Connector{ConnectorID: "shop", DisplayName: "Shop", Version: &version, Listed: true, Manifest: json.RawMessage(manifest)}
	k.DecodeManifest()
	return catalog.Entry{
		Connection: &catalog.Connection{ConnectionID: "cin_x", ConnectorID: "shop", DisplayName: "Shop — home", Status: status,
			SourceKind: "account", SourceBindingKey: "default", CreatedAt: "2026-10-01T00:00:00.000Z", RevokedAt: revoked},
		Connector: k,
	}
}

const (
	dayPolicy  = `{"display_name":"Shop","capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400}}}`
	noPolicy   = `{"display_name":"Shop"}`
	zeroPolicy = `{"display_name":"Shop","capabilities":{"refresh_policy":{"maximum_staleness_seconds":0}}}`
)

func itemRun(id, status string, ago time.Duration, reason string) *runs.Summary {
	at := itemNow.Add(-ago).Format(bootstrap.TimeFormat)
	s := &runs.Summary{RunID: id, Status: status, FirstAt: at, LastAt: at, StartedAt: &at, EventCount: 2,
		KnownGaps: json.RawMessage("[]"), CollectionFacts: json.RawMessage("null")}
	if reason != "" {
		s.FailureReason = &reason
	}
	return s
}

func deepInput(status, manifest string, last, success *runs.Summary) summary.Input {
	return summary.Input{Entry: itemEntry(status, manifest), Now: itemNow, EvidenceKind: runs.EvidenceDeep,
		Evidence: &runs.ConnectionEvidence{LastRun: last, LastSuccessfulRun: success}}
}

func TestProjectFreshnessAndHealth(t *testing.T) {
	ok1h := itemRun("r_ok", runs.StatusSucceeded, time.Hour, "")
	ok2d := itemRun("r_ok_old", runs.StatusSucceeded, 48*time.Hour, "")
	cases := []struct {
		name          string
		in            summary.Input
		freshness     string
		state, reason string // reason "" = not checked
	}{
		{"shallow", summary.Input{Entry: itemEntry(catalog.StatusActive, dayPolicy), Now: itemNow}, "unknown", "unknown", "no_run_evidence"},
		{"deep, nothing found", deepInput(catalog.StatusActive, dayPolicy, nil, nil), "unknown", "unknown", "no_run_evidence"},
		{"recent success", deepInput(catalog.StatusActive, dayPolicy, ok1h, ok1h), "current", "healthy", "fresh"},
		{"old success", deepInput(catalog.StatusActive, dayPolicy, ok2d, ok2d), "stale", "stale", "max_staleness_exceeded"},
		{"failed after success", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_f", runs.StatusFailed, 30*time.Minute, "login_required"), ok1h),
			"stale", "failing", "login_required"},
		{"failed without reason", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_f", runs.StatusFailed, 30*time.Minute, ""), ok1h),
			"stale", "failing", "unknown_failure"},
		{"failed at the same time as the success", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_f", runs.StatusFailed, time.Hour, "x"), ok1h),
			"stale", "failing", "x"},
		{"failed, never succeeded", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_f", runs.StatusFailed, time.Hour, "x"), nil),
			"stale", "failing", "x"},
		{"surface_failed", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_s", runs.StatusSurfaceFailed, time.Minute, "capacity_full"), ok1h),
			"stale", "failing", "capacity_full"},
		{"cancelled", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_c", runs.StatusCancelled, time.Minute, ""), ok1h),
			"stale", "failing", "unknown_failure"},
		{"abandoned", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_a", runs.StatusAbandoned, time.Minute, ""), ok1h),
			"stale", "failing", "unknown_failure"},
		{"in progress", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_p", runs.StatusInProgress, time.Minute, ""), ok1h),
			"current", "syncing", "run_in_progress"},
		{"waiting for a surface", deepInput(catalog.StatusActive, dayPolicy, itemRun("r_w", "waiting_for_browser_surface", time.Minute, ""), ok1h),
			"current", "healthy", "fresh"},
		{"no refresh policy", deepInput(catalog.StatusActive, noPolicy, ok1h, ok1h), "unknown", "healthy", "last_run_succeeded"},
		{"zero staleness", deepInput(catalog.StatusActive, zeroPolicy, ok1h, ok1h), "unknown", "healthy", "last_run_succeeded"},
		{"revoked beats failing", deepInput(catalog.StatusRevoked, dayPolicy, itemRun("r_f", runs.StatusFailed, time.Minute, "x"), ok1h), "stale", "revoked", ""},
		{"paused beats syncing", deepInput(catalog.StatusPaused, dayPolicy, itemRun("r_p", runs.StatusInProgress, time.Minute, ""), ok1h), "current", "paused", ""},
	}
	for _, c := range cases {
		it := summary.Project(c.in)
		if it.Freshness.Status != c.freshness || it.Health.State != c.state || (c.reason != "" && it.Health.Reason != c.reason) {
			t.Errorf("%s: freshness %s health %+v, want %s %s/%s", c.name, it.Freshness.Status, it.Health, c.freshness, c.state, c.reason)
		}
		raw := mustJSON(t, it.Freshness)
		ev := c.in.Evidence
		hasSuccess := ev != nil && ev.LastSuccessfulRun != nil
		hasLast := ev != nil && ev.LastRun != nil
		if strings.Contains(raw, "captured_at") != hasSuccess || strings.Contains(raw, "last_attempted_at") != hasLast {
			t.Errorf("%s: freshness %s: keys without a value must be left out", c.name, raw)
		}
		if hasSuccess && it.Freshness.CapturedAt != ev.LastSuccessfulRun.LastAt {
			t.Errorf("%s: captured_at %s, want %s", c.name, it.Freshness.CapturedAt, ev.LastSuccessfulRun.LastAt)
		}
		if hasLast && it.Freshness.LastAttemptedAt != ev.LastRun.LastAt {
			t.Errorf("%s: last_attempted_at %s, want %s", c.name, it.Freshness.LastAttemptedAt, ev.LastRun.LastAt)
		}
	}
}

func TestProjectEvidenceAndRetained(t *testing.T) {
	shallow := summary.Project(summary.Input{Entry: itemEntry(catalog.StatusActive, dayPolicy), Now: itemNow})
	raw := mustJSON(t, shallow)
	for _, want := range []string{`"evidence":"shallow"`, `"last_run":null`, `"last_successful_run":null`, `"freshness":{"status":"unknown"}`,
		`"retained_bytes":null`, `"total_retained_bytes":null`, `"stream_records":[]`, `"total_records":0`, `"stream_count":0`, `"revoked_at":null`} {
		if !strings.Contains(raw, want) {
			t.Errorf("shallow item lacks %s: %s", want, raw)
		}
	}

	empty := summary.Project(deepInput(catalog.StatusActive, dayPolicy, nil, nil))
	if empty.Evidence != runs.EvidenceDeep || empty.LastRun != nil {
		t.Errorf("deep item without runs: evidence %s", empty.Evidence)
	}
	if k := summary.Project(summary.Input{Entry: itemEntry(catalog.StatusActive, dayPolicy), Now: itemNow,
		Evidence: &runs.ConnectionEvidence{}, EvidenceKind: runs.EvidenceReadModel}); k.Evidence != runs.EvidenceReadModel {
		t.Errorf("evidence kind %s, want read_model", k.Evidence)
	}

	last := "2026-11-20T00:00:00.000Z"
	ret := &retained.Retained{
		Connection: &retained.ConnectionRow{ConnectionID: "cin_x", StreamCount: 2,
			Figures:       retained.Figures{RecordCount: 30, RecordJSONBytes: 300, RecordChangesJSONBytes: 20, BlobBytes: 5},
			TotalBytesCol: 325},
		Streams: []retained.StreamRow{
			{ConnectionID: "cin_x", Stream: "a", Figures: retained.Figures{RecordCount: 10, RecordJSONBytes: 100, LastRecordAt: &last}, TotalBytesCol: 100},
			{ConnectionID: "cin_x", Stream: "b", Figures: retained.Figures{RecordCount: 20, RecordJSONBytes: 200, RecordChangesJSONBytes: 20, BlobBytes: 5}, TotalBytesCol: 225},
		},
	}
	in := deepInput(catalog.StatusActive, dayPolicy, nil, nil)
	in.Retained = ret
	it := summary.Project(in)
	if it.TotalRecords != 30 || it.StreamCount != 2 || it.RetainedBytes == nil || it.RetainedBytes.TotalBytes != 325 ||
		it.RetainedBytes.RecordChangesJSONBytes != 20 || it.RetainedBytes.BlobBytes != 5 || it.TotalRetainedBytes == nil || *it.TotalRetainedBytes != 325 {
		t.Errorf("retained: %s", mustJSON(t, it))
	}
	if len(it.StreamRecords) != 2 || it.StreamRecords[0].Stream != "a" || it.StreamRecords[0].LastRecordAt == nil ||
		it.StreamRecords[1].TotalBytes != 225 || it.StreamRecords[1].LastRecordAt != nil {
		t.Errorf("stream_records: %s", mustJSON(t, it.StreamRecords))
	}
	// Project is pure: the same input gives the same item.
	if mustJSON(t, summary.Project(in)) != mustJSON(t, it) {
		t.Error("Project is not deterministic")
	}
}

// TestHealthRulesOfSpec44 checks each health rule of SPEC §4.4 that decides between healthy and
// unknown: a succeeded last run without a positive maximum_staleness_seconds is healthy
// (last_run_succeeded); no_run_evidence only without a last run (not looked up, or none found);
// a last run neither terminal nor in progress is unknown (last_run_not_terminal). The rules
// before them (revoked/paused, syncing, failing, stale, fresh) still win.
func TestHealthRulesOfSpec44(t *testing.T) {
	ok1h := itemRun("r_ok", runs.StatusSucceeded, time.Hour, "")
	ok3d := itemRun("r_ok_old", runs.StatusSucceeded, 72*time.Hour, "")
	waiting := itemRun("r_w", runs.StatusWaitingForSurface, time.Minute, "")
	cases := []struct {
		name          string
		in            summary.Input
		state, reason string
	}{
		{"succeeded, no refresh policy", deepInput(catalog.StatusActive, noPolicy, ok1h, ok1h), "healthy", "last_run_succeeded"},
		{"succeeded, zero staleness", deepInput(catalog.StatusActive, zeroPolicy, ok1h, ok1h), "healthy", "last_run_succeeded"},
		{"succeeded long ago, no refresh policy: nothing to judge its age by", deepInput(catalog.StatusActive, noPolicy, ok3d, ok3d), "healthy", "last_run_succeeded"},
		{"succeeded long ago, with a policy", deepInput(catalog.StatusActive, dayPolicy, ok3d, ok3d), "stale", "max_staleness_exceeded"},
		{"succeeded recently, with a policy", deepInput(catalog.StatusActive, dayPolicy, ok1h, ok1h), "healthy", "fresh"},
		{"failed after a success, no policy", deepInput(catalog.StatusActive, noPolicy, itemRun("r_f", runs.StatusFailed, time.Minute, "login_required"), ok1h),
			"failing", "login_required"},
		{"in progress, no policy", deepInput(catalog.StatusActive, noPolicy, itemRun("r_p", runs.StatusInProgress, time.Minute, ""), ok1h), "syncing", "run_in_progress"},
		{"succeeded, no policy, paused", deepInput(catalog.StatusPaused, noPolicy, ok1h, ok1h), "paused", "connection_paused"},
		{"succeeded, no policy, revoked", deepInput(catalog.StatusRevoked, noPolicy, ok1h, ok1h), "revoked", "connection_revoked"},
		{"shallow: not looked up", summary.Input{Entry: itemEntry(catalog.StatusActive, noPolicy), Now: itemNow}, "unknown", "no_run_evidence"},
		{"deep, no run found", deepInput(catalog.StatusActive, noPolicy, nil, nil), "unknown", "no_run_evidence"},
		{"deep, no run found, with a policy", deepInput(catalog.StatusActive, dayPolicy, nil, nil), "unknown", "no_run_evidence"},
		{"waiting for a surface, never succeeded", deepInput(catalog.StatusActive, dayPolicy, waiting, nil), "unknown", "last_run_not_terminal"},
		{"waiting for a surface after a success, no policy", deepInput(catalog.StatusActive, noPolicy, waiting, ok1h), "unknown", "last_run_not_terminal"},
		{"waiting for a surface after an old success, with a policy", deepInput(catalog.StatusActive, dayPolicy, waiting, ok3d), "stale", "max_staleness_exceeded"},
		{"waiting for a surface after a recent success, with a policy", deepInput(catalog.StatusActive, dayPolicy, waiting, ok1h), "healthy", "fresh"},
		{"leased, no policy", deepInput(catalog.StatusActive, noPolicy, itemRun("r_l", runs.StatusLeased, time.Minute, ""), nil), "unknown", "last_run_not_terminal"},
		{"rejected, no policy", deepInput(catalog.StatusActive, noPolicy, itemRun("r_r", runs.StatusRejected, time.Minute, "quota"), nil), "unknown", "last_run_not_terminal"},
		{"status unknown", deepInput(catalog.StatusActive, noPolicy, itemRun("r_u", runs.StatusUnknown, time.Minute, ""), nil), "unknown", "last_run_not_terminal"},
	}
	for _, c := range cases {
		if h := summary.Project(c.in).Health; h.State != c.state || h.Reason != c.reason {
			t.Errorf("%s: health %s/%s, want %s/%s", c.name, h.State, h.Reason, c.state, c.reason)
		}
	}
}
