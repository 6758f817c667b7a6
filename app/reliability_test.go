package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// netClient talks to a started service over its real listener, as a client would.
type netClient struct {
	t    *testing.T // every answer is checked against docs/openapi.yaml on it
	base string
	http *http.Client
}

func newNetClient(t *testing.T, addr string) *netClient {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &netClient{t: t, base: "http://" + addr, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// call sends one request with the owner token unless token says otherwise; a transport error
// comes back as status 0 with the error text as the body.
func (c *netClient) call(method, path, token string, body []byte) *response {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return &response{body: []byte(err.Error())}
	}
	if token == "" {
		token = testOwnerToken
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &response{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return &response{body: []byte(err.Error())}
	}
	verifyAPI(c.t, method, path, req.Header, body, resp.StatusCode, resp.Header, b)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// batchOf is a batch of n events whose ids all start with prefix, so that what a batch left in
// the table can be counted afterwards.
func batchOf(prefix string, n int, connectionID string) []byte {
	events := make([]string, n)
	for i := range events {
		typ := "run.progress"
		if i == n-1 {
			typ = "run.completed"
		}
		events[i] = eventJSON(fmt.Sprintf("%s%04d", prefix, i), typ, "2026-11-20T08:00:00.000Z",
			`"run_id":"`+strings.TrimSuffix(prefix, "_")+`"`, `"connection_id":"`+connectionID+`"`, fmt.Sprintf(`"data":{"i":%d}`, i))
	}
	return []byte(eventBody(events...))
}

// batchCounts counts the stored events per batch prefix (the event id up to its last "_").
func batchCounts(t *testing.T, db bun.IDB, like string) map[string]int {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT event_id FROM spine_events WHERE event_id LIKE ?", like)
	if err != nil {
		t.Fatalf("count batches: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id[:strings.LastIndex(id, "_")+1]]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// requireAllOrNothing checks SPEC §2.2's atomic batches: an acknowledged batch is fully stored,
// any other batch is fully stored or absent.
func requireAllOrNothing(t *testing.T, counts map[string]int, acked map[string]bool, size int) (committedUnacked int) {
	t.Helper()
	for prefix, n := range counts {
		if n != size {
			t.Errorf("batch %s is partially stored: %d of %d events", prefix, n, size)
		}
		if !acked[prefix] {
			committedUnacked++
		}
	}
	for prefix, ok := range acked {
		if ok && counts[prefix] != size {
			t.Errorf("acknowledged batch %s has %d of %d events stored", prefix, counts[prefix], size)
		}
	}
	return committedUnacked
}

// requireOnlyUnavailable checks an answer given while the database was failing: a success, or
// 503 with the error shape and nothing internal in it; never a 500.
func requireOnlyUnavailable(t *testing.T, what string, r *response) bool {
	t.Helper()
	if r.status >= 200 && r.status < 300 {
		return true
	}
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%s during a database fault = %d %s, want 2xx or 503", what, r.status, r.body)
		return false
	}
	r.expectError(t, http.StatusServiceUnavailable, "-")
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal(r.body, &env) != nil || env.Error.Code != "unavailable" {
		t.Errorf("%s: 503 body %s, want code unavailable", what, r.body)
	}
	low := strings.ToLower(string(r.body))
	for _, leak := range []string{"sqlstate", "pgx", "pgconn", "terminating", "dial", "127.0.0.1", "5432", "spine_events", "eof"} {
		if strings.Contains(low, leak) {
			t.Errorf("%s: 503 body leaks %q: %s", what, leak, r.body)
		}
	}
	return false
}

// faultFixture is a connector with two connections, one event batch and a retained row.
type faultFixture struct{ conn, other string }

func seedFaultFixture(t *testing.T, c *netClient) faultFixture {
	t.Helper()
	mustStatus := func(r *response, want int) *response {
		t.Helper()
		if r.status != want {
			t.Fatalf("fixture: status %d (%s), want %d", r.status, r.body, want)
		}
		return r
	}
	mustStatus(c.call("PUT", "/_ref/connectors/amazon", "", []byte(`{"display_name":"Amazon","streams":[{"name":"orders"}],
		"capabilities":{"browser_surface":{"profile_key":"amazon-shopping"}}}`)), 201)
	var fx faultFixture
	for i, key := range []string{"work", "home"} {
		r := mustStatus(c.call("POST", "/_ref/connections", "", []byte(`{"connector_id":"amazon","source_binding_key":"`+key+`"}`)), 201)
		var conn struct {
			ID string `json:"connection_id"`
		}
		if err := json.Unmarshal(r.body, &conn); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			fx.conn = conn.ID
		} else {
			fx.other = conn.ID
		}
	}
	mustStatus(c.call("POST", "/_ref/spine/events", "", batchOf("seed_b0_", 10, fx.conn)), 200)
	mustStatus(c.call("PUT", "/_ref/connections/"+fx.conn+"/retained/orders", "", []byte(validFigures)), 200)
	return fx
}

// faultRequest is one request of the fault mixes; every route that touches the database.
type faultRequest struct {
	name, method, path, token string
	body                      []byte
}

func faultRequests(fx faultFixture, tag string) []faultRequest {
	return []faultRequest{
		{"overview", "GET", "/_ref/connectors", "", nil},
		{"scoped read", "GET", "/_ref/connectors?connection=" + fx.conn, "", nil},
		{"deep list", "GET", "/_ref/connectors?depth=deep", "", nil},
		{"runs", "GET", "/_ref/connections/" + fx.conn + "/runs", "", nil},
		{"diagnostics", "GET", "/_ref/connections/" + fx.conn + "/diagnostics", "", nil},
		{"manifest", "GET", "/_ref/connectors/amazon/manifest", "", nil},
		{"admin fresh overview", "GET", "/admin/connectors?bypass=1", testAdminToken, nil},
		{"admin bootstrap", "GET", "/admin/bootstrap", testAdminToken, nil},
		{"put connector", "PUT", "/_ref/connectors/chase", "", []byte(`{"display_name":"Chase ` + tag + `"}`)},
		{"create connection", "POST", "/_ref/connections", "", []byte(`{"connector_id":"amazon","source_binding_key":"` + tag + `"}`)},
		{"patch connection", "PATCH", "/_ref/connections/" + fx.other, "", []byte(`{"display_name":"Amazon ` + tag + `"}`)},
		{"ingest", "POST", "/_ref/spine/events", "", batchOf("fault_"+tag+"_", 5, fx.conn)},
		{"put retained", "PUT", "/_ref/connections/" + fx.conn + "/retained/returns", "", []byte(validFigures)},
	}
}

// awaitRecovery polls until the service answers 200 on the overview again (no restart, no
// operator step); answers on the way must still be 503 with the error shape. A pooled
// connection that died with the database fails the one request that meets it, so a few
// attempts may be needed; the bound is generous and not a timing assertion.
func awaitRecovery(t *testing.T, c *netClient) int {
	t.Helper()
	for attempt := 1; attempt <= 100; attempt++ {
		r := c.call("GET", "/_ref/connectors?depth=deep", "", nil)
		if r.status == http.StatusOK {
			return attempt
		}
		requireOnlyUnavailable(t, "recovery probe", r)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the service did not recover by itself after the database came back")
	return 0
}

// requireServing checks that every route of the fault mix succeeds, several times over.
func requireServing(t *testing.T, c *netClient, fx faultFixture, tag string) {
	t.Helper()
	for round := 0; round < 3; round++ {
		for _, q := range faultRequests(fx, fmt.Sprintf("%s%d", tag, round)) {
			if r := c.call(q.method, q.path, q.token, q.body); r.status < 200 || r.status >= 300 {
				t.Errorf("after recovery %s = %d %s", q.name, r.status, r.body)
			}
		}
	}
	if r := c.call("GET", "/readyz", "", nil); r.status != http.StatusOK {
		t.Errorf("after recovery /readyz = %d %s", r.status, r.body)
	}
}

// TestPostgresBackendsTerminatedUnderLoad kills every backend of the service's database several
// times while readers and writers run: answers are 2xx or a clean 503, batches stay atomic, and
// the service recovers without a restart.
func TestPostgresBackendsTerminatedUnderLoad(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	h := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"db.max_open_conns": "8"})
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)

	ctx := context.Background()
	admin, err := bootstrap.Open(ctx, dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	terminate := func() int {
		rows, err := admin.QueryContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		if err != nil {
			t.Errorf("pg_terminate_backend: %v", err)
			return 0
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var ok bool
			if rows.Scan(&ok) == nil && ok {
				n++
			}
		}
		return n
	}

	const batchSize = 50
	var (
		mu        sync.Mutex
		answers   = map[int]int{}
		acked     = map[string]bool{}
		stop      atomic.Bool
		wg        sync.WaitGroup
		requests  atomic.Int64
		killed    int
		faultRuns int
	)
	record := func(what string, r *response) {
		requests.Add(1)
		requireOnlyUnavailable(t, what, r)
		mu.Lock()
		answers[r.status]++
		mu.Unlock()
	}
	mix := faultRequests(fx, "load")
	for w := 0; w < 4; w++ { // readers and the other writes
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; !stop.Load(); i++ {
				q := mix[i%len(mix)]
				if q.name == "ingest" || q.name == "create connection" {
					continue
				}
				record(q.name, c.call(q.method, q.path, q.token, q.body))
			}
		}()
	}
	for w := 0; w < 2; w++ { // ingest writers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; !stop.Load(); k++ {
				prefix := fmt.Sprintf("kill_w%d_b%04d_", w, k)
				r := c.call("POST", "/_ref/spine/events", "", batchOf(prefix, batchSize, fx.conn))
				record("ingest", r)
				mu.Lock()
				acked[prefix] = r.status == http.StatusOK
				mu.Unlock()
			}
		}()
	}
	// Let the load reach the database, then pull every backend out from under it, repeatedly.
	for requests.Load() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	for faultRuns = 0; faultRuns < 8; faultRuns++ {
		killed += terminate()
		start := requests.Load()
		for requests.Load() < start+40 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	stop.Store(true)
	wg.Wait()
	if killed == 0 {
		t.Fatal("no backend was terminated: the fault was not injected")
	}

	attempts := awaitRecovery(t, c)
	requireServing(t, c, fx, "after")
	committed := requireAllOrNothing(t, batchCounts(t, h.db, "kill_%"), acked, batchSize)
	t.Logf("%d fault injections terminated %d backends during %d requests: answers %v; %d batches sent, %d committed without acknowledgement; recovered on attempt %d",
		faultRuns, killed, requests.Load(), answers, len(acked), committed, attempts)
	h.requireNoTokensLogged(t)
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a database fault was logged as an internal error:\n%.3000s", h.logs.String())
	}
}

