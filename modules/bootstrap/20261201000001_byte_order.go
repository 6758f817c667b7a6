package bootstrap

import (
	"context"

	"github.com/uptrace/bun"
)

// byteOrderV3 makes PostgreSQL compare text as bytes, as SQLite (BINARY) always does. Without it
// a database created with a linguistic default collation (ICU en-US, en_US.UTF-8) orders
// connectors `a_b, a-b, a.b` instead of `a-b, a.b, a_b`, and breaks the run_id DESC tie-break
// differently from SQLite, so the same log would give another last_run (SPEC §4.1: deterministic
// on both engines). Every text column of the schema gets COLLATE "C", not only the ones that are
// ordered today: one rule leaves no comparison between columns of different collations and no
// order that depends on the database's locale. Changing only the collation of text rewrites no
// table, but rebuilds the indexes on those columns, which then serve the byte-ordered scans and
// keyset comparisons. One ALTER per table, so each table's indexes are rebuilt once.
var byteOrderV3 = []string{
	`ALTER TABLE connectors
		ALTER COLUMN connector_id TYPE text COLLATE "C",
		ALTER COLUMN display_name TYPE text COLLATE "C",
		ALTER COLUMN version TYPE text COLLATE "C",
		ALTER COLUMN profile_key TYPE text COLLATE "C",
		ALTER COLUMN manifest TYPE text COLLATE "C",
		ALTER COLUMN created_at TYPE text COLLATE "C",
		ALTER COLUMN updated_at TYPE text COLLATE "C"`,
	`ALTER TABLE connections
		ALTER COLUMN connection_id TYPE text COLLATE "C",
		ALTER COLUMN connector_id TYPE text COLLATE "C",
		ALTER COLUMN display_name TYPE text COLLATE "C",
		ALTER COLUMN status TYPE text COLLATE "C",
		ALTER COLUMN source_kind TYPE text COLLATE "C",
		ALTER COLUMN source_binding_key TYPE text COLLATE "C",
		ALTER COLUMN created_at TYPE text COLLATE "C",
		ALTER COLUMN updated_at TYPE text COLLATE "C",
		ALTER COLUMN revoked_at TYPE text COLLATE "C"`,
	`ALTER TABLE spine_events
		ALTER COLUMN event_id TYPE text COLLATE "C",
		ALTER COLUMN event_type TYPE text COLLATE "C",
		ALTER COLUMN occurred_at TYPE text COLLATE "C",
		ALTER COLUMN recorded_at TYPE text COLLATE "C",
		ALTER COLUMN run_id TYPE text COLLATE "C",
		ALTER COLUMN source_kind TYPE text COLLATE "C",
		ALTER COLUMN source_id TYPE text COLLATE "C",
		ALTER COLUMN connector_instance_id TYPE text COLLATE "C",
		ALTER COLUMN connection_id TYPE text COLLATE "C",
		ALTER COLUMN status TYPE text COLLATE "C",
		ALTER COLUMN data TYPE text COLLATE "C",
		ALTER COLUMN content_hash TYPE text COLLATE "C",
		ALTER COLUMN connection_ref TYPE text COLLATE "C",
		ALTER COLUMN failure_reason TYPE text COLLATE "C",
		ALTER COLUMN bs_status TYPE text COLLATE "C",
		ALTER COLUMN bs_wait_reason TYPE text COLLATE "C",
		ALTER COLUMN bs_profile_key TYPE text COLLATE "C"`,
	`ALTER TABLE retained_streams
		ALTER COLUMN connection_id TYPE text COLLATE "C",
		ALTER COLUMN stream TYPE text COLLATE "C",
		ALTER COLUMN last_record_at TYPE text COLLATE "C",
		ALTER COLUMN updated_at TYPE text COLLATE "C"`,
	`ALTER TABLE retained_connections
		ALTER COLUMN connection_id TYPE text COLLATE "C",
		ALTER COLUMN last_record_at TYPE text COLLATE "C",
		ALTER COLUMN updated_at TYPE text COLLATE "C"`,
	`ALTER TABLE run_summaries
		ALTER COLUMN connector_id TYPE text COLLATE "C",
		ALTER COLUMN run_id TYPE text COLLATE "C",
		ALTER COLUMN connection_id TYPE text COLLATE "C",
		ALTER COLUMN profile_key TYPE text COLLATE "C",
		ALTER COLUMN connection_ref TYPE text COLLATE "C",
		ALTER COLUMN first_at TYPE text COLLATE "C",
		ALTER COLUMN last_at TYPE text COLLATE "C",
		ALTER COLUMN status_key TYPE text COLLATE "C",
		ALTER COLUMN terminal_status TYPE text COLLATE "C",
		ALTER COLUMN last_status TYPE text COLLATE "C",
		ALTER COLUMN event_failure_reason TYPE text COLLATE "C",
		ALTER COLUMN bs_status TYPE text COLLATE "C",
		ALTER COLUMN bs_wait_reason TYPE text COLLATE "C",
		ALTER COLUMN known_gaps TYPE text COLLATE "C",
		ALTER COLUMN collection_facts TYPE text COLLATE "C"`,
	`ALTER TABLE run_heads
		ALTER COLUMN connection_id TYPE text COLLATE "C",
		ALTER COLUMN connector_id TYPE text COLLATE "C",
		ALTER COLUMN last_run_id TYPE text COLLATE "C",
		ALTER COLUMN last_success_run_id TYPE text COLLATE "C"`,
	`ALTER TABLE read_model_state
		ALTER COLUMN name TYPE text COLLATE "C",
		ALTER COLUMN text_value TYPE text COLLATE "C"`,
}

// Byte order on PostgreSQL; SQLite already compares text as bytes, so there it changes nothing
// (and is still recorded, so both engines report the same schema version).
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		if DialectOf(db) != Postgres {
			return nil
		}
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			return applyStatements(ctx, tx, byteOrderV3)
		})
	}, nil)
}
