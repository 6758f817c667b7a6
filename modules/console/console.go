// Package console renders the owner console: server-side HTML pages (html/template, assets
// embedded, no external resources) over the same feed service as the JSON API. Every page
// renders its content on the first response; `?_data=1` returns the page's data as JSON.
package console

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/bootstrap"
	"connsum/modules/console/theme"
	"connsum/modules/httpx"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

//go:embed templates/*.html
var assets embed.FS

// Pages serves the console.
type Pages struct {
	feed *summary.Feed
	now  bootstrap.Clock
	tpl  *template.Template
	// history is the console's reads over the run read model; nil with runs.evidence=spine,
	// where the pages show what the feed's deep reads carry instead.
	history *runs.ConsoleHistory
}

// StyleHash is the CSP source ('sha256-…') of the stylesheet every console page inlines: the
// Content-Security-Policy allows that exact <style> element and no other inline style, and the
// page needs no second request for its styles.
func StyleHash() (string, error) { return theme.StyleHash(), nil }

// NewPages parses the embedded templates. ev is the deep run evidence: when it is the read model
// the pages also draw history strips, the fleet timeline and outcomes per day from it.
func NewPages(feed *summary.Feed, now bootstrap.Clock, ev runs.Evidence) (*Pages, error) {
	p := &Pages{feed: feed, now: now, history: runs.ConsoleHistoryOf(ev)}
	funcs := template.FuncMap{
		"bytes": HumanBytes, "count": HumanCount, "exact": ExactTime, "tone": Tone, "word": Word,
		"explain": Explain, "runDuration": RunDuration,
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
		"runReason": RunReason,
		"card": func(it *summary.Item, r Reason, expects []string) Card {
			return Card{Item: it, Reason: r, Expects: expects}
		},
		"query": func(base string, kv ...string) string {
			v := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					v.Set(kv[i], kv[i+1])
				}
			}
			if len(v) == 0 {
				return base
			}
			return base + "?" + v.Encode()
		},
	}
	var err error
	p.tpl, err = theme.New("console").Funcs(funcs).ParseFS(assets, "templates/*.html")
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
	rendering := time.Now()
	var buf bytes.Buffer
	err := p.tpl.ExecuteTemplate(&buf, name, page{Title: title, Nav: nav, CSS: theme.CSS(), Data: data,
		Now: p.now().UTC().Format("2006-01-02 15:04 UTC"), Timing: time.Since(started).Round(10 * time.Microsecond).String()})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set("Cache-Control", "no-store")
	c.Append("Server-Timing", fmt.Sprintf("render;dur=%.2f, total;dur=%.2f", ms(time.Since(rendering)), ms(time.Since(started))))
	return c.Send(buf.Bytes())
}

// overview reads the cached overview (all rows): the console's pages order, filter and page it
// in memory, so they share one projection with the API and with each other.
func (p *Pages) overview(ctx context.Context) (*summary.Result, error) {
	res, _, err := p.feed.Read(ctx, summary.FeedRequest{List: summary.ListQuery{Pipeline: summary.PipelineOverview}})
	return res, err
}
