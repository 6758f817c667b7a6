// Package revision is the feed revision of SPEC §2.7: a number that every write able to change a
// feed item advances inside its own transaction, with a change log that says which items may
// have changed. It is the one place that knows the two tables, so writers (catalog, ingest,
// retained figures, the read model's rebuild) call one function and readers (conditional GETs,
// the change stream) another. It depends on bootstrap only, so every writer can use it.
package revision

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"

	"connsum/modules/bootstrap"
)

// Change says which feed items a write may have changed. The stream projects exactly these
// again and sends the ones whose item differs, so a Change may be wider than what changed (never
// narrower).
type Change struct {
	// All: any item may have changed (a rebuild of the read model).
	All bool
	// ConnectorIDs: every connection of these connectors (an append, a connector PUT).
	ConnectorIDs []string
	// ConnectionIDs: these connections (a connection write, retained figures).
	ConnectionIDs []string
}

// Empty reports whether the change names nothing.
func (c Change) Empty() bool { return !c.All && len(c.ConnectorIDs) == 0 && len(c.ConnectionIDs) == 0 }

// Merge returns c widened by o.
func (c Change) Merge(o Change) Change {
	if c.All || o.All {
		return Change{All: true}
	}
	return Change{ConnectorIDs: union(c.ConnectorIDs, o.ConnectorIDs), ConnectionIDs: union(c.ConnectionIDs, o.ConnectionIDs)}
}

