package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/httpx"
)

// requireUnavailable503 checks one answer given while the database could not answer in time:
// 503 in the JSON error shape with code unavailable, nothing internal in the body, and a
// Retry-After of whole seconds.
func requireUnavailable503(t *testing.T, what string, r *response) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%s = %d %s, want 503", what, r.status, r.body)
		return
	}
	requireOnlyUnavailable(t, what, r)
	if n, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("%s: Retry-After = %q, want a number of seconds", what, r.header.Get("Retry-After"))
	}
}

// deadlineRequests are the reads and writes the deadline tests send; tag keeps writes distinct.
func deadlineRequests(fx faultFixture, tag string) []faultRequest {
	return []faultRequest{
		{"runs", "GET", "/_ref/connections/" + fx.conn + "/runs", "", nil},
		{"deep list", "GET", "/_ref/connectors?depth=deep", "", nil},
		{"scoped read", "GET", "/_ref/connectors?connection=" + fx.conn, "", nil},
		{"ingest", "POST", "/_ref/spine/events", "", batchOf("dl_"+tag+"_", 20, fx.conn)},
		{"patch connection", "PATCH", "/_ref/connections/" + fx.other, "", []byte(`{"display_name":"Amazon ` + tag + `"}`)},
	}
}

// TestPostgresBlackHoleAnswers503WithinDeadline runs the service through a TCP proxy that turns
// into a black hole (connections stay open, every byte is dropped: what a dead network path
// looks like). Each read and write must come back as a clean 503 with Retry-After, bounded by
// the request deadline (asserted loosely: 10× the deadline), write nothing, and once the path is
// back the very next request of each kind succeeds: the pool hands out no dead connection.
func TestPostgresBlackHoleAnswers503WithinDeadline(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.addr
	// Generous enough that the fixture and the first requests after recovery (which open new
	// connections through the proxy) finish within it on a loaded 2-core machine; the black-hole
	// requests run side by side, so the test waits about one deadline per round.
	const deadline = 3 * time.Second
	h := startApp(t, viaProxy.String(), Tokens{Owner: testOwnerToken, Admin: testAdminToken},
		map[string]string{"db.request_timeout": deadline.String()})
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)

	direct, err := bootstrap.Open(context.Background(), dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	for round := 1; round <= 2; round++ {
		before := tableCounts(t, direct)
		proxy.BlackHole(true)
		reqs := append(deadlineRequests(fx, fmt.Sprintf("hole%d", round)), faultRequest{"/readyz", "GET", "/readyz", "", nil})
		answers, elapsed := make([]*response, len(reqs)), make([]time.Duration, len(reqs))
		var wg sync.WaitGroup
		for i, q := range reqs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				answers[i] = c.call(q.method, q.path, q.token, q.body)
				elapsed[i] = time.Since(start)
			}()
		}
		wg.Wait()
		var took []string
		for i, q := range reqs {
			requireUnavailable503(t, fmt.Sprintf("round %d, black hole: %s", round, q.name), answers[i])
			if elapsed[i] > 10*deadline {
				t.Errorf("round %d: %s took %s with a %s deadline", round, q.name, elapsed[i], deadline)
			}
			took = append(took, fmt.Sprintf("%s %s", q.name, elapsed[i].Round(10*time.Millisecond)))
		}
		if got := tableCounts(t, direct); fmt.Sprint(got) != fmt.Sprint(before) {
			t.Errorf("round %d: rows changed while the database was black-holed: %v → %v", round, before, got)
		}
		proxy.BlackHole(false)
		for _, q := range deadlineRequests(fx, fmt.Sprintf("back%d", round)) {
			if r := c.call(q.method, q.path, q.token, q.body); r.status < 200 || r.status >= 300 {
				t.Errorf("round %d: first %s after the black hole ended = %d %s, want success", round, q.name, r.status, r.body)
			}
		}
		t.Logf("round %d: 503 after %s (deadline %s); every first request after recovery succeeded", round, strings.Join(took, ", "), deadline)
	}
	h.requireNoTokensLogged(t)
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a black-holed database was logged as an internal error:\n%.3000s", h.logs.String())
	}
}

