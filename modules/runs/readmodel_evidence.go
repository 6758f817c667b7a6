package runs

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
)

// ReadModelEvidence is the Evidence port over the maintained read model: heads for the latest
// and latest successful run (a constant number of statements for any number of connections),
// and a connection's whole attributed history without the page window of the spine pipeline.
type ReadModelEvidence struct{ m *ReadModel }

// NewReadModelEvidence returns the read-model implementation of Evidence.
func NewReadModelEvidence(m *ReadModel) *ReadModelEvidence { return &ReadModelEvidence{m: m} }

// Kind implements Evidence.
func (e *ReadModelEvidence) Kind() EvidenceKind { return EvidenceReadModel }

// HistoryPerConnection is how many runs a deep read lists per connection.
const HistoryPerConnection = 64

// headRow is one row of run_heads.
type headRow struct {
	ConnectionID     string  `bun:"connection_id"`
	ConnectorID      string  `bun:"connector_id"`
	LastRunID        *string `bun:"last_run_id"`
	LastSuccessRunID *string `bun:"last_success_run_id"`
}

// For implements Evidence: one statement for the heads of every requested connection; a deep
// request (History > 0) adds one index-ordered read per connection (a keyset seek with
// Request.After, over the whole history); a trail adds the connector's recent runs with the
// matcher's decisions.
func (e *ReadModelEvidence) For(ctx context.Context, req Request) (map[string]*ConnectionEvidence, error) {
	if len(req.Entries) == 0 {
		return map[string]*ConnectionEvidence{}, nil
	}
	ids := make([]string, len(req.Entries))
	for i, en := range req.Entries {
		ids[i] = en.Connection.ConnectionID
	}
	var b bootstrap.Batch
	complete := e.Queue(&b, req, ids)
	if err := b.Run(ctx); err != nil {
		return nil, fmt.Errorf("runs: read model heads: %w", err)
	}
	return complete(ctx, req.Entries)
}

// Queue queues For's heads statement on b before the request's entries are known, for the
// connections of req.Scope (its filter, in SQL) or else of ids, so that a read sends it in the
// same round trip as its catalog and retained statements. The function it returns completes For
// for entries once b has run; a deep request's history and a trail are read then, by statements
// of their own.
func (e *ReadModelEvidence) Queue(b *bootstrap.Batch, req Request, ids []string) func(ctx context.Context, entries []catalog.Entry) (map[string]*ConnectionEvidence, error) {
	now := e.m.now()
	heads := map[string]*headRuns{}
	if req.Scope != nil || len(ids) > 0 {
		heads = e.queueHeads(b, req, ids, now)
	}
	return func(ctx context.Context, entries []catalog.Entry) (map[string]*ConnectionEvidence, error) {
		out := make(map[string]*ConnectionEvidence, len(entries))
		for _, en := range entries {
			ev := &ConnectionEvidence{Runs: []Summary{}}
			if h := heads[en.Connection.ConnectionID]; h != nil {
				ev.LastRun, ev.LastSuccessfulRun = h.last, h.success
			}
			out[en.Connection.ConnectionID] = ev
		}
		if err := e.history(ctx, req, entries, out, now); err != nil {
			return nil, err
		}
		if req.Trail {
			for _, en := range entries {
				if err := e.trail(ctx, en, out[en.Connection.ConnectionID], now); err != nil {
					return nil, err
				}
			}
		}
		return out, nil
	}
}