func union(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	set := make(map[string]bool, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, s := range append(append([]string(nil), a...), b...) {
		if !set[s] {
			set[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Channel is the PostgreSQL NOTIFY channel every replica listens on. A notification's payload
// is a Notification; it is sent by the writing transaction, so PostgreSQL delivers it when (and
// only if) that transaction commits, in commit order.
const Channel = "connsum_feed"

// Notification is the payload sent on Channel.
type Notification struct {
	Revision int64 `json:"revision"`
	// ConnectionIDs and ConnectorIDs are the change when they fit in a notification (PostgreSQL
	// caps a payload at 8000 bytes); a listener never depends on them: the change log is the
	// source of truth, and a missed notification is recovered from the revision.
	ConnectionIDs []string `json:"connections,omitempty"`
	ConnectorIDs  []string `json:"connectors,omitempty"`
	All           bool     `json:"all,omitempty"`
}

// maxPayload keeps notifications well under PostgreSQL's 8000-byte limit.
const maxPayload = 4000

// maxRowsPerChange widens a change naming more items than this to All: the log stays small and
// re-projecting everything is what the stream would do for so many items anyway.
const maxRowsPerChange = 500

// KeepRevisions is how many recent revisions the change log keeps. A stream client that resumes
// from an older revision is told to resync (fetch the list again); so is one whose revision is
// from another database.
const KeepRevisions = 10_000

// pruneEvery is how often (in revisions) a writer prunes the log: one cheap DELETE by primary
// key range every so many writes, so no background job is needed.
const pruneEvery = 256

// Advance advances the feed revision by one inside tx and records ch, returning the new
// revision. It must be the LAST statement of its transaction: its UPDATE holds the counter row's
// lock until commit, so a writer that waits for it never holds a lock another writer needs (no
// deadlock), and revision order is commit order. An empty ch advances nothing and returns 0.
// After the commit (bootstrap.AfterCommit) the process's watchers of the database are woken; on
// PostgreSQL a NOTIFY on Channel wakes every replica.
func Advance(ctx context.Context, tx bun.IDB, ch Change, now time.Time) (int64, error) {
	if ch.Empty() {
		return 0, nil
	}
	if len(ch.ConnectorIDs)+len(ch.ConnectionIDs) > maxRowsPerChange {
		ch = Change{All: true}
	}
	at := bootstrap.FormatTime(now)
	var rev int64
	if err := tx.QueryRowContext(ctx, "UPDATE feed_revision SET revision = revision + 1, changed_at = ? WHERE id = 1 RETURNING revision", at).Scan(&rev); err != nil {
		return 0, fmt.Errorf("revision: advance: %w", err)
	}
	// What follows the new revision goes in one round trip (bootstrap.ExecJoined): the change,
	// now and then the pruning of old changes, and the notification, still last.
	stmts := []schema.QueryAppender{changeStatement(tx, rev, ch, at)}
	if rev%pruneEvery == 0 && rev > KeepRevisions {
		stmts = append(stmts, tx.NewRaw("DELETE FROM feed_changes WHERE revision <= ?", rev-KeepRevisions))
	}
	if bootstrap.DialectOf(tx) == bootstrap.Postgres {
		stmts = append(stmts, tx.NewRaw("SELECT pg_notify(?, ?)", Channel, payload(rev, ch)))
	}
	if err := bootstrap.ExecJoined(ctx, tx, stmts...); err != nil {
		return 0, fmt.Errorf("revision: record change: %w", err)
	}
	if sqlDB := sqlDBOf(tx); sqlDB != nil {
		// Outside bootstrap.RunInTx nobody can say when tx commits and no watcher is woken; they
		// poll the revision too, so they find it all the same, a little later.
		bootstrap.AfterCommit(ctx, func() { wake(sqlDB) })
	}
	return rev, nil
}

// changeStatement records what revision rev changed.
func changeStatement(tx bun.IDB, rev int64, ch Change, at string) schema.QueryAppender {
	var rows []string
	var args []any
	add := func(connector, connection string) {
		rows = append(rows, "(?, ?, ?, ?)")
		args = append(args, rev, connector, connection, at)
	}
	switch {
	case ch.All:
		add("", "")
	default:
		for _, id := range union(nil, ch.ConnectorIDs) {
			add(id, "")
		}
		for _, id := range union(nil, ch.ConnectionIDs) {
			add("", id)
		}
	}
	return tx.NewRaw("INSERT INTO feed_changes (revision, connector_id, connection_id, changed_at) VALUES "+
		strings.Join(rows, ", ")+" ON CONFLICT DO NOTHING", args...)
}

func payload(rev int64, ch Change) string {
	n := Notification{Revision: rev, ConnectionIDs: ch.ConnectionIDs, ConnectorIDs: ch.ConnectorIDs, All: ch.All}
	b, _ := json.Marshal(n)
	if len(b) > maxPayload {
		b, _ = json.Marshal(Notification{Revision: rev})
	}
	return string(b)
}

// Current reads the feed revision: one statement on the primary key.
func Current(ctx context.Context, db bun.IDB) (int64, error) {
	var b bootstrap.Batch
	var rev int64
	QueueCurrent(&b, db, &rev)
	if err := b.Run(ctx); err != nil {
		return 0, err
	}
	return rev, nil
}

// QueueCurrent queues Current's statement on b: *rev holds the revision once b has run, so that
// a read sends it in the same round trip as its own statements (ahead of them: what they read is
// never older than the revision).
func QueueCurrent(b *bootstrap.Batch, db bun.IDB, rev *int64) {
	b.Queue(db, db.NewSelect().ColumnExpr("revision").Table("feed_revision").Where("id = 1"), func(rows bootstrap.Rows) error {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return fmt.Errorf("revision: read: %w", err)
			}
			return fmt.Errorf("revision: read: %w", sql.ErrNoRows)
		}
		if err := rows.Scan(rev); err != nil {
			return fmt.Errorf("revision: read: %w", err)
		}
		return nil
	})
}

// Epoch reads the database's epoch: random, made with the database's revision counter, so that
// revision numbers of two databases (a restored backup, another install) are never taken for one
// another.
func Epoch(ctx context.Context, db bun.IDB) (string, error) {
	var epoch string
	if err := db.QueryRowContext(ctx, "SELECT epoch FROM feed_revision WHERE id = 1").Scan(&epoch); err != nil {
		return "", fmt.Errorf("revision: epoch: %w", err)
	}
	return epoch, nil
}

// ErrTooFarBehind is Since's answer when the log no longer holds every revision after the one
// asked for (it was pruned, or the revision is from another database).
var ErrTooFarBehind = errors.New("revision: too far behind")

// Since returns the changes recorded after revision after, merged, and the newest revision they
// reach (after itself when there are none). ErrTooFarBehind when the log cannot say.
func Since(ctx context.Context, db bun.IDB, after int64) (Change, int64, error) {
	var rows []struct {
		Revision     int64  `bun:"revision"`
		ConnectorID  string `bun:"connector_id"`
		ConnectionID string `bun:"connection_id"`
	}
	// The row just at after (or before it) proves nothing was pruned in between; revision 0 is
	// the start of every database.
	if err := db.NewSelect().Table("feed_changes").Column("revision", "connector_id", "connection_id").
		Where("revision >= ?", after).OrderExpr("revision").Scan(ctx, &rows); err != nil {
		return Change{}, 0, fmt.Errorf("revision: changes since %d: %w", after, err)
	}
	var ch Change
	newest := after
	// Revision 0 is the start of every database: from there the log must still begin at 1.
	found := after == 0 && (len(rows) == 0 || rows[0].Revision == 1)
	seen := map[[2]string]bool{}
	for _, r := range rows {
		if r.Revision == after {
			found = true
			continue
		}
		newest = max(newest, r.Revision)
		k := [2]string{r.ConnectorID, r.ConnectionID}
		if seen[k] {
			continue
		}
		seen[k] = true
		switch {
		case r.ConnectorID == "" && r.ConnectionID == "":
			ch.All = true
		case r.ConnectionID == "":
			ch.ConnectorIDs = append(ch.ConnectorIDs, r.ConnectorID)
		default:
			ch.ConnectionIDs = append(ch.ConnectionIDs, r.ConnectionID)
		}
	}
	if !found {
		return Change{}, 0, ErrTooFarBehind
	}
	if ch.All {
		ch = Change{All: true}
	}
	return ch, newest, nil
}

// ChangedAt is when the write of revision rev happened (its writer's clock): where a client that
// knows only a revision (an ETag's) stands in time. Zero for revision 0; ErrTooFarBehind when the
// log no longer holds rev.
func ChangedAt(ctx context.Context, db bun.IDB, rev int64) (time.Time, error) {
	if rev == 0 {
		return time.Time{}, nil
	}
	var at string
	err := db.QueryRowContext(ctx, "SELECT changed_at FROM feed_changes WHERE revision = ? LIMIT 1", rev).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, ErrTooFarBehind
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("revision: time of %d: %w", rev, err)
	}
	t, err := time.Parse(bootstrap.TimeFormat, at)
	if err != nil {
		return time.Time{}, fmt.Errorf("revision: time of %d: %w", rev, err)
	}
	return t, nil
}

func sqlDBOf(db bun.IDB) *sql.DB {
	if b := db.NewSelect().DB(); b != nil {
		return b.DB
	}
	return nil
}

// watchers holds, per database handle of this process, the channels woken after each commit
// that advanced the revision. Keyed like bootstrap's SQLite write gates, by the *sql.DB every
// store of one database shares, because the writers (catalog, ingest, retained) and the stream
// meet only there; across processes the NOTIFY channel (PostgreSQL) does the same.
var watchers sync.Map // *sql.DB → *watcherSet

type watcherSet struct {
	mu   sync.Mutex
	subs map[chan struct{}]bool
}

// Watch returns a channel that receives (without ever blocking the writer: one pending signal at
// most) after each commit in this process that advanced db's revision, and its cancel.
func Watch(db *bun.DB) (<-chan struct{}, func()) {
	v, _ := watchers.LoadOrStore(db.DB, &watcherSet{subs: map[chan struct{}]bool{}})
	ws := v.(*watcherSet)
	ch := make(chan struct{}, 1)
	ws.mu.Lock()
	ws.subs[ch] = true
	ws.mu.Unlock()
	return ch, func() {
		ws.mu.Lock()
		delete(ws.subs, ch)
		ws.mu.Unlock()
	}
}

func wake(db *sql.DB) {
	v, ok := watchers.Load(db)
	if !ok {
		return
	}
	ws := v.(*watcherSet)
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for ch := range ws.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
