package perf

import (
	"math"
	"sort"
)

// LayoutShift is one layout-shift entry the page reported (times in ms since navigation start).
type LayoutShift struct {
	StartMs float64 `json:"start_ms"`
	Value   float64 `json:"value"`
	// HadRecentInput marks a shift within 500 ms of user input; CLS leaves it out.
	HadRecentInput bool `json:"had_recent_input,omitempty"`
}

// Session windows as the web-vitals library defines CLS: a window ends when 1 s passes without a
// shift or when it has lasted 5 s; CLS is the largest window's sum.
const (
	clsSessionGapMs = 1000
	clsSessionMaxMs = 5000
)

// SessionWindowCLS is the cumulative layout shift of shifts as web-vitals computes it: shifts with
// recent input are ignored, the rest are grouped into session windows (gap ≤ 1 s, window ≤ 5 s) and
// the largest window sum wins. The plain sum over the page's life, which the original harness
// reported, over-counts long-lived pages.
func SessionWindowCLS(shifts []LayoutShift) float64 {
	s := make([]LayoutShift, 0, len(shifts))
	for _, x := range shifts {
		if !x.HadRecentInput {
			s = append(s, x)
		}
	}
	sort.SliceStable(s, func(i, j int) bool { return s[i].StartMs < s[j].StartMs })
	best, cur := 0.0, 0.0
	var first, last float64
	for i, x := range s {
		if i == 0 || x.StartMs-last > clsSessionGapMs || x.StartMs-first > clsSessionMaxMs {
			cur, first = 0, x.StartMs
		}
		cur += x.Value
		last = x.StartMs
		best = max(best, cur)
	}
	return best
}

// LongTask is one long-task entry (a main-thread task of 50 ms or more).
type LongTask struct {
	StartMs    float64 `json:"start_ms"`
	DurationMs float64 `json:"duration_ms"`
}

// longTaskBlockingMs is the part of a task that does not block input (Lighthouse's TBT).
const longTaskBlockingMs = 50

// TotalBlockingTime sums, over the long tasks after the first contentful paint, the time each one
// ran beyond 50 ms (a task that began before FCP counts from FCP). Lighthouse ends the window at
// Time to Interactive; the harness ends it where it stops watching the load (load event + settle),
// before any scripted interaction.
func TotalBlockingTime(tasks []LongTask, fcpMs *float64) float64 {
	total := 0.0
	for _, t := range tasks {
		start, end := t.StartMs, t.StartMs+t.DurationMs
		if fcpMs != nil {
			start = max(start, *fcpMs)
		}
		if d := end - start - longTaskBlockingMs; d > 0 {
			total += d
		}
	}
	return round2(total)
}

// EventTiming is one Event Timing entry that belongs to an interaction (interactionId > 0).
type EventTiming struct {
	// Doc tells the documents of the tab apart (their performance.timeOrigin): interaction ids are
	// only unique within one document.
	Doc           float64 `json:"doc,omitempty"`
	InteractionID int64   `json:"interaction_id"`
	Name          string  `json:"name"`
	StartMs       float64 `json:"start_ms"`
	DurationMs    float64 `json:"duration_ms"`
}

// InteractionKey names one interaction: its document and its id there.
type InteractionKey struct {
	Doc float64
	ID  int64
}

// Key is the interaction the entry belongs to.
func (e EventTiming) Key() InteractionKey { return InteractionKey{e.Doc, e.InteractionID} }

// InteractionLatencies returns the latency of each interaction in events: the longest duration
// among its entries (a click is pointerdown, pointerup and click).
func InteractionLatencies(events []EventTiming) map[InteractionKey]float64 {
	out := map[InteractionKey]float64{}
	for _, e := range events {
		if e.InteractionID <= 0 {
			continue
		}
		out[e.Key()] = max(out[e.Key()], e.DurationMs)
	}
	return out
}

// INP is Interaction to Next Paint as web-vitals computes it: the worst interaction latency,
// ignoring one outlier per 50 interactions; nil without any interaction.
func INP(events []EventTiming) *float64 {
	lat := InteractionLatencies(events)
	if len(lat) == 0 {
		return nil
	}
	xs := make([]float64, 0, len(lat))
	for _, v := range lat {
		xs = append(xs, v)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(xs)))
	v := xs[min(len(xs)-1, len(xs)/50)]
	return &v
}

// median is the middle value (mean of the two middle ones for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// MannWhitney is the two-sided Mann-Whitney U test of samples a against b. U is a's statistic
// (the number of pairs where a's value is the larger, ties counting one half). P is exact for small
// samples without ties and the normal approximation (tie-corrected, with continuity correction)
// otherwise. Two identical constant samples give P = 1.
func MannWhitney(a, b []float64) (u, p float64) {
	n1, n2 := len(a), len(b)
	if n1 == 0 || n2 == 0 {
		return 0, 1
	}
	type obs struct {
		v     float64
		fromA bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].v < all[j].v })
	n := float64(n1 + n2)
	var rankA, tieTerm float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // mid-rank of positions i+1..j
		for k := i; k < j; k++ {
			if all[k].fromA {
				rankA += rank
			}
		}
		if t := float64(j - i); t > 1 {
			ties = true
			tieTerm += t*t*t - t
		}
		i = j
	}
	u = rankA - float64(n1*(n1+1))/2
	if !ties && n1+n2 <= 40 {
		return u, exactMannWhitneyP(n1, n2, u)
	}
	mean := float64(n1*n2) / 2
	variance := float64(n1*n2) / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if variance <= 0 {
		return u, 1
	}
	z := (math.Abs(u-mean) - 0.5) / math.Sqrt(variance)
	if z < 0 {
		z = 0
	}
	return u, math.Min(1, math.Erfc(z/math.Sqrt2))
}

// exactMannWhitneyP is the two-sided exact p-value of U = u for sample sizes n1 and n2 (no ties):
// the share of all C(n1+n2, n1) arrangements whose U is at least as far from the mean.
func exactMannWhitneyP(n1, n2 int, u float64) float64 {
	maxU := n1 * n2
	// counts[i][j][k]: arrangements of i a's and j b's with U = k.
	prev := make([][]float64, n2+1)
	for j := range prev {
		prev[j] = make([]float64, maxU+1)
		prev[j][0] = 1 // no a's: U = 0
	}
	for i := 1; i <= n1; i++ {
		cur := make([][]float64, n2+1)
		for j := 0; j <= n2; j++ {
			cur[j] = make([]float64, maxU+1)
			for k := 0; k <= maxU; k++ {
				// The largest value is an a (it beats all j b's) or a b.
				if k-j >= 0 {
					cur[j][k] += prev[j][k-j]
				}
				if j > 0 {
					cur[j][k] += cur[j-1][k]
				}
			}
		}
		prev = cur
	}
	dist := prev[n2]
	total, low, high := 0.0, 0.0, 0.0
	for k, c := range dist {
		total += c
		if float64(k) <= u {
			low += c
		}
		if float64(k) >= u {
			high += c
		}
	}
	return math.Min(1, 2*math.Min(low, high)/total)
}
