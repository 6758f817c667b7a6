package console

import (
	"testing"
	"time"
)

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 10 << 20: "10 MiB", 3 << 30: "3.0 GiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestHumanCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4200: "-4,200"} {
		if got := HumanCount(n); got != want {
			t.Errorf("HumanCount(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	cases := map[string]string{
		"2026-11-20T11:59:50.000Z": "just now",
		"2026-11-20T11:55:00.000Z": "5 min ago",
		"2026-11-20T09:00:00.000Z": "3 h ago",
		"2026-11-20T10:29:00.000Z": "1 h 31 min ago",
		"2026-11-20T11:00:10.000Z": "1 h ago",
		"2026-11-20T02:00:00.000Z": "10 h ago",
		"2026-11-17T12:00:00.000Z": "3 days ago",
		"2026-11-20T12:10:00.000Z": "in 10 min",
		"not a time":               "not a time",
	}
	for in, want := range cases {
		if got := RelativeTime(in, now); got != want {
			t.Errorf("RelativeTime(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ExactTime("2026-11-20T07:01:02.345Z"); got != "2026-11-20 07:01:02 UTC" {
		t.Errorf("ExactTime = %q", got)
	}
	if got := Duration("2026-11-20T07:00:00.000Z", "2026-11-20T07:04:12.000Z"); got != "4 min 12 s" {
		t.Errorf("Duration = %q", got)
	}
}
