package summary_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

const amazonManifest = `{"display_name":"Amazon","version":"1.4.0","streams":[{"name":"orders"},{"name":"returns"}],
	"capabilities":{"browser_surface":{"profile_key":"amazon-shopping"},"refresh_policy":{"maximum_staleness_seconds":86400}}}`

// seedFeed builds the demo-like catalogue: Amazon siblings (one paused) and a draft shell, a
// revoked Chase connection, Gmail with one active connection and a draft, and an unlisted
// connector. Runs are attributed by profile key (Amazon) and explicit ids (Gmail).
func seedFeed(f *sumFixture) {
	f.connector("amazon", amazonManifest)
	f.connector("chase", `{"display_name":"Chase","version":"2.0.0"}`)
	f.connector("gmail", `{"display_name":"Gmail","streams":[{"name":"messages"}]}`)
	f.connector("hidden", `{"display_name":"Hidden","capabilities":{"public_listing":{"listed":false}}}`)
	f.connection("amazon", "cin_amz_a", catalog.StatusActive)
	f.connection("amazon", "cin_amz_b", catalog.StatusPaused)
	f.connection("amazon", "cin_amz_shell", catalog.StatusDraft)
	f.connection("chase", "cin_chase_1", catalog.StatusRevoked)
	f.connection("gmail", "cin_gmail_1", catalog.StatusActive)
	f.connection("gmail", "cin_gmail_draft", catalog.StatusDraft)
	f.connection("hidden", "cin_hidden_1", catalog.StatusActive)
	f.retained("cin_amz_a", "returns", 5, 500, 0)
	f.retained("cin_amz_a", "orders", 100, 5000, 7)
	f.retained("cin_gmail_1", "messages", 40, 4000, 1000)
	var evs []sumEv
	evs = append(evs, sumRun("amazon", "r_a_ok", "amazon-shopping:cin_amz_a", 0, "run.completed", nil)...)
	evs = append(evs, sumRun("amazon", "r_b_ok", "amazon-shopping:cin_amz_b", time.Hour, "run.completed", nil)...)
	evs = append(evs, sumRun("amazon", "r_shell_fail", "amazon-shopping:cin_amz_shell", 2*time.Hour, "run.failed", nil)...)
	evs = append(evs, sumRun("amazon", "r_bare_a", "cin_amz_a", 3*time.Hour, "run.failed", nil)...)
	evs = append(evs, sumRun("gmail", "r_g_ok", "", time.Hour, "run.completed", sumEv{"connection_id": "cin_gmail_1"})...)
	evs = append(evs, sumRun("gmail", "r_g_fail", "", 2*time.Hour, "run.failed", sumEv{"data": map[string]any{"connector_instance_id": "cin_gmail_1"}})...)
	evs = append(evs, sumRun("gmail", "r_g_draft", "", 3*time.Hour, "run.failed", sumEv{"connection_id": "cin_gmail_draft"})...)
	evs = append(evs, sumRun("chase", "r_c_ok", "", time.Hour, "run.completed", sumEv{"connection_id": "cin_chase_1"})...)
	evs = append(evs, sumRun("hidden", "r_h_ok", "", time.Hour, "run.completed", sumEv{"connection_id": "cin_hidden_1"})...)
	f.add(evs...)
	f.clock.Set(sumT0.Add(6 * time.Hour))
}

func byID(items []summary.Item) map[string]summary.Item {
	m := map[string]summary.Item{}
	for _, it := range items {
		m[it.ConnectionID] = it
	}
	return m
}

