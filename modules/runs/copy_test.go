package runs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
)

// statementTexts records the SQL text of every statement run through a bun.DB.
type statementTexts struct {
	mu sync.Mutex
	q  []string
}

func (s *statementTexts) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (s *statementTexts) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q = append(s.q, e.Query)
}

func (s *statementTexts) containing(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.q {
		if strings.Contains(q, sub) {
			n++
		}
	}
	return n
}

// appendAndCheckSeqs appends a batch of n events with the read model and checks that every
// event's EventSeq (and the answer's last_event_seq) is the one stored for its event_id, in
// batch order, and that the read model holds the batch's runs.
func appendAndCheckSeqs(t *testing.T, db *bun.DB, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	rm := runs.NewReadModel(db, runs.Options{}, ingestClock)
	in := runs.NewIngester(db, ingestClock, rm)
	var evs []string
	for i := 0; i < n; i++ {
		evs = append(evs, ev(fmt.Sprintf("%s_%d", prefix, i), "run.progress", "2026-11-20T08:00:00Z",
			fmt.Sprintf(`"run_id":"%s_r%d"`, prefix, i/5), `"source_kind":"connector"`, `"source_id":"gmail"`))
	}
	batch := parseBatch(t, evs...)
	res, err := in.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int64{}
	for _, r := range storedEvents(t, db) {
		stored[r.EventID] = r.EventSeq
	}
	var last int64
	for i, e := range batch {
		if e.EventSeq == 0 || e.EventSeq != stored[e.EventID] {
			t.Fatalf("%s: EventSeq %d, stored %d", e.EventID, e.EventSeq, stored[e.EventID])
		}
		if i > 0 && e.EventSeq <= batch[i-1].EventSeq {
			t.Fatalf("event_seq not increasing in batch order: %d then %d", batch[i-1].EventSeq, e.EventSeq)
		}
		last = max(last, e.EventSeq)
	}
	if res.Accepted != n || res.LastEventSeq != last {
		t.Fatalf("answer %+v, want %d accepted, last_event_seq %d", res, n, last)
	}
	var runRows, lastSeq int64
	if err := db.NewRaw("SELECT COUNT(*), MAX(last_event_seq) FROM run_summaries WHERE run_id LIKE ?", prefix+"_r%").Scan(ctx, &runRows, &lastSeq); err != nil {
		t.Fatal(err)
	}
	if runRows != int64((n+4)/5) || lastSeq != last {
		t.Fatalf("read model: %d runs up to seq %d, want %d up to %d", runRows, lastSeq, (n+4)/5, last)
	}
}

// TestAppendCopiesTheBatchOnPostgres: on PostgreSQL the batch goes into spine_events by COPY
// inside the serialized transaction (no INSERT statement), and the sequence numbers are checked
// by one read of the two ends of their range; on SQLite it is one prepared INSERT run per event. Neither looks the
// batch's ids up first, and both give each event its stored seq.
func TestAppendCopiesTheBatchOnPostgres(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		texts := &statementTexts{}
		db.AddQueryHook(texts)
		appendAndCheckSeqs(t, db, "a", 1000)
		appendAndCheckSeqs(t, db, "b", 7)
		inserts := texts.containing("INTO spine_events") + texts.containing(`INTO "spine_events"`)
		if bootstrap.DialectOf(db) == bootstrap.Postgres {
			if inserts != 0 || texts.containing("currval(pg_get_serial_sequence('spine_events'") != 2 {
				t.Errorf("PostgreSQL: %d spine inserts and %d seq range reads, want 0 and 2 (COPY)", inserts,
					texts.containing("currval(pg_get_serial_sequence('spine_events'"))
			}
			if n := texts.containing("event_id = ANY("); n != 0 {
				t.Errorf("%d look-ups by event_id, want none when the sequence is contiguous", n)
			}
		} else if inserts != 0 {
			// The batch goes in through one prepared single-row statement (database/sql, not
			// bun), never as a multi-row VALUES list of literals.
			t.Errorf("SQLite: %d literal spine inserts, want 0", inserts)
		}
		if n := texts.containing(`"content_hash"`); n != 0 {
			t.Errorf("%d look-ups of stored ids before the insert, want none (its unique check finds them)", n)
		}
	})
}

