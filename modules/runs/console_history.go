package runs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"connsum/modules/bootstrap"
)

// ConsoleHistory is what the owner console draws beyond the feed, read from the maintained run
// read model: each overview row's recent runs (the history strip), the fleet timeline (the
// newest runs across connections) and a connection's outcomes per day. Every read is one
// statement whatever the number of connections: PostgreSQL walks each connection's
// idx_run_summaries_connection_order (or _status) through a LATERAL join, SQLite through a
// correlated rowid lookup, so a read costs (connections × rows wanted) index entries, never a
// scan of the history.
type ConsoleHistory struct{ m *ReadModel }

// ConsoleHistoryOf returns the console reads of ev, or nil when ev is not the read model (with
// runs.evidence=spine nothing maintains run_summaries).
func ConsoleHistoryOf(ev Evidence) *ConsoleHistory {
	if rm, ok := ev.(*ReadModelEvidence); ok {
		return &ConsoleHistory{m: rm.m}
	}
	return nil
}

// AttributedRun is a run summary with the connection it is attributed to.
type AttributedRun struct {
	ConnectionID string
	Summary
}

// latestPerConnection is one statement listing, for each of ids, its newest perConnection runs
// (of status when set, after the position after when set), merged newest first and cut at
// limit when limit > 0.
func (h *ConsoleHistory) latestPerConnection(ctx context.Context, ids []string, perConnection int, status string, after *RunKey, limit int) ([]AttributedRun, error) {
	if len(ids) == 0 || perConnection <= 0 {
		return []AttributedRun{}, nil
	}
	db := h.m.db
	now := h.m.now()
	pg := bootstrap.DialectOf(db) == bootstrap.Postgres
	inner := db.NewSelect().TableExpr("run_summaries AS s")
	if pg {
		inner = inner.ColumnExpr("s.*").Where("s.connection_id = c.id")
	} else {
		inner = inner.ColumnExpr("s.rowid").Where("s.connection_id = c.value")
	}
	if status != "" {
		inner = (&ReadModelEvidence{m: h.m}).whereStatus(inner, status, now)
	}
	if after != nil {
		inner = inner.Where("(s.last_at, s.run_id) < (?, ?)", after.LastAt, after.RunID)
	}
	inner = inner.OrderExpr("s.last_at DESC, s.run_id DESC").Limit(int64(perConnection))
	var q *bun.RawQuery
	tail := "ORDER BY r.last_at DESC, r.run_id DESC"
	args := []any{}
	if pg {
		args = append(args, pgdialect.Array(ids), inner)
	} else {
		raw, _ := json.Marshal(ids)
		args = append(args, string(raw), inner)
	}
	if limit > 0 {
		tail += " LIMIT ?"
		args = append(args, limit)
	}
	if pg {
		q = db.NewRaw("SELECT r.* FROM unnest(?::text[]) AS c(id) CROSS JOIN LATERAL (?) AS r "+tail, args...)
	} else {
		q = db.NewRaw("SELECT r.* FROM json_each(?) AS c JOIN run_summaries AS r ON r.rowid IN (?) "+tail, args...)
	}
	var rows []RunRow
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, fmt.Errorf("runs: console history: %w", err)
	}
	out := make([]AttributedRun, 0, len(rows))
	for i := range rows {
		s := rows[i].Partial().Resolve(now, h.m.o.StaleAfter)
		if status != "" && s.Status != status {
			continue // as in ReadModelEvidence.For: no derived status is the internal "started"
		}
		out = append(out, AttributedRun{ConnectionID: deref(rows[i].ConnectionID), Summary: s})
	}
	return out, nil
}

// Recent returns the newest n runs of each connection (newest first), in one statement: the
// overview's history strips. A connection without runs has no key.
func (h *ConsoleHistory) Recent(ctx context.Context, ids []string, n int) (map[string][]Summary, error) {
	list, err := h.latestPerConnection(ctx, ids, n, "", nil, 0)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]Summary, len(ids))
	for _, r := range list {
		out[r.ConnectionID] = append(out[r.ConnectionID], r.Summary)
	}
	return out, nil
}

// Timeline returns the newest runs across the connections ids, in run order, of status when
// set, after the position after when set: one page of limit runs plus one (whether it exists is
// "has more"). One statement: each connection contributes at most limit+1 runs.
func (h *ConsoleHistory) Timeline(ctx context.Context, ids []string, status string, after *RunKey, limit int) ([]AttributedRun, error) {
	return h.latestPerConnection(ctx, ids, limit+1, status, after, limit+1)
}

// DayOutcomes counts one day's runs of a connection by derived status.
type DayOutcomes struct {
	// Day is the UTC day, 2006-01-02.
	Day string
	// ByStatus counts runs by derived status (in_progress and the orphaned failed decided at
	// the time of the read).
	ByStatus map[string]int
}

// Daily counts a connection's runs per UTC day by derived status, for the days since since
// (a run counts on the day of its last event), and the connection's total number of runs, in
// one statement over idx_run_summaries_connection_order.
func (h *ConsoleHistory) Daily(ctx context.Context, connectionID string, since time.Time) (days []DayOutcomes, total int, err error) {
	now := h.m.now()
	cutoff := now.Add(-h.m.o.StaleAfter)
	if r := cutoff.Truncate(time.Millisecond); !r.Equal(cutoff) {
		cutoff = r.Add(time.Millisecond)
	}
	var rows []struct {
		Day    string `bun:"day"`
		Status string `bun:"status"`
		N      int    `bun:"n"`
	}
	// The day and the derived status are computed in SQL: a started run without terminal event
	// is in_progress while its last event is at most stale_after old, else failed (SPEC §4.1).
	// The row of day '' counts the runs before since, so the total needs no second statement.
	err = h.m.db.NewRaw(`SELECT CASE WHEN last_at >= ? THEN substr(last_at, 1, 10) ELSE '' END AS day,
		CASE WHEN status_key = ? THEN (CASE WHEN last_at >= ? THEN ? ELSE ? END) ELSE status_key END AS status,
		count(*) AS n
		FROM run_summaries WHERE connection_id = ? GROUP BY 1, 2 ORDER BY 1, 2`,
		bootstrap.FormatTime(since), statusStarted, bootstrap.FormatTime(cutoff), StatusInProgress, StatusFailed, connectionID).Scan(ctx, &rows)
	if err != nil {
		return nil, 0, fmt.Errorf("runs: console daily outcomes: %w", err)
	}
	days = []DayOutcomes{}
	for _, r := range rows {
		total += r.N
		if r.Day == "" {
			continue
		}
		if len(days) == 0 || days[len(days)-1].Day != r.Day {
			days = append(days, DayOutcomes{Day: r.Day, ByStatus: map[string]int{}})
		}
		days[len(days)-1].ByStatus[r.Status] += r.N
	}
	return days, total, nil
}
