package perf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	jsonv2 "github.com/chromedp/cdproto/cdp/jsonv2"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// BrowserSchema names the version of the `bench browser` JSON.
const BrowserSchema = "connsum.bench.browser/v2"

// Login exchanges the owner token for a browser session the way the console's login form does
// (POST /login, form-encoded) and returns the cookies the service set: the session id, never the
// token itself (SPEC §2.1). The redirect to the console is not followed.
func Login(ctx context.Context, client *http.Client, base, token string) ([]*http.Cookie, error) {
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/login",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("login: POST /login answered %s", resp.Status)
	}
	if len(cookies) == 0 {
		return nil, errors.New("login: POST /login set no session cookie")
	}
	return cookies, nil
}

// DefaultChromiumPath is where the harness looks for Chromium unless told otherwise.
const DefaultChromiumPath = "/usr/bin/chromium"

// Browser is the driver behind the browser harness: one call visits one route in one viewport in a
// fresh browser with a fresh profile, and returns the cold visit followed by the warm one when asked.
type Browser interface {
	Visit(ctx context.Context, spec RouteSpec) ([]RouteResult, error)
}

// Viewport is the emulated screen of a visit.
type Viewport struct {
	Name   string
	Width  int64
	Height int64
	Scale  float64
	Mobile bool
	// Throttle is applied when the driver's ApplyThrottle is set; the zero value is none.
	Throttle Throttle
}

// Throttle is the emulated CPU and network of a viewport.
type Throttle struct {
	// CPUSlowdown is Emulation.setCPUThrottlingRate's rate (4 = four times slower; 0 or 1 = none).
	CPUSlowdown float64 `json:"cpu_slowdown,omitempty"`
	// RTTMs is the added latency of every request (Network conditions' latency).
	RTTMs float64 `json:"rtt_ms,omitempty"`
	// DownKbps and UpKbps are the throughput in kilobits per second (0 = unthrottled).
	DownKbps float64 `json:"down_kbps,omitempty"`
	UpKbps   float64 `json:"up_kbps,omitempty"`
}

// Active says whether the throttle changes anything.
func (t Throttle) Active() bool {
	return t.CPUSlowdown > 1 || t.RTTMs > 0 || t.DownKbps > 0 || t.UpKbps > 0
}

// MobileThrottle is the reference tools' mobile profile (Lighthouse's mobile "slow 4G" and a
// mid-range phone): 4× CPU slowdown, 150 ms RTT, 1.6 Mbps down, 750 Kbps up.
var MobileThrottle = Throttle{CPUSlowdown: 4, RTTMs: 150, DownKbps: 1600, UpKbps: 750}

// ViewportByName returns the desktop viewport (1366×900, unthrottled) or the mobile one (412×823 at
// DPR 1.75 — Lighthouse's Moto G Power — touch, mobile UA, MobileThrottle).
func ViewportByName(name string) (Viewport, error) {
	switch name {
	case "desktop":
		return Viewport{Name: "desktop", Width: 1366, Height: 900, Scale: 1}, nil
	case "mobile":
		return Viewport{Name: "mobile", Width: 412, Height: 823, Scale: 1.75, Mobile: true, Throttle: MobileThrottle}, nil
	}
	return Viewport{}, fmt.Errorf("bench browser: unknown viewport %q (want desktop or mobile)", name)
}

// RouteSpec says what one Visit does.
type RouteSpec struct {
	// Route is the path (and optional query) under the base URL, e.g. /dashboard.
	Route    string
	Viewport Viewport
	// Warm asks for a second visit of the same route in the same browser and profile.
	Warm bool
	// Interactions are scripted after the cold visit has been measured; their latencies give the
	// cold result's INP.
	Interactions []Interaction
	// TraceFile, when set, receives a DevTools trace of the cold visit and its interactions.
	TraceFile string
}

// InteractionResult is what one scripted interaction did.
type InteractionResult struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
	// Outcome is ok, skipped (no element matched: the page changed) or error.
	Outcome string `json:"outcome"`
	Note    string `json:"note,omitempty"`
	// LatencyMs is the interaction's Event Timing latency (the longest entry of its interaction
	// ids); null when the browser reported none (an interaction under 16 ms that was not the
	// page's first input, or a navigation that came before the next paint).
	LatencyMs *float64 `json:"latency_ms"`
	Navigated bool     `json:"navigated,omitempty"`
}

// ConsoleMessage is one console line of the page: a console API call or a browser log entry.
type ConsoleMessage struct {
	Level  string `json:"level"`
	Text   string `json:"text"`
	Source string `json:"source"`
	URL    string `json:"url,omitempty"`
	// CountedIn names the bucket that already counts this message (a network error log line of a
	// request that failed or was aborted), so console_errors does not count it twice.
	CountedIn string `json:"counted_in,omitempty"`
}

