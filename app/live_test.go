package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// sseEvent is one Server-Sent Event as read off the wire.
type sseEvent struct {
	ID, Type, Data string
}

// sseStream is an open GET /_ref/connectors/stream over the network.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream opens the change stream on h's listener as the owner (bearer) with extra headers.
func openStream(t *testing.T, addr, query string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/_ref/connectors/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+testOwnerToken)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{t: t, resp: resp, events: make(chan sseEvent, 1024), cancel: cancel}
	t.Cleanup(s.close)
	if resp.StatusCode != http.StatusOK {
		return s
	}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Type != "" {
					s.events <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				e.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.Type = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.Data = line[6:]
			}
		}
	}()
	return s
}

func (s *sseStream) close() {
	s.cancel()
	_, _ = io.Copy(io.Discard, s.resp.Body)
	s.resp.Body.Close()
}

// next waits for the next event that satisfies keep (a bound, not a timing assertion: the
// change arrives within milliseconds; the bound only keeps a broken stream from hanging the test).
func (s *sseStream) next(keep func(sseEvent) bool) sseEvent {
	s.t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				s.t.Fatal("the stream ended")
			}
			if keep(e) {
				return e
			}
		case <-deadline:
			s.t.Fatal("no matching event within 20 s")
		}
	}
}

func itemOf(t *testing.T, e sseEvent) map[string]any {
	t.Helper()
	var d struct {
		Item map[string]any `json:"item"`
	}
	if err := json.Unmarshal([]byte(e.Data), &d); err != nil || d.Item == nil {
		t.Fatalf("event %s data %s: %v", e.Type, e.Data, err)
	}
	return d.Item
}

func itemFor(id string) func(sseEvent) bool {
	return func(e sseEvent) bool { return e.Type == "item" && strings.Contains(e.Data, `"connection_id":"`+id+`"`) }
}

// overviewItem is the connection's item in the overview, as the API answers it.
func overviewItem(t *testing.T, h *harness, id string) map[string]any {
	t.Helper()
	var env struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(h.do("GET", "/_ref/connectors", nil).body, &env); err != nil {
		t.Fatal(err)
	}
	for _, it := range env.Data {
		if it["connection_id"] == id {
			return it
		}
	}
	t.Fatalf("%s is not in the overview", id)
	return nil
}

func TestChangeStreamOverHTTP(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		s := openStream(t, h.addr, "", nil)
		if s.resp.StatusCode != 200 || !strings.HasPrefix(s.resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: %d %s", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
		}
		first := s.next(func(sseEvent) bool { return true })
		if first.Type != "revision" || first.Data != `{"revision":1}` || !regexp.MustCompile(`^1\.\d+$`).MatchString(first.ID) {
			t.Fatalf("first event %+v, want the revision 1", first)
		}
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
		got := itemOf(t, s.next(itemFor("cin_a")))
		if want := overviewItem(t, h, "cin_a"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("streamed item\n%v\noverview item\n%v", got, want)
		}
		h.do("PATCH", "/_ref/connections/cin_a", map[string]any{"display_name": "Work"}).expect(t, 200)
		renamed := s.next(itemFor("cin_a"))
		if itemOf(t, renamed)["display_name"] != "Work" {
			t.Fatalf("after the rename: %s", renamed.Data)
		}
		s.close()
		// Missed while away: a retained write; the reconnect names the last event it got.
		h.do("PUT", "/_ref/connections/cin_a/retained/mail", retainedFigures(7)).expect(t, 200)
		back := openStream(t, h.addr, "", map[string]string{"Last-Event-ID": renamed.ID})
		if e := back.next(func(sseEvent) bool { return true }); e.Type != "revision" || e.Data != `{"revision":4}` {
			t.Fatalf("resumed stream starts with %+v", e)
		}
		if it := itemOf(t, back.next(func(sseEvent) bool { return true })); it["total_records"] != float64(7) {
			t.Fatalf("resumed stream's first item: %v", it)
		}
		// Bad requests are JSON errors before any stream starts.
		for _, q := range []string{"?last_event_id=x", "?connector_id=NOPE", "?connection=", "?since=1", "?connector_id=gmail&connection=cin_a"} {
			bad := openStream(t, h.addr, q, nil)
			body, _ := io.ReadAll(bad.resp.Body)
			if bad.resp.StatusCode != 400 || !strings.Contains(string(body), `"invalid_request"`) {
				t.Errorf("%s: %d %s", q, bad.resp.StatusCode, body)
			}
		}
	})
}

