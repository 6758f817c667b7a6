package app

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/httpx"
)

// consoleFleet builds, through the API, one connection in each health state (times relative to
// now: the harness runs on the real clock), plus extra healthy connections.
//
//	cin_zfail  "Zed — failing"     failing (login_required)
//	cin_afail  "Alpha — failing"   failing (a connector's own code)
//	cin_stale  "Stale one"         stale (its success is 3 h old, the limit 1 h)
//	cin_sync   "Syncing one"       syncing
//	cin_none   "Never ran"         unknown
//	cin_ok     "Healthy one"       healthy, 30 runs (the 20th newest failed)
//	cin_pause  "Paused one"        paused
//	cin_gone   "Revoked one"       revoked
func consoleFleet(t *testing.T, h *harness, extraHealthy int) {
	t.Helper()
	h.do(http.MethodPut, "/_ref/connectors/mail", `{"display_name":"Mail","capabilities":{"refresh_policy":{"maximum_staleness_seconds":3600}}}`).expect(t, http.StatusCreated)
	h.do(http.MethodPut, "/_ref/connectors/bank", `{"display_name":"Bank"}`).expect(t, http.StatusCreated)
	conns := [][3]string{
		{"cin_zfail", "mail", "Zed — failing"}, {"cin_afail", "bank", "Alpha — failing"}, {"cin_stale", "mail", "Stale one"},
		{"cin_sync", "mail", "Syncing one"}, {"cin_none", "mail", "Never ran"}, {"cin_ok", "mail", "Healthy one"},
		{"cin_pause", "bank", "Paused one"}, {"cin_gone", "bank", "Revoked one"},
	}
	for i := 0; i < extraHealthy; i++ {
		conns = append(conns, [3]string{fmt.Sprintf("cin_x%03d", i), "bank", fmt.Sprintf("Extra %03d", i)})
	}
	for _, c := range conns {
		h.do(http.MethodPost, "/_ref/connections", map[string]string{"connection_id": c[0], "connector_id": c[1], "display_name": c[2],
			"source_binding_key": c[0]}).expect(t, http.StatusCreated)
	}
	now := time.Now().UTC()
	at := func(d time.Duration) string { return now.Add(-d).Format(time.RFC3339Nano) }
	var evs []string
	n := 0
	run := func(conn, typ string, ago time.Duration, extra ...string) {
		n++
		id := fmt.Sprintf("run_%s_%03d", conn, n)
		status := map[string]string{"run.completed": "succeeded", "run.failed": "failed", "run.started": ""}[typ]
		x := append([]string{fmt.Sprintf(`"run_id":%q,"connection_id":%q`, id, conn)}, extra...)
		if status != "" {
			x = append(x, fmt.Sprintf(`"status":%q`, status))
		}
		evs = append(evs, eventJSON("ev_"+id, typ, at(ago), x...))
	}
	run("cin_zfail", "run.completed", 2*time.Hour)
	run("cin_zfail", "run.failed", 10*time.Minute, `"data":{"reason":"login_required"}`)
	run("cin_afail", "run.failed", 20*time.Minute, `"data":{"reason":"bank_said_no"}`)
	run("cin_stale", "run.completed", 3*time.Hour)
	run("cin_sync", "run.started", time.Minute)
	for i := 29; i >= 0; i-- {
		typ := "run.completed"
		if i == 19 {
			typ = "run.failed"
		}
		run("cin_ok", typ, time.Duration(i+1)*time.Minute)
	}
	run("cin_pause", "run.completed", time.Hour)
	run("cin_gone", "run.completed", time.Hour)
	for i := 0; i < extraHealthy; i++ {
		run(fmt.Sprintf("cin_x%03d", i), "run.completed", time.Duration(i+5)*time.Minute)
	}
	h.do(http.MethodPost, "/_ref/spine/events", eventBody(evs...)).expect(t, http.StatusOK)
	h.do(http.MethodPatch, "/_ref/connections/cin_pause", `{"status":"paused"}`).expect(t, http.StatusOK)
	h.do(http.MethodPatch, "/_ref/connections/cin_gone", `{"status":"revoked"}`).expect(t, http.StatusOK)
}

type consoleData struct {
	Items []struct {
		ConnectionID string `json:"connection_id"`
		Health       struct {
			State  string `json:"state"`
			Reason string `json:"reason"`
		} `json:"health"`
	} `json:"items"`
	Matching int    `json:"matching"`
	Next     string `json:"next"`
	Previous string `json:"previous"`
}

