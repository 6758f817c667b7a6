package console

import (
	"context"
	"embed"
	"encoding/json"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/httpx"
	"connsum/modules/live"
	"connsum/modules/summary"
)

//go:embed assets/live.js
var scripts embed.FS

// LiveRows serves the console's live updates: /dashboard/stream, the change stream with each
// changed item rendered as its overview row or, for a connection page (?connection=), as the
// page's card (the same templates as the pages), and the small script that applies them. Pages work without either (progressive enhancement); the CSP stays
// strict: the script is a file of this origin, and the stream is a same-origin connection.
type LiveRows struct {
	pages   *Pages
	streams *live.Handlers
	script  []byte
}

// NewLiveRows returns the live rows over the console's pages and the service's streams.
func NewLiveRows(p *Pages, streams *live.Handlers) (*LiveRows, error) {
	b, err := scripts.ReadFile("assets/live.js")
	return &LiveRows{pages: p, streams: streams, script: b}, err
}

// Routes implements httpx.Registrar.
func (l *LiveRows) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/dashboard/stream", Access: httpx.Owner, Handler: l.stream},
		// The script is no secret; public, so that loading it never meets a login redirect.
		{Method: fiber.MethodGet, Path: "/dashboard/assets/live.js", Access: httpx.Public, Handler: l.serveScript},
	}
}

func (l *LiveRows) serveScript(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(l.script)
}

// Row events of the console's stream.
const (
	eventRow    = "row"    // {"connection_id", "html"}: the row as the overview draws it
	eventCard   = "card"   // {"connection_id", "html"}: the connection page's card
	eventRemove = "remove" // {"connection_id"}
)

// livePosition is the stream position of a page that shows revision rev as of now: its live
// updates start after it (the changes of later revisions, and of the clock after now).
func livePosition(rev int64, now time.Time) string {
	return strconv.FormatInt(rev, 10) + "." + strconv.FormatInt(now.UnixMilli(), 10)
}

// renderTimeout bounds one row's render (it reads the row's history strip).
const renderTimeout = 5 * time.Second

func (l *LiveRows) stream(c *fiber.Ctx) error {
	return l.streams.ServeQuery(c, func(f live.Filter) func(*live.Event) *live.Event {
		// The overview's stream sends rows; a connection page's (?connection=) its card.
		typ, draw := eventRow, l.pages.RenderRow
		if f.ConnectionID != "" {
			typ, draw = eventCard, l.pages.RenderCard
		}
		return func(e *live.Event) *live.Event { return renderEvent(e, typ, draw) }
	})
}

// renderEvent turns a stream event into what the page applies (an item drawn by draw as an event
// of type typ); nil skips it.
func renderEvent(e *live.Event, typ string, draw func(context.Context, summary.Item) ([]byte, error)) *live.Event {
	switch e.Type {
	case live.EventItem:
		var d struct {
			Item summary.Item `json:"item"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), renderTimeout)
		defer cancel()
		html, err := draw(ctx, d.Item)
		if err != nil {
			return nil // the page keeps what it has; a later change or a reload shows it
		}
		b, _ := json.Marshal(struct {
			ConnectionID string `json:"connection_id"`
			HTML         string `json:"html"`
		}{d.Item.ConnectionID, string(html)})
		return &live.Event{ID: e.ID, Type: typ, Data: b}
	case live.EventRemoved:
		return &live.Event{ID: e.ID, Type: eventRemove, Data: e.Data}
	}
	return e
}
