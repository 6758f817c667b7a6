package perf

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// The floor of a read (`bench api --floor`) is what the same answer costs with nothing of the
// service in between: the very SQL texts the service sends for it, executed as the service sends
// them (one pgx batch on PostgreSQL, one after another on SQLite) through the same driver with
// every value left raw (no scanning into types), plus
// encoding/json of the identical payload. The texts are captured by running the service's own
// projector on a handle of its own under a statement counter that keeps them (bun formats the
// values into the text, as the service sends it over pgx's simple protocol); the timed part is
// only the raw execution and the encoding. The bench alternates one service request and one floor sample, so noise from
// other work on the machine lands on both.
type floorProbe struct {
	db   *bun.DB
	proj *summary.Projector
	copy *copyFloor // nil on SQLite
}

// newFloorProbe opens a handle of its own on dbURL and wires the service's read path on it with
// the default options (those of configs/default.yaml).
func newFloorProbe(ctx context.Context, dbURL string) (*floorProbe, error) {
	db, err := bootstrap.OpenMigrated(ctx, dbURL, 2)
	if err != nil {
		return nil, err
	}
	rm := runs.NewReadModel(db, runs.Options{}, time.Now)
	ev := runs.NewReadModelEvidence(rm)
	proj := summary.NewProjector(catalog.NewStore(db, time.Now), retained.NewStore(db, time.Now), ev, ev, time.Now)
	cf, err := newCopyFloor(ctx, dbURL)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &floorProbe{db: db, proj: proj, copy: cf}, nil
}

// Close closes the probe's handles.
func (p *floorProbe) Close() {
	if p.copy != nil {
		p.copy.Close()
	}
	_ = p.db.Close()
}

// copyBatch parses raw events with the service's parser, gives them the source the service
// would derive, and copies them (copyFloor.batch).
func (p *floorProbe) copyBatch(connectorID string, raw []string) (time.Duration, error) {
	events := make([]*runs.Event, len(raw))
	kind := "connector"
	for i, r := range raw {
		e, err := runs.ParseEvent([]byte(r), fmt.Sprintf("events[%d]", i))
		if err != nil {
			return 0, err
		}
		if e.SourceKind == nil {
			e.SourceKind, e.SourceID = &kind, &connectorID
		}
		events[i] = e
	}
	return p.copy.batch(context.Background(), connectorID, events)
}

// floorPlan is what one read sends: its SQL texts and its payload.
type floorPlan struct {
	texts    []string
	envelope *summary.Envelope
	// allocated is what the service's code allocated for the read, its projection and its
	// body (runtime.MemStats.TotalAlloc across them), body the body's length.
	allocated, body uint64
}

// capture runs read (the service's projector) once, untimed, and keeps its SQL texts (from a
// statement counter: the statements the service sends in one batch pass no bun hook on
// PostgreSQL) and payload.
func (p *floorProbe) capture(ctx context.Context, read func(ctx context.Context, proj *summary.Projector) (*summary.Result, error)) (*floorPlan, error) {
	rec := &bootstrap.StatementCounter{KeepTexts: true}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := read(bootstrap.WithStatementCounter(ctx, rec), p.proj)
	if err != nil {
		return nil, err
	}
	body := res.Body()
	runtime.ReadMemStats(&after)
	return &floorPlan{texts: rec.Texts(), envelope: &res.Envelope, allocated: after.TotalAlloc - before.TotalAlloc, body: uint64(len(body))}, nil
}

// floorSample is one timed execution of a plan.
type floorSample struct {
	sql, json time.Duration
	bytes     int
}

// run executes the plan's texts through the driver, draining every row as raw bytes, then
// encodes its payload with encoding/json.
func (p *floorProbe) run(ctx context.Context, plan *floorPlan) (floorSample, error) {
	var s floorSample
	start := time.Now()
	if err := p.execute(ctx, plan.texts); err != nil {
		return s, err
	}
	s.sql = time.Since(start)
	start = time.Now()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(plan.envelope); err != nil {
		return s, err
	}
	s.json, s.bytes = time.Since(start), buf.Len()
	return s, nil
}