func TestOverviewIsShallowAndScopedReadIsDeep(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedFeed(f)
		p := f.projector(0, nil)

		over, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview})
		if err != nil {
			t.Fatal(err)
		}
		wantOrder := []string{"cin_amz_a", "cin_amz_b", "cin_chase_1", "cin_gmail_1"}
		if got := itemIDs(over.Items); !reflect.DeepEqual(got, wantOrder) {
			t.Fatalf("overview rows = %v, want %v (no drafts, no unlisted connector)", got, wantOrder)
		}
		if over.HasMore || over.NextCursor != nil {
			t.Error("overview without limit has more")
		}
		for _, it := range over.Items {
			raw := mustJSON(t, it)
			if it.Evidence != runs.EvidenceShallow || it.LastRun != nil || it.LastSuccessfulRun != nil {
				t.Errorf("%s: evidence %s last_run %s, want shallow and null", it.ConnectionID, it.Evidence, lastRunID(it.LastRun))
			}
			if !strings.Contains(raw, `"freshness":{"status":"unknown"}`) || !strings.Contains(raw, `"last_run":null,"last_successful_run":null`) {
				t.Errorf("%s: shallow item JSON %s", it.ConnectionID, raw)
			}
		}
		items := byID(over.Items)
		if h := items["cin_amz_a"].Health; h.State != "unknown" || h.Reason != "no_run_evidence" {
			t.Errorf("shallow active health = %+v, want unknown/no_run_evidence", h)
		}
		if h := items["cin_amz_b"].Health; h.State != "paused" {
			t.Errorf("paused health = %+v", h)
		}
		revoked := items["cin_chase_1"]
		if revoked.Status != catalog.StatusRevoked || revoked.RevokedAt == nil || *revoked.RevokedAt == "" || revoked.Health.State != "revoked" {
			t.Errorf("revoked row: status %s revoked_at %v health %+v", revoked.Status, revoked.RevokedAt, revoked.Health)
		}
		if items["cin_amz_a"].RevokedAt != nil {
			t.Error("active row has revoked_at")
		}

		// The scoped read of the same connection carries run evidence.
		sc, err := p.Scoped(f.ctx, "cin_amz_a", false)
		if err != nil {
			t.Fatal(err)
		}
		if len(sc.Items) != 1 {
			t.Fatalf("scoped read: %d items", len(sc.Items))
		}
		a := sc.Items[0]
		if a.Evidence != runs.EvidenceDeep || lastRunID(a.LastRun) != "r_a_ok" || lastRunID(a.LastSuccessfulRun) != "r_a_ok" {
			t.Errorf("scoped cin_amz_a: evidence %s last_run %s last_successful_run %s, want deep r_a_ok r_a_ok",
				a.Evidence, lastRunID(a.LastRun), lastRunID(a.LastSuccessfulRun))
		}
		if a.Freshness.Status != "current" || a.Freshness.CapturedAt != a.LastRun.LastAt || a.Health.State != "healthy" {
			t.Errorf("scoped cin_amz_a freshness %+v health %+v, want current/healthy", a.Freshness, a.Health)
		}
		gm, err := p.Scoped(f.ctx, "cin_gmail_1", false)
		if err != nil {
			t.Fatal(err)
		}
		if g := gm.Items[0]; lastRunID(g.LastRun) != "r_g_fail" || lastRunID(g.LastSuccessfulRun) != "r_g_ok" ||
			g.Health.State != "failing" || g.Health.Reason != "login_required" {
			t.Errorf("scoped cin_gmail_1: last_run %s success %s health %+v, want r_g_fail r_g_ok failing/login_required",
				lastRunID(g.LastRun), lastRunID(g.LastSuccessfulRun), g.Health)
		}

		// A scoped item equals the same connection's item in the deep full list.
		deep, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineDeep})
		if err != nil {
			t.Fatal(err)
		}
		if got := itemIDs(deep.Items); !reflect.DeepEqual(got, wantOrder) {
			t.Fatalf("deep rows = %v, want %v", got, wantOrder)
		}
		for _, it := range deep.Items {
			if it.Evidence != runs.EvidenceDeep {
				t.Errorf("deep %s evidence %s", it.ConnectionID, it.Evidence)
			}
			one, err := p.Scoped(f.ctx, it.ConnectionID, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(one.Items) != 1 {
				t.Errorf("scoped %s: %d items", it.ConnectionID, len(one.Items))
				continue
			}
			if s, d := mustJSON(t, one.Items[0]), mustJSON(t, it); s != d {
				t.Errorf("scoped item differs from the deep list item:\nscoped %s\ndeep   %s", s, d)
			}
			// Retained figures are identical on the overview path (snapshot) and the scoped path.
			ov := items[it.ConnectionID]
			if rs, ro := retainedJSON(t, one.Items[0]), retainedJSON(t, ov); rs != ro {
				t.Errorf("%s retained differs:\nscoped   %s\noverview %s", it.ConnectionID, rs, ro)
			}
		}
		// Retained values themselves (SPEC §1.5, §4.5).
		ra := items["cin_amz_a"]
		if ra.TotalRecords != 105 || ra.StreamCount != 2 || len(ra.StreamRecords) != 2 ||
			ra.StreamRecords[0].Stream != "orders" || ra.StreamRecords[1].Stream != "returns" ||
			ra.StreamRecords[0].TotalBytes != 5000+10+7 || ra.RetainedBytes == nil || ra.RetainedBytes.TotalBytes != 5000+10+7+500+10 ||
			ra.TotalRetainedBytes == nil || *ra.TotalRetainedBytes != ra.RetainedBytes.TotalBytes {
			t.Errorf("cin_amz_a retained = %s", retainedJSON(t, ra))
		}
		if rb := items["cin_amz_b"]; rb.RetainedBytes != nil || rb.TotalRetainedBytes != nil || rb.TotalRecords != 0 || rb.StreamCount != 0 {
			t.Errorf("connection without rows: %s", retainedJSON(t, rb))
		}
	})
}

