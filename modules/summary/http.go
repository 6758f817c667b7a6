package summary

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/runs"
)

// Handlers serves the feed, the deep diagnostics routes and the admin routes.
type Handlers struct {
	*Feed
}

// NewHandlers returns the summary handlers over feed.
func NewHandlers(feed *Feed) *Handlers { return &Handlers{Feed: feed} }

// Routes implements httpx.Registrar.
func (h *Handlers) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/_ref/connectors", Access: httpx.Owner, Handler: h.feed},
		{Method: fiber.MethodGet, Path: "/_ref/connections/:id/runs", Access: httpx.Owner, Handler: h.runs},
		{Method: fiber.MethodGet, Path: "/_ref/connections/:id/diagnostics", Access: httpx.Owner, Handler: h.diagnostics},
		{Method: fiber.MethodGet, Path: "/admin/summary-cache", Access: httpx.Admin, Handler: h.cacheState},
		{Method: fiber.MethodDelete, Path: "/admin/summary-cache", Access: httpx.Admin, Handler: h.cacheDrop},
		{Method: fiber.MethodGet, Path: "/admin/connectors", Access: httpx.Admin, Handler: h.adminConnectors},
		{Method: fiber.MethodGet, Path: "/metrics", Access: httpx.Admin, Handler: h.metrics.Handler()},
	}
}

