package summary_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/summary"
)

// Overview cache tests (SPEC §4.7) with a fake clock. No assertion depends on wall time; waitFor
// only synchronises with goroutines and fails the test instead of hanging.

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// blockingCompute counts its runs and blocks each until released.
type blockingCompute struct {
	n       atomic.Int32
	release chan struct{}
	value   any
	err     error
	sawCtx  atomic.Value // error of the computation's context when it ended
}

func newBlocking(value any, err error) *blockingCompute {
	return &blockingCompute{release: make(chan struct{}), value: value, err: err}
}

func (b *blockingCompute) fn(ctx context.Context) (any, error) {
	b.n.Add(1)
	<-b.release
	b.sawCtx.Store(struct{ err error }{ctx.Err()})
	return b.value, b.err
}

func TestCacheConcurrentGetsShareOneComputation(t *testing.T) {
	clk := newSumClock(sumT0)
	c := summary.NewOverviewCache[any](5*time.Second, clk.Now)
	b := newBlocking("v1", nil)
	const n = 50
	outcomes := make([]summary.Outcome, n)
	values := make([]any, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, o, err := c.Get(context.Background(), "k", b.fn)
			if err != nil {
				t.Error(err)
			}
			values[i], outcomes[i] = v, o
		}(i)
	}
	waitFor(t, "all 50 requests to join", func() bool { s := c.Stats(); return s.Misses+s.Shared == n })
	close(b.release)
	wg.Wait()
	if got := b.n.Load(); got != 1 {
		t.Fatalf("50 concurrent Gets ran %d computations, want exactly 1", got)
	}
	count := map[summary.Outcome]int{}
	for i := range outcomes {
		count[outcomes[i]]++
		if values[i] != "v1" {
			t.Errorf("request %d got %v", i, values[i])
		}
	}
	if count[summary.Miss] != 1 || count[summary.Shared] != n-1 {
		t.Errorf("outcomes %v, want 1 miss and %d shared", count, n-1)
	}
	if v, o, _ := c.Get(context.Background(), "k", b.fn); o != summary.Hit || v != "v1" || b.n.Load() != 1 {
		t.Errorf("next Get: %v %s after %d computations, want a hit", v, o, b.n.Load())
	}
	st := c.Stats()
	if st.Hits != 1 || st.Misses != 1 || st.Shared != n-1 || st.Errors != 0 || !st.Enabled || len(st.Entries) != 1 {
		t.Errorf("stats %+v", st)
	}
	// Another key is computed on its own.
	if _, o, _ := c.Get(context.Background(), "other", func(context.Context) (any, error) { return 2, nil }); o != summary.Miss {
		t.Errorf("other key: %s, want miss", o)
	}
}

func TestCacheValueLivesTTLAfterComputationFinished(t *testing.T) {
	clk := newSumClock(sumT0)
	c := summary.NewOverviewCache[any](5*time.Second, clk.Now)
	var n atomic.Int32
	slow := func(context.Context) (any, error) {
		n.Add(1)
		clk.Advance(2 * time.Second) // the computation takes 2 s of (fake) time
		return int(n.Load()), nil
	}
	if v, o, err := c.Get(context.Background(), "k", slow); err != nil || o != summary.Miss || v != 1 {
		t.Fatalf("first Get: %v %s %v", v, o, err)
	}
	clk.Advance(4 * time.Second) // 6 s after the start, 4 s after the end
	if v, o, _ := c.Get(context.Background(), "k", slow); o != summary.Hit || v != 1 {
		t.Errorf("4 s after the computation finished: %v %s, want a hit (ttl counts from the end)", v, o)
	}
	if _, ok := c.Peek("k"); !ok {
		t.Error("Peek misses a live value")
	}
	clk.Advance(1500 * time.Millisecond) // 5.5 s after the end
	if _, ok := c.Peek("k"); ok {
		t.Error("Peek returns an expired value")
	}
	if v, o, _ := c.Get(context.Background(), "k", slow); o != summary.Miss || v != 2 {
		t.Errorf("after the TTL: %v %s, want a fresh computation", v, o)
	}
	if n.Load() != 2 {
		t.Errorf("%d computations, want 2", n.Load())
	}
	if _, ok := c.Peek("never"); ok {
		t.Error("Peek of an unknown key")
	}
}

func TestCacheErrorsReachEveryWaiterAndAreNotStored(t *testing.T) {
	clk := newSumClock(sumT0)
	c := summary.NewOverviewCache[any](5*time.Second, clk.Now)
	boom := errors.New("database down")
	b := newBlocking(nil, boom)
	const n = 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, errs[i] = c.Get(context.Background(), "k", b.fn)
		}(i)
	}
	waitFor(t, "all requests to join", func() bool { s := c.Stats(); return s.Misses+s.Shared == n })
	close(b.release)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Errorf("waiter %d got %v, want the computation's error", i, err)
		}
	}
	if b.n.Load() != 1 {
		t.Errorf("%d computations, want 1", b.n.Load())
	}
	st := c.Stats()
	if st.Errors != 1 || len(st.Entries) != 0 {
		t.Errorf("after an error: errors %d entries %v, want 1 and none", st.Errors, st.Entries)
	}
	if _, ok := c.Peek("k"); ok {
		t.Error("a failed computation was stored")
	}
	v, o, err := c.Get(context.Background(), "k", func(context.Context) (any, error) { return "ok", nil })
	if err != nil || o != summary.Miss || v != "ok" {
		t.Errorf("after an error the next Get computes again: %v %s %v", v, o, err)
	}
}

