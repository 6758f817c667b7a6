package bootstrap_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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

// scanned is a row of every kind of destination the read path scans into.
type scanned struct {
	id, text string
	null     sql.NullString
	n        int64
	flag     bool
	ratio    float64
}

// TestBatchScansEveryDestinationAsSentAlone: the rows of a batch (on PostgreSQL decoded from
// their text by the batch itself, the short texts of a row sharing one string) hold what
// the same reads give, value for value: texts of every length next to one another, empty and
// multi-byte ones, short and long ones, NULL and non-NULL nullable texts, bigints, booleans; a row with a
// destination the batch does not decode (a float) still scans, and a NULL into a *string is
// an error on both engines.
func TestBatchScansEveryDestinationAsSentAlone(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		long := strings.Repeat("a long nullable text ", 20) // longer than a row's shared string takes
		rowsSQL := "SELECT CAST('a' AS TEXT) AS id, CAST('' AS TEXT) AS text, CAST(NULL AS TEXT) AS null_text, " +
			"CAST(-9223372036854775807 AS BIGINT) AS n, (1 = 1) AS flag, CAST(0.5 AS REAL) AS ratio " +
			"UNION ALL SELECT 'bb', 'gr\u00fc\u00dfe \u2014 \U0001F600', 'manifest {\"x\": 1}', 42, (1 = 0), 1.5 " +
			"UNION ALL SELECT 'ccc', 'a text of some length, with ''quotes''" + strings.Repeat(".", 300) + "', '" + long + "', 0, (1 = 1), 2.5 " +
			"UNION ALL SELECT 'd', '', '', 0, (1 = 0), 3.5"
		want := []scanned{
			{id: "a", text: "", n: -9223372036854775807, flag: true, ratio: 0.5},
			{id: "bb", text: "gr\u00fc\u00dfe \u2014 \U0001F600", null: sql.NullString{String: `manifest {"x": 1}`, Valid: true}, n: 42, ratio: 1.5},
			{id: "ccc", text: "a text of some length, with 'quotes'" + strings.Repeat(".", 300), null: sql.NullString{String: long, Valid: true}, flag: true, ratio: 2.5},
			{id: "d", null: sql.NullString{Valid: true}, ratio: 3.5},
		}
		read := func(withRatio bool, out *[]scanned) func(bootstrap.Rows) error {
			return func(rows bootstrap.Rows) error {
				for rows.Next() {
					var s scanned
					dest := []any{&s.id, &s.text, &s.null, &s.n, &s.flag}
					if withRatio {
						dest = append(dest, &s.ratio)
					}
					if err := rows.Scan(dest...); err != nil {
						return err
					}
					*out = append(*out, s)
				}
				return nil
			}
		}
		var decoded, fallback []scanned
		var b bootstrap.Batch
		b.Queue(db, db.NewSelect().TableExpr("(?) AS t", bun.Safe(rowsSQL)).ColumnExpr("id, text, null_text, n, flag").OrderExpr("id"), read(false, &decoded))
		b.Queue(db, db.NewSelect().TableExpr("(?) AS t", bun.Safe(rowsSQL)).ColumnExpr("*").OrderExpr("id"), read(true, &fallback))
		if err := b.Run(ctx); err != nil {
			t.Fatal(err)
		}
		for i := range want {
			w := want[i]
			if len(fallback) != len(want) || fallback[i] != w {
				t.Errorf("row %d with a float: %+v, want %+v", i, fallback, w)
			}
			w.ratio = 0
			if len(decoded) != len(want) || decoded[i] != w {
				t.Errorf("row %d: %+v, want %+v", i, decoded, w)
			}
		}

		var none []string
		b.Queue(db, db.NewSelect().ColumnExpr("CAST(NULL AS TEXT)"), collect(&none))
		b.Queue(db, db.NewSelect().ColumnExpr("CAST(NULL AS TEXT)"), collect(&none))
		if err := b.Run(ctx); err == nil {
			t.Errorf("a NULL scanned into a *string: %q and no error", none)
		}
	})
}
