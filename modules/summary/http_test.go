package summary_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	"connsum/modules/apidoc/apidoctest"
	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/metrics"
	"connsum/modules/retained"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// feedHTTP is the feed's module and the modules it reads and writes through, wired by fx as the
// service wires them and driven through fiber's app.Test, without the app package: credentials
// and the service's error handler are the app's concern (its tests send every credential to
// every route), so the routes here are registered unguarded.
type feedHTTP struct {
	t   *testing.T
	app *fiber.App
	pg  bool
}

// with returns the service bound to t, for subtests sharing one service.
func (h *feedHTTP) with(t *testing.T) *feedHTTP { return &feedHTTP{t: t, app: h.app, pg: h.pg} }

func startFeedHTTP(t *testing.T, dbURL string) *feedHTTP {
	return startFeedHTTPWith(t, dbURL, runs.SourceSpine)
}

// startFeedHTTPWith wires the service with runs.evidence set to evidence: the runs module's
// wiring swaps the implementation of the runs.Evidence port.
func startFeedHTTPWith(t *testing.T, dbURL string, evidence runs.Source) *feedHTTP {
	t.Helper()
	return startFeedHTTPOptions(t, dbURL, runs.Options{Evidence: evidence})
}

// startFeedHTTPOptions wires the modules over dbURL with the given runs options and the
// service's default cache settings (on PostgreSQL only, 5 s).
func startFeedHTTPOptions(t *testing.T, dbURL string, o runs.Options) *feedHTTP {
	t.Helper()
	h := &feedHTTP{t: t, pg: strings.HasPrefix(dbURL, "postgres")}
	var regs []httpx.Registrar
	var mws []httpx.Middleware
	fxApp := fxtest.New(t,
		fx.Supply(bootstrap.Clock(time.Now), bootstrap.Options{URL: dbURL, AutoMigrate: true}, o,
			summary.Options{CacheTTL: 5 * time.Second}),
		bootstrap.Module, metrics.Module, catalog.Module, runs.Module, retained.Module, summary.Module,
		fx.Invoke(fx.Annotate(func(r []httpx.Registrar, m []httpx.Middleware) { regs, mws = r, m },
			fx.ParamTags(`group:"routes"`, `group:"middleware"`))),
		fx.NopLogger,
	)
	fxApp.RequireStart()
	t.Cleanup(fxApp.RequireStop)
	h.app = newRouteServer(regs, mws)
	return h
}

// newRouteServer registers the modules' middleware and routes on a fiber app. Errors answer the
// JSON error shape: an *httpx.Error with its status, anything else a 500.
func newRouteServer(regs []httpx.Registrar, mws []httpx.Middleware) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: func(c *fiber.Ctx, err error) error {
		e, ok := httpx.As(err)
		var fe *fiber.Error
		switch {
		case ok:
		case errors.As(err, &fe):
			e = &httpx.Error{Status: fe.Code, Code: "error", Message: fe.Message}
		default:
			e = httpx.Internal
		}
		return httpx.JSON(c, e.Status, fiber.Map{"error": e})
	}})
	for _, m := range mws {
		app.Use(m.Handler)
	}
	for _, r := range regs {
		for _, rt := range r.Routes() {
			app.Add(rt.Method, rt.Path, rt.Handler)
		}
	}
	return app
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

// call sends a request.
func (h *feedHTTP) call(method, path string, body any) *feedResp {
	h.t.Helper()
	var rd io.Reader = http.NoBody
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
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
	// Every exchange must match docs/openapi.yaml; the routes here are unguarded, so no token.
	apidoctest.Verify(h.t, apidoctest.Exchange{Method: method, URL: path, RequestHeader: reqHeader, RequestBody: raw,
		Status: resp.StatusCode, ResponseHeader: resp.Header, ResponseBody: out}, apidoctest.Options{NoCredentials: true})
	return &feedResp{status: resp.StatusCode, header: resp.Header, body: out}
}