// history lists each entry's runs for a deep request (History > 0).
func (e *ReadModelEvidence) history(ctx context.Context, req Request, entries []catalog.Entry, out map[string]*ConnectionEvidence, now time.Time) error {
	if req.History <= 0 {
		return nil
	}
	for _, en := range entries {
		q := e.m.db.NewSelect().ColumnExpr(runRowColumns).Table("run_summaries").Where("connection_id = ?", en.Connection.ConnectionID)
		if req.Status != "" {
			q = e.whereStatus(q, req.Status, now)
		}
		if req.After != nil {
			// The keyset seek of idx_run_summaries_connection_order (…_status with a filter).
			q = q.Where("(last_at, run_id) < (?, ?)", req.After.LastAt, req.After.RunID)
		}
		rows, err := scanRunRows(ctx, q.OrderExpr("last_at DESC, run_id DESC").Limit(int64(req.History)))
		if err != nil {
			return fmt.Errorf("runs: read model history: %w", err)
		}
		ev := out[en.Connection.ConnectionID]
		for i := range rows {
			// The query already filtered; this keeps the contract for a status no
			// derived status can have (e.g. the internal "started").
			if s := rows[i].Partial().Resolve(now, e.m.o.StaleAfter); req.Status == "" || s.Status == req.Status {
				ev.Runs = append(ev.Runs, s)
			}
		}
	}
	return nil
}

// whereStatus keeps the runs whose derived status at now is status, in SQL so that the filter
// applies before the limit. The stored status_key is the derived status except for a started run
// without terminal event, which Resolve turns into in_progress while its last event is at most
// stale_after old and into failed (orphaned) after that.
func (e *ReadModelEvidence) whereStatus(q *bun.SelectQuery, status string, now time.Time) *bun.SelectQuery {
	// Stored times have whole milliseconds: rounding the cutoff up to one keeps the text
	// comparison exact (last_at >= cutoff ⇔ now - last_at <= stale_after).
	cutoff := now.Add(-e.m.o.StaleAfter)
	if r := cutoff.Truncate(time.Millisecond); !r.Equal(cutoff) {
		cutoff = r.Add(time.Millisecond)
	}
	switch status {
	case StatusInProgress:
		return q.Where("(status_key = ? OR (status_key = ? AND last_at >= ?))", status, statusStarted, bootstrap.FormatTime(cutoff))
	case StatusFailed:
		return q.Where("(status_key = ? OR (status_key = ? AND last_at < ?))", status, statusStarted, bootstrap.FormatTime(cutoff))
	}
	return q.Where("status_key = ?", status)
}

// headRuns are a connection's last and last successful run, resolved at the read's time.
type headRuns struct{ last, success *Summary }

// queueHeads queues the statement that reads the last and last successful run of the
// connections of req.Scope (the list's filter, in SQL) or of ids: run_heads joined to
// run_summaries in SQL. The map it returns is filled when b runs. Before, the heads and then
// their runs were read by id lists (at 9,500 connections 209 KB and 305 KB of SQL text, 4.6 and
// 6.8 ms to plan, and a hash semi join over every run row).
func (e *ReadModelEvidence) queueHeads(b *bootstrap.Batch, req Request, ids []string, now time.Time) map[string]*headRuns {
	db := e.m.db
	join := "JOIN run_summaries AS r ON r.connector_id = h.connector_id AND r.run_id IN (h.last_run_id, h.last_success_run_id)"
	if bootstrap.DialectOf(db) == bootstrap.Postgres {
		// PostgreSQL plans the join above as a hash join over every run row (3.6 s at 10,000
		// connections, 500 K runs); the lateral form is one primary-key probe per head (≈60 ms).
		// SQLite probes the primary key for the plain join already.
		join = "CROSS JOIN LATERAL (SELECT * FROM run_summaries AS r WHERE r.connector_id = h.connector_id " +
			"AND r.run_id IN (h.last_run_id, h.last_success_run_id)) AS r"
	}
	q := db.NewSelect().ColumnExpr("h.connection_id, h.last_run_id, h.last_success_run_id, " + prefixed("r.", runRowColumns)).
		TableExpr("run_heads AS h").Join(join)
	// Every visible connection: every head, with no condition at all (the few heads of drafts
	// and unlisted connectors are dropped when the entries are known, with the rows of a scope
	// beyond a list's limit).
	switch {
	case req.Scope == nil:
		q = q.Where("h.connection_id IN (?)", bun.List(ids))
	case !req.Scope.Everything():
		q = q.Where("h.connection_id ?", catalog.IDs(db, *req.Scope))
	}
	out := map[string]*headRuns{}
	b.Queue(db, q, func(rows bootstrap.Rows) error {
		var connID string
		var last, success sql.NullString
		var sc runScanner
		dest := append([]any{&connID, &last, &success}, sc.dest()...)
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("runs: read model heads: %w", err)
			}
			h := out[connID]
			if h == nil {
				h = &headRuns{}
				out[connID] = h
			}
			r := sc.row()
			s := r.Partial().Resolve(now, e.m.o.StaleAfter)
			// A last run that succeeded is both, one summary (as the spine's evidence has it):
			// the item only reads them.
			if last.Valid && last.String == r.RunID {
				h.last = &s
			}
			if success.Valid && success.String == r.RunID {
				h.success = &s
			}
		}
		return nil
	})
	return out
}

