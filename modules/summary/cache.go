package summary

import (
	"context"
	"sort"
	"sync"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
)

// Outcome says how a feed request was served; it goes into X-Summary-Cache and Server-Timing.
type Outcome string

// Cache outcomes.
const (
	Hit    Outcome = "hit"
	Miss   Outcome = "miss"
	Shared Outcome = "shared"
	Bypass Outcome = "bypass"
	Off    Outcome = "off"
)

// Cache is the overview cache port: TTL plus single flight over overview keys, holding values
// of type V. The feed holds a ResultCache; the tests of the cache itself hold anything.
type Cache[V any] interface {
	// CatalogChanged invalidates on connector/connection writes (catalog.ChangeNotifier).
	catalog.ChangeNotifier
	// Get returns the value for key, computing it with compute when missing or expired.
	// Concurrent callers for one key share one computation.
	Get(ctx context.Context, key string, compute func(context.Context) (V, error)) (V, Outcome, error)
	// Peek returns a live cached value without computing or counting anything.
	Peek(key string) (V, bool)
	// Invalidate drops every entry; computations already running are not stored.
	Invalidate()
	// Forget drops the entry of key (a value whose time-dependent fields went out of date).
	Forget(key string)
	// Stats reports the cache state for /admin/summary-cache.
	Stats() CacheStats
	// CountBypass records a request that skipped the cache.
	CountBypass()
}

// ResultCache is the cache of the feed's computed overviews.
type ResultCache = Cache[*Result]

// CacheStats is the admin view of the cache.
type CacheStats struct {
	Enabled    bool         `json:"enabled"`
	Why        string       `json:"why"`
	TTLSeconds float64      `json:"ttl_seconds"`
	Entries    []EntryStats `json:"entries"`
	Hits       int64        `json:"hits"`
	Misses     int64        `json:"misses"`
	Shared     int64        `json:"shared"`
	Bypasses   int64        `json:"bypasses"`
	Errors     int64        `json:"errors"`
	Generation uint64       `json:"generation"`
	// MaxEntries is summary.cache.max_entries; Evictions counts entries dropped to stay within
	// it (expired entries that are swept are not counted).
	MaxEntries int   `json:"max_entries"`
	Evictions  int64 `json:"evictions"`
}

// EntryStats describes one cached value.
type EntryStats struct {
	Key        string  `json:"key"`
	AgeSeconds float64 `json:"age_seconds"`
}

// DefaultCacheMaxEntries is summary.cache.max_entries' default: far more keys than consoles
// ask for within one TTL (one per filter and page they show), few enough that a client sending
// distinct queries cannot grow the process. The bound counts entries, not bytes: an entry is
// one overview (or one page of it).
const DefaultCacheMaxEntries = 1000

// OverviewCache is the in-process Cache. A value lives ttl after its computation finished.
// Computations are detached from the requester's context, so a requester that goes away does
// not cancel the work others wait for; errors reach every waiter and are not stored.
//
// The cache is bounded: an expired entry is dropped when it is next asked for, every entry
// that expired is swept whenever a value is stored and the last sweep is a TTL old (so expired
// values never outlive the next write by much), and at maxEntries live entries the oldest one
// is evicted to make room. Keys come from query parameters a client chooses (connector_id,
// limit, cursor), so without the bound every distinct query would stay in memory.
type OverviewCache[V any] struct {
	ttl        time.Duration
	now        bootstrap.Clock
	timeout    time.Duration
	maxEntries int

	mu        sync.Mutex
	gen       uint64
	entries   map[string]cacheEntry[V]
	inflight  map[string]*flight[V]
	lastSweep time.Time
	stats     CacheStats
}

type cacheEntry[V any] struct {
	value  V
	stored time.Time
}

type flight[V any] struct {
	done  chan struct{}
	value V
	err   error
}

// NewOverviewCache returns an enabled cache with the given TTL, holding at most
// DefaultCacheMaxEntries entries.
func NewOverviewCache[V any](ttl time.Duration, now bootstrap.Clock) *OverviewCache[V] {
	return &OverviewCache[V]{ttl: ttl, now: now, timeout: 30 * time.Second, maxEntries: DefaultCacheMaxEntries,
		entries: map[string]cacheEntry[V]{}, inflight: map[string]*flight[V]{}, lastSweep: now(),
		stats: CacheStats{Enabled: true, Why: "enabled", TTLSeconds: ttl.Seconds(), MaxEntries: DefaultCacheMaxEntries}}
}

// WithMaxEntries sets how many entries the cache holds at most (n < 1 keeps the current bound)
// and returns the cache; call it before the cache is shared.
func (c *OverviewCache[V]) WithMaxEntries(n int) *OverviewCache[V] {
	if n >= 1 {
		c.maxEntries, c.stats.MaxEntries = n, n
	}
	return c
}

