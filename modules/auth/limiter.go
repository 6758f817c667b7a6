package auth

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// Limiter is a token bucket per client for login failures: a client starts with perMinute
// attempts, every failure takes one, and one comes back every minute/perMinute. With none left,
// every login attempt of that client, right or wrong, is refused until one comes back, so the
// owner token cannot be guessed faster than perMinute a minute per address. The buckets live in
// the process: each replica limits on its own (documented), and a restart forgets them.
type Limiter struct {
	mu      sync.Mutex
	perSec  float64
	burst   float64
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the memory of the limiter; when it is full, buckets that refilled are
// dropped, and clients beyond it share one bucket (they are limited together, never let through).
const maxBuckets = 10000

const overflowKey = "*"

// NewLimiter allows perMinute failures a minute per client, in bursts of perMinute.
func NewLimiter(perMinute int, now func() time.Time) *Limiter {
	if perMinute <= 0 {
		perMinute = DefaultLoginPerMinute
	}
	return &Limiter{perSec: float64(perMinute) / 60, burst: float64(perMinute), now: now, buckets: map[string]*bucket{}}
}

func (l *Limiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(l.burst, b.tokens+d.Seconds()*l.perSec)
	}
	b.at = now
}

// Wait returns 0 when client may attempt a login now, else how long until it may.
func (l *Limiter) Wait(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if b = l.buckets[overflowKey]; b == nil || !l.full() {
			return 0
		}
	}
	l.refill(b, l.now())
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / l.perSec * float64(time.Second))
}

// Failed takes one attempt from client's bucket.
func (l *Limiter) Failed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[client]
	if b == nil {
		if l.full() {
			for k, o := range l.buckets {
				if l.refill(o, now); o.tokens >= l.burst && k != overflowKey {
					delete(l.buckets, k)
				}
			}
		}
		if l.full() {
			client = overflowKey
		}
		if b = l.buckets[client]; b == nil {
			b = &bucket{tokens: l.burst, at: now}
			l.buckets[client] = b
		}
	}
	l.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// full reports whether the per-client buckets reached the bound (the shared one aside).
func (l *Limiter) full() bool {
	n := len(l.buckets)
	if _, ok := l.buckets[overflowKey]; ok {
		n--
	}
	return n >= maxBuckets-1
}

// ClientKey is the limiter's key for a client address: IPv4 addresses as they are, IPv6 by their
// /64, which one subscriber usually holds whole.
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
