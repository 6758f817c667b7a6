package bootstrap

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// Rows is what the scan of a batched read iterates: database/sql's rows, or one result of a pgx
// batch. Both fill the destinations the read path scans into (*string, *bool, *int64,
// sql.NullString).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// Batch gathers reads that do not depend on one another (a feed read's revision, catalog rows,
// retained rows and run heads) so that they cost one round trip. On PostgreSQL the reads of a
// pool (*bun.DB) go out as one pgx batch, which over the simple protocol is one query message of
// all the statements; PostgreSQL runs them one after the other without waiting for the client,
// while the client decodes the results already sent (a page of 100 at 10,000 connections: its
// four statements 2.4 ms in one message against 3.3 ms one after another, and under load 4.6
// against 8.1 ms). Each statement still takes its own snapshot (READ COMMITTED), as it did when
// sent alone. On SQLite, inside a transaction, or for a single read, the reads run one after
// another through bun, as every other statement does. Either way every statement is counted
// on the context's StatementCounters. The zero Batch is empty and ready.
type Batch struct {
	reads []batchRead
}

type batchRead struct {
	db   bun.IDB
	q    *bun.SelectQuery
	scan func(Rows) error
}

// Queue adds the read q, made from db, whose rows scan consumes when the batch runs. Reads run,
// and are scanned, in the order they were queued.
func (b *Batch) Queue(db bun.IDB, q *bun.SelectQuery, scan func(Rows) error) {
	b.reads = append(b.reads, batchRead{db: db, q: q, scan: scan})
}

// Len is the number of reads queued.
func (b *Batch) Len() int { return len(b.reads) }

// Pipelined reports whether reads queued next go out in the round trip of those queued so far:
// they are a PostgreSQL pool's. A caller reads ahead (what an answer may need before it is
// known that it does) only then: on SQLite, or in a transaction, every read is a statement of
// its own, and a read ahead that is not needed is work for nothing.
func (b *Batch) Pipelined() bool { return len(b.reads) > 0 && sharedPool(b.reads) != nil }

// Run sends the queued reads and scans their rows; the batch is empty afterwards. The first
// error stops it.
func (b *Batch) Run(ctx context.Context) error {
	reads := b.reads
	b.reads = nil
	if pool := sharedPool(reads); pool != nil && len(reads) > 1 {
		return runPipelined(ctx, pool, reads)
	}
	for i, r := range reads {
		if err := runOne(ctx, r); err != nil {
			return r.failed(i, err)
		}
	}
	return nil
}

// failed names the i-th read of a batch, and its table, in its error: the log says which read
// failed (the service's answer is the error's status only).
func (r batchRead) failed(i int, err error) error {
	if t := r.q.GetTableName(); t != "" {
		return fmt.Errorf("bootstrap: batch read %d (%s): %w", i+1, t, err)
	}
	return fmt.Errorf("bootstrap: batch read %d: %w", i+1, err)
}

// sharedPool is the PostgreSQL pool that all of reads are made from, whose reads go out in one
// message; nil otherwise (SQLite, a transaction's reads, reads of different pools).
func sharedPool(reads []batchRead) *bun.DB {
	if len(reads) == 0 {
		return nil
	}
	first, ok := reads[0].db.(*bun.DB)
	if !ok || DialectOf(first) != Postgres {
		return nil
	}
	for _, r := range reads[1:] {
		// A transaction's reads must run on the transaction's connection.
		if d, ok := r.db.(*bun.DB); !ok || d.DB != first.DB {
			return nil
		}
	}
	return first
}

// runOne runs one read through bun (its query hooks count it).
func runOne(ctx context.Context, r batchRead) error {
	rows, err := r.q.Rows(ctx)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := r.scan(rows); err != nil {
		return err
	}
	return rows.Err()
}

// runPipelined sends reads in one pgx batch on one pooled connection and scans each result in
// turn. bun formats the values into each text, as it does for every statement the service sends
// (QueryExecMode), so the batch carries no arguments.
func runPipelined(ctx context.Context, pool *bun.DB, reads []batchRead) error {
	texts := make([]string, len(reads))
	for i, r := range reads {
		b, err := r.q.AppendQuery(pool.QueryGen(), nil)
		if err != nil {
			return err
		}
		texts[i] = string(b)
	}
	at, err := SendTexts(ctx, pool, texts, func(i int, rows pgx.Rows) error {
		err := reads[i].scan(textRows{rows}) // textrows.go
		rows.Close()
		countStatement(ctx, texts[i])
		return err
	})
	if err != nil && at >= 0 {
		return reads[at].failed(at, err)
	}
	return err
}

// SendTexts sends texts (SQL without arguments) as one pgx batch on a connection of the
// PostgreSQL pool, one round trip, and hands each statement's rows to each in order (each need
// not drain them; their error is checked after it). It stops at the first error and reports the
// position of the statement that failed (-1 when the batch failed as a whole). The bench's floor
// sends a read's texts through it, as the service does.
func SendTexts(ctx context.Context, pool *bun.DB, texts []string, each func(i int, rows pgx.Rows) error) (int, error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return -1, err
	}
	defer func() { _ = conn.Close() }()
	at := -1
	err = conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("bootstrap: batch on a %T connection", driverConn)
		}
		pb := &pgx.Batch{}
		for _, t := range texts {
			pb.Queue(t)
		}
		br := sc.Conn().SendBatch(ctx, pb)
		err := sendEach(br, len(texts), each, &at)
		// Close reports the batch's first error again: it only adds one when the results had none.
		if cerr := br.Close(); err == nil && cerr != nil {
			at, err = -1, fmt.Errorf("bootstrap: batch: %w", cerr)
		}
		return err
	})
	return at, err
}

// sendEach hands the batch's n results to each in order; *at is the one being read.
func sendEach(br pgx.BatchResults, n int, each func(i int, rows pgx.Rows) error, at *int) error {
	for i := 0; i < n; i++ {
		*at = i
		rows, err := br.Query()
		if err != nil {
			return err
		}
		err = each(i, rows)
		rows.Close()
		if err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	*at = -1
	return nil
}
