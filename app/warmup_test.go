package app

import (
	"regexp"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
)

// A service computes the overview once before it listens (summary.Feed.WarmUp), and that
// computation leaves no trace a client could see: no cache entry, no cache outcome, no projection
// in /metrics, so the first client's overview is still a miss computed for it.
func TestStartWarmsTheFeedUpWithoutATrace(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		first := startOwnerAdmin(t, dbURL)
		first.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		first.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)

		h := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"summary.cache.sqlite": "true"})
		warm := regexp.MustCompile(`msg="feed warmed up" statements=(\d+)`).FindStringSubmatch(h.logs.String())
		if warm == nil {
			t.Fatalf("no warm-up logged before the first request:\n%s", h.logs.String())
		}
		stats := h.do("GET", "/admin/summary-cache", nil, asBearer(testAdminToken)).expect(t, 200)
		for _, k := range []string{"hits", "misses", "shared", "bypasses", "errors"} {
			if num(t, stats, k) != 0 {
				t.Errorf("cache %s after the warm-up: %v", k, stats[k])
			}
		}
		if e, _ := stats["entries"].([]any); len(e) != 0 {
			t.Errorf("cache entries after the warm-up: %v", e)
		}
		metrics := string(h.do("GET", "/metrics", nil, asBearer(testAdminToken)).body)
		if m := regexp.MustCompile(`connsum_projection_duration_seconds_count\{pipeline="overview",result="ok"\} (\d+)`).FindStringSubmatch(metrics); m != nil && m[1] != "0" {
			t.Errorf("overview projections counted after the warm-up: %s", m[1])
		}
		r := h.do("GET", "/_ref/connectors", nil)
		if r.status != 200 || r.header.Get("X-Summary-Cache") != "miss" || !strings.Contains(string(r.body), `"cin_a"`) {
			t.Fatalf("first overview: %d, cache %q, %s", r.status, r.header.Get("X-Summary-Cache"), r.body)
		}
		// The warm-up computed the overview a client gets: the same statements.
		if got := r.header.Get("X-Summary-Statements"); got != warm[1] {
			t.Errorf("the first overview took %s statements, the warm-up %s", got, warm[1])
		}
	})
}
