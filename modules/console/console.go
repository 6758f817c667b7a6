// Package console renders the owner console: server-side HTML pages (html/template, assets
// embedded, no external resources) over the same feed service as the JSON API. Every page
// renders its content on the first response; `?_data=1` returns the page's data as JSON.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

//go:embed templates/*.html templates/*.css
var assets embed.FS

// Pages serves the console.
type Pages struct {
	feed *summary.Feed
	now  bootstrap.Clock
	tpl  *template.Template
	css  template.CSS
}

// StyleHash is the CSP source ('sha256-…') of the stylesheet every console page inlines: the
// Content-Security-Policy allows that exact <style> element and no other inline style, and the
// page needs no second request for its styles.
func StyleHash() (string, error) {
	css, err := assets.ReadFile("templates/console.css")
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(css)
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'", nil
}

// NewPages parses the embedded templates.
func NewPages(feed *summary.Feed, now bootstrap.Clock) (*Pages, error) {
	p := &Pages{feed: feed, now: now}
	css, err := assets.ReadFile("templates/console.css")
	if err != nil {
		return nil, err
	}
	p.css = template.CSS(css)
	funcs := template.FuncMap{
		"bytes": HumanBytes, "count": HumanCount, "exact": ExactTime, "duration": Duration, "tone": Tone,
		"ago": func(s string) string { return RelativeTime(s, p.now()) },
		"deref": func(s *string) string {
			if s == nil {
				return ""
			}
			return *s
		},
		"derefInt": func(n *int64) int64 {
			if n == nil {
				return 0
			}
			return *n
		},
	}
	p.tpl, err = template.New("console").Funcs(funcs).ParseFS(assets, "templates/*.html")
	return p, err
}

// Routes implements httpx.Registrar.
func (p *Pages) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/dashboard", Access: httpx.Owner, Handler: p.dashboard},
		{Method: fiber.MethodGet, Path: "/dashboard/runs", Access: httpx.Owner, Handler: p.runsPage},
		{Method: fiber.MethodGet, Path: "/dashboard/connections/:id", Access: httpx.Owner, Handler: p.connection},
		{Method: fiber.MethodGet, Path: "/", Access: httpx.Public, Handler: func(c *fiber.Ctx) error {
			return c.Redirect("/dashboard", fiber.StatusSeeOther)
		}},
	}
}

// Counts summarise the overview for the page header.
type Counts struct {
	Connections int
	ByHealth    map[string]int
	Records     int64
	Bytes       int64
}

// DashboardData is the data of /dashboard.
type DashboardData struct {
	Items  []summary.Item `json:"items"`
	Counts Counts         `json:"counts"`
}

// RunsData is the data of /dashboard/runs.
type RunsData struct {
	Connections []ConnectionRuns `json:"connections"`
}

// ConnectionRuns is one connection's recent runs.
type ConnectionRuns struct {
	Item summary.Item   `json:"item"`
	Runs []runs.Summary `json:"runs"`
}

// ConnectionData is the data of /dashboard/connections/{id}.
type ConnectionData struct {
	Diagnostics *summary.Diagnostics `json:"diagnostics"`
	Connection  *catalog.Connection  `json:"connection"`
	Runs        []runs.Summary       `json:"runs"`
}

type page struct {
	Title  string
	Nav    string
	CSS    template.CSS
	Now    string
	Data   any
	Timing string
}

// render writes the page, or its data as JSON for `?_data=1`.
func (p *Pages) render(c *fiber.Ctx, name, title, nav string, data any, started time.Time) error {
	if c.Query("_data") != "" {
		return httpx.JSON(c, fiber.StatusOK, data)
	}
	var buf bytes.Buffer
	err := p.tpl.ExecuteTemplate(&buf, name, page{Title: title, Nav: nav, CSS: p.css, Data: data,
		Now: p.now().UTC().Format("2006-01-02 15:04 UTC"), Timing: time.Since(started).Round(10 * time.Microsecond).String()})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set("Cache-Control", "no-store")
	return c.Send(buf.Bytes())
}

func (p *Pages) overview(ctx context.Context, pl summary.Pipeline, history int) (*summary.Result, error) {
	res, _, err := p.feed.Read(ctx, summary.FeedRequest{List: summary.ListQuery{Pipeline: pl, History: history}})
	return res, err
}

func (p *Pages) dashboard(c *fiber.Ctx) error {
	start := time.Now()
	res, err := p.overview(c.UserContext(), summary.PipelineOverview, 0)
	if err != nil {
		return err
	}
	d := DashboardData{Items: res.Items, Counts: Counts{Connections: len(res.Items), ByHealth: map[string]int{}}}
	// The fleet counts of GET /_ref/fleet-health; the header shows the states that occur.
	byHealth, _ := summary.CountFleet(res.Items)
	for state, n := range byHealth {
		if n > 0 {
			d.Counts.ByHealth[state] = n
		}
	}
	for _, it := range res.Items {
		d.Counts.Records += it.TotalRecords
		if it.TotalRetainedBytes != nil {
			d.Counts.Bytes += *it.TotalRetainedBytes
		}
	}
	return p.render(c, "dashboard.html", "Connections", "dashboard", d, start)
}

// runsPerConnection bounds /dashboard/runs.
const runsPerConnection = 8

func (p *Pages) runsPage(c *fiber.Ctx) error {
	start := time.Now()
	res, err := p.overview(c.UserContext(), summary.PipelineDeep, runsPerConnection)
	if err != nil {
		return err
	}
	// The deep list already holds each connection's matching runs; no extra reads.
	d := RunsData{Connections: []ConnectionRuns{}}
	for _, it := range res.Items {
		cr := ConnectionRuns{Item: it, Runs: []runs.Summary{}}
		if ev := res.Evidence[it.ConnectionID]; ev != nil {
			cr.Runs = ev.Runs[:min(len(ev.Runs), runsPerConnection)]
		}
		d.Connections = append(d.Connections, cr)
	}
	sort.SliceStable(d.Connections, func(i, j int) bool {
		a, b := d.Connections[i].Item.LastRun, d.Connections[j].Item.LastRun
		switch {
		case a == nil:
			return false
		case b == nil:
			return true
		}
		return runs.Before(a, b)
	})
	return p.render(c, "runs.html", "Recent runs", "runs", d, start)
}

func (p *Pages) connection(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Params("id")
	e, err := p.feed.Connection(c.UserContext(), id)
	if err != nil {
		return summary.ConnectionHTTPError(id, err)
	}
	diag, err := p.feed.Diagnostics(c.UserContext(), e)
	if err != nil {
		return err
	}
	history := diag.Runs
	if history == nil {
		history = []runs.Summary{}
	}
	d := ConnectionData{Diagnostics: diag, Connection: e.Connection, Runs: history}
	return p.render(c, "connection.html", e.Connection.DisplayName, "dashboard", d, start)
}
