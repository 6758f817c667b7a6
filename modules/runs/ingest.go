package runs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"connsum/modules/bootstrap"
	"connsum/modules/revision"
)

// ErrConflict is returned when a batch re-uses an event_id with different content.
var ErrConflict = errors.New("runs: event_id already stored with different content")

// ConflictError names the conflicting event.
type ConflictError struct {
	Index   int
	EventID string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("event_id %q (events[%d]) is already stored with different content", e.EventID, e.Index)
}

// Unwrap makes errors.Is(err, ErrConflict) work.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// IngestResult is the answer to a batch.
type IngestResult struct {
	Accepted     int   `json:"accepted"`
	Duplicates   int   `json:"duplicates"`
	LastEventSeq int64 `json:"last_event_seq"`
	// Unattributed counts the runs this batch touched that belong to no connection after it
	// (Attribution); nil when no read model attributes runs at write time (runs.evidence=spine).
	Unattributed *int `json:"unattributed"`
	// UnattributedExamples are the first MaxUnattributedExamples of them, in the order the
	// batch first touched them; nil exactly when Unattributed is.
	UnattributedExamples []UnattributedRun `json:"unattributed_examples"`
}

// UnattributedReason says why a run belongs to no connection. The reason follows the evidence
// the run carries, in the matcher's order: a profile key decides alone, then an explicit id.
type UnattributedReason string

// The reasons of UnattributedRun.
const (
	// UnattributedNoEvidence: the run carries neither a profile key nor a connection id.
	UnattributedNoEvidence UnattributedReason = "no_connection_evidence"
	// UnattributedNoMatchingKey: the run carries a profile key that is no connection's expected
	// key under its connector (or it has no connector, see UnattributedRun.ConnectorID).
	UnattributedNoMatchingKey UnattributedReason = "no_matching_profile_key"
	// UnattributedUnknownConnection: the run carries no profile key and names a connection that
	// is no connection of its connector (none with that id, or one of another connector).
	UnattributedUnknownConnection UnattributedReason = "unknown_connection"
)

// UnattributedRun is one run of a batch that belongs to no connection, with the evidence it
// carried, so that a client sees at once why.
type UnattributedRun struct {
	RunID string `json:"run_id"`
	// ConnectorID is the run's connector (its source_id); nil for a run without a source (its
	// events had no source_kind/source_id and named no existing connection): such a run is
	// stored but belongs to no connector's runs, and is never attributed later.
	ConnectorID *string `json:"connector_id"`
	// ProfileKey and ConnectionID are the run's evidence as the fold sees it (SPEC §4.1).
	ProfileKey   *string `json:"profile_key"`
	ConnectionID *string `json:"connection_id"`
	// ExpectedProfileKey, for a run whose profile key matched nothing, is the expected key of
	// the connection the run seems meant for — the one its connection id names, or the id after
	// the last ':' of its key — when that connection exists under the run's connector; else nil.
	ExpectedProfileKey *string            `json:"expected_profile_key"`
	Reason             UnattributedReason `json:"reason"`
}

// MaxUnattributedExamples bounds IngestResult.UnattributedExamples.
const MaxUnattributedExamples = 5

// Attribution is what an append's read-model update learnt about the runs the batch touched:
// how many belong to no connection, and the first few of them.
type Attribution struct {
	Unattributed int
	Examples     []UnattributedRun
}

// AppendHook sees every stored batch inside the appending transaction (the read model), and
// reports the attribution of the runs it touched.
type AppendHook interface {
	Apply(ctx context.Context, tx bun.IDB, events []*Event) (Attribution, error)
}

// Ingester appends validated event batches to the spine.
type Ingester struct {
	db   *bun.DB
	now  bootstrap.Clock
	hook AppendHook
}

// NewIngester returns an Ingester over db. hook may be nil (no read model maintained).
func NewIngester(db *bun.DB, now bootstrap.Clock, hook AppendHook) *Ingester {
	return &Ingester{db: db, now: now, hook: hook}
}