func (h *harness) dashboardData(t *testing.T, path string) consoleData {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	r := h.do(http.MethodGet, path+sep+"_data=1", nil)
	var d consoleData
	if r.status != http.StatusOK || json.Unmarshal(r.body, &d) != nil {
		t.Fatalf("%s: %d %.300s", path, r.status, r.body)
	}
	return d
}

func (d consoleData) ids() string {
	var out []string
	for _, it := range d.Items {
		out = append(out, it.ConnectionID)
	}
	return strings.Join(out, " ")
}

// rowHTML cuts the overview row of one connection out of the page.
func rowHTML(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `<tr data-connection-id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no row for %s", id)
	}
	j := strings.Index(page[i:], "</tr>")
	return page[i : i+j]
}

func TestConsoleOverviewOrderFiltersSearchStrip(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		consoleFleet(t, h, 0)

		d := h.dashboardData(t, "/dashboard")
		if got, want := d.ids(), "cin_afail cin_zfail cin_stale cin_sync cin_none cin_ok cin_pause cin_gone"; got != want {
			t.Errorf("overview order\n got %s\nwant %s (failing, stale, syncing, unknown, healthy, paused, revoked; then by name)", got, want)
		}
		if d.Matching != 8 || d.Next != "" || d.Previous != "" {
			t.Errorf("matching %d next %q previous %q, want 8 rows on one page", d.Matching, d.Next, d.Previous)
		}

		// The tiles are filters with shareable URLs.
		if got := h.dashboardData(t, "/dashboard?health=failing").ids(); got != "cin_afail cin_zfail" {
			t.Errorf("?health=failing = %s", got)
		}
		if got := h.dashboardData(t, "/dashboard?health=paused").ids(); got != "cin_pause" {
			t.Errorf("?health=paused = %s", got)
		}
		page := string(h.do(http.MethodGet, "/dashboard", nil).body)
		if !strings.Contains(page, `href="/dashboard?health=failing"`) || !strings.Contains(page, `href="/dashboard?health=stale"`) {
			t.Error("the tiles do not link to their filters")
		}

		// Search: case-insensitive over names and ids, combined with the health filter.
		for q, want := range map[string]string{"ZED": "cin_zfail", "one": "cin_stale cin_sync cin_none cin_ok cin_pause cin_gone",
			"cin_none": "cin_none", "bank": "cin_afail cin_pause cin_gone", "nothing like it": ""} {
			if got := h.dashboardData(t, "/dashboard?q="+strings.ReplaceAll(q, " ", "+")).ids(); got != want {
				t.Errorf("?q=%s = %q, want %q", q, got, want)
			}
		}
		if got := h.dashboardData(t, "/dashboard?q=one&health=stale").ids(); got != "cin_stale" {
			t.Errorf("?q=one&health=stale = %q", got)
		}
		if p := string(h.do(http.MethodGet, "/dashboard?q=nothing", nil).body); !strings.Contains(p, "No connection matches") {
			t.Error("a search without match does not say so")
		}

		// Reasons in plain words, the connector's own code named as such.
		if !strings.Contains(page, "The site asks to log in again.") || !strings.Contains(page, "Reported by the connector: bank_said_no.") {
			t.Error("the failing rows do not explain their reasons")
		}

		// The strip: the last 24 runs oldest first, each coloured by outcome and linking to the run.
		row := rowHTML(t, page, "cin_ok")
		marks := regexp.MustCompile(`<a class="(\w+)" href="/dashboard/connections/cin_ok\?run=(run_cin_ok_\d+)"`).FindAllStringSubmatch(row, -1)
		if len(marks) != 24 {
			t.Fatalf("cin_ok's strip has %d marks, want 24:\n%s", len(marks), row)
		}
		for i, m := range marks {
			want := "ok"
			if i == 4 { // 24 newest of 30: the 20th newest (failed) is the 5th from the oldest shown
				want = "bad"
			}
			if m[1] != want {
				t.Errorf("mark %d (%s) is %q, want %q", i, m[2], m[1], want)
			}
			if i > 0 && m[2] <= marks[i-1][2] {
				t.Errorf("mark %d %s after %s: the strip is not oldest first", i, m[2], marks[i-1][2])
			}
		}
		if !strings.Contains(rowHTML(t, page, "cin_none"), "no runs") {
			t.Error("a connection without runs does not say so in its strip")
		}
		// Last success and last attempt columns.
		if r := rowHTML(t, page, "cin_zfail"); !strings.Contains(r, `data-label="Last success"><div class="v"><time`) || !strings.Contains(r, "2 h ago") {
			t.Errorf("cin_zfail's last success (2 h ago) is not shown:\n%s", r)
		}
		// Following a strip mark opens the connection's history at that run.
		href := regexp.MustCompile(`href="(/dashboard/connections/cin_ok\?run=[^"]+)`).FindStringSubmatch(row)[1]
		var cd struct {
			Runs []struct {
				RunID string `json:"run_id"`
			} `json:"runs"`
		}
		r := h.do(http.MethodGet, href+"&_data=1", nil)
		if err := json.Unmarshal(r.body, &cd); err != nil || len(cd.Runs) == 0 || cd.Runs[0].RunID != marks[0][2] {
			t.Errorf("%s: %d, first run %v, want %s", href, r.status, cd.Runs, marks[0][2])
		}

		// Bad input: a clear 400, JSON for API clients and HTML for a browser.
		h.do(http.MethodGet, "/dashboard?health=sad", nil).expectError(t, http.StatusBadRequest, "health")
		h.do(http.MethodGet, "/dashboard?after=!!", nil).expectError(t, http.StatusBadRequest, "after")
		h.do(http.MethodGet, "/dashboard/runs?status=happy", nil).expectError(t, http.StatusBadRequest, "status")
		h.do(http.MethodGet, "/dashboard/connections/cin_ok?cursor=xyz", nil).expectError(t, http.StatusBadRequest, "cursor")
		h.do(http.MethodGet, "/dashboard/connections/cin_ok?run=no%20such", nil).expectError(t, http.StatusBadRequest, "run")
		b := h.do(http.MethodGet, "/dashboard?health=sad", nil, withHeader("Accept", "text/html"))
		if b.status != http.StatusBadRequest || !strings.HasPrefix(b.header.Get("Content-Type"), "text/html") || !strings.Contains(string(b.body), "Health must be one of") {
			t.Errorf("browser 400: %d %s %.200s", b.status, b.header.Get("Content-Type"), b.body)
		}
	})
}

func TestConsoleOverviewPages(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		consoleFleet(t, h, 150) // 158 rows: two pages
		first := h.dashboardData(t, "/dashboard")
		if len(first.Items) != 100 || first.Next == "" || first.Previous != "" || first.Matching != 158 {
			t.Fatalf("first page: %d items, next %q, previous %q, matching %d", len(first.Items), first.Next, first.Previous, first.Matching)
		}
		if first.Items[0].ConnectionID != "cin_afail" {
			t.Errorf("the first page starts with %s, want the failing cin_afail", first.Items[0].ConnectionID)
		}
		second := h.dashboardData(t, first.Next)
		if len(second.Items) != 58 || second.Next != "" || second.Previous == "" {
			t.Fatalf("second page: %d items, next %q, previous %q", len(second.Items), second.Next, second.Previous)
		}
		seen := map[string]bool{}
		for _, it := range append(first.Items, second.Items...) {
			if seen[it.ConnectionID] {
				t.Errorf("%s on both pages", it.ConnectionID)
			}
			seen[it.ConnectionID] = true
		}
		if len(seen) != 158 || second.Items[57].ConnectionID != "cin_gone" {
			t.Errorf("%d distinct rows, last %s; want 158 ending with the revoked one", len(seen), second.Items[57].ConnectionID)
		}
		back := h.dashboardData(t, second.Previous)
		if back.ids() != first.ids() {
			t.Error("previous from the second page is not the first page")
		}
		// A filter is kept across pages.
		healthy := h.dashboardData(t, "/dashboard?health=healthy")
		if len(healthy.Items) != 100 || !strings.Contains(healthy.Next, "health=healthy") {
			t.Errorf("healthy page: %d items, next %q", len(healthy.Items), healthy.Next)
		}
		if rest := h.dashboardData(t, healthy.Next); len(rest.Items) != 51 {
			t.Errorf("second healthy page: %d items, want 51", len(rest.Items))
		}
	})
}

func TestConsoleTimelineAndConnectionHistory(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		consoleFleet(t, h, 0)
		type runsData struct {
			Runs []struct {
				ConnectionID string `json:"connection_id"`
				Run          struct {
					RunID  string `json:"run_id"`
					Status string `json:"status"`
					LastAt string `json:"last_at"`
				} `json:"run"`
				Reason struct {
					Text string `json:"text"`
				} `json:"reason"`
			} `json:"runs"`
			Next string `json:"next"`
		}
		get := func(path string) runsData {
			t.Helper()
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			var d runsData
			r := h.do(http.MethodGet, path+sep+"_data=1", nil)
			if r.status != 200 || json.Unmarshal(r.body, &d) != nil {
				t.Fatalf("%s: %d %.200s", path, r.status, r.body)
			}
			return d
		}
		all := get("/dashboard/runs")
		// 36 runs of visible connections (the revoked and paused are rows too): 50 fit one page.
		if len(all.Runs) != 37 || all.Next != "" {
			t.Fatalf("timeline: %d runs, next %q; want 37 on one page", len(all.Runs), all.Next)
		}
		if all.Runs[0].ConnectionID != "cin_sync" || all.Runs[0].Run.Status != "in_progress" {
			t.Errorf("the newest run is %v, want cin_sync's run in progress", all.Runs[0])
		}
		for i := 1; i < len(all.Runs); i++ {
			if all.Runs[i].Run.LastAt > all.Runs[i-1].Run.LastAt {
				t.Errorf("timeline not newest first at %d", i)
			}
		}
		failed := get("/dashboard/runs?status=failed")
		if len(failed.Runs) != 3 || failed.Runs[0].ConnectionID != "cin_zfail" || failed.Runs[0].Reason.Text != "The site asks to log in again." {
			t.Errorf("failed timeline: %+v", failed.Runs)
		}
		bank := get("/dashboard/runs?connector=bank")
		for _, r := range bank.Runs {
			if r.ConnectionID != "cin_afail" && r.ConnectionID != "cin_pause" && r.ConnectionID != "cin_gone" {
				t.Errorf("connector=bank lists %s", r.ConnectionID)
			}
		}
		if len(bank.Runs) != 3 {
			t.Errorf("connector=bank: %d runs, want 3", len(bank.Runs))
		}

		// The connection page: 20 runs a page over the whole history, outcomes per day, total.
		type connData struct {
			Runs []struct {
				RunID string `json:"run_id"`
			} `json:"runs"`
			Next      string `json:"next"`
			TotalRuns int    `json:"total_runs"`
			Days      []struct {
				Day       string `json:"day"`
				Succeeded int    `json:"succeeded"`
				Failed    int    `json:"failed"`
			} `json:"days"`
		}
		var c1, c2 connData
		if err := json.Unmarshal(h.do(http.MethodGet, "/dashboard/connections/cin_ok?_data=1", nil).body, &c1); err != nil {
			t.Fatal(err)
		}
		if len(c1.Runs) != 20 || c1.Next == "" || c1.TotalRuns != 30 || len(c1.Days) != 30 {
			t.Fatalf("connection page: %d runs, next %q, total %d, %d days", len(c1.Runs), c1.Next, c1.TotalRuns, len(c1.Days))
		}
		ok, bad := 0, 0
		for _, d := range c1.Days {
			ok, bad = ok+d.Succeeded, bad+d.Failed
		}
		if ok != 29 || bad != 1 {
			t.Errorf("outcomes per day sum to %d succeeded, %d failed; want 29 and 1", ok, bad)
		}
		if err := json.Unmarshal(h.do(http.MethodGet, c1.Next+"&_data=1", nil).body, &c2); err != nil {
			t.Fatal(err)
		}
		if len(c2.Runs) != 10 || c2.Next != "" || c2.Runs[0].RunID == c1.Runs[19].RunID {
			t.Errorf("second history page: %d runs, next %q", len(c2.Runs), c2.Next)
		}
		page := string(h.do(http.MethodGet, "/dashboard/connections/cin_ok", nil).body)
		for _, want := range []string{`<details class="trail">`, "30 runs attributed", "<svg class=\"chart\"", "It counts as stale when its last successful sync is older than 1 h"} {
			if !strings.Contains(page, want) {
				t.Errorf("connection page lacks %q", want)
			}
		}
	})
}

// TestConsoleErrorsByAccept: a browser gets HTML error pages, every other client the JSON shape.
func TestConsoleErrorsByAccept(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
		nf := h.do(http.MethodGet, "/dashboard/connections/cin_nope", nil, withHeader("Accept", browser))
		if nf.status != 404 || !strings.HasPrefix(nf.header.Get("Content-Type"), "text/html") || !strings.Contains(string(nf.body), "<h1>Not found</h1>") {
			t.Errorf("browser 404: %d %s %.200s", nf.status, nf.header.Get("Content-Type"), nf.body)
		}
		if !strings.Contains(string(nf.body), "<style>") || strings.Contains(string(nf.body), "<script") {
			t.Error("the error page is not the console's styled, script-free page")
		}
		for _, accept := range []string{"", "*/*", "application/json", "application/json, text/html"} {
			h.do(http.MethodGet, "/dashboard/connections/cin_nope", nil, withHeader("Accept", accept)).expectError(t, 404, "connection_id")
		}
		h.do(http.MethodGet, "/dashboard/connections/cin_nope?_data=1", nil, withHeader("Accept", browser)).expectError(t, 404, "connection_id")
		// A wrong token from a browser: the 401 page links to the login.
		un := h.do(http.MethodGet, "/dashboard", nil, asBearer("wrong-token"), withHeader("Accept", browser))
		if un.status != 401 || !strings.Contains(string(un.body), `href="/login?next=%2fdashboard"`) {
			t.Errorf("browser 401: %d %.300s", un.status, un.body)
		}
		h.do(http.MethodGet, "/dashboard", nil, asBearer("wrong-token")).expectError(t, 401, "")
		// The login page is styled and says what to do.
		login := string(h.do(http.MethodGet, "/login?next=/dashboard/runs", nil, asBearer("")).body)
		if !strings.Contains(login, "<style>") || !strings.Contains(login, "Log in to open that page.") {
			t.Errorf("login page: %.300s", login)
		}
		empty := h.do(http.MethodPost, "/login", "token=", asBearer(""), withHeader("Content-Type", "application/x-www-form-urlencoded"))
		if empty.status != 401 || !strings.Contains(string(empty.body), "Enter the owner token.") {
			t.Errorf("empty login: %d %.300s", empty.status, empty.body)
		}
		// An API route keeps JSON whatever a browser asks.
		h.do(http.MethodGet, "/_ref/connections/cin_nope/runs", nil).expectError(t, 404, "")
	})
}

// unavailableRoute answers every GET /probe with the database-unavailable error.
type unavailableRoute struct{}

func (unavailableRoute) Routes() []httpx.Route {
	return []httpx.Route{{Method: http.MethodGet, Path: "/probe", Access: httpx.Public, Handler: func(*fiber.Ctx) error { return httpx.Unavailable }}}
}

// TestErrorPagesKeepTheJSONShapeForAPIClients: a 503 is an HTML page for a browser and the JSON
// shape, byte for byte, for every other client; both say when to retry.
func TestErrorPagesKeepTheJSONShapeForAPIClients(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerParams{Config: cfg, Registrars: []httpx.Registrar{unavailableRoute{}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	get := func(accept string) (*http.Response, string) {
		req := httptest.NewRequest(http.MethodGet, "/probe", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := srv.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const want = `{"error":{"code":"unavailable","message":"the database is unavailable; retry shortly"}}`
	for _, accept := range []string{"", "*/*", "application/json"} {
		resp, body := get(accept)
		if resp.StatusCode != 503 || strings.TrimSpace(body) != want || resp.Header.Get("Retry-After") != "2" {
			t.Errorf("Accept %q: %d %q Retry-After %q, want 503 %s", accept, resp.StatusCode, body, resp.Header.Get("Retry-After"), want)
		}
	}
	resp, body := get("text/html,*/*;q=0.8")
	if resp.StatusCode != 503 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Retry-After") != "2" ||
		!strings.Contains(body, "Temporarily unavailable") || !strings.Contains(body, "Reload the page in a few seconds") {
		t.Errorf("browser 503: %d %s %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// TestConsoleWithSpineEvidence: with runs.evidence=spine (no read model) the pages still answer:
// no strips, the timeline and the history from the deep reads' run pages.
func TestConsoleWithSpineEvidence(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startApp(t, url, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"runs.evidence": "spine"})
		consoleFleet(t, h, 0)
		page := h.do(http.MethodGet, "/dashboard", nil)
		if page.status != 200 || !strings.Contains(string(page.body), "does not read run history") {
			t.Errorf("/dashboard with the spine: %d", page.status)
		}
		var runs struct {
			Runs []struct {
				ConnectionID string `json:"connection_id"`
			} `json:"runs"`
		}
		r := h.do(http.MethodGet, "/dashboard/runs?_data=1", nil)
		if err := json.Unmarshal(r.body, &runs); err != nil || len(runs.Runs) != 37 {
			t.Errorf("timeline with the spine: %d runs (%v), want 37", len(runs.Runs), err)
		}
		var conn struct {
			Runs      []any `json:"runs"`
			TotalRuns int   `json:"total_runs"`
		}
		r = h.do(http.MethodGet, "/dashboard/connections/cin_ok?_data=1", nil)
		if err := json.Unmarshal(r.body, &conn); err != nil || len(conn.Runs) != 20 || conn.TotalRuns != -1 {
			t.Errorf("connection page with the spine: %d runs, total %d (%v)", len(conn.Runs), conn.TotalRuns, err)
		}
	})
}
