package runs_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
)

var storedTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// ingestClock is a fixed clock in a non-UTC zone, so recorded_at must be converted.
func ingestClock() time.Time {
	return time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
}

// storedEvent is a spine_events row as the tests read it back.
type storedEvent struct {
	EventSeq   int64   `bun:"event_seq"`
	EventID    string  `bun:"event_id"`
	EventType  string  `bun:"event_type"`
	OccurredAt string  `bun:"occurred_at"`
	RecordedAt string  `bun:"recorded_at"`
	RunID      *string `bun:"run_id"`
	SourceKind *string `bun:"source_kind"`
	SourceID   *string `bun:"source_id"`
}

func storedEvents(t *testing.T, db *bun.DB) []storedEvent {
	t.Helper()
	var out []storedEvent
	if err := db.NewSelect().Table("spine_events").
		Column("event_seq", "event_id", "event_type", "occurred_at", "recorded_at", "run_id", "source_kind", "source_id").
		OrderExpr("event_seq").Scan(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func parseBatch(t *testing.T, events ...string) []*runs.Event {
	t.Helper()
	evs, err := runs.ParseBatch([]byte(`{"events":[`+strings.Join(events, ",")+`]}`), runs.MaxBatchEvents)
	if err != nil {
		t.Fatalf("ParseBatch: %v", err)
	}
	return evs
}

func ev(id, typ, at string, extra ...string) string {
	s := fmt.Sprintf(`{"event_id":%q,"event_type":%q,"occurred_at":%q`, id, typ, at)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}

func TestAppendAssignsIncreasingSeqAndNormalisesTimes(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		in := runs.NewIngester(db, ingestClock, nil)
		// occurred_at deliberately out of time order: event_seq follows insertion, not time.
		res1, err := in.Append(ctx, parseBatch(t,
			ev("b1_a", "run.started", "2026-11-20T08:01:02.345+01:00", `"run_id":"r1"`),
			ev("b1_b", "run.progress", "2026-11-19T00:00:00Z", `"run_id":"r1"`),
			ev("b1_c", "run.completed", "2026-11-21T00:00:00.1-02:00", `"run_id":"r1"`, `"status":"succeeded"`),
		))
		if err != nil {
			t.Fatal(err)
		}
		if res1.Accepted != 3 || res1.Duplicates != 0 {
			t.Errorf("first batch = %+v, want 3 accepted", res1)
		}
		res2, err := in.Append(ctx, parseBatch(t,
			ev("b2_a", "run.started", "2020-01-01T00:00:00Z"),
			`{"event_type":"run.progress","occurred_at":"2020-01-01T00:00:01Z"}`, // no id: one is generated
		))
		if err != nil {
			t.Fatal(err)
		}
		rows := storedEvents(t, db)
		if len(rows) != 5 {
			t.Fatalf("%d rows stored, want 5", len(rows))
		}
		wantOrder := []string{"b1_a", "b1_b", "b1_c", "b2_a"}
		for i, id := range wantOrder {
			if rows[i].EventID != id {
				t.Fatalf("event order by event_seq = %v, want %v then the generated id", rows, wantOrder)
			}
		}
		if rows[4].EventID == "" || !regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`).MatchString(rows[4].EventID) {
			t.Errorf("generated event_id %q is not a valid id", rows[4].EventID)
		}
		for i := 1; i < len(rows); i++ {
			if rows[i].EventSeq <= rows[i-1].EventSeq {
				t.Errorf("event_seq not strictly increasing: %d then %d", rows[i-1].EventSeq, rows[i].EventSeq)
			}
		}
		if res1.LastEventSeq != rows[2].EventSeq || res2.LastEventSeq != rows[4].EventSeq {
			t.Errorf("last_event_seq = %d, %d; want %d, %d", res1.LastEventSeq, res2.LastEventSeq, rows[2].EventSeq, rows[4].EventSeq)
		}
		wantAt := map[string]string{
			"b1_a": "2026-11-20T07:01:02.345Z",
			"b1_b": "2026-11-19T00:00:00.000Z",
			"b1_c": "2026-11-21T02:00:00.100Z",
			"b2_a": "2020-01-01T00:00:00.000Z",
		}
		for _, r := range rows {
			if w, ok := wantAt[r.EventID]; ok && r.OccurredAt != w {
				t.Errorf("%s occurred_at = %q, want %q", r.EventID, r.OccurredAt, w)
			}
			if r.RecordedAt != "2026-11-20T09:00:00.123Z" {
				t.Errorf("%s recorded_at = %q, want the clock in UTC with milliseconds", r.EventID, r.RecordedAt)
			}
			if !storedTimeRE.MatchString(r.OccurredAt) {
				t.Errorf("%s occurred_at %q is not in the stored form", r.EventID, r.OccurredAt)
			}
		}
	})
}

func TestAppendDuplicatesAndConflicts(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		in := runs.NewIngester(db, ingestClock, nil)
		batch := []string{
			ev("e1", "run.started", "2026-11-20T08:00:00Z", `"run_id":"r1"`, `"data":{"a":1,"b":[1,2]}`),
			ev("e2", "run.progress", "2026-11-20T08:00:01Z", `"run_id":"r1"`),
			ev("e3", "run.completed", "2026-11-20T08:00:02Z", `"run_id":"r1"`, `"status":"succeeded"`),
		}
		first, err := in.Append(ctx, parseBatch(t, batch...))
		if err != nil {
			t.Fatal(err)
		}
		before := storedEvents(t, db)

		again, err := in.Append(ctx, parseBatch(t, batch...))
		if err != nil {
			t.Fatal(err)
		}
		if again.Accepted != 0 || again.Duplicates != len(batch) {
			t.Errorf("re-posted batch = %+v, want accepted 0 duplicates %d", again, len(batch))
		}
		if again.LastEventSeq != first.LastEventSeq {
			t.Errorf("re-posted batch last_event_seq = %d, want the stored %d", again.LastEventSeq, first.LastEventSeq)
		}
		if after := storedEvents(t, db); len(after) != len(before) {
			t.Errorf("re-posting stored %d new rows", len(after)-len(before))
		}

		// The same content written differently (offset, key order) is still a duplicate.
		same, err := in.Append(ctx, parseBatch(t,
			`{"data":{"b":[1,2],"a":1},"run_id":"r1","occurred_at":"2026-11-20T09:00:00+01:00","event_type":"run.started","event_id":"e1"}`,
			ev("e4", "run.progress", "2026-11-20T08:00:03Z"),
		))
		if err != nil || same.Accepted != 1 || same.Duplicates != 1 {
			t.Errorf("mixed batch = %+v, %v; want 1 accepted, 1 duplicate", same, err)
		}

		// A conflicting re-use of an id refuses the whole batch, including its new events.
		before = storedEvents(t, db)
		_, err = in.Append(ctx, parseBatch(t,
			ev("e5", "run.progress", "2026-11-20T08:00:04Z"),
			ev("e2", "run.failed", "2026-11-20T08:00:01Z", `"run_id":"r1"`),
		))
		var ce *runs.ConflictError
		if !errors.As(err, &ce) || !errors.Is(err, runs.ErrConflict) || ce.Index != 1 || ce.EventID != "e2" {
			t.Fatalf("conflicting batch error = %v, want ConflictError for events[1] e2", err)
		}
		if after := storedEvents(t, db); len(after) != len(before) {
			t.Errorf("a refused batch stored %d rows", len(after)-len(before))
		}
		// Within one batch: the same id twice with different content conflicts too.
		_, err = in.Append(ctx, parseBatch(t,
			ev("e6", "run.progress", "2026-11-20T08:00:05Z"),
			ev("e6", "run.progress", "2026-11-20T08:00:06Z"),
		))
		if !errors.As(err, &ce) || ce.Index != 1 {
			t.Errorf("in-batch conflict = %v, want ConflictError for events[1]", err)
		}
		if after := storedEvents(t, db); len(after) != len(before) {
			t.Errorf("a refused batch stored %d rows", len(after)-len(before))
		}
	})
}

func TestAppendDerivesSourceFromTheNamedConnection(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		cs := catalog.NewStore(db, ingestClock)
		m, err := catalog.ParseManifest([]byte(`{"display_name":"Amazon"}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := cs.PutConnector(ctx, "amazon", m); err != nil {
			t.Fatal(err)
		}
		conn, _, err := cs.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: "amazon", Status: "active", SourceKind: "account", SourceBindingKey: "work"})
		if err != nil {
			t.Fatal(err)
		}
		id := conn.ConnectionID
		in := runs.NewIngester(db, ingestClock, nil)
		if _, err := in.Append(ctx, parseBatch(t,
			ev("by_connection_id", "run.started", "2026-11-20T08:00:00Z", `"run_id":"r1"`, `"connection_id":"`+id+`"`),
			ev("by_instance_id", "run.started", "2026-11-20T08:00:00Z", `"run_id":"r2"`, `"connector_instance_id":"`+id+`"`),
			ev("unknown_connection", "run.started", "2026-11-20T08:00:00Z", `"run_id":"r4"`, `"connection_id":"cin_nope"`),
			ev("no_connection", "run.started", "2026-11-20T08:00:00Z", `"run_id":"r5"`),
			ev("explicit_source", "run.started", "2026-11-20T08:00:00Z", `"run_id":"r6"`, `"connection_id":"`+id+`"`, `"source_kind":"provider_native"`, `"source_id":"gmail"`),
		)); err != nil {
			t.Fatal(err)
		}
		want := map[string][2]string{
			"by_connection_id":   {"connector", "amazon"},
			"by_instance_id":     {"connector", "amazon"},
			"unknown_connection": {"", ""},
			"no_connection":      {"", ""},
			"explicit_source":    {"provider_native", "gmail"},
		}
		deref := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		rows := storedEvents(t, db)
		if len(rows) != len(want) {
			t.Fatalf("%d rows, want %d", len(rows), len(want))
		}
		for _, r := range rows {
			w := want[r.EventID]
			if deref(r.SourceKind) != w[0] || deref(r.SourceID) != w[1] {
				t.Errorf("%s source = (%s, %s), want (%s, %s)", r.EventID, deref(r.SourceKind), deref(r.SourceID), w[0], w[1])
			}
			if w[0] == "" && (r.SourceKind != nil || r.SourceID != nil) {
				t.Errorf("%s: source must stay NULL, got (%v, %v)", r.EventID, r.SourceKind, r.SourceID)
			}
			if deref(r.RunID) == "" {
				t.Errorf("%s: run_id lost", r.EventID)
			}
		}
	})
}