// PageError is an exception that nothing in the page caught.
type PageError struct {
	Text   string `json:"text"`
	URL    string `json:"url,omitempty"`
	Line   int64  `json:"line"`
	Column int64  `json:"column"`
}

// RequestFailure is a request that ended without a response body: refused, reset, blocked or aborted.
type RequestFailure struct {
	URL   string `json:"url"`
	Error string `json:"error"`
	Type  string `json:"type,omitempty"`
}

// SlowRequest is a request that took longer than the slow threshold.
type SlowRequest struct {
	URL        string  `json:"url"`
	DurationMs float64 `json:"duration_ms"`
	Status     int64   `json:"status,omitempty"`
	Unfinished bool    `json:"unfinished,omitempty"`
}

// DataFetch is a request for the route's own data (`<route path>?_data=…`); times are relative to
// the start of the document request of the navigation.
type DataFetch struct {
	URL        string  `json:"url"`
	StartMs    float64 `json:"start_ms"`
	EndMs      float64 `json:"end_ms"`
	DurationMs float64 `json:"duration_ms"`
	Status     int64   `json:"status,omitempty"`
	// Outcome is ok, failed, aborted or unfinished (still running when the visit was measured).
	Outcome string `json:"outcome"`
}

// RouteResult is what one navigation measured.
type RouteResult struct {
	Route string `json:"route"`
	// Template is the route as configured (with {connection} unresolved).
	Template string `json:"template,omitempty"`
	// Run numbers the fresh-browser runs of a route and viewport from 1.
	Run int    `json:"run"`
	URL string `json:"url"`
	// FinalURL is where the page ended up (location.href): a redirect to /login shows here.
	FinalURL string `json:"final_url"`
	Viewport string `json:"viewport"`
	Warm     bool   `json:"warm"`
	Status   int64  `json:"status"`
	// TTFBMs is responseStart of the navigation timing (time since navigation start, as web-vitals
	// reports it); RequestToResponseMs is responseStart - requestStart (the server's share).
	TTFBMs              float64 `json:"ttfb_ms"`
	RequestToResponseMs float64 `json:"request_to_response_ms"`
	// FCPMs and LCPMs are null when the page painted no content the browser reported.
	FCPMs *float64 `json:"fcp_ms"`
	LCPMs *float64 `json:"lcp_ms"`
	// CLS is the largest session window of layout shifts (SessionWindowCLS) until the end of the
	// settle time; CLSSum is the plain sum, for comparison; LayoutShifts are the entries.
	CLS          float64       `json:"cls"`
	CLSSum       float64       `json:"cls_sum"`
	LayoutShifts []LayoutShift `json:"layout_shifts"`
	// TBTMs is the total blocking time of LongTasks after FCP (TotalBlockingTime).
	TBTMs     float64    `json:"tbt_ms"`
	LongTasks []LongTask `json:"long_tasks"`
	// INPMs is the INP of the scripted interactions (cold views only); null when none gave a latency.
	INPMs        *float64            `json:"inp_ms"`
	Interactions []InteractionResult `json:"interactions,omitempty"`
	// InteractionErrors are the failed requests, console and page errors while the interactions ran
	// (and on the pages they opened); each counts as a console error of the view.
	InteractionErrors []string `json:"interaction_errors,omitempty"`
	// TransferBytes is the sum of the encoded bytes of every request (Network.loadingFinished).
	TransferBytes      int64            `json:"transfer_bytes"`
	Throttled          bool             `json:"throttled,omitempty"`
	DOMContentLoadedMs float64          `json:"dom_content_loaded_ms"`
	LoadMs             float64          `json:"load_ms"`
	ConsoleMessages    []ConsoleMessage `json:"console_messages"`
	ConsoleErrors      int              `json:"console_errors"`
	PageErrors         []PageError      `json:"page_errors"`
	FailedRequests     []RequestFailure `json:"failed_requests"`
	AbortedRequests    []RequestFailure `json:"aborted_requests"`
	SlowRequests       []SlowRequest    `json:"slow_requests"`
	RequestCount       int              `json:"request_count"`
	DataFetches        []DataFetch      `json:"data_fetches"`
	DataFetchCount     int              `json:"data_fetch_count"`
	SequentialMs       float64          `json:"sequential_ms"`
	Stacked            bool             `json:"stacked"`
	// WallMs is the harness's own clock from the navigate command to the load event.
	WallMs      float64  `json:"wall_ms"`
	LoadTimeout bool     `json:"load_timeout,omitempty"`
	Screenshot  string   `json:"screenshot,omitempty"`
	Trace       string   `json:"trace,omitempty"`
	Error       string   `json:"error,omitempty"`
	Pass        bool     `json:"pass"`
	Misses      []string `json:"misses,omitempty"`
}

