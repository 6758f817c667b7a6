package runs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/revision"
)

// CatchUp applies the spine events the model has not seen (stored while the service ran with
// runs.evidence=spine, or before the model existed), in bounded windows of event_seq.
func (m *ReadModel) CatchUp(ctx context.Context, db *bun.DB) (int64, error) {
	applied, err := m.AppliedSeq(ctx, db)
	if err != nil {
		return 0, err
	}
	var maxSeq sql.NullInt64
	if err := db.NewSelect().Table("spine_events").ColumnExpr("max(event_seq)").Scan(ctx, &maxSeq); err != nil {
		return 0, err
	}
	if !maxSeq.Valid || maxSeq.Int64 <= applied {
		return 0, nil
	}
	var events int64
	const window = 50000
	for from := applied; from < maxSeq.Int64; from += window {
		to := min(from+window, maxSeq.Int64)
		err := bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
			var keys []struct {
				SourceID string `bun:"source_id"`
				RunID    string `bun:"run_id"`
			}
			if err := tx.NewSelect().Table("spine_events").ColumnExpr("DISTINCT source_id, run_id").
				Where("event_seq > ? AND event_seq <= ? AND source_kind = 'connector' AND run_id IS NOT NULL", from, to).
				Scan(ctx, &keys); err != nil {
				return err
			}
			touched := map[string]map[string]bool{}
			for _, k := range keys {
				if touched[k.SourceID] == nil {
					touched[k.SourceID] = map[string]bool{}
				}
				touched[k.SourceID][k.RunID] = true
			}
			if err := m.refold(ctx, tx, touched); err != nil {
				return err
			}
			if err := setApplied(ctx, tx, to); err != nil {
				return err
			}
			_, err := revision.Advance(ctx, tx, revision.Change{ConnectorIDs: mapKeys(touched)}, m.now())
			return err
		})
		if err != nil {
			return events, fmt.Errorf("runs: read model catch-up: %w", err)
		}
		events += to - from
	}
	return events, nil
}

// RebuildReport says what `connsum rebuild` changed.
type RebuildReport struct {
	RunsScanned  int      `json:"runs_scanned"`
	RunsInserted int      `json:"runs_inserted"`
	RunsChanged  int      `json:"runs_changed"`
	RunsRemoved  int      `json:"runs_removed"`
	HeadsFixed   int      `json:"heads_fixed"`
	FixedHeadIDs []string `json:"fixed_head_connection_ids"`
	Resumed      bool     `json:"resumed"`
	AppliedSeq   int64    `json:"applied_event_seq"`
}

const rebuildCursorKey = "rebuild_cursor"

