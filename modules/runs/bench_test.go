package runs_test

import (
	"fmt"
	"testing"
	"time"

	"connsum/modules/runs"
)

// BenchmarkFold measures the run-summary fold over a typical browser run of six events.
func BenchmarkFold(b *testing.B) {
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	key, leased, reason := "amazon-shopping:cin_ab12", "leased", "login_required"
	data := `{"reason":"login_required","known_gaps":[]}`
	var evs []runs.EventRow
	for i, typ := range []string{"run.browser_surface_leased", "run.started", "run.progress", "run.progress", "run.progress", "run.failed"} {
		e := runs.EventRow{RunID: "run_1", Seq: int64(i + 1), Type: typ, OccurredAt: t0.Add(time.Duration(i) * time.Minute).Format("2006-01-02T15:04:05.000Z"),
			BSPresent: true, BSStatus: &leased, BSProfileKey: &key}
		if typ == "run.failed" {
			e.FailureReason, e.Data = &reason, &data
		}
		evs = append(evs, e)
	}
	now := t0.Add(time.Hour)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s := runs.Fold("run_1", evs, now, 30*time.Minute)
		if s.Status != "failed" {
			b.Fatal(fmt.Sprint(s.Status))
		}
	}
}
