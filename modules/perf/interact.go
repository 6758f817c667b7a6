package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/tracing"
	"github.com/chromedp/chromedp"
)

// emulateNetworkConditionsParams are the parameters of Network.emulateNetworkConditions, which
// cdproto no longer carries (Chromium still serves it, and it is what the reference tools use).
type emulateNetworkConditionsParams struct {
	Offline            bool    `json:"offline"`
	Latency            float64 `json:"latency"`
	DownloadThroughput float64 `json:"downloadThroughput"`
	UploadThroughput   float64 `json:"uploadThroughput"`
}

var emulateNetworkConditions = cdp.Command[emulateNetworkConditionsParams, cdp.Empty]{Method: "Network.emulateNetworkConditions"}

// applyThrottle emulates a slower CPU (Emulation.setCPUThrottlingRate) and network
// (Network.emulateNetworkConditions; throughput in bytes per second). Chromium applies the emulated
// latency to a page's subresources but not to the document request of a navigation (measured with
// Chromium 156 headless: a 10-byte fetch took 161–210 ms at 150 ms RTT, the document's TTFB 3–22
// ms), so the document requests are held for one RTT in the Fetch domain instead.
func applyThrottle(ctx context.Context, t Throttle) error {
	if t.RTTMs > 0 {
		rtt := time.Duration(t.RTTMs * float64(time.Millisecond))
		err := chromedp.Listen(ctx, func(ev any) {
			e, ok := ev.(*fetch.EventRequestPaused)
			if !ok {
				return
			}
			// Not in the read loop: the wait is the emulated round trip of this request.
			go func() {
				select {
				case <-time.After(rtt):
				case <-ctx.Done():
					return
				}
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
			}()
		})
		if err != nil {
			return fmt.Errorf("bench browser: document latency: %w", err)
		}
		if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{
			ResourceType: network.ResourceTypeDocument, RequestStage: fetch.RequestStageRequest,
		}}}); err != nil {
			return fmt.Errorf("bench browser: document latency: %w", err)
		}
	}
	if t.CPUSlowdown > 1 {
		if _, err := chromedp.Call(ctx, emulation.SetCPUThrottlingRate, emulation.SetCPUThrottlingRateParams{Rate: t.CPUSlowdown}); err != nil {
			return fmt.Errorf("bench browser: cpu throttling: %w", err)
		}
	}
	if t.RTTMs > 0 || t.DownKbps > 0 || t.UpKbps > 0 {
		down, up := -1.0, -1.0
		if t.DownKbps > 0 {
			down = t.DownKbps * 1000 / 8
		}
		if t.UpKbps > 0 {
			up = t.UpKbps * 1000 / 8
		}
		if _, err := chromedp.Call(ctx, emulateNetworkConditions, emulateNetworkConditionsParams{
			Latency: t.RTTMs, DownloadThroughput: down, UploadThroughput: up,
		}); err != nil {
			return fmt.Errorf("bench browser: network throttling: %w", err)
		}
	}
	return nil
}

// locateScript scrolls the first element matching the selector into view and returns its centre,
// or null when there is none.
const locateScript = `((sel) => {
  const el = document.querySelector(sel);
  if (!el) return null;
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  return {x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height};
})(%s)`

// nextPaintScript resolves after the next frame has been produced (two animation frames).
const nextPaintScript = `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => r(true), 0))))`

// eventsScript returns the interaction entries of this document and those carried over from the
// documents the tab left.
const eventsScript = `(() => {
  const v = window.__connsumVitals;
  if (v && v.flush) v.flush();
  let carried = [];
  try { carried = JSON.parse(sessionStorage.getItem('__connsumCarried') || '[]'); } catch (e) {}
  return carried.concat(v ? v.events : []);
})()`

type elementBox struct {
	X, Y, W, H float64
}

// interactionPolls bounds the wait for an interaction's Event Timing entry, in frames pairs: an
// interaction under 16 ms that is not the first input never gets one.
const interactionPolls = 5

