package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/httpx"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// OverviewPageSize is how many rows one page of /dashboard shows.
const OverviewPageSize = 100

// StripRuns is how many runs a row's history strip shows.
const StripRuns = 24

// healthOrder is the overview's order: what needs the owner first, then what is fine, then what
// the owner switched off.
var healthOrder = []string{summary.HealthFailing, summary.HealthStale, summary.HealthSyncing, summary.HealthUnknown,
	summary.HealthHealthy, summary.HealthPaused, summary.HealthRevoked}

func healthRank(state string) int {
	if i := slices.Index(healthOrder, state); i >= 0 {
		return i
	}
	return len(healthOrder)
}

// Counts summarise the whole fleet for the page header (the tiles), whatever the filters.
type Counts struct {
	Connections int
	ByHealth    map[string]int
	Records     int64
	Bytes       int64
}

// DashboardData is the data of /dashboard: the rows of the page (in its order, with its filters
// applied) as feed items, the fleet's counts, how many rows match the filters, and the links to
// the next and previous pages.
type DashboardData struct {
	Items    []summary.Item `json:"items"`
	Counts   Counts         `json:"counts"`
	Matching int            `json:"matching"`
	Next     string         `json:"next,omitempty"`
	Previous string         `json:"previous,omitempty"`

	// Since is where the page's live rows stream from: the revision the page shows and the moment
	// it was drawn (an event id of the stream, live.Position).
	Since string `json:"-"`

	Query OverviewQuery `json:"-"`
	// FirstRow and LastRow number the page's rows among the matching ones (1-based).
	FirstRow, LastRow int           `json:"-"`
	Rows              []OverviewRow `json:"-"`
	Tiles             []Tile        `json:"-"`
	Hint              string        `json:"-"`
}

// Tile is one clickable count of the header: a filter of the overview.
type Tile struct {
	State   string
	Label   string
	N       int
	Href    string
	Current bool
}

// OverviewQuery is a parsed /dashboard query: a health filter, a search, and a keyset position.
type OverviewQuery struct {
	Health string
	Q      string
	After  *RowKey
	Before *RowKey
}

// RowKey is a position in the overview's order (health rank, name, connection id): the keyset
// of its pages.
type RowKey struct {
	Rank int    `json:"r"`
	Name string `json:"n"`
	ID   string `json:"i"`
}

func keyOf(it *summary.Item) RowKey {
	return RowKey{Rank: healthRank(it.Health.State), Name: strings.ToLower(it.DisplayName), ID: it.ConnectionID}
}

func (k RowKey) less(o RowKey) bool {
	if k.Rank != o.Rank {
		return k.Rank < o.Rank
	}
	if k.Name != o.Name {
		return k.Name < o.Name
	}
	return k.ID < o.ID
}

var keyEncoding = base64.RawURLEncoding.Strict()

func (k RowKey) encode() string {
	b, _ := json.Marshal(k)
	return keyEncoding.EncodeToString(b)
}

func decodeKey(field, s string) (*RowKey, error) {
	var k RowKey
	raw, err := keyEncoding.DecodeString(s)
	if err != nil || len(s) > 1024 || json.Unmarshal(raw, &k) != nil || k.ID == "" {
		return nil, httpx.Invalid(field, "%s is not a position of this list: follow the page's own next/previous links", field)
	}
	return &k, nil
}

// ParseOverviewQuery reads health, q, after and before; anything else is ignored (like _data).
func ParseOverviewQuery(c *fiber.Ctx) (OverviewQuery, error) {
	var q OverviewQuery
	q.Health = c.Query("health")
	if q.Health != "" && !slices.Contains(healthOrder, q.Health) {
		return q, httpx.Invalid("health", "health must be one of %s", strings.Join(healthOrder, ", "))
	}
	q.Q = strings.TrimSpace(c.Query("q"))
	if len(q.Q) > 200 {
		return q, httpx.Invalid("q", "the search is longer than 200 characters")
	}
	var err error
	if s := c.Query("after"); s != "" {
		if q.After, err = decodeKey("after", s); err != nil {
			return q, err
		}
	}
	if s := c.Query("before"); s != "" {
		if q.Before, err = decodeKey("before", s); err != nil {
			return q, err
		}
	}
	if q.After != nil && q.Before != nil {
		return q, httpx.Invalid("before", "after and before exclude each other")
	}
	return q, nil
}

