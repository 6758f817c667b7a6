package runs_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
)

// feedT0 is the base time of every fixture; runs are placed relative to it.
var feedT0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// feedClock is a settable clock for staleness decisions.
type feedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *feedClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *feedClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// feedEv is one spine event as a client would send it.
type feedEv map[string]any

// feedFixture seeds connectors, connections and spine events through the stores.
type feedFixture struct {
	t     *testing.T
	ctx   context.Context
	db    *bun.DB
	clock *feedClock
	cat   *catalog.Store
	ing   *runs.Ingester
}

func newFeedFixture(t *testing.T, db *bun.DB) *feedFixture {
	t.Helper()
	clk := &feedClock{t: feedT0.Add(24 * time.Hour)}
	rm := runs.NewReadModel(db, runs.Options{}, clk.Now)
	return &feedFixture{t: t, ctx: context.Background(), db: db, clock: clk,
		cat: catalog.NewStore(db, clk.Now).WithHook(rm), ing: runs.NewIngester(db, clk.Now, rm)}
}

func (f *feedFixture) connector(id, manifest string) {
	f.t.Helper()
	runstest.PutConnector(f.t, f.ctx, f.cat, id, manifest)
}

func (f *feedFixture) connection(connectorID, id, status string) {
	f.t.Helper()
	_, _, err := f.cat.CreateConnection(f.ctx, catalog.ConnectionInput{ConnectorID: connectorID, ConnectionID: id,
		Status: status, SourceKind: "account", SourceBindingKey: id})
	if err != nil {
		f.t.Fatalf("create connection %s: %v", id, err)
	}
}

func (f *feedFixture) add(evs ...feedEv) {
	f.t.Helper()
	runstest.Append(f.t, f.ctx, f.ing, evs...)
}

// entries returns the visible entries by connection id, plus any extra (e.g. draft) ones asked for.
func (f *feedFixture) entries(extra ...string) map[string]catalog.Entry {
	f.t.Helper()
	vis, err := f.cat.Visible(f.ctx, catalog.Filter{})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]catalog.Entry{}
	for _, e := range vis {
		out[e.Connection.ConnectionID] = e
	}
	for _, id := range extra {
		e, err := f.cat.Connection(f.ctx, id)
		if err != nil {
			f.t.Fatalf("connection %s: %v", id, err)
		}
		out[id] = *e
	}
	return out
}

func feedAt(d time.Duration) string { return feedT0.Add(d).Format(time.RFC3339Nano) }

// runEvents builds a run of connector: an optional browser-surface request carrying profileKey,
// run.started, then the terminal event (none when terminal is ""). first is merged into the
// first event (explicit connection evidence), last into the terminal event.
func runEvents(connector, runID, profileKey string, start time.Duration, terminal string, first, last feedEv) []feedEv {
	base := func(typ string, d time.Duration) feedEv {
		return feedEv{"event_type": typ, "occurred_at": feedAt(start + d), "run_id": runID,
			"source_kind": "connector", "source_id": connector}
	}
	var out []feedEv
	if profileKey != "" {
		e := base("run.browser_surface_requested", 0)
		e["status"] = "waiting_for_browser_surface"
		e["data"] = map[string]any{"browser_surface": map[string]any{"pending_run_id": runID,
			"browser_surface_status": "waiting_for_browser_surface", "browser_surface_lease_id": "lease_" + runID,
			"browser_surface_profile_key": profileKey}}
		out = append(out, e)
	}
	out = append(out, base("run.started", time.Second))
	if terminal != "" {
		e := base(terminal, time.Minute)
		e["status"] = map[string]string{"run.completed": "succeeded", "run.failed": "failed",
			"run.cancelled": "cancelled", "run.abandoned": "abandoned"}[terminal]
		out = append(out, e)
	}
	for k, v := range first {
		if k == "data" && out[0]["data"] != nil {
			d := out[0]["data"].(map[string]any)
			for dk, dv := range v.(map[string]any) {
				d[dk] = dv
			}
			continue
		}
		out[0][k] = v
	}
	for k, v := range last {
		out[len(out)-1][k] = v
	}
	return out
}

func runIDOf(s *runs.Summary) string {
	if s == nil {
		return "<nil>"
	}
	return s.RunID
}

var _ bootstrap.Clock = (&feedClock{}).Now