// BrowserTargets are the figures of SPEC §8 every measured navigation is held to.
type BrowserTargets struct {
	TTFBMs                   float64 `json:"ttfb_ms"`
	LCPMs                    float64 `json:"lcp_ms"`
	FailedRequests           int     `json:"failed_requests"`
	ConsoleErrors            int     `json:"console_errors"`
	DataFetchesPerNavigation int     `json:"data_fetches_per_navigation"`
}

// DefaultBrowserTargets returns the targets of SPEC §8.
func DefaultBrowserTargets() BrowserTargets {
	return BrowserTargets{TTFBMs: 100, LCPMs: 500, FailedRequests: 0, ConsoleErrors: 0, DataFetchesPerNavigation: 1}
}

// Check lists what r misses; an empty list is a pass. An uncaught page error counts as a console
// error, because the DevTools console shows it as one.
func (t BrowserTargets) Check(r RouteResult) []string {
	misses := t.Failures(r)
	if r.TTFBMs > t.TTFBMs {
		misses = append(misses, fmt.Sprintf("ttfb %.1f>%g ms", r.TTFBMs, t.TTFBMs))
	}
	switch {
	case r.LCPMs == nil:
		misses = append(misses, "no lcp")
	case *r.LCPMs > t.LCPMs:
		misses = append(misses, fmt.Sprintf("lcp %.1f>%g ms", *r.LCPMs, t.LCPMs))
	}
	return misses
}

// Failures are the misses of r that do not depend on the machine's speed: the visit did not
// run, the page did not answer 200, a request failed, the page logged an error, or it fetched its
// data more often than allowed. `bench browser` exits non-zero on any of them; timing targets
// (TTFB, LCP) are reported in the verdict but judged by budgets on medians, not one sample.
func (t BrowserTargets) Failures(r RouteResult) []string {
	var out []string
	if r.Error != "" {
		out = append(out, "error: "+r.Error)
	}
	if r.Status != 200 {
		out = append(out, fmt.Sprintf("status %d", r.Status))
	}
	if n := len(r.FailedRequests); n > t.FailedRequests {
		out = append(out, fmt.Sprintf("failed requests %d>%d", n, t.FailedRequests))
	}
	if n := r.ConsoleErrors + len(r.PageErrors) + len(r.InteractionErrors); n > t.ConsoleErrors {
		out = append(out, fmt.Sprintf("console errors %d>%d", n, t.ConsoleErrors))
	}
	if r.DataFetchCount > t.DataFetchesPerNavigation {
		out = append(out, fmt.Sprintf("data fetches %d>%d", r.DataFetchCount, t.DataFetchesPerNavigation))
	}
	return out
}

// CDPOptions configures the Chrome DevTools Protocol driver.
type CDPOptions struct {
	// ExecPath is the Chromium binary (DefaultChromiumPath when empty).
	ExecPath string
	// Base is the service's base URL, e.g. http://127.0.0.1:7780.
	Base string
	// Token is the owner token: the driver logs in with it once (Login) and gives every browser
	// the session cookie it got; no login when empty.
	Token string
	// Settle is how long to wait after the load event so late fetches and LCP are captured.
	Settle time.Duration
	// SlowThreshold marks a request as slow.
	SlowThreshold time.Duration
	// LoadTimeout bounds the wait for the load event; the visit is measured anyway when it passes.
	LoadTimeout time.Duration
	// ScreenshotDir receives a full-page PNG of each cold visit when set.
	ScreenshotDir string
	// TempRoot is the parent of the per-browser profile directories (the system temp dir when empty).
	TempRoot string
	// BrowserOutput receives Chromium's stdout and stderr when set.
	BrowserOutput io.Writer
	// ApplyThrottle applies each viewport's Throttle (CPU and network emulation).
	ApplyThrottle bool
}

// CDPBrowser drives headless Chromium over CDP with chromedp, one fresh process and profile per Visit.
type CDPBrowser struct {
	opts CDPOptions

	mu      sync.Mutex
	session []*http.Cookie // from the one login of this driver
}

// NewCDPBrowser returns the CDP driver with defaults filled in.
func NewCDPBrowser(opts CDPOptions) *CDPBrowser {
	if opts.ExecPath == "" {
		opts.ExecPath = DefaultChromiumPath
	}
	if opts.SlowThreshold <= 0 {
		opts.SlowThreshold = 500 * time.Millisecond
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 30 * time.Second
	}
	if opts.Settle < 0 {
		opts.Settle = 0
	}
	opts.Base = strings.TrimRight(opts.Base, "/")
	return &CDPBrowser{opts: opts}
}