// matches reports whether an item passes the health filter and the search (case-insensitive,
// over the connection's and the connector's names and ids).
func (q OverviewQuery) matches(it *summary.Item) bool {
	if q.Health != "" && it.Health.State != q.Health {
		return false
	}
	if q.Q == "" {
		return true
	}
	needle := strings.ToLower(q.Q)
	for _, h := range []string{it.DisplayName, it.ConnectorDisplayName, it.ConnectorID, it.ConnectionID} {
		if strings.Contains(strings.ToLower(h), needle) {
			return true
		}
	}
	return false
}

// href is the /dashboard URL of this filter with a position.
func (q OverviewQuery) href(posKey string, pos *RowKey) string {
	v := url.Values{}
	if q.Health != "" {
		v.Set("health", q.Health)
	}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if pos != nil {
		v.Set(posKey, pos.encode())
	}
	if len(v) == 0 {
		return "/dashboard"
	}
	return "/dashboard?" + v.Encode()
}

// OverviewPage orders items (failing first, then stale, syncing, unknown, healthy, paused,
// revoked; then by name), keeps those that match q and returns the page q's position asks for,
// with the positions of the next and previous pages (nil at either end). offset is the index
// of the page's first row among the matching rows.
func OverviewPage(items []summary.Item, q OverviewQuery, size int) (page []summary.Item, matching, offset int, next, prev *RowKey) {
	type keyed struct {
		key RowKey
		i   int
	}
	order := make([]keyed, 0, len(items))
	for i := range items {
		if q.matches(&items[i]) {
			order = append(order, keyed{keyOf(&items[i]), i})
		}
	}
	slices.SortFunc(order, func(a, b keyed) int {
		switch {
		case a.key.less(b.key):
			return -1
		case b.key.less(a.key):
			return 1
		}
		return 0
	})
	rows := make([]summary.Item, len(order))
	for j, k := range order {
		rows[j] = items[k.i]
	}
	from, to := 0, len(rows)
	switch {
	case q.After != nil:
		from, _ = slices.BinarySearchFunc(rows, *q.After, func(it summary.Item, k RowKey) int {
			if ik := keyOf(&it); !k.less(ik) {
				return -1
			}
			return 1
		})
		to = min(len(rows), from+size)
	case q.Before != nil:
		to, _ = slices.BinarySearchFunc(rows, *q.Before, func(it summary.Item, k RowKey) int {
			if ik := keyOf(&it); ik.less(k) {
				return -1
			}
			return 1
		})
		from = max(0, to-size)
	default:
		to = min(len(rows), size)
	}
	page = rows[from:to]
	if to < len(rows) && len(page) > 0 {
		k := keyOf(&page[len(page)-1])
		next = &k
	}
	if from > 0 && len(page) > 0 {
		k := keyOf(&page[0])
		prev = &k
	}
	return page, len(rows), from, next, prev
}

// OverviewRow is the view model of one overview row, built from one feed item (and its recent
// runs) by RowOf: the template "overview-row" draws it.
type OverviewRow struct {
	Item   summary.Item
	Reason Reason
	// Strip is the row's recent runs, oldest first (the history strip); nil when not read.
	Strip []StripMark
	// StripHTML is Strip drawn: a page of 100 rows holds 2 400 marks, which html/template's
	// contextual escaping made the page's largest cost; every value in it is escaped here.
	StripHTML template.HTML
	// StripRead says whether the strip was read (false with runs.evidence=spine).
	StripRead bool
	// Tone is the badge colour of the health state.
	Tone string
}

// StripMark is one run of a history strip.
type StripMark struct {
	RunID string
	Tone  string
	Title string
	Href  string
}

// RowOf builds the view model of one overview row from its item and its newest runs (newest
// first, as ConsoleHistory.Recent gives them). now is the time relative times are told against.
func RowOf(it summary.Item, recent []runs.Summary, stripRead bool, now time.Time) OverviewRow {
	r := OverviewRow{Item: it, Reason: Explain(it.Health.Reason), StripRead: stripRead, Tone: Tone(it.Health.State)}
	var b strings.Builder
	for i := len(recent) - 1; i >= 0; i-- {
		s := &recent[i]
		title := Word(s.Status) + " · " + RelativeTime(s.LastAt, now)
		if s.FailureReason != nil && *s.FailureReason != "" {
			title += " · " + Explain(*s.FailureReason).Text
		}
		m := StripMark{RunID: s.RunID, Tone: Tone(s.Status), Title: title, Href: RunHref(it.ConnectionID, s)}
		r.Strip = append(r.Strip, m)
		b.WriteString(`<a class="`)
		b.WriteString(html.EscapeString(m.Tone))
		b.WriteString(`" href="`)
		b.WriteString(html.EscapeString(m.Href))
		b.WriteString(`" title="`)
		b.WriteString(html.EscapeString(m.Title))
		b.WriteString(`"></a>`)
	}
	r.StripHTML = template.HTML(b.String()) // every value above is escaped for its attribute
	return r
}

