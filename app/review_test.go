package app

import (
	"encoding/json"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

type reviewClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *reviewClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *reviewClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Found in review: GET /runs?status=in_progress&limit=1 is tagged valid until the shown run is orphaned,
// but an older in-progress run beyond the page is orphaned first: has_more flips, and the
// conditional GET still answers 304.
func TestReviewRunsPageHasMoreAcrossTimeHorizon(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		clk := &reviewClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
		h := startAppWith(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, nil,
			fx.Decorate(func() bootstrap.Clock { return clk.Now }))
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
		now := clk.Now()
		h.do("POST", "/_ref/spine/events", eventBody(
			eventJSON("ev_old", "run.started", now.Add(-29*time.Minute).Format(time.RFC3339Nano), `"run_id":"r_old"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_a"`),
			eventJSON("ev_new", "run.started", now.Add(-5*time.Minute).Format(time.RFC3339Nano), `"run_id":"r_new"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_a"`),
		)).expect(t, 200)
		const path = "/_ref/connections/cin_a/runs?status=in_progress&limit=1"
		first := h.do("GET", path, nil)
		var page struct {
			HasMore bool `json:"has_more"`
		}
		_ = json.Unmarshal(first.body, &page)
		tag := first.header.Get("ETag")
		t.Logf("first: has_more=%v ETag %s", page.HasMore, tag)
		clk.Advance(2 * time.Minute) // r_old is orphaned now; r_new is still in progress
		fresh := h.do("GET", path, nil)
		_ = json.Unmarshal(fresh.body, &page)
		cond := h.do("GET", path, nil, withHeader("If-None-Match", tag))
		t.Logf("2 min later: has_more=%v ETag %s; conditional: %d", page.HasMore, fresh.header.Get("ETag"), cond.status)
		if !page.HasMore && cond.status == 304 {
			t.Errorf("304 for a page whose has_more changed from true to false (body %s)", fresh.body)
		}
	})
}