// vitalsScript runs before any script of every new document and keeps what the page reports on
// window.__connsumVitals: paints, layout shifts, long tasks and the Event Timing entries of
// interactions. On pagehide it carries the interaction entries over to the next document of the tab
// (sessionStorage), so an interaction that navigates still gives its latency.
const vitalsScript = `(() => {
  if (window.__connsumVitals) return;
  const v = window.__connsumVitals = {fcp: null, lcp: null, shifts: [], longTasks: [], events: []};
  const observers = [];
  const watch = (type, fn, extra) => {
    try {
      const po = new PerformanceObserver(list => list.getEntries().forEach(fn));
      po.observe(Object.assign({type, buffered: true}, extra || {}));
      observers.push([po, fn]);
    } catch (e) {}
  };
  watch('paint', e => { if (e.name === 'first-contentful-paint') v.fcp = e.startTime; });
  watch('largest-contentful-paint', e => { v.lcp = e.renderTime || e.loadTime || e.startTime; });
  watch('layout-shift', e => v.shifts.push({start_ms: e.startTime, value: e.value, had_recent_input: e.hadRecentInput}));
  watch('longtask', e => v.longTasks.push({start_ms: e.startTime, duration_ms: e.duration}));
  const seen = new Set();
  const ev = e => {
    if (!e.interactionId) return;
    const k = e.interactionId + ' ' + e.name + ' ' + e.startTime;
    if (seen.has(k)) return;
    seen.add(k);
    v.events.push({doc: performance.timeOrigin, interaction_id: e.interactionId, name: e.name, start_ms: e.startTime, duration_ms: e.duration});
  };
  watch('event', ev, {durationThreshold: 16});
  watch('first-input', ev);
  v.flush = () => observers.forEach(([po, fn]) => po.takeRecords().forEach(fn));
  addEventListener('pagehide', () => {
    v.flush();
    try {
      const k = '__connsumCarried';
      const c = JSON.parse(sessionStorage.getItem(k) || '[]');
      c.push(...v.events.map(e => Object.assign({page: location.href}, e)));
      sessionStorage.setItem(k, JSON.stringify(c));
    } catch (e) {}
  });
})();`

// collectScript reads the navigation timing and the vitals after the settle time.
const collectScript = `(() => {
  const n = performance.getEntriesByType('navigation')[0];
  const v = window.__connsumVitals || {fcp: null, lcp: null, shifts: [], longTasks: [], events: []};
  if (v.flush) v.flush();
  return {
    href: location.href,
    nav: n ? {startTime: n.startTime, requestStart: n.requestStart, responseStart: n.responseStart,
      domContentLoadedEventEnd: n.domContentLoadedEventEnd, loadEventEnd: n.loadEventEnd,
      responseStatus: n.responseStatus || 0} : null,
    vitals: {fcp: v.fcp, lcp: v.lcp, shifts: v.shifts, longTasks: v.longTasks},
  };
})()`

type collected struct {
	Href string `json:"href"`
	Nav  *struct {
		StartTime                float64 `json:"startTime"`
		RequestStart             float64 `json:"requestStart"`
		ResponseStart            float64 `json:"responseStart"`
		DOMContentLoadedEventEnd float64 `json:"domContentLoadedEventEnd"`
		LoadEventEnd             float64 `json:"loadEventEnd"`
		ResponseStatus           int64   `json:"responseStatus"`
	} `json:"nav"`
	Vitals struct {
		FCP       *float64      `json:"fcp"`
		LCP       *float64      `json:"lcp"`
		Shifts    []LayoutShift `json:"shifts"`
		LongTasks []LongTask    `json:"longTasks"`
	} `json:"vitals"`
}