// do sends a request and fails unless it answers want.
func (h *feedHTTP) do(method, path string, body any, want int) *feedResp {
	h.t.Helper()
	r := h.call(method, path, body)
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
	r := h.do("GET", "/_ref/connectors"+query, nil, 200)
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

// seed writes the sibling scenario through the write routes; runs lie in the last hours.
func (h *feedHTTP) seed() {
	h.do("PUT", "/_ref/connectors/amazon", json.RawMessage(amazonManifest), 201)
	h.do("PUT", "/_ref/connectors/chase", map[string]any{"display_name": "Chase"}, 201)
	h.do("PUT", "/_ref/connectors/hidden", map[string]any{"display_name": "Hidden",
		"capabilities": map[string]any{"public_listing": map[string]any{"listed": false}}}, 201)
	for _, c := range []map[string]any{
		{"connector_id": "amazon", "connection_id": "cin_amz_a", "source_binding_key": "a", "source_kind": "browser_collector"},
		{"connector_id": "amazon", "connection_id": "cin_amz_b", "source_binding_key": "b", "source_kind": "browser_collector"},
		{"connector_id": "amazon", "connection_id": "cin_amz_shell", "source_binding_key": "shell", "status": "draft"},
		{"connector_id": "chase", "connection_id": "cin_chase_1", "status": "revoked"},
		{"connector_id": "hidden", "connection_id": "cin_hidden_1"},
	} {
		h.do("POST", "/_ref/connections", c, 201)
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
	h.do("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)
}

// feedSources are the implementations of the evidence port the HTTP tests run with: the spine
// pipeline (shallow overview, deep reads from run pages) and the read model (run evidence in the
// overview too).
var feedSources = []runs.Source{runs.SourceSpine, runs.SourceReadModel}

// deepKindOf is the evidence kind of deep reads with each source.
var deepKindOf = map[runs.Source]runs.EvidenceKind{runs.SourceSpine: runs.EvidenceDeep, runs.SourceReadModel: runs.EvidenceReadModel}

// overviewOutcomes are the cache outcomes of an overview computed and then repeated: the cache
// is on by default on PostgreSQL only.
func (h *feedHTTP) overviewOutcomes() (miss, hit string) {
	if h.pg {
		return "miss", "hit"
	}
	return "off", "off"
}

// TestFeedHTTP runs the feed's acceptance checks over the seeded sibling scenario with each
// implementation of the evidence port. The behaviours share one service and only read (a
// behaviour that needs an empty cache drops it first); writes are TestFeedHTTPWrites'.
func TestFeedHTTP(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			deepKind := deepKindOf[evidence]
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				seeded := startFeedHTTPWith(t, dbURL, evidence)
				seeded.seed()
				t.Run("overview lists visible rows and is cached on PostgreSQL", func(t *testing.T) { seeded.with(t).checkOverview(evidence) })
				t.Run("scoped and deep reads bypass the cache and carry run evidence", func(t *testing.T) { seeded.with(t).checkDeepReads(deepKind) })
				t.Run("scoped read resolves connection and connector ids", func(t *testing.T) { seeded.with(t).checkScopedResolution() })
				t.Run("keyset pages with cursors bound to their filter", func(t *testing.T) { seeded.with(t).checkPages() })
				t.Run("bad queries are 400 errors naming the parameter", func(t *testing.T) { seeded.with(t).checkBadQueries() })
				t.Run("runs and fleet-health refuse bad queries and foreign cursors", func(t *testing.T) { seeded.with(t).checkRunsBadQueries() })
				t.Run("diagnostics show the evidence trail", func(t *testing.T) { seeded.with(t).checkDiagnostics(deepKind) })
				t.Run("runs route lists only the connection's runs", func(t *testing.T) { seeded.with(t).checkRunsRoute() })
				t.Run("admin cache routes and fresh overview", func(t *testing.T) { seeded.with(t).checkAdmin() })
				t.Run("metrics report the feed", func(t *testing.T) { seeded.with(t).checkMetrics() })
			})
		})
	}
}

