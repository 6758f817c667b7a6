package app

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// feedItems reads the overview through the JSON API: the console must show the same rows.
func feedItems(t *testing.T, h *harness) []map[string]any {
	t.Helper()
	var env struct {
		Data []map[string]any `json:"data"`
	}
	r := h.do(http.MethodGet, "/_ref/connectors", nil)
	if err := json.Unmarshal(r.body, &env); err != nil || r.status != 200 {
		t.Fatalf("overview: %d %s", r.status, r.body)
	}
	return env.Data
}

func TestConsolePages(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)

		empty := h.do(http.MethodGet, "/dashboard", nil)
		if empty.status != 200 || !strings.Contains(string(empty.body), "No connections yet") {
			t.Fatalf("empty install: %d, want 200 with the empty state; body %.300s", empty.status, empty.body)
		}
		if ct := empty.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("content type %q, want text/html", ct)
		}
		h.do(http.MethodGet, "/dashboard", nil, asBearer("")).expectError(t, http.StatusUnauthorized, "")

		if _, err := perf.Seed(context.Background(), h.db, "demo", 7, nil); err != nil {
			t.Fatal(err)
		}
		// The seed wrote to the database directly, not through the API, so the PostgreSQL
		// overview cache (filled by the empty page above) is dropped by hand.
		h.do(http.MethodDelete, "/admin/summary-cache", nil, asBearer(testAdminToken))
		items := feedItems(t, h)
		if len(items) < 8 {
			t.Fatalf("overview after the demo seed has %d items", len(items))
		}
		dash := h.do(http.MethodGet, "/dashboard", nil)
		if dash.status != 200 {
			t.Fatalf("/dashboard: %d", dash.status)
		}
		body := html.UnescapeString(string(dash.body))
		for _, it := range items {
			if !strings.Contains(body, it["display_name"].(string)) || !strings.Contains(body, "/dashboard/connections/"+it["connection_id"].(string)) {
				t.Errorf("/dashboard lacks the row of %v", it["display_name"])
			}
		}
		for _, hidden := range []string{"Amazon — new enrollment", "Chase — draft", "Internal probe"} {
			if strings.Contains(body, hidden) {
				t.Errorf("/dashboard shows %q (a draft or unlisted connection)", hidden)
			}
		}
		if strings.Contains(body, "<script src=\"http") || strings.Contains(body, "<link rel=\"stylesheet\" href=\"http") {
			t.Error("the console loads an external resource")
		}

		var data DashboardDataJSON
		r := h.do(http.MethodGet, "/dashboard?_data=1", nil)
		if err := json.Unmarshal(r.body, &data); err != nil || len(data.Items) != len(items) {
			t.Fatalf("/dashboard?_data=1: %d items (%v), want %d", len(data.Items), err, len(items))
		}

		runsPage := h.do(http.MethodGet, "/dashboard/runs", nil)
		if runsPage.status != 200 || !strings.Contains(string(runsPage.body), "run_") {
			t.Errorf("/dashboard/runs: %d, want 200 listing runs", runsPage.status)
		}

		// A sibling browser connection: its page shows its expected key and the siblings' runs
		// rejected by that key.
		var work map[string]any
		for _, it := range items {
			if it["display_name"] == "Amazon — work" {
				work = it
			}
		}
		if work == nil {
			t.Fatal("demo profile lacks Amazon — work")
		}
		id := work["connection_id"].(string)
		page := h.do(http.MethodGet, "/dashboard/connections/"+id, nil)
		pb := html.UnescapeString(string(page.body))
		if page.status != 200 || !strings.Contains(pb, "amazon-shopping:"+id) || !strings.Contains(pb, "profile_key_mismatch") || !strings.Contains(pb, "profile_key_match") {
			t.Errorf("connection page: %d; want the expected key and both matched and mismatched candidates", page.status)
		}
		h.do(http.MethodGet, "/dashboard/connections/cin_nope", nil).expectError(t, http.StatusNotFound, "connection_id")
	})
}

// DashboardDataJSON is the part of /dashboard?_data=1 the test reads.
type DashboardDataJSON struct {
	Items []map[string]any `json:"items"`
}
