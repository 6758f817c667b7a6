package bootstrap_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// collect is the scan of a batched read of one text column: it appends every value to *out.
func collect(out *[]string) func(bootstrap.Rows) error {
	return func(rows bootstrap.Rows) error {
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return err
			}
			*out = append(*out, v)
		}
		return nil
	}
}

// TestBatchRunsItsReadsInOrderAndCountsThem: on both engines a batch's reads are scanned in the
// order they were queued, each counted once (with its text) on the context's statement counter,
// whichever way they were sent; an error stops the batch and leaves the pool usable.
func TestBatchRunsItsReadsInOrderAndCountsThem(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		c := &bootstrap.StatementCounter{KeepTexts: true}
		ctx := bootstrap.WithStatementCounter(context.Background(), c)
		var b bootstrap.Batch
		got := make([][]string, 3)
		for i := range got {
			// Values of each kind the read path scans, and a text that needs quoting.
			b.Queue(db, db.NewSelect().ColumnExpr("? AS v", fmt.Sprintf("read %d's 'value'", i)), collect(&got[i]))
		}
		if b.Len() != 3 {
			t.Fatalf("Len = %d, want 3", b.Len())
		}
		if err := b.Run(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if want := fmt.Sprintf("read %d's 'value'", i); len(got[i]) != 1 || got[i][0] != want {
				t.Errorf("read %d scanned %q, want [%q]", i, got[i], want)
			}
		}
		if c.Count() != 3 || len(c.Texts()) != 3 {
			t.Errorf("counted %d statements with %d texts, want 3 and 3", c.Count(), len(c.Texts()))
		}
		if b.Len() != 0 {
			t.Errorf("Len after Run = %d, want 0", b.Len())
		}

		var before, after []string
		b.Queue(db, db.NewSelect().ColumnExpr("'before'"), collect(&before))
		b.Queue(db, db.NewSelect().ColumnExpr("x").Table("no_such_table"), collect(&after))
		b.Queue(db, db.NewSelect().ColumnExpr("'after'"), collect(&after))
		if err := b.Run(ctx); err == nil {
			t.Error("a batch with a failing read succeeded")
		}
		if len(after) != 0 {
			t.Errorf("the read after the failing one was scanned: %q", after)
		}
		var again []string
		b.Queue(db, db.NewSelect().ColumnExpr("'again'"), collect(&again))
		b.Queue(db, db.NewSelect().ColumnExpr("'again'"), collect(&again))
		if err := b.Run(ctx); err != nil || len(again) != 2 {
			t.Errorf("the batch after a failed one: %q, %v", again, err)
		}
	})
}

// TestBatchIsOneRoundTripOnPostgres: on PostgreSQL a pool's batch goes out as one message,
// which PostgreSQL runs as one implicit transaction, so every read of it sees the same
// transaction id where reads sent one by one see one each; a transaction's reads run on the
// transaction's connection, inside it.
func TestBatchIsOneRoundTripOnPostgres(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	xids := func(idb bun.IDB, n int, together bool) []string {
		t.Helper()
		var out []string
		var b bootstrap.Batch
		for i := 0; i < n; i++ {
			b.Queue(idb, idb.NewSelect().ColumnExpr("txid_current()::text"), collect(&out))
			if !together {
				if err := b.Run(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := b.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if one := xids(db, 2, false); len(one) != 2 || one[0] == one[1] {
		t.Fatalf("reads sent one by one saw transaction ids %v, want two different ones", one)
	}
	if batch := xids(db, 3, true); len(batch) != 3 || batch[0] != batch[1] || batch[1] != batch[2] {
		t.Errorf("a batch's reads saw transaction ids %v, want one (one message)", batch)
	}
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var own string
		if err := tx.QueryRowContext(ctx, "SELECT txid_current()::text").Scan(&own); err != nil {
			return err
		}
		if got := xids(tx, 2, true); len(got) != 2 || got[0] != own || got[1] != own {
			t.Errorf("a transaction's batch saw transaction ids %v, want the transaction's %s", got, own)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
