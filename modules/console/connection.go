package console

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// HistoryPageSize is how many runs one page of a connection's history shows.
const HistoryPageSize = 20

// ChartDays is how many days the outcome chart of a connection covers.
const ChartDays = 30

// ConnectionData is the data of /dashboard/connections/{id}.
type ConnectionData struct {
	Diagnostics *summary.Diagnostics `json:"diagnostics"`
	Connection  *catalog.Connection  `json:"connection"`
	// Runs is this page of the connection's run history, newest first.
	Runs []runs.Summary `json:"runs"`
	// Next continues the history after the last run of Runs; empty on the last page.
	Next string `json:"next,omitempty"`
	// TotalRuns is the number of runs attributed to the connection (-1 when not counted:
	// runs.evidence=spine).
	TotalRuns int `json:"total_runs"`
	// Days are the outcomes per day of the last ChartDays days (empty when not read).
	Days []DayBar `json:"days"`

	// Since is where the page's live card streams from: the revision read before the page's reads
	// and the moment (an event id of the stream, live.Position).
	Since       string   `json:"-"`
	Reason      Reason   `json:"-"`
	Expects     []string `json:"-"`
	Matched     int      `json:"-"`
	Paged       bool     `json:"-"`
	Chart       *Chart   `json:"-"`
	FocusRunID  string   `json:"-"`
	LastRunWhy  Reason   `json:"-"`
	HistoryNote string   `json:"-"`
}