// Found in review: a stream client that goes away while the stream is idle keeps its subscriber slot
// until the next heartbeat write fails (live.heartbeat, 15 s by default).
func TestReviewSubscriberSlotAfterDisconnect(t *testing.T) {
	h := startApp(t, "sqlite:"+t.TempDir()+"/x.db", Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"live.max_subscribers": "1"})
	for i := 0; i < 3; i++ {
		t.Logf("stream %d: %q", i, rawStreamStart(t, h.addr, 40))
	}
	// The three clients are gone: a fourth gets a stream well before the heartbeat (15 s) would
	// have noticed them (a bound of 10 s, polled, not a timing assertion).
	deadline := time.Now().Add(10 * time.Second)
	for {
		start := rawStreamStart(t, h.addr, 200)
		if strings.HasPrefix(start, "HTTP/1.1 200") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the clients left: %q", start)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawStreamStart opens the change stream on a bare TCP connection as the owner, reads the start
// of the answer (at most n bytes, within 5 s) and hangs up without a word, as a client that goes
// away does.
func rawStreamStart(t *testing.T, addr string, n int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("GET /_ref/connectors/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testOwnerToken + "\r\n\r\n"))
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := c.Read(buf)
	return string(buf[:min(got, n)])
}

// Found in review: the NOTIFY listener's backend is terminated (a PostgreSQL restart-like loss); a write
// on A still reaches B's subscriber, and the listener comes back.
func TestReviewListenerSurvivesTerminate(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	a := startOwnerAdmin(t, dbURL)
	b := startOwnerAdmin(t, dbURL)
	a.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
	a.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
	s := openStream(t, b.addr, "", nil)
	s.next(func(sseEvent) bool { return true })
	listeners := func() int {
		var n int
		if err := a.db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'").Scan(t.Context(), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Logf("listeners before: %d", listeners())
	var killed int
	if err := a.db.NewRaw("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'").Scan(t.Context(), &killed); err != nil {
		t.Fatal(err)
	}
	t.Logf("terminated %d listener backends", killed)
	start := time.Now()
	a.do("PATCH", "/_ref/connections/cin_a", map[string]any{"display_name": "after kill"}).expect(t, 200)
	if it := itemOf(t, s.next(itemFor("cin_a"))); it["display_name"] != "after kill" {
		t.Fatalf("got %v", it)
	}
	t.Logf("write on A reached B's subscriber %s after the terminate", time.Since(start))
	for i := 0; i < 5; i++ {
		start = time.Now()
		a.do("PATCH", "/_ref/connections/cin_a", map[string]any{"display_name": "n" + string(rune('0'+i))}).expect(t, 200)
		s.next(itemFor("cin_a"))
		t.Logf("write %d: %s", i, time.Since(start))
	}
	// Both listeners come back (a bound of 20 s, polled: the reconnect backs off from 100 ms).
	for deadline := time.Now().Add(20 * time.Second); listeners() != 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("listeners after reconnect: %d, want 2", listeners())
		}
	}
}

// Found in review: two databases (a restore from a backup, a fresh demo DB, a failover that lost
// commits) reach the same revision with different content: the tag of one is a 304 on the
// other, and a stream resumes across them without a resync.
func TestReviewTagsAcrossDatabases(t *testing.T) {
	one := startOwnerAdmin(t, "sqlite:"+t.TempDir()+"/one.db")
	two := startOwnerAdmin(t, "sqlite:"+t.TempDir()+"/two.db")
	for i, h := range []*harness{one, two} {
		h.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a",
			"display_name": []string{"Database one", "Database two"}[i]}).expect(t, 201)
	}
	r1 := one.do("GET", "/_ref/connectors", nil)
	r2 := two.do("GET", "/_ref/connectors", nil, withHeader("If-None-Match", r1.header.Get("ETag")))
	if r2.status == 304 {
		t.Errorf("database two answers 304 to database one's tag %s (its body names %q)", r1.header.Get("ETag"), "Database two")
	}
	s := openStream(t, two.addr, "?last_event_id=1", nil)
	var types []string
	for i := 0; i < 2; i++ {
		types = append(types, s.next(func(sseEvent) bool { return true }).Type)
	}
	t.Logf("resume on database two from a revision of database one: %v", types)
}

func stackAll() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}

// Found in review: settings that shape items (runs.stale_after) are not in the tag: after a restart (or
// on a replica) with another value, an old tag is still a 304 for a different body.
func TestReviewTagIgnoresStaleAfter(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	a := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"runs.stale_after": "30m"})
	b := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"runs.stale_after": "1m"})
	a.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
	a.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)
	a.do("POST", "/_ref/spine/events", eventBody(eventJSON("ev1", "run.started", time.Now().Add(-5*time.Minute).UTC().Format(time.RFC3339Nano),
		`"run_id":"r1"`, `"source_kind":"connector"`, `"source_id":"gmail"`, `"connection_id":"cin_a"`))).expect(t, 200)
	ra := a.do("GET", "/_ref/connectors/?connection=cin_a", nil)
	rb := b.do("GET", "/_ref/connectors?connection=cin_a", nil)
	ra = a.do("GET", "/_ref/connectors?connection=cin_a", nil)
	cond := b.do("GET", "/_ref/connectors?connection=cin_a", nil, withHeader("If-None-Match", ra.header.Get("ETag")))
	t.Logf("A tag %s, B tag %s, B answers A's tag with %d", ra.header.Get("ETag"), rb.header.Get("ETag"), cond.status)
	if string(ra.body) != string(rb.body) && cond.status == 304 {
		t.Errorf("304 on B for A's body; A says %s, B says %s", grab(ra.body, "status"), grab(rb.body, "status"))
	}
}

func grab(b []byte, key string) string {
	i := strings.Index(string(b), `"`+key+`":`)
	if i < 0 {
		return "?"
	}
	return string(b[i:min(len(b), i+40)])
}
