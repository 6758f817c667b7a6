// Package retained stores how many records and bytes the server holds per connection and
// stream, and reads them back for one connection or for all connections at once.
package retained

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"connsum/modules/bootstrap"
	"connsum/modules/revision"
)

// ErrNotFound is returned for an unknown connection or stream.
var ErrNotFound = errors.New("retained: not found")

// Figures are the absolute counters a collector reports for one stream (SPEC §1.5).
type Figures struct {
	RecordCount            int64   `bun:"record_count" json:"record_count"`
	RecordJSONBytes        int64   `bun:"record_json_bytes" json:"record_json_bytes"`
	RecordChangesCount     int64   `bun:"record_changes_count" json:"record_changes_count"`
	RecordChangesJSONBytes int64   `bun:"record_changes_json_bytes" json:"record_changes_json_bytes"`
	BlobCount              int64   `bun:"blob_count" json:"blob_count"`
	BlobBytes              int64   `bun:"blob_bytes" json:"blob_bytes"`
	LastRecordAt           *string `bun:"last_record_at" json:"last_record_at"`
}

// TotalBytes is record_json_bytes + record_changes_json_bytes + blob_bytes.
func (f Figures) TotalBytes() int64 {
	return f.RecordJSONBytes + f.RecordChangesJSONBytes + f.BlobBytes
}

// figureFields are the JSON names of the six counters, in the order of Figures.counters.
var figureFields = [...]string{"record_count", "record_json_bytes", "record_changes_count",
	"record_changes_json_bytes", "blob_count", "blob_bytes"}

// counters points at the six counters of f, in the order of figureFields.
func (f *Figures) counters() [6]*int64 {
	return [6]*int64{&f.RecordCount, &f.RecordJSONBytes, &f.RecordChangesCount,
		&f.RecordChangesJSONBytes, &f.BlobCount, &f.BlobBytes}
}

// MaxSum is the largest value of any sum the feed reports (2^53-1): every figure of a
// connection row, its total_bytes, a stream's total_bytes and the feed's total_records stay at
// or below it, so that no JSON client rounds them (SPEC §1.5 bounds each figure the same way).
const MaxSum = 1<<53 - 1

// fitsWith reports whether the sums of base (the other streams of a connection) and f stay at
// or below MaxSum, for each counter and for total_bytes. When not, field names f's figure at
// fault and sum the sum it carries past the bound (for total_bytes, the byte figure at which
// the running total passes it). All values are below 2^53, so no addition overflows an int64.
func (base Figures) fitsWith(f Figures) (field, sum string, ok bool) {
	b, add := base.counters(), f.counters()
	for i := range b {
		if *b[i]+*add[i] > MaxSum {
			return figureFields[i], figureFields[i], false
		}
	}
	total := base.TotalBytes()
	for _, fb := range []struct {
		field string
		v     int64
	}{{"record_json_bytes", f.RecordJSONBytes}, {"record_changes_json_bytes", f.RecordChangesJSONBytes}, {"blob_bytes", f.BlobBytes}} {
		if total += fb.v; total > MaxSum {
			return fb.field, "total_bytes", false
		}
	}
	return "", "", true
}

// SumTooLargeError refuses a stream write that would carry one of the connection's sums beyond
// MaxSum. Field is the figure of the write at fault, Sum the sum it would carry past the bound.
type SumTooLargeError struct{ Field, Sum string }

func (e *SumTooLargeError) Error() string {
	return fmt.Sprintf("retained: %s would make the connection's %s exceed 2^53-1", e.Field, e.Sum)
}

// StreamRow is one stored stream row.
type StreamRow struct {
	bun.BaseModel `bun:"table:retained_streams"`
	ConnectionID  string `bun:"connection_id,pk" json:"connection_id"`
	Stream        string `bun:"stream,pk" json:"stream"`
	Figures
	TotalBytesCol int64  `bun:"total_bytes" json:"total_bytes"`
	UpdatedAt     string `bun:"updated_at" json:"updated_at"`
}

// ConnectionRow holds the sums over a connection's streams, kept in step with them.
type ConnectionRow struct {
	bun.BaseModel `bun:"table:retained_connections"`
	ConnectionID  string `bun:"connection_id,pk"`
	StreamCount   int64  `bun:"stream_count"`
	Figures
	TotalBytesCol int64  `bun:"total_bytes"`
	UpdatedAt     string `bun:"updated_at"`
}

