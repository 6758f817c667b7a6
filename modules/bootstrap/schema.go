package bootstrap

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// ddl renders a statement written once for both engines. The only differences between the
// engines live here: the identity column and covering-index columns.
func ddl(d Dialect, stmt string) string {
	seq := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if d == Postgres {
		seq = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return strings.NewReplacer("{{SEQ_PK}}", seq).Replace(stmt)
}

// schemaV1 holds the tables of the first schema version. Times are TEXT in the fixed UTC form
// 2006-01-02T15:04:05.000Z on both engines, so text order is time order.
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
}

// readModelV2 holds the maintained run read model (SPEC §4.8): one row per connector run with
// the time-independent part of its fold and the connection it is attributed to, a head per
// connection, and the sequence the model has applied.
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
}

// RequiredIndex is an index a read path depends on. The service verifies each at start and
// recreates a missing one.
type RequiredIndex struct {
	Name   string `json:"name"`
	Table  string `json:"table"`
	Reason string `json:"reason"`
	create string
}

// RequiredIndexes lists the indexes for an engine. PostgreSQL gets covering (INCLUDE) partial
// indexes; SQLite gets the same partial index with the covered columns appended to the key.
func RequiredIndexes(d Dialect) []RequiredIndex {
	// No INCLUDE columns: the run-page load also reads `data` of terminal events, so it visits the
	// heap anyway, and every covered column would be paid on each append.
	runSummary := "(source_kind, source_id, run_id, occurred_at DESC)"
	return []RequiredIndex{
		{
			Name: "idx_spine_events_source_run_summary", Table: "spine_events",
			Reason: "run pages: load the events of the selected runs of one connector",
			create: "CREATE INDEX IF NOT EXISTS idx_spine_events_source_run_summary ON spine_events " + runSummary + " WHERE run_id IS NOT NULL",
		},
		{
			Name: "idx_spine_events_source_recent", Table: "spine_events",
			Reason: "run pages: find a connector's most recent runs newest-first without reading its history",
			create: "CREATE INDEX IF NOT EXISTS idx_spine_events_source_recent ON spine_events (source_kind, source_id, occurred_at DESC, run_id DESC) WHERE run_id IS NOT NULL",
		},
		{
			Name: "idx_connections_feed_order", Table: "connections",
			Reason: "overview order and keyset pages",
			create: "CREATE INDEX IF NOT EXISTS idx_connections_feed_order ON connections (connector_id, created_at, connection_id)",
		},
		{
			Name: "idx_run_summaries_connection_order", Table: "run_summaries",
			Reason: "read model: a connection's runs newest first, its head",
			create: "CREATE INDEX IF NOT EXISTS idx_run_summaries_connection_order ON run_summaries (connection_id, last_at DESC, run_id DESC)",
		},
		{
			Name: "idx_run_summaries_connection_status", Table: "run_summaries",
			Reason: "read model: a connection's latest successful run",
			create: "CREATE INDEX IF NOT EXISTS idx_run_summaries_connection_status ON run_summaries (connection_id, status_key, last_at DESC, run_id DESC)",
		},
		{
			Name: "idx_run_summaries_connector_order", Table: "run_summaries",
			Reason: "read model: a connector's recent runs (diagnostics candidates), re-attribution",
			create: "CREATE INDEX IF NOT EXISTS idx_run_summaries_connector_order ON run_summaries (connector_id, last_at DESC, run_id DESC)",
		},
	}
}

// indexesOn returns the create statements of the required indexes on the given tables, so each
// migration creates the indexes of the tables it creates.
func indexesOn(d Dialect, tables ...string) []string {
	var out []string
	for _, ix := range RequiredIndexes(d) {
		for _, t := range tables {
			if ix.Table == t {
				out = append(out, ix.create)
			}
		}
	}
	return out
}

func applyStatements(ctx context.Context, db bun.IDB, stmts []string) error {
	d := DialectOf(db)
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, ddl(d, s)); err != nil {
			return fmt.Errorf("bootstrap: %s: %w", firstLine(s), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