func TestCacheInvalidateDuringComputation(t *testing.T) {
	clk := newSumClock(sumT0)
	c := summary.NewOverviewCache[any](5*time.Second, clk.Now)
	old := newBlocking("stale", nil)
	type got struct {
		v   any
		o   summary.Outcome
		err error
	}
	first := make(chan got, 1)
	go func() {
		v, o, err := c.Get(context.Background(), "k", old.fn)
		first <- got{v, o, err}
	}()
	waitFor(t, "the first computation to start", func() bool { return old.n.Load() == 1 })
	genBefore := c.Stats().Generation
	c.Invalidate()
	if c.Stats().Generation == genBefore {
		t.Error("Invalidate did not move the generation")
	}

	// A request after the invalidation must not join the stale computation.
	fresh := newBlocking("fresh", nil)
	second := make(chan got, 1)
	go func() {
		v, o, err := c.Get(context.Background(), "k", fresh.fn)
		second <- got{v, o, err}
	}()
	waitFor(t, "a second computation to start", func() bool { return fresh.n.Load() == 1 })
	close(fresh.release)
	if g := <-second; g.err != nil || g.v != "fresh" || g.o != summary.Miss {
		t.Errorf("request after Invalidate: %+v, want its own fresh computation", g)
	}
	close(old.release)
	if g := <-first; g.err != nil || g.v != "stale" || g.o != summary.Miss {
		t.Errorf("the requester of the invalidated computation still gets its answer: %+v", g)
	}
	// The stale computation finished last but must not be stored over the fresh one.
	v, o, _ := c.Get(context.Background(), "k", func(context.Context) (any, error) { return "third", nil })
	if o != summary.Hit || v != "fresh" {
		t.Errorf("after both finished: %v %s, want a hit on the fresh value", v, o)
	}

	// Invalidate with no competing request: the running computation is not stored at all.
	c2 := summary.NewOverviewCache[any](5*time.Second, clk.Now)
	b := newBlocking("before", nil)
	done := make(chan struct{})
	go func() { _, _, _ = c2.Get(context.Background(), "k", b.fn); close(done) }()
	waitFor(t, "the computation to start", func() bool { return b.n.Load() == 1 })
	c2.CatalogChanged()
	close(b.release)
	<-done
	if _, ok := c2.Peek("k"); ok {
		t.Error("a computation that started before the invalidation was stored")
	}
	var n atomic.Int32
	if _, o, _ := c2.Get(context.Background(), "k", func(context.Context) (any, error) { n.Add(1); return "after", nil }); o != summary.Miss || n.Load() != 1 {
		t.Errorf("next Get after invalidation: %s with %d computations, want a miss that computes", o, n.Load())
	}
}

func TestCacheComputationOutlivesItsFirstRequester(t *testing.T) {
	clk := newSumClock(sumT0)
	c := summary.NewOverviewCache[any](5*time.Second, clk.Now)
	b := newBlocking("v", nil)
	ctx, cancel := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, _, err := c.Get(ctx, "k", b.fn); firstErr <- err }()
	waitFor(t, "the computation to start", func() bool { return b.n.Load() == 1 })
	second := make(chan any, 1)
	go func() { v, _, _ := c.Get(context.Background(), "k", b.fn); second <- v }()
	waitFor(t, "the second request to join", func() bool { return c.Stats().Shared == 1 })
	cancel()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the requester that went away got %v", err)
	}
	close(b.release)
	if v := <-second; v != "v" {
		t.Errorf("the remaining waiter got %v", v)
	}
	if e := b.sawCtx.Load().(struct{ err error }); e.err != nil {
		t.Errorf("the computation's context was cancelled with its first requester: %v", e.err)
	}
	waitFor(t, "the value to be stored", func() bool { _, ok := c.Peek("k"); return ok })
	if b.n.Load() != 1 {
		t.Errorf("%d computations", b.n.Load())
	}
}

