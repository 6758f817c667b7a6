package runs

import (
	"context"
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

type headRow struct {
	ConnectionID     string  `bun:"connection_id"`
	ConnectorID      string  `bun:"connector_id"`
	LastRunID        *string `bun:"last_run_id"`
	LastSuccessRunID *string `bun:"last_success_run_id"`
}

// For implements Evidence: two statements for the heads of every requested connection; a deep
// request (History > 0) adds one index-ordered read per connection (a keyset seek with
// Request.After, over the whole history); a trail adds the connector's recent runs with the
// matcher's decisions.
func (e *ReadModelEvidence) For(ctx context.Context, req Request) (map[string]*ConnectionEvidence, error) {
	out := make(map[string]*ConnectionEvidence, len(req.Entries))
	if len(req.Entries) == 0 {
		return out, nil
	}
	db := e.m.db
	ids := make([]string, len(req.Entries))
	for i, en := range req.Entries {
		ids[i] = en.Connection.ConnectionID
		out[ids[i]] = &ConnectionEvidence{Runs: []Summary{}}
	}
	var heads []headRow
	if err := db.NewSelect().Table("run_heads").Column("connection_id", "connector_id", "last_run_id", "last_success_run_id").
		Where("connection_id IN (?)", bun.List(ids)).Scan(ctx, &heads); err != nil {
		return nil, fmt.Errorf("runs: read model heads: %w", err)
	}
	var want [][2]string
	for _, h := range heads {
		for _, id := range []*string{h.LastRunID, h.LastSuccessRunID} {
			if id != nil {
				want = append(want, [2]string{h.ConnectorID, *id})
			}
		}
	}
	byKey, err := e.rows(ctx, want)
	if err != nil {
		return nil, err
	}
	now := e.m.now()
	resolve := func(connector string, id *string) *Summary {
		if id == nil {
			return nil
		}
		r, ok := byKey[[2]string{connector, *id}]
		if !ok {
			return nil
		}
		s := r.Partial().Resolve(now, e.m.o.StaleAfter)
		return &s
	}
	for _, h := range heads {
		ev := out[h.ConnectionID]
		ev.LastRun, ev.LastSuccessfulRun = resolve(h.ConnectorID, h.LastRunID), resolve(h.ConnectorID, h.LastSuccessRunID)
	}
	if req.History > 0 {
		for _, en := range req.Entries {
			var rows []RunRow
			q := db.NewSelect().Model(&rows).Where("connection_id = ?", en.Connection.ConnectionID)
			if req.Status != "" {
				q = e.whereStatus(q, req.Status, now)
			}
			if req.After != nil {
				// The keyset seek of idx_run_summaries_connection_order (…_status with a filter).
				q = q.Where("(last_at, run_id) < (?, ?)", req.After.LastAt, req.After.RunID)
			}
			if err := q.OrderExpr("last_at DESC, run_id DESC").Limit(int64(req.History)).Scan(ctx); err != nil {
				return nil, fmt.Errorf("runs: read model history: %w", err)
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
	}
	if req.Trail {
		for _, en := range req.Entries {
			if err := e.trail(ctx, en, out[en.Connection.ConnectionID], now); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
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

// rows loads run rows by (connector, run id) in one statement.
func (e *ReadModelEvidence) rows(ctx context.Context, want [][2]string) (map[[2]string]*RunRow, error) {
	out := map[[2]string]*RunRow{}
	if len(want) == 0 {
		return out, nil
	}
	var sb strings.Builder
	args := make([]any, 0, 2*len(want))
	for i, k := range want {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?)")
		args = append(args, k[0], k[1])
	}
	var rows []RunRow
	if err := e.m.db.NewSelect().Model(&rows).
		Where("(connector_id, run_id) IN (VALUES "+sb.String()+")", args...).Scan(ctx); err != nil {
		return nil, fmt.Errorf("runs: read model runs: %w", err)
	}
	for i := range rows {
		out[[2]string{rows[i].ConnectorID, rows[i].RunID}] = &rows[i]
	}
	return out, nil
}

// trail lists the connector's most recent runs with the matcher's decision for this connection.
func (e *ReadModelEvidence) trail(ctx context.Context, en catalog.Entry, ev *ConnectionEvidence, now time.Time) error {
	var rows []RunRow
	if err := e.m.db.NewSelect().Model(&rows).Where("connector_id = ?", en.Connector.ConnectorID).
		OrderExpr("last_at DESC, run_id DESC").Limit(HistoryPerConnection).Scan(ctx); err != nil {
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