// tcpProxy forwards 127.0.0.1:port to the PostgreSQL server; cutting it closes the listener
// and every forwarded connection, which is what the service sees when the database goes away.
// In black-hole mode it models a network that silently drops packets instead: connections stay
// open, new ones are accepted (and never reach the server), and every byte is discarded.
type tcpProxy struct {
	target string
	addr   string

	blackHole atomic.Bool

	mu    sync.Mutex
	ln    net.Listener
	cut   bool
	conns map[net.Conn]bool
	held  map[net.Conn]bool // accepted in black-hole mode: no upstream, bytes discarded
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{target: target, conns: map[net.Conn]bool{}, held: map[net.Conn]bool{}}
	if err := p.listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln, p.addr, p.cut = ln, ln.Addr().String(), false
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

func (p *tcpProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		down, err := ln.Accept()
		if err != nil {
			return
		}
		if p.blackHole.Load() {
			p.hold(down)
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			down.Close()
			up.Close()
			continue
		}
		p.conns[down], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(down, up)
		go p.pipe(up, down)
	}
}

// hold keeps a connection accepted during a black hole open and discards what it sends, until
// the client gives up or the black hole ends.
func (p *tcpProxy) hold(down net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		down.Close()
		return
	}
	p.held[down] = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(io.Discard, down)
		down.Close()
		p.mu.Lock()
		delete(p.held, down)
		p.mu.Unlock()
	}()
}