// Append stores a batch atomically: all new events or none. An event_id already stored (or
// repeated in the batch) with identical content is a duplicate and skipped; with different
// content the batch is refused with a *ConflictError. Events without a source take the source
// of the connection they name. With a hook (the read model), the result reports the runs the
// batch touched that belong to no connection; without one, it leaves them nil (not computed).
func (in *Ingester) Append(ctx context.Context, events []*Event) (IngestResult, error) {
	var res IngestResult
	// Serialized: event_seq order is then commit order (a reader that has seen seq N has seen
	// every event below N, which the read model's merge relies on), and attribution sees every
	// connection and profile key committed before it (bootstrap/tx.go).
	err := bootstrap.RunSerialized(ctx, in.db, func(ctx context.Context, tx bun.Tx) error {
		res = IngestResult{}
		if in.hook != nil {
			zero := 0
			res.Unattributed, res.UnattributedExamples = &zero, []UnattributedRun{}
		}
		// With COPY (PostgreSQL) and on SQLite the batch's ids are not looked up first: the
		// insert's own unique check finds a stored id, and only then is the batch looked up,
		// after a rollback to the savepoint before the insert (a re-sent batch pays one failed
		// insert). Only PostgreSQL's unnest fallback (no pgx connection) looks the batch up first.
		optimistic := bootstrap.HasPgx(ctx) || bootstrap.DialectOf(tx) == bootstrap.SQLite
		fresh, err := in.dedupe(ctx, tx, events, &res, !optimistic)
		if optimistic && errors.Is(err, ErrConflict) {
			// A repeat within the batch conflicts; a stored id earlier in the batch may too, and
			// the answer names the first conflicting event: look the batch up after all.
			optimistic = false
			fresh, err = in.dedupe(ctx, tx, events, &res, true)
		}
		if err != nil {
			return err
		}
		if len(fresh) == 0 {
			return nil
		}
		if err := deriveSources(ctx, tx, fresh); err != nil {
			return err
		}
		recorded := in.now().UTC().Format(bootstrap.TimeFormat)
		for _, e := range fresh {
			e.RecordedAt = recorded
			if e.EventID == "" {
				e.EventID = newEventID()
			}
		}
		last, err := insertEvents(ctx, tx, fresh, optimistic)
		if errors.Is(err, errIDStored) {
			res = IngestResult{Unattributed: res.Unattributed, UnattributedExamples: res.UnattributedExamples}
			if fresh, err = in.dedupe(ctx, tx, events, &res, true); err != nil {
				return err
			}
			if len(fresh) == 0 {
				return nil
			}
			last, err = insertEvents(ctx, tx, fresh, false)
		}
		if err != nil {
			return err
		}
		res.LastEventSeq = max(res.LastEventSeq, last)
		res.Accepted = len(fresh)
		if in.hook != nil {
			att, err := in.hook.Apply(ctx, tx, fresh)
			if err != nil {
				return err
			}
			n := att.Unattributed
			res.Unattributed = &n
			res.UnattributedExamples = append(res.UnattributedExamples, att.Examples[:min(len(att.Examples), MaxUnattributedExamples)]...)
		}
		_, err = revision.Advance(ctx, tx, feedChange(fresh), in.now())
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return IngestResult{}, err
		}
		return IngestResult{}, fmt.Errorf("runs: append batch: %w", err)
	}
	return res, nil
}

// feedChange is what an append may change in the feed: the connections of every connector whose
// runs it touched (with the read model, their heads; with the spine evidence, their deep reads).
// Events of no connector (no source, provider_native) belong to no item.
func feedChange(events []*Event) revision.Change {
	var ch revision.Change
	seen := map[string]bool{}
	for _, e := range events {
		if e.SourceKind != nil && *e.SourceKind == "connector" && e.SourceID != nil && !seen[*e.SourceID] {
			seen[*e.SourceID] = true
			ch.ConnectorIDs = append(ch.ConnectorIDs, *e.SourceID)
		}
	}
	return ch
}

// dedupe drops events already stored (with lookup) or repeated earlier in the batch with the
// same content.
func (in *Ingester) dedupe(ctx context.Context, tx bun.Tx, events []*Event, res *IngestResult, lookup bool) ([]*Event, error) {
	ids := make([]string, 0, len(events))
	for _, e := range events {
		if e.EventID != "" && lookup {
			ids = append(ids, e.EventID)
		}
	}
	type stored struct {
		hash string
		seq  int64
	}
	known := map[string]stored{}
	if len(ids) > 0 {
		var rows []struct {
			EventID     string `bun:"event_id"`
			ContentHash string `bun:"content_hash"`
			EventSeq    int64  `bun:"event_seq"`
		}
		if err := tx.NewSelect().Table("spine_events").Column("event_id", "content_hash", "event_seq").
			Where("event_id IN (?)", bun.List(ids)).Scan(ctx, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			known[r.EventID] = stored{r.ContentHash, r.EventSeq}
		}
	}
	fresh := make([]*Event, 0, len(events))
	for i, e := range events {
		if e.EventID == "" {
			fresh = append(fresh, e)
			continue
		}
		if k, ok := known[e.EventID]; ok {
			if k.hash != e.ContentHash {
				return nil, &ConflictError{Index: i, EventID: e.EventID}
			}
			res.Duplicates++
			res.LastEventSeq = max(res.LastEventSeq, k.seq)
			continue
		}
		known[e.EventID] = stored{hash: e.ContentHash}
		fresh = append(fresh, e)
	}
	return fresh, nil
}

