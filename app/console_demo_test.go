package app

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// TestDemoShowsTheSameStatesWheneverSeeded: the demo's times are laid out back from the moment
// it is seeded, so its states do not depend on the minute of the hour; no event lies in the
// future, and every connection exists before its first run.
func TestDemoShowsTheSameStatesWheneverSeeded(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		before := time.Now().UTC()
		if _, err := perf.Seed(context.Background(), h.db, "demo", 1, nil); err != nil {
			t.Fatal(err)
		}
		h.do(http.MethodDelete, "/admin/summary-cache", nil, asBearer(testAdminToken))
		want := map[string]string{
			"Amazon — personal": "failing", "Amazon — work": "syncing", "Gmail": "syncing", "Amazon — family": "healthy",
			"Chase — business": "healthy", "Chase — checking": "healthy", "iPhone": "healthy", "Slack — team": "healthy",
			"Spotify": "paused", "GitHub (old account)": "revoked",
		}
		items := feedItems(t, h)
		if len(items) != len(want) {
			t.Errorf("%d demo rows, want %d", len(items), len(want))
		}
		for _, it := range items {
			name, state := it["display_name"].(string), it["health"].(map[string]any)["state"].(string)
			if want[name] != state {
				t.Errorf("%s is %s, want %s", name, state, want[name])
			}
		}
		var future int
		if err := h.db.NewRaw("SELECT count(*) FROM spine_events WHERE occurred_at > ?", time.Now().UTC().Format("2006-01-02T15:04:05.000Z")).Scan(context.Background(), &future); err != nil {
			t.Fatal(err)
		}
		if future != 0 {
			t.Errorf("%d demo events lie in the future", future)
		}
		var late []string
		if err := h.db.NewRaw(`SELECT c.display_name FROM connections c JOIN run_summaries r ON r.connection_id = c.connection_id
			GROUP BY c.display_name, c.created_at HAVING min(r.first_at) < c.created_at`).Scan(context.Background(), &late); err != nil {
			t.Fatal(err)
		}
		if len(late) != 0 {
			t.Errorf("connections created after their first run: %v", late)
		}
		// The newest run of a syncing connection is recent enough to stay in progress for a while.
		for _, it := range items {
			if lr, ok := it["last_run"].(map[string]any); ok && lr["status"] == "in_progress" {
				at, _ := time.Parse("2006-01-02T15:04:05.000Z", lr["last_at"].(string))
				if before.Sub(at) > 18*time.Minute+time.Minute {
					t.Errorf("%s's run in progress ended %v before the seed: it turns orphaned too soon", it["display_name"], before.Sub(at))
				}
			}
		}
	})
}