// TestAppendCopyFindsItsSeqsWhenTheyAreNotContiguous: when the numbers a COPY got do not end
// at the batch's size below currval (here the sequence counts by 2, as it would if something
// outside the attribution lock took numbers during the COPY), the batch is looked up by
// event_id instead, and every event still gets its own seq.
func TestAppendCopyFindsItsSeqsWhenTheyAreNotContiguous(t *testing.T) {
	db := dbtest.Postgres(t)
	if _, err := db.ExecContext(context.Background(), "ALTER TABLE spine_events ALTER COLUMN event_seq SET INCREMENT BY 2"); err != nil {
		t.Fatal(err)
	}
	texts := &statementTexts{}
	db.AddQueryHook(texts)
	appendAndCheckSeqs(t, db, "c", 40)
	if n := texts.containing("event_id = ANY("); n != 1 {
		t.Errorf("%d look-ups by event_id, want 1", n)
	}
}

// TestAppendResentBatchAfterCopy: a batch re-sent whole, and one that mixes stored and new
// events, are told apart from new ones on both engines (on PostgreSQL by the COPY's unique
// check, then a look-up after the rollback to its savepoint): duplicates are counted, the new
// events stored once, and a stored id with other content is still a conflict naming its index.
func TestAppendResentBatchAfterCopy(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		rm := runs.NewReadModel(db, runs.Options{}, ingestClock)
		in := runs.NewIngester(db, ingestClock, rm)
		mk := func(ids ...string) []*runs.Event {
			var evs []string
			for _, id := range ids {
				evs = append(evs, ev(id, "run.progress", "2026-11-20T08:00:00Z", `"run_id":"r_`+id+`"`, `"source_kind":"connector"`, `"source_id":"gmail"`))
			}
			return parseBatch(t, evs...)
		}
		first, err := in.Append(ctx, mk("x1", "x2", "x3"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := in.Append(ctx, mk("x1", "x2", "x3"))
		if err != nil || again.Accepted != 0 || again.Duplicates != 3 || again.LastEventSeq != first.LastEventSeq {
			t.Fatalf("re-sent batch: %+v, %v; want 0 accepted, 3 duplicates, last_event_seq %d", again, err, first.LastEventSeq)
		}
		mixed, err := in.Append(ctx, mk("x2", "x4", "x4", "x5"))
		if err != nil || mixed.Accepted != 2 || mixed.Duplicates != 2 || mixed.LastEventSeq <= first.LastEventSeq {
			t.Fatalf("mixed batch: %+v, %v; want 2 accepted, 2 duplicates", mixed, err)
		}
		other := parseBatch(t, ev("x6", "run.progress", "2026-11-20T08:00:00Z"),
			ev("x3", "run.progress", "2026-11-20T09:00:00Z", `"run_id":"r_x3"`, `"source_kind":"connector"`, `"source_id":"gmail"`))
		var ce *runs.ConflictError
		if _, err := in.Append(ctx, other); !errors.As(err, &ce) || ce.Index != 1 || ce.EventID != "x3" {
			t.Fatalf("stored id with other content: %v, want a conflict at events[1] (x3)", err)
		}
		// The first conflict in batch order is named, a stored id (x1) before an in-batch one (x7).
		firstStored := parseBatch(t, ev("x1", "run.progress", "2026-11-20T09:00:00Z"),
			ev("x7", "run.progress", "2026-11-20T08:00:00Z"), ev("x7", "run.progress", "2026-11-20T09:00:00Z"))
		if _, err := in.Append(ctx, firstStored); !errors.As(err, &ce) || ce.Index != 0 || ce.EventID != "x1" {
			t.Fatalf("stored conflict before an in-batch one: %v, want a conflict at events[0] (x1)", err)
		}
		if got := len(storedEvents(t, db)); got != 5 {
			t.Fatalf("%d events stored, want 5 (x1-x5)", got)
		}
	})
}

