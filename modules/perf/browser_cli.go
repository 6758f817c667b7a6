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
	"strings"
	"time"
)

// BrowserReport is the `bench browser` JSON.
type BrowserReport struct {
	Schema          string         `json:"schema"`
	Base            string         `json:"base"`
	At              string         `json:"at"`
	Machine         string         `json:"machine"`
	Chromium        string         `json:"chromium"`
	SettleMs        float64        `json:"settle_ms"`
	SlowThresholdMs float64        `json:"slow_threshold_ms"`
	Routes          []RouteResult  `json:"routes"`
	APIProbes       []APIProbe     `json:"api_probes"`
	Targets         BrowserTargets `json:"targets"`
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
	Base          string
	Token         string
	Routes        []string
	Viewports     []Viewport
	Warm          bool
	JSONPath      string
	ScreenshotDir string
	Chromium      string
	Settle        time.Duration
	SlowThreshold time.Duration
	VisitTimeout  time.Duration
	APISamples    int
}

const browserUsage = "usage: connsum bench browser --base URL [--token T] [--routes /dashboard,/dashboard/runs] " +
	"[--viewports desktop,mobile] [--warm] [--json FILE] [--screenshot DIR] [--chromium PATH] " +
	"[--settle 500ms] [--slow 500ms] [--timeout 90s] [--api-samples 20]"