// Retained is what the feed knows about one connection: its row (nil when it has none) and its
// stream rows sorted by stream.
type Retained struct {
	Connection *ConnectionRow
	Streams    []StreamRow
}

// Snapshot is the retained port the feed reads through (SPEC §4.5).
type Snapshot interface {
	// All loads the rows of the given connections (all connections when ids is nil) in two
	// statements, grouped by connection in memory.
	All(ctx context.Context, ids []string) (map[string]*Retained, error)
	// Of loads the rows of the connections that connections selects: the right-hand side of a
	// membership test of a connection id (catalog.IDs of a list's filter, rendered after
	// "connection_id "), in two statements whose SQL text does not grow with the number of
	// connections.
	Of(ctx context.Context, connections schema.QueryAppender) (map[string]*Retained, error)
	// ForConnection loads one connection's rows only.
	ForConnection(ctx context.Context, id string) (*Retained, error)
	// QueueOf and QueueForConnection queue the two statements of Of and ForConnection on b, so
	// that a read sends them in the same round trip as its other statements: *out holds the
	// answer once b has run.
	QueueOf(b *bootstrap.Batch, connections schema.QueryAppender, out *map[string]*Retained)
	QueueForConnection(b *bootstrap.Batch, id string, out **Retained)
}

// Store writes and reads retained rows.
type Store struct {
	db  bun.IDB
	now bootstrap.Clock
}

var _ Snapshot = (*Store)(nil)

// NewStore returns a Store over db.
func NewStore(db bun.IDB, now bootstrap.Clock) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, now: now}
}

// Put upserts one stream row and recomputes the connection row in the same transaction.
func (s *Store) Put(ctx context.Context, connectionID, stream string, f Figures) (*StreamRow, error) {
	row := &StreamRow{ConnectionID: connectionID, Stream: stream, Figures: f, TotalBytesCol: f.TotalBytes(),
		UpdatedAt: bootstrap.FormatTime(s.now())}
	err := bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := lockConnection(ctx, tx, connectionID); err != nil {
			return err
		}
		// The other streams' sums are read under the connection's lock, so no concurrent write
		// of a sibling stream can slip in between this check and the resum below.
		others, err := otherStreams(ctx, tx, connectionID, stream)
		if err != nil {
			return err
		}
		if field, sum, ok := others.fitsWith(f); !ok {
			return &SumTooLargeError{Field: field, Sum: sum}
		}
		if _, err := tx.NewInsert().Model(row).On("CONFLICT (connection_id, stream) DO UPDATE").
			Set("record_count = EXCLUDED.record_count, record_json_bytes = EXCLUDED.record_json_bytes").
			Set("record_changes_count = EXCLUDED.record_changes_count, record_changes_json_bytes = EXCLUDED.record_changes_json_bytes").
			Set("blob_count = EXCLUDED.blob_count, blob_bytes = EXCLUDED.blob_bytes, total_bytes = EXCLUDED.total_bytes").
			Set("last_record_at = EXCLUDED.last_record_at, updated_at = EXCLUDED.updated_at").Exec(ctx); err != nil {
			return err
		}
		if err := s.resum(ctx, tx, connectionID, row.UpdatedAt); err != nil {
			return err
		}
		return s.advance(ctx, tx, connectionID)
	})
	if err != nil {
		var sum *SumTooLargeError
		if errors.Is(err, ErrNotFound) || errors.As(err, &sum) {
			return nil, err
		}
		return nil, fmt.Errorf("retained: put %s/%s: %w", connectionID, stream, err)
	}
	return row, nil
}