// TestAppendTailStatementsShareARoundTrip: on PostgreSQL the statements that end an append —
// the heads (upsert and delete), the applied seq, then the feed's change and its notification
// after the revision — go as two joined texts (bootstrap.ExecJoined), not five round trips; on
// SQLite they run one by one. On both the read model equals a rebuild from the log afterwards.
func TestAppendTailStatementsShareARoundTrip(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		f := newFeedFixture(t, db)
		f.connector("gmail", `{"display_name":"Gmail"}`)
		f.connection("gmail", "cin_g", "active")
		texts := &statementTexts{}
		db.AddQueryHook(texts)
		var evs []feedEv
		for i := 0; i < 40; i++ {
			evs = append(evs, runEvents("gmail", fmt.Sprintf("r%d", i), "", time.Duration(i)*time.Minute, "run.completed",
				feedEv{"connection_id": "cin_g"}, nil)...)
		}
		f.add(evs...)
		joined := func(parts ...string) int {
			texts.mu.Lock()
			defer texts.mu.Unlock()
			n := 0
			for _, q := range texts.q {
				all := true
				for _, p := range parts {
					all = all && strings.Contains(q, p)
				}
				if all {
					n++
				}
			}
			return n
		}
		heads := []string{"INSERT INTO run_heads", `DELETE FROM "run_heads"`, "INSERT INTO read_model_state"}
		feed := []string{"INSERT INTO feed_changes", "pg_notify("}
		if bootstrap.DialectOf(db) == bootstrap.Postgres {
			if n := joined(heads...); n != 1 {
				t.Errorf("%d statements hold the heads and the applied seq together, want 1", n)
			}
			if n := joined(feed...); n != 1 {
				t.Errorf("%d statements hold the feed change and its notification together, want 1", n)
			}
		} else {
			for _, p := range append(heads, feed[0]) {
				if n := joined(p); n != 1 {
					t.Errorf("SQLite: %d statements with %s, want 1", n, p)
				}
			}
		}
		runstest.RequireRebuildFixesNothing(t, f.ctx, db, f.clock.Now)
	})
}

// TestAppendCopiesNewRunRowsAndUpsertsStoredOnes: on PostgreSQL the run rows of runs new to
// the read model go in by COPY and only the runs with a stored row through the upsert (on
// SQLite every row is upserted); either way a batch that mixes both leaves the read model equal
// to a rebuild from the log, with the stored runs merged (ten events each, not five).
func TestAppendCopiesNewRunRowsAndUpsertsStoredOnes(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		texts := &statementTexts{}
		db.AddQueryHook(texts)
		in := runs.NewIngester(db, ingestClock, runs.NewReadModel(db, runs.Options{}, ingestClock))
		batch := func(b int, runsFrom, runsTo int) {
			var evs []string
			for r := runsFrom; r < runsTo; r++ {
				for i := 0; i < 5; i++ {
					evs = append(evs, ev(fmt.Sprintf("m%d_%d_%d", b, r, i), "run.progress", fmt.Sprintf("2026-11-20T08:%02d:%02dZ", b, r),
						fmt.Sprintf(`"run_id":"m_r%d"`, r), `"source_kind":"connector"`, `"source_id":"gmail"`))
				}
			}
			if _, err := in.Append(ctx, parseBatch(t, evs...)); err != nil {
				t.Fatal(err)
			}
		}
		upserts := func() int { return texts.containing("INSERT INTO run_summaries") }
		batch(1, 0, 10)
		afterFirst := upserts()
		batch(2, 5, 15) // runs 5-9 are stored, 10-14 new
		pg := bootstrap.DialectOf(db) == bootstrap.Postgres
		if pg && (afterFirst != 0 || upserts() != 1) {
			t.Errorf("PostgreSQL: %d upserts for a batch of new runs and %d for one that adds to stored runs, want 0 and 1", afterFirst, upserts()-afterFirst)
		}
		var counts []int
		if err := db.NewRaw("SELECT event_count FROM run_summaries WHERE run_id LIKE 'm_r%' ORDER BY event_count, run_id").Scan(ctx, &counts); err != nil {
			t.Fatal(err)
		}
		want := "[5 5 5 5 5 5 5 5 5 5 10 10 10 10 10]"
		if fmt.Sprint(counts) != want {
			t.Errorf("event counts %v, want %s", counts, want)
		}
		runstest.RequireRebuildFixesNothing(t, ctx, db, ingestClock)
	})
}