func retainedJSON(t *testing.T, it summary.Item) string {
	return mustJSON(t, map[string]any{"total_records": it.TotalRecords, "stream_count": it.StreamCount, "stream_records": it.StreamRecords,
		"retained_bytes": it.RetainedBytes, "total_retained_bytes": it.TotalRetainedBytes})
}

func TestScopedReadResolution(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedFeed(f)
		p := f.projector(0, nil)
		cases := []struct{ id, want string }{
			{"cin_amz_a", "cin_amz_a"},
			{"cin_chase_1", "cin_chase_1"}, // revoked stays visible
			{"cin_nope", ""},
			{"cin_amz_shell", ""},    // draft
			{"cin_hidden_1", ""},     // unlisted connector
			{"hidden", ""},           // unlisted connector id
			{"chase", "cin_chase_1"}, // connector with exactly one visible connection
			{"gmail", "cin_gmail_1"}, // one visible connection plus a draft
			{"amazon", ""},           // two visible connections
			{"nope", ""},
		}
		for _, c := range cases {
			res, err := p.Scoped(f.ctx, c.id, false)
			if err != nil {
				t.Fatalf("scoped %s: %v", c.id, err)
			}
			got := ""
			if len(res.Items) > 1 {
				t.Errorf("scoped %s: %d items", c.id, len(res.Items))
			}
			if len(res.Items) == 1 {
				got = res.Items[0].ConnectionID
				if res.Items[0].Evidence != runs.EvidenceDeep {
					t.Errorf("scoped %s: evidence %s", c.id, res.Items[0].Evidence)
				}
			}
			if got != c.want {
				t.Errorf("scoped %q = %q, want %q", c.id, got, c.want)
			}
			if res.Items == nil || res.HasMore {
				t.Errorf("scoped %q: items nil=%v has_more=%v", c.id, res.Items == nil, res.HasMore)
			}
		}
		// A draft's run never reaches its visible sibling.
		res, err := p.Scoped(f.ctx, "gmail", false)
		if err != nil {
			t.Fatal(err)
		}
		if lastRunID(res.Items[0].LastRun) != "r_g_fail" {
			t.Errorf("gmail scoped last_run = %s, want r_g_fail (never the draft's newer r_g_draft)", lastRunID(res.Items[0].LastRun))
		}
	})
}

