package summary_test

import (
	"encoding/json"
	"testing"
	"time"

	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// BenchmarkProject measures the pure item builder with full run evidence and retained rows.
func BenchmarkProject(b *testing.B) {
	version, key := "1.4.0", "amazon-shopping"
	k := &catalog.Connector{ConnectorID: "amazon", DisplayName: "Amazon", Version: &version, ProfileKey: &key, Listed: true,
		Manifest: json.RawMessage(`{"display_name":"Amazon","streams":[{"name":"orders"},{"name":"returns"}],"capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400}}}`)}
	k.DecodeManifest()
	c := &catalog.Connection{ConnectionID: "cin_ab12", ConnectorID: "amazon", DisplayName: "Amazon — work", Status: "active",
		SourceKind: "browser_collector", CreatedAt: "2026-11-20T08:00:00.000Z"}
	last := "2026-11-20T09:00:00.000Z"
	ret := &retained.Retained{Connection: &retained.ConnectionRow{ConnectionID: "cin_ab12", StreamCount: 2, TotalBytesCol: 52000},
		Streams: []retained.StreamRow{{Stream: "orders", Figures: retained.Figures{RecordCount: 1000, LastRecordAt: &last}, TotalBytesCol: 50000},
			{Stream: "returns", Figures: retained.Figures{RecordCount: 200}, TotalBytesCol: 2000}}}
	run := runs.Fold("run_1", []runs.EventRow{
		{RunID: "run_1", Seq: 1, Type: "run.started", OccurredAt: "2026-11-20T08:55:00.000Z"},
		{RunID: "run_1", Seq: 2, Type: "run.completed", OccurredAt: "2026-11-20T09:00:00.000Z"},
	}, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), 30*time.Minute)
	ev := &runs.ConnectionEvidence{LastRun: &run, LastSuccessfulRun: &run}
	in := summary.Input{Entry: catalog.Entry{Connection: c, Connector: k}, Retained: ret, Evidence: ev,
		EvidenceKind: "read_model", Now: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		it := summary.Project(in)
		if it.Health.State != "healthy" {
			b.Fatal(it.Health)
		}
	}
}
