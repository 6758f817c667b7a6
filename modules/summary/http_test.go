package summary_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"connsum/app"
	"connsum/modules/bootstrap/dbtest"
)

const (
	feedOwner = "owner-token-0123456789"
	feedAdmin = "admin-token-0123456789"
)

// feedHTTP is the whole service wired by fx and driven through fiber's app.Test.
type feedHTTP struct {
	t   *testing.T
	app *fiber.App
	pg  bool
}

func startFeedHTTP(t *testing.T, dbURL string) *feedHTTP {
	return startFeedHTTPWith(t, dbURL, "spine")
}

// startFeedHTTPWith wires the service with runs.evidence set to evidence (spine or read_model):
// the fx wiring swaps the implementation of the runs.Evidence port.
func startFeedHTTPWith(t *testing.T, dbURL, evidence string) *feedHTTP {
	t.Helper()
	return startFeedHTTPConfig(t, dbURL, map[string]string{"runs.evidence": evidence})
}

// startFeedHTTPConfig wires the service with the given config keys set (db.url and http.addr
// are set here).
func startFeedHTTPConfig(t *testing.T, dbURL string, settings map[string]string) *feedHTTP {
	t.Helper()
	flags := map[string]string{"db.url": dbURL, "http.addr": "127.0.0.1:0"}
	for k, v := range settings {
		flags[k] = v
	}
	cfg, err := app.LoadConfig("", false, func(string) (string, bool) { return "", false }, flags)
	if err != nil {
		t.Fatal(err)
	}
	h := &feedHTTP{t: t, pg: strings.HasPrefix(dbURL, "postgres")}
	var l *app.Listening
	fxApp := fxtest.New(t, app.Modules(cfg, app.Tokens{Owner: feedOwner, Admin: feedAdmin}, slog.New(slog.NewTextHandler(io.Discard, nil))),
		fx.Populate(&h.app, &l))
	fxApp.RequireStart()
	t.Cleanup(fxApp.RequireStop)
	// Wait until the listener serves once, so stopping never races the server's start.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Get("http://" + l.Addr + "/healthz")
	if err != nil {
		t.Fatalf("server does not answer: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return h
}

type feedResp struct {
	status int
	header http.Header
	body   []byte
}

func (r *feedResp) obj(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// call sends a request with the given bearer token ("" for none).
func (h *feedHTTP) call(token, method, path string, body any) *feedResp {
	h.t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return &feedResp{status: resp.StatusCode, header: resp.Header, body: out}
}

func (h *feedHTTP) owner(method, path string, body any, want int) *feedResp {
	h.t.Helper()
	r := h.call(feedOwner, method, path, body)
	if r.status != want {
		h.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.status, want, r.body)
	}
	return r
}

type feedEnvelope struct {
	Object     string            `json:"object"`
	Data       []json.RawMessage `json:"data"`
	HasMore    bool              `json:"has_more"`
	NextCursor *string           `json:"next_cursor"`
}

type feedItem struct {
	ConnectionID string `json:"connection_id"`
	Evidence     string `json:"evidence"`
	LastRun      *struct {
		RunID string `json:"run_id"`
	} `json:"last_run"`
}

// feed GETs the feed, checks the envelope's exact keys and decodes the items.
func (h *feedHTTP) feed(query string) (*feedResp, feedEnvelope, []feedItem) {
	h.t.Helper()
	r := h.owner("GET", "/_ref/connectors"+query, nil, 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		h.t.Errorf("feed Content-Type = %q", ct)
	}
	m := r.obj(h.t)
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"data", "has_more", "next_cursor", "object"}) {
		h.t.Errorf("envelope keys = %v", keys)
	}
	var env feedEnvelope
	if err := json.Unmarshal(r.body, &env); err != nil {
		h.t.Fatal(err)
	}
	if env.Object != "list" || env.Data == nil {
		h.t.Errorf("envelope: object %q data nil=%v", env.Object, env.Data == nil)
	}
	items := make([]feedItem, len(env.Data))
	for i, d := range env.Data {
		if err := json.Unmarshal(d, &items[i]); err != nil {
			h.t.Fatal(err)
		}
	}
	return r, env, items
}