// Envelope is the list envelope.
type Envelope struct {
	Object     string  `json:"object"`
	Data       []Item  `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

func envelope(r *Result) Envelope {
	data := r.Items
	if data == nil {
		data = []Item{}
	}
	return Envelope{Object: "list", Data: data, HasMore: r.HasMore, NextCursor: r.NextCursor}
}

// FeedRequest is a parsed GET /_ref/connectors query.
type FeedRequest struct {
	Scoped     bool
	Connection string
	List       ListQuery
}

var allowedParams = map[string]bool{"connection": true, "connector_id": true, "depth": true, "limit": true, "cursor": true, "_data": true}

// ParseFeedQuery validates the feed's query parameters. It takes the raw (key, value) pairs so
// that a repeated parameter is seen.
func ParseFeedQuery(args [][2]string) (FeedRequest, error) {
	var fr FeedRequest
	fr.List.Pipeline = PipelineOverview
	vals := map[string][]string{}
	for _, kv := range args {
		if !allowedParams[kv[0]] {
			return fr, httpx.Invalid(kv[0], "unknown query parameter")
		}
		vals[kv[0]] = append(vals[kv[0]], kv[1])
	}
	for k, v := range vals {
		if len(v) > 1 {
			return fr, httpx.Invalid(k, "must be given at most once")
		}
	}
	if v, ok := vals["connection"]; ok {
		if strings.TrimSpace(v[0]) == "" {
			return fr, httpx.Invalid("connection", "must not be empty")
		}
		if len(vals) > 1 {
			for k := range vals {
				if k != "connection" && k != "_data" {
					return fr, httpx.Invalid(k, "cannot be combined with connection")
				}
			}
		}
		fr.Scoped, fr.Connection = true, v[0]
		return fr, nil
	}
	if v, ok := vals["connector_id"]; ok {
		if !catalog.ValidConnectorID(v[0]) {
			return fr, httpx.Invalid("connector_id", "must match ^[a-z0-9][a-z0-9._-]{0,127}$")
		}
		fr.List.ConnectorID = v[0]
	}
	if v, ok := vals["depth"]; ok {
		switch v[0] {
		case "deep":
			fr.List.Pipeline = PipelineDeep
		case "shallow":
		default:
			return fr, httpx.Invalid("depth", "must be deep or shallow")
		}
	}
	if v, ok := vals["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > 1000 {
			return fr, httpx.Invalid("limit", "must be an integer from 1 to 1000")
		}
		fr.List.Limit = n
	}
	if v, ok := vals["cursor"]; ok {
		if fr.List.Limit == 0 {
			return fr, httpx.Invalid("cursor", "needs limit")
		}
		key, ok := DecodeCursor(v[0], fr.List)
		if !ok {
			return fr, httpx.Invalid("cursor", "is not a cursor of this query")
		}
		fr.List.After = key
	}
	return fr, nil
}

func queryArgs(c *fiber.Ctx) [][2]string {
	var out [][2]string
	c.Context().QueryArgs().VisitAll(func(k, v []byte) { out = append(out, [2]string{string(k), string(v)}) })
	return out
}

// setTimingHeaders writes Server-Timing and X-Summary-Cache.
func setTimingHeaders(c *fiber.Ctx, st Stats, outcome Outcome, total time.Duration) {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64) }
	c.Set("Server-Timing", fmt.Sprintf("db;dur=%s, project;dur=%s, total;dur=%s, cache;desc=%s", ms(st.DB()), ms(st.Project), ms(total), outcome))
	c.Set("X-Summary-Cache", string(outcome))
	c.Set("X-Summary-Statements", strconv.Itoa(st.Statements))
}

func (h *Handlers) feed(c *fiber.Ctx) error {
	start := time.Now()
	fr, err := ParseFeedQuery(queryArgs(c))
	if err != nil {
		return err
	}
	res, outcome, err := h.Read(c.UserContext(), fr)
	if err != nil {
		return err
	}
	st := res.Stats
	if outcome == Hit || outcome == Shared {
		st = Stats{} // this request did no database work of its own
	}
	body := res.Body()
	setTimingHeaders(c, st, outcome, time.Since(start))
	c.Set(fiber.HeaderContentType, httpx.ContentTypeJSON)
	return c.Status(fiber.StatusOK).Send(body)
}

func (h *Handlers) connection(c *fiber.Ctx) (*catalog.Entry, error) {
	return h.Connection(c.UserContext(), c.Params("id"))
}

// runs serves a connection's run summaries, newest first, within the evidence's window.
func (h *Handlers) runs(c *fiber.Ctx) error {
	status := c.Query("status")
	if status != "" && !runStatuses[status] {
		return httpx.Invalid("status", "must be one of succeeded, failed, cancelled, abandoned, in_progress, surface_failed, waiting_for_browser_surface, unknown")
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return httpx.Invalid("limit", "must be an integer from 1 to 1000")
		}
		limit = n
	}
	e, err := h.connection(c)
	if err != nil {
		return err
	}
	out, err := h.Runs(c.UserContext(), e, status, limit)
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, fiber.Map{"object": "list", "connection_id": e.Connection.ConnectionID, "data": out, "has_more": false, "next_cursor": nil})
}

var runStatuses = map[string]bool{"succeeded": true, "failed": true, "cancelled": true, "abandoned": true, "in_progress": true,
	"surface_failed": true, "waiting_for_browser_surface": true, "unknown": true}

// Diagnostics is the body of GET /_ref/connections/{id}/diagnostics.
type Diagnostics struct {
	Object             string             `json:"object"`
	Item               *Item              `json:"item"`
	ExpectedProfileKey string             `json:"expected_profile_key"`
	PagesRead          []runs.PageKey     `json:"pages_read"`
	Candidates         []runs.Candidate   `json:"candidates"`
	Statements         int                `json:"statements"`
	Timings            map[string]float64 `json:"timings"`
	// Runs are the connection's matching runs in run order (the console's history); the API
	// shows them through the candidates.
	Runs []runs.Summary `json:"-"`
}

func (h *Handlers) diagnostics(c *fiber.Ctx) error {
	e, err := h.connection(c)
	if err != nil {
		return err
	}
	d, err := h.Diagnostics(c.UserContext(), e)
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, d)
}

func (h *Handlers) cacheState(c *fiber.Ctx) error {
	return httpx.JSON(c, fiber.StatusOK, h.cache.Stats())
}

func (h *Handlers) cacheDrop(c *fiber.Ctx) error {
	h.cache.Invalidate()
	return c.SendStatus(fiber.StatusNoContent)
}

// adminConnectors computes the overview fresh (no cache, no single flight) and compares it
// with the cached value.
func (h *Handlers) adminConnectors(c *fiber.Ctx) error {
	q := ListQuery{Pipeline: PipelineOverview}
	if v := c.Query("concurrency"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return httpx.Invalid("concurrency", "must be an integer from 1 to 64")
		}
		q.Concurrency = n
	}
	if v := c.Query("bypass"); v != "" && v != "1" && v != "true" {
		return httpx.Invalid("bypass", "must be 1")
	}
	h.cache.CountBypass()
	res, err := h.projector.List(c.UserContext(), q)
	h.metrics.Observe(PipelineOverview, res, err)
	if err != nil {
		return err
	}
	diag := fiber.Map{"statements": res.Stats.Statements, "timings": res.Stats.StageMillis(), "cache": "bypass"}
	// Compare with the cached value without computing one.
	if cached, ok := h.cache.Peek(q.CacheKey()); ok {
		diff := diffItems(cached.(*Result).Items, res.Items)
		diag["differs_from_cache"], diag["differing_connection_ids"] = len(diff) > 0, diff
	} else {
		diag["differs_from_cache"], diag["differing_connection_ids"] = nil, []string{}
	}
	setTimingHeaders(c, res.Stats, Bypass, res.Stats.Total)
	env := envelope(res)
	return httpx.JSON(c, fiber.StatusOK, fiber.Map{"object": env.Object, "data": env.Data, "has_more": env.HasMore,
		"next_cursor": env.NextCursor, "diagnostics": diag})
}

func diffItems(a, b []Item) []string {
	index := map[string]Item{}
	for _, it := range a {
		index[it.ConnectionID] = it
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range b {
		seen[it.ConnectionID] = true
		old, ok := index[it.ConnectionID]
		if !ok || !sameJSON(old, it) {
			out = append(out, it.ConnectionID)
		}
	}
	for id := range index {
		if !seen[id] {
			out = append(out, id)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func sameJSON(a, b Item) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
