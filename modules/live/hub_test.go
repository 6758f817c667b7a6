package live_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/goleak"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/live"
	"connsum/modules/retained"
	"connsum/modules/revision"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
	"connsum/modules/summary"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type ev = map[string]any

// fixture is one database with the service's stores and a hub over them that a test steps by
// hand (Hub.Step), at moments of a fake clock.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	db    *bun.DB
	clock *clock
	cat   *catalog.Store
	ing   *runs.Ingester
	ret   *retained.Store
	proj  *summary.Projector
	hub   *live.Hub
}

func newFixture(t *testing.T, db *bun.DB, o live.Options) *fixture {
	clk := &clock{t: t0}
	rm := runs.NewReadModel(db, runs.Options{}, clk.Now)
	f := &fixture{t: t, ctx: context.Background(), db: db, clock: clk, cat: catalog.NewStore(db, clk.Now).WithHook(rm),
		ing: runs.NewIngester(db, clk.Now, rm), ret: retained.NewStore(db, clk.Now)}
	ev := runs.NewReadModelEvidence(rm)
	f.proj = summary.NewProjector(f.cat, f.ret, ev, ev, clk.Now)
	f.hub = live.NewHub(f.proj, revision.Reader{DB: db}, clk.Now, o, nil)
	return f
}

