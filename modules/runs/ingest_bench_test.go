package runs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

// BenchmarkAppend1000 measures spine ingest in batches of 1000 events (≈200 runs of 5 events),
// on both engines, with and without maintaining the read model. Report: events/s.
func BenchmarkAppend1000(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"spine", "read_model"} {
			b.Run(engine+"/"+mode, func(b *testing.B) {
				t := &testing.T{}
				var db *bun.DB
				if engine == "sqlite" {
					db = dbtest.SQLite(t)
				} else {
					db = dbtest.Postgres(t)
				}
				benchAppend(b, db, mode == "read_model")
			})
		}
	}
}

func benchAppend(b *testing.B, db *bun.DB, model bool) {
	ctx := context.Background()
	now := time.Now
	rm := runs.NewReadModel(db, runs.Options{}, now)
	var hook runs.AppendHook
	cat := catalog.NewStore(db, now)
	if model {
		hook = rm
		cat = cat.WithHook(rm)
	}
	m, _ := catalog.ParseManifest([]byte(`{"display_name":"Gmail"}`))
	if _, _, err := cat.PutConnector(ctx, "gmail", m); err != nil {
		b.Fatal(err)
	}
	if _, _, err := cat.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: "gmail", ConnectionID: "cin_g",
		Status: "active", SourceKind: "account", SourceBindingKey: "g"}); err != nil {
		b.Fatal(err)
	}
	ing := runs.NewIngester(db, now, hook)
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	batch := func(n int) []*runs.Event {
		out := make([]*runs.Event, 0, 1000)
		for i := 0; i < 1000; i++ {
			typ := []string{"run.started", "run.progress", "run.progress", "run.progress", "run.completed"}[i%5]
			raw, _ := json.Marshal(map[string]any{"event_id": fmt.Sprintf("b%d_%d", n, i), "event_type": typ,
				"occurred_at": t0.Add(time.Duration(n*1000+i) * time.Second).Format(time.RFC3339Nano),
				"run_id":      fmt.Sprintf("r%d_%d", n, i/5), "connection_id": "cin_g", "status": "running",
				"data": map[string]any{"records": i}})
			e, err := runs.ParseEvent(raw, "x")
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		evs := batch(n)
		b.StartTimer()
		if _, err := ing.Append(ctx, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
