package summary_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// runsPage is the body of GET /_ref/connections/{id}/runs.
type runsPage struct {
	Object       string `json:"object"`
	ConnectionID string `json:"connection_id"`
	Data         []struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
		LastAt string `json:"last_at"`
	} `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

// runsPage GETs one page of a connection's runs and checks its envelope.
func (h *feedHTTP) runsPage(path string) runsPage {
	h.t.Helper()
	r := h.do("GET", path, nil, 200)
	var keys []string
	for k := range r.obj(h.t) {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, []string{"connection_id", "data", "has_more", "next_cursor", "object"}) {
		h.t.Errorf("%s: keys %v", path, keys)
	}
	var p runsPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		h.t.Fatal(err)
	}
	if p.Object != "list" || p.Data == nil || p.HasMore != (p.NextCursor != nil) {
		h.t.Errorf("%s: object %q data nil=%v has_more %v next_cursor %v", path, p.Object, p.Data == nil, p.HasMore, p.NextCursor)
	}
	return p
}

func (p runsPage) ids() []string {
	out := []string{}
	for _, d := range p.Data {
		out = append(out, d.RunID)
	}
	return out
}

// walkRuns follows next_cursor from the first page of base (a path with its query) to the end
// and returns every run id in order, and the number of pages.
func (h *feedHTTP) walkRuns(base string, limit int) ([]string, int) {
	h.t.Helper()
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	var all []string
	path := base
	if limit > 0 {
		path = fmt.Sprintf("%s%slimit=%d", base, sep, limit)
	}
	for pages := 1; pages < 200; pages++ {
		p := h.runsPage(path)
		all = append(all, p.ids()...)
		if want := max(limit, 0); want > 0 && p.HasMore && len(p.Data) != want {
			h.t.Errorf("%s: a page with more after it holds %d runs, want %d", path, len(p.Data), want)
		}
		if !p.HasMore {
			return all, pages
		}
		path = base + sep + "cursor=" + url.QueryEscape(*p.NextCursor)
		if limit > 0 {
			path += fmt.Sprintf("&limit=%d", limit)
		}
	}
	h.t.Fatalf("%s: no last page after 200 pages", base)
	return nil, 0
}

// wantError checks a 400 naming field.
func (h *feedHTTP) wantError(path, field string) {
	h.t.Helper()
	r := h.call("GET", path, nil)
	var e struct {
		Error struct{ Code, Message, Field string } `json:"error"`
	}
	if r.status != 400 || json.Unmarshal(r.body, &e) != nil || e.Error.Code != "invalid_request" || e.Error.Field != field || e.Error.Message == "" {
		h.t.Errorf("%s = %d %s, want a 400 naming %s", path, r.status, r.body, field)
	}
}

// TestRunsRoutePagesWithCursors: /_ref/connections/{id}/runs pages in keyset order with
// has_more and next_cursor (SPEC §2.4). 90 runs of cin_p, two per minute (ties on last_at broken
// by run_id DESC across page boundaries), every third failed, among 20 runs of a sibling. With the
// read model the pages cover all 90; with the spine they cover the connector's 64-run window.
// The refused queries (altered or foreign cursors, bad limits) are checkRunsBadQueries'.
func TestRunsRoutePagesWithCursors(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPWith(t, dbURL, evidence)
				h.do("PUT", "/_ref/connectors/shop", map[string]any{"display_name": "Shop"}, 201)
				for _, id := range []string{"cin_p", "cin_q"} {
					h.do("POST", "/_ref/connections", map[string]any{"connector_id": "shop", "connection_id": id, "source_binding_key": id}, 201)
				}
				start := time.Now().UTC().Add(-5 * time.Hour).Truncate(time.Second)
				type run struct{ id, conn, status, lastAt string }
				var all []run
				var evs []map[string]any
				add := func(id, conn string, at time.Duration, failed bool) {
					typ, status := "run.completed", "succeeded"
					if failed {
						typ, status = "run.failed", "failed"
					}
					for i, e := range []map[string]any{
						{"event_type": "run.started", "occurred_at": start.Add(at).Format(time.RFC3339Nano)},
						{"event_type": typ, "occurred_at": start.Add(at + time.Second).Format(time.RFC3339Nano)},
					} {
						e["run_id"], e["source_kind"], e["source_id"], e["connection_id"] = id, "connector", "shop", conn
						evs = append(evs, e)
						if i == 1 {
							all = append(all, run{id, conn, status, start.Add(at + time.Second).UTC().Format("2006-01-02T15:04:05.000Z")})
						}
					}
				}
				for i := 0; i < 90; i++ {
					add(fmt.Sprintf("r_%02d", i), "cin_p", time.Duration(i/2)*time.Minute, i%3 == 0)
				}
				for i := 0; i < 20; i++ {
					add(fmt.Sprintf("q_%02d", i), "cin_q", time.Duration(i*2)*time.Minute+30*time.Second, false)
				}
				h.do("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)

				sort.Slice(all, func(i, j int) bool {
					if all[i].lastAt != all[j].lastAt {
						return all[i].lastAt > all[j].lastAt
					}
					return all[i].id > all[j].id
				})
				window := len(all) // the read model: the whole history
				if evidence == runs.SourceSpine {
					window = runs.DefaultPageSize // the connector's most recent runs
				}
				want := func(status string, inWindow int) []string {
					ids := []string{}
					n := 0
					for _, r := range all {
						if status != "" && r.status != status {
							continue
						}
						if n++; n > inWindow {
							break
						}
						if r.conn == "cin_p" {
							ids = append(ids, r.id)
						}
					}
					return ids
				}
				wantAll, wantFailed := want("", window), want("failed", window)
				if (evidence == runs.SourceReadModel) != (len(wantAll) == 90) || len(wantAll) <= summary.DefaultRunsLimit {
					t.Fatalf("fixture: %d runs of cin_p listed, want 90 with the read model, fewer (but more than a page) within the spine's window", len(wantAll))
				}

				const base = "/_ref/connections/cin_p/runs"
				two := h.runsPage(base + "?limit=2")
				if !two.HasMore || !reflect.DeepEqual(two.ids(), wantAll[:2]) || two.ConnectionID != "cin_p" {
					t.Fatalf("?limit=2: %v has_more %v, want %v and more", two.ids(), two.HasMore, wantAll[:2])
				}
				first := h.runsPage(base)
				if len(first.Data) != summary.DefaultRunsLimit || !first.HasMore {
					t.Errorf("default page: %d runs has_more %v, want %d and more", len(first.Data), first.HasMore, summary.DefaultRunsLimit)
				}
				// The cursor continues exactly after the last run of its page, at any limit.
				next := h.runsPage(base + "?limit=3&cursor=" + url.QueryEscape(*two.NextCursor))
				if !reflect.DeepEqual(next.ids(), wantAll[2:5]) {
					t.Errorf("page after ?limit=2 = %v, want %v", next.ids(), wantAll[2:5])
				}
				for _, limit := range []int{0, 7, 1000} {
					got, pages := h.walkRuns(base, limit)
					if !reflect.DeepEqual(got, wantAll) {
						t.Errorf("pages of %d: %v, want %v", limit, got, wantAll)
					}
					if limit == 7 && pages != (len(wantAll)+6)/7 {
						t.Errorf("pages of 7: %d pages for %d runs", pages, len(wantAll))
					}
				}
				if got, _ := h.walkRuns(base+"?status=failed", 4); !reflect.DeepEqual(got, wantFailed) {
					t.Errorf("failed runs in pages of 4: %v, want %v", got, wantFailed)
				}

				// A cursor is bound to its connection and status filter (checkRunsBadQueries sends the
				// refused ones): the failed pages' cursor continues the failed list only.
				failed := h.runsPage(base + "?status=failed&limit=2")
				if more := h.runsPage(base + "?status=failed&limit=2&cursor=" + url.QueryEscape(*failed.NextCursor)); !reflect.DeepEqual(more.ids(), wantFailed[2:4]) {
					t.Errorf("second failed page = %v, want %v", more.ids(), wantFailed[2:4])
				}
			})
		})
	}
}

// TestRunsRouteAcceptsEveryFoldStatus: /runs?status= accepts every status of runs.RunStatuses
// (the fold's statuses from the event vocabulary) and lists exactly the runs of that status;
// anything else is a 400 that names them all (checkRunsBadQueries).
func TestRunsRouteAcceptsEveryFoldStatus(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPWith(t, dbURL, evidence)
				h.do("PUT", "/_ref/connectors/shop", map[string]any{"display_name": "Shop"}, 201)
				h.do("POST", "/_ref/connections", map[string]any{"connector_id": "shop", "connection_id": "cin_s"}, 201)
				now := time.Now().UTC()
				byType := map[string]string{runs.StatusSucceeded: "run.completed", runs.StatusFailed: "run.failed",
					runs.StatusCancelled: "run.cancelled", runs.StatusAbandoned: "run.abandoned", runs.StatusInProgress: "run.started"}
				var evs []map[string]any
				want := map[string][]string{}
				for i, status := range runs.RunStatuses() {
					e := map[string]any{"event_type": "run.progress", "run_id": "r_" + status, "source_kind": "connector", "source_id": "shop",
						"connection_id": "cin_s", "occurred_at": now.Add(-time.Duration(i+1) * time.Minute).Format(time.RFC3339Nano)}
					if typ, ok := byType[status]; ok {
						e["event_type"] = typ
					} else if status != runs.StatusUnknown {
						e["status"] = status // rule 3: the latest status of any event
					}
					evs = append(evs, e)
					want[status] = []string{"r_" + status}
				}
				// A started run without terminal event for longer than stale_after is failed.
				evs = append(evs, map[string]any{"event_type": "run.started", "run_id": "r_orphaned", "source_kind": "connector",
					"source_id": "shop", "connection_id": "cin_s", "occurred_at": now.Add(-2 * time.Hour).Format(time.RFC3339Nano)})
				want[runs.StatusFailed] = append(want[runs.StatusFailed], "r_orphaned")
				h.do("POST", "/_ref/spine/events", map[string]any{"events": evs}, 200)

				if len(runs.RunStatuses()) < 14 {
					t.Errorf("RunStatuses = %v: the lease statuses and rejected are missing", runs.RunStatuses())
				}
				for _, status := range runs.RunStatuses() {
					p := h.runsPage("/_ref/connections/cin_s/runs?status=" + status)
					if !reflect.DeepEqual(p.ids(), want[status]) {
						t.Errorf("?status=%s: %v, want %v", status, p.ids(), want[status])
					}
					for _, d := range p.Data {
						if d.Status != status {
							t.Errorf("?status=%s listed %s with status %s", status, d.RunID, d.Status)
						}
					}
				}
			})
		})
	}
}

// TestDiagnosticsShowCarriedEvidence: every candidate run shows the profile key and connection
// id it carried beside the connection's expected key, and a run naming another connection is
// explicit_id_mismatch (SPEC §2.4). The newcomer's mistake — newbank:cin_nb where the manifest
// key is newbank-web — shows as profile_key_mismatch with both keys, and the ingest answer of
// that batch already said so (with the read model; with the spine the report is null).
func TestDiagnosticsShowCarriedEvidence(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPWith(t, dbURL, evidence)
				h.do("PUT", "/_ref/connectors/newbank", map[string]any{"display_name": "New Bank",
					"capabilities": map[string]any{"browser_surface": map[string]any{"profile_key": "newbank-web"}}}, 201)
				for _, id := range []string{"cin_nb", "cin_nb2"} {
					h.do("POST", "/_ref/connections", map[string]any{"connector_id": "newbank", "connection_id": id, "source_binding_key": id}, 201)
				}
				now := time.Now().UTC()
				ev := func(runID string, ago time.Duration, key, conn string) map[string]any {
					e := map[string]any{"event_type": "run.completed", "run_id": runID, "source_kind": "connector", "source_id": "newbank",
						"occurred_at": now.Add(-ago).Format(time.RFC3339Nano)}
					if key != "" {
						e["data"] = map[string]any{"browser_surface": map[string]any{"browser_surface_profile_key": key}}
					}
					if conn != "" {
						e["connection_id"] = conn
					}
					return e
				}
				r := h.do("POST", "/_ref/spine/events", map[string]any{"events": []map[string]any{
					ev("r_newcomer", 6*time.Minute, "newbank:cin_nb", ""),
					ev("r_right", 5*time.Minute, "newbank-web:cin_nb", ""),
					ev("r_named", 4*time.Minute, "", "cin_nb"),
					ev("r_sibling", 3*time.Minute, "", "cin_nb2"),
					ev("r_ghost", 2*time.Minute, "", "cin_ghost"),
					ev("r_none", 1*time.Minute, "", ""),
				}}, 200)
				var keys []string
				for k := range r.obj(t) {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if !reflect.DeepEqual(keys, []string{"accepted", "duplicates", "last_event_seq", "unattributed", "unattributed_examples"}) {
					t.Errorf("ingest answer keys %v", keys)
				}
				var ing struct {
					Unattributed *int                   `json:"unattributed"`
					Examples     []runs.UnattributedRun `json:"unattributed_examples"`
				}
				if err := json.Unmarshal(r.body, &ing); err != nil {
					t.Fatal(err)
				}
				if evidence == runs.SourceSpine {
					if ing.Unattributed != nil || ing.Examples != nil || !strings.Contains(string(r.body), `"unattributed":null,"unattributed_examples":null`) {
						t.Errorf("spine ingest answer %s, want unattributed and unattributed_examples null", r.body)
					}
				} else {
					want := `{"run_id":"r_newcomer","connector_id":"newbank","profile_key":"newbank:cin_nb","connection_id":null,"expected_profile_key":"newbank-web:cin_nb","reason":"no_matching_profile_key"},` +
						`{"run_id":"r_ghost","connector_id":"newbank","profile_key":null,"connection_id":"cin_ghost","expected_profile_key":null,"reason":"unknown_connection"},` +
						`{"run_id":"r_none","connector_id":"newbank","profile_key":null,"connection_id":null,"expected_profile_key":null,"reason":"no_connection_evidence"}`
					if !strings.Contains(string(r.body), `"unattributed":3,"unattributed_examples":[`+want+`]`) {
						t.Errorf("ingest answer %s, want 3 unattributed: %s", r.body, want)
					}
				}

				raw := h.do("GET", "/_ref/connections/cin_nb/diagnostics", nil, 200)
				var d struct {
					ConnectionID       string            `json:"connection_id"`
					ExpectedProfileKey string            `json:"expected_profile_key"`
					Candidates         []json.RawMessage `json:"candidates"`
				}
				if err := json.Unmarshal(raw.body, &d); err != nil {
					t.Fatal(err)
				}
				if d.ConnectionID != "cin_nb" || d.ExpectedProfileKey != "newbank-web:cin_nb" {
					t.Errorf("diagnostics connection_id %q expected_profile_key %q", d.ConnectionID, d.ExpectedProfileKey)
				}
				got := map[string]string{}
				for _, c := range d.Candidates {
					var m map[string]json.RawMessage
					if err := json.Unmarshal(c, &m); err != nil {
						t.Fatal(err)
					}
					var ks []string
					for k := range m {
						ks = append(ks, k)
					}
					sort.Strings(ks)
					if want := []string{"connection_id", "expected_profile_key", "last_at", "matched", "page", "profile_key", "rule", "run_id", "status"}; !reflect.DeepEqual(ks, want) {
						t.Errorf("candidate keys %v, want %v", ks, want)
					}
					var id string
					_ = json.Unmarshal(m["run_id"], &id)
					got[id] = fmt.Sprintf("%s %s key=%s id=%s expected=%s", m["matched"], m["rule"], m["profile_key"], m["connection_id"], m["expected_profile_key"])
				}
				want := map[string]string{
					"r_newcomer": `false "profile_key_mismatch" key="newbank:cin_nb" id=null expected="newbank-web:cin_nb"`,
					"r_right":    `true "profile_key_match" key="newbank-web:cin_nb" id=null expected="newbank-web:cin_nb"`,
					"r_named":    `true "explicit_id_match" key=null id="cin_nb" expected="newbank-web:cin_nb"`,
					"r_sibling":  `false "explicit_id_mismatch" key=null id="cin_nb2" expected="newbank-web:cin_nb"`,
					"r_ghost":    `false "explicit_id_mismatch" key=null id="cin_ghost" expected="newbank-web:cin_nb"`,
					"r_none":     `false "no_connection_evidence" key=null id=null expected="newbank-web:cin_nb"`,
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("candidates:\n got %v\nwant %v", got, want)
				}
			})
		})
	}
}

// TestFleetHealthCounts: GET /_ref/fleet-health counts the visible connections per health state
// and status (every key present), agrees with the overview's items, shares the overview's cache
// entry, and filters by connector. Each health rule of SPEC §4.4 has a connection here.
func TestFleetHealthCounts(t *testing.T) {
	for _, evidence := range feedSources {
		t.Run(string(evidence), func(t *testing.T) {
			dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
				h := startFeedHTTPWith(t, dbURL, evidence)
				day := map[string]any{"refresh_policy": map[string]any{"maximum_staleness_seconds": 86400}}
				h.do("PUT", "/_ref/connectors/shop", map[string]any{"display_name": "Shop", "capabilities": day}, 201)
				h.do("PUT", "/_ref/connectors/plain", map[string]any{"display_name": "Plain"}, 201)
				h.do("PUT", "/_ref/connectors/hidden", map[string]any{"display_name": "Hidden",
					"capabilities": map[string]any{"public_listing": map[string]any{"listed": false}}}, 201)
				conns := map[string][2]string{ // id → connector, status
					"cin_ok": {"shop", "active"}, "cin_fail": {"shop", "active"}, "cin_old": {"shop", "active"},
					"cin_paused": {"shop", "paused"}, "cin_revoked": {"shop", "revoked"}, "cin_draft": {"shop", "draft"},
					"cin_plain_ok": {"plain", "active"}, "cin_wait": {"plain", "active"}, "cin_none": {"plain", "active"},
					"cin_run": {"plain", "active"}, "cin_hidden": {"hidden", "active"},
				}
				for id, c := range conns {
					h.do("POST", "/_ref/connections", map[string]any{"connector_id": c[0], "connection_id": id, "source_binding_key": id, "status": c[1]}, 201)
				}
				now := time.Now().UTC()
				ev := func(id, typ string, ago time.Duration, status string) map[string]any {
					e := map[string]any{"event_type": typ, "run_id": "r_" + id, "connection_id": id, "occurred_at": now.Add(-ago).Format(time.RFC3339Nano)}
					if status != "" {
						e["status"] = status
					}
					return e
				}
				h.do("POST", "/_ref/spine/events", map[string]any{"events": []map[string]any{
					ev("cin_ok", "run.completed", time.Hour, ""), ev("cin_fail", "run.failed", time.Hour, ""),
					ev("cin_old", "run.completed", 72*time.Hour, ""), ev("cin_paused", "run.completed", time.Hour, ""),
					ev("cin_plain_ok", "run.completed", 72*time.Hour, ""), ev("cin_wait", "run.browser_surface_requested", time.Minute, "waiting_for_browser_surface"),
					ev("cin_run", "run.started", time.Minute, ""), ev("cin_draft", "run.failed", time.Minute, ""), ev("cin_hidden", "run.failed", time.Minute, ""),
				}}, 200)

				h.do("DELETE", "/admin/summary-cache", nil, 204)
				miss, hit := h.overviewOutcomes()
				ro, _, _ := h.feed("")
				h.wantCache(ro, miss)
				r := h.do("GET", "/_ref/fleet-health", nil, 200)
				h.wantCache(r, hit)
				var keys []string
				for k := range r.obj(t) {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if !reflect.DeepEqual(keys, []string{"by_health", "by_status", "connections", "connector_id", "evidence", "object"}) {
					t.Errorf("fleet-health keys %v", keys)
				}
				var fh struct {
					Object      string         `json:"object"`
					ConnectorID *string        `json:"connector_id"`
					Evidence    string         `json:"evidence"`
					Connections int            `json:"connections"`
					ByHealth    map[string]int `json:"by_health"`
					ByStatus    map[string]int `json:"by_status"`
				}
				if err := json.Unmarshal(r.body, &fh); err != nil {
					t.Fatal(err)
				}
				wantHealth := map[string]int{"healthy": 2, "syncing": 1, "failing": 1, "stale": 1, "unknown": 2, "paused": 1, "revoked": 1}
				wantEvidence := "read_model"
				if evidence == runs.SourceSpine {
					wantHealth = map[string]int{"healthy": 0, "syncing": 0, "failing": 0, "stale": 0, "unknown": 7, "paused": 1, "revoked": 1}
					wantEvidence = "shallow"
				}
				if fh.Object != "fleet_health" || fh.ConnectorID != nil || fh.Evidence != wantEvidence || fh.Connections != 9 ||
					!reflect.DeepEqual(fh.ByHealth, wantHealth) || !reflect.DeepEqual(fh.ByStatus, map[string]int{"active": 7, "paused": 1, "revoked": 1}) {
					t.Errorf("fleet-health %s, want 9 connections, by_health %v, evidence %s", r.body, wantHealth, wantEvidence)
				}

				// The same counts as the overview's items, and each health rule on its row.
				var env struct {
					Data []struct {
						ConnectionID string         `json:"connection_id"`
						Health       summary.Health `json:"health"`
					} `json:"data"`
				}
				if err := json.Unmarshal(ro.body, &env); err != nil {
					t.Fatal(err)
				}
				counted := map[string]int{}
				rows := map[string]string{}
				for _, it := range env.Data {
					counted[it.Health.State]++
					rows[it.ConnectionID] = it.Health.State + "/" + it.Health.Reason
				}
				for s, n := range fh.ByHealth {
					if counted[s] != n {
						t.Errorf("fleet-health %s = %d, the overview has %d", s, n, counted[s])
					}
				}
				if evidence == runs.SourceReadModel {
					wantRows := map[string]string{"cin_ok": "healthy/fresh", "cin_fail": "failing/unknown_failure", "cin_old": "stale/max_staleness_exceeded",
						"cin_paused": "paused/connection_paused", "cin_revoked": "revoked/connection_revoked", "cin_plain_ok": "healthy/last_run_succeeded",
						"cin_wait": "unknown/last_run_not_terminal", "cin_none": "unknown/no_run_evidence", "cin_run": "syncing/run_in_progress"}
					if !reflect.DeepEqual(rows, wantRows) {
						t.Errorf("overview health:\n got %v\nwant %v", rows, wantRows)
					}
				}

				p := h.do("GET", "/_ref/fleet-health?connector_id=plain", nil, 200)
				if err := json.Unmarshal(p.body, &fh); err != nil {
					t.Fatal(err)
				}
				if fh.ConnectorID == nil || *fh.ConnectorID != "plain" || fh.Connections != 4 || fh.ByStatus["active"] != 4 || fh.ByStatus["revoked"] != 0 {
					t.Errorf("fleet-health of plain: %s", p.body)
				}
			})
		})
	}
}

// checkRunsBadQueries (a behaviour of TestFeedHTTP, which sends invalid requests on purpose):
// the runs route and the fleet counts refuse bad queries with a 400 naming the parameter. A runs
// cursor opens only for the connection and status filter it was made for, and any altered byte
// or character is refused; an overview cursor is no runs cursor; a status outside
// runs.RunStatuses is refused with a message that names them all.
func (h *feedHTTP) checkRunsBadQueries() {
	t := h.t
	const base = "/_ref/connections/cin_amz_a/runs"
	key := runs.RunKey{LastAt: "2026-11-20T08:00:00.000Z", RunID: "r_a"}
	cur := summary.EncodeRunsCursor(key, summary.RunsQuery{ConnectionID: "cin_amz_a"})
	failed := summary.EncodeRunsCursor(key, summary.RunsQuery{ConnectionID: "cin_amz_a", Status: "failed"})
	h.runsPage(base + "?cursor=" + url.QueryEscape(cur)) // the unaltered cursor opens
	h.runsPage(base + "?status=failed&cursor=" + url.QueryEscape(failed))
	h.wantError("/_ref/connections/cin_amz_b/runs?cursor="+url.QueryEscape(cur), "cursor")
	h.wantError(base+"?status=failed&cursor="+url.QueryEscape(cur), "cursor")
	h.wantError(base+"?cursor="+url.QueryEscape(failed), "cursor")
	h.wantError(base+"?status=succeeded&cursor="+url.QueryEscape(failed), "cursor")
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		h.wantError(base+"?cursor="+url.QueryEscape(base64.RawURLEncoding.EncodeToString(bad)), "cursor")
	}
	for _, bad := range []string{"", "x", cur[:len(cur)-1], cur + "A", strings.ToUpper(cur), h.amazonCursor(),
		summary.EncodeCursor(catalog.Key{ConnectorID: "amazon", CreatedAt: "2026-01-01T00:00:00.000Z", ConnectionID: "cin_amz_a"}, summary.ListQuery{Pipeline: summary.PipelineOverview})} {
		h.wantError(base+"?cursor="+url.QueryEscape(bad), "cursor")
	}
	for q, field := range map[string]string{"?limit=0": "limit", "?limit=1001": "limit", "?limit=x": "limit", "?bogus=1": "bogus",
		"?status=failed&status=failed": "status", "?limit=2&limit=3": "limit", "?status=started": "status", "?status=": "status",
		"?status=bogus": "status"} {
		h.wantError(base+q, field)
	}
	r := h.call("GET", base+"?status=bogus", nil)
	for _, s := range runs.RunStatuses() {
		if !strings.Contains(string(r.body), s) {
			t.Errorf("?status=bogus: %s, want the message to name %s", r.body, s)
		}
	}
	h.wantError("/_ref/fleet-health?connector_id=Not%20An%20Id", "connector_id")
	h.wantError("/_ref/fleet-health?connector_id=amazon&connector_id=chase", "connector_id")
	h.wantError("/_ref/fleet-health?include=counts", "include")
}
