package summary

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

// FeedRequest is a parsed GET /_ref/connectors query: a scoped read of Connection, or the list
// List describes.
type FeedRequest struct {
	Scoped     bool
	Connection string
	List       ListQuery
}

// Envelope is the list envelope of SPEC §2.3, the JSON body of every feed read.
type Envelope struct {
	Object     string  `json:"object"`
	Items      []Item  `json:"data"`
	HasMore    bool    `json:"has_more"`
	NextCursor *string `json:"next_cursor"`
}

// Result is a computed list: the envelope it is sent as, and how it was computed. It encodes as
// its envelope alone.
type Result struct {
	Envelope
	Stats Stats `json:"-"`
	// Revision is the feed revision read before the result was computed: the result is never
	// older than it (SPEC §2.7). ValidUntil is the last moment none of its items changes with
	// the time alone (zero: none can).
	Revision   int64     `json:"-"`
	ValidUntil time.Time `json:"-"`
	// Evidence is kept for the scoped read's diagnostics trail and the console's runs page.
	Evidence map[string]*runs.ConnectionEvidence `json:"-"`

	// body is the encoded envelope, made once: a cached overview is shared by every request of
	// its TTL, so they all send the same bytes instead of encoding the list again (1.9 MB for
	// 1000 connections).
	bodyOnce sync.Once
	body     []byte
}

// newResult returns an empty list (data [], never null).
func newResult() *Result {
	return &Result{Envelope: Envelope{Object: "list", Items: []Item{}}}
}

// Body returns the JSON envelope of the result, encoded on first use.
func (r *Result) Body() []byte {
	r.bodyOnce.Do(func() { r.body = encodeEnvelope(&r.Envelope) }) // encode.go
	return r.body
}

// Feed is the read side that every consumer goes through — the JSON API, its admin routes and
// the console — so the console's pages share the overview cache and single flight with the API.
// It speaks in domain terms (catalog.ErrNotFound, not HTTP statuses); the handlers map.
type Feed struct {
	projector *Projector
	cache     ResultCache
	catalog   catalog.Reader
	evidence  runs.Evidence
	metrics   *FeedMetrics
	revisions Revisions
	// shape names the settings that change items beyond the evidence kind (runs.stale_after):
	// part of every entity tag, so replicas configured differently never share tags.
	shape string

	epochMu sync.Mutex
	epoch   string
}

// WithShape returns the feed with the settings that shape its items named in its tags.
func (f *Feed) WithShape(shape string) *Feed { f.shape = shape; return f }

// dbEpoch is the database's epoch (revision.Epoch), read on first use.
func (f *Feed) dbEpoch(ctx context.Context) (string, error) {
	f.epochMu.Lock()
	defer f.epochMu.Unlock()
	if f.epoch == "" {
		e, err := f.revisions.Epoch(ctx)
		if err != nil {
			return "", err
		}
		f.epoch = e
	}
	return f.epoch, nil
}

// Revisions is the port the feed reads the feed revision through (revision.Reader): one
// statement on the primary key, alone or queued ahead of a read's own statements; and the
// database's epoch, read once.
type Revisions interface {
	Current(ctx context.Context) (int64, error)
	QueueCurrent(b *bootstrap.Batch, rev *int64)
	Epoch(ctx context.Context) (string, error)
}

// NewFeed returns the Feed. evidence is the deep evidence (the projector's) that the runs and
// diagnostics reads use; revs reads the feed revision that every answer is tagged with.
func NewFeed(p *Projector, c ResultCache, cat catalog.Reader, evidence runs.Evidence, m *FeedMetrics, revs Revisions) *Feed {
	return &Feed{projector: p, cache: c, catalog: cat, evidence: evidence, metrics: m, revisions: revs}
}

// Revision reads the current feed revision.
func (f *Feed) Revision(ctx context.Context) (int64, error) { return f.revisions.Current(ctx) }

// Now is the feed's clock (the projector's), which time-dependent fields are judged by.
func (f *Feed) Now() time.Time { return f.projector.now() }

// cacheKey is the cache key of an overview query at a revision: an entry is only ever served
// for the revision it was computed at, so every write — on this replica or another — makes the
// next read compute afresh, and a value computed while a write committed is filed under the
// revision read before it, which the next read no longer asks for.
func cacheKey(rev int64, q ListQuery) string {
	return "r" + strconv.FormatInt(rev, 10) + " " + q.CacheKey()
}