// deriveSources gives events without a source the source of the connection they name
// (SPEC §1.4), in one statement for the whole batch.
func deriveSources(ctx context.Context, tx bun.Tx, events []*Event) error {
	want := map[string]bool{}
	for _, e := range events {
		if e.SourceKind == nil && e.ConnectionRef != nil {
			want[*e.ConnectionRef] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	var rows []struct {
		ConnectionID string `bun:"connection_id"`
		ConnectorID  string `bun:"connector_id"`
	}
	if err := tx.NewSelect().Table("connections").Column("connection_id", "connector_id").
		Where("connection_id IN (?)", bun.List(ids)).Scan(ctx, &rows); err != nil {
		return err
	}
	owner := map[string]string{}
	for _, r := range rows {
		owner[r.ConnectionID] = r.ConnectorID
	}
	kind := "connector"
	for _, e := range events {
		if e.SourceKind == nil && e.ConnectionRef != nil {
			if cid, ok := owner[*e.ConnectionRef]; ok {
				id := cid
				e.SourceKind, e.SourceID = &kind, &id
			}
		}
	}
	return nil
}

// insertEvents stores the batch and returns the highest event_seq it got. On PostgreSQL the
// batch goes in by COPY (copyEvents) inside the serialized transaction; a transaction without a
// pgx connection of its own takes one array per column through unnest: one short statement
// that the server parses in microseconds, instead of a VALUES list of thousands of literals
// (measured: about 2× faster for batches of 1000). SQLite takes bun's multi-row insert.
func insertEvents(ctx context.Context, tx bun.Tx, events []*Event, optimistic bool) (int64, error) {
	if bootstrap.DialectOf(tx) != bootstrap.Postgres {
		return insertPrepared(ctx, tx, events, optimistic)
	}
	if last, ok, err := copyEvents(ctx, tx, events, optimistic); ok || err != nil {
		return last, err
	}
	n := len(events)
	col := func(name string, get func(e *Event) *string) pgColumn {
		vals := make([]*string, n)
		for i, e := range events {
			vals[i] = get(e)
		}
		return pgColumn{name, "text", vals}
	}
	bs := make([]bool, n)
	for i, e := range events {
		bs[i] = e.BSPresent
	}
	query, args := unnestSQL("spine_events", []pgColumn{
		col("event_id", func(e *Event) *string { return &e.EventID }),
		col("event_type", func(e *Event) *string { return &e.EventType }),
		col("occurred_at", func(e *Event) *string { return &e.OccurredAt }),
		col("recorded_at", func(e *Event) *string { return &e.RecordedAt }),
		col("run_id", func(e *Event) *string { return e.RunID }),
		col("source_kind", func(e *Event) *string { return e.SourceKind }),
		col("source_id", func(e *Event) *string { return e.SourceID }),
		col("connector_instance_id", func(e *Event) *string { return e.ConnectorInstanceID }),
		col("connection_id", func(e *Event) *string { return e.ConnectionID }),
		col("status", func(e *Event) *string { return e.Status }),
		col("data", func(e *Event) *string { return e.Data }),
		col("content_hash", func(e *Event) *string { return &e.ContentHash }),
		col("connection_ref", func(e *Event) *string { return e.ConnectionRef }),
		col("failure_reason", func(e *Event) *string { return e.FailureReason }),
		{"bs_present", "boolean", bs},
		col("bs_status", func(e *Event) *string { return e.BSStatus }),
		col("bs_wait_reason", func(e *Event) *string { return e.BSWaitReason }),
		col("bs_profile_key", func(e *Event) *string { return e.BSProfileKey }),
	}, "RETURNING event_seq, event_id")
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	// Scanned without bun's model reflection: 1000 rows per batch.
	byID := make(map[string]int64, n)
	var last, seq int64
	var id string
	for rows.Next() {
		if err := rows.Scan(&seq, &id); err != nil {
			return 0, err
		}
		byID[id] = seq
		last = max(last, seq)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(byID) != n {
		return 0, fmt.Errorf("runs: inserted %d of %d events", len(byID), n)
	}
	for _, e := range events {
		e.EventSeq = byID[e.EventID]
	}
	return last, nil
}

// insertPrepared stores the batch on SQLite with one prepared single-row INSERT run once per
// event: SQLite parses the statement once per batch, where a multi-row VALUES list of a thousand
// literal rows cost a parse of ≈ 100 KB of SQL text per batch (measured: a third of the
// insert's time), and a row's event_seq is its rowid (the column is INTEGER PRIMARY KEY).
//
// With optimistic, as copyEvents: a stored event_id rolls the transaction back to the savepoint
// before the insert and returns errIDStored.
func insertPrepared(ctx context.Context, tx bun.Tx, events []*Event, optimistic bool) (int64, error) {
	if optimistic {
		if err := savepoint(ctx, tx); err != nil {
			return 0, err
		}
	}
	last, err := insertEachPrepared(ctx, tx, events)
	if optimistic && bootstrap.IsUniqueViolation(err) && strings.Contains(err.Error(), "spine_events.event_id") {
		return 0, backToSavepoint(ctx, tx)
	}
	return last, err
}

func insertEachPrepared(ctx context.Context, tx bun.Tx, events []*Event) (int64, error) {
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO spine_events ("+strings.Join(spineColumns, ", ")+") VALUES (?"+
		strings.Repeat(", ?", len(spineColumns)-1)+")")
	if err != nil {
		return 0, err
	}
	defer func() { _ = stmt.Close() }()
	var last int64
	for _, e := range events {
		res, err := stmt.ExecContext(ctx, copyRow(e)...)
		if err != nil {
			return 0, err
		}
		if e.EventSeq, err = res.LastInsertId(); err != nil {
			return 0, err
		}
		last = max(last, e.EventSeq)
	}
	return last, nil
}

// pgColumn is one column of a PostgreSQL unnest insert: its name, SQL type and values (a typed
// slice: []*string, []bool, []int64).
type pgColumn struct {
	name, typ string
	values    any
}

// unnestInsert builds `INSERT INTO table (cols) SELECT * FROM unnest($1::t1[], …) suffix` with
// one array literal per column, the fast bulk path on PostgreSQL.
func unnestInsert(tx bun.IDB, table string, cols []pgColumn, suffix string) *bun.RawQuery {
	query, args := unnestSQL(table, cols, suffix)
	return tx.NewRaw(query, args...)
}

// unnestSQL is the text and arguments of unnestInsert, for a caller that reads the returned rows
// itself (bun formats the arguments into the text in QueryContext as in NewRaw).
func unnestSQL(table string, cols []pgColumn, suffix string) (string, []any) {
	names := make([]string, len(cols))
	casts := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		names[i], casts[i] = c.name, "?::"+c.typ+"[]"
		args[i] = pgdialect.Array(c.values)
	}
	return "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ") SELECT * FROM unnest(" + strings.Join(casts, ", ") + ") " + suffix, args
}

// errIDStored is an optimistic insert's answer when an event_id of the batch was stored already.
var errIDStored = errors.New("runs: an event_id of the batch is stored already")

// savepoint marks where an optimistic insert goes back to when it finds a stored event_id.
func savepoint(ctx context.Context, tx bun.Tx) error {
	_, err := tx.ExecContext(ctx, "SAVEPOINT spine_insert")
	return err
}

// backToSavepoint undoes an optimistic insert that found a stored event_id and returns
// errIDStored (or the rollback's own error).
func backToSavepoint(ctx context.Context, tx bun.Tx) error {
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT spine_insert"); err != nil {
		return err
	}
	return errIDStored
}

