package summary

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/uptrace/bun/schema"

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

// Stats describes one projection: statements and per-stage timings. The catalog's, the retained
// rows' and the run heads' statements go out together (bootstrap.Batch): Catalog is that round
// trip, Retained is zero, and Runs is what the run evidence read after it (histories, trails,
// the spine's run pages).
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
	filter := catalog.Filter{ConnectorID: q.ConnectorID, After: q.After, Limit: q.Limit}
	return p.list(ctx, filter, q.Pipeline, runs.Request{Concurrency: q.Concurrency, History: q.History}, &q)
}

// list projects the rows of filter with the evidence of pipeline pl (req without its scope,
// which is the filter); with page, a keyset page of page.Limit rows and its cursor.
func (p *Projector) list(ctx context.Context, filter catalog.Filter, pl Pipeline, req runs.Request, page *ListQuery) (*Result, error) {
	var counter bootstrap.StatementCounter
	ctx = bootstrap.WithStatementCounter(ctx, &counter)
	start := time.Now()
	res := newResult()
	var b bootstrap.Batch
	var entries []catalog.Entry
	p.catalog.QueueVisible(&b, filter, &entries)
	// The rows' retained rows and run heads are read by the list's filter in SQL, never by a
	// list of every id: the SQL text stays the same size for any number of connections, and
	// the reads need not wait for the catalog's rows, so on PostgreSQL they go out with it in
	// one round trip. Elsewhere the catalog's rows are read first, and an empty list reads
	// nothing more.
	if !b.Pipelined() {
		if err := b.Run(ctx); err != nil {
			return nil, err
		}
		if len(entries) == 0 {
			res.Stats.Statements, res.Stats.Total = counter.Count(), time.Since(start)
			return res, nil
		}
	}
	var ret map[string]*retained.Retained
	var ids schema.QueryAppender // nil: every connection, the whole snapshot
	if !filter.Everything() {
		ids = p.catalog.IDs(filter)
	}
	p.retained.QueueOf(&b, ids, &ret)
	src := p.source(pl)
	req.Scope = &filter
	complete := queueEvidence(&b, src, req, nil)
	if err := b.Run(ctx); err != nil {
		return nil, err
	}
	res.Stats.Catalog = time.Since(start)
	if page != nil && page.Limit > 0 && len(entries) > page.Limit {
		entries = entries[:page.Limit]
		res.HasMore = true
		c := EncodeCursor(catalog.KeyOf(entries[len(entries)-1].Connection), *page)
		res.NextCursor = &c
	}
	if err := p.project(ctx, res, entries, ret, src, complete); err != nil {
		return nil, err
	}
	res.Stats.Statements = counter.Count()
	res.Stats.Total = time.Since(start)
	return res, nil
}

// Scoped computes the deep item of one connection (0 or 1 items). It never reads the
// all-connections retained snapshot.
func (p *Projector) Scoped(ctx context.Context, id string, trail bool) (*Result, error) {
	return p.ScopedWith(ctx, id, trail, nil)
}

// ScopedWith is Scoped with the reads that first queues sent ahead of its own, in the same
// round trip (the feed's revision read). They are the caller's: Stats.Statements does not count
// them.
func (p *Projector) ScopedWith(ctx context.Context, id string, trail bool, first func(b *bootstrap.Batch)) (*Result, error) {
	var counter bootstrap.StatementCounter
	ctx = bootstrap.WithStatementCounter(ctx, &counter)
	start := time.Now()
	res := newResult()
	var b bootstrap.Batch
	if first != nil {
		first(&b)
	}
	callers := b.Len()
	var entry *catalog.Entry
	p.catalog.QueueResolveScoped(&b, id, &entry)
	// The item carries the last and last successful run only: a connection's history is read
	// for the diagnostics trail (the console's connection page), not for every scoped read
	// (one statement and 64 run rows less: 140 KB of the 150 KB a scoped read allocated).
	req := runs.Request{Trail: trail}
	if trail {
		req.History = runs.HistoryPerConnection
	}
	// The connection's rows are read under the asked id with its resolution, in the same round
	// trip: a scoped read names a connection but for the connector-id fallback, whose
	// connection's rows are read after (and the rows read under the asked id are not used).
	// Elsewhere (SQLite) the connection is resolved first and its rows read once it is known.
	var ret *retained.Retained
	var complete func(ctx context.Context, entries []catalog.Entry) (map[string]*runs.ConnectionEvidence, error)
	ahead := b.Pipelined()
	if ahead {
		p.retained.QueueForConnection(&b, id, &ret)
		complete = queueEvidence(&b, p.deep, req, []string{id})
	}
	if err := b.Run(ctx); err != nil {
		return nil, err
	}
	res.Stats.Catalog = time.Since(start)
	if entry != nil {
		if got := entry.Connection.ConnectionID; got != id || !ahead {
			p.retained.QueueForConnection(&b, got, &ret)
			complete = queueEvidence(&b, p.deep, req, []string{got})
			if err := b.Run(ctx); err != nil {
				return nil, err
			}
		}
		if err := p.project(ctx, res, []catalog.Entry{*entry}, map[string]*retained.Retained{entry.Connection.ConnectionID: ret}, p.deep, complete); err != nil {
			return nil, err
		}
	}
	res.Stats.Statements = counter.Count() - callers
	res.Stats.Total = time.Since(start)
	return res, nil
}

// source is the run evidence of a pipeline.
func (p *Projector) source(pl Pipeline) runs.Evidence {
	if pl == PipelineOverview {
		return p.overview
	}
	return p.deep
}

// queuedEvidence is run evidence whose statements can go out in the round trip of the catalog's
// and the retained rows' before the entries are known (runs.ReadModelEvidence.Queue).
type queuedEvidence interface {
	Queue(b *bootstrap.Batch, req runs.Request, ids []string) func(ctx context.Context, entries []catalog.Entry) (map[string]*runs.ConnectionEvidence, error)
}

// queueEvidence queues src's statements for req on b when src can, and returns what completes
// the evidence of the entries once b has run; other evidence (the spine's run pages, which
// depend on the entries) is read then.
func queueEvidence(b *bootstrap.Batch, src runs.Evidence, req runs.Request, ids []string) func(ctx context.Context, entries []catalog.Entry) (map[string]*runs.ConnectionEvidence, error) {
	if q, ok := src.(queuedEvidence); ok {
		return q.Queue(b, req, ids)
	}
	return func(ctx context.Context, entries []catalog.Entry) (map[string]*runs.ConnectionEvidence, error) {
		req.Entries = entries
		return src.For(ctx, req)
	}
}

// project completes the run evidence of the entries (complete, of src) and projects the items.
func (p *Projector) project(ctx context.Context, res *Result, entries []catalog.Entry, ret map[string]*retained.Retained, src runs.Evidence,
	complete func(ctx context.Context, entries []catalog.Entry) (map[string]*runs.ConnectionEvidence, error)) error {
	if len(entries) > 0 {
		t := time.Now()
		var err error
		res.Evidence, err = complete(ctx, entries)
		if err != nil {
			return err
		}
		res.Stats.Runs = time.Since(t)
		res.Stats.Pages = pagesRead(entries, res.Evidence)
	}
	t := time.Now()
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