func TestConditionalGETs(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
		routes := []string{"/_ref/connectors", "/_ref/connectors?connector_id=gmail&limit=5", "/_ref/connectors?connection=cin_a",
			"/_ref/connectors?depth=deep", "/_ref/connections/cin_a/runs", "/_ref/fleet-health"}
		tags := map[string]string{}
		for _, r := range routes {
			first := h.do("GET", r, nil)
			tag := first.header.Get("ETag")
			if first.status != 200 || !regexp.MustCompile(`^"r2\.\d+\.[A-Za-z0-9_-]{12}"$`).MatchString(tag) {
				t.Fatalf("%s: %d ETag %q", r, first.status, tag)
			}
			if cc := first.header.Get("Cache-Control"); cc != "private, no-cache" {
				t.Errorf("%s: Cache-Control %q", r, cc)
			}
			for _, other := range tags {
				if other == tag {
					t.Errorf("%s has the tag of another route: %s", r, tag)
				}
			}
			tags[r] = tag
			again := h.do("GET", r, nil, withHeader("If-None-Match", tag))
			if again.status != 304 || len(again.body) != 0 || again.header.Get("ETag") != tag {
				t.Fatalf("%s with its own tag: %d %q ETag %q", r, again.status, again.body, again.header.Get("ETag"))
			}
			if weak := h.do("GET", r, nil, withHeader("If-None-Match", "W/"+tag)); weak.status != 304 {
				t.Errorf("%s with the weak form of its tag: %d", r, weak.status)
			}
		}
		// A 304 projects nothing.
		before := h.do("GET", "/metrics", nil, asBearer(testAdminToken)).body
		if r := h.do("GET", "/_ref/connectors", nil, withHeader("If-None-Match", tags["/_ref/connectors"])); r.status != 304 {
			t.Fatalf("repeat: %d", r.status)
		}
		after := h.do("GET", "/metrics", nil, asBearer(testAdminToken)).body
		count := regexp.MustCompile(`connsum_projection_duration_seconds_count\{pipeline="overview",result="ok"\} (\d+)`)
		if b, a := count.FindSubmatch(before), count.FindSubmatch(after); b == nil || a == nil || string(a[1]) != string(b[1]) {
			t.Errorf("overview projections before and after a 304: %s / %s", b, a)
		}
		// Any write changes every tag: a retained write (no catalog change) as well.
		h.do("PUT", "/_ref/connections/cin_a/retained/mail", retainedFigures(3)).expect(t, 200)
		for _, r := range routes {
			r2 := h.do("GET", r, nil, withHeader("If-None-Match", tags[r]))
			if r2.status != 200 || r2.header.Get("ETag") == tags[r] || !strings.HasPrefix(r2.header.Get("ETag"), `"r3.`) {
				t.Errorf("%s after a write: %d ETag %s (was %s)", r, r2.status, r2.header.Get("ETag"), tags[r])
			}
		}
		if ov := overviewItem(t, h, "cin_a"); ov["total_records"] != float64(3) {
			t.Errorf("the overview right after the write: %v", ov["total_records"])
		}
	})
}

// retainedFigures is a retained-size body with records records.
func retainedFigures(records int) string {
	return fmt.Sprintf(`{"record_count":%d,"record_json_bytes":%d,"record_changes_count":0,"record_changes_json_bytes":0,"blob_count":0,"blob_bytes":0}`, records, 10*records)
}

