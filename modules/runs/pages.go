package runs

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
)

// PageKey names a run page: a connector's most recent runs, optionally only those whose
// derived status equals Status.
type PageKey struct {
	ConnectorID string `json:"connector_id"`
	Status      string `json:"status,omitempty"`
}

// Page is a run page in run order.
type Page struct {
	PageKey
	Runs []Summary `json:"-"`
	// Exhausted is true when the page holds every run of the connector that passes the filter.
	Exhausted bool `json:"exhausted"`
	// Scanned counts the runs folded to fill the page.
	Scanned int `json:"runs_scanned"`
}

// PageSource reads run pages from the spine. The work of one page is bounded by the page: it
// walks the connector's events newest-first (idx_spine_events_source_recent) only until enough
// distinct runs are found, then loads just those runs (idx_spine_events_source_run_summary).
type PageSource struct {
	db         bun.IDB
	pageSize   int
	staleAfter time.Duration
	now        bootstrap.Clock
}

// NewPageSource returns a PageSource.
func NewPageSource(db bun.IDB, o Options, now bootstrap.Clock) *PageSource {
	o = o.WithDefaults()
	return &PageSource{db: db, pageSize: o.PageSize, staleAfter: o.StaleAfter, now: now}
}

// MaxScanFactor bounds a filtered page: it folds at most MaxScanFactor × page_size runs looking
// for matches, so a connector whose recent runs rarely pass the filter costs a bounded read.
const MaxScanFactor = 8

type recentRow struct {
	RunID      string `bun:"run_id"`
	OccurredAt string `bun:"occurred_at"`
}

// Read reads one page.
func (p *PageSource) Read(ctx context.Context, key PageKey) (*Page, error) {
	page := &Page{PageKey: key}
	now := p.now()
	seen := map[string]bool{}
	scanLimit := p.pageSize * 8
	var after *recentRow
	for len(page.Runs) < p.pageSize {
		q := p.db.NewSelect().Table("spine_events").Column("run_id", "occurred_at").
			Where("source_kind = 'connector' AND source_id = ? AND run_id IS NOT NULL", key.ConnectorID)
		if after != nil {
			q = q.Where("(occurred_at, run_id) < (?, ?)", after.OccurredAt, after.RunID)
		}
		var rows []recentRow
		if err := q.OrderExpr("occurred_at DESC, run_id DESC").Limit(int64(scanLimit)).Scan(ctx, &rows); err != nil {
			return nil, fmt.Errorf("runs: scan recent runs of %s: %w", key.ConnectorID, err)
		}
		var fresh []string
		for _, r := range rows {
			if !seen[r.RunID] {
				seen[r.RunID] = true
				fresh = append(fresh, r.RunID)
			}
		}
		exhausted := len(rows) < scanLimit
		truncated := false
		if key.Status == "" && len(fresh) > p.pageSize-len(page.Runs) {
			fresh, truncated = fresh[:p.pageSize-len(page.Runs)], true
		}
		if len(fresh) > 0 {
			runs, err := p.load(ctx, key.ConnectorID, fresh, now)
			if err != nil {
				return nil, err
			}
			page.Scanned += len(runs)
			for _, s := range runs {
				if key.Status == "" || s.Status == key.Status {
					page.Runs = append(page.Runs, s)
				}
			}
		}
		if exhausted {
			// Runs cut off to fit the page exist beyond it: the page does not hold them all.
			page.Exhausted = !truncated
			break
		}
		if page.Scanned >= p.pageSize*MaxScanFactor {
			break // window reached: older matches are left out, honestly null
		}
		last := rows[len(rows)-1]
		after = &last
		scanLimit = min(scanLimit*2, 8192) // a filtered page that finds few matches widens its steps
	}
	SortRuns(page.Runs)
	if len(page.Runs) > p.pageSize {
		page.Runs, page.Exhausted = page.Runs[:p.pageSize], false
	}
	return page, nil
}

// load folds the given runs of one connector in one statement.
func (p *PageSource) load(ctx context.Context, connectorID string, runIDs []string, now time.Time) ([]Summary, error) {
	var rows []EventRow
	err := p.db.NewSelect().Table("spine_events").
		Column("run_id", "event_seq", "event_type", "occurred_at", "status", "connection_ref", "failure_reason",
			"bs_present", "bs_status", "bs_wait_reason", "bs_profile_key").
		ColumnExpr("CASE WHEN event_type IN (?) THEN data END AS data", bun.List(terminalTypeList)).
		Where("source_kind = 'connector' AND source_id = ? AND run_id IN (?)", connectorID, bun.List(runIDs)).
		OrderExpr("run_id, event_seq").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("runs: load runs of %s: %w", connectorID, err)
	}
	out := make([]Summary, 0, len(runIDs))
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].RunID == rows[i].RunID {
			j++
		}
		out = append(out, Fold(rows[i].RunID, rows[i:j], now, p.staleAfter))
		i = j
	}
	return out, nil
}

// PageReader reads pages for one projection: each (connector, status) page at most once,
// shared by every sibling connection, including concurrent readers of the same page.
type PageReader struct {
	src   *PageSource
	mu    sync.Mutex
	calls map[PageKey]*pageCall
	order []PageKey
}

type pageCall struct {
	done chan struct{}
	page *Page
	err  error
}

// NewPageReader returns a reader whose memory lives as long as one projection.
func NewPageReader(src *PageSource) *PageReader {
	return &PageReader{src: src, calls: map[PageKey]*pageCall{}}
}

// Page returns the page for key, reading it on first use; concurrent callers wait for the
// read in flight.
func (r *PageReader) Page(ctx context.Context, key PageKey) (*Page, error) {
	r.mu.Lock()
	if c, ok := r.calls[key]; ok {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.page, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &pageCall{done: make(chan struct{})}
	r.calls[key] = c
	r.order = append(r.order, key)
	r.mu.Unlock()
	c.page, c.err = r.src.Read(ctx, key)
	close(c.done)
	return c.page, c.err
}

// Read lists the pages read so far, in the order they were first asked for.
func (r *PageReader) Read() []PageKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]PageKey(nil), r.order...)
}
