package summary

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
)

// Pipeline names how a list is computed.
type Pipeline string

// The pipelines of SPEC §4.6.
const (
	PipelineOverview Pipeline = "overview" // shallow, or read-model evidence when the port says so
	PipelineDeep     Pipeline = "deep"     // depth=deep: run evidence on every row
	PipelineScoped   Pipeline = "scoped"   // ?connection=: one connection, deep
)

// ListQuery is a normalised overview / deep-list query.
type ListQuery struct {
	ConnectorID string
	Limit       int
	After       *catalog.Key
	Pipeline    Pipeline
	Concurrency int
	// History asks deep lists for each connection's recent runs (the console's runs page).
	History int
}

// CacheKey is the normalised key of an overview query.
func (q ListQuery) CacheKey() string {
	b, _ := json.Marshal(struct {
		C string       `json:"c"`
		L int          `json:"l"`
		A *catalog.Key `json:"a"`
		P Pipeline     `json:"p"`
	}{q.ConnectorID, q.Limit, q.After, q.Pipeline})
	return string(b)
}

// cursor is the opaque keyset cursor; it remembers the filter it was made for.
type cursor struct {
	Key         catalog.Key `json:"k"`
	ConnectorID string      `json:"f"`
	Pipeline    Pipeline    `json:"p"`
}

// cursorEncoding is strict: a cursor whose padding bits were altered does not decode.
var cursorEncoding = base64.RawURLEncoding.Strict()

// cursorSumLen is the length of the checksum that ends every cursor. It is no secret (a client
// may page from any key it likes over its own data); it makes an altered or truncated cursor a
// 400 instead of a page that silently starts somewhere else.
const cursorSumLen = 8

// The checksum domains of the cursors: an overview cursor never opens as a runs cursor.
const (
	overviewCursorDomain = "connsum.cursor.v1\n"
	runsCursorDomain     = "connsum.runs-cursor.v1\n"
)

func cursorSum(domain string, payload []byte) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(payload)
	return h.Sum(nil)[:cursorSumLen]
}

// sealCursor makes an opaque cursor of a JSON payload: strict base64url of the payload and its
// checksum. Every keyset cursor of the service (the overview's, a connection's runs) is one.
func sealCursor(domain string, v any) string {
	b, _ := json.Marshal(v)
	return cursorEncoding.EncodeToString(append(b, cursorSum(domain, b)...))
}

// openCursor decodes a cursor made by sealCursor with the same domain, unaltered, into v.
func openCursor(domain, s string, v any) bool {
	if len(s) > 4096 {
		return false
	}
	raw, err := cursorEncoding.DecodeString(s)
	if err != nil || len(raw) <= cursorSumLen {
		return false
	}
	payload, sum := raw[:len(raw)-cursorSumLen], raw[len(raw)-cursorSumLen:]
	return bytes.Equal(sum, cursorSum(domain, payload)) && json.Unmarshal(payload, v) == nil
}

// EncodeCursor makes the cursor that continues after key.
func EncodeCursor(key catalog.Key, q ListQuery) string {
	return sealCursor(overviewCursorDomain, cursor{Key: key, ConnectorID: q.ConnectorID, Pipeline: q.Pipeline})
}

// DecodeCursor checks that s was made by EncodeCursor, unaltered, for the same filter.
func DecodeCursor(s string, q ListQuery) (*catalog.Key, bool) {
	var c cursor
	if !openCursor(overviewCursorDomain, s, &c) || c.ConnectorID != q.ConnectorID || c.Pipeline != q.Pipeline ||
		c.Key.ConnectorID == "" || c.Key.ConnectionID == "" || c.Key.CreatedAt == "" {
		return nil, false
	}
	return &c.Key, true
}

// runsCursor is the keyset cursor of a connection's run list; it remembers the connection and
// the status filter it was made for.
type runsCursor struct {
	Key          runs.RunKey `json:"k"`
	ConnectionID string      `json:"c"`
	Status       string      `json:"s"`
}

// EncodeRunsCursor makes the cursor of GET /_ref/connections/{id}/runs that continues after key.
func EncodeRunsCursor(key runs.RunKey, q RunsQuery) string {
	return sealCursor(runsCursorDomain, runsCursor{Key: key, ConnectionID: q.ConnectionID, Status: q.Status})
}

// DecodeRunsCursor checks that s was made by EncodeRunsCursor, unaltered, for the same
// connection and status filter.
func DecodeRunsCursor(s string, q RunsQuery) (*runs.RunKey, bool) {
	var c runsCursor
	if !openCursor(runsCursorDomain, s, &c) || c.ConnectionID != q.ConnectionID || c.Status != q.Status ||
		c.Key.LastAt == "" || c.Key.RunID == "" {
		return nil, false
	}
	return &c.Key, true
}

// Stats describes one projection: statements and per-stage timings.
type Stats struct {
	Statements int            `json:"statements"`
	Catalog    time.Duration  `json:"-"`
	Retained   time.Duration  `json:"-"`
	Runs       time.Duration  `json:"-"`
	Project    time.Duration  `json:"-"`
	Total      time.Duration  `json:"-"`
	Pages      []runs.PageKey `json:"pages_read"`
}

// DB is the time spent in the database stages.
func (s Stats) DB() time.Duration { return s.Catalog + s.Retained + s.Runs }

// StageMillis renders the stage timings for diagnostics.
func (s Stats) StageMillis() map[string]float64 {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return map[string]float64{"catalog_ms": ms(s.Catalog), "retained_ms": ms(s.Retained), "runs_ms": ms(s.Runs),
		"project_ms": ms(s.Project), "total_ms": ms(s.Total)}
}