// pipe copies src to dst, dropping what arrives while the proxy is a black hole.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.blackHole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut makes the database unreachable: the port refuses and open connections drop.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	if p.ln != nil {
		p.ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	for c := range p.held {
		c.Close()
	}
}

// BlackHole switches black-hole mode. Leaving it closes the connections accepted meanwhile:
// their start-up bytes are gone, as they would be on a real network.
func (p *tcpProxy) BlackHole(on bool) {
	p.blackHole.Store(on)
	if on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.held {
		c.Close()
	}
}

// Reopen brings the database back on the same address.
func (p *tcpProxy) Reopen(t *testing.T) {
	t.Helper()
	var err error
	for i := 0; i < 100; i++ {
		if err = p.listen(p.addr); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("reopen the proxy on %s: %v", p.addr, err)
}

// TestPostgresAwayAndBack runs the service through a TCP proxy to PostgreSQL and cuts it: while
// the database is away every database route answers a clean 503 and /readyz is 503 (/healthz
// stays 200), nothing is written, and once the proxy reopens the service recovers by itself.
func TestPostgresAwayAndBack(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.addr
	h := startApp(t, viaProxy.String(), Tokens{Owner: testOwnerToken, Admin: testAdminToken}, nil)
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)
	requireServing(t, c, fx, "before")

	direct, err := bootstrap.Open(context.Background(), dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	before := tableCounts(t, direct)

	for round := 1; round <= 2; round++ {
		// A cached overview may answer within its TTL while the database is away (SPEC §4.7);
		// drop it so the overview has to reach the database.
		if r := c.call("DELETE", "/admin/summary-cache", testAdminToken, nil); r.status != http.StatusNoContent {
			t.Fatalf("drop cache: %d %s", r.status, r.body)
		}
		proxy.Cut()
		for _, q := range faultRequests(fx, fmt.Sprintf("away%d", round)) {
			r := c.call(q.method, q.path, q.token, q.body)
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("round %d, database away: %s = %d %s, want 503", round, q.name, r.status, r.body)
				continue
			}
			requireOnlyUnavailable(t, q.name, r)
		}
		if r := c.call("GET", "/readyz", "", nil); r.status != http.StatusServiceUnavailable {
			t.Errorf("round %d: /readyz while the database is away = %d %s", round, r.status, r.body)
		} else {
			requireOnlyUnavailable(t, "/readyz", r)
		}
		if r := c.call("GET", "/healthz", "", nil); r.status != http.StatusOK {
			t.Errorf("round %d: /healthz while the database is away = %d, want 200 (the process is alive)", round, r.status)
		}
		if got := tableCounts(t, direct); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("round %d: rows changed while the database was away: %v → %v", round, before, got)
		}

		proxy.Reopen(t)
		attempts := awaitRecovery(t, c)
		requireServing(t, c, fx, fmt.Sprintf("back%d", round))
		before = tableCounts(t, direct)
		t.Logf("round %d: recovered on attempt %d after the proxy reopened", round, attempts)
	}
	h.requireNoTokensLogged(t)
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("the database going away was logged as an internal error:\n%.3000s", h.logs.String())
	}
}

