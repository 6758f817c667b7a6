package bootstrap

import (
	"context"

	"github.com/uptrace/bun"
)

// readModelV2 is the maintained run read model (SPEC §4.8): one row per connector run with the
// time-independent part of its fold and the connection it is attributed to, a head per
// connection, the sequence the model has applied, and the indexes its reads need. Frozen as it
// shipped, like every migration.
var readModelV2 = []string{
	`CREATE TABLE IF NOT EXISTS run_summaries (
		connector_id TEXT NOT NULL,
		run_id TEXT NOT NULL,
		connection_id TEXT,
		profile_key TEXT,
		connection_ref TEXT,
		first_at TEXT NOT NULL,
		last_at TEXT NOT NULL,
		event_count BIGINT NOT NULL,
		status_key TEXT NOT NULL,
		terminal_status TEXT,
		started BOOLEAN NOT NULL DEFAULT FALSE,
		last_status TEXT,
		event_failure_reason TEXT,
		bs_status TEXT,
		bs_wait_reason TEXT,
		known_gaps TEXT NOT NULL,
		collection_facts TEXT NOT NULL,
		last_event_seq BIGINT NOT NULL,
		PRIMARY KEY (connector_id, run_id)
	)`,
	`CREATE TABLE IF NOT EXISTS run_heads (
		connection_id TEXT PRIMARY KEY,
		connector_id TEXT NOT NULL,
		last_run_id TEXT,
		last_success_run_id TEXT
	)`,
	`CREATE TABLE IF NOT EXISTS read_model_state (
		name TEXT PRIMARY KEY,
		value BIGINT NOT NULL DEFAULT 0,
		text_value TEXT
	)`,
	`CREATE INDEX IF NOT EXISTS idx_run_summaries_connection_order ON run_summaries (connection_id, last_at DESC, run_id DESC)`,
	`CREATE INDEX IF NOT EXISTS idx_run_summaries_connection_status ON run_summaries (connection_id, status_key, last_at DESC, run_id DESC)`,
	`CREATE INDEX IF NOT EXISTS idx_run_summaries_connector_order ON run_summaries (connector_id, last_at DESC, run_id DESC)`,
}

// The maintained run read model. Existing databases get empty tables; the service's start
// catches the model up from the spine (runs.ReadModel.CatchUp), and `connsum rebuild` recomputes it.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return applyStatements(ctx, tx, readModelV2)
		})
	}, nil)
}
