package summary

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/runs"
)

// Handlers serves the feed, the deep diagnostics routes and the admin routes over the Feed. This
// is the feed's HTTP layer: it parses queries, maps the feed's domain errors to API errors and
// writes headers; everything else is a Feed method.
type Handlers struct {
	feed *Feed
}

// NewHandlers returns the summary handlers over feed.
func NewHandlers(feed *Feed) *Handlers { return &Handlers{feed: feed} }

// Routes implements httpx.Registrar.
func (h *Handlers) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/_ref/connectors", Access: httpx.Owner, Handler: h.serveFeed},
		{Method: fiber.MethodGet, Path: "/_ref/connections/:id/runs", Access: httpx.Owner, Handler: h.runs},
		{Method: fiber.MethodGet, Path: "/_ref/connections/:id/diagnostics", Access: httpx.Owner, Handler: h.diagnostics},
		{Method: fiber.MethodGet, Path: "/_ref/fleet-health", Access: httpx.Owner, Handler: h.fleetHealth},
		{Method: fiber.MethodGet, Path: "/admin/summary-cache", Access: httpx.Admin, Handler: h.cacheState},
		{Method: fiber.MethodDelete, Path: "/admin/summary-cache", Access: httpx.Admin, Handler: h.cacheDrop},
		{Method: fiber.MethodGet, Path: "/admin/connectors", Access: httpx.Admin, Handler: h.adminConnectors},
	}
}

// ConnectionHTTPError is where a connection lookup's domain error becomes an API error, for the
// feed's routes and the console's pages alike: catalog.ErrNotFound is a 404 naming the
// connection; any other error is left to the error handler.
func ConnectionHTTPError(id string, err error) error {
	if errors.Is(err, catalog.ErrNotFound) {
		return httpx.NotFound("connection_id", "no connection %q", id)
	}
	return err
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

// setTimingHeaders writes Server-Timing and X-Summary-Cache.
func setTimingHeaders(c *fiber.Ctx, st Stats, outcome Outcome, total time.Duration) {
	c.Set("Server-Timing", fmt.Sprintf("db;dur=%s, project;dur=%s, total;dur=%s, cache;desc=%s", millis(st.DB()), millis(st.Project), millis(total), outcome))
	c.Set("X-Summary-Cache", string(outcome))
	c.Set("X-Summary-Statements", strconv.Itoa(st.Statements))
}

func (h *Handlers) serveFeed(c *fiber.Ctx) error {
	start := time.Now()
	fr, err := ParseFeedQuery(httpx.QueryArgs(c))
	if err != nil {
		return err
	}
	digest := h.feed.Digest(c)
	if done, err := h.feed.NotModified(c, digest); done || err != nil {
		return err
	}
	res, outcome, err := h.feed.Read(c.UserContext(), fr)
	if err != nil {
		return err
	}
	st := res.Stats
	if outcome == Hit || outcome == Shared {
		st = Stats{} // this request did no database work of its own
	}
	body := res.Body()
	setTimingHeaders(c, st, outcome, time.Since(start))
	SetETag(c, res.Revision, res.ValidUntil, digest)
	c.Set(fiber.HeaderContentType, httpx.ContentTypeJSON)
	return c.Status(fiber.StatusOK).Send(body)
}

func (h *Handlers) connection(c *fiber.Ctx) (*catalog.Entry, error) {
	id := c.Params("id")
	e, err := h.feed.Connection(c.UserContext(), id)
	if err != nil {
		return nil, ConnectionHTTPError(id, err)
	}
	return e, nil
}

// uniqueArgs refuses a parameter that is not allowed or given twice, naming it.
func uniqueArgs(args [][2]string, allowed map[string]bool) (map[string]string, error) {
	vals := map[string]string{}
	for _, kv := range args {
		if !allowed[kv[0]] {
			return nil, httpx.Invalid(kv[0], "unknown query parameter")
		}
		if _, ok := vals[kv[0]]; ok {
			return nil, httpx.Invalid(kv[0], "must be given at most once")
		}
		vals[kv[0]] = kv[1]
	}
	return vals, nil
}

var runsParams = map[string]bool{"status": true, "limit": true, "cursor": true}

// ParseRunsQuery validates the query of GET /_ref/connections/{connectionID}/runs. A cursor
// must have been made for this connection and status filter (any limit may follow it).
func ParseRunsQuery(connectionID string, args [][2]string) (RunsQuery, error) {
	q := RunsQuery{ConnectionID: connectionID, Limit: DefaultRunsLimit}
	vals, err := uniqueArgs(args, runsParams)
	if err != nil {
		return q, err
	}
	if v, ok := vals["status"]; ok {
		if !runs.IsRunStatus(v) {
			return q, httpx.Invalid("status", "must be one of %s", strings.Join(runs.RunStatuses(), ", "))
		}
		q.Status = v
	}
	if v, ok := vals["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return q, httpx.Invalid("limit", "must be an integer from 1 to 1000")
		}
		q.Limit = n
	}
	if v, ok := vals["cursor"]; ok {
		key, ok := DecodeRunsCursor(v, q)
		if !ok {
			return q, httpx.Invalid("cursor", "is not a cursor of this connection's runs with this status filter")
		}
		q.After = key
	}
	return q, nil
}