// execute runs texts and drains their rows as the service's transport sends them: on
// PostgreSQL in one pgx batch, one round trip (bootstrap.Batch sends a read's statements so), on
// SQLite one after another.
func (p *floorProbe) execute(ctx context.Context, texts []string) error {
	if bootstrap.DialectOf(p.db) != bootstrap.Postgres || len(texts) < 2 {
		for _, text := range texts {
			if err := drain(ctx, p.db.DB, text); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := bootstrap.SendTexts(ctx, p.db, texts, func(_ int, rows pgx.Rows) error {
		for rows.Next() {
			_ = rows.RawValues()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	return nil
}

// drain runs one statement and reads every column of every row as raw bytes.
func drain(ctx context.Context, db *sql.DB, text string) error {
	rows, err := db.QueryContext(ctx, text)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	raw := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range raw {
		dest[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
	}
	return rows.Err()
}

// floorRead names how a measured read is computed in process, for its floor.
type floorRead func(i int) func(ctx context.Context, proj *summary.Projector) (*summary.Result, error)

// list is the floor read of a list query.
func listRead(q summary.ListQuery) floorRead {
	return func(int) func(context.Context, *summary.Projector) (*summary.Result, error) {
		return func(ctx context.Context, p *summary.Projector) (*summary.Result, error) { return p.List(ctx, q) }
	}
}

// scopedRead is the floor read of the scoped read of ids[i % len(ids)].
func scopedRead(ids []string) floorRead {
	return func(i int) func(context.Context, *summary.Projector) (*summary.Result, error) {
		id := ids[i%len(ids)]
		return func(ctx context.Context, p *summary.Projector) (*summary.Result, error) {
			return p.Scoped(ctx, id, false)
		}
	}
}

// floorFigures summarise the floor samples of one read.
type floorFigures struct {
	total, sql, json []float64
	statements       int
	sqlBytes         int
	rows             int
	allocated, body  uint64
}

// sample captures the plan of read i (reusing the last plan when the read does not depend on i)
// and times one execution of it.
func (p *floorProbe) sample(ctx context.Context, read floorRead, i int, perSample bool, last **floorPlan, f *floorFigures) error {
	if *last == nil || perSample {
		plan, err := p.capture(ctx, read(i))
		if err != nil {
			return err
		}
		*last = plan
		f.statements, f.sqlBytes = len(plan.texts), 0
		f.rows, f.allocated, f.body = len(plan.envelope.Items), plan.allocated, plan.body
		for _, t := range plan.texts {
			f.sqlBytes += len(t)
		}
	}
	s, err := p.run(ctx, *last)
	if err != nil {
		return err
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	f.total = append(f.total, ms(s.sql+s.json))
	f.sql = append(f.sql, ms(s.sql))
	f.json = append(f.json, ms(s.json))
	return nil
}

// copyFloor is the ingest floor on PostgreSQL: a COPY (pgx CopyFrom) of the same number of
// events, with the same column values as the service stores, into spine_events, and one run row
// per run into run_summaries, in one transaction, into the same tables and indexes. It writes
// under its own run ids (copy_…) of the bench's ingest connector, so neither the service's
// batches nor the measured reads see its rows.
type copyFloor struct{ conn *pgx.Conn }

// newCopyFloor connects to dbURL; nil (and no error) on SQLite, which has no COPY.
func newCopyFloor(ctx context.Context, dbURL string) (*copyFloor, error) {
	d, dsn, err := bootstrap.ParseURL(dbURL)
	if err != nil || d != bootstrap.Postgres {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &copyFloor{conn: conn}, nil
}

// Close closes the connection.
func (f *copyFloor) Close() { _ = f.conn.Close(context.Background()) }

var copyEventColumns = []string{"event_id", "event_type", "occurred_at", "recorded_at", "run_id", "source_kind", "source_id",
	"connector_instance_id", "connection_id", "status", "data", "content_hash", "connection_ref", "failure_reason",
	"bs_present", "bs_status", "bs_wait_reason", "bs_profile_key"}

var copyRunColumns = []string{"connector_id", "run_id", "connection_id", "profile_key", "connection_ref", "first_at", "last_at",
	"event_count", "status_key", "terminal_status", "started", "last_status", "event_failure_reason", "bs_status",
	"bs_wait_reason", "known_gaps", "collection_facts", "last_event_seq"}

// batch copies events (parsed by the service's own parser) and one run row per run, in one
// transaction, and returns how long it took from BEGIN to COMMIT.
func (f *copyFloor) batch(ctx context.Context, connectorID string, events []*runs.Event) (time.Duration, error) {
	recorded := bootstrap.FormatTime(time.Now())
	evRows := make([][]any, len(events))
	type run struct {
		first, last string
		n           int
	}
	byRun := map[string]*run{}
	var order []string
	for i, e := range events {
		evRows[i] = []any{e.EventID, e.EventType, e.OccurredAt, recorded, e.RunID, e.SourceKind, e.SourceID,
			e.ConnectorInstanceID, e.ConnectionID, e.Status, e.Data, e.ContentHash, e.ConnectionRef, e.FailureReason,
			e.BSPresent, e.BSStatus, e.BSWaitReason, e.BSProfileKey}
		if e.RunID == nil {
			continue
		}
		r := byRun[*e.RunID]
		if r == nil {
			r = &run{first: e.OccurredAt}
			byRun[*e.RunID] = r
			order = append(order, *e.RunID)
		}
		r.last, r.n = e.OccurredAt, r.n+1
	}
	runRows := make([][]any, 0, len(order))
	for _, id := range order {
		r := byRun[id]
		runRows = append(runRows, []any{connectorID, id, nil, nil, nil, r.first, r.last, int64(r.n), "running", nil, true,
			"running", nil, nil, nil, "[]", "{}", int64(0)})
	}
	start := time.Now()
	tx, err := f.conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"spine_events"}, copyEventColumns, pgx.CopyFromRows(evRows)); err != nil {
		return 0, fmt.Errorf("floor: copy events: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"run_summaries"}, copyRunColumns, pgx.CopyFromRows(runRows)); err != nil {
		return 0, fmt.Errorf("floor: copy runs: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