// TestPostgresStatementTimeoutAnswers503 holds an ACCESS EXCLUSIVE lock on the tables the
// requests need from another session, so their first statement waits; the server's
// statement_timeout (300 ms here, far below the request deadline) cancels it with SQLSTATE
// 57014, and the answer is a clean 503. Once the lock is gone the same requests succeed.
func TestPostgresStatementTimeoutAnswers503(t *testing.T) {
	dbURL := dbtest.PostgresURL(t)
	const statementTimeout = 300 * time.Millisecond
	h := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken},
		map[string]string{"db.statement_timeout": statementTimeout.String(), "db.request_timeout": "30s"})
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)

	ctx := context.Background()
	locker, err := bootstrap.Open(ctx, dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	tx, err := locker.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE connections, spine_events IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var took []string
	for _, q := range deadlineRequests(fx, "locked") {
		start := time.Now()
		r := c.call(q.method, q.path, q.token, q.body)
		elapsed := time.Since(start)
		requireUnavailable503(t, "behind a lock: "+q.name, r)
		took = append(took, fmt.Sprintf("%s %s", q.name, elapsed.Round(10*time.Millisecond)))
	}
	// The request deadline (30 s) cannot have fired first: the 503s must come from the server
	// cancelling the statements.
	if n := strings.Count(h.logs.String(), "57014"); n < len(deadlineRequests(fx, "")) {
		t.Errorf("%d answers logged SQLSTATE 57014, want one per request:\n%.3000s", n, h.logs.String())
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for _, q := range deadlineRequests(fx, "unlocked") {
		if r := c.call(q.method, q.path, q.token, q.body); r.status < 200 || r.status >= 300 {
			t.Errorf("%s after the lock was released = %d %s", q.name, r.status, r.body)
		}
	}
	t.Logf("statement_timeout %s: 503 after %s", statementTimeout, strings.Join(took, ", "))
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a statement timeout was logged as an internal error:\n%.3000s", h.logs.String())
	}
}

// TestPostgresNoPreparedStatementPerBatch posts 60 distinct batches through a pool of one
// connection and reads, on that same backend, how many prepared statements it holds: with
// pgx's default statement cache every batch's SQL text (bun formats the arguments into it) was
// one more, and the backend's memory grew with them. The count must not grow; the memory is
// logged, not asserted (it is not deterministic).
func TestPostgresNoPreparedStatementPerBatch(t *testing.T) {
	h := startApp(t, dbtest.PostgresURL(t), Tokens{Owner: testOwnerToken, Admin: testAdminToken},
		map[string]string{"db.max_open_conns": "1"})
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)

	type backend struct {
		PID      int
		Prepared int
		Memory   int64
	}
	probe := func() backend {
		t.Helper()
		var b backend
		// One statement, so the three figures come from one backend.
		if err := h.db.QueryRowContext(context.Background(), `SELECT pg_backend_pid(),
			(SELECT count(*) FROM pg_prepared_statements),
			(SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts)`).Scan(&b.PID, &b.Prepared, &b.Memory); err != nil {
			t.Fatal(err)
		}
		return b
	}
	const batches = 60
	before := probe()
	for i := 0; i < batches; i++ {
		if r := c.call("POST", "/_ref/spine/events", "", batchOf(fmt.Sprintf("prep_b%03d_", i), 50, fx.conn)); r.status != http.StatusOK {
			t.Fatalf("batch %d = %d %s", i, r.status, r.body)
		}
	}
	after := probe()
	if after.PID != before.PID {
		t.Fatalf("the pool replaced its only connection (backend %d → %d); the count would not compare one backend", before.PID, after.PID)
	}
	if after.Prepared > before.Prepared {
		t.Errorf("after %d batches backend %d holds %d prepared statements (%d before): one per SQL text", batches, after.PID, after.Prepared, before.Prepared)
	}
	t.Logf("backend %d after %d batches of 50 events: %d → %d prepared statements, memory contexts %.1f → %.1f MB",
		after.PID, batches, before.Prepared, after.Prepared, float64(before.Memory)/1e6, float64(after.Memory)/1e6)
}