// RunHref links to a run: the connection page's history starting at that run (found by its
// id: the links stay short, 2 400 of them on a page of the overview).
func RunHref(connectionID string, s *runs.Summary) string {
	return "/dashboard/connections/" + url.PathEscape(connectionID) + "?run=" + url.QueryEscape(s.RunID)
}

// strips reads the history strips of the page's rows: one statement for the page.
func (p *Pages) strips(ctx context.Context, items []summary.Item) (map[string][]runs.Summary, bool, error) {
	if p.history == nil || len(items) == 0 {
		return nil, false, nil
	}
	ids := make([]string, len(items))
	for i := range items {
		ids[i] = items[i].ConnectionID
	}
	m, err := p.history.Recent(ctx, ids, StripRuns)
	return m, true, err
}

// RenderRow renders one overview row (the template "overview-row") from one feed item, reading
// its history strip: what a live update of the overview sends for a changed item.
func (p *Pages) RenderRow(ctx context.Context, it summary.Item) ([]byte, error) {
	strips, read, err := p.strips(ctx, []summary.Item{it})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = p.tpl.ExecuteTemplate(&buf, "overview-row", RowOf(it, strips[it.ConnectionID], read, p.now()))
	return buf.Bytes(), err
}

func (p *Pages) dashboard(c *fiber.Ctx) error {
	start := time.Now()
	q, err := ParseOverviewQuery(c)
	if err != nil {
		return err
	}
	digest := p.feed.Digest(c)
	if c.Query("_data") != "" {
		if done, err := p.feed.NotModified(c, digest); done || err != nil {
			return err
		}
	}
	res, err := p.overview(c.UserContext())
	if err != nil {
		return err
	}
	items, matching, offset, next, prev := OverviewPage(res.Items, q, OverviewPageSize)
	d := DashboardData{Items: items, Matching: matching, Query: q, FirstRow: offset + 1, LastRow: offset + len(items), Since: livePosition(res.Revision, p.now()),
		Counts: Counts{Connections: len(res.Items), ByHealth: map[string]int{}}}
	if next != nil {
		d.Next = q.href("after", next)
	}
	if prev != nil {
		d.Previous = q.href("before", prev)
	}
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
	if c.Query("_data") != "" {
		// The page's data is the overview's, ordered and filtered: its tag is the overview's
		// revision and time horizon with this route's digest (SPEC §2.7).
		summary.SetETag(c, res.Revision, res.ValidUntil, digest)
		return p.render(c, "", "", "", d, start)
	}
	all := OverviewQuery{Q: q.Q}
	d.Tiles = append(d.Tiles, Tile{Label: "all connections", N: len(res.Items), Href: all.href("", nil), Current: q.Health == ""})
	for _, state := range healthOrder {
		if n := byHealth[state]; n > 0 || state == summary.HealthFailing {
			f := OverviewQuery{Health: state, Q: q.Q}
			d.Tiles = append(d.Tiles, Tile{State: state, Label: Word(state), N: n, Href: f.href("", nil), Current: q.Health == state})
		}
	}
	feedDone := time.Now()
	strips, read, err := p.strips(c.UserContext(), items)
	if err != nil {
		return err
	}
	stripsDone := time.Now()
	now := p.now()
	for _, it := range items {
		d.Rows = append(d.Rows, RowOf(it, strips[it.ConnectionID], read, now))
	}
	c.Set("Server-Timing", fmt.Sprintf("feed;dur=%.2f, strips;dur=%.2f", ms(feedDone.Sub(start)), ms(stripsDone.Sub(feedDone))))
	if len(res.Items) > 0 && res.Items[0].Evidence == runs.EvidenceShallow {
		d.Hint = "This overview does not read run history (runs.evidence: spine): open a connection for its runs and why it is in its state."
	}
	return p.render(c, "dashboard.html", "Connections", "dashboard", d, start)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
