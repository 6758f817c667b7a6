package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldLoad is a fixture handler pair: /hold keeps the page's load event pending (an image) until the
// page's script fetches /release, so the harness measures only after the scripted pattern is done.
type heldLoad struct {
	mu   sync.Mutex
	gate chan struct{}
}

func (h *heldLoad) register(mux *http.ServeMux) {
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		if h.gate == nil {
			h.gate = make(chan struct{})
		}
		gate := h.gate
		h.mu.Unlock()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "image/gif")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"))
	})
	mux.HandleFunc("/release", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		if h.gate == nil {
			h.gate = make(chan struct{})
		}
		select {
		case <-h.gate:
		default:
			close(h.gate)
		}
		h.gate = nil // the next visit holds again
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
}

const holdImg = `<img src="/hold" width="1" height="1" alt="">`

// TestBrowserCLSSessionWindows: a scripted pattern of equal shifts — two, a pause of more than 1 s,
// then three — gives the session-window CLS of the larger window (3 shifts), not the sum of all 5.
func TestBrowserCLSSessionWindows(t *testing.T) {
	chromiumForTest(t)
	var h heldLoad
	mux := http.NewServeMux()
	h.register(mux)
	mux.HandleFunc("/shifts", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<style>body{margin:0} #box{height:200px;background:#36c} p{margin:0}</style>
<div id="spacer" style="height:0"></div><div id="box"></div><p>Shifting content below the box.</p>`+holdImg+`
<script>
const spacer = document.getElementById('spacer');
const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
const move = async (px) => { spacer.style.height = px + 'px'; await frame(); };
(async () => {
  await frame();
  await move(100); await move(0);              // window 1: two shifts
  await new Promise(r => setTimeout(r, 1200)); // more than the 1 s session gap
  await move(100); await move(0); await move(100); // window 2: three shifts
  await frame();
  fetch('/release');
})();
</script></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r := visitFixture(t, srv.URL, "/shifts", CDPOptions{}, RouteSpec{})[0]
	if len(r.LayoutShifts) != 5 {
		t.Fatalf("layout shifts = %+v, want the 5 scripted ones", r.LayoutShifts)
	}
	v := r.LayoutShifts[0].Value
	for i, s := range r.LayoutShifts {
		if math.Abs(s.Value-v) > 1e-6 || s.HadRecentInput {
			t.Errorf("shift %d = %+v, want the same value %g as the first and no recent input", i, s, v)
		}
	}
	if gap := r.LayoutShifts[2].StartMs - r.LayoutShifts[1].StartMs; gap <= 1000 {
		t.Errorf("gap between the windows %.1f ms, want > 1000", gap)
	}
	if want := math.Round(3*v*10000) / 10000; r.CLS != want {
		t.Errorf("cls = %v, want 3 × %g = %v (the larger session window)", r.CLS, v, want)
	}
	if want := math.Round(5*v*10000) / 10000; r.CLSSum != want {
		t.Errorf("cls_sum = %v, want 5 × %g = %v", r.CLSSum, v, want)
	}
}

// TestBrowserTBTFromLongTasks: a 200 ms busy loop after the first contentful paint is a long task
// that blocks for at least 150 ms.
func TestBrowserTBTFromLongTasks(t *testing.T) {
	chromiumForTest(t)
	var h heldLoad
	mux := http.NewServeMux()
	h.register(mux)
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Busy</h1><p>The main thread is blocked after the first paint.</p>`+holdImg+`
<script>
new PerformanceObserver((list, obs) => {
  if (!list.getEntries().some(e => e.name === 'first-contentful-paint')) return;
  obs.disconnect();
  setTimeout(() => {
    const end = performance.now() + 200;
    while (performance.now() < end) {}
    setTimeout(() => fetch('/release'), 0);
  }, 0);
}).observe({type: 'paint', buffered: true});
</script></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	r := visitFixture(t, srv.URL, "/busy", CDPOptions{}, RouteSpec{})[0]
	if r.FCPMs == nil {
		t.Fatal("no FCP")
	}
	long := 0
	for _, lt := range r.LongTasks {
		if lt.DurationMs >= 200 && lt.StartMs >= *r.FCPMs {
			long++
		}
	}
	if long == 0 {
		t.Fatalf("long tasks %+v (fcp %.1f): want one of ≥ 200 ms after FCP", r.LongTasks, *r.FCPMs)
	}
	if r.TBTMs < 150 || r.TBTMs != TotalBlockingTime(r.LongTasks, r.FCPMs) {
		t.Errorf("tbt = %.1f, want ≥ 150 and TotalBlockingTime of %+v", r.TBTMs, r.LongTasks)
	}
}

// TestBrowserINPFromScriptedInteractions: a scripted click on a button whose handler is slow gives an
// INP, on desktop (mouse) and mobile (touch); an interaction whose element is absent is skipped; a
// click on a link that navigates is reported as such, and the next interaction runs on the route again.
func TestBrowserINPFromScriptedInteractions(t *testing.T) {
	chromiumForTest(t)
	mux := http.NewServeMux()
	var mu sync.Mutex
	pages := map[string]int{}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pages[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Interactive</h1><p><a id="next" href="/other?health=failing">failing</a></p>
<button id="slow" style="width:200px;height:60px">slow</button><output id="out"></output>
<button id="bad">bad</button> <a id="anchor" href="#bottom">to the bottom</a> <a id="push" href="/pushed">pushState</a>
<script>
document.getElementById('slow').addEventListener('click', () => {
  const end = performance.now() + 100;
  while (performance.now() < end) {}
  document.getElementById('out').textContent = 'clicked ' + Date.now();
});
document.getElementById('bad').addEventListener('click', () => console.error('interaction boom'));
document.getElementById('push').addEventListener('click', e => { e.preventDefault(); history.pushState({}, '', '/page?health=ok'); });
</script></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	interactions := []Interaction{
		{Name: "health filter", Click: `a[href*="health="]`},
		{Name: "slow button", Click: "#slow"},
		{Name: "search", Type: "input[name=q]", Text: "ama"},
		{Name: "bad button", Click: "#bad"},
		{Name: "fragment link", Click: "#anchor"},
		{Name: "client-side route", Click: "#push"},
	}
	for _, name := range []string{"desktop", "mobile"} {
		vp, _ := ViewportByName(name)
		trace := filepath.Join(t.TempDir(), "trace.json")
		r := visitFixture(t, srv.URL, "/page", CDPOptions{}, RouteSpec{Viewport: vp, Interactions: interactions, TraceFile: trace})[0]
		if len(r.Interactions) != 6 {
			t.Fatalf("%s: interactions %+v", name, r.Interactions)
		}
		nav, slow, search, bad := r.Interactions[0], r.Interactions[1], r.Interactions[2], r.Interactions[3]
		if nav.Outcome != "ok" || !nav.Navigated {
			t.Errorf("%s: link click %+v, want ok and navigated", name, nav)
		}
		if slow.Outcome != "ok" || slow.LatencyMs == nil || *slow.LatencyMs < 100 {
			t.Errorf("%s: slow click %+v, want a latency of at least the handler's 100 ms", name, slow)
		}
		if search.Outcome != "skipped" || !strings.Contains(search.Note, "input[name=q]") {
			t.Errorf("%s: search %+v, want skipped naming the selector", name, search)
		}
		if bad.Outcome != "ok" || len(r.InteractionErrors) != 1 || r.InteractionErrors[0] != "bad button: console error: interaction boom" {
			t.Errorf("%s: bad button %+v, interaction errors %q: want the console error named", name, bad, r.InteractionErrors)
		}
		if m, _ := metricByName("console_errors"); r.ConsoleErrors != 0 || func() float64 { v, _ := m.value(r); return v }() != 1 {
			t.Errorf("%s: console errors of the load %d, of the view %v: want 0 and 1", name, r.ConsoleErrors, r.InteractionErrors)
		}
		for _, same := range r.Interactions[4:] {
			if same.Outcome != "ok" || same.Navigated {
				t.Errorf("%s: %+v, want ok without a navigation (the document stays)", name, same)
			}
		}
		if r.INPMs == nil || *r.INPMs < 100 {
			t.Errorf("%s: inp = %v, want ≥ 100 ms", name, r.INPMs)
		}
		raw, err := os.ReadFile(trace)
		var doc struct {
			TraceEvents []json.RawMessage `json:"traceEvents"`
		}
		if err != nil || json.Unmarshal(raw, &doc) != nil || len(doc.TraceEvents) == 0 || r.Trace != trace {
			t.Errorf("%s: trace %s: %v, %d events, result trace %q", name, trace, err, len(doc.TraceEvents), r.Trace)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Per viewport: the visit, the route again after the link click; the link's page once.
	if pages["/page"] != 4 || pages["/other"] != 2 {
		t.Errorf("pages served %v, want /page 4 and /other 2", pages)
	}
}

// TestBrowserMobileThrottling: the mobile viewport is 412×823 at DPR 1.75 and, throttled, every
// request waits at least the emulated 150 ms round trip.
func TestBrowserMobileThrottling(t *testing.T) {
	chromiumForTest(t)
	var mu sync.Mutex
	var seen []string
	mux := http.NewServeMux()
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RawQuery)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/m", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, fixtureHead+`<h1>Mobile</h1><script>fetch('/report?w=' + innerWidth + '&h=' + innerHeight + '&dpr=' + devicePixelRatio);</script></body></html>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	vp, _ := ViewportByName("mobile")
	r := visitFixture(t, srv.URL, "/m", CDPOptions{ApplyThrottle: true}, RouteSpec{Viewport: vp})[0]
	if !r.Throttled || r.TTFBMs < 150 {
		t.Errorf("throttled %v, ttfb %.1f ms: want throttled and at least the 150 ms RTT", r.Throttled, r.TTFBMs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != "w=412&h=823&dpr=1.75" {
		t.Errorf("the page saw %v, want w=412&h=823&dpr=1.75", seen)
	}
	_ = strconv.Itoa
	_ = time.Second
	_ = context.Background
}