func feedIDs(items []feedItem) []string {
	ids := []string{}
	for _, it := range items {
		ids = append(ids, it.ConnectionID)
	}
	return ids
}

func (h *feedHTTP) wantCache(r *feedResp, want string) {
	h.t.Helper()
	if got := r.header.Get("X-Summary-Cache"); got != want {
		h.t.Errorf("X-Summary-Cache = %q, want %q", got, want)
	}
	st := r.header.Get("Server-Timing")
	for _, part := range []string{"db;", "project;", "total;", "cache;desc=" + want} {
		if !strings.Contains(st, part) {
			h.t.Errorf("Server-Timing %q lacks %q", st, part)
		}
	}
}

// seedHTTP writes the sibling scenario through the write routes; runs lie in the last hours.
func (h *feedHTTP) seed() {
	h.owner("PUT", "/_ref/connectors/amazon", json.RawMessage(amazonManifest), 201)
	h.owner("PUT", "/_ref/connectors/chase", map[string]any{"display_name": "Chase"}, 201)
	h.owner("PUT", "/_ref/connectors/hidden", map[string]any{"display_name": "Hidden",
		"capabilities": map[string]any{"public_listing": map[string]any{"listed": false}}}, 201)
	for _, c := range []map[string]any{
		{"connector_id": "amazon", "connection_id": "cin_amz_a", "source_binding_key": "a", "source_kind": "browser_collector"},
		{"connector_id": "amazon", "connection_id": "cin_amz_b", "source_binding_key": "b", "source_kind": "browser_collector"},
		{"connector_id": "amazon", "connection_id": "cin_amz_shell", "source_binding_key": "shell", "status": "draft"},
		{"connector_id": "chase", "connection_id": "cin_chase_1", "status": "revoked"},
		{"connector_id": "hidden", "connection_id": "cin_hidden_1"},
	} {
		h.owner("POST", "/_ref/connections", c, 201)
	}
	now := time.Now().UTC()
	run := func(runID, key string, ago time.Duration, terminal, status string) []map[string]any {
		at := func(d time.Duration) string { return now.Add(-ago + d).Format(time.RFC3339Nano) }
		base := func(typ string, d time.Duration) map[string]any {
			return map[string]any{"event_type": typ, "occurred_at": at(d), "run_id": runID, "source_kind": "connector", "source_id": "amazon"}
		}
		req := base("run.browser_surface_requested", 0)
		req["status"] = "waiting_for_browser_surface"
		req["data"] = map[string]any{"browser_surface": map[string]any{"browser_surface_status": "waiting_for_browser_surface",
			"browser_surface_profile_key": key}}
		end := base(terminal, time.Minute)
		end["status"] = status
		if terminal == "run.failed" {
			end["data"] = map[string]any{"reason": "login_required"}
		}
		return []map[string]any{req, base("run.started", time.Second), end}
	}
	var evs []map[string]any
	evs = append(evs, run("r_a", "amazon-shopping:cin_amz_a", 4*time.Hour, "run.completed", "succeeded")...)
	evs = append(evs, run("r_b", "amazon-shopping:cin_amz_b", 3*time.Hour, "run.completed", "succeeded")...)
	evs = append(evs, run("r_shell", "amazon-shopping:cin_amz_shell", 2*time.Hour, "run.failed", "failed")...)
	evs = append(evs, run("r_bare", "cin_amz_a", 1*time.Hour, "run.failed", "failed")...)
	h.owner("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)
}

// TestFeedHTTP runs the feed's acceptance checks with each implementation of the evidence port:
// the spine pipeline (shallow overview, deep reads from run pages) and the read model (run
// evidence in the overview too).
func TestFeedHTTP(t *testing.T) {
	for _, evidence := range []string{"spine", "read_model"} {
		t.Run(evidence, func(t *testing.T) { testFeedHTTP(t, evidence) })
	}
}

func testFeedHTTP(t *testing.T, evidence string) {
	deepKind := map[string]string{"spine": "deep", "read_model": "read_model"}[evidence]
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startFeedHTTPWith(t, dbURL, evidence)
		h.seed()
		overviewMiss, overviewHit := "off", "off"
		if h.pg {
			overviewMiss, overviewHit = "miss", "hit"
		}

		// The overview: shallow, visible rows only, cached on PostgreSQL only.
		r1, env, items := h.feed("")
		h.wantCache(r1, overviewMiss)
		if want := []string{"cin_amz_a", "cin_amz_b", "cin_chase_1"}; !reflect.DeepEqual(feedIDs(items), want) {
			t.Errorf("overview rows = %v, want %v", feedIDs(items), want)
		}
		if env.HasMore || env.NextCursor != nil {
			t.Error("overview without limit: has_more/next_cursor set")
		}
		wantOverview := map[string]string{"cin_amz_a": "r_a", "cin_amz_b": "r_b", "cin_chase_1": ""}
		for _, it := range items {
			switch evidence {
			case "spine":
				if it.Evidence != "shallow" || it.LastRun != nil {
					t.Errorf("overview %s: evidence %s last_run %v", it.ConnectionID, it.Evidence, it.LastRun)
				}
			default:
				got := ""
				if it.LastRun != nil {
					got = it.LastRun.RunID
				}
				if it.Evidence != "read_model" || got != wantOverview[it.ConnectionID] {
					t.Errorf("overview %s: evidence %s last_run %q, want read_model %q", it.ConnectionID, it.Evidence, got, wantOverview[it.ConnectionID])
				}
			}
		}
		var chase map[string]json.RawMessage
		_ = json.Unmarshal(env.Data[2], &chase)
		if string(chase["revoked_at"]) == "null" || string(chase["status"]) != `"revoked"` {
			t.Errorf("revoked row: status %s revoked_at %s", chase["status"], chase["revoked_at"])
		}
		r2, _, _ := h.feed("")
		h.wantCache(r2, overviewHit)
		if !bytes.Equal(r1.body, r2.body) {
			t.Error("the second overview differs from the first")
		}

		// Scoped and deep reads bypass the cache and carry run evidence.
		rs, _, scoped := h.feed("?connection=cin_amz_a")
		h.wantCache(rs, "bypass")
		if len(scoped) != 1 || scoped[0].Evidence != deepKind || scoped[0].LastRun == nil || scoped[0].LastRun.RunID != "r_a" {
			t.Fatalf("scoped read: %s", rs.body)
		}
		rd, deepEnv, deep := h.feed("?depth=deep")
		h.wantCache(rd, "bypass")
		var scopedEnv feedEnvelope
		_ = json.Unmarshal(rs.body, &scopedEnv)
		for i, it := range deep {
			if it.Evidence != deepKind {
				t.Errorf("deep %s evidence %s", it.ConnectionID, it.Evidence)
			}
			if it.ConnectionID == "cin_amz_a" && string(deepEnv.Data[i]) != string(scopedEnv.Data[0]) {
				t.Errorf("scoped item differs from the deep list item:\nscoped %s\ndeep   %s", scopedEnv.Data[0], deepEnv.Data[i])
			}
			if it.ConnectionID == "cin_amz_b" && (it.LastRun == nil || it.LastRun.RunID != "r_b") {
				t.Errorf("cin_amz_b deep last_run %v, want r_b", it.LastRun)
			}
		}
		if _, _, none := h.feed("?connection=cin_nope"); len(none) != 0 {
			t.Errorf("scoped read of an unknown id: %v", feedIDs(none))
		}
		if _, _, none := h.feed("?connection=cin_amz_shell"); len(none) != 0 {
			t.Error("scoped read of a draft returned it")
		}
		if _, _, one := h.feed("?connection=chase"); !reflect.DeepEqual(feedIDs(one), []string{"cin_chase_1"}) {
			t.Errorf("scoped read by connector id with one connection: %v", feedIDs(one))
		}
		if _, _, none := h.feed("?connection=amazon"); len(none) != 0 {
			t.Errorf("scoped read by connector id with two connections: %v", feedIDs(none))
		}

		// Keyset pages over HTTP, and cursors bound to their filter.
		var paged []string
		q := "?limit=1"
		for i := 0; i < 10; i++ {
			_, e, its := h.feed(q)
			paged = append(paged, feedIDs(its)...)
			if !e.HasMore {
				break
			}
			q = "?limit=1&cursor=" + url.QueryEscape(*e.NextCursor)
		}
		if want := []string{"cin_amz_a", "cin_amz_b", "cin_chase_1"}; !reflect.DeepEqual(paged, want) {
			t.Errorf("pages = %v, want %v", paged, want)
		}
		_, amz, _ := h.feed("?connector_id=amazon&limit=1")
		if amz.NextCursor == nil {
			t.Fatal("amazon page of 1 has no next_cursor")
		}
		_, rest, restItems := h.feed("?connector_id=amazon&limit=1&cursor=" + url.QueryEscape(*amz.NextCursor))
		if !reflect.DeepEqual(feedIDs(restItems), []string{"cin_amz_b"}) || rest.HasMore {
			t.Errorf("second amazon page: %v has_more %v", feedIDs(restItems), rest.HasMore)
		}

		// Bad queries are 400 JSON errors naming the parameter.
		bad := []struct{ query, field string }{
			{"?connection=", "connection"},
			{"?connection=cin_amz_a&connection=cin_amz_b", "connection"},
			{"?bogus=1", "bogus"},
			{"?limit=0", "limit"},
			{"?limit=1001", "limit"},
			{"?limit=ten", "limit"},
			{"?limit=2&cursor=not-a-cursor", "cursor"},
			{"?connector_id=chase&limit=1&cursor=" + url.QueryEscape(*amz.NextCursor), "cursor"},
			{"?limit=1&cursor=" + url.QueryEscape(*amz.NextCursor), "cursor"},
			{"?depth=sideways", "depth"},
			{"?connector_id=Not%20An%20Id", "connector_id"},
		}
		for _, b := range bad {
			r := h.call(feedOwner, "GET", "/_ref/connectors"+b.query, nil)
			if r.status != 400 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %s, want a 400 JSON error", b.query, r.status, r.body)
				continue
			}
			var e struct {
				Error struct{ Code, Message, Field string } `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code != "invalid_request" || e.Error.Field != b.field || e.Error.Message == "" {
				t.Errorf("%s: error body %s, want invalid_request on %s", b.query, r.body, b.field)
			}
		}
		if r := h.call("", "GET", "/_ref/connectors", nil); r.status != 401 {
			t.Errorf("feed without a token: %d", r.status)
		}

		// A connection write invalidates the overview at once; spine events do not.
		h.owner("POST", "/_ref/connections", map[string]any{"connector_id": "amazon", "connection_id": "cin_amz_c", "source_binding_key": "c"}, 201)
		r3, _, after := h.feed("")
		h.wantCache(r3, overviewMiss)
		if !reflect.DeepEqual(feedIDs(after), []string{"cin_amz_a", "cin_amz_b", "cin_amz_c", "cin_chase_1"}) {
			t.Errorf("after creating cin_amz_c: %v", feedIDs(after))
		}
		r4, _, _ := h.feed("")
		h.wantCache(r4, overviewHit)
		h.owner("POST", "/_ref/spine/events", map[string]any{"events": []map[string]any{{"event_type": "run.started",
			"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "run_id": "r_c", "connection_id": "cin_amz_c"}}}, 200)
		r5, _, _ := h.feed("")
		h.wantCache(r5, overviewHit)
		h.owner("PATCH", "/_ref/connections/cin_amz_c", map[string]any{"status": "draft"}, 200)
		r6, _, afterPatch := h.feed("")
		h.wantCache(r6, overviewMiss)
		if !reflect.DeepEqual(feedIDs(afterPatch), []string{"cin_amz_a", "cin_amz_b", "cin_chase_1"}) {
			t.Errorf("after cin_amz_c became a draft: %v", feedIDs(afterPatch))
		}
		h.owner("PUT", "/_ref/connectors/chase", map[string]any{"display_name": "Chase",
			"capabilities": map[string]any{"public_listing": map[string]any{"listed": false}}}, 200)
		r7, _, unlisted := h.feed("")
		h.wantCache(r7, overviewMiss)
		if !reflect.DeepEqual(feedIDs(unlisted), []string{"cin_amz_a", "cin_amz_b"}) {
			t.Errorf("after unlisting chase: %v", feedIDs(unlisted))
		}

		h.checkDiagnostics(deepKind)
		h.checkRunsRoute()
		h.checkAdmin()
	})
}

type diagBody struct {
	Object             string `json:"object"`
	Item               *feedItem
	ExpectedProfileKey string `json:"expected_profile_key"`
	PagesRead          []struct {
		ConnectorID string `json:"connector_id"`
	} `json:"pages_read"`
	Candidates []struct {
		RunID   string `json:"run_id"`
		Matched bool   `json:"matched"`
		Rule    string `json:"rule"`
	} `json:"candidates"`
	Statements int `json:"statements"`
}

func (h *feedHTTP) diagnostics(id string) diagBody {
	h.t.Helper()
	r := h.owner("GET", "/_ref/connections/"+id+"/diagnostics", nil, 200)
	var d diagBody
	if err := json.Unmarshal(r.body, &d); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *feedHTTP) checkDiagnostics(deepKind string) {
	t := h.t
	d := h.diagnostics("cin_amz_a")
	if d.Object != "connection_diagnostics" || d.Item == nil || d.Item.ConnectionID != "cin_amz_a" || d.Item.Evidence != deepKind {
		t.Errorf("diagnostics: object %q item %+v", d.Object, d.Item)
	}
	if d.ExpectedProfileKey != "amazon-shopping:cin_amz_a" {
		t.Errorf("expected_profile_key = %q", d.ExpectedProfileKey)
	}
	if len(d.PagesRead) == 0 || d.PagesRead[0].ConnectorID != "amazon" || d.Statements <= 0 {
		t.Errorf("pages_read %v statements %d", d.PagesRead, d.Statements)
	}
	got := map[string]string{}
	for _, c := range d.Candidates {
		got[c.RunID] = fmt.Sprintf("%v %s", c.Matched, c.Rule)
	}
	want := map[string]string{
		"r_a":     "true profile_key_match",
		"r_b":     "false profile_key_mismatch",
		"r_shell": "false profile_key_mismatch",
		"r_bare":  "false profile_key_mismatch",
		// Created later, keyless, naming cin_amz_c explicitly.
		"r_c": "false no_connection_evidence",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidates = %v, want %v", got, want)
	}
	// A draft has no feed item, but its trail shows its own run.
	shell := h.diagnostics("cin_amz_shell")
	if shell.Item != nil {
		t.Errorf("draft diagnostics has an item: %+v", shell.Item)
	}
	matched := false
	for _, c := range shell.Candidates {
		if c.RunID == "r_shell" && c.Matched && c.Rule == "profile_key_match" {
			matched = true
		} else if c.Matched {
			t.Errorf("draft shell matched %s (%s)", c.RunID, c.Rule)
		}
	}
	if !matched {
		t.Error("draft shell diagnostics do not match its own run")
	}
	if r := h.call(feedOwner, "GET", "/_ref/connections/cin_nope/diagnostics", nil); r.status != 404 {
		t.Errorf("diagnostics of an unknown connection: %d", r.status)
	}
}

func (h *feedHTTP) checkRunsRoute() {
	t := h.t
	ids := func(path string) []string {
		t.Helper()
		var body struct {
			Object string `json:"object"`
			Data   []struct {
				RunID  string `json:"run_id"`
				Status string `json:"status"`
			} `json:"data"`
		}
		if err := json.Unmarshal(h.owner("GET", path, nil, 200).body, &body); err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, d := range body.Data {
			out = append(out, d.RunID+":"+d.Status)
		}
		return out
	}
	if got := ids("/_ref/connections/cin_amz_a/runs"); !reflect.DeepEqual(got, []string{"r_a:succeeded"}) {
		t.Errorf("cin_amz_a runs = %v, want only its own", got)
	}
	if got := ids("/_ref/connections/cin_amz_shell/runs?status=failed"); !reflect.DeepEqual(got, []string{"r_shell:failed"}) {
		t.Errorf("draft shell failed runs = %v", got)
	}
	if got := ids("/_ref/connections/cin_amz_a/runs?status=failed"); len(got) != 0 {
		t.Errorf("cin_amz_a failed runs = %v, want none (r_bare is keyed to the bare id)", got)
	}
	if r := h.call(feedOwner, "GET", "/_ref/connections/cin_amz_a/runs?status=bogus", nil); r.status != 400 {
		t.Errorf("bad status filter: %d", r.status)
	}
	if r := h.call(feedOwner, "GET", "/_ref/connections/cin_nope/runs", nil); r.status != 404 {
		t.Errorf("runs of an unknown connection: %d", r.status)
	}
}

func (h *feedHTTP) checkAdmin() {
	t := h.t
	type cacheStats struct {
		Enabled  bool   `json:"enabled"`
		Why      string `json:"why"`
		Hits     int64  `json:"hits"`
		Misses   int64  `json:"misses"`
		Bypasses int64  `json:"bypasses"`
		Entries  []struct {
			Key string `json:"key"`
		} `json:"entries"`
	}
	stats := func() cacheStats {
		t.Helper()
		r := h.call(feedAdmin, "GET", "/admin/summary-cache", nil)
		if r.status != 200 {
			t.Fatalf("/admin/summary-cache = %d %s", r.status, r.body)
		}
		var s cacheStats
		if err := json.Unmarshal(r.body, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if r := h.call(feedAdmin, "DELETE", "/admin/summary-cache", nil); r.status != 204 {
		t.Errorf("DELETE /admin/summary-cache = %d", r.status)
	}
	s0 := stats()
	h.feed("")
	h.feed("")
	h.feed("?connection=cin_amz_a")
	s1 := stats()
	if h.pg {
		if !s1.Enabled || s1.Misses != s0.Misses+1 || s1.Hits != s0.Hits+1 || s1.Bypasses != s0.Bypasses+1 || len(s1.Entries) != 1 {
			t.Errorf("cache stats %+v after %+v, want one more miss, hit and bypass and one entry", s1, s0)
		}
	} else if s1.Enabled || s1.Why == "" || s1.Bypasses != s0.Bypasses+1 {
		t.Errorf("SQLite cache stats %+v: want disabled with a reason", s1)
	}
	if r := h.call(feedOwner, "GET", "/admin/summary-cache", nil); r.status != 403 {
		t.Errorf("/admin/summary-cache with the owner token: %d, want 403", r.status)
	}

	// The admin overview bypasses the cache and compares with it.
	r := h.call(feedAdmin, "GET", "/admin/connectors?bypass=1", nil)
	if r.status != 200 {
		t.Fatalf("/admin/connectors = %d %s", r.status, r.body)
	}
	var ac struct {
		Data        []json.RawMessage `json:"data"`
		Diagnostics struct {
			Statements int   `json:"statements"`
			Differs    *bool `json:"differs_from_cache"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal(r.body, &ac); err != nil {
		t.Fatal(err)
	}
	if len(ac.Data) != 2 || ac.Diagnostics.Statements <= 0 || ac.Diagnostics.Statements > 6 {
		t.Errorf("/admin/connectors: %d rows, %d statements", len(ac.Data), ac.Diagnostics.Statements)
	}
	if h.pg && (ac.Diagnostics.Differs == nil || *ac.Diagnostics.Differs) {
		t.Errorf("/admin/connectors differs_from_cache = %v, want false right after a cached overview", ac.Diagnostics.Differs)
	}
	if got := r.header.Get("X-Summary-Cache"); got != "bypass" {
		t.Errorf("/admin/connectors X-Summary-Cache = %q", got)
	}

	m := h.call(feedAdmin, "GET", "/metrics", nil)
	if m.status != 200 || !strings.HasPrefix(m.header.Get("Content-Type"), "text/plain") {
		t.Errorf("/metrics = %d %s: %.600s", m.status, m.header.Get("Content-Type"), m.body)
	}
	for _, want := range []string{"connsum_projection_duration_seconds", "connsum_summary_cache_requests_total"} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if r := h.call(feedOwner, "GET", "/metrics", nil); r.status != 403 {
		t.Errorf("/metrics with the owner token: %d, want 403", r.status)
	}
	if r := h.call("", "GET", "/metrics", nil); r.status != 401 {
		t.Errorf("/metrics without a token: %d, want 401", r.status)
	}
}
