package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
)

// feedRevisionV5 stores the feed revision (modules/revision, SPEC §2.7): one counter row that
// every write able to change a feed item advances in its own transaction, and the change log
// that says, per revision, which items may have changed — a connection, every connection of a
// connector (connection_id ”), or everything (both ”). The counter is one row so that revision
// order is commit order: the row lock a writer takes with its UPDATE is held until it commits,
// so revision N+1 cannot be visible before N. epoch is random per database, made when the row
// is: revision numbers of two databases (a restored backup, a fresh demo) never mean the same
// answer, so an entity tag names its epoch too. {{TEXT}} as in 20261202000001. Frozen as it
// shipped, like every migration.
var feedRevisionV5 = []string{
	`CREATE TABLE IF NOT EXISTS feed_revision (
		id INTEGER PRIMARY KEY,
		revision BIGINT NOT NULL,
		changed_at {{TEXT}} NOT NULL,
		epoch {{TEXT}} NOT NULL
	)`,
	`INSERT INTO feed_revision (id, revision, changed_at, epoch) VALUES (1, 0, '1970-01-01T00:00:00.000Z', ?) ON CONFLICT (id) DO NOTHING`,
	`CREATE TABLE IF NOT EXISTS feed_changes (
		revision BIGINT NOT NULL,
		connector_id {{TEXT}} NOT NULL,
		connection_id {{TEXT}} NOT NULL,
		changed_at {{TEXT}} NOT NULL,
		PRIMARY KEY (revision, connector_id, connection_id)
	)`,
}

// The feed revision and its change log.
func init() {
	migrations.MustRegister(func(ctx context.Context, db *bun.DB) error {
		text := "TEXT"
		if DialectOf(db) == Postgres {
			text = `TEXT COLLATE "C"`
		}
		var b [9]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		epoch := base64.RawURLEncoding.EncodeToString(b[:])
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for _, s := range feedRevisionV5 {
				var args []any
				if strings.Contains(s, "?") {
					args = append(args, epoch)
				}
				if _, err := tx.ExecContext(ctx, strings.ReplaceAll(s, "{{TEXT}}", text), args...); err != nil {
					head, _, _ := strings.Cut(s, "\n")
					return fmt.Errorf("bootstrap: %s: %w", strings.TrimSpace(head), err)
				}
			}
			return nil
		})
	}, nil)
}
