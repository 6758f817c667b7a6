package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiterTokenBucket(t *testing.T) {
	clock := newClock()
	l := NewLimiter(10, clock.now)
	for i := 0; i < 10; i++ {
		if w := l.Wait("10.0.0.1"); w != 0 {
			t.Fatalf("attempt %d waits %s, want a burst of 10", i, w)
		}
		l.Failed("10.0.0.1")
	}
	if w := l.Wait("10.0.0.1"); w != 6*time.Second {
		t.Errorf("after 10 failures the wait is %s, want 6s (one attempt per 6 s at 10/min)", w)
	}
	if w := l.Wait("10.0.0.2"); w != 0 {
		t.Errorf("another address waits %s", w)
	}
	clock.advance(3 * time.Second)
	if w := l.Wait("10.0.0.1"); w != 3*time.Second {
		t.Errorf("3 s later the wait is %s, want 3s", w)
	}
	clock.advance(3 * time.Second)
	if w := l.Wait("10.0.0.1"); w != 0 {
		t.Errorf("6 s later the wait is %s, want an attempt back", w)
	}
	l.Failed("10.0.0.1")
	if w := l.Wait("10.0.0.1"); w == 0 {
		t.Error("the regained attempt was not taken")
	}
	// A minute of quiet refills the burst, never more.
	clock.advance(time.Hour)
	for i := 0; i < 10; i++ {
		l.Failed("10.0.0.1")
	}
	if w := l.Wait("10.0.0.1"); w == 0 {
		t.Error("the bucket held more than its burst")
	}
}

func TestLimiterIsBounded(t *testing.T) {
	clock := newClock()
	l := NewLimiter(1, clock.now)
	for i := 0; i < maxBuckets+50; i++ {
		l.Failed(fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
	}
	if len(l.buckets) > maxBuckets {
		t.Errorf("%d buckets, want at most %d", len(l.buckets), maxBuckets)
	}
	// Past the bound, new addresses share one bucket: limited together, never let through.
	if w := l.Wait("192.0.2.77"); w == 0 {
		t.Error("an address beyond the bound was not limited")
	}
	// Once the buckets refill they make room again.
	clock.advance(time.Hour)
	l.Failed("192.0.2.78")
	if _, ok := l.buckets["192.0.2.78"]; !ok {
		t.Error("refilled buckets were not dropped to make room")
	}
}

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := ClientKey(in); got != want {
			t.Errorf("ClientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