func (h *feedHTTP) checkOverview(evidence runs.Source) {
	t := h.t
	miss, hit := h.overviewOutcomes()
	h.do("DELETE", "/admin/summary-cache", nil, 204)
	r1, env, items := h.feed("")
	h.wantCache(r1, miss)
	if want := []string{"cin_amz_a", "cin_amz_b", "cin_chase_1"}; !reflect.DeepEqual(feedIDs(items), want) {
		t.Errorf("overview rows = %v, want %v", feedIDs(items), want)
	}
	if env.HasMore || env.NextCursor != nil {
		t.Error("overview without limit: has_more/next_cursor set")
	}
	wantOverview := map[string]string{"cin_amz_a": "r_a", "cin_amz_b": "r_b", "cin_chase_1": ""}
	for _, it := range items {
		switch evidence {
		case runs.SourceSpine:
			if it.Evidence != string(runs.EvidenceShallow) || it.LastRun != nil {
				t.Errorf("overview %s: evidence %s last_run %v", it.ConnectionID, it.Evidence, it.LastRun)
			}
		default:
			got := ""
			if it.LastRun != nil {
				got = it.LastRun.RunID
			}
			if it.Evidence != string(runs.EvidenceReadModel) || got != wantOverview[it.ConnectionID] {
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
	h.wantCache(r2, hit)
	if !bytes.Equal(r1.body, r2.body) {
		t.Error("the second overview differs from the first")
	}
}

func (h *feedHTTP) checkDeepReads(deepKind runs.EvidenceKind) {
	t := h.t
	rs, scopedEnv, scoped := h.feed("?connection=cin_amz_a")
	h.wantCache(rs, "bypass")
	if len(scoped) != 1 || scoped[0].Evidence != string(deepKind) || scoped[0].LastRun == nil || scoped[0].LastRun.RunID != "r_a" {
		t.Fatalf("scoped read: %s", rs.body)
	}
	rd, deepEnv, deep := h.feed("?depth=deep")
	h.wantCache(rd, "bypass")
	for i, it := range deep {
		if it.Evidence != string(deepKind) {
			t.Errorf("deep %s evidence %s", it.ConnectionID, it.Evidence)
		}
		if it.ConnectionID == "cin_amz_a" && string(deepEnv.Data[i]) != string(scopedEnv.Data[0]) {
			t.Errorf("scoped item differs from the deep list item:\nscoped %s\ndeep   %s", scopedEnv.Data[0], deepEnv.Data[i])
		}
		if it.ConnectionID == "cin_amz_b" && (it.LastRun == nil || it.LastRun.RunID != "r_b") {
			t.Errorf("cin_amz_b deep last_run %v, want r_b", it.LastRun)
		}
	}
}

func (h *feedHTTP) checkScopedResolution() {
	t := h.t
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
}

// amazonCursor is the next_cursor of the first amazon page of one row.
func (h *feedHTTP) amazonCursor() string {
	h.t.Helper()
	_, amz, _ := h.feed("?connector_id=amazon&limit=1")
	if amz.NextCursor == nil {
		h.t.Fatal("amazon page of 1 has no next_cursor")
	}
	return *amz.NextCursor
}

func (h *feedHTTP) checkPages() {
	t := h.t
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
	_, rest, restItems := h.feed("?connector_id=amazon&limit=1&cursor=" + url.QueryEscape(h.amazonCursor()))
	if !reflect.DeepEqual(feedIDs(restItems), []string{"cin_amz_b"}) || rest.HasMore {
		t.Errorf("second amazon page: %v has_more %v", feedIDs(restItems), rest.HasMore)
	}
}

func (h *feedHTTP) checkBadQueries() {
	t := h.t
	amazon := url.QueryEscape(h.amazonCursor())
	bad := []struct{ query, field string }{
		{"?connection=", "connection"},
		{"?connection=cin_amz_a&connection=cin_amz_b", "connection"},
		{"?bogus=1", "bogus"},
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?limit=2&cursor=not-a-cursor", "cursor"},
		{"?connector_id=chase&limit=1&cursor=" + amazon, "cursor"},
		{"?limit=1&cursor=" + amazon, "cursor"},
		{"?depth=sideways", "depth"},
		{"?connector_id=Not%20An%20Id", "connector_id"},
	}
	for _, b := range bad {
		r := h.call("GET", "/_ref/connectors"+b.query, nil)
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
}

// TestFeedHTTPWrites: a connection write invalidates the overview at once, and so does an
// append now (the cache key carries the feed revision, SPEC §2.7, which supersedes §4.7's
// TTL-bounded staleness after spine events); a run appended later shows in the trail of the
// connection it does not name.
func TestFeedHTTPWrites(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPWith(t, dbURL, evidence)
				h.seed()
				miss, hit := h.overviewOutcomes()
				h.feed("")
				h.do("POST", "/_ref/connections", map[string]any{"connector_id": "amazon", "connection_id": "cin_amz_c", "source_binding_key": "c"}, 201)
				r3, _, after := h.feed("")
				h.wantCache(r3, miss)
				if !reflect.DeepEqual(feedIDs(after), []string{"cin_amz_a", "cin_amz_b", "cin_amz_c", "cin_chase_1"}) {
					t.Errorf("after creating cin_amz_c: %v", feedIDs(after))
				}
				r4, _, _ := h.feed("")
				h.wantCache(r4, hit)
				h.do("POST", "/_ref/spine/events", map[string]any{"events": []map[string]any{{"event_type": "run.started",
					"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "run_id": "r_c", "connection_id": "cin_amz_c"}}}, 200)
				r5, _, _ := h.feed("")
				h.wantCache(r5, miss)
				r5, _, _ = h.feed("")
				h.wantCache(r5, hit)
				// Keyless and naming cin_amz_c explicitly: a run naming another connection.
				if got := h.candidates("cin_amz_a")["r_c"]; got != "false explicit_id_mismatch" {
					t.Errorf("cin_amz_a candidate r_c = %q, want false explicit_id_mismatch", got)
				}
				h.do("PATCH", "/_ref/connections/cin_amz_c", map[string]any{"status": "draft"}, 200)
				r6, _, afterPatch := h.feed("")
				h.wantCache(r6, miss)
				if !reflect.DeepEqual(feedIDs(afterPatch), []string{"cin_amz_a", "cin_amz_b", "cin_chase_1"}) {
					t.Errorf("after cin_amz_c became a draft: %v", feedIDs(afterPatch))
				}
				h.do("PUT", "/_ref/connectors/chase", map[string]any{"display_name": "Chase",
					"capabilities": map[string]any{"public_listing": map[string]any{"listed": false}}}, 200)
				r7, _, unlisted := h.feed("")
				h.wantCache(r7, miss)
				if !reflect.DeepEqual(feedIDs(unlisted), []string{"cin_amz_a", "cin_amz_b"}) {
					t.Errorf("after unlisting chase: %v", feedIDs(unlisted))
				}
			})
		})
	}
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
	r := h.do("GET", "/_ref/connections/"+id+"/diagnostics", nil, 200)
	var d diagBody
	if err := json.Unmarshal(r.body, &d); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// candidates are the diagnostics' candidate runs of a connection as "matched rule" by run id.
func (h *feedHTTP) candidates(id string) map[string]string {
	h.t.Helper()
	got := map[string]string{}
	for _, c := range h.diagnostics(id).Candidates {
		got[c.RunID] = fmt.Sprintf("%v %s", c.Matched, c.Rule)
	}
	return got
}

func (h *feedHTTP) checkDiagnostics(deepKind runs.EvidenceKind) {
	t := h.t
	d := h.diagnostics("cin_amz_a")
	if d.Object != "connection_diagnostics" || d.Item == nil || d.Item.ConnectionID != "cin_amz_a" || d.Item.Evidence != string(deepKind) {
		t.Errorf("diagnostics: object %q item %+v", d.Object, d.Item)
	}
	if d.ExpectedProfileKey != "amazon-shopping:cin_amz_a" {
		t.Errorf("expected_profile_key = %q", d.ExpectedProfileKey)
	}
	if len(d.PagesRead) == 0 || d.PagesRead[0].ConnectorID != "amazon" || d.Statements <= 0 {
		t.Errorf("pages_read %v statements %d", d.PagesRead, d.Statements)
	}
	want := map[string]string{
		"r_a":     "true profile_key_match",
		"r_b":     "false profile_key_mismatch",
		"r_shell": "false profile_key_mismatch",
		"r_bare":  "false profile_key_mismatch",
	}
	if got := h.candidates("cin_amz_a"); !reflect.DeepEqual(got, want) {
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
	if r := h.call("GET", "/_ref/connections/cin_nope/diagnostics", nil); r.status != 404 {
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
		if err := json.Unmarshal(h.do("GET", path, nil, 200).body, &body); err != nil {
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
	if r := h.call("GET", "/_ref/connections/cin_amz_a/runs?status=bogus", nil); r.status != 400 {
		t.Errorf("bad status filter: %d", r.status)
	}
	if r := h.call("GET", "/_ref/connections/cin_nope/runs", nil); r.status != 404 {
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
		var s cacheStats
		if err := json.Unmarshal(h.do("GET", "/admin/summary-cache", nil, 200).body, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	h.do("DELETE", "/admin/summary-cache", nil, 204)
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

	// The admin overview bypasses the cache and compares with it.
	r := h.do("GET", "/admin/connectors?bypass=1", nil, 200)
	var ac struct {
		Object      string            `json:"object"`
		Data        []json.RawMessage `json:"data"`
		HasMore     *bool             `json:"has_more"`
		Diagnostics struct {
			Statements int      `json:"statements"`
			Differs    *bool    `json:"differs_from_cache"`
			Differing  []string `json:"differing_connection_ids"`
		} `json:"diagnostics"`
	}
	if err := json.Unmarshal(r.body, &ac); err != nil {
		t.Fatal(err)
	}
	if ac.Object != "list" || ac.HasMore == nil || len(ac.Data) != 3 || ac.Diagnostics.Statements <= 0 || ac.Diagnostics.Statements > 6 {
		t.Errorf("/admin/connectors: object %q, %d rows, %d statements: %s", ac.Object, len(ac.Data), ac.Diagnostics.Statements, r.body)
	}
	if h.pg && (ac.Diagnostics.Differs == nil || *ac.Diagnostics.Differs) {
		t.Errorf("/admin/connectors differs_from_cache = %v, want false right after a cached overview", ac.Diagnostics.Differs)
	}
	if ac.Diagnostics.Differing == nil {
		t.Error("/admin/connectors differing_connection_ids is null, want a list")
	}
	if got := r.header.Get("X-Summary-Cache"); got != "bypass" {
		t.Errorf("/admin/connectors X-Summary-Cache = %q", got)
	}
}

// checkMetrics: the feed reports its projections and cache outcomes on the service's registry.
func (h *feedHTTP) checkMetrics() {
	h.feed("")
	m := h.do("GET", "/metrics", nil, 200)
	if !strings.HasPrefix(m.header.Get("Content-Type"), "text/plain") {
		h.t.Errorf("/metrics Content-Type %s: %.600s", m.header.Get("Content-Type"), m.body)
	}
	for _, want := range []string{"connsum_projection_duration_seconds", "connsum_projection_statements", "connsum_summary_cache_requests_total",
		"connsum_http_request_duration_seconds"} {
		if !strings.Contains(string(m.body), want) {
			h.t.Errorf("/metrics lacks %s", want)
		}
	}
}