// Visit starts a fresh Chromium with a fresh profile, visits the route cold (and warm when asked),
// and stops the browser and removes the profile before it returns.
func (b *CDPBrowser) Visit(ctx context.Context, spec RouteSpec) (results []RouteResult, err error) {
	if _, err := os.Stat(b.opts.ExecPath); err != nil {
		return nil, fmt.Errorf("%w at %s", errNoChromium, b.opts.ExecPath)
	}
	pageURL, err := joinRoute(b.opts.Base, spec.Route)
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp(b.opts.TempRoot, "connsum-browser-")
	if err != nil {
		return nil, fmt.Errorf("bench browser: profile dir: %w", err)
	}
	// Runs last: the browser is gone by then (see below), so nothing writes into the profile any more.
	defer func() {
		killProfileLeftovers(profile)
		if rmErr := os.RemoveAll(profile); rmErr != nil && err == nil {
			err = fmt.Errorf("bench browser: remove profile: %w", rmErr)
		}
	}()

	allocOpts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(b.opts.ExecPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // we run as root in containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(int(spec.Viewport.Width), int(spec.Viewport.Height)),
	)
	if b.opts.BrowserOutput != nil {
		allocOpts = append(allocOpts, chromedp.CombinedOutput(b.opts.BrowserOutput))
	}
	// The allocator's cancel kills the process and waits for it; the tab's cancel closes the browser
	// first. Both run before the profile is removed.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocOpts...)
	defer cancelAlloc()
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	defer cancelTab()

	rec := newVisitRecorder()
	if err := chromedp.Do(tabCtx); err != nil { // starts the browser and attaches the tab
		return nil, fmt.Errorf("bench browser: start chromium: %w", err)
	}
	if err := chromedp.Listen(tabCtx, rec.handle); err != nil {
		return nil, fmt.Errorf("bench browser: listen: %w", err)
	}
	if err := b.prepare(tabCtx, spec.Viewport); err != nil {
		return nil, err
	}

	visits := []bool{false}
	if spec.Warm {
		visits = append(visits, true)
	}
	for _, warm := range visits {
		var trace *traceSession
		if spec.TraceFile != "" && !warm {
			trace = startTrace(tabCtx, rec)
		}
		r := b.navigate(tabCtx, rec, spec, pageURL, warm)
		if !warm && len(spec.Interactions) > 0 && r.Error == "" && ctx.Err() == nil {
			b.interact(tabCtx, rec, spec, pageURL, &r)
		}
		if trace != nil {
			if err := trace.stop(tabCtx, spec.TraceFile); err != nil {
				if r.Error == "" {
					r.Error = "trace: " + err.Error()
				}
			} else {
				r.Trace = spec.TraceFile
			}
		}
		results = append(results, r)
		if ctx.Err() != nil {
			return results, fmt.Errorf("bench browser: %s: %w", spec.Route, ctx.Err())
		}
	}
	return results, nil
}

// sessionCookies logs in once per driver and returns the session cookies every visit gets.
func (b *CDPBrowser) sessionCookies(ctx context.Context) ([]*http.Cookie, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.session == nil {
		cookies, err := Login(ctx, &http.Client{Timeout: 30 * time.Second}, b.opts.Base, b.opts.Token)
		if err != nil {
			return nil, fmt.Errorf("bench browser: %w", err)
		}
		b.session = cookies
	}
	return b.session, nil
}

// prepare sets the viewport, the user agent, the vitals script and the session cookie on the tab.
func (b *CDPBrowser) prepare(ctx context.Context, vp Viewport) error {
	ver, err := chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	if err != nil {
		return fmt.Errorf("bench browser: version: %w", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: vp.Width, Height: vp.Height, DeviceScaleFactor: vp.Scale, Mobile: vp.Mobile,
		ScreenWidth: vp.Width, ScreenHeight: vp.Height,
	}); err != nil {
		return fmt.Errorf("bench browser: viewport: %w", err)
	}
	if vp.Mobile {
		if _, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{
			Enabled: true, MaxTouchPoints: 5,
		}); err != nil {
			return fmt.Errorf("bench browser: touch: %w", err)
		}
	}
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
		UserAgent: userAgentFor(ver.Product, vp.Mobile),
	}); err != nil {
		return fmt.Errorf("bench browser: user agent: %w", err)
	}
	if b.opts.ApplyThrottle && vp.Throttle.Active() {
		if err := applyThrottle(ctx, vp.Throttle); err != nil {
			return err
		}
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: vitalsScript,
	}); err != nil {
		return fmt.Errorf("bench browser: vitals script: %w", err)
	}
	if b.opts.Token != "" {
		cookies, err := b.sessionCookies(ctx)
		if err != nil {
			return err
		}
		for _, ck := range cookies {
			if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
				Name: ck.Name, Value: ck.Value, URL: b.opts.Base + "/", Path: "/",
				HTTPOnly: new(ck.HttpOnly), Secure: new(ck.Secure), SameSite: network.CookieSameSiteLax,
			}); err != nil {
				return fmt.Errorf("bench browser: session cookie: %w", err)
			}
		}
	}
	return nil
}

// userAgentFor builds a plain Chrome user agent (no "HeadlessChrome") of the running version, for a
// desktop Linux or a mobile Android device.
func userAgentFor(product string, mobile bool) string {
	version := "0.0.0.0"
	if _, v, ok := strings.Cut(product, "/"); ok && v != "" {
		major, _, _ := strings.Cut(v, ".")
		version = major + ".0.0.0"
	}
	if mobile {
		return "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + version + " Mobile Safari/537.36"
	}
	return "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/" + version + " Safari/537.36"
}

