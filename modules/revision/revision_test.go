package revision_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/revision"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func advance(t *testing.T, db *bun.DB, ch revision.Change) int64 {
	t.Helper()
	var rev int64
	err := bootstrap.RunInTx(context.Background(), db, func(ctx context.Context, tx bun.Tx) error {
		var err error
		rev, err = revision.Advance(ctx, tx, ch, t0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func TestAdvanceRecordsChangesInRevisionOrder(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		if rev, err := revision.Current(ctx, db); err != nil || rev != 0 {
			t.Fatalf("fresh database: revision %d, %v; want 0", rev, err)
		}
		if got := advance(t, db, revision.Change{}); got != 0 {
			t.Fatalf("an empty change advanced to %d", got)
		}
		r1 := advance(t, db, revision.Change{ConnectionIDs: []string{"cin_b", "cin_a", "cin_a"}})
		r2 := advance(t, db, revision.Change{ConnectorIDs: []string{"gmail"}})
		if r1 != 1 || r2 != 2 {
			t.Fatalf("revisions %d, %d; want 1, 2", r1, r2)
		}
		ch, newest, err := revision.Since(ctx, db, 0)
		if err != nil || newest != 2 {
			t.Fatalf("Since(0): newest %d, %v", newest, err)
		}
		if len(ch.ConnectionIDs) != 2 || ch.ConnectionIDs[0] != "cin_a" || ch.ConnectionIDs[1] != "cin_b" ||
			len(ch.ConnectorIDs) != 1 || ch.ConnectorIDs[0] != "gmail" || ch.All {
			t.Fatalf("Since(0) = %+v", ch)
		}
		ch, newest, err = revision.Since(ctx, db, 1)
		if err != nil || newest != 2 || len(ch.ConnectionIDs) != 0 || len(ch.ConnectorIDs) != 1 {
			t.Fatalf("Since(1) = %+v, %d, %v", ch, newest, err)
		}
		ch, newest, err = revision.Since(ctx, db, 2)
		if err != nil || newest != 2 || !ch.Empty() {
			t.Fatalf("Since(current) = %+v, %d, %v; want nothing", ch, newest, err)
		}
		if _, _, err := revision.Since(ctx, db, 7); !errors.Is(err, revision.ErrTooFarBehind) {
			t.Fatalf("Since(a revision the database never had) = %v, want ErrTooFarBehind", err)
		}
		advance(t, db, revision.Change{All: true, ConnectionIDs: []string{"x"}})
		if ch, _, _ := revision.Since(ctx, db, 2); !ch.All || len(ch.ConnectionIDs) != 0 {
			t.Fatalf("an All change = %+v", ch)
		}
	})
}

func TestARolledBackWriteAdvancesNothing(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		woken, cancel := revision.Watch(db)
		defer cancel()
		boom := errors.New("boom")
		err := bootstrap.RunInTx(ctx, db, func(ctx context.Context, tx bun.Tx) error {
			if _, err := revision.Advance(ctx, tx, revision.Change{ConnectionIDs: []string{"cin_a"}}, t0); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if rev, _ := revision.Current(ctx, db); rev != 0 {
			t.Fatalf("revision %d after a rollback", rev)
		}
		select {
		case <-woken:
			t.Fatal("a watcher was woken by a transaction that rolled back")
		default:
		}
		advance(t, db, revision.Change{ConnectionIDs: []string{"cin_a"}})
		select {
		case <-woken:
		default:
			t.Fatal("a committed advance did not wake the watcher")
		}
	})
}

func TestPrunedLogAsksForResync(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		// Pretend the database has lived long: the log was pruned up to 20,000.
		if _, err := db.ExecContext(ctx, "UPDATE feed_revision SET revision = 20000 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 256; i++ {
			advance(t, db, revision.Change{ConnectionIDs: []string{"cin_a"}})
		}
		var oldest int64
		if err := db.QueryRowContext(ctx, "SELECT min(revision) FROM feed_changes").Scan(&oldest); err != nil {
			t.Fatal(err)
		}
		if oldest != 20001 {
			t.Fatalf("oldest logged revision %d, want 20001 (nothing within KeepRevisions pruned)", oldest)
		}
		if _, _, err := revision.Since(ctx, db, 0); !errors.Is(err, revision.ErrTooFarBehind) {
			t.Fatalf("Since(0) over a log that starts at 20001 = %v, want ErrTooFarBehind", err)
		}
		if _, _, err := revision.Since(ctx, db, 19999); !errors.Is(err, revision.ErrTooFarBehind) {
			t.Fatalf("Since(19999) = %v, want ErrTooFarBehind", err)
		}
		if _, newest, err := revision.Since(ctx, db, 20001); err != nil || newest != 20256 {
			t.Fatalf("Since(20001) = %d, %v", newest, err)
		}
		// Past KeepRevisions the writer that lands on a multiple of pruneEvery prunes.
		if _, err := db.ExecContext(ctx, "UPDATE feed_revision SET revision = 30463 WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
		advance(t, db, revision.Change{ConnectionIDs: []string{"cin_a"}}) // 30464 = 119 × 256
		if err := db.QueryRowContext(ctx, "SELECT min(revision) FROM feed_changes").Scan(&oldest); err != nil {
			t.Fatal(err)
		}
		if oldest != 30464 {
			t.Fatalf("after pruning the oldest logged revision is %d, want 30464 (everything <= 20464 gone)", oldest)
		}
	})
}

// TestConcurrentAdvancesAreDenseAndOrdered: revisions from racing writers are 1..N without a gap
// or a repeat, and every one is in the log.
func TestConcurrentAdvancesAreDenseAndOrdered(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		const writers, each = 6, 15
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					var rev int64
					err := bootstrap.RunInTx(context.Background(), db, func(ctx context.Context, tx bun.Tx) error {
						var err error
						rev, err = revision.Advance(ctx, tx, revision.Change{ConnectionIDs: []string{"cin_a"}}, t0)
						return err
					})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					seen[rev] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for r := int64(1); r <= writers*each; r++ {
			if !seen[r] {
				t.Fatalf("revision %d never handed out (%d distinct)", r, len(seen))
			}
		}
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT count(DISTINCT revision) FROM feed_changes").Scan(&n); err != nil || n != writers*each {
			t.Fatalf("%d revisions logged, %v", n, err)
		}
	})
}

// TestNotifyIsSentOnCommitOnly listens on the channel with a second connection: a rolled back
// advance sends nothing, a committed one its revision.
func TestNotifyIsSentOnCommitOnly(t *testing.T) {
	db := dbtest.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+revision.Channel); err != nil {
			return err
		}
		_ = bootstrap.RunInTx(ctx, db, func(ctx context.Context, tx bun.Tx) error {
			if _, err := revision.Advance(ctx, tx, revision.Change{ConnectionIDs: []string{"cin_rolled_back"}}, t0); err != nil {
				return err
			}
			return errors.New("roll back")
		})
		advance(t, db, revision.Change{ConnectionIDs: []string{"cin_a"}})
		n, err := pc.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if n.Channel != revision.Channel || n.Payload != `{"revision":1,"connections":["cin_a"]}` {
			t.Errorf("notification %s %q", n.Channel, n.Payload)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