// Rebuild recomputes the read model from the spine log in chunks, each in its own transaction
// with its position saved, so an interrupted rebuild resumes where it stopped. It compares every
// row and head with what was stored and reports what it fixed.
func (m *ReadModel) Rebuild(ctx context.Context, db *bun.DB, progress io.Writer) (*RebuildReport, error) {
	rep := &RebuildReport{FixedHeadIDs: []string{}}
	var maxSeq sql.NullInt64
	if err := db.NewSelect().Table("spine_events").ColumnExpr("max(event_seq)").Scan(ctx, &maxSeq); err != nil {
		return nil, err
	}
	after := [2]string{"", ""}
	var cursor sql.NullString
	err := db.NewSelect().Table("read_model_state").Column("text_value").Where("name = ?", rebuildCursorKey).Scan(ctx, &cursor)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if cursor.Valid && cursor.String != "" {
		rep.Resumed = true
		if n, _ := fmt.Sscanf(cursor.String, "%q %q", &after[0], &after[1]); n != 2 {
			after = [2]string{"", ""}
		}
	}
	const chunk = 2000
	for {
		var keys []struct {
			SourceID string `bun:"source_id"`
			RunID    string `bun:"run_id"`
		}
		if err := db.NewSelect().Table("spine_events").Column("source_id", "run_id").
			Where("source_kind = 'connector' AND run_id IS NOT NULL AND (source_id, run_id) > (?, ?)", after[0], after[1]).
			GroupExpr("source_id, run_id").OrderExpr("source_id, run_id").Limit(chunk).Scan(ctx, &keys); err != nil {
			return nil, fmt.Errorf("runs: rebuild scan: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		byConnector := map[string][]string{}
		for _, k := range keys {
			byConnector[k.SourceID] = append(byConnector[k.SourceID], k.RunID)
		}
		last := keys[len(keys)-1]
		// The chunk counts into its own report, merged once the transaction committed: a retried
		// attempt (RunInTx) starts from zero again instead of counting its runs twice.
		var chunkRep RebuildReport
		err := bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
			chunkRep = RebuildReport{}
			for connector, ids := range byConnector {
				if err := m.rebuildRuns(ctx, tx, connector, ids, &chunkRep); err != nil {
					return err
				}
			}
			if _, err := tx.NewRaw(`INSERT INTO read_model_state (name, value, text_value) VALUES (?, 0, ?)
				ON CONFLICT (name) DO UPDATE SET text_value = EXCLUDED.text_value`,
				rebuildCursorKey, fmt.Sprintf("%q %q", last.SourceID, last.RunID)).Exec(ctx); err != nil {
				return err
			}
			var ch revision.Change
			if chunkRep.RunsInserted+chunkRep.RunsChanged > 0 {
				ch.ConnectorIDs = mapKeys(byConnector) // their deep reads changed
			}
			_, err := revision.Advance(ctx, tx, ch, m.now())
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("runs: rebuild chunk: %w", err)
		}
		rep.RunsScanned += len(keys)
		rep.RunsInserted += chunkRep.RunsInserted
		rep.RunsChanged += chunkRep.RunsChanged
		after = [2]string{last.SourceID, last.RunID}
		if progress != nil {
			fmt.Fprintf(progress, "\rrebuild: %d runs scanned, %d inserted, %d changed", rep.RunsScanned, rep.RunsInserted, rep.RunsChanged)
		}
	}
	if progress != nil {
		fmt.Fprintln(progress)
	}
	err = bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
		rep.FixedHeadIDs = []string{} // a retried attempt lists the heads it fixed afresh
		res, err := tx.NewRaw(`DELETE FROM run_summaries WHERE NOT EXISTS (SELECT 1 FROM spine_events e
			WHERE e.source_kind = 'connector' AND e.source_id = run_summaries.connector_id AND e.run_id = run_summaries.run_id)`).Exec(ctx)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		rep.RunsRemoved = int(n)
		before, err := loadHeads(ctx, tx)
		if err != nil {
			return err
		}
		var ids []string
		if err := tx.NewSelect().Table("connections").Column("connection_id").Scan(ctx, &ids); err != nil {
			return err
		}
		if err := recomputeHeads(ctx, tx, ids); err != nil {
			return err
		}
		after, err := loadHeads(ctx, tx)
		if err != nil {
			return err
		}
		for id, h := range after {
			if b, ok := before[id]; !ok || b != h {
				rep.FixedHeadIDs = append(rep.FixedHeadIDs, id)
			}
		}
		for id := range before {
			if _, ok := after[id]; !ok {
				rep.FixedHeadIDs = append(rep.FixedHeadIDs, id)
			}
		}
		sort.Strings(rep.FixedHeadIDs)
		rep.HeadsFixed = len(rep.FixedHeadIDs)
		if _, err := tx.NewDelete().Table("read_model_state").Where("name = ?", rebuildCursorKey).Exec(ctx); err != nil {
			return err
		}
		if maxSeq.Valid {
			rep.AppliedSeq = maxSeq.Int64
			if err := setApplied(ctx, tx, maxSeq.Int64); err != nil {
				return err
			}
		}
		ch := revision.Change{ConnectionIDs: rep.FixedHeadIDs}
		if rep.RunsRemoved > 0 {
			ch = revision.Change{All: true}
		}
		_, err = revision.Advance(ctx, tx, ch, m.now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("runs: rebuild heads: %w", err)
	}
	return rep, nil
}

// rebuildRuns refolds runs of one connector, compares them with the stored rows and writes the
// ones that differ.
func (m *ReadModel) rebuildRuns(ctx context.Context, tx bun.Tx, connector string, ids []string, rep *RebuildReport) error {
	evs, err := runEvents(ctx, tx, connector, ids)
	if err != nil {
		return err
	}
	rows := make([]*RunRow, 0, len(ids))
	for _, id := range ids {
		if len(evs[id]) > 0 {
			rows = append(rows, rowOf(connector, Accumulate(id, evs[id]), evs[id][len(evs[id])-1].Seq))
		}
	}
	t, err := loadTargets(ctx, tx, []string{connector})
	if err != nil {
		return err
	}
	stored, err := storedRuns(ctx, tx, connector, ids)
	if err != nil {
		return err
	}
	old := map[string]*RunRow{}
	for i := range stored {
		old[stored[i].RunID] = &stored[i]
	}
	var write []*RunRow
	for _, r := range rows {
		r.ConnectionID = t.attribute(connector, r.Claim())
		o, ok := old[r.RunID]
		switch {
		case !ok:
			rep.RunsInserted++
			write = append(write, r)
		case !r.same(o):
			rep.RunsChanged++
			write = append(write, r)
		}
	}
	return upsertRuns(ctx, tx, write)
}

type headVal struct{ last, success string }

func loadHeads(ctx context.Context, tx bun.IDB) (map[string]headVal, error) {
	var rows []headRow
	if err := tx.NewSelect().Table("run_heads").Column("connection_id", "connector_id", "last_run_id", "last_success_run_id").Scan(ctx, &rows); err != nil {
		return nil, err
	}
	out := map[string]headVal{}
	deref := func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	}
	for _, r := range rows {
		out[r.ConnectionID] = headVal{deref(r.LastRunID), deref(r.LastSuccessRunID)}
	}
	return out, nil
}

// mapKeys lists a map's keys in order.
func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