func tableCounts(t *testing.T, db bun.IDB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tb := range dataTables {
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM "+tb.name).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", tb.name, err)
		}
		out[tb.name] = n
	}
	return out
}

// TestSQLiteConcurrentIngestAndReads posts batches from several goroutines while others read
// the overview and scoped items: SQLite must queue writers, never answer "database is locked".
func TestSQLiteConcurrentIngestAndReads(t *testing.T) {
	h := startOwnerAdmin(t, dbtest.SQLiteURL(t))
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)

	const writers, batches, size = 4, 25, 40
	var (
		mu      sync.Mutex
		answers = map[string]map[int]int{}
		wg      sync.WaitGroup
		done    atomic.Bool
	)
	record := func(kind string, r *response) {
		mu.Lock()
		defer mu.Unlock()
		if answers[kind] == nil {
			answers[kind] = map[int]int{}
		}
		answers[kind][r.status]++
		if r.status != http.StatusOK {
			t.Errorf("%s under concurrent ingest = %d %s", kind, r.status, r.body)
		}
	}
	var wwg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for b := 0; b < batches; b++ {
				record("ingest", c.call("POST", "/_ref/spine/events", "", batchOf(fmt.Sprintf("conc_w%d_b%03d_", w, b), size, fx.conn)))
			}
		}()
	}
	reads := []string{"/_ref/connectors", "/_ref/connectors?connection=" + fx.conn, "/_ref/connectors?depth=deep",
		"/_ref/connections/" + fx.other + "/runs"}
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; !done.Load(); i++ {
				record(reads[i%len(reads)], c.call("GET", reads[i%len(reads)], "", nil))
			}
		}()
	}
	wwg.Wait()
	done.Store(true)
	wg.Wait()

	counts := batchCounts(t, h.db, "conc_%")
	if len(counts) != writers*batches {
		t.Errorf("%d batches stored, want %d", len(counts), writers*batches)
	}
	requireAllOrNothing(t, counts, map[string]bool{}, size)
	if logs := h.logs.String(); strings.Contains(logs, "database is locked") || strings.Contains(logs, "SQLITE_BUSY") {
		t.Errorf("the service met a locked database:\n%.2000s", logs)
	}
	t.Logf("answers: %v", answers)
}

