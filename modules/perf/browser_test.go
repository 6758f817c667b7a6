package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"

	"connsum/modules/bootstrap/dbtest"
)

// chromiumSkipOnce makes a missing browser loud once per test run, not once per test.
var chromiumSkipOnce sync.Once

// chromiumForTest returns the Chromium binary, or skips the test when there is none, unless
// CONNSUM_REQUIRE_BROWSER=1 (CI), where a missing browser fails.
func chromiumForTest(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CONNSUM_CHROMIUM")
	if path == "" {
		path = DefaultChromiumPath
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CONNSUM_REQUIRE_BROWSER") == "1" {
			t.Fatalf("CONNSUM_REQUIRE_BROWSER=1 but no Chromium at %s: %v", path, err)
		}
		chromiumSkipOnce.Do(func() {
			dbtest.Loudly("!!! perf: no Chromium at " + path + ": the browser harness tests are SKIPPED (set CONNSUM_CHROMIUM; CONNSUM_REQUIRE_BROWSER=1 fails instead)")
		})
		t.Skipf("no Chromium at %s (set CONNSUM_CHROMIUM, or CONNSUM_REQUIRE_BROWSER=1 to fail instead): %v", path, err)
	}
	return path
}

// processesUsing lists the pids whose command line mentions dir.
func processesUsing(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// visitFixture visits route on base with a fresh driver and checks that the browser and its profile
// are gone afterwards.
func visitFixture(t *testing.T, base, route string, opts CDPOptions, spec RouteSpec) []RouteResult {
	t.Helper()
	opts.ExecPath = chromiumForTest(t)
	opts.Base = base
	opts.TempRoot = t.TempDir()
	if opts.Settle == 0 {
		opts.Settle = 500 * time.Millisecond
	}
	opts.LoadTimeout = 20 * time.Second
	if spec.Viewport.Name == "" {
		spec.Viewport, _ = ViewportByName("desktop")
	}
	spec.Route = route
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := NewCDPBrowser(opts).Visit(ctx, spec)
	if err != nil {
		t.Fatalf("visit %s: %v", route, err)
	}
	left, _ := os.ReadDir(opts.TempRoot)
	if len(left) != 0 {
		t.Errorf("profile directory not removed: %v", left)
	}
	if pids := processesUsing(opts.TempRoot); len(pids) != 0 {
		t.Errorf("Chromium processes still running with the test profile: %v", pids)
	}
	for _, r := range res {
		if r.Error != "" {
			t.Errorf("%s: visit error: %s", route, r.Error)
		}
	}
	return res
}

// closedPort returns a loopback port where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

const fixtureHead = `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><title>fixture</title></head><body>`

func TestBrowserRequestBuckets(t *testing.T) {
	chromiumForTest(t)
	port := closedPort(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/buckets", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, fixtureHead+`<h1>Buckets</h1><p>One refused request, one aborted request and one console error.</p>
<script>
fetch('http://127.0.0.1:%d/refused').catch(() => {});
const ac = new AbortController();
fetch('/slow', {signal: ac.signal}).catch(() => {});
setTimeout(() => ac.abort(), 100);
console.error('fixture console error');
</script></body></html>`, port)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := visitFixture(t, srv.URL, "/buckets", CDPOptions{}, RouteSpec{})
	if len(res) != 1 {
		t.Fatalf("want one result, got %d", len(res))
	}
	r := res[0]
	if r.Status != 200 {
		t.Errorf("status = %d, want 200", r.Status)
	}
	refused := fmt.Sprintf("http://127.0.0.1:%d/refused", port)
	if len(r.FailedRequests) != 1 || r.FailedRequests[0].URL != refused {
		t.Errorf("failed_requests = %+v, want exactly %s", r.FailedRequests, refused)
	} else if !strings.Contains(r.FailedRequests[0].Error, "REFUSED") {
		t.Errorf("failed request error = %q, want a refused connection", r.FailedRequests[0].Error)
	}
	if len(r.AbortedRequests) != 1 || r.AbortedRequests[0].URL != srv.URL+"/slow" {
		t.Errorf("aborted_requests = %+v, want exactly %s/slow", r.AbortedRequests, srv.URL)
	}
	if r.ConsoleErrors != 1 {
		t.Errorf("console_errors = %d, want 1; messages: %+v", r.ConsoleErrors, r.ConsoleMessages)
	}
	found := false
	for _, m := range r.ConsoleMessages {
		found = found || (m.Level == "error" && m.Text == "fixture console error")
	}
	if !found {
		t.Errorf("console.error not in console_messages: %+v", r.ConsoleMessages)
	}
	if len(r.PageErrors) != 0 {
		t.Errorf("page_errors = %+v, want none", r.PageErrors)
	}
	if r.RequestCount < 3 {
		t.Errorf("request_count = %d, want at least 3 (document, refused, aborted)", r.RequestCount)
	}
	if r.DataFetchCount != 0 || r.Stacked {
		t.Errorf("data fetches = %d (stacked %v), want none", r.DataFetchCount, r.Stacked)
	}
	if r.FCPMs == nil || r.LCPMs == nil {
		t.Errorf("fcp/lcp not collected: fcp=%v lcp=%v", r.FCPMs, r.LCPMs)
	}
	if r.LoadMs <= 0 || r.DOMContentLoadedMs <= 0 || r.LoadMs < r.DOMContentLoadedMs {
		t.Errorf("navigation timing: dcl=%v load=%v", r.DOMContentLoadedMs, r.LoadMs)
	}
	misses := strings.Join(DefaultBrowserTargets().Check(r), ";")
	if !strings.Contains(misses, "failed requests 1>0") || !strings.Contains(misses, "console errors 1>0") {
		t.Errorf("targets should flag the failed request and the console error, got %q", misses)
	}
}

func TestBrowserStackedDataFetches(t *testing.T) {
	chromiumForTest(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	})
	mux.HandleFunc("/stacked", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("_data") {
			time.Sleep(40 * time.Millisecond)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"rows":[]}`)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Stacked</h1><p>This page fetches its own data twice, one after the other.</p>
<script>
(async () => {
  await (await fetch('/other?_data=1')).json();
  for (let i = 0; i < 2; i++) { await (await fetch('/stacked?_data=1&n=' + i)).json(); }
})();
</script></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := visitFixture(t, srv.URL, "/stacked", CDPOptions{SlowThreshold: 20 * time.Millisecond}, RouteSpec{})
	r := res[0]
	if r.DataFetchCount != 2 || len(r.DataFetches) != 2 {
		t.Fatalf("data_fetch_count = %d, fetches %+v; want 2", r.DataFetchCount, r.DataFetches)
	}
	if !r.Stacked {
		t.Error("stacked = false, want true")
	}
	var sum float64
	for i, f := range r.DataFetches {
		if !strings.Contains(f.URL, "/stacked?_data=1&n="+strconv.Itoa(i)) {
			t.Errorf("fetch %d url = %s", i, f.URL)
		}
		if f.Outcome != "ok" || f.Status != 200 {
			t.Errorf("fetch %d outcome %s status %d", i, f.Outcome, f.Status)
		}
		// The server holds each answer 40 ms, so the browser cannot see less.
		if f.DurationMs < 35 || f.EndMs <= f.StartMs || f.StartMs <= 0 {
			t.Errorf("fetch %d times: %+v", i, f)
		}
		if r.SequentialMs < f.DurationMs {
			t.Errorf("sequential_ms %.2f < duration %.2f of fetch %d", r.SequentialMs, f.DurationMs, i)
		}
		sum += f.DurationMs
	}
	if d := r.SequentialMs - sum; d > 0.05 || d < -0.05 {
		t.Errorf("sequential_ms %.2f is not the sum %.2f of the durations", r.SequentialMs, sum)
	}
	if r.DataFetches[1].StartMs < r.DataFetches[0].EndMs-1 {
		t.Errorf("second fetch started before the first ended: %+v", r.DataFetches)
	}
	slow := 0
	for _, s := range r.SlowRequests {
		if strings.Contains(s.URL, "/stacked?_data=1") {
			slow++
		}
	}
	if slow != 2 {
		t.Errorf("slow_requests over 20 ms = %+v, want both data fetches", r.SlowRequests)
	}
	if !strings.Contains(strings.Join(DefaultBrowserTargets().Check(r), ";"), "data fetches 2>1") {
		t.Error("targets should flag two data fetches in one navigation")
	}
}

// fixtureSessionCookie is the cookie the fixtures' /login sets: a session id, not the token.
const fixtureSessionCookie = "connsum_session"

// fixtureLogin is a /login like the service's: the token in a form post buys a session cookie.
func fixtureLogin(token, session string, logins *int, mu *sync.Mutex) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Query().Has("token") || r.PostFormValue("token") != token {
			http.Error(w, "bad login", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		*logins++
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: fixtureSessionCookie, Value: session, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	}
}

// TestBrowserSessionCookie: the harness logs in with the token once and gives the browser the
// session cookie it got (HttpOnly, sent on navigations and same-origin fetches), never the token.
func TestBrowserSessionCookie(t *testing.T) {
	chromiumForTest(t)
	const token = "tok_browser_test_0123456789"
	const session = "sess_fixture_abcdef"
	var mu sync.Mutex
	seen := map[string]string{} // path → cookie value the server got
	var scriptCookies string
	tokenAsCookie, logins := false, 0
	mux := http.NewServeMux()
	mux.HandleFunc("/login", fixtureLogin(token, session, &logins, &mu))
	record := func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range r.Cookies() {
			tokenAsCookie = tokenAsCookie || strings.Contains(c.Value, token)
		}
		c, err := r.Cookie(fixtureSessionCookie)
		if err != nil {
			seen[r.URL.Path] = ""
			return false
		}
		seen[r.URL.Path] = c.Value
		return c.Value == session
	}
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		mu.Lock()
		scriptCookies = r.URL.Query().Get("c")
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/cookie", func(w http.ResponseWriter, r *http.Request) {
		if !record(r) {
			http.Error(w, "no owner cookie", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Signed in</h1><p>The owner cookie arrived.</p>
<script>fetch('/echo?c=' + encodeURIComponent(document.cookie));</script></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res := visitFixture(t, srv.URL, "/cookie", CDPOptions{Token: token}, RouteSpec{Warm: true})
	if len(res) != 2 || res[0].Warm || !res[1].Warm {
		t.Fatalf("want a cold and a warm result, got %+v", res)
	}
	for _, r := range res {
		if r.Status != 200 {
			t.Errorf("warm=%v status = %d, want 200 (cookie sent)", r.Warm, r.Status)
		}
	}
	mu.Lock()
	if seen["/cookie"] != session {
		t.Errorf("document request cookie = %q, want the session id", seen["/cookie"])
	}
	if seen["/echo"] != session {
		t.Errorf("same-origin fetch cookie = %q, want the session id", seen["/echo"])
	}
	if strings.Contains(scriptCookies, fixtureSessionCookie) {
		t.Errorf("the session cookie is visible to scripts (%q): it must be HttpOnly", scriptCookies)
	}
	if tokenAsCookie {
		t.Error("the browser sent the owner token as a cookie")
	}
	if logins != 1 {
		t.Errorf("%d logins for one visit, want 1", logins)
	}
	mu.Unlock()

	// Without a token the same page answers 401, and the harness reports it.
	res = visitFixture(t, srv.URL, "/cookie", CDPOptions{}, RouteSpec{})
	if res[0].Status != 401 {
		t.Errorf("status without token = %d, want 401", res[0].Status)
	}
}

// TestBrowserMainEndToEnd runs the command against a fixture of the console and the feed: two routes
// (one with the {connection} placeholder), both viewports, warm visits, screenshots and API probes.
func TestBrowserMainEndToEnd(t *testing.T) {
	chromium := chromiumForTest(t)
	const token = "tok_e2e"
	type seenPage struct {
		Width, Touch int
		DPR          float64
		UA           string
	}
	var mu sync.Mutex
	reports := map[string][]seenPage{}
	mux := http.NewServeMux()
	const session = "sess_e2e_fixture"
	var logins int
	owner := func(r *http.Request) bool {
		if r.Header.Get("Authorization") == "Bearer "+token {
			return true
		}
		c, err := r.Cookie(fixtureSessionCookie)
		return err == nil && c.Value == session
	}
	mux.HandleFunc("/_ref/connectors", func(w http.ResponseWriter, r *http.Request) {
		if !owner(r) {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Server-Timing", "db;dur=0.4, project;dur=0.1, total;dur=0.6, cache;desc=hit")
		w.Header().Set("X-Summary-Cache", "hit")
		w.Header().Set("Content-Type", "application/json")
		data := `[{"connection_id":"cin_one"},{"connection_id":"cin_two"}]`
		if id := r.URL.Query().Get("connection"); id != "" {
			data = fmt.Sprintf(`[{"connection_id":%q}]`, id)
		}
		fmt.Fprintf(w, `{"object":"list","data":%s,"has_more":false,"next_cursor":null}`, data)
	})
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		p := seenPage{UA: r.UserAgent()}
		p.Width, _ = strconv.Atoi(q.Get("w"))
		p.Touch, _ = strconv.Atoi(q.Get("touch"))
		p.DPR, _ = strconv.ParseFloat(q.Get("dpr"), 64)
		mu.Lock()
		reports[q.Get("page")] = append(reports[q.Get("page")], p)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	page := func(w http.ResponseWriter, r *http.Request) {
		if !owner(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.URL.Query().Has("_data") {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{}`)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, fixtureHead+`<h1>Console</h1><p>Server-rendered content of %s.</p>
<script>
fetch(location.pathname + '?_data=1');
fetch('/report?page=' + encodeURIComponent(location.pathname) + '&w=' + innerWidth + '&dpr=' + devicePixelRatio + '&touch=' + navigator.maxTouchPoints);
</script></body></html>`, r.URL.Path)
	}
	mux.HandleFunc("/dashboard", page)
	mux.HandleFunc("/dashboard/connections/", page)
	mux.HandleFunc("/login", fixtureLogin(token, session, &logins, &mu))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "browser.json")
	shots := filepath.Join(dir, "shots")
	t.Setenv("CONNSUM_AUTH_OWNER_TOKEN", token)
	var stdout, stderr bytes.Buffer
	err := BenchMain([]string{"browser", "--base", srv.URL, "--routes", "/dashboard,/dashboard/connections/{connection}",
		"--viewports", "desktop,mobile", "--warm", "--json", jsonPath, "--screenshot", shots, "--chromium", chromium,
		"--api-samples", "3", "--timeout", "60s", "--runs", "1"}, &stdout, &stderr, nil)
	if err != nil {
		t.Fatalf("bench browser: %v\nstderr: %s", err, stderr.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep BrowserReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Schema != BrowserSchema || rep.Base != srv.URL || rep.Targets != DefaultBrowserTargets() {
		t.Errorf("header: schema %q base %q targets %+v", rep.Schema, rep.Base, rep.Targets)
	}
	if len(rep.Routes) != 8 {
		t.Fatalf("want 2 routes × 2 viewports × cold/warm = 8 results, got %d", len(rep.Routes))
	}
	for i, r := range rep.Routes {
		wantRoute := []string{"/dashboard", "/dashboard/connections/cin_one"}[i/4]
		wantVP := []string{"desktop", "mobile"}[i/2%2]
		if r.Route != wantRoute || r.Viewport != wantVP || r.Warm != (i%2 == 1) {
			t.Errorf("result %d: %s %s warm=%v, want %s %s warm=%v", i, r.Route, r.Viewport, r.Warm, wantRoute, wantVP, i%2 == 1)
		}
		if r.Status != 200 || r.DataFetchCount != 1 || r.Stacked || len(r.FailedRequests) != 0 || r.ConsoleErrors != 0 {
			t.Errorf("result %d: status %d data %d failed %v console %d", i, r.Status, r.DataFetchCount, r.FailedRequests, r.ConsoleErrors)
		}
		for _, m := range r.Misses {
			if !strings.HasPrefix(m, "ttfb") && !strings.HasPrefix(m, "lcp") {
				t.Errorf("result %d: unexpected miss %q", i, m)
			}
		}
		if (r.Screenshot != "") == r.Warm {
			t.Errorf("result %d: screenshot %q (warm=%v): want one for each cold visit", i, r.Screenshot, r.Warm)
		}
	}
	for _, name := range []string{"dashboard-desktop.png", "dashboard-mobile.png", "dashboard_connections_cin_one-desktop.png", "dashboard_connections_cin_one-mobile.png"} {
		b, err := os.ReadFile(filepath.Join(shots, name))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("screenshot %s: %v (%d bytes)", name, err, len(b))
		}
	}
	mu.Lock()
	for path, seen := range reports {
		if len(seen) != 4 {
			t.Errorf("%s reported %d times, want 4", path, len(seen))
			continue
		}
		for i, p := range seen {
			mobile := i >= 2
			if mobile && (p.Width != 412 || p.DPR != 1.75 || p.Touch == 0 || !strings.Contains(p.UA, "Mobile")) {
				t.Errorf("%s mobile visit saw %+v", path, p)
			}
			if !mobile && (p.Width != 1366 || p.DPR != 1 || strings.Contains(p.UA, "Mobile") || strings.Contains(p.UA, "Headless")) {
				t.Errorf("%s desktop visit saw %+v", path, p)
			}
		}
	}
	mu.Unlock()
	if len(rep.APIProbes) != 2 {
		t.Fatalf("api_probes = %+v", rep.APIProbes)
	}
	for _, p := range rep.APIProbes {
		if p.N != 3 || p.Status != 200 || p.Errors != 0 || p.SummaryCache != "hit" || !strings.Contains(p.ServerTiming, "cache;desc=hit") {
			t.Errorf("probe %+v", p)
		}
	}
	if rep.APIProbes[1].Path != "/_ref/connectors?connection=cin_one" {
		t.Errorf("scoped probe path = %s", rep.APIProbes[1].Path)
	}
	out := stdout.String()
	for _, want := range []string{"/dashboard/connections/cin_one", "mobile", "warm", "verdict", "api probe", "scoped"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestBrowserRecorderBuckets feeds protocol events to the recorder directly (no browser needed).
func TestBrowserRecorderBuckets(t *testing.T) {
	v := newVisitRecorder()
	loaded := v.reset()
	ev := func(e any) { v.handle(e) }
	req := func(id, u string, typ network.ResourceType, at float64) {
		ev(&network.EventRequestWillBeSent{RequestID: network.RequestID(id), Request: &network.Request{URL: u}, Type: typ, Timestamp: cdp.MonotonicTime(at)})
	}
	req("doc", "http://h/dashboard", network.ResourceTypeDocument, 10.000)
	ev(&network.EventResponseReceived{RequestID: "doc", Response: &network.Response{Status: 200}})
	ev(&network.EventLoadingFinished{RequestID: "doc", Timestamp: 10.020})
	req("d1", "http://h/dashboard?_data=1", network.ResourceTypeFetch, 10.100)
	ev(&network.EventLoadingFinished{RequestID: "d1", Timestamp: 10.150})
	req("d2", "http://h/dashboard?_data=1&x=2", network.ResourceTypeFetch, 10.200)
	ev(&network.EventLoadingFinished{RequestID: "d2", Timestamp: 10.900})
	req("o", "http://h/dashboard/runs?_data=1", network.ResourceTypeFetch, 10.200)
	ev(&network.EventLoadingFinished{RequestID: "o", Timestamp: 10.210})
	req("bad", "http://h:1/x", network.ResourceTypeFetch, 10.300)
	ev(&network.EventLoadingFailed{RequestID: "bad", Timestamp: 10.301, ErrorText: "net::ERR_CONNECTION_REFUSED"})
	req("ab", "http://h/slow", network.ResourceTypeFetch, 10.300)
	ev(&network.EventLoadingFailed{RequestID: "ab", Timestamp: 10.400, ErrorText: "net::ERR_ABORTED", Canceled: true})
	ev(&network.EventLoadingFailed{RequestID: "previous-page", Timestamp: 10.400, Canceled: true})
	ev(&cdplog.EventEntryAdded{Entry: &cdplog.Entry{Level: cdplog.EntryLevelError, Source: "network", Text: "Failed to load resource", NetworkRequestID: "bad"}})
	ev(&cdplog.EventEntryAdded{Entry: &cdplog.Entry{Level: cdplog.EntryLevelError, Source: "network", Text: "404", NetworkRequestID: "other"}})
	ev(&runtime.EventConsoleAPICalled{Type: runtime.ConsoleAPICalledTypeError, Args: []*runtime.RemoteObject{
		{Type: runtime.RemoteObjectTypeString, Value: []byte(`"boom"`)}, {Type: runtime.RemoteObjectTypeNumber, Value: []byte(`7`)}}})
	ev(&runtime.EventConsoleAPICalled{Type: runtime.ConsoleAPICalledTypeLog, Args: []*runtime.RemoteObject{{Type: runtime.RemoteObjectTypeString, Value: []byte(`"hi"`)}}})
	ev(&runtime.EventExceptionThrown{ExceptionDetails: &runtime.ExceptionDetails{Text: "Uncaught", Exception: &runtime.RemoteObject{Description: "Error: x"}}})
	ev(&page.EventLoadEventFired{})
	ev(&page.EventLoadEventFired{}) // a second load event must not close twice
	select {
	case <-loaded:
	default:
		t.Fatal("load channel not closed")
	}
	var r RouteResult
	v.fill(&r, "doc", "/dashboard", 500*time.Millisecond)
	if r.Status != 200 || r.RequestCount != 6 {
		t.Errorf("status %d request_count %d", r.Status, r.RequestCount)
	}
	if len(r.FailedRequests) != 1 || r.FailedRequests[0].URL != "http://h:1/x" || len(r.AbortedRequests) != 1 || r.AbortedRequests[0].URL != "http://h/slow" {
		t.Errorf("failed %+v aborted %+v", r.FailedRequests, r.AbortedRequests)
	}
	if r.DataFetchCount != 2 || !r.Stacked || r.SequentialMs != 750 {
		t.Errorf("data fetches %+v sequential %.2f", r.DataFetches, r.SequentialMs)
	}
	if f := r.DataFetches[0]; f.StartMs != 100 || f.EndMs != 150 || f.DurationMs != 50 || f.Outcome != "ok" {
		t.Errorf("first data fetch %+v", f)
	}
	if len(r.SlowRequests) != 1 || r.SlowRequests[0].URL != "http://h/dashboard?_data=1&x=2" || r.SlowRequests[0].DurationMs != 700 {
		t.Errorf("slow %+v", r.SlowRequests)
	}
	// console.error + the 404 log line; the refused request's log line is counted in failed_requests.
	if r.ConsoleErrors != 2 || len(r.ConsoleMessages) != 4 {
		t.Errorf("console_errors %d messages %+v", r.ConsoleErrors, r.ConsoleMessages)
	}
	if r.ConsoleMessages[0].CountedIn != "failed_requests" || r.ConsoleMessages[2].Text != "boom 7" {
		t.Errorf("messages %+v", r.ConsoleMessages)
	}
	if len(r.PageErrors) != 1 || r.PageErrors[0].Text != "Uncaught Error: x" {
		t.Errorf("page errors %+v", r.PageErrors)
	}
	// A reset forgets the previous navigation.
	v.reset()
	var empty RouteResult
	v.fill(&empty, "doc", "/dashboard", time.Second)
	if empty.RequestCount != 0 || len(empty.ConsoleMessages) != 0 || empty.FailedRequests == nil {
		t.Errorf("after reset: %+v", empty)
	}
}

func TestBrowserTargetsCheck(t *testing.T) {
	tg := DefaultBrowserTargets()
	good := RouteResult{Status: 200, TTFBMs: 12, LCPMs: new(80.0), DataFetchCount: 1}
	if m := tg.Check(good); len(m) != 0 {
		t.Errorf("good result misses %v", m)
	}
	bad := RouteResult{Status: 401, TTFBMs: 150, LCPMs: new(900.0), DataFetchCount: 2,
		FailedRequests: []RequestFailure{{URL: "x"}}, PageErrors: []PageError{{Text: "e"}}}
	got := strings.Join(tg.Check(bad), "; ")
	for _, want := range []string{"status 401", "ttfb 150.0>100", "lcp 900.0>500", "failed requests 1>0", "console errors 1>0", "data fetches 2>1"} {
		if !strings.Contains(got, want) {
			t.Errorf("misses %q lack %q", got, want)
		}
	}
	if m := strings.Join(tg.Check(RouteResult{Status: 200}), ";"); !strings.Contains(m, "no lcp") {
		t.Errorf("a missing LCP must miss, got %q", m)
	}
}

func TestBrowserParseArgs(t *testing.T) {
	env := map[string]string{"CONNSUM_AUTH_OWNER_TOKEN": "envtok", "CONNSUM_CHROMIUM": "/opt/chrome"}
	getenv := func(k string) string { return env[k] }
	var stderr bytes.Buffer
	cfg, err := ParseBrowserArgs([]string{"--base", "http://127.0.0.1:7780/"}, &stderr, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Base != "http://127.0.0.1:7780" || cfg.Token != "envtok" || cfg.Chromium != "/opt/chrome" ||
		strings.Join(cfg.Routes, ",") != "/dashboard,/dashboard/runs" || len(cfg.Viewports) != 1 || cfg.Viewports[0].Name != "desktop" ||
		cfg.Warm || cfg.Settle != 500*time.Millisecond || cfg.SlowThreshold != 500*time.Millisecond || cfg.APISamples != 20 ||
		cfg.Runs != DefaultBrowserRuns || !cfg.Throttle || cfg.BudgetsPath != "" || len(cfg.Budgets.Budgets) != 1 {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg, err = ParseBrowserArgs([]string{"--base", "http://h:1", "--token", "flagtok", "--routes", "/a, /b", "--viewports", "mobile,desktop",
		"--warm", "--json", "o.json", "--screenshot", "shots", "--chromium", "/c"}, &stderr, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "flagtok" || cfg.Chromium != "/c" || strings.Join(cfg.Routes, ",") != "/a,/b" || !cfg.Warm ||
		cfg.Viewports[0] != (Viewport{Name: "mobile", Width: 412, Height: 823, Scale: 1.75, Mobile: true, Throttle: MobileThrottle}) ||
		cfg.Viewports[1] != (Viewport{Name: "desktop", Width: 1366, Height: 900, Scale: 1}) || cfg.JSONPath != "o.json" || cfg.ScreenshotDir != "shots" {
		t.Errorf("flags: %+v", cfg)
	}
	for _, args := range [][]string{
		{},
		{"--base", "127.0.0.1:7780"},
		{"--base", "http://h", "--viewports", "tablet"},
		{"--base", "http://h", "--routes", "dashboard"},
		{"--base", "http://h", "extra"},
		{"--base", "http://h", "--runs", "-1"},
		{"--base", "http://h", "--budgets", "/nonexistent/budgets.json"},
	} {
		if _, err := ParseBrowserArgs(args, &stderr, getenv); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}

func TestBrowserScreenshotName(t *testing.T) {
	for route, want := range map[string]string{
		"/dashboard":               "dashboard-mobile.png",
		"/dashboard/runs":          "dashboard_runs-mobile.png",
		"/":                        "root-mobile.png",
		"/dashboard/connections/x": "dashboard_connections_x-mobile.png",
	} {
		if got := ScreenshotName(route, "mobile"); got != want {
			t.Errorf("ScreenshotName(%q) = %q, want %q", route, got, want)
		}
	}
}

// TestBrowserServerNeverAnswers: a document that never comes yields a result with an error, not a
// lost session, and the browser still goes away.
func TestBrowserServerNeverAnswers(t *testing.T) {
	path := chromiumForTest(t)
	mux := http.NewServeMux()
	done := make(chan struct{})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(done) // before Close, which waits for the handlers
	root := t.TempDir()
	vp, _ := ViewportByName("mobile")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	drv := NewCDPBrowser(CDPOptions{ExecPath: path, Base: srv.URL, TempRoot: root, LoadTimeout: time.Second})
	res, err := drv.Visit(ctx, RouteSpec{Route: "/hang", Viewport: vp, Warm: true})
	if err != nil {
		t.Fatalf("visit: %v", err)
	}
	if len(res) != 2 {
		t.Fatalf("want cold and warm results, got %+v", res)
	}
	for _, r := range res {
		if !r.LoadTimeout || r.Error == "" || r.Status != 0 {
			t.Errorf("warm=%v: load_timeout %v error %q status %d", r.Warm, r.LoadTimeout, r.Error, r.Status)
		}
		if m := strings.Join(DefaultBrowserTargets().Check(r), ";"); !strings.Contains(m, "error:") {
			t.Errorf("a timed-out visit must fail its targets, got %q", m)
		}
	}
	if left, _ := os.ReadDir(root); len(left) != 0 {
		t.Errorf("profile directory not removed: %v", left)
	}
	if pids := processesUsing(root); len(pids) != 0 {
		t.Errorf("Chromium processes still running: %v", pids)
	}
}

func TestBrowserMissingChromium(t *testing.T) {
	drv := NewCDPBrowser(CDPOptions{ExecPath: filepath.Join(t.TempDir(), "no-chromium"), Base: "http://127.0.0.1:1"})
	vp, _ := ViewportByName("desktop")
	if _, err := drv.Visit(context.Background(), RouteSpec{Route: "/", Viewport: vp}); err == nil || !strings.Contains(err.Error(), "chromium not found") {
		t.Errorf("err = %v, want chromium not found", err)
	}
}

// TestBrowserMainFailsOnAFailedVisit: a page that answers 500 (or logs an error) makes
// `bench browser` exit non-zero naming the visit, while the JSON report is still written; timing
// misses alone do not (they are judged by budgets on medians).
func TestBrowserMainFailsOnAFailedVisit(t *testing.T) {
	chromium := chromiumForTest(t)
	const token, session = "tok_fail", "sess_fail_fixture"
	var mu sync.Mutex
	var logins int
	mux := http.NewServeMux()
	mux.HandleFunc("/_ref/connectors", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[],"has_more":false,"next_cursor":null}`)
	})
	mux.HandleFunc("/dashboard", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Fine</h1></body></html>`)
	})
	mux.HandleFunc("/dashboard/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	mux.HandleFunc("/login", fixtureLogin(token, session, &logins, &mu))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jsonPath := filepath.Join(t.TempDir(), "browser.json")
	var stdout, stderr bytes.Buffer
	err := BenchMain([]string{"browser", "--base", srv.URL, "--token", token, "--routes", "/dashboard,/dashboard/broken",
		"--viewports", "desktop", "--json", jsonPath, "--chromium", chromium, "--api-samples", "1", "--timeout", "60s", "--runs", "1"}, &stdout, &stderr, nil)
	if err == nil || !strings.Contains(err.Error(), "1 breaches") || !strings.Contains(err.Error(), "/dashboard/broken desktop cold: route failed in 1 of 1 runs: run 1: status 500") {
		t.Fatalf("bench browser over a failing page: err = %v, want 1 breach naming /dashboard/broken", err)
	}
	if strings.Contains(err.Error(), "/dashboard desktop") {
		t.Errorf("the passing page is named as failed: %v", err)
	}
	if _, statErr := os.Stat(jsonPath); statErr != nil {
		t.Errorf("no JSON report after a failed visit: %v", statErr)
	}
}