func (f *fixture) step() {
	f.t.Helper()
	if err := f.hub.Step(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) connector(id, manifest string) {
	runstest.PutConnector(f.t, f.ctx, f.cat, id, manifest)
}

func (f *fixture) connection(connector, id string) {
	f.t.Helper()
	name := "Account " + id
	if _, _, err := f.cat.CreateConnection(f.ctx, catalog.ConnectionInput{ConnectorID: connector, ConnectionID: id, DisplayName: &name,
		Status: catalog.StatusActive, SourceKind: "account", SourceBindingKey: id}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rename(id, name string) {
	f.t.Helper()
	if _, err := f.cat.PatchConnection(f.ctx, id, catalog.ConnectionPatch{DisplayName: &name}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) status(id, status string) {
	f.t.Helper()
	if _, err := f.cat.PatchConnection(f.ctx, id, catalog.ConnectionPatch{Status: &status}); err != nil {
		f.t.Fatal(err)
	}
}

// run appends a run of connector naming connection, started at start; terminal "" leaves it
// in progress.
func (f *fixture) run(connector, connection, runID string, start time.Time, terminal string) {
	f.t.Helper()
	evs := []ev{{"event_type": "run.started", "occurred_at": start.Format(time.RFC3339Nano), "run_id": runID,
		"source_kind": "connector", "source_id": connector, "connection_id": connection}}
	if terminal != "" {
		evs = append(evs, ev{"event_type": terminal, "occurred_at": start.Add(time.Minute).Format(time.RFC3339Nano), "run_id": runID,
			"source_kind": "connector", "source_id": connector, "connection_id": connection})
	}
	runstest.Append(f.t, f.ctx, f.ing, evs...)
}

// overview is the current overview, item by connection id, as JSON.
func (f *fixture) overview() map[string]string {
	f.t.Helper()
	res, err := f.proj.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]string{}
	for i := range res.Items {
		b, _ := json.Marshal(&res.Items[i])
		out[res.Items[i].ConnectionID] = string(b)
	}
	return out
}

// got is one received event, decoded.
type got struct {
	id, typ, connection string
	revision            int64
	item                string // the item's JSON for item events
	reason              string
}

func decode(t *testing.T, e *live.Event) got {
	t.Helper()
	var d struct {
		Revision     int64           `json:"revision"`
		Item         json.RawMessage `json:"item"`
		ConnectionID string          `json:"connection_id"`
		Reason       string          `json:"reason"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		t.Fatalf("event %s data %s: %v", e.Type, e.Data, err)
	}
	g := got{id: e.ID, typ: e.Type, revision: d.Revision, item: string(d.Item), connection: d.ConnectionID, reason: d.Reason}
	if e.Type == live.EventItem {
		var it struct {
			ConnectionID string `json:"connection_id"`
		}
		_ = json.Unmarshal(d.Item, &it)
		g.connection = it.ConnectionID
	}
	return g
}

// drain takes every event queued on s now.
func drain(t *testing.T, s *live.Subscription) []got {
	t.Helper()
	var out []got
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				return out
			}
			out = append(out, decode(t, e))
		default:
			return out
		}
	}
}

func types(gs []got) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.typ + ":" + g.connection
	}
	return out
}

const staleManifest = `{"display_name":"Gmail","capabilities":{"refresh_policy":{"maximum_staleness_seconds":3600}}}`

func TestStreamSendsEachChangeOnceAndRemovals(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{})
		f.connector("gmail", staleManifest)
		f.connection("gmail", "cin_a")
		sub, err := f.hub.Subscribe(live.Filter{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		f.step()
		first := drain(t, sub)
		if len(first) != 1 || first[0].typ != live.EventRevision || first[0].revision != 2 {
			t.Fatalf("first events %+v, want the revision (2) only", first)
		}
		f.connection("gmail", "cin_b")
		f.rename("cin_a", "Work mail")
		f.step()
		gs := drain(t, sub)
		if fmt.Sprint(types(gs)) != "[item:cin_a item:cin_b]" && fmt.Sprint(types(gs)) != "[item:cin_b item:cin_a]" {
			t.Fatalf("after a create and a rename: %v", types(gs))
		}
		want := f.overview()
		for _, g := range gs {
			if g.revision != 4 || g.item != want[g.connection] {
				t.Errorf("%s at revision %d: %s\nwant the overview's item at 4: %s", g.connection, g.revision, g.item, want[g.connection])
			}
		}
		f.step()
		if gs := drain(t, sub); len(gs) != 0 {
			t.Fatalf("a step without a write sent %v", types(gs))
		}
		// A write that changes nothing an item shows (the same name again) sends nothing.
		f.rename("cin_a", "Work mail")
		f.step()
		if gs := drain(t, sub); len(gs) != 0 {
			t.Fatalf("a write that changed no item sent %v", types(gs))
		}
		f.status("cin_b", catalog.StatusDraft)
		f.step()
		if gs := drain(t, sub); fmt.Sprint(types(gs)) != "[removed:cin_b]" || gs[0].revision != 6 {
			t.Fatalf("after cin_b became a draft: %+v", gs)
		}
		// Unlisting the connector removes its connections.
		f.connector("gmail", `{"display_name":"Gmail","capabilities":{"public_listing":{"listed":false}}}`)
		f.step()
		if gs := drain(t, sub); fmt.Sprint(types(gs)) != "[removed:cin_a]" {
			t.Fatalf("after unlisting gmail: %v", types(gs))
		}
	})
}

func TestStreamFiltersAndResumes(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{})
		f.connector("gmail", staleManifest)
		f.connector("chase", `{"display_name":"Chase"}`)
		f.connection("gmail", "cin_g1")
		f.connection("gmail", "cin_g2")
		f.connection("chase", "cin_c1") // revision 5
		onlyChase, _ := f.hub.Subscribe(live.Filter{ConnectorID: "chase"}, nil)
		defer onlyChase.Close()
		onlyG2, _ := f.hub.Subscribe(live.Filter{ConnectionID: "cin_g2"}, nil)
		defer onlyG2.Close()
		f.step()
		drain(t, onlyChase)
		drain(t, onlyG2)
		f.rename("cin_g1", "one")  // 6
		f.rename("cin_g2", "two")  // 7
		f.rename("cin_c1", "card") // 8
		f.step()
		if gs := drain(t, onlyChase); fmt.Sprint(types(gs)) != "[item:cin_c1]" {
			t.Errorf("connector filter: %v", types(gs))
		}
		if gs := drain(t, onlyG2); fmt.Sprint(types(gs)) != "[item:cin_g2]" {
			t.Errorf("connection filter: %v", types(gs))
		}
		// A client that saw revision 6 gets exactly what changed after it, as it is now.
		f.rename("cin_g2", "two again") // 9
		f.status("cin_g1", catalog.StatusDraft)
		back, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: 6})
		defer back.Close()
		f.step()
		gs := drain(t, back)
		kinds := map[string]string{}
		for _, g := range gs[1:] {
			kinds[g.connection] = g.typ
			if g.revision != 10 {
				t.Errorf("replayed %s at revision %d, want the view's 10", g.connection, g.revision)
			}
		}
		if gs[0].typ != live.EventRevision || gs[0].revision != 10 || len(gs) != 4 ||
			kinds["cin_g2"] != live.EventItem || kinds["cin_c1"] != live.EventItem || kinds["cin_g1"] != live.EventRemoved {
			t.Fatalf("resume from 6: %+v", gs)
		}
		// From the current revision nothing is missed; from a revision the database never had,
		// or one the log no longer holds, the client must resync.
		same, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: 10, At: f.clock.Now()})
		defer same.Close()
		ahead, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: 99})
		f.step()
		if gs := drain(t, same); len(gs) != 1 || gs[0].typ != live.EventRevision {
			t.Errorf("resume from the current revision: %+v", gs)
		}
		gs = drain(t, ahead)
		if len(gs) != 1 || gs[0].typ != live.EventResync || gs[0].reason != "too_far_behind" || ahead.Reason() != "too_far_behind" {
			t.Errorf("resume from a revision ahead of the database: %+v (reason %q)", gs, ahead.Reason())
		}
	})
}

func TestStreamSendsTimeDrivenChanges(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{})
		f.connector("gmail", staleManifest) // stale after an hour
		f.connection("gmail", "cin_fresh")
		f.connection("gmail", "cin_running")
		f.run("gmail", "cin_fresh", "r1", t0.Add(-10*time.Minute), "run.completed") // last_at t0-9m: current until t0+51m
		f.run("gmail", "cin_running", "r2", t0.Add(-5*time.Minute), "")             // in progress until t0+25m (stale_after 30m)
		sub, _ := f.hub.Subscribe(live.Filter{}, nil)
		defer sub.Close()
		f.step()
		start := drain(t, sub)
		f.clock.Advance(25 * time.Minute) // the last moment cin_running is in progress
		f.step()
		if gs := drain(t, sub); len(gs) != 0 {
			t.Fatalf("at the last moment in progress: %v", types(gs))
		}
		f.clock.Advance(time.Millisecond)
		f.step()
		gs := drain(t, sub)
		if fmt.Sprint(types(gs)) != "[item:cin_running]" || gs[0].revision != start[0].revision {
			t.Fatalf("after stale_after: %+v", gs)
		}
		var it summary.Item
		_ = json.Unmarshal([]byte(gs[0].item), &it)
		if it.LastRun == nil || it.LastRun.Status != runs.StatusFailed || it.Health.State != summary.HealthFailing {
			t.Fatalf("orphaned item: %s", gs[0].item)
		}
		afterOrphan := f.clock.Now()
		f.clock.Advance(26 * time.Minute) // t0+51m+1ms: cin_fresh is past an hour
		f.step()
		gs = drain(t, sub)
		if fmt.Sprint(types(gs)) != "[item:cin_fresh]" || !json.Valid([]byte(gs[0].item)) {
			t.Fatalf("after maximum_staleness: %v", types(gs))
		}
		_ = json.Unmarshal([]byte(gs[0].item), &it)
		if it.Freshness.Status != "stale" || it.Health.Reason != summary.ReasonMaxStaleness {
			t.Fatalf("stale item: %s", gs[0].item)
		}
		// A client that stopped listening before the orphaning learns of both turns on resume; one
		// that heard the orphaning only of the staleness.
		early, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: start[0].revision, At: t0})
		defer early.Close()
		late, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: start[0].revision, At: afterOrphan})
		defer late.Close()
		// A bare revision stands at its write's time (t0, the fixture's clock then): both turns.
		bare, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: start[0].revision})
		defer bare.Close()
		f.step()
		if gs := drain(t, bare); len(gs) != 3 {
			t.Errorf("resume from a bare revision written before both turns: %v", types(gs))
		}
		if gs := drain(t, early); len(gs) != 3 {
			t.Errorf("resume from before both turns: %v", types(gs))
		}
		if gs := drain(t, late); fmt.Sprint(types(gs)) != "[revision: item:cin_fresh]" {
			t.Errorf("resume from between the turns: %v", types(gs))
		}
	})
}

func TestSlowSubscriberIsToldToResync(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{QueueLength: 16})
		f.connector("gmail", staleManifest)
		f.connection("gmail", "cin_a")
		stalled, _ := f.hub.Subscribe(live.Filter{}, nil)
		reader, _ := f.hub.Subscribe(live.Filter{}, nil)
		defer reader.Close()
		f.step()
		var heard []got
		for i := 0; i < 40; i++ {
			f.rename("cin_a", fmt.Sprintf("name %d", i))
			f.step()
			heard = append(heard, drain(t, reader)...)
		}
		if stalled.Reason() != "slow" {
			t.Fatalf("a subscriber 40 events behind with a queue of 16: reason %q", stalled.Reason())
		}
		var last got
		n := 0
		for e := range stalled.Events() { // closed: ranging ends
			last = decode(t, e)
			n++
		}
		if last.typ != live.EventResync || last.reason != "slow" || n > 18 {
			t.Fatalf("the stalled subscriber's queue ends with %+v after %d events", last, n)
		}
		if len(heard) != 41 || f.hub.Subscribers() != 1 {
			t.Fatalf("the reading subscriber heard %d events (want 41), %d subscribers left", len(heard), f.hub.Subscribers())
		}
	})
}

func TestSubscriberCap(t *testing.T) {
	db := dbtest.SQLite(t)
	f := newFixture(t, db, live.Options{MaxSubscribers: 2})
	a, _ := f.hub.Subscribe(live.Filter{}, nil)
	b, _ := f.hub.Subscribe(live.Filter{}, nil)
	if _, err := f.hub.Subscribe(live.Filter{}, nil); err != live.ErrFull {
		t.Fatalf("a third subscriber: %v, want ErrFull", err)
	}
	a.Close()
	c, err := f.hub.Subscribe(live.Filter{}, nil)
	if err != nil {
		t.Fatalf("after one left: %v", err)
	}
	b.Close()
	c.Close()
	f.hub.Drain()
	if _, err := f.hub.Subscribe(live.Filter{}, nil); err != live.ErrClosed {
		t.Fatalf("after Drain: %v, want ErrClosed", err)
	}
}

// TestStreamUnderConcurrentWriters: writers of every kind race while the hub steps; each
// subscriber hears changes in revision order, never the same state of an item twice in a row,
// and ends with exactly the overview — and the read model equals a rebuild from the log.
func TestStreamUnderConcurrentWriters(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{QueueLength: 100000})
		f.connector("gmail", staleManifest)
		f.connector("chase", `{"display_name":"Chase"}`)
		for i := 0; i < 6; i++ {
			f.connection([]string{"gmail", "chase"}[i%2], fmt.Sprintf("cin_%d", i))
		}
		sub, _ := f.hub.Subscribe(live.Filter{}, nil)
		defer sub.Close()
		f.step()
		drain(t, sub)
		before := f.overview()
		done, failed := f.race(4, 10, func(i int) writeKind { return []writeKind{writeRename, writeRetained, writeIngest}[i%3] })
		var heard []got
		for stop := false; !stop; {
			select {
			case <-done:
				stop = true
			default:
			}
			f.step()
			heard = append(heard, drain(t, sub)...)
		}
		if err := failed(); err != nil {
			t.Fatal(err)
		}
		f.step()
		heard = append(heard, drain(t, sub)...)
		state := map[string]string{}
		for k, v := range before {
			state[k] = v
		}
		var lastRev int64
		for _, g := range heard {
			if g.revision < lastRev {
				t.Fatalf("revision went back from %d to %d", lastRev, g.revision)
			}
			lastRev = g.revision
			if g.typ != live.EventItem {
				t.Fatalf("unexpected %s event", g.typ)
			}
			if state[g.connection] == g.item {
				t.Fatalf("%s: the same state sent twice in a row", g.connection)
			}
			state[g.connection] = g.item
		}
		after := f.overview()
		for id, want := range after {
			if state[id] != want {
				t.Errorf("%s: the stream ends with\n%s\nthe overview is\n%s", id, state[id], want)
			}
		}
		// The last write may have changed no item (a run older than the connection's last run
		// leaves its item as it was): the last event is at or before the database's revision.
		if rev, _ := revision.Current(f.ctx, db); lastRev > rev || lastRev == 0 {
			t.Errorf("last event at revision %d, the database is at %d", lastRev, rev)
		}
		if len(heard) < 6 {
			t.Errorf("only %d events for 40 writes over 6 connections", len(heard))
		}
		runstest.RequireRebuildFixesNothing(t, f.ctx, db, f.clock.Now)
	})
}

// writeKind is one kind of write the concurrency tests race against each other.
type writeKind int

const (
	writeRename    writeKind = iota // PATCH display_name
	writeRetained                   // retained PUT
	writeIngest                     // an append (a run started or completed)
	writeStatus                     // PATCH status: draft, active, paused (removals, re-appearances)
	writeConnector                  // connector PUT, listed or not (a connector's rows leave and return)
	writeCreate                     // a new connection
)

// write makes writer w's i-th write, of kind k, over connections cin_0..cin_5 of gmail and chase.
func (f *fixture) write(w, i int, k writeKind) error {
	id := fmt.Sprintf("cin_%d", (w+i)%6)
	switch k {
	case writeRename:
		name := fmt.Sprintf("w%d-%d", w, i)
		_, err := f.cat.PatchConnection(f.ctx, id, catalog.ConnectionPatch{DisplayName: &name})
		return err
	case writeRetained:
		_, err := f.ret.Put(f.ctx, id, "mail", retained.Figures{RecordCount: int64(w*100 + i)})
		return err
	case writeStatus:
		st := []string{catalog.StatusDraft, catalog.StatusActive, catalog.StatusPaused}[(w+i)%3]
		_, err := f.cat.PatchConnection(f.ctx, id, catalog.ConnectionPatch{Status: &st})
		return err
	case writeConnector:
		m := staleManifest
		if (w+i)%2 == 0 {
			m = `{"display_name":"Gmail ` + fmt.Sprint(w, i) + `","capabilities":{"public_listing":{"listed":false}}}`
		}
		mm, err := catalog.ParseManifest([]byte(m))
		if err == nil {
			_, _, err = f.cat.PutConnector(f.ctx, "gmail", mm)
		}
		return err
	case writeCreate:
		name := "new"
		_, _, err := f.cat.CreateConnection(f.ctx, catalog.ConnectionInput{ConnectorID: "chase", ConnectionID: fmt.Sprintf("cin_n%d_%d", w, i),
			DisplayName: &name, Status: catalog.StatusActive, SourceKind: "account", SourceBindingKey: fmt.Sprintf("n%d_%d", w, i)})
		return err
	}
	typ := []string{"run.completed", "run.started"}[(w+i)%2]
	evs := runstest.Parse(f.t, ev{"event_type": typ, "occurred_at": t0.Add(time.Duration(w*10+i) * time.Second).Format(time.RFC3339Nano),
		"run_id": fmt.Sprintf("r%d-%d", w, i), "source_kind": "connector", "source_id": []string{"gmail", "chase"}[((w+i)%6)%2], "connection_id": id})
	_, err := f.ing.Append(f.ctx, evs)
	return err
}

// race starts writers goroutines that each make each writes, the i-th of kind kindOf(i). done
// closes when they all stopped; failed then reports the first error.
func (f *fixture) race(writers, each int, kindOf func(i int) writeKind) (done <-chan struct{}, failed func() error) {
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := f.write(w, i, kindOf(i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch, func() error {
		<-ch
		close(errs)
		return <-errs
	}
}