// Get implements Cache.
func (c *OverviewCache[V]) Get(ctx context.Context, key string, compute func(context.Context) (V, error)) (V, Outcome, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		if c.now().Sub(e.stored) < c.ttl {
			c.stats.Hits++
			c.mu.Unlock()
			return e.value, Hit, nil
		}
		delete(c.entries, key) // expired: its memory is released now, whatever happens next
	}
	if f, ok := c.inflight[key]; ok {
		c.stats.Shared++
		c.mu.Unlock()
		return c.wait(ctx, f, Shared)
	}
	c.stats.Misses++
	f := &flight[V]{done: make(chan struct{})}
	c.inflight[key] = f
	gen := c.gen
	c.mu.Unlock()

	go func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		f.value, f.err = compute(cctx)
		c.mu.Lock()
		if c.inflight[key] == f {
			delete(c.inflight, key)
		}
		switch {
		case f.err != nil:
			c.stats.Errors++
		case gen == c.gen:
			c.store(key, f.value)
		}
		c.mu.Unlock()
		close(f.done)
	}()
	return c.wait(ctx, f, Miss)
}

// store puts value under key within the bound; c.mu is held.
func (c *OverviewCache[V]) store(key string, value V) {
	now := c.now()
	if len(c.entries) >= c.maxEntries || now.Sub(c.lastSweep) >= c.ttl {
		for k, e := range c.entries {
			if now.Sub(e.stored) >= c.ttl {
				delete(c.entries, k)
			}
		}
		c.lastSweep = now
	}
	_, replacing := c.entries[key]
	for !replacing && len(c.entries) >= c.maxEntries {
		oldest, at, found := "", now, false
		for k, e := range c.entries {
			if !found || e.stored.Before(at) || (e.stored.Equal(at) && k < oldest) {
				oldest, at, found = k, e.stored, true
			}
		}
		delete(c.entries, oldest)
		c.stats.Evictions++
	}
	c.entries[key] = cacheEntry[V]{value: value, stored: now}
}

func (c *OverviewCache[V]) wait(ctx context.Context, f *flight[V], o Outcome) (V, Outcome, error) {
	select {
	case <-f.done:
		return f.value, o, f.err
	case <-ctx.Done():
		var none V
		return none, o, ctx.Err()
	}
}

// Peek implements Cache.
func (c *OverviewCache[V]) Peek(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok && c.now().Sub(e.stored) < c.ttl {
		return e.value, true
	}
	var none V
	return none, false
}

// Invalidate implements Cache. Flights started before it still answer their waiters but are
// not stored, and the next request starts a fresh computation.
func (c *OverviewCache[V]) Invalidate() {
	c.mu.Lock()
	c.gen++
	c.entries = map[string]cacheEntry[V]{}
	c.inflight = map[string]*flight[V]{}
	c.mu.Unlock()
}

// CatalogChanged implements catalog.ChangeNotifier.
func (c *OverviewCache[V]) CatalogChanged() { c.Invalidate() }

// Forget implements Cache.
func (c *OverviewCache[V]) Forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// CountBypass implements Cache.
func (c *OverviewCache[V]) CountBypass() {
	c.mu.Lock()
	c.stats.Bypasses++
	c.mu.Unlock()
}

// Stats implements Cache.
func (c *OverviewCache[V]) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Generation = c.gen
	s.Entries = []EntryStats{}
	now := c.now()
	for k, e := range c.entries {
		s.Entries = append(s.Entries, EntryStats{Key: k, AgeSeconds: now.Sub(e.stored).Seconds()})
	}
	sort.Slice(s.Entries, func(i, j int) bool { return s.Entries[i].Key < s.Entries[j].Key })
	return s
}

// NoCache is the Cache where caching is disabled: every request computes.
type NoCache[V any] struct {
	why string
	mu  sync.Mutex
	n   CacheStats
}

// NewNoCache returns a disabled cache that says why.
func NewNoCache[V any](why string) *NoCache[V] { return &NoCache[V]{why: why} }

// Get implements Cache.
func (c *NoCache[V]) Get(ctx context.Context, _ string, compute func(context.Context) (V, error)) (V, Outcome, error) {
	v, err := compute(ctx)
	return v, Off, err
}

// Invalidate implements Cache.
func (c *NoCache[V]) Invalidate() {}

// Forget implements Cache.
func (c *NoCache[V]) Forget(string) {}

// Peek implements Cache.
func (c *NoCache[V]) Peek(string) (V, bool) {
	var none V
	return none, false
}

// CatalogChanged implements catalog.ChangeNotifier.
func (c *NoCache[V]) CatalogChanged() {}

// CountBypass implements Cache.
func (c *NoCache[V]) CountBypass() { c.mu.Lock(); c.n.Bypasses++; c.mu.Unlock() }

// Stats implements Cache.
func (c *NoCache[V]) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Enabled: false, Why: c.why, Entries: []EntryStats{}, Bypasses: c.n.Bypasses}
}
