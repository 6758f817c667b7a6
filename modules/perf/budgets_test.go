package perf

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestSessionWindowCLS(t *testing.T) {
	for _, c := range []struct {
		name   string
		shifts []LayoutShift
		want   float64
	}{
		{"none", nil, 0},
		{"one window", []LayoutShift{{0, 0.1, false}, {900, 0.2, false}, {1800, 0.05, false}}, 0.35},
		{"gap over 1 s splits", []LayoutShift{{0, 0.1, false}, {100, 0.1, false}, {1200, 0.15, false}}, 0.2},
		{"gap of exactly 1 s keeps the window", []LayoutShift{{0, 0.1, false}, {1000, 0.1, false}}, 0.2},
		{"window capped at 5 s", []LayoutShift{{0, 0.1, false}, {900, 0.1, false}, {1800, 0.1, false}, {2700, 0.1, false}, {3600, 0.1, false}, {4500, 0.1, false}, {5400, 0.1, false}}, 0.6},
		{"recent input ignored", []LayoutShift{{0, 0.1, false}, {100, 0.5, true}}, 0.1},
		{"unsorted input", []LayoutShift{{1200, 0.15, false}, {0, 0.1, false}, {100, 0.1, false}}, 0.2},
	} {
		if got := SessionWindowCLS(c.shifts); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s: cls = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestTotalBlockingTime(t *testing.T) {
	fcp := 100.0
	tasks := []LongTask{{0, 120}, {150, 50}, {200, 80}, {400, 300}}
	// 0–120 counts from FCP: 20 ms, not blocking; 150+50: 0; 200+80: 30; 400+300: 250.
	if got := TotalBlockingTime(tasks, &fcp); got != 280 {
		t.Errorf("tbt = %v, want 280", got)
	}
	if got := TotalBlockingTime(tasks, nil); got != 70+30+250 {
		t.Errorf("tbt without fcp = %v, want 350", got)
	}
}

func TestINP(t *testing.T) {
	if INP(nil) != nil {
		t.Error("INP without interactions must be nil")
	}
	evs := []EventTiming{{1, 1, "pointerdown", 0, 24}, {1, 1, "click", 2, 40}, {1, 2, "keydown", 500, 16}, {1, 0, "mousemove", 0, 300}}
	if got := INP(evs); got == nil || *got != 40 {
		t.Errorf("inp = %v, want 40 (the worst interaction, entries without an interaction id ignored)", got)
	}
	// The same id in another document (a page the tab went on to) is another interaction.
	lat := InteractionLatencies(append(evs, EventTiming{2, 1, "click", 0, 200}))
	if len(lat) != 3 || lat[InteractionKey{1, 1}] != 40 || lat[InteractionKey{2, 1}] != 200 {
		t.Errorf("latencies %v", lat)
	}
	// 100 interactions: the two worst are outliers (one per 50), the third worst is the INP.
	evs = nil
	for i := 1; i <= 100; i++ {
		evs = append(evs, EventTiming{1, int64(i), "click", float64(i), float64(i)})
	}
	if got := INP(evs); got == nil || *got != 98 {
		t.Errorf("inp of 100 interactions = %v, want 98", got)
	}
}

func TestMannWhitney(t *testing.T) {
	u, p := MannWhitney([]float64{6, 7, 8, 9, 10}, []float64{1, 2, 3, 4, 5})
	if u != 25 || math.Abs(p-2.0/252) > 1e-12 {
		t.Errorf("separated 5 vs 5: U %v p %v, want 25 and 2/252", u, p)
	}
	u, p = MannWhitney([]float64{1, 3, 5}, []float64{2, 4, 6})
	if u != 3 || p != 0.7 {
		t.Errorf("interleaved 3 vs 3: U %v p %v, want 3 and 0.7", u, p)
	}
	if _, p := MannWhitney([]float64{4, 5, 6}, []float64{1, 2, 3}); p != 0.1 {
		t.Errorf("3 vs 3 fully separated: p %v, want 0.1 (never below 0.05)", p)
	}
	if _, p := MannWhitney([]float64{3, 3, 3}, []float64{3, 3, 3}); p != 1 {
		t.Errorf("constant samples: p %v, want 1", p)
	}
	// Ties use the normal approximation: 10 vs 10 separated with ties stays significant.
	a := []float64{10, 10, 11, 11, 12, 12, 13, 13, 14, 14}
	b := []float64{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}
	if u, p := MannWhitney(a, b); u != 100 || p > 0.001 {
		t.Errorf("tied separated 10 vs 10: U %v p %v", u, p)
	}
}

func TestParseBudgetsRefusesMistakes(t *testing.T) {
	for raw, want := range map[string]string{
		`{"budgets":[{"metrics":{"lcp":1}}]}`:                      `unknown metric "lcp"`,
		`{"budgets":[{"metrics":{"lcp_ms":-1}}]}`:                  "negative limit",
		`{"budgets":[{"view":"hot","metrics":{}}]}`:                `view "hot"`,
		`{"budgets":[],"runz":3}`:                                  `unknown field "runz"`,
		`{"routes":[{"path":"dashboard"}],"budgets":[]}`:           "must start with /",
		`{"routes":[{"path":"/d","interactions":[{"name":"x"}]}]}`: "exactly one of click or type",
		`{"viewports":[{"name":"tablet"}],"budgets":[]}`:           `unknown viewport "tablet"`,
		`{"viewports":[{"name":"t","width":10}],"budgets":[]}`:     "needs width, height",
		`{"schema":"connsum.budgets/v9","budgets":[]}`:             "schema",
		`{"budgets":[]} {}`:                                        "after the JSON",
		`{"budgets":[{"route":"[","metrics":{}}]}`:                 "syntax error",
	} {
		if _, err := ParseBudgets([]byte(raw)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", raw, err, want)
		}
	}
}

// TestCommittedBudgetsFiles: the committed budgets parse, the live file extends the CI file, and the
// CI file gates the deterministic metrics on every route and viewport.
func TestCommittedBudgetsFiles(t *testing.T) {
	ci, err := LoadBudgets("../../configs/budgets.json")
	if err != nil {
		t.Fatal(err)
	}
	live, err := LoadBudgets("../../configs/budgets-live.json")
	if err != nil {
		t.Fatal(err)
	}
	if ci.Runs != 3 || !ci.Warm || len(ci.Routes) != 3 || len(ci.Viewports) != 2 {
		t.Errorf("ci budgets: runs %d warm %v routes %d viewports %d", ci.Runs, ci.Warm, len(ci.Routes), len(ci.Viewports))
	}
	mobile, err := ci.Viewports[1].Resolve()
	if err != nil || mobile != (Viewport{Name: "mobile", Width: 412, Height: 823, Scale: 1.75, Mobile: true, Throttle: MobileThrottle}) {
		t.Errorf("ci mobile viewport %+v (%v), want the built-in throttled mobile", mobile, err)
	}
	for _, vp := range []string{"desktop", "mobile"} {
		for _, r := range ci.Routes {
			l := ci.limitsFor(r.Path, r.Path, vp, "cold")
			if l["failed_requests"] != 0 || l["console_errors"] != 0 || l["data_fetches"] != 1 || l["request_count"] == 0 {
				t.Errorf("%s %s: limits %v", r.Path, vp, l)
			}
		}
	}
	if live.Runs != 5 || len(live.Routes) != 3 || len(live.Budgets) != len(ci.Budgets)+2 {
		t.Errorf("live budgets: runs %d routes %d budgets %d", live.Runs, len(live.Routes), len(live.Budgets))
	}
	if l := live.limitsFor("/dashboard", "/dashboard", "desktop", "warm"); l["lcp_ms"] != 500 || l["ttfb_ms"] != 100 || l["failed_requests"] != 0 {
		t.Errorf("live desktop limits %v: want SPEC §8's TTFB 100 and LCP 500 over the CI file's", l)
	}
}

func TestJudgeMediansAndWorstRun(t *testing.T) {
	b := BudgetsFile{Budgets: []Budget{
		{Metrics: map[string]float64{"lcp_ms": 500, "failed_requests": 0, "request_count": 5}},
		{Route: "/dashboard/connections/*", Metrics: map[string]float64{"lcp_ms": 100}},
		{View: "warm", Metrics: map[string]float64{"lcp_ms": 1000}},
	}}
	sample := func(route string, run int, lcp float64, failed int) RouteResult {
		r := RouteResult{Route: route, Run: run, Viewport: "desktop", Status: 200, LCPMs: new(lcp), RequestCount: 3}
		for range failed {
			r.FailedRequests = append(r.FailedRequests, RequestFailure{URL: "x"})
		}
		return r
	}
	samples := []RouteResult{
		sample("/dashboard", 1, 450, 0), sample("/dashboard", 2, 9000, 0), sample("/dashboard", 3, 480, 1),
		sample("/dashboard/connections/c1", 1, 150, 0),
		{Route: "/dashboard/runs", Run: 1, Viewport: "desktop", Status: 401, LCPMs: new(10.0)},
		{Route: "/dashboard/runs", Run: 2, Viewport: "desktop", Status: 200, LCPMs: new(20.0)},
	}
	samples[3].Template = "/dashboard/connections/{connection}"
	gs := b.Judge(samples)
	if len(gs) != 3 {
		t.Fatalf("groups %+v", gs)
	}
	d := gs[0]
	// The one slow run does not move the median; the one failed request is judged on the worst run.
	if d.Values["lcp_ms"] != 480 || d.Values["failed_requests"] != 1 || len(d.Breaches) != 1 ||
		d.Breaches[0].Metric != "failed_requests" || d.Breaches[0].Basis != "worst" {
		t.Errorf("/dashboard: values %v breaches %+v", d.Values, d.Breaches)
	}
	if !strings.Contains(d.Breaches[0].String(), "/dashboard desktop cold: failed_requests worst 1 > budget 0 (runs: 0, 0, 1)") {
		t.Errorf("breach line %q", d.Breaches[0].String())
	}
	c := gs[1]
	if c.Limits["lcp_ms"] != 100 || len(c.Breaches) != 1 || !strings.Contains(c.Breaches[0].Text, "lcp_ms median 150 > budget 100") {
		t.Errorf("connection page (matched by its template): limits %v breaches %+v", c.Limits, c.Breaches)
	}
	r := gs[2]
	if len(r.Breaches) != 1 || r.Breaches[0].Metric != "route" || !strings.Contains(r.Breaches[0].Text, "route failed in 1 of 2 runs: run 1: status 401") ||
		r.Values["lcp_ms"] != 20 {
		t.Errorf("/dashboard/runs: values %v breaches %+v", r.Values, r.Breaches)
	}
}

func TestCompareBaseline(t *testing.T) {
	mk := func(lcps ...float64) []RouteResult {
		var out []RouteResult
		for i, l := range lcps {
			out = append(out, RouteResult{Route: "/d", Viewport: "desktop", Run: i + 1, Status: 200, LCPMs: new(l), TTFBMs: 10 + float64(i%2)})
		}
		return out
	}
	old := mk(100, 102, 98, 101, 99)
	res := CompareBaseline("old.json", old, mk(150, 152, 149, 151, 148), DefaultBaselineAlpha, DefaultBaselineMinChange)
	regs := res.Regressions()
	if len(regs) != 1 || regs[0].Metric != "lcp_ms" || regs[0].P >= 0.05 || res.Note != "" {
		t.Fatalf("regressions %+v note %q", regs, res.Note)
	}
	if !strings.Contains(regs[0].String(), "/d desktop cold: lcp_ms median 100 → 150 (+50.0%)") || !strings.Contains(regs[0].Text, "REGRESSION") {
		t.Errorf("regression line %q", regs[0].String())
	}
	// Single-run noise: one slow run among five is not significant.
	if regs := CompareBaseline("old.json", old, mk(100, 300, 99, 101, 98), 0.05, 0.05).Regressions(); len(regs) != 0 {
		t.Errorf("one outlier reported as a regression: %+v", regs)
	}
	// Faster is no regression.
	if regs := CompareBaseline("old.json", old, mk(50, 51, 49, 52, 48), 0.05, 0.05).Regressions(); len(regs) != 0 {
		t.Errorf("an improvement reported as a regression: %+v", regs)
	}
	// Three runs a side can never be significant, and the report says so.
	if res := CompareBaseline("old.json", mk(1, 2, 3), mk(7, 8, 9), 0.05, 0.05); len(res.Regressions()) != 0 || !strings.Contains(res.Note, "--runs 5") {
		t.Errorf("3 vs 3: regressions %+v note %q", res.Regressions(), res.Note)
	}
}

func TestLoadBaselineRefusesAnOlderSchema(t *testing.T) {
	dir := t.TempDir()
	old, cur := filepath.Join(dir, "v1.json"), filepath.Join(dir, "v2.json")
	os.WriteFile(old, []byte(`{"schema":"connsum.bench.browser/v1","routes":[{"route":"/d","status":200}]}`), 0o644)
	os.WriteFile(cur, []byte(`{"schema":"`+BrowserSchema+`","routes":[{"route":"/d","status":200,"run":1}]}`), 0o644)
	if _, err := LoadBaseline(old); err == nil || !strings.Contains(err.Error(), "measure the baseline again") {
		t.Errorf("v1 baseline: err = %v", err)
	}
	if rs, err := LoadBaseline(cur); err != nil || len(rs) != 1 || rs[0].Run != 1 {
		t.Errorf("v2 baseline: %+v, %v", rs, err)
	}
}

func TestJUnitOfAReport(t *testing.T) {
	rep := &BrowserReport{At: "2026-12-01T00:00:00Z", Groups: []GroupSummary{
		{Route: "/a", Viewport: "desktop", View: "cold", Runs: 3, Values: map[string]float64{"lcp_ms": 90}},
		{Route: "/b", Viewport: "mobile", View: "warm", Runs: 3, Values: map[string]float64{"lcp_ms": 900},
			Breaches: []Breach{{Route: "/b", Viewport: "mobile", View: "warm", Text: "lcp_ms median 900 > budget 500 (runs: 800, 900, 950)"}}},
	}, Skipped: []SkippedRoute{{Route: "/c/{connection}", Reason: "not visited: no connection id"}}}
	var doc JUnitSuites
	if err := xml.Unmarshal(mustXML(t, rep), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 3 || doc.Failures != 2 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 3 {
		t.Fatalf("junit %+v", doc)
	}
	c := doc.Suites[0].Cases
	if c[0].Failure != nil || c[1].Failure == nil || c[1].ClassName != "bench.browser./b" || c[1].Name != "mobile warm" ||
		!strings.Contains(c[1].Failure.Message, "lcp_ms median 900 > budget 500") || c[2].Failure == nil {
		t.Errorf("cases %+v", c)
	}
}

func mustXML(t *testing.T, rep *BrowserReport) []byte {
	t.Helper()
	f := filepath.Join(t.TempDir(), "junit.xml")
	if err := rep.WriteJUnit(f); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f)
	if err != nil || !bytes.HasPrefix(b, []byte("<?xml")) {
		t.Fatalf("junit file: %v %q", err, b)
	}
	return b
}

// TestBrowserMainOverBudget: a fixture page over its request-count and transfer budgets makes the
// command fail naming both breaches, keeps every sample of its 2 runs × cold/warm in the JSON, and
// writes JUnit XML that parses with the breach as the failure.
func TestBrowserMainOverBudget(t *testing.T) {
	chromium := chromiumForTest(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/_ref/connectors", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[],"has_more":false,"next_cursor":null}`)
	})
	mux.HandleFunc("/img/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><!--%s--></svg>`, strings.Repeat("x", 20000))
	})
	mux.HandleFunc("/heavy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Heavy</h1><img src="/img/1" width="10" height="10" alt=""><img src="/img/2" width="10" height="10" alt=""><img src="/img/3" width="10" height="10" alt=""></body></html>`)
	})
	mux.HandleFunc("/light", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Light</h1></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	budgets := filepath.Join(dir, "budgets.json")
	os.WriteFile(budgets, []byte(`{"schema":"connsum.budgets/v1","runs":2,"warm":true,
  "routes":[{"path":"/light"},{"path":"/heavy"}],
  "viewports":[{"name":"desktop"}],
  "budgets":[{"metrics":{"request_count":3,"failed_requests":0,"console_errors":0}},
             {"route":"/heavy","metrics":{"transfer_bytes":30000}}]}`), 0o644)
	jsonPath, junitPath := filepath.Join(dir, "b.json"), filepath.Join(dir, "b.xml")
	var stdout, stderr bytes.Buffer
	err := BrowserMain([]string{"--base", srv.URL, "--budgets", budgets, "--json", jsonPath, "--junit", junitPath,
		"--chromium", chromium, "--api-samples", "0"}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("over budget but no error; stdout:\n%s", stdout.String())
	}
	msg := err.Error()
	for _, want := range []string{"/heavy desktop cold: request_count median 4 > budget 3", "/heavy desktop cold: transfer_bytes median",
		"/heavy desktop warm: request_count median 4 > budget 3"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "/light") {
		t.Errorf("the light page breached: %s", msg)
	}
	if !strings.Contains(stdout.String(), "BREACH /heavy desktop cold: request_count") {
		t.Errorf("stdout lacks the breach lines:\n%s", stdout.String())
	}
	var rep BrowserReport
	raw, _ := os.ReadFile(jsonPath)
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Runs != 2 || len(rep.Routes) != 8 || len(rep.Groups) != 4 {
		t.Fatalf("runs %d, %d samples, %d groups; want 2 runs, 2 routes × 2 runs × cold/warm samples, 4 groups", rep.Runs, len(rep.Routes), len(rep.Groups))
	}
	for i, r := range rep.Routes {
		if r.Run != i/2%2+1 || r.Warm != (i%2 == 1) {
			t.Errorf("sample %d: run %d warm %v", i, r.Run, r.Warm)
		}
		if r.Route == "/heavy" && (r.RequestCount != 4 || r.TransferBytes < 60000) {
			t.Errorf("sample %d: %d requests, %d bytes", i, r.RequestCount, r.TransferBytes)
		}
	}
	xmlRaw, err := os.ReadFile(junitPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc JUnitSuites
	if err := xml.Unmarshal(xmlRaw, &doc); err != nil {
		t.Fatalf("junit does not parse: %v\n%s", err, xmlRaw)
	}
	if doc.Tests != 4 || doc.Failures != 2 {
		t.Errorf("junit tests %d failures %d, want 4 and 2 (/heavy cold and warm)", doc.Tests, doc.Failures)
	}
	for _, c := range doc.Suites[0].Cases {
		heavy := c.ClassName == "bench.browser./heavy"
		if heavy != (c.Failure != nil) || heavy && !strings.Contains(c.Failure.Body, "request_count median 4 > budget 3") {
			t.Errorf("case %+v", c)
		}
	}
}

// TestBrowserMainExitsOnStoppedServerAndBadToken: nothing listening, or a token the service refuses,
// is an error (a non-zero exit) naming the cause, with the JUnit report still written.
func TestBrowserMainExitsOnStoppedServerAndBadToken(t *testing.T) {
	chromium := chromiumForTest(t)
	dir := t.TempDir()
	stopped := fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))
	junit := filepath.Join(dir, "stopped.xml")
	err := BrowserMain([]string{"--base", stopped, "--token", "tok", "--routes", "/dashboard", "--runs", "1", "--api-samples", "0",
		"--chromium", chromium, "--junit", junit}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("stopped server: err = %v, want a refused connection", err)
	}
	if raw, rErr := os.ReadFile(junit); rErr != nil || xml.Unmarshal(raw, &JUnitSuites{}) != nil || !bytes.Contains(raw, []byte("<failure")) {
		t.Errorf("stopped server: junit %v %s", rErr, raw)
	}
	// Without a token the harness logs in with nothing: the pages answer 401 and the routes breach.
	err = BrowserMain([]string{"--base", stopped, "--routes", "/dashboard", "--runs", "1", "--api-samples", "0", "--chromium", chromium},
		&bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/dashboard desktop cold: route failed in 1 of 1 runs: run 1: navigate: net::ERR_CONNECTION_REFUSED") {
		t.Errorf("stopped server, no token: err = %v, want the route failure named", err)
	}

	var mu sync.Mutex
	logins := 0
	mux := http.NewServeMux()
	mux.HandleFunc("/login", fixtureLogin("right-token", "sess", &logins, &mu))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "unauthorized", http.StatusUnauthorized) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	err = BrowserMain([]string{"--base", srv.URL, "--token", "wrong-token", "--routes", "/dashboard,/dashboard/connections/{connection}",
		"--runs", "1", "--api-samples", "0", "--chromium", chromium}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "POST /login answered 401") {
		t.Errorf("bad token: err = %v, want the refused login named", err)
	}
	// A session that answers 401 (an expired one) fails every route, and a {connection} route that
	// cannot be resolved is a breach too.
	err = BrowserMain([]string{"--base", srv.URL, "--routes", "/dashboard,/dashboard/connections/{connection}",
		"--runs", "1", "--api-samples", "0", "--chromium", chromium}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "/dashboard desktop cold: route failed in 1 of 1 runs: run 1: status 401") ||
		!strings.Contains(err.Error(), "/dashboard/connections/{connection}: not visited: no connection id in the overview (GET /_ref/connectors: status 401)") {
		t.Errorf("401 pages: err = %v", err)
	}
}