// interact runs the route's scripted interactions on the measured cold page, one after the other;
// after one that navigated, the route is loaded again for the next. It fills r.Interactions and
// r.INPMs from the Event Timing entries.
func (b *CDPBrowser) interact(ctx context.Context, rec *visitRecorder, spec RouteSpec, pageURL string, r *RouteResult) {
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { sessionStorage.removeItem('__connsumCarried'); } catch (e) {} return true; })()`))
	seen := map[InteractionKey]bool{}
	if evs, err := b.interactionEvents(ctx); err == nil {
		for _, e := range evs {
			seen[e.Key()] = true
		}
	}
	var all []EventTiming
	onRoute := true
	for _, in := range spec.Interactions {
		ir := InteractionResult{Name: in.Name, Selector: in.Click}
		if in.Type != "" {
			ir.Selector = in.Type
		}
		if !onRoute {
			if err := b.reload(ctx, rec, pageURL); err != nil {
				ir.Outcome, ir.Note = "error", "reload: "+err.Error()
				r.Interactions = append(r.Interactions, ir)
				continue
			}
			onRoute = true
		}
		navigated, err := b.perform(ctx, rec, spec.Viewport, in)
		ir.Navigated = navigated
		switch {
		case errors.Is(err, errNoElement):
			ir.Outcome, ir.Note = "skipped", err.Error()
		case err != nil:
			ir.Outcome, ir.Note = "error", err.Error()
		default:
			ir.Outcome = "ok"
		}
		if navigated {
			onRoute = false
		}
		if ir.Outcome == "ok" {
			var latency *float64
			for poll := 0; poll < interactionPolls && latency == nil && ctx.Err() == nil; poll++ {
				evs, err := b.interactionEvents(ctx)
				if err != nil {
					break
				}
				for key, l := range InteractionLatencies(evs) {
					if seen[key] {
						continue
					}
					seen[key] = true
					latency = new(max(l, derefOr(latency, 0)))
					for _, e := range evs {
						if e.Key() == key {
							all = append(all, e)
						}
					}
				}
				if latency == nil && !navigated {
					_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](nextPaintScript, chromedp.EvalAwaitPromise))
				}
			}
			ir.LatencyMs = latency
			if latency == nil {
				ir.Note = "no Event Timing entry (under 16 ms, or the page navigated before its next paint)"
			}
		}
		for _, p := range rec.problems() {
			r.InteractionErrors = append(r.InteractionErrors, in.Name+": "+p)
		}
		r.Interactions = append(r.Interactions, ir)
	}
	r.INPMs = INP(all)
}

func derefOr(p *float64, d float64) float64 {
	if p == nil {
		return d
	}
	return *p
}

var errNoElement = errors.New("no element matches")

// perform does one interaction with trusted input events (mouse on desktop, touch on a mobile
// viewport; key events for typing) and waits for the next paint, or for the load of the document
// it navigated to.
func (b *CDPBrowser) perform(ctx context.Context, rec *visitRecorder, vp Viewport, in Interaction) (navigated bool, err error) {
	sel := in.Click
	if in.Type != "" {
		sel = in.Type
	}
	selJSON, _ := json.Marshal(sel)
	box, err := chromedp.Run(ctx, chromedp.Evaluate[*elementBox](fmt.Sprintf(locateScript, selJSON)))
	if err != nil {
		return false, fmt.Errorf("locate %s: %w", sel, err)
	}
	if box == nil {
		return false, fmt.Errorf("%w %s", errNoElement, sel)
	}
	if box.W == 0 || box.H == 0 {
		return false, fmt.Errorf("%w %s visibly (zero size)", errNoElement, sel)
	}
	loaded := rec.reset()
	actCtx, cancel := context.WithTimeout(ctx, b.opts.LoadTimeout)
	defer cancel()
	if err := tap(actCtx, vp, box.X, box.Y); err != nil {
		return false, err
	}
	for _, ch := range in.Text {
		key := string(ch)
		if _, err := chromedp.Call(actCtx, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: key, Text: key}); err != nil {
			return false, fmt.Errorf("key %q: %w", key, err)
		}
		if _, err := chromedp.Call(actCtx, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: key}); err != nil {
			return false, fmt.Errorf("key %q: %w", key, err)
		}
	}
	// A round trip through the renderer: any navigation the input requested is known after it.
	_, paintErr := chromedp.Run(actCtx, chromedp.Evaluate[bool](nextPaintScript, chromedp.EvalAwaitPromise))
	rec.mu.Lock()
	navigated = rec.navRequested
	rec.mu.Unlock()
	if !navigated {
		if paintErr != nil {
			return false, fmt.Errorf("next paint: %w", paintErr)
		}
		return false, nil
	}
	select {
	case <-loaded:
		return true, nil
	case <-actCtx.Done():
		return true, fmt.Errorf("no load event within %s after the interaction", b.opts.LoadTimeout)
	}
}

// tap clicks at x, y: a mouse press and release on desktop, a touch start and end on mobile.
func tap(ctx context.Context, vp Viewport, x, y float64) error {
	if vp.Mobile {
		if _, err := chromedp.Call(ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{
			Type: input.DispatchTouchEventTypeTouchStart, TouchPoints: []*input.TouchPoint{{X: x, Y: y}}}); err != nil {
			return fmt.Errorf("touch: %w", err)
		}
		if _, err := chromedp.Call(ctx, input.DispatchTouchEvent, input.DispatchTouchEventParams{
			Type: input.DispatchTouchEventTypeTouchEnd, TouchPoints: []*input.TouchPoint{}}); err != nil {
			return fmt.Errorf("touch: %w", err)
		}
		return nil
	}
	for _, typ := range []input.DispatchMouseEventType{input.DispatchMouseEventTypeMouseMoved, input.DispatchMouseEventTypeMousePressed, input.DispatchMouseEventTypeMouseReleased} {
		p := input.DispatchMouseEventParams{Type: typ, X: x, Y: y}
		if typ != input.DispatchMouseEventTypeMouseMoved {
			p.Button, p.ClickCount = input.MouseButtonLeft, 1
			if typ == input.DispatchMouseEventTypeMousePressed {
				p.Buttons = 1
			}
		}
		if _, err := chromedp.Call(ctx, input.DispatchMouseEvent, p); err != nil {
			return fmt.Errorf("mouse: %w", err)
		}
	}
	return nil
}

// reload navigates back to the route after an interaction that left it.
func (b *CDPBrowser) reload(ctx context.Context, rec *visitRecorder, pageURL string) error {
	loaded := rec.reset()
	navCtx, cancel := context.WithTimeout(ctx, b.opts.LoadTimeout)
	defer cancel()
	nav, err := chromedp.Call(navCtx, page.Navigate, page.NavigateParams{URL: pageURL})
	if err != nil {
		return err
	}
	if nav.ErrorText != "" {
		return errors.New(nav.ErrorText)
	}
	select {
	case <-loaded:
		return nil
	case <-navCtx.Done():
		return fmt.Errorf("no load event within %s", b.opts.LoadTimeout)
	}
}

func (b *CDPBrowser) interactionEvents(ctx context.Context) ([]EventTiming, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[[]EventTiming](eventsScript))
}

// traceCategories are those of the DevTools performance panel.
var traceCategories = []string{
	"-*", "devtools.timeline", "disabled-by-default-devtools.timeline", "disabled-by-default-devtools.timeline.frame",
	"disabled-by-default-devtools.timeline.stack", "toplevel", "blink.console", "blink.user_timing", "latencyInfo",
	"loading", "v8.execute", "disabled-by-default-v8.cpu_profiler",
}

// traceSession is a running DevTools trace of one tab.
type traceSession struct {
	rec     *visitRecorder
	done    chan struct{}
	started bool
}

// startTrace starts tracing on the tab (events reported as Tracing.dataCollected). A trace that does
// not start leaves the visit as it is: stop then reports why.
func startTrace(ctx context.Context, rec *visitRecorder) *traceSession {
	t := &traceSession{rec: rec, done: make(chan struct{})}
	rec.mu.Lock()
	rec.trace, rec.traceDone = nil, t.done
	rec.mu.Unlock()
	_, err := chromedp.Call(ctx, tracing.Start, tracing.StartParams{
		TransferMode: tracing.StartTransferModeReportEvents,
		TraceConfig:  &tracing.TraceConfig{IncludedCategories: traceCategories},
	})
	t.started = err == nil
	return t
}

// stop ends the trace, waits for its last events and writes them as a trace file DevTools opens
// ({"traceEvents": [...]}).
func (t *traceSession) stop(ctx context.Context, file string) error {
	if !t.started {
		return errors.New("tracing did not start")
	}
	if _, err := chromedp.Call(ctx, tracing.End, cdp.Empty{}); err != nil {
		return err
	}
	select {
	case <-t.done:
	case <-time.After(30 * time.Second):
		return errors.New("no tracingComplete within 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
	t.rec.mu.Lock()
	events := t.rec.trace
	t.rec.trace = nil
	t.rec.mu.Unlock()
	var buf bytes.Buffer
	buf.WriteString(`{"traceEvents":[`)
	for i, e := range events {
		if i > 0 {
			buf.WriteString(",\n")
		}
		buf.Write(e)
	}
	buf.WriteString("]}\n")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}