// runs serves one keyset page of a connection's run summaries, newest first.
func (h *Handlers) runs(c *fiber.Ctx) error {
	q, err := ParseRunsQuery(c.Params("id"), httpx.QueryArgs(c))
	if err != nil {
		return err
	}
	digest := h.feed.Digest(c)
	if done, err := h.feed.NotModified(c, digest); done || err != nil {
		return err
	}
	e, err := h.connection(c)
	if err != nil {
		return err
	}
	out, err := h.feed.Runs(c.UserContext(), e, q)
	if err != nil {
		return err
	}
	SetETag(c, out.Revision, out.ValidUntil, digest)
	return httpx.JSON(c, fiber.StatusOK, out)
}

var fleetParams = map[string]bool{"connector_id": true}

// fleetHealth serves the fleet counts, from the overview through its cache.
func (h *Handlers) fleetHealth(c *fiber.Ctx) error {
	start := time.Now()
	vals, err := uniqueArgs(httpx.QueryArgs(c), fleetParams)
	if err != nil {
		return err
	}
	connectorID, filtered := vals["connector_id"]
	if filtered && !catalog.ValidConnectorID(connectorID) {
		return httpx.Invalid("connector_id", "must match ^[a-z0-9][a-z0-9._-]{0,127}$")
	}
	digest := h.feed.Digest(c)
	if done, err := h.feed.NotModified(c, digest); done || err != nil {
		return err
	}
	fh, outcome, err := h.feed.FleetHealth(c.UserContext(), connectorID)
	if err != nil {
		return err
	}
	setTimingHeaders(c, fh.Stats, outcome, time.Since(start))
	SetETag(c, fh.Revision, fh.ValidUntil, digest)
	return httpx.JSON(c, fiber.StatusOK, fh)
}

func (h *Handlers) diagnostics(c *fiber.Ctx) error {
	e, err := h.connection(c)
	if err != nil {
		return err
	}
	d, err := h.feed.Diagnostics(c.UserContext(), e)
	if err != nil {
		return err
	}
	return httpx.JSON(c, fiber.StatusOK, d)
}

func (h *Handlers) cacheState(c *fiber.Ctx) error {
	return httpx.JSON(c, fiber.StatusOK, h.feed.CacheStats())
}

func (h *Handlers) cacheDrop(c *fiber.Ctx) error {
	h.feed.DropCache()
	return c.SendStatus(fiber.StatusNoContent)
}

// adminConnectors serves the overview computed fresh (no cache, no single flight) and compared
// with the cached value.
func (h *Handlers) adminConnectors(c *fiber.Ctx) error {
	concurrency := 0
	if v := c.Query("concurrency"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return httpx.Invalid("concurrency", "must be an integer from 1 to 64")
		}
		concurrency = n
	}
	if v := c.Query("bypass"); v != "" && v != "1" && v != "true" {
		return httpx.Invalid("bypass", "must be 1")
	}
	fo, err := h.feed.FreshOverview(c.UserContext(), concurrency)
	if err != nil {
		return err
	}
	setTimingHeaders(c, fo.Stats, Bypass, fo.Stats.Total)
	return httpx.JSON(c, fiber.StatusOK, fo)
}
