package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"

	"connsum/modules/apidoc/apidoctest"
	"connsum/modules/auth"
)

// The tokens every app-level test configures.
const (
	testOwnerToken = "owner-token-0123456789"
	testAdminToken = "admin-token-0123456789"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner notices a stopped server only after its idle sleep
		// (up to 10 s); it exits on its own and holds nothing.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// fasthttp keeps one process-wide goroutine that refreshes the Date header.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

// noEnv is an environment with no variables, so tests never see the caller's CONNSUM_*.
func noEnv(string) (string, bool) { return "", false }

// harness is the whole service wired by fx (app.Modules), started on 127.0.0.1:0 and driven
// through fiber's app.Test without the network.
type harness struct {
	t     *testing.T
	app   *fiber.App
	db    *bun.DB
	addr  string
	logs  *syncBuffer   // everything the service logged, at debug level
	authn *auth.Service // logins, one-time links
}

// syncBuffer is a log sink that request goroutines may write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireNoTokensLogged fails when a configured token shows up in the service's log.
func (h *harness) requireNoTokensLogged(t *testing.T) {
	t.Helper()
	logs := h.logs.String()
	for _, tok := range []string{testOwnerToken, testAdminToken} {
		if strings.Contains(logs, tok) {
			t.Errorf("a token was logged:\n%s", logs)
		}
	}
}

// startApp wires and starts the service on dbURL with the given tokens; it stops with the test.
func startApp(t *testing.T, dbURL string, tokens Tokens, flags map[string]string) *harness {
	t.Helper()
	return startAppWith(t, dbURL, tokens, flags)
}

// startAppWith is startApp with extra fx options (fx.Decorate of a port or an option).
func startAppWith(t *testing.T, dbURL string, tokens Tokens, flags map[string]string, opts ...fx.Option) *harness {
	t.Helper()
	all := map[string]string{"db.url": dbURL, "http.addr": "127.0.0.1:0", "log.level": "error"}
	for k, v := range flags {
		all[k] = v
	}
	cfg, err := LoadConfig("", false, noEnv, all)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	h := &harness{t: t, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var l *Listening
	fxApp := fxtest.New(t, append([]fx.Option{Modules(cfg, tokens, log), fx.Populate(&h.app, &h.db, &l, &h.authn)}, opts...)...)
	fxApp.RequireStart()
	t.Cleanup(fxApp.RequireStop)
	h.addr = l.Addr
	h.waitServing()
	return h
}

// waitServing makes one request through the real listener. fx.go starts fiber's Serve in a
// goroutine; a stop that comes before Serve registered the listener would leave it accepting
// (see the report on startServer), so the harness waits until the server answers once.
func (h *harness) waitServing() {
	h.t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("http://" + h.addr + "/healthz")
	if err != nil {
		h.t.Fatalf("the server on %s does not answer: %v", h.addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("GET /healthz over the network = %d", resp.StatusCode)
	}
}

// startOwnerAdmin starts the service with both test tokens configured.
func startOwnerAdmin(t *testing.T, dbURL string) *harness {
	return startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, nil)
}

type reqOpt func(*http.Request)

// asBearer replaces the default owner bearer; "" sends no Authorization header.
func asBearer(tok string) reqOpt {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
	}
}

func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

func withCookie(name, value string) reqOpt {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		r.AddCookie(&http.Cookie{Name: name, Value: value})
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request as the owner (bearer) unless opts say otherwise. A string or []byte body is
// sent as is; anything else is marshalled.
func (h *harness) do(method, path string, body any, opts ...reqOpt) *response {
	h.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			h.t.Fatal(err)
		}
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+testOwnerToken)
	for _, o := range opts {
		o(req)
	}
	reqHeader := req.Header.Clone()
	resp, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	verifyAPI(h.t, method, path, reqHeader, raw, resp.StatusCode, resp.Header, out)
	return &response{status: resp.StatusCode, header: resp.Header, body: out}
}

// verifyAPI checks one exchange against docs/openapi.yaml (apidoctest.Verify): every answer,
// and every request outside apidoctest.InvalidRequestTests.
func verifyAPI(t testing.TB, method, url string, reqHeader http.Header, reqBody []byte, status int, respHeader http.Header, respBody []byte) {
	t.Helper()
	apidoctest.Verify(t, apidoctest.Exchange{Method: method, URL: url, RequestHeader: reqHeader, RequestBody: reqBody,
		Status: status, ResponseHeader: respHeader, ResponseBody: respBody}, apidoctest.Options{SecurityHeaders: true})
}

// object decodes the response as a JSON object (numbers as json.Number).
func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("response %d %q is not a JSON object: %v", r.status, r.body, err)
	}
	return m
}