// trail lists the connector's most recent runs with the matcher's decision for this connection.
func (e *ReadModelEvidence) trail(ctx context.Context, en catalog.Entry, ev *ConnectionEvidence, now time.Time) error {
	rows, err := scanRunRows(ctx, e.m.db.NewSelect().ColumnExpr(runRowColumns).Table("run_summaries").
		Where("connector_id = ?", en.Connector.ConnectorID).OrderExpr("last_at DESC, run_id DESC").Limit(HistoryPerConnection))
	if err != nil {
		return fmt.Errorf("runs: read model trail: %w", err)
	}
	t := Target{ConnectionID: en.Connection.ConnectionID, ExpectedProfileKey: catalog.ExpectedProfileKey(en.Connection, en.Connector)}
	key := PageKey{ConnectorID: en.Connector.ConnectorID}
	ev.Pages = append(ev.Pages, key)
	for i := range rows {
		s := rows[i].Partial().Resolve(now, e.m.o.StaleAfter)
		ev.Candidates = append(ev.Candidates, candidateOf(&s, key, t))
	}
	return nil
}

// runRowColumns are the columns of a RunRow in the order of scanDest.
const runRowColumns = "connector_id, run_id, connection_id, profile_key, connection_ref, first_at, last_at, event_count, " +
	"status_key, terminal_status, started, last_status, event_failure_reason, bs_status, bs_wait_reason, known_gaps, " +
	"collection_facts, last_event_seq"

// runRowColumnList is runRowColumns as a list (a COPY's columns).
var runRowColumnList = strings.Split(runRowColumns, ", ")

// prefixed qualifies every column of a column list with prefix.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = prefix + parts[i]
	}
	return strings.Join(parts, ", ")
}

// runScanner scans runRowColumns without reflection: into fields and buffers that
// database/sql fills through its fast paths (*string, *bool, *int64, *sql.NullString).
type runScanner struct {
	r     RunRow
	null  [8]sql.NullString
	count int64
}

// dest returns the scan destinations, in the order of runRowColumns.
func (s *runScanner) dest() []any {
	r := &s.r
	return []any{&r.ConnectorID, &r.RunID, &s.null[0], &s.null[1], &s.null[2], &r.FirstAt, &r.LastAt, &s.count,
		&r.StatusKey, &s.null[3], &r.Started, &s.null[4], &s.null[5], &s.null[6], &s.null[7], &r.KnownGaps,
		&r.CollectionFacts, &r.LastEventSeq}
}

// row returns the row last scanned.
func (s *runScanner) row() RunRow {
	r := s.r
	var p [len(s.null)]*string
	bootstrap.StringsOrNil(p[:], s.null[:])
	r.ConnectionID, r.ProfileKey, r.ConnectionRef = p[0], p[1], p[2]
	r.TerminalStatus, r.LastStatus, r.EventFailureReason = p[3], p[4], p[5]
	r.BSStatus, r.BSWaitReason = p[6], p[7]
	r.EventCount = int(s.count)
	return r
}

// scanRunRows runs q (selecting runRowColumns) and scans its rows without reflection.
func scanRunRows(ctx context.Context, q *bun.SelectQuery) ([]RunRow, error) {
	rows, err := q.Rows(ctx)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunRow
	var sc runScanner
	dest := sc.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, sc.row())
	}
	return out, rows.Err()
}
