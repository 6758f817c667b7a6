package auth

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"go.uber.org/goleak"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a settable clock for the lifetimes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
}

func mustLookup(t *testing.T, s *Store, secret string) *Session {
	t.Helper()
	sess, err := s.Lookup(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

// TestSessionLifetimes: a session ends at auth.session_ttl after login however busy it is, and
// after auth.session_idle without a request; requests keep it from going idle.
func TestSessionLifetimes(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		clock := newClock()
		s := NewStore(db, clock.now, Options{SessionTTL: 12 * time.Hour, SessionIdle: time.Hour}, nil)

		// Idle timeout: alive at 59 min without a request, gone at 60.
		idle, _, err := s.Create(ctx, ViaToken, "test", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		clock.advance(59 * time.Minute)
		if mustLookup(t, s, idle) == nil {
			t.Fatal("session gone after 59 min idle, want alive (idle timeout 1h)")
		}
		// That request renewed it: 59 min later it is still alive, 61 min of silence end it.
		clock.advance(59 * time.Minute)
		if mustLookup(t, s, idle) == nil {
			t.Fatal("session gone 59 min after its last request")
		}
		clock.advance(61 * time.Minute)
		if mustLookup(t, s, idle) != nil {
			t.Fatal("session alive after 61 min without a request, want ended (idle timeout)")
		}

		// Absolute lifetime: a request every 30 min keeps it alive until 12 h after login, no longer.
		busy, sess, err := s.Create(ctx, ViaToken, "test", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if sess.ExpiresAt != bootstrap.FormatTime(clock.now().Add(12*time.Hour)) {
			t.Errorf("expires_at %s, want login + 12h", sess.ExpiresAt)
		}
		for elapsed := 30 * time.Minute; elapsed < 12*time.Hour; elapsed += 30 * time.Minute {
			clock.advance(30 * time.Minute)
			if mustLookup(t, s, busy) == nil {
				t.Fatalf("busy session gone after %s, want alive until 12h", elapsed)
			}
		}
		clock.advance(30 * time.Minute)
		if mustLookup(t, s, busy) != nil {
			t.Fatal("session alive 12h after login, want ended (auth.session_ttl)")
		}

		// Logout ends it at once; a secret that was never issued finds nothing.
		out, _, _ := s.Create(ctx, ViaToken, "", "")
		if err := s.End(ctx, out); err != nil {
			t.Fatal(err)
		}
		if mustLookup(t, s, out) != nil {
			t.Error("session alive after logout")
		}
		if mustLookup(t, s, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") != nil || mustLookup(t, s, "owner-token-0123456789") != nil {
			t.Error("a secret that was never issued found a session")
		}
		// Ended and expired sessions are purged by the next login.
		if _, _, err := s.Create(ctx, ViaToken, "", ""); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.NewSelect().Table("sessions").ColumnExpr("count(*)").Scan(ctx, &n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d session rows after the purge, want the 1 live one", n)
		}
	})
}

// TestSessionRefreshIsThrottled: a request writes last_seen_at only when it is a minute old (at
// most once a minute per session), and the idle timeout still counts from the last write.
func TestSessionRefreshIsThrottled(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		clock := newClock()
		s := NewStore(db, clock.now, Options{SessionIdle: time.Hour}, nil)
		secret, created, err := s.Create(context.Background(), ViaToken, "", "")
		if err != nil {
			t.Fatal(err)
		}
		clock.advance(30 * time.Second)
		if got := mustLookup(t, s, secret); got.LastSeenAt != created.LastSeenAt {
			t.Errorf("last_seen_at written after 30 s (%s → %s), want at most once a minute", created.LastSeenAt, got.LastSeenAt)
		}
		clock.advance(31 * time.Second)
		if got := mustLookup(t, s, secret); got.LastSeenAt != "2026-12-02T08:01:01.000Z" || got.IdleExpiresAt != "2026-12-02T09:01:01.000Z" {
			t.Errorf("after 61 s last_seen_at %s idle_expires_at %s, want refreshed", got.LastSeenAt, got.IdleExpiresAt)
		}
	})
}

func TestLoginLinksAreSingleUse(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		clock := newClock()
		s := NewStore(db, clock.now, Options{LinkTTL: 10 * time.Minute}, nil)
		code, exp, err := s.IssueLink(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !exp.Equal(clock.now().Add(10 * time.Minute)) {
			t.Errorf("link expires %s, want in 10 min", exp)
		}
		// Eight browsers open the same link at once: exactly one gets a session.
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				secret, sess, ok, err := s.ConsumeLink(ctx, code, "", "")
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					wins.Add(1)
					if sess.Via != ViaLink || mustLookup(t, s, secret) == nil {
						t.Errorf("the link's session %v does not work", sess)
					}
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%d uses of one link succeeded, want exactly 1", wins.Load())
		}
		// An expired link grants nothing.
		late, _, _ := s.IssueLink(ctx)
		clock.advance(10 * time.Minute)
		if _, _, ok, err := s.ConsumeLink(ctx, late, "", ""); err != nil || ok {
			t.Errorf("link used at its expiry: ok=%v err=%v, want refused", ok, err)
		}
	})
}

func TestListAndRevoke(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		clock := newClock()
		s := NewStore(db, clock.now, Options{}, nil)
		a, _, _ := s.Create(ctx, ViaToken, "Firefox", "10.0.0.1")
		clock.advance(time.Second)
		b, sb, _ := s.Create(ctx, ViaLink, "Chromium", "10.0.0.2")
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != sb.ID || list[0].UserAgent != "Chromium" || list[1].ClientIP != "10.0.0.1" {
			t.Fatalf("List = %+v, want both, newest first", list)
		}
		if ok, err := s.Revoke(ctx, sb.ID); err != nil || !ok {
			t.Fatalf("Revoke = %v %v", ok, err)
		}
		if mustLookup(t, s, b) != nil || mustLookup(t, s, a) == nil {
			t.Error("Revoke ended the wrong session")
		}
		if ok, _ := s.Revoke(ctx, sb.ID); ok {
			t.Error("revoking twice found a session")
		}
		if n, err := s.RevokeAll(ctx); err != nil || n != 1 {
			t.Errorf("RevokeAll = %d %v, want 1", n, err)
		}
		if mustLookup(t, s, a) != nil {
			t.Error("a session survived RevokeAll")
		}
	})
}
