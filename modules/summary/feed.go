package summary

import (
	"context"
	"errors"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/runs"
)

// Feed is the read side that every consumer goes through — the JSON API and the console — so
// the console's pages share the overview cache and single flight with the API.
type Feed struct {
	projector *Projector
	cache     Cache
	catalog   catalog.Reader
	evidence  runs.Evidence
	metrics   *Metrics
}

// NewFeed returns the Feed.
func NewFeed(p *Projector, c Cache, cat catalog.Reader, ev runs.Evidence, m *Metrics) *Feed {
	return &Feed{projector: p, cache: c, catalog: cat, evidence: ev, metrics: m}
}

// Read answers a feed request: the overview through the cache, scoped and deep reads bypassing it.
func (f *Feed) Read(ctx context.Context, fr FeedRequest) (*Result, Outcome, error) {
	var res *Result
	var err error
	outcome := Bypass
	switch {
	case fr.Scoped:
		f.cache.CountBypass()
		res, err = f.projector.Scoped(ctx, fr.Connection, false)
		f.metrics.Observe(PipelineScoped, res, err)
	case fr.List.Pipeline == PipelineDeep:
		f.cache.CountBypass()
		res, err = f.projector.List(ctx, fr.List)
		f.metrics.Observe(PipelineDeep, res, err)
	default:
		var v any
		v, outcome, err = f.cache.Get(ctx, fr.List.CacheKey(), func(ctx context.Context) (any, error) {
			r, err := f.projector.List(ctx, fr.List)
			f.metrics.Observe(PipelineOverview, r, err)
			return r, err
		})
		if err == nil {
			res = v.(*Result)
		}
	}
	f.metrics.CacheOutcome(outcome)
	return res, outcome, err
}

// Connection returns one connection (any status) or a 404 error.
func (f *Feed) Connection(ctx context.Context, id string) (*catalog.Entry, error) {
	e, err := f.catalog.Connection(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, httpx.NotFound("connection_id", "no connection %q", id)
	}
	return e, err
}

// Runs lists a connection's runs newest first, optionally only one status, at most limit. The
// evidence applies the status filter before its limit (SPEC §4.3), so older runs of that status
// are found behind newer runs of another.
func (f *Feed) Runs(ctx context.Context, e *catalog.Entry, status string, limit int) ([]runs.Summary, error) {
	evs, err := f.evidence.For(ctx, runs.Request{Entries: []catalog.Entry{*e}, History: limit, Status: status})
	if err != nil {
		return nil, err
	}
	out := []runs.Summary{}
	if ev := evs[e.Connection.ConnectionID]; ev != nil {
		out = append(out, ev.Runs[:min(len(ev.Runs), limit)]...)
	}
	return out, nil
}

// Diagnostics computes the scoped item of a connection with its evidence trail.
func (f *Feed) Diagnostics(ctx context.Context, e *catalog.Entry) (*Diagnostics, error) {
	res, err := f.projector.Scoped(ctx, e.Connection.ConnectionID, true)
	if err != nil {
		return nil, err
	}
	d := &Diagnostics{Object: "connection_diagnostics", ExpectedProfileKey: catalog.ExpectedProfileKey(e.Connection, e.Connector),
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