// eventIDConstraint is PostgreSQL's name of spine_events' UNIQUE (event_id).
const eventIDConstraint = "spine_events_event_id_key"

// spineColumns are the columns copyEvents writes, in copyRow order.
var spineColumns = []string{"event_id", "event_type", "occurred_at", "recorded_at", "run_id", "source_kind", "source_id",
	"connector_instance_id", "connection_id", "status", "data", "content_hash", "connection_ref", "failure_reason",
	"bs_present", "bs_status", "bs_wait_reason", "bs_profile_key"}

func copyRow(e *Event) []any {
	return []any{e.EventID, e.EventType, e.OccurredAt, e.RecordedAt, e.RunID, e.SourceKind, e.SourceID,
		e.ConnectorInstanceID, e.ConnectionID, e.Status, e.Data, e.ContentHash, e.ConnectionRef, e.FailureReason,
		e.BSPresent, e.BSStatus, e.BSWaitReason, e.BSProfileKey}
}

// copyEvents stores the batch with a binary COPY (bootstrap.CopyRows) on the pgx connection of
// the serialized transaction, and reads back the sequence numbers it got: COPY
// returns no rows, but the identity column's sequence hands them out in row order, and the
// attribution lock keeps every other append out, so the batch holds the n numbers ending at
// this session's currval; two primary-key reads at the range's ends check that (seqsFromEnds;
// if anything else took numbers in between, the batch is looked up by event_id instead). It
// reports false when the transaction has no pgx connection (the caller inserts with unnest).
//
// With optimistic, the batch's ids were not looked up before: the COPY runs after a savepoint,
// and when it finds an event_id already stored the transaction is rolled back to that savepoint
// and errIDStored returned, so that the caller looks the batch up and copies what is new.
func copyEvents(ctx context.Context, tx bun.Tx, events []*Event, optimistic bool) (int64, bool, error) {
	n := len(events)
	rows := make([][]any, n)
	for i, e := range events {
		rows[i] = copyRow(e)
	}
	if optimistic {
		if err := savepoint(ctx, tx); err != nil {
			return 0, true, err
		}
	}
	ok, err := bootstrap.CopyRows(ctx, "spine_events", spineColumns, rows)
	if !ok {
		if optimistic { // the batch was not looked up: it must be, before another insert
			return 0, true, errIDStored
		}
		return 0, false, nil
	}
	var pgErr *pgconn.PgError
	if optimistic && errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == eventIDConstraint {
		return 0, true, backToSavepoint(ctx, tx)
	}
	if err != nil {
		return 0, true, err
	}
	if last, ok, err := seqsFromEnds(ctx, tx, events); ok || err != nil {
		return last, true, err
	}
	ids := make([]string, n)
	for i, e := range events {
		ids[i] = e.EventID
	}
	seqs, err := scanSeqs(ctx, tx, n, "SELECT event_seq, event_id FROM spine_events WHERE event_id = ANY(?::text[])", pgdialect.Array(ids))
	if err != nil {
		return 0, true, err
	}
	if !coversBatch(seqs, events) {
		return 0, true, fmt.Errorf("runs: copied events not found (%d of %d)", len(seqs), n)
	}
	var last int64
	for _, e := range events {
		e.EventSeq = seqs[e.EventID]
		last = max(last, e.EventSeq)
	}
	return last, true, nil
}