// TestReplicasStayInStep runs two services against one PostgreSQL: a write on A reaches a
// stream subscriber of B (through NOTIFY), and B's next answer is the new one with a new ETag
// (its cache is keyed by the revision), with no wait.
func TestReplicasStayInStep(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	a := startOwnerAdmin(t, dbURL)
	b := startOwnerAdmin(t, dbURL)
	a.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
	a.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
	before := b.do("GET", "/_ref/connectors", nil)
	if before.header.Get("X-Summary-Cache") != "miss" {
		t.Fatalf("first read on B: %s", before.header.Get("X-Summary-Cache"))
	}
	if again := b.do("GET", "/_ref/connectors", nil); again.header.Get("X-Summary-Cache") != "hit" || again.header.Get("ETag") != before.header.Get("ETag") {
		t.Fatalf("second read on B: %s %s", again.header.Get("X-Summary-Cache"), again.header.Get("ETag"))
	}
	s := b.openStreamFrom(t, before.header.Get("ETag"))
	a.do("PATCH", "/_ref/connections/cin_a", map[string]any{"display_name": "Renamed on A"}).expect(t, 200)
	if it := itemOf(t, s.next(itemFor("cin_a"))); it["display_name"] != "Renamed on A" {
		t.Fatalf("B's subscriber got %v", it)
	}
	after := b.do("GET", "/_ref/connectors", nil, withHeader("If-None-Match", before.header.Get("ETag")))
	if after.status != 200 || after.header.Get("ETag") == before.header.Get("ETag") || !strings.Contains(string(after.body), "Renamed on A") {
		t.Fatalf("B after the write on A: %d %s %s", after.status, after.header.Get("ETag"), after.body)
	}
	// An append on B reaches a subscriber of A as well.
	sa := a.openStreamFrom(t, after.header.Get("ETag"))
	b.do("POST", "/_ref/spine/events", eventBody(eventJSON("ev_b1", "run.completed", time.Now().UTC().Format(time.RFC3339Nano),
		`"run_id":"r_b"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_a"`))).expect(t, 200)
	if it := itemOf(t, sa.next(itemFor("cin_a"))); it["last_run"] == nil {
		t.Fatalf("A's subscriber got %v", it)
	}
}

// openStreamFrom opens h's stream resuming from the revision of an ETag the client already has.
func (h *harness) openStreamFrom(t *testing.T, etag string) *sseStream {
	t.Helper()
	rev := regexp.MustCompile(`^"r(\d+)\.`).FindStringSubmatch(etag)
	if rev == nil {
		t.Fatalf("ETag %q", etag)
	}
	s := openStream(t, h.addr, "?last_event_id="+rev[1], nil)
	if e := s.next(func(sseEvent) bool { return true }); e.Type != "revision" {
		t.Fatalf("stream starts with %+v", e)
	}
	return s
}

