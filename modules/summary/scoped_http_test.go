package summary_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
)

// TestScopedReadPrefersTheConnectionOverTheConnectorFallback: an id that is a visible connection
// resolves to that connection, however many visible connections a connector with the same id
// has (SPEC §2.3: the connector-id fallback applies only when the id is no visible connection).
// The ids here are connector ids with one, two and three connections sorting before the
// connector zeta, whose connection carries the id; the diagnostics route answers the same item,
// and a draft whose id is such a connector id never shows the connector's connection as its own.
func TestScopedReadPrefersTheConnectionOverTheConnectorFallback(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startFeedHTTP(t, dbURL)
		h.do("PUT", "/_ref/connectors/zeta", map[string]any{"display_name": "Zeta"}, 201)
		for n, id := range []string{"cin_one", "cin_two", "cin_three"} {
			h.do("PUT", "/_ref/connectors/"+id, map[string]any{"display_name": "Shared " + id}, 201)
			for k := 0; k <= n; k++ {
				h.do("POST", "/_ref/connections", map[string]any{"connector_id": id, "source_binding_key": fmt.Sprintf("k%d", k)}, 201)
			}
			h.do("POST", "/_ref/connections", map[string]any{"connector_id": "zeta", "connection_id": id, "source_binding_key": id}, 201)
		}
		for _, id := range []string{"cin_one", "cin_two", "cin_three"} {
			_, _, items := h.feed("?connection=" + id)
			if got := feedIDs(items); !reflect.DeepEqual(got, []string{id}) {
				t.Errorf("scoped read of %s = %v, want the zeta connection %s", id, got, id)
			}
			if d := h.diagnostics(id); d.Item == nil || d.Item.ConnectionID != id {
				t.Errorf("diagnostics of %s: item %+v, want the connection %s", id, d.Item, id)
			}
		}

		// A draft is no visible connection: the scoped read falls back to the one visible
		// connection of the connector with that id, but the draft's diagnostics have no item.
		h.do("PUT", "/_ref/connectors/cin_solo", map[string]any{"display_name": "Solo"}, 201)
		solo := h.do("POST", "/_ref/connections", map[string]any{"connector_id": "cin_solo"}, 201)
		var soloConn struct {
			ConnectionID string `json:"connection_id"`
		}
		if err := json.Unmarshal(solo.body, &soloConn); err != nil {
			t.Fatal(err)
		}
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": "zeta", "connection_id": "cin_solo",
			"source_binding_key": "solo", "status": "draft"}, 201)
		if _, _, items := h.feed("?connection=cin_solo"); !reflect.DeepEqual(feedIDs(items), []string{soloConn.ConnectionID}) {
			t.Errorf("scoped read of cin_solo = %v, want the connector's only connection %s", feedIDs(items), soloConn.ConnectionID)
		}
		if d := h.diagnostics("cin_solo"); d.Item != nil {
			t.Errorf("diagnostics of the draft cin_solo show the item of %s", d.Item.ConnectionID)
		}
	})
}

// TestRunsRouteFiltersByStatusBeforeTheLimit: /_ref/connections/{id}/runs?status= finds a
// connection's runs of that status behind newer runs of another status, with either evidence
// implementation (SPEC §4.3: the filter applies before the limit). First the connector gets 70
// newer failed runs without connection evidence (more than one run page), then the connection
// itself 60 newer failed runs (more than the route's default limit).
func TestRunsRouteFiltersByStatusBeforeTheLimit(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPWith(t, dbURL, evidence)
				h.do("PUT", "/_ref/connectors/shop", map[string]any{"display_name": "Shop"}, 201)
				h.do("POST", "/_ref/connections", map[string]any{"connector_id": "shop", "connection_id": "cin_shop_a"}, 201)
				start := time.Now().UTC().Add(-10 * time.Hour)
				run := func(id, terminal, connection string, at time.Duration) []map[string]any {
					base := func(typ string, d time.Duration) map[string]any {
						e := map[string]any{"event_type": typ, "occurred_at": start.Add(at + d).Format(time.RFC3339Nano), "run_id": id,
							"source_kind": "connector", "source_id": "shop"}
						if connection != "" {
							e["connection_id"] = connection
						}
						return e
					}
					return []map[string]any{base("run.started", 0), base(terminal, time.Second)}
				}
				evs := run("r_ok", "run.completed", "cin_shop_a", 0)
				for i := 0; i < 70; i++ {
					evs = append(evs, run(fmt.Sprintf("r_other_%02d", i), "run.failed", "", time.Duration(i+1)*time.Minute)...)
				}
				h.do("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)

				runIDs := func(path string) []string {
					t.Helper()
					var body struct {
						Data []struct {
							RunID  string `json:"run_id"`
							Status string `json:"status"`
						} `json:"data"`
					}
					if err := json.Unmarshal(h.do("GET", path, nil, 200).body, &body); err != nil {
						t.Fatal(err)
					}
					ids := []string{}
					for _, d := range body.Data {
						ids = append(ids, d.RunID)
					}
					return ids
				}
				_, env, _ := h.feed("?connection=cin_shop_a")
				var item struct {
					LastSuccessfulRun *struct {
						RunID string `json:"run_id"`
					} `json:"last_successful_run"`
				}
				if len(env.Data) != 1 || json.Unmarshal(env.Data[0], &item) != nil || item.LastSuccessfulRun == nil || item.LastSuccessfulRun.RunID != "r_ok" {
					t.Fatalf("scoped read of cin_shop_a: %s, want last_successful_run r_ok", env.Data)
				}
				if got := runIDs("/_ref/connections/cin_shop_a/runs?status=succeeded"); !reflect.DeepEqual(got, []string{"r_ok"}) {
					t.Errorf("succeeded runs behind the connector's failures = %v, want [r_ok]", got)
				}

				evs = nil
				for i := 0; i < 60; i++ {
					evs = append(evs, run(fmt.Sprintf("r_own_%02d", i), "run.failed", "cin_shop_a", time.Duration(100+i)*time.Minute)...)
				}
				h.do("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)
				if got := runIDs("/_ref/connections/cin_shop_a/runs?status=succeeded"); !reflect.DeepEqual(got, []string{"r_ok"}) {
					t.Errorf("succeeded runs behind the connection's own 60 failures = %v, want [r_ok]", got)
				}
				if got, want := runIDs("/_ref/connections/cin_shop_a/runs?status=failed&limit=3"), []string{"r_own_59", "r_own_58", "r_own_57"}; !reflect.DeepEqual(got, want) {
					t.Errorf("failed runs, limit 3 = %v, want %v", got, want)
				}
				if got := runIDs("/_ref/connections/cin_shop_a/runs?status=cancelled"); len(got) != 0 {
					t.Errorf("cancelled runs = %v, want none", got)
				}
			})
		})
	}
}
