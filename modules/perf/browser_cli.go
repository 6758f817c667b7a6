package perf

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BrowserReport is the `bench browser` JSON.
type BrowserReport struct {
	Schema          string  `json:"schema"`
	Base            string  `json:"base"`
	At              string  `json:"at"`
	Machine         string  `json:"machine"`
	Chromium        string  `json:"chromium"`
	SettleMs        float64 `json:"settle_ms"`
	SlowThresholdMs float64 `json:"slow_threshold_ms"`
	// Runs is the number of fresh-browser runs per route and viewport; Routes keeps every sample.
	Runs      int            `json:"runs"`
	Throttled bool           `json:"throttled"`
	Routes    []RouteResult  `json:"routes"`
	APIProbes []APIProbe     `json:"api_probes"`
	Targets   BrowserTargets `json:"targets"`
	// BudgetsFile is the --budgets file ("" for the built-in DefaultBudgets); Budgets what it says.
	BudgetsFile string      `json:"budgets_file"`
	Budgets     BudgetsFile `json:"budgets"`
	// Groups are the routes per viewport and view judged on their runs (medians, breaches).
	Groups []GroupSummary `json:"groups"`
	// Skipped are routes that could not be visited at all (each one is a breach).
	Skipped []SkippedRoute `json:"skipped,omitempty"`
	// Baseline is the comparison with --baseline, when given.
	Baseline *BaselineResult `json:"baseline,omitempty"`
	// Fatal is the error that stopped the run early, if any.
	Fatal string `json:"fatal,omitempty"`
}

// SkippedRoute is a configured route the harness could not visit.
type SkippedRoute struct {
	Route  string `json:"route"`
	Reason string `json:"reason"`
}

// APIProbe is a feed read measured over plain HTTP with the owner token, beside the browser figures.
type APIProbe struct {
	Name   string  `json:"name"`
	Path   string  `json:"path"`
	N      int     `json:"n"`
	Errors int     `json:"errors"`
	Status int     `json:"status"`
	P50    float64 `json:"p50_ms"`
	P95    float64 `json:"p95_ms"`
	Bytes  int     `json:"bytes"`
	// ServerTiming and SummaryCache are the Server-Timing and X-Summary-Cache headers of the last response.
	ServerTiming string `json:"server_timing"`
	SummaryCache string `json:"summary_cache"`
	Note         string `json:"note,omitempty"`
}

// BrowserConfig is the parsed command line of `bench browser`.
type BrowserConfig struct {
	Base   string
	Token  string
	Routes []string
	// Interactions are the scripted interactions per configured route (from the budgets file).
	Interactions  map[string][]Interaction
	Viewports     []Viewport
	Warm          bool
	Runs          int
	Throttle      bool
	BudgetsPath   string
	Budgets       BudgetsFile
	JSONPath      string
	JUnitPath     string
	BaselinePath  string
	TraceDir      string
	ScreenshotDir string
	Chromium      string
	Settle        time.Duration
	SlowThreshold time.Duration
	VisitTimeout  time.Duration
	APISamples    int
}

// DefaultBrowserRuns is the number of runs per route and viewport without --runs or a budgets file.
const DefaultBrowserRuns = 3

const browserUsage = "usage: connsum bench browser --base URL [--token T] [--budgets FILE] [--runs N] " +
	"[--routes /dashboard,/dashboard/runs] [--viewports desktop,mobile] [--warm] [--throttle=false] " +
	"[--json FILE] [--junit FILE] [--baseline OLD.json] [--trace DIR] [--screenshot DIR] [--chromium PATH] " +
	"[--settle 500ms] [--slow 500ms] [--timeout 90s] [--api-samples 20]"