// navigate makes one navigation, waits for load and the settle time, and measures it. Errors end up
// in the result, so a broken route still reports what it saw.
func (b *CDPBrowser) navigate(ctx context.Context, rec *visitRecorder, spec RouteSpec, pageURL string, warm bool) RouteResult {
	r := RouteResult{Route: spec.Route, URL: pageURL, Viewport: spec.Viewport.Name, Warm: warm}
	loaded := rec.reset()
	start := time.Now()
	// One bound for the navigation and its load event: a server that never answers yields a result
	// with an error, not a lost session. The tab outlives navCtx (the browser started on ctx).
	navCtx, cancelNav := context.WithTimeout(ctx, b.opts.LoadTimeout)
	defer cancelNav()
	nav, err := chromedp.Call(navCtx, page.Navigate, page.NavigateParams{URL: pageURL})
	switch {
	case navCtx.Err() != nil && ctx.Err() == nil:
		r.LoadTimeout = true
		r.Error = fmt.Sprintf("no response within %s", b.opts.LoadTimeout)
	case err != nil:
		r.Error = "navigate: " + err.Error()
	case nav.ErrorText != "":
		r.Error = "navigate: " + nav.ErrorText
	}
	if r.LoadTimeout && ctx.Err() == nil {
		// Stop the hung navigation so a warm visit starts clean.
		stopCtx, cancelStop := context.WithTimeout(ctx, 5*time.Second)
		_, _ = chromedp.Call(stopCtx, page.StopLoading, cdp.Empty{})
		cancelStop()
	}
	// Without a committed navigation the page is still the previous document: measure nothing in it.
	committed := r.Error == ""
	if committed {
		select {
		case <-loaded:
		case <-navCtx.Done():
			if ctx.Err() != nil {
				r.Error = ctx.Err().Error()
			} else {
				r.LoadTimeout = true
				r.Error = fmt.Sprintf("no load event within %s", b.opts.LoadTimeout)
			}
		}
		r.WallMs = ms(time.Since(start))
		select {
		case <-time.After(b.opts.Settle):
		case <-ctx.Done():
		}
	}
	var c collected
	if committed && ctx.Err() == nil {
		c, err = chromedp.Run(ctx, chromedp.Evaluate[collected](collectScript))
		if err != nil && r.Error == "" {
			r.Error = "collect: " + err.Error()
		}
	}
	// Listen runs in the tab's read loop before the reply of a command, so every event that came
	// before the evaluation's reply is recorded by now.
	rec.fill(&r, network.RequestID(nav.LoaderID), spec.Route, b.opts.SlowThreshold)
	r.FinalURL = c.Href
	if c.Nav != nil {
		r.TTFBMs = round2(c.Nav.ResponseStart - c.Nav.StartTime)
		r.RequestToResponseMs = round2(c.Nav.ResponseStart - c.Nav.RequestStart)
		r.DOMContentLoadedMs = round2(c.Nav.DOMContentLoadedEventEnd - c.Nav.StartTime)
		r.LoadMs = round2(c.Nav.LoadEventEnd - c.Nav.StartTime)
		if r.Status == 0 {
			r.Status = c.Nav.ResponseStatus
		}
	}
	if c.Vitals.FCP != nil {
		r.FCPMs = new(round2(*c.Vitals.FCP))
	}
	if c.Vitals.LCP != nil {
		r.LCPMs = new(round2(*c.Vitals.LCP))
	}
	r.LayoutShifts = append([]LayoutShift{}, c.Vitals.Shifts...)
	r.CLS = math.Round(SessionWindowCLS(r.LayoutShifts)*10000) / 10000
	sum := 0.0
	for _, x := range r.LayoutShifts {
		if !x.HadRecentInput {
			sum += x.Value
		}
	}
	r.CLSSum = math.Round(sum*10000) / 10000
	r.LongTasks = append([]LongTask{}, c.Vitals.LongTasks...)
	r.TBTMs = TotalBlockingTime(r.LongTasks, c.Vitals.FCP)
	r.Throttled = b.opts.ApplyThrottle && spec.Viewport.Throttle.Active()
	if b.opts.ScreenshotDir != "" && !warm && committed && ctx.Err() == nil {
		path, err := b.screenshot(ctx, spec)
		if err != nil && r.Error == "" {
			r.Error = "screenshot: " + err.Error()
		}
		r.Screenshot = path
	}
	return r
}

func (b *CDPBrowser) screenshot(ctx context.Context, spec RouteSpec) (string, error) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(b.opts.ScreenshotDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(b.opts.ScreenshotDir, ScreenshotName(spec.Route, spec.Viewport.Name))
	return path, os.WriteFile(path, png, 0o644)
}

// ScreenshotName derives the PNG file name of a route and viewport: /dashboard/runs, mobile →
// dashboard_runs-mobile.png.
func ScreenshotName(route, viewport string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, route)
	name = strings.Trim(name, "_")
	if name == "" {
		name = "root"
	}
	return name + "-" + viewport + ".png"
}

func joinRoute(base, route string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("bench browser: base %q is no absolute URL", base)
	}
	if !strings.HasPrefix(route, "/") {
		route = "/" + route
	}
	return strings.TrimRight(base, "/") + route, nil
}