func TestNoCacheAlwaysComputes(t *testing.T) {
	c := summary.NewNoCache[any]("off for the test")
	var n int
	for i := 0; i < 3; i++ {
		v, o, err := c.Get(context.Background(), "k", func(context.Context) (any, error) { n++; return n, nil })
		if err != nil || o != summary.Off || v != i+1 {
			t.Errorf("Get %d: %v %s %v", i, v, o, err)
		}
	}
	if _, ok := c.Peek("k"); ok {
		t.Error("NoCache.Peek found a value")
	}
	c.CountBypass()
	if st := c.Stats(); st.Enabled || st.Why != "off for the test" || st.Bypasses != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestNewCachePicksByDialect(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		now := bootstrap.Clock(time.Now)
		def := summary.NewCache(summary.Options{CacheTTL: 5 * time.Second}, db, now)
		forced := summary.NewCache(summary.Options{CacheTTL: 5 * time.Second, CacheSQLite: true}, db, now)
		off := summary.NewCache(summary.Options{CacheTTL: 0, CacheSQLite: true}, db, now)
		isOn := func(c summary.ResultCache) bool { _, ok := c.(*summary.OverviewCache[*summary.Result]); return ok }
		isOff := func(c summary.ResultCache) bool { _, ok := c.(*summary.NoCache[*summary.Result]); return ok }
		if bootstrap.DialectOf(db) == bootstrap.Postgres {
			if !isOn(def) {
				t.Errorf("PostgreSQL default: %T, want *OverviewCache", def)
			}
			if st := def.Stats(); !st.Enabled || st.TTLSeconds != 5 {
				t.Errorf("PostgreSQL default stats %+v", st)
			}
		} else {
			if !isOff(def) {
				t.Errorf("SQLite default: %T, want *NoCache", def)
			}
			if st := def.Stats(); st.Enabled || st.Why == "" {
				t.Errorf("SQLite default stats %+v: must say why it is off", st)
			}
		}
		if !isOn(forced) {
			t.Errorf("summary.cache.sqlite true: %T, want *OverviewCache on every engine", forced)
		}
		if !isOff(off) {
			t.Errorf("ttl 0: %T, want *NoCache", off)
		}
	})
}

// TestCacheIsBoundedUnderDistinctKeys: overview keys come from query parameters a client
// chooses, so the cache evicts expired entries and holds at most max_entries live ones. Before,
// 30,000 distinct ?connector_id=…&limit=… keys left 30,000 entries (RSS doubled) until a
// catalog write cleared them.
func TestCacheIsBoundedUnderDistinctKeys(t *testing.T) {
	clk := newSumClock(sumT0)
	const ttl, maxEntries = 5 * time.Second, 1000
	c := summary.NewOverviewCache[any](ttl, clk.Now).WithMaxEntries(maxEntries)
	ctx := context.Background()
	value := func(v any) func(context.Context) (any, error) {
		return func(context.Context) (any, error) { return v, nil }
	}
	// 30,000 distinct keys within one TTL: the oldest are evicted, the newest stay.
	for i := 0; i < 30000; i++ {
		if _, _, err := c.Get(ctx, fmt.Sprintf("connector_id=c%d&limit=%d", i, 1+i%1000), value(i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			clk.Advance(time.Millisecond) // arrival order is age order
		}
	}
	s := c.Stats()
	if len(s.Entries) != maxEntries || s.MaxEntries != maxEntries || s.Evictions != 30000-maxEntries {
		t.Fatalf("after 30,000 distinct keys: %d entries (max %d), %d evictions; want %d and %d",
			len(s.Entries), s.MaxEntries, s.Evictions, maxEntries, 30000-maxEntries)
	}
	newest := "connector_id=c29999&limit=1000"
	if v, ok := c.Peek(newest); !ok || v != 29999 {
		t.Errorf("the newest key is gone: %v, %v", v, ok)
	}
	if _, ok := c.Peek("connector_id=c0&limit=1"); ok {
		t.Error("the oldest key is still cached")
	}
	// A live key is still a hit, and replacing one does not evict another.
	if _, o, _ := c.Get(ctx, newest, value("again")); o != summary.Hit {
		t.Errorf("a live key answered %s, want hit", o)
	}

	// Once the TTL has passed, the next store sweeps every expired entry: memory is released
	// without a catalog write, and the expired entries are not counted as evictions.
	clk.Advance(ttl)
	if _, o, _ := c.Get(ctx, "connector_id=fresh", value("f")); o != summary.Miss {
		t.Fatalf("a new key answered %s", o)
	}
	s = c.Stats()
	if len(s.Entries) != 1 || s.Entries[0].Key != "connector_id=fresh" || s.Evictions != 30000-maxEntries {
		t.Errorf("after the TTL: %d entries (%v), %d evictions; want only the fresh one", len(s.Entries), s.Entries[:min(3, len(s.Entries))], s.Evictions)
	}
	// An expired entry asked for again is dropped and recomputed.
	clk.Advance(ttl)
	if v, o, _ := c.Get(ctx, "connector_id=fresh", value("f2")); o != summary.Miss || v != "f2" {
		t.Errorf("an expired key = %v, %s; want a recomputed miss", v, o)
	}
	if s := c.Stats(); len(s.Entries) != 1 {
		t.Errorf("%d entries after recomputing the only key", len(s.Entries))
	}
}

// TestCacheDefaultMaxEntries: the default bound applies without configuration, and a bound
// below 1 keeps it.
func TestCacheDefaultMaxEntries(t *testing.T) {
	c := summary.NewOverviewCache[any](time.Second, newSumClock(sumT0).Now)
	if s := c.WithMaxEntries(0).Stats(); s.MaxEntries != summary.DefaultCacheMaxEntries || summary.DefaultCacheMaxEntries != 1000 {
		t.Errorf("max entries = %d, want the default %d", s.MaxEntries, summary.DefaultCacheMaxEntries)
	}
}