// Read answers a feed request: the overview through the cache, scoped and deep reads bypassing
// it. Every result carries the revision read first (it is never older than that revision) and
// the moment its time-dependent fields stop being true; a cached result past that moment is
// computed again.
func (f *Feed) Read(ctx context.Context, fr FeedRequest) (*Result, Outcome, error) {
	var rev int64
	stamp := func(r *Result, err error) (*Result, error) {
		if err == nil {
			r.Revision, r.ValidUntil = rev, ValidUntil(r.Items)
		}
		return r, err
	}
	if fr.Scoped {
		// Never cached, so its revision needs no key first: it goes out ahead of the scoped
		// read's statements in their round trip.
		f.cache.CountBypass()
		res, err := stamp(f.projector.ScopedWith(ctx, fr.Connection, false, func(b *bootstrap.Batch) { f.revisions.QueueCurrent(b, &rev) }))
		f.metrics.Observe(PipelineScoped, res, err)
		f.metrics.CacheOutcome(Bypass)
		return res, Bypass, err
	}
	rev, err := f.revisions.Current(ctx)
	if err != nil {
		return nil, Bypass, err
	}
	var res *Result
	outcome := Bypass
	switch {
	case fr.List.Pipeline == PipelineDeep:
		f.cache.CountBypass()
		res, err = stamp(f.projector.List(ctx, fr.List))
		f.metrics.Observe(PipelineDeep, res, err)
	default:
		key := cacheKey(rev, fr.List)
		compute := func(ctx context.Context) (*Result, error) {
			r, err := stamp(f.projector.List(ctx, fr.List))
			f.metrics.Observe(PipelineOverview, r, err)
			return r, err
		}
		res, outcome, err = f.cache.Get(ctx, key, compute)
		if err == nil && !res.ValidUntil.IsZero() && f.Now().After(res.ValidUntil) {
			f.cache.Forget(key) // the clock changed an item since it was computed
			res, outcome, err = f.cache.Get(ctx, key, compute)
		}
	}
	f.metrics.CacheOutcome(outcome)
	return res, outcome, err
}

// Connection returns one connection (any status); an unknown id is catalog.ErrNotFound.
func (f *Feed) Connection(ctx context.Context, id string) (*catalog.Entry, error) {
	return f.catalog.Connection(ctx, id)
}

// RunsQuery is a parsed GET /_ref/connections/{id}/runs query.
type RunsQuery struct {
	ConnectionID string
	// Status, when set, keeps only runs of that derived status (one of runs.RunStatuses).
	Status string
	// Limit is the page size, 1..1000 (DefaultRunsLimit when not given).
	Limit int
	// After is the position the page continues after (from the cursor); nil for the first page.
	After *runs.RunKey
}

// DefaultRunsLimit is the page size of the runs route without limit.
const DefaultRunsLimit = 50

// RunList is the body of GET /_ref/connections/{id}/runs: one keyset page of a connection's run
// summaries in run order (last_at DESC, run_id DESC). NextCursor continues after the last run of
// Items and is null exactly when HasMore is false.
type RunList struct {
	Object       string         `json:"object"`
	ConnectionID string         `json:"connection_id"`
	Items        []runs.Summary `json:"data"`
	HasMore      bool           `json:"has_more"`
	NextCursor   *string        `json:"next_cursor"`
	// Revision and ValidUntil are the Result's (SPEC §2.7).
	Revision   int64     `json:"-"`
	ValidUntil time.Time `json:"-"`
}

// Runs lists one page of a connection's runs newest first, optionally only one status. The
// evidence applies the status filter and the cursor's position before its limit (SPEC §4.3), so
// older runs of that status are found behind newer runs of another. With the read model the pages
// cover the connection's whole history; with the spine evidence they cover the run-page window
// (the connector's runs.page_size most recent runs of that status): the last page of the window
// answers has_more false even when older runs exist beyond it.
func (f *Feed) Runs(ctx context.Context, e *catalog.Entry, q RunsQuery) (*RunList, error) {
	if q.Limit <= 0 {
		q.Limit = DefaultRunsLimit
	}
	rev, err := f.revisions.Current(ctx)
	if err != nil {
		return nil, err
	}
	// One more than the page: whether it exists is has_more.
	evs, err := f.evidence.For(ctx, runs.Request{Entries: []catalog.Entry{*e}, History: q.Limit + 1, Status: q.Status, After: q.After})
	if err != nil {
		return nil, err
	}
	out := &RunList{Object: "list", ConnectionID: e.Connection.ConnectionID, Items: []runs.Summary{}, Revision: rev}
	if ev := evs[e.Connection.ConnectionID]; ev != nil {
		out.Items = append(out.Items, ev.Runs[:min(len(ev.Runs), q.Limit)]...)
		if len(ev.Runs) > q.Limit {
			out.HasMore = true
			c := EncodeRunsCursor(runs.KeyOf(&out.Items[len(out.Items)-1]), q)
			out.NextCursor = &c
		}
	}
	out.ValidUntil = runsValidUntil(out.Items, q.Status, f.Now())
	return out, nil
}