// expect checks the status of a success answer and its JSON content type.
func (r *response) expect(t *testing.T, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d (%s), want %d", r.status, r.body, status)
	}
	if status == http.StatusNoContent {
		if len(r.body) != 0 {
			t.Errorf("204 with a body %q", r.body)
		}
		return nil
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q, want application/json; charset=utf-8", ct)
	}
	return r.object(t)
}

// expectError checks SPEC §2's error shape: exactly {"error":{"code","message","field"?}}.
// field "" skips the field check; "-" requires that no field is named.
func (r *response) expectError(t *testing.T, status int, field string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d (%s), want %d", r.status, r.body, status)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error content type %q, want application/json", ct)
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &env); err != nil || len(env) != 1 || env["error"] == nil {
		t.Errorf("error body %q is not {\"error\": {...}}", r.body)
		return
	}
	var e map[string]any
	if err := json.Unmarshal(env["error"], &e); err != nil {
		t.Errorf("error body %q: error is not an object", r.body)
		return
	}
	for k := range e {
		if k != "code" && k != "message" && k != "field" {
			t.Errorf("error body %q has the extra key %q", r.body, k)
		}
	}
	if code, _ := e["code"].(string); code == "" {
		t.Errorf("error body %q has no code", r.body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error body %q has no message", r.body)
	}
	got, hasField := e["field"].(string)
	switch {
	case field == "-" && hasField:
		t.Errorf("error names field %q, want none", got)
	case field != "" && field != "-" && got != field:
		t.Errorf("error field = %q, want %q (body %s)", got, field, r.body)
	}
	low := strings.ToLower(string(r.body))
	for _, leak := range []string{"select ", "insert ", "sqlstate", "goroutine", ".go:"} {
		if strings.Contains(low, leak) {
			t.Errorf("error body leaks internals (%q): %s", leak, r.body)
		}
	}
}

// dataTables are every table the write routes touch, with a stable order for snapshots.
var dataTables = []struct{ name, order string }{
	{"connectors", "connector_id"},
	{"connections", "connection_id"},
	{"spine_events", "event_seq"},
	{"retained_streams", "connection_id, stream"},
	{"retained_connections", "connection_id"},
}

// dbState is the row count and the full content of every data table.
type dbState struct {
	counts map[string]int
	rows   map[string][]map[string]any
}

func (h *harness) state() dbState {
	h.t.Helper()
	ctx := context.Background()
	s := dbState{counts: map[string]int{}, rows: map[string][]map[string]any{}}
	for _, tb := range dataTables {
		var n int
		if err := h.db.QueryRowContext(ctx, "SELECT count(*) FROM "+tb.name).Scan(&n); err != nil {
			h.t.Fatalf("count %s: %v", tb.name, err)
		}
		s.counts[tb.name] = n
		var rows []map[string]any
		if err := h.db.NewSelect().Table(tb.name).OrderExpr(tb.order).Scan(ctx, &rows); err != nil {
			h.t.Fatalf("read %s: %v", tb.name, err)
		}
		s.rows[tb.name] = rows
	}
	return s
}

// requireUnchanged fails when any table's row count or content differs between a and b.
func requireUnchanged(t *testing.T, a, b dbState) {
	t.Helper()
	for _, tb := range dataTables {
		if a.counts[tb.name] != b.counts[tb.name] {
			t.Errorf("table %s: %d rows before, %d after; a refused request must write nothing", tb.name, a.counts[tb.name], b.counts[tb.name])
		} else if !reflect.DeepEqual(a.rows[tb.name], b.rows[tb.name]) {
			t.Errorf("table %s: content changed by a refused request:\nbefore %v\nafter  %v", tb.name, a.rows[tb.name], b.rows[tb.name])
		}
	}
}

// num reads a JSON number field as int64.
func num(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	n, ok := m[key].(json.Number)
	if !ok {
		t.Fatalf("%s = %#v, want a number (in %v)", key, m[key], m)
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("%s = %s: %v", key, n, err)
	}
	return v
}

func eventBody(events ...string) string {
	return `{"events":[` + strings.Join(events, ",") + `]}`
}

func eventJSON(id, typ, at string, extra ...string) string {
	s := fmt.Sprintf(`{"event_id":%q,"event_type":%q,"occurred_at":%q`, id, typ, at)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func TestModulesWiringValidates(t *testing.T) {
	for _, tokens := range []Tokens{{Owner: testOwnerToken, Admin: testAdminToken}, {Owner: testOwnerToken}} {
		cfg, err := LoadConfig("", false, noEnv, map[string]string{"db.url": "sqlite:" + t.TempDir() + "/x.db", "http.addr": "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.ValidateApp(Modules(cfg, tokens, slog.New(slog.NewTextHandler(io.Discard, nil)))); err != nil {
			t.Errorf("fx wiring (admin token %v): %v", tokens.Admin != "", err)
		}
	}
}
