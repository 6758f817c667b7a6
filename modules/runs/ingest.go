package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
)

// ErrConflict is returned when a batch re-uses an event_id with different content.
var ErrConflict = errors.New("runs: event_id already stored with different content")

// ConflictError names the conflicting event.
type ConflictError struct {
	Index   int
	EventID string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("event_id %q (events[%d]) is already stored with different content", e.EventID, e.Index)
}

// Unwrap makes errors.Is(err, ErrConflict) work.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// IngestResult is the answer to a batch.
type IngestResult struct {
	Accepted     int   `json:"accepted"`
	Duplicates   int   `json:"duplicates"`
	LastEventSeq int64 `json:"last_event_seq"`
}

// ingestLockKey serialises PostgreSQL appends so event_seq order is commit order: a reader
// that has seen seq N has seen every event below N.
const ingestLockKey = 7780_0002

// AppendHook sees every stored batch inside the appending transaction (the read model).
type AppendHook interface {
	Apply(ctx context.Context, tx bun.IDB, events []*Event) error
}

// Ingester appends validated event batches to the spine.
type Ingester struct {
	db   *bun.DB
	now  bootstrap.Clock
	hook AppendHook
}

// NewIngester returns an Ingester over db. hook may be nil (no read model maintained).
func NewIngester(db *bun.DB, now bootstrap.Clock, hook AppendHook) *Ingester {
	return &Ingester{db: db, now: now, hook: hook}
}

// Append stores a batch atomically: all new events or none. An event_id already stored (or
// repeated in the batch) with identical content is a duplicate and skipped; with different
// content the batch is refused with a *ConflictError. Events without a source take the source
// of the connection they name.
func (in *Ingester) Append(ctx context.Context, events []*Event) (IngestResult, error) {
	var res IngestResult
	err := in.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res = IngestResult{}
		if bootstrap.DialectOf(tx) == bootstrap.Postgres {
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", ingestLockKey); err != nil {
				return err
			}
		}
		fresh, err := in.dedupe(ctx, tx, events, &res)
		if err != nil {
			return err
		}
		if len(fresh) == 0 {
			return nil
		}
		if err := deriveSources(ctx, tx, fresh); err != nil {
			return err
		}
		recorded := in.now().UTC().Format(TimeFormat)
		for _, e := range fresh {
			e.RecordedAt = recorded
			if e.EventID == "" {
				e.EventID = newEventID()
			}
		}
		if _, err := tx.NewInsert().Model(&fresh).Returning("event_seq").Exec(ctx); err != nil {
			return err
		}
		for _, e := range fresh {
			res.LastEventSeq = max(res.LastEventSeq, e.EventSeq)
		}
		res.Accepted = len(fresh)
		if in.hook != nil {
			return in.hook.Apply(ctx, tx, fresh)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return IngestResult{}, err
		}
		return IngestResult{}, fmt.Errorf("runs: append batch: %w", err)
	}
	return res, nil
}

// dedupe drops events already stored or repeated earlier in the batch with the same content.
func (in *Ingester) dedupe(ctx context.Context, tx bun.Tx, events []*Event, res *IngestResult) ([]*Event, error) {
	ids := make([]string, 0, len(events))
	for _, e := range events {
		if e.EventID != "" {
			ids = append(ids, e.EventID)
		}
	}
	type stored struct {
		hash string
		seq  int64
	}
	known := map[string]stored{}
	if len(ids) > 0 {
		var rows []struct {
			EventID     string `bun:"event_id"`
			ContentHash string `bun:"content_hash"`
			EventSeq    int64  `bun:"event_seq"`
		}
		if err := tx.NewSelect().Table("spine_events").Column("event_id", "content_hash", "event_seq").
			Where("event_id IN (?)", bun.In(ids)).Scan(ctx, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			known[r.EventID] = stored{r.ContentHash, r.EventSeq}
		}
	}
	fresh := make([]*Event, 0, len(events))
	for i, e := range events {
		if e.EventID == "" {
			fresh = append(fresh, e)
			continue
		}
		if k, ok := known[e.EventID]; ok {
			if k.hash != e.ContentHash {
				return nil, &ConflictError{Index: i, EventID: e.EventID}
			}
			res.Duplicates++
			res.LastEventSeq = max(res.LastEventSeq, k.seq)
			continue
		}
		known[e.EventID] = stored{hash: e.ContentHash}
		fresh = append(fresh, e)
	}
	return fresh, nil
}

// deriveSources gives events without a source the source of the connection they name
// (SPEC §1.4), in one statement for the whole batch.
func deriveSources(ctx context.Context, tx bun.Tx, events []*Event) error {
	want := map[string]bool{}
	for _, e := range events {
		if e.SourceKind == nil && e.ConnectionRef != nil {
			want[*e.ConnectionRef] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	var rows []struct {
		ConnectionID string `bun:"connection_id"`
		ConnectorID  string `bun:"connector_id"`
	}
	if err := tx.NewSelect().Table("connections").Column("connection_id", "connector_id").
		Where("connection_id IN (?)", bun.In(ids)).Scan(ctx, &rows); err != nil {
		return err
	}
	owner := map[string]string{}
	for _, r := range rows {
		owner[r.ConnectionID] = r.ConnectorID
	}
	kind := "connector"
	for _, e := range events {
		if e.SourceKind == nil && e.ConnectionRef != nil {
			if cid, ok := owner[*e.ConnectionRef]; ok {
				id := cid
				e.SourceKind, e.SourceID = &kind, &id
			}
		}
	}
	return nil
}