// runsValidUntil is how long a page of runs stays true without a write: until its first run in
// progress would be orphaned. A page filtered to failed or in_progress runs changes whenever any
// run of the connection in progress is orphaned, which the page need not show: it is true only now.
func runsValidUntil(items []runs.Summary, status string, now time.Time) time.Time {
	if status == runs.StatusFailed || status == runs.StatusInProgress {
		// The page's membership depends on runs it does not show: an orphaned run joins the
		// failed pages, and one beyond an in_progress page leaves it (has_more turns false).
		return now
	}
	var until time.Time
	for i := range items {
		if t := items[i].TurnsAt; items[i].Status == runs.StatusInProgress && !t.IsZero() && (until.IsZero() || t.Before(until)) {
			until = t
		}
	}
	return until
}

// Diagnostics is the body of GET /_ref/connections/{id}/diagnostics.
type Diagnostics struct {
	Object string `json:"object"`
	// ConnectionID is the connection diagnosed (Item is null for a draft or an unlisted
	// connector's connection).
	ConnectionID       string             `json:"connection_id"`
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

// Diagnostics computes the scoped item of a connection with its evidence trail.
func (f *Feed) Diagnostics(ctx context.Context, e *catalog.Entry) (*Diagnostics, error) {
	res, err := f.projector.Scoped(ctx, e.Connection.ConnectionID, true)
	if err != nil {
		return nil, err
	}
	d := &Diagnostics{Object: "connection_diagnostics", ConnectionID: e.Connection.ConnectionID, ExpectedProfileKey: catalog.ExpectedProfileKey(e.Connection, e.Connector),
		PagesRead: res.Stats.Pages, Candidates: []runs.Candidate{}, Statements: res.Stats.Statements, Timings: res.Stats.StageMillis()}
	if d.PagesRead == nil {
		d.PagesRead = []runs.PageKey{}
	}
	if len(res.Items) == 1 && res.Items[0].ConnectionID == e.Connection.ConnectionID {
		d.Item = &res.Items[0]
	} else {
		// Drafts and unlisted connectors have no feed item; still show the trail. (The scoped
		// read of a draft's id may fall back to the one visible connection of a connector with
		// that id: that item is another connection's, never this one's.)
		evs, err := f.evidence.For(ctx, runs.Request{Entries: []catalog.Entry{*e}, Trail: true, History: runs.HistoryPerConnection})
		if err != nil {
			return nil, err
		}
		res.Evidence = evs
		d.PagesRead = []runs.PageKey{}
		if ev := evs[e.Connection.ConnectionID]; ev != nil && ev.Pages != nil {
			d.PagesRead = ev.Pages
		}
	}
	if ev := res.Evidence[e.Connection.ConnectionID]; ev != nil {
		if ev.Candidates != nil {
			d.Candidates = ev.Candidates
		}
		d.Runs = ev.Runs
	}
	return d, nil
}

// CacheStats reports the overview cache's state (GET /admin/summary-cache).
func (f *Feed) CacheStats() CacheStats { return f.cache.Stats() }

// DropCache drops every cached overview (DELETE /admin/summary-cache).
func (f *Feed) DropCache() { f.cache.Invalidate() }

// FreshOverview is the body of GET /admin/connectors: the overview computed fresh, sent as its
// envelope, and the diagnostics of that computation.
type FreshOverview struct {
	*Result
	Diagnostics FreshDiagnostics `json:"diagnostics"`
}

// FreshDiagnostics describe a fresh overview: its statements and stage timings, and how it
// compares with the cached overview (DiffersFromCache is null when none is cached).
type FreshDiagnostics struct {
	Cache                  Outcome            `json:"cache"`
	Statements             int                `json:"statements"`
	Timings                map[string]float64 `json:"timings"`
	DiffersFromCache       *bool              `json:"differs_from_cache"`
	DifferingConnectionIDs []string           `json:"differing_connection_ids"`
}

// FreshOverview computes the overview bypassing the cache and its single flight, with at most
// concurrency parallel page reads (0: the evidence's default), and compares it with the cached
// value without computing one.
func (f *Feed) FreshOverview(ctx context.Context, concurrency int) (*FreshOverview, error) {
	q := ListQuery{Pipeline: PipelineOverview, Concurrency: concurrency}
	f.cache.CountBypass()
	res, err := f.projector.List(ctx, q)
	f.metrics.Observe(PipelineOverview, res, err)
	if err != nil {
		return nil, err
	}
	fo := &FreshOverview{Result: res, Diagnostics: FreshDiagnostics{Cache: Bypass, Statements: res.Stats.Statements,
		Timings: res.Stats.StageMillis(), DifferingConnectionIDs: []string{}}}
	rev, err := f.revisions.Current(ctx)
	if err != nil {
		return nil, err
	}
	if cached, ok := f.cache.Peek(cacheKey(rev, q)); ok {
		diff := diffItems(cached.Items, res.Items)
		differs := len(diff) > 0
		fo.Diagnostics.DiffersFromCache, fo.Diagnostics.DifferingConnectionIDs = &differs, diff
	}
	return fo, nil
}

// WarmUp computes the overview once and throws it away, outside the cache and the feed's
// metrics, so that the first client after a start does not pay what only a first read costs:
// the pool's first connection (on PostgreSQL its backend's catalog caches, on SQLite its own
// page cache and parsed schema), the database's epoch, and the heap the encoder grows into.
// Without it the first overview was 2.2–2.5× a warm one (issue 14's bound is 2×). It returns
// the projection's figures, which the start logs.
func (f *Feed) WarmUp(ctx context.Context) (Stats, error) {
	if _, err := f.revisions.Current(ctx); err != nil {
		return Stats{}, err
	}
	if _, err := f.dbEpoch(ctx); err != nil {
		return Stats{}, err
	}
	res, err := f.projector.List(ctx, ListQuery{Pipeline: PipelineOverview})
	if err != nil {
		return Stats{}, err
	}
	_ = res.Body()
	return res.Stats, nil
}

// diffItems lists the connections whose items differ between a and b, or that only one holds.
func diffItems(a, b []Item) []string {
	index := map[string]Item{}
	for _, it := range a {
		index[it.ConnectionID] = it
	}
	out := []string{}
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
	return out
}

func sameJSON(a, b Item) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// FleetHealth is the body of GET /_ref/fleet-health: how many visible connections (the
// overview's rows) are in each health state and each status. Every state and every visible
// status is a key, zero included, so a client reads counts without guessing keys.
type FleetHealth struct {
	Object string `json:"object"`
	// ConnectorID is the connector filter; null for the whole fleet.
	ConnectorID *string `json:"connector_id"`
	// Evidence is where the health states came from, as the items' evidence: read_model, or
	// shallow when the overview reads no runs (runs.evidence=spine), where every active
	// connection is unknown/no_run_evidence.
	Evidence    runs.EvidenceKind `json:"evidence"`
	Connections int               `json:"connections"`
	ByHealth    map[string]int    `json:"by_health"`
	ByStatus    map[string]int    `json:"by_status"`
	// Stats are the overview computation's (zero on a cache hit: no database work).
	Stats Stats `json:"-"`
	// Revision and ValidUntil are the overview's (SPEC §2.7): the counts change exactly when it does.
	Revision   int64     `json:"-"`
	ValidUntil time.Time `json:"-"`
}

// visibleStatuses are the statuses a feed row can have (a draft is never a row).
var visibleStatuses = []string{catalog.StatusActive, catalog.StatusPaused, catalog.StatusRevoked}

// CountFleet counts items per health state and per status: the fleet counts of the API and the
// console's header, one definition for both.
func CountFleet(items []Item) (byHealth, byStatus map[string]int) {
	byHealth, byStatus = make(map[string]int, len(HealthStates)), make(map[string]int, len(visibleStatuses))
	for _, s := range HealthStates {
		byHealth[s] = 0
	}
	for _, s := range visibleStatuses {
		byStatus[s] = 0
	}
	for i := range items {
		byHealth[items[i].Health.State]++
		byStatus[items[i].Status]++
	}
	return byHealth, byStatus
}

// FleetHealth counts the visible connections (of one connector when connectorID is set) per
// health state and status. It reads the overview of that filter through the overview cache and
// its single flight, so a console or client that fetches both shares one projection, and costs
// the overview's constant number of statements (none on a hit), whatever the number of
// connections.
func (f *Feed) FleetHealth(ctx context.Context, connectorID string) (*FleetHealth, Outcome, error) {
	res, outcome, err := f.Read(ctx, FeedRequest{List: ListQuery{Pipeline: PipelineOverview, ConnectorID: connectorID}})
	if err != nil {
		return nil, outcome, err
	}
	fh := &FleetHealth{Object: "fleet_health", Evidence: f.projector.OverviewKind(), Connections: len(res.Items), Stats: res.Stats,
		Revision: res.Revision, ValidUntil: res.ValidUntil}
	if connectorID != "" {
		fh.ConnectorID = &connectorID
	}
	if outcome == Hit || outcome == Shared {
		fh.Stats = Stats{}
	}
	fh.ByHealth, fh.ByStatus = CountFleet(res.Items)
	return fh, outcome, nil
}