// ParseBrowserArgs reads the flags of `bench browser`; getenv supplies CONNSUM_AUTH_OWNER_TOKEN and
// CONNSUM_CHROMIUM.
func ParseBrowserArgs(args []string, stderr io.Writer, getenv func(string) string) (BrowserConfig, error) {
	fs := flag.NewFlagSet("bench browser", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, browserUsage); fs.PrintDefaults() }
	base := fs.String("base", "", "base URL of a running connsum, e.g. http://127.0.0.1:7780 (required)")
	token := fs.String("token", "", "owner token (default: $CONNSUM_AUTH_OWNER_TOKEN)")
	routes := fs.String("routes", "/dashboard,/dashboard/runs", "comma-separated routes; {connection} is replaced by the first connection id of the overview; without the flag a budgets file's routes replace this default")
	viewports := fs.String("viewports", "desktop", "comma-separated viewports: desktop, mobile, or one of the budgets file; without the flag the file's viewports replace this default")
	warm := fs.Bool("warm", false, "visit each route a second time in the same browser and profile (also set by the budgets file)")
	budgets := fs.String("budgets", "", "budgets file (JSON, docs/browser-harness.md); default: no failed request, no console error, ≤ 1 data fetch")
	runs := fs.Int("runs", 0, fmt.Sprintf("fresh-browser runs per route and viewport, judged on the median (default: the budgets file's, else %d)", DefaultBrowserRuns))
	throttle := fs.Bool("throttle", true, "apply each viewport's CPU and network throttling (mobile: 4x CPU, 150 ms RTT, 1.6/0.75 Mbps)")
	jsonOut := fs.String("json", "", "write the JSON report here")
	junit := fs.String("junit", "", "write a JUnit XML report here (one test case per route, viewport and view)")
	baseline := fs.String("baseline", "", "compare every metric's samples with this earlier --json report (Mann-Whitney U)")
	trace := fs.String("trace", "", "save a DevTools trace of the first cold visit of each route and viewport in this directory")
	shots := fs.String("screenshot", "", "save a full-page PNG per route and viewport in this directory")
	chromium := fs.String("chromium", "", "Chromium binary (default: $CONNSUM_CHROMIUM or "+DefaultChromiumPath+")")
	settle := fs.Duration("settle", 500*time.Millisecond, "wait after the load event for late fetches and LCP")
	slow := fs.Duration("slow", 500*time.Millisecond, "a request slower than this is listed in slow_requests")
	timeout := fs.Duration("timeout", 90*time.Second, "upper bound of one browser session (one run of a route in a viewport)")
	samples := fs.Int("api-samples", 20, "samples per API probe (0 skips the probes)")
	if err := fs.Parse(args); err != nil {
		return BrowserConfig{}, err
	}
	if fs.NArg() > 0 {
		return BrowserConfig{}, fmt.Errorf("bench browser: unexpected argument %q; %s", fs.Arg(0), browserUsage)
	}
	cfg := BrowserConfig{
		Base: strings.TrimRight(*base, "/"), Token: *token, Warm: *warm, JSONPath: *jsonOut, ScreenshotDir: *shots,
		Chromium: *chromium, Settle: *settle, SlowThreshold: *slow, VisitTimeout: *timeout, APISamples: *samples,
		Runs: *runs, Throttle: *throttle, BudgetsPath: *budgets, JUnitPath: *junit, BaselinePath: *baseline, TraceDir: *trace,
		Interactions: map[string][]Interaction{}, Budgets: DefaultBudgets(),
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.BudgetsPath != "" {
		b, err := LoadBudgets(cfg.BudgetsPath)
		if err != nil {
			return cfg, fmt.Errorf("bench browser: %w", err)
		}
		cfg.Budgets = b
	}
	if cfg.Runs < 0 {
		return cfg, errors.New("bench browser: --runs must not be negative")
	}
	if cfg.Runs == 0 {
		cfg.Runs = cfg.Budgets.Runs
	}
	if cfg.Runs == 0 {
		cfg.Runs = DefaultBrowserRuns
	}
	cfg.Warm = cfg.Warm || cfg.Budgets.Warm
	for _, rc := range cfg.Budgets.Routes {
		cfg.Interactions[rc.Path] = rc.Interactions
	}
	if !set["routes"] && len(cfg.Budgets.Routes) > 0 {
		var paths []string
		for _, rc := range cfg.Budgets.Routes {
			paths = append(paths, rc.Path)
		}
		*routes = strings.Join(paths, ",")
	}
	fileViewports := map[string]Viewport{}
	var fileOrder []string
	for _, vc := range cfg.Budgets.Viewports {
		vp, _ := vc.Resolve() // checked by ParseBudgets
		fileViewports[vc.Name] = vp
		fileOrder = append(fileOrder, vc.Name)
	}
	if !set["viewports"] && len(fileOrder) > 0 {
		*viewports = strings.Join(fileOrder, ",")
	}
	if cfg.Base == "" {
		return cfg, errors.New("bench browser: --base is required; " + browserUsage)
	}
	if u, err := url.Parse(cfg.Base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("bench browser: --base %q is no http(s) URL", cfg.Base)
	}
	if cfg.Token == "" {
		cfg.Token = getenv("CONNSUM_AUTH_OWNER_TOKEN")
	}
	if cfg.Chromium == "" {
		cfg.Chromium = getenv("CONNSUM_CHROMIUM")
	}
	if cfg.Chromium == "" {
		cfg.Chromium = DefaultChromiumPath
	}
	for _, r := range splitList(*routes) {
		if !strings.HasPrefix(r, "/") {
			return cfg, fmt.Errorf("bench browser: route %q must start with /", r)
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	if len(cfg.Routes) == 0 {
		return cfg, errors.New("bench browser: --routes is empty")
	}
	for _, name := range splitList(*viewports) {
		vp, ok := fileViewports[name]
		if !ok {
			var err error
			if vp, err = ViewportByName(name); err != nil {
				return cfg, err
			}
		}
		cfg.Viewports = append(cfg.Viewports, vp)
	}
	if len(cfg.Viewports) == 0 {
		return cfg, errors.New("bench browser: --viewports is empty")
	}
	if cfg.Settle < 0 || cfg.SlowThreshold <= 0 || cfg.VisitTimeout <= 0 || cfg.APISamples < 0 {
		return cfg, errors.New("bench browser: --settle, --slow, --timeout and --api-samples must not be negative")
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// BrowserMain runs `connsum bench browser`: it visits, judges the budgets (and the baseline), writes
// the JSON and JUnit reports, prints one line per breach and returns an error when anything
// breached, so the exit code gates CI.
func BrowserMain(args []string, stdout, stderr io.Writer) error {
	cfg, err := ParseBrowserArgs(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	var baseline []RouteResult
	if cfg.BaselinePath != "" {
		if baseline, err = LoadBaseline(cfg.BaselinePath); err != nil {
			return fmt.Errorf("bench browser: %w", err)
		}
	}
	if cfg.Token == "" {
		fmt.Fprintln(stderr, "bench browser: no owner token (--token or CONNSUM_AUTH_OWNER_TOKEN): owner routes will answer 401")
	}
	drv := NewCDPBrowser(CDPOptions{
		ExecPath: cfg.Chromium, Base: cfg.Base, Token: cfg.Token, Settle: cfg.Settle,
		SlowThreshold: cfg.SlowThreshold, ScreenshotDir: cfg.ScreenshotDir, ApplyThrottle: cfg.Throttle,
	})
	rep, err := RunBrowser(context.Background(), cfg, drv, stderr)
	if rep == nil {
		return err
	}
	if err != nil {
		rep.Fatal = err.Error()
	}
	if cfg.BaselinePath != "" {
		rep.Baseline = CompareBaseline(cfg.BaselinePath, baseline, rep.Routes, DefaultBaselineAlpha, DefaultBaselineMinChange)
	}
	rep.Print(stdout)
	if cfg.JSONPath != "" {
		b, mErr := json.MarshalIndent(rep, "", "  ")
		if mErr != nil {
			return mErr
		}
		if wErr := os.WriteFile(cfg.JSONPath, append(b, '\n'), 0o644); wErr != nil {
			return wErr
		}
	}
	if cfg.JUnitPath != "" {
		if wErr := rep.WriteJUnit(cfg.JUnitPath); wErr != nil {
			return wErr
		}
	}
	if err != nil {
		return err
	}
	return rep.Verdict()
}

// Breaches lists, one line each, every budget breach, every route that could not be visited and
// every significant regression against the baseline.
func (r *BrowserReport) Breaches() []string {
	var lines []string
	for _, g := range r.Groups {
		for _, b := range g.Breaches {
			lines = append(lines, b.String())
		}
	}
	for _, s := range r.Skipped {
		lines = append(lines, s.Route+": "+s.Reason)
	}
	if r.Baseline != nil {
		for _, c := range r.Baseline.Regressions() {
			lines = append(lines, c.String())
		}
	}
	return lines
}

// Verdict is nil when nothing breached, else an error with one line per breach.
func (r *BrowserReport) Verdict() error {
	lines := r.Breaches()
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("bench browser: %d breaches:\n  %s", len(lines), strings.Join(lines, "\n  "))
}

// RunBrowser visits every route in every viewport cfg.Runs times with drv (a fresh browser per run),
// judges the samples against cfg.Budgets, then probes the feed API, and returns the report. It stops
// at the first visit that could not run at all (for example no Chromium) and returns what it has
// with the error.
func RunBrowser(ctx context.Context, cfg BrowserConfig, drv Browser, progress io.Writer) (*BrowserReport, error) {
	c := &client{t: &Target{Base: cfg.Base, OwnerToken: cfg.Token}, http: &http.Client{Timeout: 30 * time.Second}}
	runs := max(cfg.Runs, 1)
	rep := &BrowserReport{
		Schema: BrowserSchema, Base: cfg.Base, At: time.Now().UTC().Format(time.RFC3339), Machine: machine(),
		Chromium: chromiumVersion(cfg.Chromium), SettleMs: ms(cfg.Settle), SlowThresholdMs: ms(cfg.SlowThreshold),
		Runs: runs, Throttled: cfg.Throttle, Routes: []RouteResult{}, APIProbes: []APIProbe{}, Targets: DefaultBrowserTargets(),
		BudgetsFile: cfg.BudgetsPath, Budgets: cfg.Budgets, Groups: []GroupSummary{},
	}
	firstConnection, overviewErr := "", ""
	needsConnection := false
	for _, r := range cfg.Routes {
		needsConnection = needsConnection || strings.Contains(r, "{connection}")
	}
	if needsConnection || cfg.APISamples > 0 {
		id, err := c.firstConnectionID()
		if err != nil {
			overviewErr = err.Error()
			fmt.Fprintf(progress, "bench browser: overview: %v\n", err)
		}
		firstConnection = id
	}
	defer func() { rep.Groups = cfg.Budgets.Judge(rep.Routes) }()
	for _, template := range cfg.Routes {
		route := template
		if strings.Contains(route, "{connection}") {
			if firstConnection == "" {
				reason := "no connection id in the overview"
				if overviewErr != "" {
					reason += " (GET /_ref/connectors: " + overviewErr + ")"
				}
				fmt.Fprintf(progress, "bench browser: skip %s: %s\n", route, reason)
				rep.Skipped = append(rep.Skipped, SkippedRoute{Route: template, Reason: "not visited: " + reason})
				continue
			}
			route = strings.ReplaceAll(route, "{connection}", url.PathEscape(firstConnection))
		}
		for _, vp := range cfg.Viewports {
			for run := 1; run <= runs; run++ {
				fmt.Fprintf(progress, "bench browser: %s (%s) run %d/%d…\n", route, vp.Name, run, runs)
				spec := RouteSpec{Route: route, Viewport: vp, Warm: cfg.Warm, Interactions: cfg.Interactions[template]}
				if cfg.TraceDir != "" && run == 1 {
					spec.TraceFile = filepath.Join(cfg.TraceDir, strings.TrimSuffix(ScreenshotName(route, vp.Name), ".png")+".trace.json")
				}
				vctx, cancel := context.WithTimeout(ctx, cfg.VisitTimeout)
				results, err := drv.Visit(vctx, spec)
				cancel()
				for i := range results {
					results[i].Run, results[i].Template = run, template
					// SPEC §8's timing targets are for unthrottled loopback; a throttled view is
					// held to the budgets only, so its verdict lists the machine-independent misses.
					if results[i].Throttled {
						results[i].Misses = rep.Targets.Failures(results[i])
					} else {
						results[i].Misses = rep.Targets.Check(results[i])
					}
					results[i].Pass = len(results[i].Misses) == 0
				}
				rep.Routes = append(rep.Routes, results...)
				if err != nil {
					return rep, err
				}
			}
		}
	}
	if cfg.APISamples > 0 {
		rep.APIProbes = append(rep.APIProbes, c.probe("overview", "/_ref/connectors", cfg.APISamples))
		if firstConnection != "" {
			rep.APIProbes = append(rep.APIProbes, c.probe("scoped", "/_ref/connectors?connection="+url.QueryEscape(firstConnection), cfg.APISamples))
		} else {
			rep.APIProbes = append(rep.APIProbes, APIProbe{Name: "scoped", Path: "/_ref/connectors?connection=", Note: "skipped: no connection in the overview"})
		}
	}
	return rep, nil
}

// firstConnectionID reads the overview once and returns the first connection id.
func (c *client) firstConnectionID() (string, error) {
	req, err := http.NewRequest(http.MethodGet, c.t.Base+"/_ref/connectors", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.t.OwnerToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var env struct {
		Data []struct {
			ConnectionID string `json:"connection_id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return "", err
	}
	if len(env.Data) == 0 {
		return "", nil
	}
	return env.Data[0].ConnectionID, nil
}

// probe measures n GETs of path with the owner token (after one unmeasured warm-up).
func (c *client) probe(name, path string, n int) APIProbe {
	p := APIProbe{Name: name, Path: path}
	var durations []float64
	for i := -1; i < n; i++ {
		status, size, hdr, dur, err := c.do(http.MethodGet, path, c.t.OwnerToken, nil)
		if i < 0 {
			continue
		}
		if err != nil {
			p.Errors++
			p.Note = err.Error()
			continue
		}
		p.Status, p.Bytes = status, size
		p.ServerTiming, p.SummaryCache = hdr.Get("Server-Timing"), hdr.Get("X-Summary-Cache")
		if status != http.StatusOK {
			p.Errors++
			continue
		}
		durations = append(durations, float64(dur.Microseconds())/1000)
	}
	p.N, p.P50, p.P95 = len(durations), percentile(durations, 0.5), percentile(durations, 0.95)
	return p
}

// chromiumVersion asks the binary for its version; empty when it cannot run.
func chromiumVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := execOutput(ctx, path, "--version")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// Print writes the human tables: every sample with its verdict against the SPEC §8 targets, then
// the medians per route, viewport and view with their budget verdict, the scripted interactions,
// the baseline comparison, and the API probes.
func (r *BrowserReport) Print(w io.Writer) {
	fmt.Fprintf(w, "connsum bench browser — %s (%s; %s)\n", r.Base, r.Chromium, r.Machine)
	t := r.Targets
	budgets := r.BudgetsFile
	if budgets == "" {
		budgets = "built-in (no failed request, no console error, ≤ 1 data fetch)"
	}
	fmt.Fprintf(w, "runs %d per route and viewport; throttling %v; budgets %s\n", r.Runs, onOff(r.Throttled), budgets)
	fmt.Fprintf(w, "targets (verdict column; timings on unthrottled views only): ttfb ≤ %g ms, lcp ≤ %g ms, failed requests ≤ %d, console errors ≤ %d, data fetches ≤ %d per navigation\n",
		t.TTFBMs, t.LCPMs, t.FailedRequests, t.ConsoleErrors, t.DataFetchesPerNavigation)
	rw := len("route")
	for _, x := range r.Routes {
		rw = max(rw, len(x.Route))
	}
	fmt.Fprintf(w, "%-*s %-8s %-4s %3s %6s %8s %8s %8s %7s %7s %7s %8s %5s %7s %6s %7s %7s %7s %5s  %s\n",
		rw, "route", "viewport", "view", "run", "status", "ttfb", "fcp", "lcp", "cls", "tbt", "inp", "load", "reqs", "KB", "failed", "aborted",
		"con.err", "pg.err", "data", "verdict")
	for _, x := range r.Routes {
		verdict := "PASS"
		if !x.Pass {
			verdict = "FAIL: " + strings.Join(x.Misses, "; ")
		}
		fmt.Fprintf(w, "%-*s %-8s %-4s %3d %6d %8.1f %8s %8s %7.4f %7.1f %7s %8.1f %5d %7.1f %6d %7d %7d %7d %5d  %s\n",
			rw, x.Route, x.Viewport, viewName(x.Warm), x.Run, x.Status, x.TTFBMs, optMs(x.FCPMs), optMs(x.LCPMs), x.CLS, x.TBTMs, optMs(x.INPMs),
			x.LoadMs, x.RequestCount, float64(x.TransferBytes)/1024, len(x.FailedRequests), len(x.AbortedRequests), x.ConsoleErrors, len(x.PageErrors),
			x.DataFetchCount, verdict)
	}
	if len(r.Groups) > 0 {
		fmt.Fprintf(w, "\nmedians (error counts: worst run) against the budgets\n")
		fmt.Fprintf(w, "%-*s %-8s %-4s %4s %8s %8s %8s %7s %7s %7s %5s %7s %5s %7s %6s  %s\n",
			rw, "route", "viewport", "view", "runs", "ttfb", "fcp", "lcp", "cls", "tbt", "inp", "reqs", "KB", "data", "con.err", "failed", "budgets")
		for _, g := range r.Groups {
			verdict := "PASS"
			if len(g.Breaches) > 0 {
				verdict = fmt.Sprintf("FAIL (%d)", len(g.Breaches))
			}
			v := func(name, f string) string {
				x, ok := g.Values[name]
				if !ok {
					return "-"
				}
				return fmt.Sprintf(f, x)
			}
			fmt.Fprintf(w, "%-*s %-8s %-4s %4d %8s %8s %8s %7s %7s %7s %5s %7s %5s %7s %6s  %s\n",
				rw, g.Route, g.Viewport, g.View, g.Runs, v("ttfb_ms", "%.1f"), v("fcp_ms", "%.1f"), v("lcp_ms", "%.1f"), v("cls", "%.4f"),
				v("tbt_ms", "%.1f"), v("inp_ms", "%.1f"), v("request_count", "%.0f"), kb(g.Values), v("data_fetches", "%.0f"),
				v("console_errors", "%.0f"), v("failed_requests", "%.0f"), verdict)
		}
	}
	printed := map[string]bool{}
	for _, x := range r.Routes {
		for _, in := range x.Interactions {
			if in.Outcome == "ok" {
				continue
			}
			line := fmt.Sprintf("interaction %q on %s (%s): %s: %s", in.Name, x.Route, x.Viewport, in.Outcome, in.Note)
			if !printed[line] {
				printed[line] = true
				fmt.Fprintln(w, line)
			}
		}
	}
	if r.Baseline != nil {
		fmt.Fprintf(w, "\nbaseline %s (Mann-Whitney U, two-sided, p < %g and median worse by > %g%%)\n", r.Baseline.File, r.Baseline.Alpha, r.Baseline.MinChange*100)
		if r.Baseline.Note != "" {
			fmt.Fprintln(w, "note: "+r.Baseline.Note)
		}
		for _, c := range r.Baseline.Comparisons {
			if c.Regression || c.P < r.Baseline.Alpha {
				fmt.Fprintln(w, "  "+c.String())
			}
		}
		fmt.Fprintf(w, "  %d comparisons, %d regressions\n", len(r.Baseline.Comparisons), len(r.Baseline.Regressions()))
	}
	if lines := r.Breaches(); len(lines) > 0 {
		fmt.Fprintf(w, "\n%d breaches:\n", len(lines))
		for _, l := range lines {
			fmt.Fprintln(w, "BREACH "+l)
		}
	}
	if len(r.APIProbes) == 0 {
		return
	}
	pw := len("path")
	for _, p := range r.APIProbes {
		pw = max(pw, len(p.Path))
	}
	fmt.Fprintf(w, "\n%-10s %-*s %4s %6s %9s %9s %6s %-7s  %s\n", "api probe", pw, "path", "n", "status", "p50 ms", "p95 ms", "errors", "cache", "server-timing")
	for _, p := range r.APIProbes {
		st := p.ServerTiming
		if p.Note != "" {
			st += " (" + p.Note + ")"
		}
		fmt.Fprintf(w, "%-10s %-*s %4d %6d %9.3f %9.3f %6d %-7s  %s\n", p.Name, pw, p.Path, p.N, p.Status, p.P50, p.P95, p.Errors, p.SummaryCache, st)
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func kb(values map[string]float64) string {
	x, ok := values["transfer_bytes"]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f", x/1024)
}

func optMs(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

func execOutput(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err
}