// TestDeepAttributionThroughProjector: sibling browser connections get their own runs in the
// deep full list, also when the sibling's (or the draft shell's) run is newer.
func TestDeepAttributionThroughProjector(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedFeed(f)
		deep, err := f.projector(0, nil).List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineDeep})
		if err != nil {
			t.Fatal(err)
		}
		items := byID(deep.Items)
		want := map[string][2]string{
			"cin_amz_a":   {"r_a_ok", "r_a_ok"},
			"cin_amz_b":   {"r_b_ok", "r_b_ok"},
			"cin_chase_1": {"r_c_ok", "r_c_ok"},
			"cin_gmail_1": {"r_g_fail", "r_g_ok"},
		}
		for id, w := range want {
			it := items[id]
			if lastRunID(it.LastRun) != w[0] || lastRunID(it.LastSuccessfulRun) != w[1] {
				t.Errorf("%s: last_run %s last_successful_run %s, want %s %s", id, lastRunID(it.LastRun), lastRunID(it.LastSuccessfulRun), w[0], w[1])
			}
		}
		if a := items["cin_amz_a"]; a.LastRun != nil && a.LastRun.BrowserSurfaceProfileKey != nil &&
			*a.LastRun.BrowserSurfaceProfileKey != "amazon-shopping:cin_amz_a" {
			t.Errorf("cin_amz_a shows a run keyed %s", *a.LastRun.BrowserSurfaceProfileKey)
		}
		if h := items["cin_chase_1"].Health; h.State != "revoked" {
			t.Errorf("revoked connection with a fresh success: health %+v, want revoked first", h)
		}
	})
}

func TestOverviewKeysetPagination(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		for _, c := range []string{"alpha", "beta", "gamma"} {
			f.connector(c, fmt.Sprintf(`{"display_name":%q}`, strings.ToUpper(c)))
		}
		// Created out of feed order; two beta rows share created_at (connection_id decides).
		create := func(connector, id, status string, at time.Duration) {
			f.clock.Set(sumT0.Add(at))
			f.connection(connector, id, status)
		}
		create("gamma", "cin_g1", catalog.StatusActive, 1*time.Hour)
		create("beta", "cin_b_zz", catalog.StatusActive, 2*time.Hour)
		create("alpha", "cin_a2", catalog.StatusActive, 5*time.Hour)
		create("beta", "cin_b_draft", catalog.StatusDraft, 2*time.Hour)
		create("alpha", "cin_a1", catalog.StatusRevoked, 3*time.Hour)
		create("beta", "cin_b_aa", catalog.StatusActive, 2*time.Hour)
		create("beta", "cin_b_early", catalog.StatusPaused, 0)
		create("alpha", "cin_a3", catalog.StatusActive, 4*time.Hour)
		create("gamma", "cin_g0", catalog.StatusActive, 1*time.Hour)
		all := []string{"cin_a1", "cin_a3", "cin_a2", "cin_b_early", "cin_b_aa", "cin_b_zz", "cin_g0", "cin_g1"}
		p := f.projector(0, nil)

		collect := func(q summary.ListQuery) []string {
			t.Helper()
			var ids []string
			for page := 0; ; page++ {
				if page > 20 {
					t.Fatal("pagination does not end")
				}
				res, err := p.List(f.ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Items) > q.Limit {
					t.Fatalf("page of %d items for limit %d", len(res.Items), q.Limit)
				}
				ids = append(ids, itemIDs(res.Items)...)
				if !res.HasMore {
					if res.NextCursor != nil {
						t.Error("last page has a next_cursor")
					}
					return ids
				}
				if res.NextCursor == nil || len(res.Items) != q.Limit {
					t.Fatalf("has_more with cursor %v and %d items", res.NextCursor, len(res.Items))
				}
				after, ok := summary.DecodeCursor(*res.NextCursor, q)
				if !ok {
					t.Fatalf("next_cursor %q does not decode for its own query", *res.NextCursor)
				}
				q.After = after
			}
		}
		for _, limit := range []int{1, 2, 3, 7, 8, 1000} {
			got := collect(summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: limit})
			if !reflect.DeepEqual(got, all) {
				t.Errorf("limit %d: rows %v, want %v", limit, got, all)
			}
		}
		beta := []string{"cin_b_early", "cin_b_aa", "cin_b_zz"}
		for _, limit := range []int{1, 2, 5} {
			got := collect(summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: limit, ConnectorID: "beta"})
			if !reflect.DeepEqual(got, beta) {
				t.Errorf("beta limit %d: rows %v, want %v", limit, got, beta)
			}
		}
		if got := collect(summary.ListQuery{Pipeline: summary.PipelineDeep, Limit: 3}); !reflect.DeepEqual(got, all) {
			t.Errorf("deep pages: %v", got)
		}
		res, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview, ConnectorID: "beta"})
		if err != nil {
			t.Fatal(err)
		}
		if got := itemIDs(res.Items); !reflect.DeepEqual(got, beta) || res.HasMore {
			t.Errorf("connector_id filter: %v has_more %v, want %v", got, res.HasMore, beta)
		}
		none, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview, ConnectorID: "nope"})
		if err != nil {
			t.Fatal(err)
		}
		if len(none.Items) != 0 {
			t.Errorf("unknown connector_id: %v", itemIDs(none.Items))
		}

		// A cursor remembers its filter.
		first, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: 1, ConnectorID: "beta"})
		if err != nil {
			t.Fatal(err)
		}
		cur := *first.NextCursor
		for _, other := range []summary.ListQuery{
			{Pipeline: summary.PipelineOverview, Limit: 1, ConnectorID: "alpha"},
			{Pipeline: summary.PipelineOverview, Limit: 1},
			{Pipeline: summary.PipelineDeep, Limit: 1, ConnectorID: "beta"},
		} {
			if _, ok := summary.DecodeCursor(cur, other); ok {
				t.Errorf("a beta cursor decodes for %+v", other)
			}
		}
		for _, bad := range []string{"", "x", "!!!", "eyJrIjp7fX0"} {
			if _, ok := summary.DecodeCursor(bad, summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: 1}); ok {
				t.Errorf("garbage cursor %q decodes", bad)
			}
		}
	})
}

