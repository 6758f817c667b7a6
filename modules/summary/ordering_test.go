package summary_test

import (
	"encoding/json"
	"net/url"
	"reflect"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/runs"
)

// orderingItem is what the ordering checks read of a feed item.
type orderingItem struct {
	ConnectionID  string `json:"connection_id"`
	StreamRecords []struct {
		Stream string `json:"stream"`
	} `json:"stream_records"`
	LastRun           *orderingRun `json:"last_run"`
	LastSuccessfulRun *orderingRun `json:"last_successful_run"`
	Health            struct {
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"health"`
}

type orderingRun struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
}

func (h *feedHTTP) orderingItems(query string) []orderingItem {
	h.t.Helper()
	_, env, _ := h.feed(query)
	out := make([]orderingItem, len(env.Data))
	for i, d := range env.Data {
		if err := json.Unmarshal(d, &out[i]); err != nil {
			h.t.Fatal(err)
		}
	}
	return out
}

// seedOrdering writes ids that sort differently by bytes and by a linguistic collation:
// connectors a-b, a.b and a_b (created in reverse byte order), streams that differ by case and
// punctuation, and two runs RW (succeeded) and run_a (failed) of one connection that end at the
// same instant, so only the run_id DESC tie-break decides the last run.
func (h *feedHTTP) seedOrdering() {
	for _, c := range []struct{ connector, connection string }{{"a_b", "cin_under"}, {"a.b", "cin_dot"}, {"a-b", "cin_dash"}, {"tie", "cin_tie"}} {
		h.do("PUT", "/_ref/connectors/"+c.connector, map[string]any{"display_name": "Connector " + c.connector}, 201)
		h.do("POST", "/_ref/connections", map[string]any{"connector_id": c.connector, "connection_id": c.connection}, 201)
	}
	for _, s := range []string{"orders_2", "orders.v2", "orders-2", "orders", "Orders", "B"} {
		h.do("PUT", "/_ref/connections/cin_tie/retained/"+s, map[string]any{"record_count": 1, "record_json_bytes": 1,
			"record_changes_count": 0, "record_changes_json_bytes": 0, "blob_count": 0, "blob_bytes": 0}, 200)
	}
	start := time.Now().UTC().Add(-time.Hour)
	var evs []map[string]any
	for _, r := range []struct{ id, terminal string }{{"RW", "run.completed"}, {"run_a", "run.failed"}} {
		base := func(typ string, d time.Duration) map[string]any {
			return map[string]any{"event_type": typ, "occurred_at": start.Add(d).Format(time.RFC3339Nano), "run_id": r.id,
				"source_kind": "connector", "source_id": "tie", "connection_id": "cin_tie"}
		}
		end := base(r.terminal, time.Minute)
		if r.terminal == "run.failed" {
			end["data"] = map[string]any{"reason": "login_required"}
		}
		evs = append(evs, base("run.started", 0), end)
	}
	h.do("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)
}

// TestFeedOrderIsByteOrderOnEveryDatabase: connector order, keyset pages, stream_records and the
// run_id DESC tie-break of the last run are the same on SQLite, on PostgreSQL and on a
// PostgreSQL database whose default collation is ICU en-US (SPEC §4.1: deterministic on both
// engines), with either evidence implementation. The spine pipeline runs with pages of one run,
// so the database's order (not a sort in Go) picks the page's run.
func TestFeedOrderIsByteOrderOnEveryDatabase(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.OrderingEngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPOptions(t, dbURL, runs.Options{Evidence: evidence, PageSize: 1})
				h.seedOrdering()
				wantOrder := []string{"cin_dash", "cin_dot", "cin_under", "cin_tie"}

				overview := h.orderingItems("")
				if got := orderingIDs(overview); !reflect.DeepEqual(got, wantOrder) {
					t.Errorf("overview order = %v, want %v (a-b, a.b, a_b by bytes)", got, wantOrder)
				}
				var paged []string
				q := "?limit=1"
				for i := 0; i < 10; i++ {
					_, env, items := h.feed(q)
					paged = append(paged, feedIDs(items)...)
					if !env.HasMore {
						break
					}
					q = "?limit=1&cursor=" + url.QueryEscape(*env.NextCursor)
				}
				if !reflect.DeepEqual(paged, wantOrder) {
					t.Errorf("keyset pages = %v, want %v", paged, wantOrder)
				}

				wantStreams := []string{"B", "Orders", "orders", "orders-2", "orders.v2", "orders_2"}
				scoped := h.orderingItems("?connection=cin_tie")
				if len(scoped) != 1 {
					t.Fatalf("scoped read of cin_tie: %d items", len(scoped))
				}
				deep := h.orderingItems("?depth=deep")
				reads := map[string]orderingItem{"scoped read": scoped[0], "deep list": deep[len(deep)-1]}
				if evidence == runs.SourceReadModel {
					reads["overview"] = overview[len(overview)-1]
				}
				for what, it := range reads {
					var streams []string
					for _, s := range it.StreamRecords {
						streams = append(streams, s.Stream)
					}
					if !reflect.DeepEqual(streams, wantStreams) {
						t.Errorf("%s stream_records = %v, want %v", what, streams, wantStreams)
					}
					// Same last_at: run_id DESC by bytes puts run_a ('r' 0x72) before RW ('R' 0x52).
					if it.LastRun == nil || it.LastRun.RunID != "run_a" || it.LastRun.Status != "failed" {
						t.Errorf("%s last_run = %+v, want run_a (failed)", what, it.LastRun)
					}
					if it.LastSuccessfulRun == nil || it.LastSuccessfulRun.RunID != "RW" {
						t.Errorf("%s last_successful_run = %+v, want RW", what, it.LastSuccessfulRun)
					}
					if it.Health.State != "failing" || it.Health.Reason != "login_required" {
						t.Errorf("%s health = %+v, want failing/login_required", what, it.Health)
					}
				}
				var runsBody struct {
					Data []struct {
						RunID string `json:"run_id"`
					} `json:"data"`
				}
				if err := json.Unmarshal(h.do("GET", "/_ref/connections/cin_tie/runs", nil, 200).body, &runsBody); err != nil {
					t.Fatal(err)
				}
				if len(runsBody.Data) == 0 || runsBody.Data[0].RunID != "run_a" {
					t.Errorf("runs of cin_tie = %+v, want run_a first", runsBody.Data)
				}
			})
		})
	}
}

func orderingIDs(items []orderingItem) []string {
	ids := []string{}
	for _, it := range items {
		ids = append(ids, it.ConnectionID)
	}
	return ids
}
