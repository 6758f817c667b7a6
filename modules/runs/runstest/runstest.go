// Package runstest lets the feed's tests seed connectors and spine events through the real
// stores, the one way the runs and summary tests share.
package runstest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/catalog"
	"connsum/modules/runs"
)

// Parse validates events written as client JSON objects, failing the test on a bad one.
func Parse[E ~map[string]any](t testing.TB, evs ...E) []*runs.Event {
	t.Helper()
	out := make([]*runs.Event, 0, len(evs))
	for _, e := range evs {
		raw, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		p, err := runs.ParseEvent(raw, "x")
		if err != nil {
			t.Fatalf("parse %s: %v", raw, err)
		}
		out = append(out, p)
	}
	return out
}

// Append parses events and appends them in batches of at most 1000.
func Append[E ~map[string]any](t testing.TB, ctx context.Context, ing *runs.Ingester, evs ...E) {
	t.Helper()
	parsed := Parse(t, evs...)
	for len(parsed) > 0 {
		n := min(len(parsed), 1000)
		if _, err := ing.Append(ctx, parsed[:n]); err != nil {
			t.Fatalf("append: %v", err)
		}
		parsed = parsed[n:]
	}
}

// PutConnector stores a connector from its manifest JSON.
func PutConnector(t testing.TB, ctx context.Context, cat *catalog.Store, id, manifest string) {
	t.Helper()
	m, err := catalog.ParseManifest([]byte(manifest))
	if err != nil {
		t.Fatalf("manifest %s: %v", id, err)
	}
	if _, _, err := cat.PutConnector(ctx, id, m); err != nil {
		t.Fatalf("put connector %s: %v", id, err)
	}
}

// AllEntries lists every connection (drafts included) with its connector, in id order: the
// targets a test compares the read model and the spine fold on.
func AllEntries(t testing.TB, ctx context.Context, db bun.IDB, cat *catalog.Store) []catalog.Entry {
	t.Helper()
	var ids []string
	if err := db.NewSelect().Table("connections").Column("connection_id").OrderExpr("connection_id").Scan(ctx, &ids); err != nil {
		t.Fatal(err)
	}
	var out []catalog.Entry
	for _, id := range ids {
		e, err := cat.Connection(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *e)
	}
	return out
}

// RequireRebuildFixesNothing rebuilds db's read model from the log and fails the test when the
// rebuild had to fix anything: the maintained model was not what the log says.
func RequireRebuildFixesNothing(t testing.TB, ctx context.Context, db *bun.DB, now func() time.Time) *runs.RebuildReport {
	t.Helper()
	rep, err := runs.NewReadModel(db, runs.Options{}, now).Rebuild(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RunsInserted+rep.RunsChanged+rep.RunsRemoved+rep.HeadsFixed != 0 {
		t.Errorf("a rebuild from the log fixed the maintained model: %+v", rep)
	}
	return rep
}
