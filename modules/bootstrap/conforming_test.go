package bootstrap_test

import (
	"context"
	"testing"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// bun formats every value into the SQL text, quoted for standard_conforming_strings = on. On a
// database configured with it off, a value ending in a backslash would close bun's quote and run
// the rest as SQL; every session of the service sets it on, so the value stays a value (found by
// an adversarial review: before, both ExecJoined and a plain Exec created the table).
func TestValuesStayValuesWhereTheDatabaseTurnsStandardConformingStringsOff(t *testing.T) {
	u := dbtest.PostgresURL(t)
	ctx := context.Background()
	admin, err := bootstrap.Open(ctx, u, bootstrap.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var name string
	if err := admin.QueryRowContext(ctx, "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, `ALTER DATABASE "`+name+`" SET standard_conforming_strings = off`); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{u, u + "&standard_conforming_strings=off"} {
		db, err := bootstrap.Open(ctx, url, bootstrap.PoolOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var setting string
		if err := db.QueryRowContext(ctx, "SHOW standard_conforming_strings").Scan(&setting); err != nil || setting != "on" {
			t.Errorf("%s: standard_conforming_strings %q (%v), want on", url, setting, err)
		}
		_ = bootstrap.ExecJoined(ctx, db, db.NewRaw("SELECT ?", `x\'; CREATE TABLE injected_by_joined (x int); --`), db.NewRaw("SELECT 1"))
		_, _ = db.ExecContext(ctx, "SELECT ?", `x\'; CREATE TABLE injected_by_exec (x int); --`)
		var echoed string
		if err := db.NewRaw("SELECT ?", `a\'b`).Scan(ctx, &echoed); err != nil || echoed != `a\'b` {
			t.Errorf("%s: a value with a backslash read back as %q (%v)", url, echoed, err)
		}
		var b bootstrap.Batch
		var one, two int
		b.Queue(db, db.NewSelect().ColumnExpr("1"), func(r bootstrap.Rows) error { r.Next(); return r.Scan(&one) })
		b.Queue(db, db.NewSelect().ColumnExpr("2"), func(r bootstrap.Rows) error { r.Next(); return r.Scan(&two) })
		if err := b.Run(ctx); err != nil || one != 1 || two != 2 {
			t.Errorf("%s: a batch of reads: %v (%d, %d)", url, err, one, two)
		}
		db.Close()
	}
	var n int
	if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'injected_by_%'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d tables were created by a value", n)
	}
}
