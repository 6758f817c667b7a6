package bootstrap

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// ddl renders a statement written once for both engines. The only difference between the
// engines that migrations spell as a placeholder is the identity column. Migrations are frozen
// history that depends on this rendering: never change what a placeholder renders, add a new one.
func ddl(d Dialect, stmt string) string {
	seq := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if d == Postgres {
		seq = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return strings.NewReplacer("{{SEQ_PK}}", seq).Replace(stmt)
}

// RequiredIndex is an index a read path depends on. The service verifies each at start and
// recreates a missing one.
type RequiredIndex struct {
	Name   string `json:"name"`
	Table  string `json:"table"`
	Reason string `json:"reason"`
	create string
}

// RequiredIndexes lists the indexes that start-up verifies and recreates when missing. Each
// definition is the index as the latest migration leaves it; the migrations carry their own
// frozen statements, so editing this list never changes what history creates. The statements are
// the same on both engines, and on PostgreSQL the keys inherit the byte-order ("C") collation of
// their columns (migration 20261201000001).
func RequiredIndexes() []RequiredIndex {
	// No INCLUDE columns: the run-page load also reads `data` of terminal events, so it visits the
	// heap anyway, and every covered column would be paid on each append.
	return []RequiredIndex{
		{
			Name: "idx_spine_events_source_run_summary", Table: "spine_events",
			Reason: "run pages: load the events of the selected runs of one connector",
			create: "CREATE INDEX IF NOT EXISTS idx_spine_events_source_run_summary ON spine_events (source_kind, source_id, run_id, occurred_at DESC) WHERE run_id IS NOT NULL",
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

// applyStatements runs a migration's statements in order, rendered for the engine of db.
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
