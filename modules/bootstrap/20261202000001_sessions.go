package bootstrap

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// sessionsV4 stores browser sessions and one-time login links (modules/auth) in the database, so
// that they survive a restart and hold on every replica, and the row the readiness probe writes.
// Secrets are never stored: id_hash is the SHA-256 (hex) of the random cookie value or link code.
// Times are bootstrap.TimeFormat text, so text order is time order on both engines. {{TEXT}} is
// `TEXT COLLATE "C"` on PostgreSQL (every text column compares bytes, see 20261201000001) and
// plain TEXT on SQLite (which compares bytes already). Frozen as it shipped, like every migration.
var sessionsV4 = []string{
	`CREATE TABLE IF NOT EXISTS sessions (
		id_hash {{TEXT}} PRIMARY KEY,
		handle {{TEXT}} NOT NULL UNIQUE,
		via {{TEXT}} NOT NULL,
		created_at {{TEXT}} NOT NULL,
		expires_at {{TEXT}} NOT NULL,
		last_seen_at {{TEXT}} NOT NULL,
		user_agent {{TEXT}} NOT NULL DEFAULT '',
		client_ip {{TEXT}} NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS idx_sessions_expires ON sessions (expires_at)`,
	`CREATE TABLE IF NOT EXISTS login_links (
		id_hash {{TEXT}} PRIMARY KEY,
		created_at {{TEXT}} NOT NULL,
		expires_at {{TEXT}} NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS readiness_probe (
		id INTEGER PRIMARY KEY,
		probed_at {{TEXT}} NOT NULL
	)`,
	`INSERT INTO readiness_probe (id, probed_at) VALUES (1, '1970-01-01T00:00:00.000Z') ON CONFLICT (id) DO NOTHING`,
}

// Browser sessions, login links and the readiness probe row.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		text := "TEXT"
		if DialectOf(db) == Postgres {
			text = `TEXT COLLATE "C"`
		}
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, s := range sessionsV4 {
				if _, err := tx.ExecContext(ctx, strings.ReplaceAll(s, "{{TEXT}}", text)); err != nil {
					head, _, _ := strings.Cut(s, "\n")
					return fmt.Errorf("bootstrap: %s: %w", strings.TrimSpace(head), err)
				}
			}
			return nil
		})
	}, nil)
}
