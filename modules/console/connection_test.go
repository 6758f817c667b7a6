package console

import (
	"testing"
	"time"

	"connsum/modules/runs"
)

func TestDayBarsAndChart(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	bars := dayBars([]runs.DayOutcomes{
		{Day: "2026-11-20", ByStatus: map[string]int{"succeeded": 3, "failed": 1, "surface_failed": 1, "in_progress": 1}},
		{Day: "2026-10-22", ByStatus: map[string]int{"succeeded": 2}},
		{Day: "2026-10-01", ByStatus: map[string]int{"succeeded": 9}}, // before the window
	}, now)
	if len(bars) != ChartDays || bars[0].Day != "2026-10-22" || bars[ChartDays-1].Day != "2026-11-20" {
		t.Fatalf("%d bars from %s to %s, want 30 ending today", len(bars), bars[0].Day, bars[len(bars)-1].Day)
	}
	if b := bars[ChartDays-1]; b.Succeeded != 3 || b.Failed != 2 || b.Other != 1 {
		t.Errorf("today = %+v, want 3 succeeded, 2 failed (surface failures count), 1 other", b)
	}
	if bars[0].Succeeded != 2 {
		t.Errorf("first day = %+v", bars[0])
	}
	c := chartOf(bars)
	if c == nil || c.Max != 6 || len(c.Bars) != ChartDays {
		t.Fatalf("chart = %+v", c)
	}
	today := c.Bars[ChartDays-1]
	if today.Ok.H+today.Bad.H+today.Other.H != chartHeight || today.Ok.Y+today.Ok.H != chartHeight || today.Other.Y != 0 {
		t.Errorf("the busiest day does not fill the chart from the bottom: %+v", today)
	}
	if chartOf(dayBars(nil, now)) != nil {
		t.Error("a chart without runs")
	}
	if got := humanSeconds(86400); got != "24 h" {
		t.Errorf("humanSeconds(86400) = %q", got)
	}
	if got := humanSeconds(172800); got != "2 days" {
		t.Errorf("humanSeconds(172800) = %q", got)
	}
}