// killProfileLeftovers kills processes that still run with the profile directory (Chromium helpers
// that outlived the browser), by their pid. They can only be processes this harness started.
func killProfileLeftovers(profile string) {
	want := []byte("--user-data-dir=" + profile)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(cmdline), "\x00") {
			if arg == string(want) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
		}
	}
}

func ms(d time.Duration) float64 { return round2(float64(d.Microseconds()) / 1000) }

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// requestRecord is what the network events said about one request.
type requestRecord struct {
	url      string
	typ      network.ResourceType
	start    float64 // monotonic seconds
	end      float64
	status   int64
	finished bool
	failed   bool
	canceled bool
	errText  string
	bytes    int64
}

type consoleRecord struct {
	msg       ConsoleMessage
	requestID network.RequestID
}

// visitRecorder keeps the events of one navigation. Its handler runs in chromedp's read loop, so it
// only stores under a lock.
type visitRecorder struct {
	mu       sync.Mutex
	requests map[network.RequestID]*requestRecord
	order    []network.RequestID
	console  []consoleRecord
	errors   []PageError
	loaded   chan struct{}
	isLoaded bool
	// navRequested is set when a navigation to another document started (a link was followed).
	navRequested bool
	// trace collects Tracing.dataCollected while a trace runs; traceDone closes at tracingComplete.
	trace     []jsonv2.Value
	traceDone chan struct{}
}

func newVisitRecorder() *visitRecorder {
	return &visitRecorder{requests: map[network.RequestID]*requestRecord{}, loaded: make(chan struct{})}
}

// reset starts a new navigation and returns the channel that closes at its load event.
func (v *visitRecorder) reset() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.requests = map[network.RequestID]*requestRecord{}
	v.order = nil
	v.console = nil
	v.errors = nil
	v.loaded = make(chan struct{})
	v.isLoaded = false
	v.navRequested = false
	return v.loaded
}

func (v *visitRecorder) handle(ev any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if r, ok := v.requests[e.RequestID]; ok && e.RedirectResponse != nil {
			r.url = e.Request.URL // a redirect keeps the request id and its start
			return
		}
		v.requests[e.RequestID] = &requestRecord{url: e.Request.URL, typ: e.Type, start: float64(e.Timestamp)}
		v.order = append(v.order, e.RequestID)
	case *network.EventResponseReceived:
		if r, ok := v.requests[e.RequestID]; ok && e.Response != nil {
			r.status = e.Response.Status
		}
	case *network.EventLoadingFinished:
		if r, ok := v.requests[e.RequestID]; ok {
			r.finished, r.end = true, float64(e.Timestamp)
			r.bytes = int64(e.EncodedDataLength)
		}
	case *network.EventLoadingFailed:
		// Requests of the previous document (unknown ids) are ignored: leaving a page aborts them.
		if r, ok := v.requests[e.RequestID]; ok {
			r.finished, r.end = true, float64(e.Timestamp)
			r.failed, r.canceled, r.errText = true, e.Canceled, e.ErrorText
			if r.typ == "" {
				r.typ = e.Type
			}
		}
	case *runtime.EventConsoleAPICalled:
		level := string(e.Type)
		switch e.Type {
		case runtime.ConsoleAPICalledTypeAssert:
			level = "error"
		case runtime.ConsoleAPICalledTypeWarning:
			level = "warning"
		}
		m := ConsoleMessage{Level: level, Text: consoleText(e.Args), Source: "console-api"}
		if e.StackTrace != nil && len(e.StackTrace.CallFrames) > 0 {
			m.URL = e.StackTrace.CallFrames[0].URL
		}
		v.console = append(v.console, consoleRecord{msg: m})
	case *cdplog.EventEntryAdded:
		if e.Entry == nil || e.Entry.Level == cdplog.EntryLevelVerbose {
			return
		}
		v.console = append(v.console, consoleRecord{
			msg:       ConsoleMessage{Level: string(e.Entry.Level), Text: e.Entry.Text, Source: string(e.Entry.Source), URL: e.Entry.URL},
			requestID: e.Entry.NetworkRequestID,
		})
	case *runtime.EventExceptionThrown:
		if d := e.ExceptionDetails; d != nil {
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			v.errors = append(v.errors, PageError{Text: text, URL: d.URL, Line: d.LineNumber + 1, Column: d.ColumnNumber + 1})
		}
	case *page.EventFrameStartedNavigating:
		// A fragment link or history.pushState stays in the document: no load event follows.
		switch e.NavigationType {
		case page.FrameStartedNavigatingNavigationTypeSameDocument, page.FrameStartedNavigatingNavigationTypeHistorySameDocument:
		default:
			v.navRequested = true
		}
	case *tracing.EventDataCollected:
		v.trace = append(v.trace, e.Value...)
	case *tracing.EventTracingComplete:
		if v.traceDone != nil {
			close(v.traceDone)
			v.traceDone = nil
		}
	case *page.EventLoadEventFired:
		if !v.isLoaded {
			v.isLoaded = true
			close(v.loaded)
		}
	}
}