// TestItemJSONShape: every key of SPEC §2.3 is present, in both the shallow and deep item.
func TestItemJSONShape(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newSumFixture(t, db)
		seedFeed(f)
		p := f.projector(0, nil)
		over, err := p.List(f.ctx, summary.ListQuery{Pipeline: summary.PipelineOverview})
		if err != nil {
			t.Fatal(err)
		}
		deep, err := p.Scoped(f.ctx, "cin_amz_a", false)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"connection_id", "connector_display_name", "connector_id", "connector_instance_id", "created_at",
			"display_name", "evidence", "freshness", "health", "last_run", "last_successful_run", "manifest_version", "object",
			"refresh_policy", "retained_bytes", "revoked_at", "source_kind", "status", "stream_count", "stream_records",
			"streams", "total_records", "total_retained_bytes"}
		for _, it := range append(over.Items, deep.Items...) {
			var m map[string]json.RawMessage
			if err := json.Unmarshal([]byte(mustJSON(t, it)), &m); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if !reflect.DeepEqual(keys, want) {
				t.Errorf("%s keys = %v", it.ConnectionID, keys)
			}
			if string(m["object"]) != `"connector_summary"` || string(m["connector_instance_id"]) != string(m["connection_id"]) {
				t.Errorf("%s: object %s instance id %s", it.ConnectionID, m["object"], m["connector_instance_id"])
			}
		}
		a := byID(over.Items)["cin_amz_a"]
		if a.ConnectorDisplayName != "Amazon" || a.DisplayName != "Account cin_amz_a" || a.ManifestVersion == nil || *a.ManifestVersion != "1.4.0" ||
			!reflect.DeepEqual(a.Streams, []string{"orders", "returns"}) || string(a.RefreshPolicy) != `{"maximum_staleness_seconds":86400}` {
			t.Errorf("cin_amz_a manifest fields: %s", mustJSON(t, a))
		}
		c := byID(over.Items)["cin_chase_1"]
		if string(c.RefreshPolicy) != "null" || c.Streams == nil || len(c.Streams) != 0 {
			t.Errorf("chase without refresh policy/streams: refresh_policy %s streams %v", c.RefreshPolicy, c.Streams)
		}
	})
}
