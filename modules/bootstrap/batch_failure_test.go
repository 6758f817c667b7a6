package bootstrap_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// bootstrap.Batch on PostgreSQL (from an adversarial review): a batch that fails part-way (statement
// timeout, request deadline, a scan that gives up with rows still unread) must answer an error
// IsUnavailable accepts (for the first two) and leave the pool with no half-read result and no
// open (implicit) transaction.

func openOne(t *testing.T, opts bootstrap.PoolOptions) *bun.DB {
	t.Helper()
	opts.MaxOpenConns, opts.MaxIdleConns = 1, 1
	db, err := bootstrap.Open(context.Background(), dbtest.PostgresURL(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// requireCleanPool: the next reads on the one pooled connection succeed at once, each in a
// transaction of its own (no implicit transaction left open by the batch).
func requireCleanPool(t *testing.T, db *bun.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var b bootstrap.Batch
	var x1, x2 []string
	b.Queue(db, db.NewSelect().ColumnExpr("txid_current()::text"), collect(&x1))
	if err := b.Run(ctx); err != nil {
		t.Fatalf("first read after the failed batch: %v", err)
	}
	b.Queue(db, db.NewSelect().ColumnExpr("txid_current()::text"), collect(&x2))
	if err := b.Run(ctx); err != nil {
		t.Fatalf("second read after the failed batch: %v", err)
	}
	if len(x1) != 1 || len(x2) != 1 || x1[0] == x2[0] {
		t.Errorf("two reads after the failed batch saw transaction ids %v and %v: a transaction was left open", x1, x2)
	}
	var ok []string
	b.Queue(db, db.NewSelect().ColumnExpr("'a'"), collect(&ok))
	b.Queue(db, db.NewSelect().ColumnExpr("'b'"), collect(&ok))
	if err := b.Run(ctx); err != nil || len(ok) != 2 {
		t.Errorf("a batch after the failed one: %v %v", ok, err)
	}
}

func TestBatchStatementTimeoutMidBatchIsUnavailableAndLeavesThePoolClean(t *testing.T) {
	db := openOne(t, bootstrap.PoolOptions{StatementTimeout: 200 * time.Millisecond})
	var b bootstrap.Batch
	var got []string
	b.Queue(db, db.NewSelect().ColumnExpr("'first'"), collect(&got))
	b.Queue(db, db.NewSelect().ColumnExpr("pg_sleep(3)::text"), collect(&got))
	b.Queue(db, db.NewSelect().ColumnExpr("'third'"), collect(&got))
	err := b.Run(context.Background())
	if err != nil && (!strings.HasPrefix(err.Error(), "bootstrap: batch read 2: ") || strings.Count(err.Error(), "statement timeout") != 1) {
		t.Errorf("the error names the read that failed, once: %v", err)
	}
	if err == nil || !bootstrap.IsUnavailable(err) {
		t.Fatalf("statement timeout in the second read: err %v, IsUnavailable %v; want a 503 error", err, bootstrap.IsUnavailable(err))
	}
	requireCleanPool(t, db)
}

func TestBatchDeadlineMidBatchIsUnavailableAndLeavesThePoolClean(t *testing.T) {
	db := openOne(t, bootstrap.PoolOptions{})
	var b bootstrap.Batch
	var got []string
	b.Queue(db, db.NewSelect().ColumnExpr("'first'"), collect(&got))
	b.Queue(db, db.NewSelect().ColumnExpr("pg_sleep(3)::text"), collect(&got))
	b.Queue(db, db.NewSelect().ColumnExpr("'third'"), collect(&got))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// pg_sleep(3) outlasts the deadline: only the cancellation ends the batch with this error.
	err := b.Run(ctx)
	if err == nil || !bootstrap.IsUnavailable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline in the second read: err %v, IsUnavailable %v (got %q)", err, bootstrap.IsUnavailable(err), got)
	}
	requireCleanPool(t, db)
}

func TestBatchScanGivingUpWithRowsUnreadLeavesThePoolClean(t *testing.T) {
	db := openOne(t, bootstrap.PoolOptions{})
	var b bootstrap.Batch
	stop := errors.New("scan gives up")
	b.Queue(db, db.NewSelect().ColumnExpr("g::text").TableExpr("generate_series(1, 200000) AS g"), func(rows bootstrap.Rows) error {
		rows.Next()
		return stop
	})
	var after []string
	b.Queue(db, db.NewSelect().ColumnExpr("'after'"), collect(&after))
	if err := b.Run(context.Background()); !errors.Is(err, stop) {
		t.Fatalf("err = %v, want the scan's", err)
	}
	requireCleanPool(t, db)
}

// A db.url may set default_query_exec_mode (db.go lets it win): the batch must still read right.
func TestBatchUnderEveryExecMode(t *testing.T) {
	for _, mode := range []string{"exec", "cache_statement", "cache_describe", "describe_exec"} {
		t.Run(mode, func(t *testing.T) {
			u := dbtest.PostgresURL(t) + "&default_query_exec_mode=" + mode
			db, err := bootstrap.Open(context.Background(), u, bootstrap.PoolOptions{MaxOpenConns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var b bootstrap.Batch
			var got []string
			b.Queue(db, db.NewSelect().ColumnExpr("? AS v", "it's"), collect(&got))
			b.Queue(db, db.NewSelect().ColumnExpr("42::bigint::text"), collect(&got))
			if err := b.Run(context.Background()); err != nil || len(got) != 2 || got[0] != "it's" || got[1] != "42" {
				t.Errorf("batch under %s: %q %v", mode, got, err)
			}
		})
	}
}
