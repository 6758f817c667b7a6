package live_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/live"
	"connsum/modules/revision"
	"connsum/modules/runs/runstest"
	"connsum/modules/summary"
)

// Several events of one step share one position: a client whose connection drops after the
// first of them must not resume past the rest (found by review: every event carried the id).
func TestReviewResumeAfterPartialBatch(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{})
		f.connector("gmail", staleManifest)
		f.connection("gmail", "cin_a")
		f.connection("gmail", "cin_b")
		sub, _ := f.hub.Subscribe(live.Filter{}, nil)
		f.step()
		lastID := "" // what an EventSource sends as Last-Event-ID: the latest id it saw
		for _, g := range drain(t, sub) {
			if g.id != "" {
				lastID = g.id
			}
		}
		// Two writes land between two steps (or one connector PUT changes both items).
		f.rename("cin_a", "A2")
		f.rename("cin_b", "B2")
		f.step()
		var evs []*live.Event
		for len(evs) < 2 {
			evs = append(evs, <-sub.Events())
		}
		t.Logf("ids: %s %s", evs[0].ID, evs[1].ID)
		first := decode(t, evs[0])
		second := decode(t, evs[1])
		sub.Close() // the connection drops after the first event was dispatched
		if evs[0].ID != "" {
			lastID = evs[0].ID
		}
		if evs[0].ID != "" || evs[1].ID == "" {
			t.Errorf("only the last event of a step carries the step's id: %q, %q", evs[0].ID, evs[1].ID)
		}
		pos, ok := live.ParsePosition(lastID)
		if !ok {
			t.Fatal(lastID)
		}
		back, _ := f.hub.Subscribe(live.Filter{}, &pos)
		defer back.Close()
		f.step()
		gs := drain(t, back)
		found := false
		for _, g := range gs {
			if g.connection == second.connection {
				found = true
			}
		}
		if !found {
			t.Errorf("got %s first (id %s); resumed from that id, the stream never sends %s: %v", first.connection, evs[0].ID, second.connection, types(gs))
		}
	})
}

// Found in review: on resume, a removal is sent with connector_id "" — a subscriber filtered by
// connector_id drops it.
func TestReviewResumeRemovalWithConnectorFilter(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{})
		f.connector("gmail", staleManifest)
		f.connection("gmail", "cin_a")
		f.connection("gmail", "cin_b") // 3
		sub, _ := f.hub.Subscribe(live.Filter{ConnectorID: "gmail"}, nil)
		f.step()
		gs := drain(t, sub)
		rev := gs[0].revision
		sub.Close()
		f.status("cin_b", catalog.StatusDraft)
		back, _ := f.hub.Subscribe(live.Filter{ConnectorID: "gmail"}, &live.Position{Revision: rev})
		defer back.Close()
		f.step()
		gs = drain(t, back)
		if fmt.Sprint(types(gs)) != "[revision: removed:cin_b]" {
			t.Errorf("resume with ?connector_id=gmail after cin_b became a draft: %v", types(gs))
		}
		// Same for a connection filter.
		all, _ := f.hub.Subscribe(live.Filter{ConnectionID: "cin_b"}, &live.Position{Revision: rev})
		defer all.Close()
		f.step()
		if gs := drain(t, all); fmt.Sprint(types(gs)) != "[revision: removed:cin_b]" {
			t.Errorf("resume with ?connection=cin_b: %v", types(gs))
		}
	})
}

// Found in review: concurrent writers of every kind (removals and re-appearances included) while a
// subscriber keeps leaving and resuming from the last event of a complete step; its state must
// end equal to the overview, on both engines.
func TestReviewResumeChurnUnderConcurrentWriters(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFixture(t, db, live.Options{QueueLength: 100000})
		f.connector("gmail", staleManifest)
		f.connector("chase", `{"display_name":"Chase"}`)
		for i := 0; i < 6; i++ {
			f.connection([]string{"gmail", "chase"}[i%2], fmt.Sprintf("cin_%d", i))
		}
		state := map[string]string{}
		for k, v := range f.overview() {
			state[k] = v
		}
		sub, _ := f.hub.Subscribe(live.Filter{}, nil)
		f.step()
		var last string
		for _, e := range drainRaw(sub) {
			last = e.ID
		}
		done, failed := f.race(4, 25, func(i int) writeKind {
			return []writeKind{writeRename, writeRetained, writeStatus, writeConnector, writeCreate, writeIngest}[i%6]
		})
		apply := func(evs []*live.Event) {
			for _, e := range evs {
				g := decode(t, e)
				switch g.typ {
				case live.EventItem:
					state[g.connection] = g.item
				case live.EventRemoved:
					delete(state, g.connection)
				case live.EventResync:
					t.Fatalf("resync: %+v", g)
				}
				if e.ID != "" { // what an EventSource keeps as its last event id
					last = e.ID
				}
			}
		}
		resumes := 0
		for n, stop := 0, false; !stop; n++ {
			select {
			case <-done:
				stop = true
			default:
			}
			f.step()
			apply(drainRaw(sub))
			if n%3 == 0 {
				sub.Close()
				pos, ok := live.ParsePosition(last)
				if !ok {
					t.Fatalf("last event id %q", last)
				}
				sub, _ = f.hub.Subscribe(live.Filter{}, &pos)
				resumes++
			}
		}
		if err := failed(); err != nil {
			t.Fatal(err)
		}
		f.step()
		apply(drainRaw(sub))
		sub.Close()
		want := f.overview()
		for id, w := range want {
			if state[id] != w {
				t.Errorf("%s: the resumed client has\n%s\nthe overview\n%s", id, state[id], w)
			}
		}
		for id := range state {
			if _, ok := want[id]; !ok {
				t.Errorf("%s: the client still shows it; the overview does not", id)
			}
		}
		t.Logf("%d resumes, %d items", resumes, len(want))
		runstest.RequireRebuildFixesNothing(t, f.ctx, db, f.clock.Now)
	})
}

func drainRaw(s *live.Subscription) []*live.Event {
	var out []*live.Event
	for {
		select {
		case e, ok := <-s.Events():
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// Found in review: the console resumes from a bare revision (the page's), which re-sends every item the
// clock ever turned; with more such items than the queue holds the new subscriber is dropped as
// "slow" before it reads anything, on every page load.
func TestReviewBareRevisionResumeWithManyTurnedItems(t *testing.T) {
	db := dbtest.SQLite(t)
	f := newFixture(t, db, live.Options{QueueLength: 16})
	f.connector("gmail", staleManifest)
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("cin_%02d", i)
		f.connection("gmail", id)
		f.run("gmail", id, "r"+id, t0.Add(-3*time.Hour), "run.completed") // stale by age since t0-2h
	}
	res, err := f.proj.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview})
	if err != nil {
		t.Fatal(err)
	}
	rev, _ := revision.Current(f.ctx, db)
	t.Logf("page rendered at revision %d with %d items (all stale by age)", rev, len(res.Items))
	sub, _ := f.hub.Subscribe(live.Filter{}, &live.Position{Revision: rev})
	f.step()
	gs := drain(t, sub)
	if sub.Reason() == "slow" {
		t.Errorf("a page that is up to date connects and is told to resync at once: %v (reason %q)", types(gs)[len(gs)-1:], sub.Reason())
	}
	t.Logf("%d events on connect", len(gs))
}
