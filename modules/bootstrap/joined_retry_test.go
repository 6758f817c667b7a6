package bootstrap_test

import (
	"context"
	"testing"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// A deadlock reported by a statement in the middle of an ExecJoined text is seen
// by RunSerialized as retryable; the retry starts clean (the joined statements before the
// failing one were rolled back with the attempt) and the ones after it never ran.
func TestExecJoinedDeadlockMidTextIsRetriedFromACleanTransaction(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx := context.Background()
	attempts := 0
	err := bootstrap.RunSerialized(ctx, db, func(ctx context.Context, tx bun.Tx) error {
		attempts++
		ins := tx.NewRaw("INSERT INTO read_model_state (name, value) VALUES (?, ?)", "review_joined", attempts)
		if attempts == 1 {
			return bootstrap.ExecJoined(ctx, tx, ins,
				tx.NewRaw("DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '40P01'; END $$"),
				tx.NewRaw("INSERT INTO read_model_state (name, value) VALUES (?, ?)", "review_after", 1))
		}
		return bootstrap.ExecJoined(ctx, tx, ins)
	})
	if err != nil {
		t.Fatalf("RunSerialized: %v after %d attempts", err, attempts)
	}
	var rows []struct {
		Name  string `bun:"name"`
		Value int64  `bun:"value"`
	}
	if err := db.NewSelect().Table("read_model_state").Column("name", "value").Where("name LIKE 'review_%'").Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || len(rows) != 1 || rows[0].Name != "review_joined" || rows[0].Value != 2 {
		t.Errorf("attempts %d, rows %+v; want 2 attempts and only the second attempt's row", attempts, rows)
	}
}
