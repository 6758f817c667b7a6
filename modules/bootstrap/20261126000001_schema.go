package bootstrap

import (
	"context"

	"github.com/uptrace/bun"
)

// The first schema version: every table and every required index.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if err := applyStatements(ctx, tx, schemaV1); err != nil {
				return err
			}
			return applyStatements(ctx, tx, indexesOn(DialectOf(tx), "spine_events", "connections"))
		})
	}, nil)
}