// ParseBrowserArgs reads the flags of `bench browser`; getenv supplies CONNSUM_AUTH_OWNER_TOKEN and
// CONNSUM_CHROMIUM.
func ParseBrowserArgs(args []string, stderr io.Writer, getenv func(string) string) (BrowserConfig, error) {
	fs := flag.NewFlagSet("bench browser", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, browserUsage); fs.PrintDefaults() }
	base := fs.String("base", "", "base URL of a running connsum, e.g. http://127.0.0.1:7780 (required)")
	token := fs.String("token", "", "owner token (default: $CONNSUM_AUTH_OWNER_TOKEN)")
	routes := fs.String("routes", "/dashboard,/dashboard/runs", "comma-separated routes; {connection} is replaced by the first connection id of the overview")
	viewports := fs.String("viewports", "desktop", "comma-separated viewports: desktop, mobile")
	warm := fs.Bool("warm", false, "visit each route a second time in the same browser and profile")
	jsonOut := fs.String("json", "", "write the JSON report here")
	shots := fs.String("screenshot", "", "save a full-page PNG per route and viewport in this directory")
	chromium := fs.String("chromium", "", "Chromium binary (default: $CONNSUM_CHROMIUM or "+DefaultChromiumPath+")")
	settle := fs.Duration("settle", 500*time.Millisecond, "wait after the load event for late fetches and LCP")
	slow := fs.Duration("slow", 500*time.Millisecond, "a request slower than this is listed in slow_requests")
	timeout := fs.Duration("timeout", 90*time.Second, "upper bound of one browser session (a route in a viewport)")
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
		vp, err := ViewportByName(name)
		if err != nil {
			return cfg, err
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

// BrowserMain runs `connsum bench browser`.
func BrowserMain(args []string, stdout, stderr io.Writer) error {
	cfg, err := ParseBrowserArgs(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Token == "" {
		fmt.Fprintln(stderr, "bench browser: no owner token (--token or CONNSUM_AUTH_OWNER_TOKEN): owner routes will answer 401")
	}
	drv := NewCDPBrowser(CDPOptions{
		ExecPath: cfg.Chromium, Base: cfg.Base, Token: cfg.Token, Settle: cfg.Settle,
		SlowThreshold: cfg.SlowThreshold, ScreenshotDir: cfg.ScreenshotDir,
	})
	rep, err := RunBrowser(context.Background(), cfg, drv, stderr)
	if rep != nil {
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
	}
	if err != nil {
		return err
	}
	return rep.FailedVisits()
}

// FailedVisits is nil when every visit passed its machine-independent checks (Failures), else an
// error naming each failed visit, so a script or CI can rely on the exit code.
func (r *BrowserReport) FailedVisits() error {
	var lines []string
	for _, v := range r.Routes {
		if f := r.Targets.Failures(v); len(f) > 0 {
			warm := "cold"
			if v.Warm {
				warm = "warm"
			}
			lines = append(lines, fmt.Sprintf("%s (%s, %s): %s", v.Route, v.Viewport, warm, strings.Join(f, ", ")))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("bench browser: %d of %d visits failed:\n  %s", len(lines), len(r.Routes), strings.Join(lines, "\n  "))
}

// RunBrowser visits every route in every viewport with drv, then probes the feed API, and returns the
// report. It stops at the first visit that could not run at all (for example no Chromium) and returns
// what it has with the error.
func RunBrowser(ctx context.Context, cfg BrowserConfig, drv Browser, progress io.Writer) (*BrowserReport, error) {
	c := &client{t: &Target{Base: cfg.Base, OwnerToken: cfg.Token}, http: &http.Client{Timeout: 30 * time.Second}}
	rep := &BrowserReport{
		Schema: BrowserSchema, Base: cfg.Base, At: time.Now().UTC().Format(time.RFC3339), Machine: machine(),
		Chromium: chromiumVersion(cfg.Chromium), SettleMs: ms(cfg.Settle), SlowThresholdMs: ms(cfg.SlowThreshold),
		Routes: []RouteResult{}, APIProbes: []APIProbe{}, Targets: DefaultBrowserTargets(),
	}
	firstConnection := ""
	needsConnection := false
	for _, r := range cfg.Routes {
		needsConnection = needsConnection || strings.Contains(r, "{connection}")
	}
	if needsConnection || cfg.APISamples > 0 {
		id, err := c.firstConnectionID()
		if err != nil {
			fmt.Fprintf(progress, "bench browser: overview: %v\n", err)
		}
		firstConnection = id
	}
	for _, route := range cfg.Routes {
		if strings.Contains(route, "{connection}") {
			if firstConnection == "" {
				fmt.Fprintf(progress, "bench browser: skip %s: no connection id in the overview\n", route)
				continue
			}
			route = strings.ReplaceAll(route, "{connection}", url.PathEscape(firstConnection))
		}
		for _, vp := range cfg.Viewports {
			fmt.Fprintf(progress, "bench browser: %s (%s)…\n", route, vp.Name)
			vctx, cancel := context.WithTimeout(ctx, cfg.VisitTimeout)
			results, err := drv.Visit(vctx, RouteSpec{Route: route, Viewport: vp, Warm: cfg.Warm})
			cancel()
			for i := range results {
				results[i].Misses = rep.Targets.Check(results[i])
				results[i].Pass = len(results[i].Misses) == 0
			}
			rep.Routes = append(rep.Routes, results...)
			if err != nil {
				return rep, err
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

// Print writes the human table: the main figures per route and viewport with a verdict against the
// targets, then the API probes.
func (r *BrowserReport) Print(w io.Writer) {
	fmt.Fprintf(w, "connsum bench browser — %s (%s; %s)\n", r.Base, r.Chromium, r.Machine)
	t := r.Targets
	fmt.Fprintf(w, "targets: ttfb ≤ %g ms, lcp ≤ %g ms, failed requests ≤ %d, console errors ≤ %d, data fetches ≤ %d per navigation\n",
		t.TTFBMs, t.LCPMs, t.FailedRequests, t.ConsoleErrors, t.DataFetchesPerNavigation)
	rw := len("route")
	for _, x := range r.Routes {
		rw = max(rw, len(x.Route))
	}
	fmt.Fprintf(w, "%-*s %-8s %-4s %6s %8s %8s %8s %7s %8s %8s %5s %6s %7s %5s %7s %7s %5s %8s  %s\n",
		rw, "route", "viewport", "warm", "status", "ttfb", "fcp", "lcp", "cls", "dcl", "load", "reqs", "failed", "aborted", "slow",
		"con.err", "pg.err", "data", "seq ms", "verdict")
	for _, x := range r.Routes {
		warm := "cold"
		if x.Warm {
			warm = "warm"
		}
		verdict := "PASS"
		if !x.Pass {
			verdict = "FAIL: " + strings.Join(x.Misses, "; ")
		}
		fmt.Fprintf(w, "%-*s %-8s %-4s %6d %8.1f %8s %8s %7.4f %8.1f %8.1f %5d %6d %7d %5d %7d %7d %5d %8.1f  %s\n",
			rw, x.Route, x.Viewport, warm, x.Status, x.TTFBMs, optMs(x.FCPMs), optMs(x.LCPMs), x.CLS, x.DOMContentLoadedMs, x.LoadMs,
			x.RequestCount, len(x.FailedRequests), len(x.AbortedRequests), len(x.SlowRequests), x.ConsoleErrors, len(x.PageErrors),
			x.DataFetchCount, x.SequentialMs, verdict)
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