// fill writes the recorded requests, console and errors of the navigation into r. doc is the
// document request (its id is the navigation's loader id).
func (v *visitRecorder) fill(r *RouteResult, doc network.RequestID, route string, slow time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := 0.0
	navStart := 0.0
	if d, ok := v.requests[doc]; ok {
		r.Status = d.status
		navStart = d.start
	} else if len(v.order) > 0 {
		navStart = v.requests[v.order[0]].start
	}
	for _, id := range v.order {
		now = max(now, v.requests[id].start, v.requests[id].end)
	}
	routePath := route
	if u, err := url.Parse(route); err == nil {
		routePath = u.Path
	}
	r.ConsoleMessages, r.PageErrors = []ConsoleMessage{}, append([]PageError{}, v.errors...)
	r.FailedRequests, r.AbortedRequests = []RequestFailure{}, []RequestFailure{}
	r.SlowRequests, r.DataFetches = []SlowRequest{}, []DataFetch{}
	r.RequestCount = len(v.order)
	for _, id := range v.order {
		q := v.requests[id]
		r.TransferBytes += q.bytes
		end := q.end
		if !q.finished {
			end = now
		}
		dur := (end - q.start) * 1000
		if q.failed {
			f := RequestFailure{URL: q.url, Error: q.errText, Type: string(q.typ)}
			if q.canceled {
				r.AbortedRequests = append(r.AbortedRequests, f)
			} else {
				r.FailedRequests = append(r.FailedRequests, f)
			}
		}
		if dur > float64(slow.Milliseconds()) {
			r.SlowRequests = append(r.SlowRequests, SlowRequest{URL: q.url, DurationMs: round2(dur), Status: q.status, Unfinished: !q.finished})
		}
		if isDataFetch(q.url, routePath) {
			outcome := "ok"
			switch {
			case !q.finished:
				outcome = "unfinished"
			case q.failed && q.canceled:
				outcome = "aborted"
			case q.failed:
				outcome = "failed"
			}
			r.DataFetches = append(r.DataFetches, DataFetch{
				URL: q.url, StartMs: round2((q.start - navStart) * 1000), EndMs: round2((end - navStart) * 1000),
				DurationMs: round2(dur), Status: q.status, Outcome: outcome,
			})
			r.SequentialMs += dur
		}
	}
	r.SequentialMs = round2(r.SequentialMs)
	sort.SliceStable(r.DataFetches, func(i, j int) bool { return r.DataFetches[i].StartMs < r.DataFetches[j].StartMs })
	r.DataFetchCount = len(r.DataFetches)
	r.Stacked = r.DataFetchCount > 1
	for _, c := range v.console {
		m := c.msg
		if q, ok := v.requests[c.requestID]; ok && c.requestID != "" && q.failed {
			m.CountedIn = "failed_requests"
			if q.canceled {
				m.CountedIn = "aborted_requests"
			}
		}
		if m.Level == "error" && m.CountedIn == "" {
			r.ConsoleErrors++
		}
		r.ConsoleMessages = append(r.ConsoleMessages, m)
	}
}

// problems lists what went wrong since the last reset: failed (not aborted) requests, console
// errors not caused by one of those, and uncaught page errors. The interaction phase uses it.
func (v *visitRecorder) problems() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, id := range v.order {
		if q := v.requests[id]; q.failed && !q.canceled {
			out = append(out, "failed request "+q.url+": "+q.errText)
		}
	}
	for _, c := range v.console {
		if q, ok := v.requests[c.requestID]; ok && c.requestID != "" && q.failed {
			continue
		}
		if c.msg.Level == "error" {
			out = append(out, "console error: "+c.msg.Text)
		}
	}
	for _, e := range v.errors {
		out = append(out, "page error: "+e.Text)
	}
	return out
}

// isDataFetch says whether raw is a request for the route's own data: the same path with _data= in
// the query.
func isDataFetch(raw, routePath string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Path != routePath {
		return false
	}
	_, ok := u.Query()["_data"]
	return ok
}

// consoleText renders console API arguments roughly as the DevTools console does.
func consoleText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if a == nil {
			continue
		}
		switch {
		case a.Type == runtime.RemoteObjectTypeString:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
				continue
			}
		case len(a.Value) > 0:
			parts = append(parts, string(a.Value))
			continue
		case a.UnserializableValue != "":
			parts = append(parts, string(a.UnserializableValue))
			continue
		}
		if a.Description != "" {
			parts = append(parts, a.Description)
		} else {
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// errNoChromium says the Chromium binary is missing.
var errNoChromium = errors.New("bench browser: chromium not found")