// Projector runs the pipelines over the ports.
type Projector struct {
	catalog  catalog.Reader
	retained retained.Snapshot
	deep     runs.Evidence
	overview runs.Evidence
	now      bootstrap.Clock
}

// NewProjector returns a Projector. Deep lists and scoped reads take their runs from deep, the
// overview from overview (the read model, whose heads cost a constant number of statements, or
// runs.Shallow): which is which was decided once, by the runs module's wiring.
func NewProjector(c catalog.Reader, r retained.Snapshot, deep, overview runs.Evidence, now bootstrap.Clock) *Projector {
	return &Projector{catalog: c, retained: r, deep: deep, overview: overview, now: now}
}

// OverviewKind is the evidence kind of the overview's items.
func (p *Projector) OverviewKind() runs.EvidenceKind { return p.overview.Kind() }

// List computes the overview (shallow) or the deep full list.
func (p *Projector) List(ctx context.Context, q ListQuery) (*Result, error) {
	var counter bootstrap.StatementCounter
	ctx = bootstrap.WithStatementCounter(ctx, &counter)
	start := time.Now()
	res := newResult()
	filter := catalog.Filter{ConnectorID: q.ConnectorID, After: q.After, Limit: q.Limit}
	entries, err := p.catalog.Visible(ctx, filter)
	if err != nil {
		return nil, err
	}
	res.Stats.Catalog = time.Since(start)
	if q.Limit > 0 && len(entries) > q.Limit {
		entries = entries[:q.Limit]
		res.HasMore = true
		c := EncodeCursor(catalog.KeyOf(entries[len(entries)-1].Connection), q)
		res.NextCursor = &c
	}
	// The rows' retained rows and run heads are read by the list's filter in SQL, never by a
	// list of every id: the SQL text stays the same size for any number of connections.
	sc := scope{filter: &filter, all: filter.Everything()}
	if err := p.fill(ctx, res, entries, sc, q.Pipeline, runs.Request{Concurrency: q.Concurrency, History: q.History, Scope: &filter}); err != nil {
		return nil, err
	}
	res.Stats.Statements = counter.Count()
	res.Stats.Total = time.Since(start)
	return res, nil
}

// Scoped computes the deep item of one connection (0 or 1 items). It never reads the
// all-connections retained snapshot.
func (p *Projector) Scoped(ctx context.Context, id string, trail bool) (*Result, error) {
	var counter bootstrap.StatementCounter
	ctx = bootstrap.WithStatementCounter(ctx, &counter)
	start := time.Now()
	res := newResult()
	entry, err := p.catalog.ResolveScoped(ctx, id)
	if err != nil {
		return nil, err
	}
	res.Stats.Catalog = time.Since(start)
	if entry != nil {
		// The item carries the last and last successful run only: a connection's history is read
		// for the diagnostics trail (the console's connection page), not for every scoped read
		// (one statement and 64 run rows less: 140 KB of the 150 KB a scoped read allocated).
		req := runs.Request{Trail: trail}
		if trail {
			req.History = runs.HistoryPerConnection
		}
		if err := p.fill(ctx, res, []catalog.Entry{*entry}, scope{one: entry.Connection.ConnectionID}, PipelineScoped, req); err != nil {
			return nil, err
		}
	}
	res.Stats.Statements = counter.Count()
	res.Stats.Total = time.Since(start)
	return res, nil
}

// scope says whose retained rows a projection reads: one connection, every connection (the
// whole snapshot), or the rows of a list's filter.
type scope struct {
	one    string
	all    bool
	filter *catalog.Filter
}

// fill loads retained rows (and run evidence for deep pipelines) and projects the items.
func (p *Projector) fill(ctx context.Context, res *Result, entries []catalog.Entry, sc scope, pl Pipeline, req runs.Request) error {
	t := time.Now()
	var ret map[string]*retained.Retained
	var err error
	switch {
	case sc.one != "":
		var one *retained.Retained
		one, err = p.retained.ForConnection(ctx, sc.one)
		ret = map[string]*retained.Retained{sc.one: one}
	case sc.all:
		ret, err = p.retained.All(ctx, nil)
	case len(entries) == 0:
		ret = map[string]*retained.Retained{}
	default:
		ret, err = p.retained.Of(ctx, p.catalog.IDs(*sc.filter))
	}
	if err != nil {
		return err
	}
	res.Stats.Retained = time.Since(t)
	src := p.deep
	if pl == PipelineOverview {
		src = p.overview
	}
	if len(entries) > 0 {
		t = time.Now()
		req.Entries = entries
		res.Evidence, err = src.For(ctx, req)
		if err != nil {
			return err
		}
		res.Stats.Runs = time.Since(t)
		res.Stats.Pages = pagesRead(entries, res.Evidence)
	}
	t = time.Now()
	now, kind := p.now(), src.Kind()
	res.Items = make([]Item, 0, len(entries))
	for _, e := range entries {
		res.Items = append(res.Items, Project(Input{Entry: e, Retained: ret[e.Connection.ConnectionID],
			Evidence: res.Evidence[e.Connection.ConnectionID], EvidenceKind: kind, Now: now}))
	}
	res.Stats.Project = time.Since(t)
	return nil
}

// pagesRead lists the run pages the evidence read, each once, in the order of the entries.
func pagesRead(entries []catalog.Entry, evs map[string]*runs.ConnectionEvidence) []runs.PageKey {
	var out []runs.PageKey
	if len(evs) == 0 {
		return out
	}
	seen := map[runs.PageKey]bool{}
	for _, e := range entries {
		if ev := evs[e.Connection.ConnectionID]; ev != nil {
			for _, k := range ev.Pages {
				if !seen[k] {
					seen[k] = true
					out = append(out, k)
				}
			}
		}
	}
	return out
}
