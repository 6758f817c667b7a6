package console

import (
	"fmt"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/runs"
)

// HumanBytes renders a byte count with a binary unit: 0 B, 999 B, 1.5 KiB, 12 MiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[exp]
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.0f %s", v, suffix)
}

// HumanCount renders a count with thousands separators: 1234567 → 1,234,567.
func HumanCount(n int64) string {
	s := fmt.Sprintf("%d", n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// RelativeTime renders how long ago t (stored form) was, relative to now: "just now",
// "5 min ago", "1 h 31 min ago", "9 h ago", "2 days ago"; future times read "in …". Unparseable input is returned as is.
func RelativeTime(stored string, now time.Time) string {
	t, err := time.Parse(bootstrap.TimeFormat, stored)
	if err != nil {
		return stored
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < 59*time.Minute+30*time.Second:
		s = fmt.Sprintf("%d min", int(d.Minutes()+0.5))
	case d < 6*time.Hour:
		// Hours and minutes: 91 minutes is "1 h 31 min", not "2 h".
		m := int(d.Minutes() + 0.5)
		s = fmt.Sprintf("%d h", m/60)
		if m%60 != 0 {
			s += fmt.Sprintf(" %d min", m%60)
		}
	case d < 36*time.Hour:
		s = fmt.Sprintf("%d h", int(d.Hours()+0.5))
	default:
		s = fmt.Sprintf("%d days", int(d.Hours()/24+0.5))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// ExactTime renders a stored time for the hover title: "2026-11-20 07:01:02 UTC".
func ExactTime(stored string) string {
	t, err := time.Parse(bootstrap.TimeFormat, stored)
	if err != nil {
		return stored
	}
	return t.Format("2006-01-02 15:04:05 UTC")
}

// Duration renders the time between two stored times: "4 min 12 s", "38 s".
func Duration(from, to string) string {
	a, err1 := time.Parse(bootstrap.TimeFormat, from)
	b, err2 := time.Parse(bootstrap.TimeFormat, to)
	if err1 != nil || err2 != nil || b.Before(a) {
		return "—"
	}
	d := b.Sub(a).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
}

// Tone maps a status or health state to a badge colour class.
func Tone(state string) string {
	switch state {
	case "healthy", "succeeded", "active", "current", "fresh", "profile_key_match", "explicit_id_match":
		return "ok"
	case "failing", "failed", "surface_failed", "revoked", "abandoned":
		return "bad"
	case "stale", "paused", "cancelled", "waiting_for_browser_surface":
		return "warn"
	case "syncing", "in_progress":
		return "info"
	}
	return "muted"
}

// RunReason is why a run ended as it did, for people: its failure reason, else its status when
// that is not a success; the zero Reason for a succeeded or running run.
func RunReason(s *runs.Summary) Reason {
	if s == nil {
		return Reason{}
	}
	if s.FailureReason != nil && *s.FailureReason != "" {
		return Explain(*s.FailureReason)
	}
	switch s.Status {
	case runs.StatusSucceeded, runs.StatusInProgress:
		return Reason{}
	}
	return Explain(s.Status)
}

// RunDuration is how long a finished run took ("4 min 12 s"); a run that has not finished has
// no duration: "running" while in progress, else "—".
func RunDuration(s *runs.Summary) string {
	if s == nil {
		return "—"
	}
	if s.FinishedAt == nil {
		if s.Status == runs.StatusInProgress {
			return "running"
		}
		return "—"
	}
	return Duration(s.FirstAt, s.LastAt)
}
