package summary_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
	"connsum/modules/summary"
)

// sumT0 is the base time of the fixtures; runs are placed relative to it.
var sumT0 = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

// sumClock is a settable fake clock (bootstrap.Clock is its Now method).
type sumClock struct {
	mu sync.Mutex
	t  time.Time
}

func newSumClock(t time.Time) *sumClock { return &sumClock{t: t} }

func (c *sumClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *sumClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func (c *sumClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// sumEv is one spine event as a client sends it.
type sumEv map[string]any

// sumFixture seeds a database through the stores and builds projectors over it.
type sumFixture struct {
	t     *testing.T
	ctx   context.Context
	db    *bun.DB
	clock *sumClock
	cat   *catalog.Store
	ing   *runs.Ingester
	ret   *retained.Store
}

func newSumFixture(t *testing.T, db *bun.DB) *sumFixture {
	t.Helper()
	clk := newSumClock(sumT0.Add(-24 * time.Hour))
	rm := runs.NewReadModel(db, runs.Options{}, clk.Now)
	return &sumFixture{t: t, ctx: context.Background(), db: db, clock: clk,
		cat: catalog.NewStore(db, clk.Now).WithHook(rm), ing: runs.NewIngester(db, clk.Now, rm), ret: retained.NewStore(db, clk.Now)}
}

func (f *sumFixture) connector(id, manifest string) {
	f.t.Helper()
	runstest.PutConnector(f.t, f.ctx, f.cat, id, manifest)
}

// connection creates a connection now and moves the clock on by a second, so creation order is
// created_at order.
func (f *sumFixture) connection(connectorID, id, status string) {
	f.t.Helper()
	name := "Account " + id
	_, _, err := f.cat.CreateConnection(f.ctx, catalog.ConnectionInput{ConnectorID: connectorID, ConnectionID: id,
		DisplayName: &name, Status: status, SourceKind: "account", SourceBindingKey: id})
	if err != nil {
		f.t.Fatalf("create connection %s: %v", id, err)
	}
	f.clock.Advance(time.Second)
}

func (f *sumFixture) retained(connectionID, stream string, records, jsonBytes, blobBytes int64) {
	f.t.Helper()
	if _, err := f.ret.Put(f.ctx, connectionID, stream, retained.Figures{RecordCount: records, RecordJSONBytes: jsonBytes,
		RecordChangesCount: 1, RecordChangesJSONBytes: 10, BlobCount: 1, BlobBytes: blobBytes}); err != nil {
		f.t.Fatalf("retained %s/%s: %v", connectionID, stream, err)
	}
}

func (f *sumFixture) add(evs ...sumEv) {
	f.t.Helper()
	runstest.Append(f.t, f.ctx, f.ing, evs...)
}

// projector builds the deep/scoped/overview projector over the stores, with the retained
// snapshot replaceable (nil: the store).
func (f *sumFixture) projector(pageSize int, snap retained.Snapshot) *summary.Projector {
	if snap == nil {
		snap = f.ret
	}
	src := runs.NewPageSource(f.db, runs.Options{PageSize: pageSize}, f.clock.Now)
	return summary.NewProjector(f.cat, snap, runs.NewSpineEvidence(src), runs.Shallow{}, f.clock.Now)
}

func sumAt(d time.Duration) string { return sumT0.Add(d).Format(time.RFC3339Nano) }

// sumRun builds a run of connector: a browser-surface request carrying profileKey (when not
// empty), run.started one second later and the terminal event one minute after start (none when
// terminal is ""). first is merged into the first event.
func sumRun(connector, runID, profileKey string, start time.Duration, terminal string, first sumEv) []sumEv {
	base := func(typ string, d time.Duration) sumEv {
		return sumEv{"event_type": typ, "occurred_at": sumAt(start + d), "run_id": runID, "source_kind": "connector", "source_id": connector}
	}
	var out []sumEv
	if profileKey != "" {
		e := base("run.browser_surface_requested", 0)
		e["status"] = "waiting_for_browser_surface"
		e["data"] = map[string]any{"browser_surface": map[string]any{"pending_run_id": runID,
			"browser_surface_status": "waiting_for_browser_surface", "browser_surface_profile_key": profileKey}}
		out = append(out, e)
	}
	out = append(out, base("run.started", time.Second))
	if terminal != "" {
		e := base(terminal, time.Minute)
		if terminal == "run.failed" {
			e["data"] = map[string]any{"reason": "login_required"}
		}
		out = append(out, e)
	}
	for k, v := range first {
		out[0][k] = v
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func itemIDs(items []summary.Item) []string {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.ConnectionID)
	}
	return ids
}

func lastRunID(s *runs.Summary) string {
	if s == nil {
		return "<nil>"
	}
	return s.RunID
}