// TestConfiguredLimitsAreHonoured: the limits of the configuration reach the server, the
// ingest route and the database pool.
func TestConfiguredLimitsAreHonoured(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{
			"ingest.max_batch_events": "10",
			"http.body_limit":         "8192",
			"db.max_open_conns":       "3",
			"http.read_timeout":       "1s",
			"http.write_timeout":      "7s",
			"http.idle_timeout":       "1s",
		})
		seedValidationFixture(t, h)

		t.Run("ingest.max_batch_events", func(t *testing.T) {
			events := make([]string, 11)
			for i := range events {
				events[i] = validEvent(fmt.Sprintf("evt_lim_%02d", i))
			}
			before := h.state()
			h.do("POST", "/_ref/spine/events", eventBody(events...)).expectError(t, http.StatusRequestEntityTooLarge, "events")
			requireUnchanged(t, before, h.state())
			if r := h.do("POST", "/_ref/spine/events", eventBody(events[:10]...)).expect(t, 200); num(t, r, "accepted") != 10 {
				t.Errorf("10 events with max_batch_events=10: %v", r)
			}
		})

		t.Run("http.body_limit", func(t *testing.T) {
			before := h.state()
			pad := strings.Repeat("z", 9000)
			body := eventBody(validEvent("evt_big", `"data":{"pad":"`+pad+`"}`))
			r := rawPost(t, h.addr, "/_ref/spine/events", body)
			r.expectError(t, http.StatusRequestEntityTooLarge, "")
			requireUnchanged(t, before, h.state())
			small := eventBody(validEvent("evt_small", `"data":{"pad":"`+pad[:7000]+`"}`))
			if r := rawPost(t, h.addr, "/_ref/spine/events", small); r.status != 200 {
				t.Errorf("a %d-byte body under an 8192-byte limit = %d %s", len(small), r.status, r.body)
			}
		})

		t.Run("header size", func(t *testing.T) {
			// A request head beyond the server's read buffer gets 431 in the error shape.
			conn, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(conn, "GET /_ref/connectors?limit=1&cursor=%s HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n\r\n",
				strings.Repeat("A", 9000), testOwnerToken)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			(&response{status: resp.StatusCode, header: resp.Header, body: raw}).expectError(t, http.StatusRequestHeaderFieldsTooLarge, "")
		})

		t.Run("db.max_open_conns", func(t *testing.T) {
			if got := h.db.Stats().MaxOpenConnections; got != 3 {
				t.Errorf("pool max open connections = %d, want 3", got)
			}
		})

		t.Run("http timeouts", func(t *testing.T) {
			cfg := h.app.Config()
			if cfg.ReadTimeout != time.Second || cfg.WriteTimeout != 7*time.Second || cfg.IdleTimeout != time.Second || cfg.BodyLimit != 8192 {
				t.Errorf("server config read %s write %s idle %s body %d", cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout, cfg.BodyLimit)
			}
			// A client that never finishes its headers is cut off (read timeout), and so is a
			// keep-alive connection left idle (idle timeout). The deadline below only bounds
			// the test; the assertion is that the server closed the connection.
			slow, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer slow.Close()
			_ = slow.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(slow, "GET /healthz HTTP/1.1\r\nHost: test\r\n")
			if _, err := io.ReadAll(slow); err != nil {
				t.Errorf("a client stuck in its headers was not cut off by the server: %v", err)
			}

			idle, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			_ = idle.SetDeadline(time.Now().Add(20 * time.Second))
			fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
			br := bufio.NewReader(idle)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("keep-alive /healthz = %d close=%v", resp.StatusCode, resp.Close)
			}
			if _, err := io.ReadAll(br); err != nil {
				t.Errorf("an idle keep-alive connection was not closed by the server: %v", err)
			}
		})
	})
}

// rawPost sends a body over the real listener without the harness (fiber's body limit acts
// before the handler, which app.Test does not show).
func rawPost(t *testing.T, addr, path, body string) *response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		path, testOwnerToken, len(body))
	// The server may refuse on the declared length and close before reading the body; a
	// failed write is then expected and the answer is still there to read.
	_, _ = io.WriteString(conn, body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: raw}
}