// DayBar is one day of the outcome chart.
type DayBar struct {
	Day       string `json:"day"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Other     int    `json:"other"`
}

// Chart is the outcome chart drawn as SVG (presentation attributes only: the CSP allows no
// inline style).
type Chart struct {
	Width, Height int
	Bars          []ChartBar
	Max           int
	First, Last   string
}

// ChartBar is one day's stacked bar.
type ChartBar struct {
	X, W                int
	Ok, Bad, Other      ChartSeg
	Title               string
	Day                 string
	Succeeded, Failures int
}

// ChartSeg is one coloured part of a bar.
type ChartSeg struct{ Y, H int }

const chartHeight = 64

// dayBars lays the per-day outcomes out over the last ChartDays days ending today (UTC).
func dayBars(days []runs.DayOutcomes, now time.Time) []DayBar {
	byDay := map[string]runs.DayOutcomes{}
	for _, d := range days {
		byDay[d.Day] = d
	}
	out := make([]DayBar, 0, ChartDays)
	today := now.UTC().Truncate(24 * time.Hour)
	for i := ChartDays - 1; i >= 0; i-- {
		day := today.AddDate(0, 0, -i).Format("2006-01-02")
		b := DayBar{Day: day}
		for status, n := range byDay[day].ByStatus {
			switch status {
			case runs.StatusSucceeded:
				b.Succeeded += n
			case runs.StatusFailed, runs.StatusSurfaceFailed, runs.StatusAbandoned:
				b.Failed += n
			default:
				b.Other += n
			}
		}
		out = append(out, b)
	}
	return out
}

// chartOf scales the bars to the chart's height.
func chartOf(bars []DayBar) *Chart {
	const w, gap = 16, 4
	c := &Chart{Width: len(bars) * (w + gap), Height: chartHeight}
	for _, b := range bars {
		c.Max = max(c.Max, b.Succeeded+b.Failed+b.Other)
	}
	if c.Max == 0 || len(bars) == 0 {
		return nil
	}
	c.First, c.Last = bars[0].Day, bars[len(bars)-1].Day
	// Segments are cut at the scaled running totals, so a day's bar is as tall as its total
	// (no rounding lost per segment); a segment of one run keeps at least 2 px.
	top := func(cum int) int { return chartHeight - cum*chartHeight/c.Max }
	for i, b := range bars {
		bar := ChartBar{X: i * (w + gap), W: w, Day: b.Day, Succeeded: b.Succeeded, Failures: b.Failed}
		y := chartHeight
		seg := func(cum, n int) ChartSeg {
			if n == 0 {
				return ChartSeg{Y: y}
			}
			t := min(top(cum), y-2)
			s := ChartSeg{Y: max(0, t), H: y - max(0, t)}
			y = s.Y
			return s
		}
		bar.Ok = seg(b.Succeeded, b.Succeeded)
		bar.Bad = seg(b.Succeeded+b.Failed, b.Failed)
		bar.Other = seg(b.Succeeded+b.Failed+b.Other, b.Other)
		bar.Title = fmt.Sprintf("%s: %d succeeded, %d failed, %d other", b.Day, b.Succeeded, b.Failed, b.Other)
		c.Bars = append(c.Bars, bar)
	}
	return c
}

// expectations say in plain words which runs the connection takes and how its age is judged.
func expectations(e *catalog.Entry, expectedKey string) []string {
	out := []string{
		"Browser runs belong here when they carry the profile key " + expectedKey + "; runs without a profile key when they name this connection's id.",
	}
	if s := e.Connector.MaxStalenessSeconds(); s > 0 {
		out = append(out, "It counts as stale when its last successful sync is older than "+humanSeconds(s)+" (the connector's maximum_staleness_seconds, "+fmt.Sprint(s)+").")
	} else {
		out = append(out, "The connector sets no staleness limit: a succeeded last sync counts as healthy whatever its age.")
	}
	return out
}

// humanSeconds says a staleness limit in the largest whole unit: "24 h", "90 min", "45 s".
func humanSeconds(s int64) string {
	switch {
	case s%86400 == 0 && s >= 2*86400:
		return fmt.Sprintf("%d days", s/86400)
	case s%3600 == 0:
		return fmt.Sprintf("%d h", s/3600)
	case s%60 == 0:
		return fmt.Sprintf("%d min", s/60)
	}
	return fmt.Sprintf("%d s", s)
}

func (p *Pages) connection(c *fiber.Ctx) error {
	start := time.Now()
	ctx := c.UserContext()
	id := c.Params("id")
	e, err := p.feed.Connection(ctx, id)
	if err != nil {
		return summary.ConnectionHTTPError(id, err)
	}
	rq := summary.RunsQuery{ConnectionID: e.Connection.ConnectionID, Limit: HistoryPageSize}
	focus := ""
	if s := c.Query("cursor"); s != "" {
		k, ok := summary.DecodeRunsCursor(s, rq)
		if !ok {
			return httpx.Invalid("cursor", "cursor is not a position of this connection's history: follow the page's own links")
		}
		rq.After = k
	} else if run := c.Query("run"); run != "" {
		if !runIDGrammar.MatchString(run) {
			return httpx.Invalid("run", "run must be a run id")
		}
		var k *runs.RunKey
		if p.history != nil {
			if k, err = p.history.Position(ctx, e.Connector.ConnectorID, e.Connection.ConnectionID, run); err != nil {
				return err
			}
		}
		if k != nil {
			// The page starts at that run: the position just before it in run order (run ids
			// use no byte above '~', so run+"~" sorts right after run and before any other id).
			k.RunID += "~"
			rq.After, focus = k, run
		}
	}
	rev, err := p.feed.Revision(ctx)
	if err != nil {
		return err
	}
	since := livePosition(rev, p.now())
	diag, err := p.feed.Diagnostics(ctx, e)
	if err != nil {
		return err
	}
	page, err := p.feed.Runs(ctx, e, rq)
	if err != nil {
		return err
	}
	d := ConnectionData{Diagnostics: diag, Connection: e.Connection, Runs: page.Items, TotalRuns: -1, Days: []DayBar{},
		Paged: rq.After != nil, FocusRunID: focus, Expects: expectations(e, diag.ExpectedProfileKey), Since: since}
	if page.NextCursor != nil {
		d.Next = "/dashboard/connections/" + e.Connection.ConnectionID + "?cursor=" + *page.NextCursor
	}
	if p.history != nil {
		now := p.now()
		since := now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(ChartDays - 1))
		days, total, err := p.history.Daily(ctx, e.Connection.ConnectionID, since)
		if err != nil {
			return err
		}
		d.TotalRuns, d.Days = total, dayBars(days, now)
		d.Chart = chartOf(d.Days)
	} else {
		d.HistoryNote = "With runs.evidence: spine the history covers the connector's most recent run page."
	}
	for _, cand := range diag.Candidates {
		if cand.Matched {
			d.Matched++
		}
	}
	if diag.Item != nil {
		d.Reason = Explain(diag.Item.Health.Reason)
		d.LastRunWhy = RunReason(diag.Item.LastRun)
	}
	title := e.Connection.DisplayName
	if strings.TrimSpace(title) == "" {
		title = e.Connection.ConnectionID
	}
	return p.render(c, "connection.html", title, "dashboard", d, start)
}

// Card is what the template "connection-card" draws: the connection page's summary of its feed
// item, its health explained, and what the connection expects.
type Card struct {
	Item    *summary.Item
	Reason  Reason
	Expects []string
}

// RenderCard renders the connection page's card from one feed item: what a live update of the
// page sends for a changed item (one statement: the connection, for what it expects).
func (p *Pages) RenderCard(ctx context.Context, it summary.Item) ([]byte, error) {
	e, err := p.feed.Connection(ctx, it.ConnectionID)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = p.tpl.ExecuteTemplate(&buf, "connection-card", Card{Item: &it, Reason: Explain(it.Health.Reason),
		Expects: expectations(e, catalog.ExpectedProfileKey(e.Connection, e.Connector))})
	return buf.Bytes(), err
}
