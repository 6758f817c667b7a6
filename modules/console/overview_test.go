package console

import (
	"context"
	"strings"
	"testing"
	"time"

	"connsum/modules/runs"
	"connsum/modules/summary"
)

// TestRenderRowIsOneOverviewRow: one feed item renders as one row, found by its connection id,
// so a live update can replace it in place.
func TestRenderRowIsOneOverviewRow(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	p, err := NewPages(nil, func() time.Time { return now }, runs.Shallow{})
	if err != nil {
		t.Fatal(err)
	}
	reason := "login_required"
	it := summary.Item{ConnectionID: "cin_a", DisplayName: "Gmail", ConnectorDisplayName: "Gmail", SourceKind: "account",
		Health:  summary.Health{State: summary.HealthFailing, Reason: reason},
		LastRun: &runs.Summary{RunID: "r1", Status: runs.StatusFailed, LastAt: "2026-11-20T11:00:00.000Z", FailureReason: &reason}}
	html, err := p.RenderRow(context.Background(), it)
	if err != nil {
		t.Fatal(err)
	}
	s := string(html)
	if strings.Count(s, "<tr ") != 1 || !strings.Contains(s, `data-connection-id="cin_a"`) {
		t.Errorf("not one row of cin_a:\n%s", s)
	}
	for _, want := range []string{"The site asks to log in again.", "Log in again in the connector", "1 h ago"} {
		if !strings.Contains(s, want) {
			t.Errorf("row lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "Gmail ·") {
		t.Error(`the row repeats the connector's name ("Gmail Gmail")`)
	}
}

func TestOverviewPageOrder(t *testing.T) {
	var items []summary.Item
	for _, c := range [][3]string{{"c1", "b", "healthy"}, {"c2", "a", "revoked"}, {"c3", "Z", "failing"}, {"c4", "a", "failing"},
		{"c5", "m", "paused"}, {"c6", "k", "unknown"}, {"c7", "s", "syncing"}, {"c8", "q", "stale"}} {
		items = append(items, summary.Item{ConnectionID: c[0], DisplayName: c[1], Health: summary.Health{State: c[2]}})
	}
	page, n, _, next, prev := OverviewPage(items, OverviewQuery{}, 3)
	ids := func(list []summary.Item) (s string) {
		for _, it := range list {
			s += it.ConnectionID + " "
		}
		return s
	}
	if ids(page) != "c4 c3 c8 " || n != 8 || next == nil || prev != nil {
		t.Fatalf("first page %s (n %d, next %v, prev %v)", ids(page), n, next, prev)
	}
	page, _, off, next, prev := OverviewPage(items, OverviewQuery{After: next}, 3)
	if ids(page) != "c7 c6 c1 " || off != 3 || next == nil || prev == nil {
		t.Fatalf("second page %s", ids(page))
	}
	last, _, _, end, _ := OverviewPage(items, OverviewQuery{After: next}, 3)
	if ids(last) != "c5 c2 " || end != nil {
		t.Fatalf("last page %s, next %v", ids(last), end)
	}
	back, _, _, _, first := OverviewPage(items, OverviewQuery{Before: prev}, 3)
	if ids(back) != "c4 c3 c8 " || first != nil {
		t.Fatalf("previous of the second page %s (prev %v)", ids(back), first)
	}
}
