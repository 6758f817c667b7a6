package bootstrap

import (
	"context"

	"github.com/uptrace/bun"
)

// schemaV1 is the first schema version: every table and the indexes of the tables it creates.
// A migration is history: its statements are frozen here as they shipped, never derived from the
// live definitions in schema.go, so a fresh database replays exactly what an old one went
// through. Times are TEXT in the fixed UTC form 2006-01-02T15:04:05.000Z on both engines, so text
// order is time order.
var schemaV1 = []string{
	`CREATE TABLE IF NOT EXISTS connectors (
		connector_id TEXT PRIMARY KEY,
		display_name TEXT NOT NULL,
		version TEXT,
		listed BOOLEAN NOT NULL DEFAULT TRUE,
		profile_key TEXT,
		manifest TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS connections (
		connection_id TEXT PRIMARY KEY,
		connector_id TEXT NOT NULL REFERENCES connectors (connector_id),
		display_name TEXT NOT NULL,
		status TEXT NOT NULL,
		source_kind TEXT NOT NULL,
		source_binding_key TEXT NOT NULL,
		created_at TEXT NOT NULL,
		updated_at TEXT NOT NULL,
		revoked_at TEXT,
		UNIQUE (connector_id, source_kind, source_binding_key)
	)`,
	`CREATE TABLE IF NOT EXISTS spine_events (
		event_seq {{SEQ_PK}},
		event_id TEXT NOT NULL UNIQUE,
		event_type TEXT NOT NULL,
		occurred_at TEXT NOT NULL,
		recorded_at TEXT NOT NULL,
		run_id TEXT,
		source_kind TEXT,
		source_id TEXT,
		connector_instance_id TEXT,
		connection_id TEXT,
		status TEXT,
		data TEXT,
		content_hash TEXT NOT NULL,
		connection_ref TEXT,
		failure_reason TEXT,
		bs_present BOOLEAN NOT NULL DEFAULT FALSE,
		bs_status TEXT,
		bs_wait_reason TEXT,
		bs_profile_key TEXT
	)`,
	`CREATE TABLE IF NOT EXISTS retained_streams (
		connection_id TEXT NOT NULL REFERENCES connections (connection_id),
		stream TEXT NOT NULL,
		record_count BIGINT NOT NULL,
		record_json_bytes BIGINT NOT NULL,
		record_changes_count BIGINT NOT NULL,
		record_changes_json_bytes BIGINT NOT NULL,
		blob_count BIGINT NOT NULL,
		blob_bytes BIGINT NOT NULL,
		total_bytes BIGINT NOT NULL,
		last_record_at TEXT,
		updated_at TEXT NOT NULL,
		PRIMARY KEY (connection_id, stream)
	)`,
	`CREATE TABLE IF NOT EXISTS retained_connections (
		connection_id TEXT PRIMARY KEY REFERENCES connections (connection_id),
		stream_count BIGINT NOT NULL,
		record_count BIGINT NOT NULL,
		record_json_bytes BIGINT NOT NULL,
		record_changes_count BIGINT NOT NULL,
		record_changes_json_bytes BIGINT NOT NULL,
		blob_count BIGINT NOT NULL,
		blob_bytes BIGINT NOT NULL,
		total_bytes BIGINT NOT NULL,
		last_record_at TEXT,
		updated_at TEXT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS idx_spine_events_source_run_summary ON spine_events (source_kind, source_id, run_id, occurred_at DESC) WHERE run_id IS NOT NULL`,
	`CREATE INDEX IF NOT EXISTS idx_spine_events_source_recent ON spine_events (source_kind, source_id, occurred_at DESC, run_id DESC) WHERE run_id IS NOT NULL`,
	`CREATE INDEX IF NOT EXISTS idx_connections_feed_order ON connections (connector_id, created_at, connection_id)`,
}

func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return applyStatements(ctx, tx, schemaV1)
		})
	}, nil)
}