// fakeClock is a service clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time)         { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// TestETagAcrossTheTimeHorizon: with no write, a tag stays good until the first moment the clock
// changes an item (a connection goes stale past maximum_staleness_seconds, a run in progress is
// orphaned after runs.stale_after), and not a millisecond longer; both engines, a fake clock.
func TestETagAcrossTheTimeHorizon(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		clk := &fakeClock{t: t0}
		h := startAppWith(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, nil,
			fx.Decorate(func() bootstrap.Clock { return clk.Now }))
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail","capabilities":{"refresh_policy":{"maximum_staleness_seconds":3600}}}`).expect(t, 201)
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_b", "source_binding_key": "b"}).expect(t, 201)
		at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
		h.do("POST", "/_ref/spine/events", eventBody(
			eventJSON("e1", "run.completed", at(-20*time.Minute), `"run_id":"r1"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_a"`),
			eventJSON("e2", "run.started", at(-40*time.Minute), `"run_id":"r2"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_b"`),
			eventJSON("e3", "run.completed", at(-50*time.Minute), `"run_id":"r0"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_b"`),
		)).expect(t, 200)
		// cin_b's run started at t0-40m was orphaned at t0-10m (stale_after 30 m): no horizon of
		// its own any more. cin_a's run completed at t0-20m: current until t0+40m (an hour), the
		// overview's horizon.
		first := h.do("GET", "/_ref/connectors", nil)
		tag := first.header.Get("ETag")
		until := t0.Add(40 * time.Minute).UnixMilli()
		if !strings.Contains(tag, fmt.Sprintf(".%d.", until)) {
			t.Fatalf("ETag %s, want it valid until %d (cin_a's staleness)", tag, until)
		}
		clk.Set(t0.Add(40 * time.Minute)) // the last moment cin_a is current
		if r := h.do("GET", "/_ref/connectors", nil, withHeader("If-None-Match", tag)); r.status != 304 {
			t.Fatalf("at the horizon: %d", r.status)
		}
		clk.Advance(time.Millisecond)
		r := h.do("GET", "/_ref/connectors", nil, withHeader("If-None-Match", tag))
		if r.status != 200 || r.header.Get("ETag") == tag || !strings.Contains(string(r.body), `"max_staleness_exceeded"`) {
			t.Fatalf("past the horizon: %d %s %.300s", r.status, r.header.Get("ETag"), r.body)
		}
		if !strings.Contains(r.header.Get("ETag"), ".0.") {
			t.Errorf("no field can change with the clock any more, yet the tag is %s", r.header.Get("ETag"))
		}
		// A run in progress: valid until its last event + stale_after.
		h.do("POST", "/_ref/spine/events", eventBody(
			eventJSON("e4", "run.started", clk.Now().Add(-time.Minute).Format(time.RFC3339Nano), `"run_id":"r3"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_a"`),
		)).expect(t, 200)
		running := h.do("GET", "/_ref/connectors?connection=cin_a", nil)
		orphanedAt := clk.Now().Add(-time.Minute + 30*time.Minute).UnixMilli()
		if !strings.Contains(running.header.Get("ETag"), fmt.Sprintf(".%d.", orphanedAt)) {
			t.Fatalf("scoped ETag with a run in progress %s, want valid until %d", running.header.Get("ETag"), orphanedAt)
		}
		clk.Advance(29 * time.Minute)
		if r := h.do("GET", "/_ref/connectors?connection=cin_a", nil, withHeader("If-None-Match", running.header.Get("ETag"))); r.status != 304 {
			t.Fatalf("before the orphaning: %d", r.status)
		}
		clk.Advance(time.Millisecond)
		if r := h.do("GET", "/_ref/connectors?connection=cin_a", nil, withHeader("If-None-Match", running.header.Get("ETag"))); r.status != 200 ||
			!strings.Contains(string(r.body), `"orphaned_started_run"`) {
			t.Fatalf("after the orphaning: %d %.300s", r.status, r.body)
		}
	})
}

// TestLogoutEndsOpenStreams: a stream opened with a browser session ends within a heartbeat of
// the logout; one opened with the bearer token goes on.
func TestLogoutEndsOpenStreams(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"live.heartbeat": "200ms"})
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		cookie := h.login(t)
		browser := openStream(t, h.addr, "", map[string]string{"Authorization": "", "Cookie": cookie.Name + "=" + cookie.Value})
		bearer := openStream(t, h.addr, "", nil)
		for _, s := range []*sseStream{browser, bearer} {
			if s.resp.StatusCode != 200 {
				t.Fatalf("stream: %d", s.resp.StatusCode)
			}
			s.next(func(e sseEvent) bool { return e.Type == "revision" })
		}
		if r := h.do("POST", "/logout", nil, withSession(cookie), withHeader("Content-Type", "application/json")); r.status != 204 {
			t.Fatalf("logout: %d %s", r.status, r.body)
		}
		deadline := time.After(20 * time.Second) // a bound, not a timing assertion
		for ended := false; !ended; {
			select {
			case _, ok := <-browser.events:
				ended = !ok
			case <-deadline:
				t.Fatal("the session's stream is still open after the logout")
			}
		}
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
		bearer.next(itemFor("cin_a"))
	})
}
