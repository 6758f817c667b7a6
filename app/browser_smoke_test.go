package app

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// TestConsoleInBrowser is the CI smoke test of the browser harness: the real service with the
// demo profile, /dashboard, /dashboard/runs and one connection page in headless Chromium, on
// desktop and mobile. Every page must answer 200 with no failed request, no console or page
// error and at most one same-route data fetch.
func TestConsoleInBrowser(t *testing.T) {
	chromium := os.Getenv("CONNSUM_CHROMIUM")
	if chromium == "" {
		chromium = perf.DefaultChromiumPath
	}
	if _, err := os.Stat(chromium); err != nil {
		if os.Getenv("CONNSUM_REQUIRE_BROWSER") == "1" {
			t.Fatalf("CONNSUM_REQUIRE_BROWSER=1 but no Chromium at %s", chromium)
		}
		dbtest.Loudly("!!! app: no Chromium at " + chromium + ": the browser smoke test is SKIPPED (CONNSUM_REQUIRE_BROWSER=1 fails instead)")
		t.Skipf("!!! no Chromium at %s: browser smoke test SKIPPED", chromium)
	}
	h := startOwnerAdmin(t, dbtest.SQLiteURL(t))
	if _, err := perf.Seed(context.Background(), h.db, "demo", 1, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "browser.json")
	err := perf.BrowserMain([]string{"--base", "http://" + h.addr, "--token", testOwnerToken, "--chromium", chromium,
		"--routes", "/dashboard,/dashboard/runs,/dashboard/connections/{connection}", "--viewports", "desktop,mobile",
		"--api-samples", "3", "--json", out}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep perf.BrowserReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Routes) != 6 {
		t.Fatalf("%d route results, want 3 routes × 2 viewports", len(rep.Routes))
	}
	for _, r := range rep.Routes {
		name := r.Route + " " + r.Viewport
		if r.Status != 200 || r.Error != "" {
			t.Errorf("%s: status %d error %q", name, r.Status, r.Error)
		}
		if len(r.FailedRequests) != 0 || r.ConsoleErrors != 0 || len(r.PageErrors) != 0 {
			t.Errorf("%s: failed %v, console errors %d %v, page errors %v", name, r.FailedRequests, r.ConsoleErrors, r.ConsoleMessages, r.PageErrors)
		}
		if r.DataFetchCount > 1 {
			t.Errorf("%s: %d data fetches in one navigation", name, r.DataFetchCount)
		}
		// Whether the browser reported an LCP within the harness's settle time depends on the
		// machine's load (timings are the benchmark's business); that the page loaded and what it
		// says are deterministic.
		if r.RequestCount < 1 || r.DOMContentLoadedMs <= 0 {
			t.Errorf("%s: %d requests, DOMContentLoaded at %.1f ms: the page did not load", name, r.RequestCount, r.DOMContentLoadedMs)
		}
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatalf("%s: url %q: %v", name, r.URL, err)
		}
		// The harness logged in (POST /login) and the browser carried that session: the page is
		// the one asked for, not the login form a browser without a session is sent to.
		if final, err := url.Parse(r.FinalURL); err != nil || final.Path != u.Path {
			t.Errorf("%s: the browser ended on %q, want %s (not logged in?)", name, r.FinalURL, u.Path)
		}
		page := h.do("GET", u.RequestURI(), nil)
		if page.status != 200 || !strings.Contains(string(page.body), "Amazon") || !strings.Contains(string(page.body), "<table") {
			t.Errorf("%s: the page's first response (%d, %d bytes) does not list the demo's connections in a table", name, page.status, len(page.body))
		}
	}
	if len(rep.APIProbes) != 2 {
		t.Errorf("api probes %d, want the overview and a scoped read", len(rep.APIProbes))
	}
	// One login for the whole run, by the token; the cookie the browsers carried is its session.
	if rows := h.sessionRows(t); len(rows) != 1 || rows[0]["via"] != "token" {
		t.Errorf("sessions after the run: %v, want the harness's one login", rows)
	}
	h.requireNoTokensLogged(t)
}