// TestPostgresSessionSettings reads back, on a connection of the service's pool, the session
// settings the configuration puts there.
func TestPostgresSessionSettings(t *testing.T) {
	h := startApp(t, dbtest.PostgresURL(t), Tokens{Owner: testOwnerToken, Admin: testAdminToken},
		map[string]string{"db.statement_timeout": "1500ms", "db.request_timeout": "4s"})
	var statement, idle, app string
	if err := h.db.QueryRowContext(context.Background(), `SELECT current_setting('statement_timeout'),
		current_setting('idle_in_transaction_session_timeout'), current_setting('application_name')`).Scan(&statement, &idle, &app); err != nil {
		t.Fatal(err)
	}
	if statement != "1500ms" || idle != "4s" || app != bootstrap.ApplicationName {
		t.Errorf("statement_timeout %q, idle_in_transaction_session_timeout %q, application_name %q; want 1500ms, 4s, %s",
			statement, idle, app, bootstrap.ApplicationName)
	}
}

// deadlineProbe is a registrar whose route reports the deadline on its context, or returns the
// error the test gives it.
type deadlineProbe struct{ fail error }

func (p *deadlineProbe) Routes() []httpx.Route {
	return []httpx.Route{{Method: "GET", Path: "/_ref/probe", Access: httpx.Owner, Handler: func(c *fiber.Ctx) error {
		if p.fail != nil {
			return fmt.Errorf("probe: read: %w", p.fail)
		}
		d, ok := c.UserContext().Deadline()
		if !ok {
			return httpx.JSON(c, 200, fiber.Map{"deadline_ms": nil})
		}
		return httpx.JSON(c, 200, fiber.Map{"deadline_ms": time.Until(d).Milliseconds()})
	}}}
}