// TestBenchLoadShortForm runs `connsum bench load` in its short form on both engines through
// the same entry point as the CLI, with a server whose cache TTL the test sets: zero 5xx and,
// on PostgreSQL, at most one projection per TTL window and per write. Timings are reported, not asserted.
func TestBenchLoadShortForm(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		const ttl = 400 * time.Millisecond
		start := func(ctx context.Context, u string) (*perf.Target, error) {
			h := startApp(t, u, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"summary.cache.ttl": ttl.String()})
			return &perf.Target{Base: "http://" + h.addr, OwnerToken: testOwnerToken, AdminToken: testAdminToken, Stop: func() {}}, nil
		}
		out := filepath.Join(t.TempDir(), "load.json")
		var stdout, stderr bytes.Buffer
		err := perf.BenchMain([]string{"load", "--db", dbURL, "--seconds", "3", "--readers", "16", "--batch", "50", "--json", out}, &stdout, &stderr, start)
		report := stdout.String()
		if i := strings.Index(report, "connsum bench load"); i >= 0 {
			report = report[i:] // without the seeding progress
		}
		t.Logf("%s%s", report, stderr.String())
		if err != nil {
			t.Errorf("bench load: %v", err)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var rep perf.LoadReport
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Schema != perf.LoadSchema || rep.Readers != 16 || rep.Reads.N == 0 || rep.Writes.N == 0 {
			t.Errorf("report = %+v", rep)
		}
		if rep.FiveXX != 0 || rep.TransportErrors != 0 || rep.Reads.Errors != 0 || rep.Writes.Errors != 0 {
			t.Errorf("under load: %d 5xx, %d transport errors, statuses %v", rep.FiveXX, rep.TransportErrors, rep.Statuses)
		}
		if rep.PeakRSSBytes <= 0 {
			t.Errorf("peak RSS not reported")
		}
		if strings.HasPrefix(dbURL, "postgres") {
			if !rep.Cache.Enabled || rep.Cache.TTLSeconds != ttl.Seconds() {
				t.Errorf("cache = %+v, want enabled with the test's TTL", rep.Cache)
			}
			// One computation per TTL window and per write at most: the cache still collapses
			// the 16 readers (thousands of reads) into a few computations.
			if rep.Cache.Revisions != rep.Writes.OK || rep.Cache.Bound != rep.Cache.TTLWindows+rep.Writes.OK {
				t.Errorf("cache bound = %+v, want windows + %d writes", rep.Cache, rep.Writes.OK)
			}
			if rep.Cache.Projections < 1 || rep.Cache.Projections > int64(rep.Cache.Bound) || rep.Cache.Projections >= int64(rep.Reads.N) {
				t.Errorf("%d projections for %d reads in %d TTL windows with %d writes, want 1 ≤ projections ≤ windows + writes", rep.Cache.Projections, rep.Reads.N, rep.Cache.TTLWindows, rep.Writes.OK)
			}
		} else if rep.Cache.Enabled {
			t.Errorf("cache enabled on SQLite by default: %+v", rep.Cache)
		}
	})
}

// TestConcurrentIdenticalCreates sends the same first PUT of a connector, and the same
// connection create, from several clients at once: exactly one creates (201), the others get
// the stored row (200), never a 5xx from the losing insert.
func TestConcurrentIdenticalCreates(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		c := newNetClient(t, h.addr)
		const clients, rounds = 8, 6
		for round := 0; round < rounds; round++ {
			connector := fmt.Sprintf("racer-%d", round)
			for _, step := range []struct{ method, path, body string }{
				{"PUT", "/_ref/connectors/" + connector, `{"display_name":"Racer"}`},
				{"POST", "/_ref/connections", `{"connector_id":"` + connector + `","source_binding_key":"same"}`},
			} {
				var wg sync.WaitGroup
				answers := make([]*response, clients)
				start := make(chan struct{})
				for i := range answers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						answers[i] = c.call(step.method, step.path, "", []byte(step.body))
					}()
				}
				close(start)
				wg.Wait()
				created, ids := 0, map[string]bool{}
				for _, r := range answers {
					switch r.status {
					case http.StatusCreated:
						created++
					case http.StatusOK:
					default:
						t.Errorf("round %d: concurrent %s %s = %d %s", round, step.method, step.path, r.status, r.body)
						continue
					}
					var row struct {
						ID string `json:"connection_id"`
					}
					_ = json.Unmarshal(r.body, &row)
					ids[row.ID] = true
				}
				if created != 1 || len(ids) != 1 {
					t.Errorf("round %d: %s %s from %d clients: %d created, rows %v; want exactly one row created", round, step.method, step.path, clients, created, ids)
				}
			}
		}
		if n := h.state().counts["connections"]; n != rounds {
			t.Errorf("%d connections stored, want %d", n, rounds)
		}
		if strings.Contains(h.logs.String(), "level=ERROR") {
			t.Errorf("a concurrent create was logged as an internal error:\n%.2000s", h.logs.String())
		}
	})
}
