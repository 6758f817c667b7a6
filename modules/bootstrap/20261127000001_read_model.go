package bootstrap

import (
	"context"

	"github.com/uptrace/bun"
)

// The maintained run read model. Existing databases get empty tables; the service's start
// catches the model up from the spine (runs.ReadModel.CatchUp), and `connsum rebuild` recomputes it.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := applyStatements(ctx, tx, readModelV2); err != nil {
				return err
			}
			return applyStatements(ctx, tx, indexesOn(DialectOf(tx), "run_summaries"))
		})
	}, nil)
}
