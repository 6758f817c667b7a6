package app

import (
	"context"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/uptrace/bun"
	"go.uber.org/fx"

	"connsum/modules/bootstrap/dbtest"
)

// headsReads counts the statements that read run_heads: the overview's evidence statement.
type headsReads struct{ n atomic.Int64 }

func (c *headsReads) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (c *headsReads) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if strings.Contains(e.Query, "run_heads") {
		c.n.Add(1)
	}
}

// A service computes the overview once before it listens (summary.Feed.WarmUp), and that
// computation leaves no trace a client could see: no cache entry, no cache outcome, no projection
// in /metrics, so the first client's overview is still a miss computed for it.
func TestStartWarmsTheFeedUpWithoutATrace(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		first := startOwnerAdmin(t, dbURL)
		first.do("PUT", "/_ref/connectors/gmail", `{"display_name":"Gmail"}`).expect(t, 201)
		first.do("POST", "/_ref/connections", map[string]any{"connector_id": "gmail", "connection_id": "cin_a", "source_binding_key": "a"}).expect(t, 201)

		reads := &headsReads{}
		h := startAppWith(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"summary.cache.sqlite": "true"},
			fx.Decorate(func(db *bun.DB) *bun.DB { db.AddQueryHook(reads); return db }))
		if n := reads.n.Load(); n != 1 {
			t.Fatalf("statements reading run_heads before any request: %d, want the warm-up's 1", n)
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
		if n := reads.n.Load(); n != 2 {
			t.Errorf("statements reading run_heads after the first overview: %d, want 2", n)
		}
	})
}