// TestRequestDeadlineAndUnavailableAnswers: every request's context carries db.request_timeout
// (on both engines, since it is set before routing), and the errors of a database that cannot
// answer in time — the deadline, statement_timeout's SQLSTATE 57014, no connection — are a 503
// with Retry-After in the JSON shape, never a 500 and never a hang.
func TestRequestDeadlineAndUnavailableAnswers(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, map[string]string{"db.request_timeout": "1500ms"})
	if err != nil {
		t.Fatal(err)
	}
	probe := &deadlineProbe{}
	logs := &syncBuffer{}
	app := NewServer(ServerParams{Config: cfg, Tokens: Tokens{Owner: testOwnerToken}, Registrars: []httpx.Registrar{probe},
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	h := &harness{t: t, app: app, logs: logs}

	r := h.do("GET", "/_ref/probe", nil).expect(t, 200)
	if ms := num(t, r, "deadline_ms"); ms <= 0 || ms > 1500 {
		t.Errorf("deadline on the request context = %d ms, want within (0, 1500]", ms)
	}

	for _, fail := range []error{
		context.DeadlineExceeded,
		&pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"},
		&pgconn.PgError{Code: "55P03", Message: "could not obtain lock"},
		&pgconn.ConnectError{},
		fmt.Errorf("sql: %w", errors.Join(context.DeadlineExceeded, errors.New("SELECT * FROM spine_events"))),
	} {
		probe.fail = fail
		resp := h.do("GET", "/_ref/probe", nil)
		requireUnavailable503(t, fmt.Sprintf("handler error %v", fail), resp)
		if strings.Contains(string(resp.body), "SELECT") || strings.Contains(string(resp.body), "57014") {
			t.Errorf("the 503 leaks the error: %s", resp.body)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("an unavailable database was logged as an internal error:\n%s", logs.String())
	}
}

// TestDatabaseTimeoutConfig: the three database timeouts have their documented defaults and
// environment variables, and an invalid value stops the start with one line naming the key.
func TestDatabaseTimeoutConfig(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBRequestTimeout != 15*time.Second || cfg.DBStatementTimeout != 10*time.Second || cfg.DBConnectTimeout != 5*time.Second {
		t.Errorf("defaults: request %s, statement %s, connect %s; want 15s, 10s, 5s", cfg.DBRequestTimeout, cfg.DBStatementTimeout, cfg.DBConnectTimeout)
	}
	cfg, err = LoadConfig("", false, envMap(map[string]string{
		"CONNSUM_DB_REQUEST_TIMEOUT": "2s", "CONNSUM_DB_STATEMENT_TIMEOUT": "0", "CONNSUM_DB_CONNECT_TIMEOUT": "750ms",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DBRequestTimeout != 2*time.Second || cfg.DBStatementTimeout != 0 || cfg.DBConnectTimeout != 750*time.Millisecond {
		t.Errorf("from the environment: request %s, statement %s (0 leaves the server's), connect %s", cfg.DBRequestTimeout, cfg.DBStatementTimeout, cfg.DBConnectTimeout)
	}
	for _, bad := range []struct{ env, value, key string }{
		{"CONNSUM_DB_REQUEST_TIMEOUT", "0", "db.request_timeout"}, // the deadline cannot be switched off
		{"CONNSUM_DB_REQUEST_TIMEOUT", "soon", "db.request_timeout"},
		{"CONNSUM_DB_REQUEST_TIMEOUT", "5ms", "db.request_timeout"},
		{"CONNSUM_DB_STATEMENT_TIMEOUT", "-1s", "db.statement_timeout"},
		{"CONNSUM_DB_STATEMENT_TIMEOUT", "10", "db.statement_timeout"},
		{"CONNSUM_DB_CONNECT_TIMEOUT", "0", "db.connect_timeout"},
	} {
		_, err := LoadConfig("", false, envMap(map[string]string{bad.env: bad.value}), nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Key != bad.key || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%q: error %v, want one line naming %s", bad.env, bad.value, err, bad.key)
		}
	}
}

// TestSQLiteWriteBehindLockAnswers503: on SQLite a write waits for another writer's lock for at
// most the busy timeout (10 s, below the default request deadline; SQLite's busy wait does not
// see the context), then answers a clean 503 with Retry-After instead of hanging; once the other
// writer is done the same write succeeds.
func TestSQLiteWriteBehindLockAnswers503(t *testing.T) {
	dbURL := dbtest.SQLiteURL(t)
	h := startOwnerAdmin(t, dbURL)
	c := newNetClient(t, h.addr)
	fx := seedFaultFixture(t, c)

	ctx := context.Background()
	locker, err := bootstrap.Open(ctx, dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	tx, err := locker.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "UPDATE connections SET display_name = display_name"); err != nil {
		t.Fatal(err) // the write lock is held from here until the rollback
	}
	start := time.Now()
	r := c.call("POST", "/_ref/spine/events", "", batchOf("sqlock_", 10, fx.conn))
	requireUnavailable503(t, "ingest behind another writer", r)
	t.Logf("ingest behind another writer: %d after %s", r.status, time.Since(start).Round(10*time.Millisecond))
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if r := c.call("POST", "/_ref/spine/events", "", batchOf("sqlock_", 10, fx.conn)); r.status != http.StatusOK {
		t.Errorf("ingest after the other writer finished = %d %s", r.status, r.body)
	}
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a locked SQLite database was logged as an internal error:\n%.3000s", h.logs.String())
	}
}