// seqsFromEnds gives the events just copied their sequence numbers from the two ends of the
// range they should hold, without reading the range back (which cost a 1000-row read and a map
// of the ids per batch). A COPY takes one number per row from the identity's sequence, in row
// order, so the batch's n distinct rows hold n numbers up to this session's currval v. If
// events[0] holds v-n+1 and events[n-1] holds v, the n rows fill the n numbers of that range and,
// in row order, events[i] holds v-n+1+i. It reports false when the ends say otherwise (a number
// taken by another session in between, which the attribution lock rules out for appends): the
// caller then looks the batch up by event_id.
func seqsFromEnds(ctx context.Context, tx bun.Tx, events []*Event) (int64, bool, error) {
	n := int64(len(events))
	var last int64
	var first, end sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT s.v,
		(SELECT event_id FROM spine_events WHERE event_seq = s.v - ? + 1),
		(SELECT event_id FROM spine_events WHERE event_seq = s.v)
		FROM (SELECT currval(pg_get_serial_sequence('spine_events', 'event_seq')) AS v) AS s`, n).Scan(&last, &first, &end); err != nil {
		return 0, false, err
	}
	if first.String != events[0].EventID || end.String != events[n-1].EventID {
		return 0, false, nil
	}
	for i, e := range events {
		e.EventSeq = last - n + 1 + int64(i)
	}
	return last, true, nil
}

// scanSeqs runs a query of (event_seq, event_id) rows and maps ids to sequence numbers.
func scanSeqs(ctx context.Context, tx bun.Tx, n int, query string, args ...any) (map[string]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]int64, n)
	var seq int64
	var id string
	for rows.Next() {
		if err := rows.Scan(&seq, &id); err != nil {
			return nil, err
		}
		out[id] = seq
	}
	return out, rows.Err()
}

// coversBatch reports whether seqs holds exactly the batch's events.
func coversBatch(seqs map[string]int64, events []*Event) bool {
	if len(seqs) != len(events) {
		return false
	}
	for _, e := range events {
		if _, ok := seqs[e.EventID]; !ok {
			return false
		}
	}
	return true
}