// otherStreams sums the figures of the connection's streams other than stream (one statement).
func otherStreams(ctx context.Context, tx bun.Tx, id, stream string) (Figures, error) {
	var f Figures
	err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(record_count), 0), coalesce(sum(record_json_bytes), 0),
		coalesce(sum(record_changes_count), 0), coalesce(sum(record_changes_json_bytes), 0),
		coalesce(sum(blob_count), 0), coalesce(sum(blob_bytes), 0)
		FROM retained_streams WHERE connection_id = ? AND stream <> ?`, id, stream).
		Scan(&f.RecordCount, &f.RecordJSONBytes, &f.RecordChangesCount, &f.RecordChangesJSONBytes, &f.BlobCount, &f.BlobBytes)
	return f, err
}

// Delete removes one stream row and recomputes the connection row (removed with its last stream).
func (s *Store) Delete(ctx context.Context, connectionID, stream string) error {
	err := bootstrap.RunInTx(ctx, s.db, func(ctx context.Context, tx bun.Tx) error {
		if err := lockConnection(ctx, tx, connectionID); err != nil {
			return err
		}
		res, err := tx.NewDelete().Model((*StreamRow)(nil)).Where("connection_id = ? AND stream = ?", connectionID, stream).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if err := s.resum(ctx, tx, connectionID, bootstrap.FormatTime(s.now())); err != nil {
			return err
		}
		return s.advance(ctx, tx, connectionID)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("retained: delete %s/%s: %w", connectionID, stream, err)
	}
	return err
}

// advance advances the feed revision for the connection whose figures changed: the last
// statement of every retained write (revision.Advance).
func (s *Store) advance(ctx context.Context, tx bun.Tx, connectionID string) error {
	_, err := revision.Advance(ctx, tx, revision.Change{ConnectionIDs: []string{connectionID}}, s.now())
	return err
}

// lockConnection locks the connection's row for the transaction, so that writes of its streams
// run one after the other and each sum sees every stream committed before it (under READ
// COMMITTED two concurrent writers would each sum without the other's stream). ErrNotFound when
// the connection does not exist.
func lockConnection(ctx context.Context, tx bun.Tx, id string) error {
	var got []string
	if err := bootstrap.LockRows(tx.NewSelect().Table("connections").Column("connection_id").Where("connection_id = ?", id)).
		Scan(ctx, &got); err != nil {
		return err
	}
	if len(got) == 0 {
		return ErrNotFound
	}
	return nil
}

// resum brings the connection row in step with its stream rows: the sums upserted in place (one
// statement), or the row deleted when no stream is left.
func (s *Store) resum(ctx context.Context, tx bun.Tx, id, now string) error {
	res, err := tx.ExecContext(ctx, `INSERT INTO retained_connections (connection_id, stream_count, record_count,
		record_json_bytes, record_changes_count, record_changes_json_bytes, blob_count, blob_bytes, total_bytes,
		last_record_at, updated_at)
		SELECT connection_id, count(*), sum(record_count), sum(record_json_bytes), sum(record_changes_count),
			sum(record_changes_json_bytes), sum(blob_count), sum(blob_bytes), sum(total_bytes), max(last_record_at), ?
		FROM retained_streams WHERE connection_id = ? GROUP BY connection_id
		ON CONFLICT (connection_id) DO UPDATE SET stream_count = EXCLUDED.stream_count,
			record_count = EXCLUDED.record_count, record_json_bytes = EXCLUDED.record_json_bytes,
			record_changes_count = EXCLUDED.record_changes_count, record_changes_json_bytes = EXCLUDED.record_changes_json_bytes,
			blob_count = EXCLUDED.blob_count, blob_bytes = EXCLUDED.blob_bytes, total_bytes = EXCLUDED.total_bytes,
			last_record_at = EXCLUDED.last_record_at, updated_at = EXCLUDED.updated_at`, now, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	_, err = tx.NewDelete().Model((*ConnectionRow)(nil)).Where("connection_id = ?", id).Exec(ctx)
	return err
}

// All implements Snapshot.
func (s *Store) All(ctx context.Context, ids []string) (map[string]*Retained, error) {
	if ids != nil && len(ids) == 0 {
		return map[string]*Retained{}, nil
	}
	if ids == nil {
		return s.load(ctx, nil)
	}
	return s.load(ctx, membership(ids))
}

// Of implements Snapshot.
func (s *Store) Of(ctx context.Context, connections schema.QueryAppender) (map[string]*Retained, error) {
	return s.load(ctx, connections)
}

// QueueOf implements Snapshot.
func (s *Store) QueueOf(b *bootstrap.Batch, connections schema.QueryAppender, out *map[string]*Retained) {
	s.queueLoad(b, connections, func(all map[string]*Retained) { *out = all })
}

// membership renders a list of ids as the right-hand side of a membership test, like the
// catalog's IDSet renders a filter.
type membership []string

// AppendQuery implements schema.QueryAppender.
func (m membership) AppendQuery(gen schema.QueryGen, b []byte) ([]byte, error) {
	b = append(b, "IN ("...)
	b, err := bun.List([]string(m)).AppendQuery(gen, b)
	if err != nil {
		return nil, err
	}
	return append(b, ')'), nil
}

const (
	connectionColumns = "connection_id, stream_count, record_count, record_json_bytes, record_changes_count, " +
		"record_changes_json_bytes, blob_count, blob_bytes, last_record_at, total_bytes, updated_at"
	streamColumns = "connection_id, stream, record_count, record_json_bytes, record_changes_count, " +
		"record_changes_json_bytes, blob_count, blob_bytes, last_record_at, total_bytes, updated_at"
)

// load reads the connection rows and stream rows of the connections in (a membership test's
// right-hand side; every connection when nil).
func (s *Store) load(ctx context.Context, in schema.QueryAppender) (map[string]*Retained, error) {
	var b bootstrap.Batch
	var out map[string]*Retained
	s.queueLoad(&b, in, func(all map[string]*Retained) { out = all })
	if err := b.Run(ctx); err != nil {
		return nil, fmt.Errorf("retained: %w", err)
	}
	return out, nil
}

// queueLoad queues load's two statements on b, whose rows are scanned without bun's model
// reflection; then receives them once both are read.
func (s *Store) queueLoad(b *bootstrap.Batch, in schema.QueryAppender, then func(map[string]*Retained)) {
	cq := s.db.NewSelect().ColumnExpr(connectionColumns).Table("retained_connections")
	sq := s.db.NewSelect().ColumnExpr(streamColumns).Table("retained_streams").OrderExpr("connection_id, stream")
	if in != nil {
		cq = cq.Where("connection_id ?", in)
		sq = sq.Where("connection_id ?", in)
	}
	out := map[string]*Retained{}
	var last sql.NullString
	var c ConnectionRow
	b.Queue(s.db, cq, scanRows("connection rows", []any{&c.ConnectionID, &c.StreamCount, &c.RecordCount, &c.RecordJSONBytes,
		&c.RecordChangesCount, &c.RecordChangesJSONBytes, &c.BlobCount, &c.BlobBytes, &last, &c.TotalBytesCol, &c.UpdatedAt}, func() {
		row := c
		row.LastRecordAt = bootstrap.StringOrNil(last)
		out[c.ConnectionID] = &Retained{Connection: &row}
	}, nil))
	var st StreamRow
	b.Queue(s.db, sq, scanRows("stream rows", []any{&st.ConnectionID, &st.Stream, &st.RecordCount, &st.RecordJSONBytes,
		&st.RecordChangesCount, &st.RecordChangesJSONBytes, &st.BlobCount, &st.BlobBytes, &last, &st.TotalBytesCol, &st.UpdatedAt}, func() {
		row := st
		row.LastRecordAt = bootstrap.StringOrNil(last)
		r := out[st.ConnectionID]
		if r == nil {
			r = &Retained{}
			out[st.ConnectionID] = r
		}
		r.Streams = append(r.Streams, row)
	}, func() { then(out) }))
}

// scanRows is the scan of a batched read that scans each row into dest, calling each after
// every row and done (when not nil) after the last; what names the rows in its errors.
func scanRows(what string, dest []any, each, done func()) func(bootstrap.Rows) error {
	return func(rows bootstrap.Rows) error {
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			each()
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if done != nil {
			done()
		}
		return nil
	}
}

// ForConnection implements Snapshot.
func (s *Store) ForConnection(ctx context.Context, id string) (*Retained, error) {
	all, err := s.All(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return oneOf(all, id), nil
}

// QueueForConnection implements Snapshot.
func (s *Store) QueueForConnection(b *bootstrap.Batch, id string, out **Retained) {
	s.queueLoad(b, membership{id}, func(all map[string]*Retained) { *out = oneOf(all, id) })
}

// oneOf is the rows of connection id in all (none: an empty Retained).
func oneOf(all map[string]*Retained, id string) *Retained {
	if r := all[id]; r != nil {
		return r
	}
	return &Retained{}
}
