package bootstrap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// TestCopyRowsWritesEveryValueAsGiven: a binary COPY of text (with multi-byte characters,
// quotes, tabs, newlines and backslashes, empty and NULL), booleans and bigints (zero, negative,
// the extremes) reads back exactly; on SQLite CopyRows reports false and writes nothing.
func TestCopyRowsWritesEveryValueAsGiven(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "CREATE TABLE copy_probe (t TEXT, b BOOLEAN NOT NULL, n BIGINT NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		odd := "zażółć \"gęślą\"\tjaźń\n\\N ü 日本 🎈"
		rows := [][]any{
			{odd, true, int64(-1)},
			{"", false, int64(0)},
			{(*string)(nil), true, int64(9223372036854775807)},
			{&odd, false, int64(-9223372036854775808)},
		}
		var ok bool
		err := bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
			var err error
			ok, err = bootstrap.CopyRows(ctx, "copy_probe", []string{"t", "b", "n"}, rows)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := db.NewRaw("SELECT coalesce(t, '<null>') || '|' || b || '|' || n FROM copy_probe ORDER BY n").Scan(ctx, &got); err != nil {
			t.Fatal(err)
		}
		if bootstrap.DialectOf(db) != bootstrap.Postgres {
			if ok || len(got) != 0 {
				t.Fatalf("SQLite: CopyRows reported %v and wrote %d rows, want false and none", ok, len(got))
			}
			return
		}
		// PostgreSQL spells booleans true/false in text, SQLite 1/0: only PostgreSQL gets here.
		want := []string{odd + "|false|-9223372036854775808", odd + "|true|-1", "|false|0", "<null>|true|9223372036854775807"}
		if !ok || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("copied %v:\n%q\nwant\n%q", ok, got, want)
		}
	})
}

// TestCopyRowsRefusesWhatItCannotEncode: a value of a type without an encoding, a row of the
// wrong width, and a value whose column has another type (a bigint's eight bytes hold NULs,
// which text refuses) are errors naming the table, and the transaction writes nothing.
func TestCopyRowsRefusesWhatItCannotEncode(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TABLE copy_probe (t TEXT, n BIGINT)"); err != nil {
		t.Fatal(err)
	}
	for name, row := range map[string][]any{
		"int":         {"a", 1},
		"width":       {"a"},
		"column type": {int64(1), int64(2)},
	} {
		err := bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO copy_probe VALUES ('before', 0)"); err != nil {
				return err
			}
			_, err := bootstrap.CopyRows(ctx, "copy_probe", []string{"t", "n"}, [][]any{{"ok", int64(1)}, row})
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "copy into copy_probe") {
			t.Errorf("%s: error %v, want one naming the table", name, err)
		}
		var n int
		if err := db.NewRaw("SELECT count(*) FROM copy_probe").Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: %d rows written, want none", name, n)
		}
	}
	// No rows: a COPY of none, not an error.
	if err := bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
		_, err := bootstrap.CopyRows(ctx, "copy_probe", []string{"t", "n"}, nil)
		return err
	}); err != nil {
		t.Errorf("an empty copy: %v", err)
	}
}
