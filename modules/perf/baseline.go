package perf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
)

// Baseline comparison defaults: a metric regresses when its samples differ significantly (two-sided
// Mann-Whitney U, p < 0.05) and the median got worse by more than 5 %.
const (
	DefaultBaselineAlpha     = 0.05
	DefaultBaselineMinChange = 0.05
)

// BaselineResult is the comparison of this run's samples with a baseline report's.
type BaselineResult struct {
	File      string  `json:"file"`
	Alpha     float64 `json:"alpha"`
	MinChange float64 `json:"min_change"`
	// Note says when the run counts are too small for any difference to be significant.
	Note        string       `json:"note,omitempty"`
	Comparisons []Comparison `json:"comparisons"`
}

// Comparison is one metric of one route, viewport and view, old samples against new.
type Comparison struct {
	Route      string    `json:"route"`
	Viewport   string    `json:"viewport"`
	View       string    `json:"view"`
	Metric     string    `json:"metric"`
	Old        []float64 `json:"old"`
	New        []float64 `json:"new"`
	OldMedian  float64   `json:"old_median"`
	NewMedian  float64   `json:"new_median"`
	U          float64   `json:"u"`
	P          float64   `json:"p"`
	Regression bool      `json:"regression"`
	Text       string    `json:"text"`
}

// String is the one line printed for a regression.
func (c Comparison) String() string {
	return fmt.Sprintf("%s %s %s: %s", c.Route, c.Viewport, c.View, c.Text)
}

// LoadBaseline reads the samples of an earlier `bench browser --json` report.
func LoadBaseline(file string) ([]RouteResult, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	var rep struct {
		Schema string        `json:"schema"`
		Routes []RouteResult `json:"routes"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("baseline %s: %w", file, err)
	}
	// An older report lacks metrics (TBT, INP, transfer bytes) that would read as zeros and make
	// every run look like a regression.
	if rep.Schema != BrowserSchema {
		return nil, fmt.Errorf("baseline %s: schema %q, want %q (measure the baseline again with this build)", file, rep.Schema, BrowserSchema)
	}
	return rep.Routes, nil
}

// minimalP is the smallest two-sided exact p-value samples of n1 and n2 can give.
func minimalP(n1, n2 int) float64 {
	c := 1.0
	for i := 1; i <= n1; i++ {
		c = c * float64(n2+i) / float64(i)
	}
	return 2 / c
}

// CompareBaseline compares every metric of every route, viewport and view present in both sample
// sets (failed visits left out) and marks the significant regressions.
func CompareBaseline(file string, old, cur []RouteResult, alpha, minChange float64) *BaselineResult {
	res := &BaselineResult{File: file, Alpha: alpha, MinChange: minChange, Comparisons: []Comparison{}}
	type key struct{ route, vp, view string }
	collect := func(rs []RouteResult) (map[key][]RouteResult, []key) {
		m := map[key][]RouteResult{}
		var order []key
		for _, r := range rs {
			if visitFailure(r) != "" {
				continue
			}
			k := key{r.Route, r.Viewport, viewName(r.Warm)}
			if _, ok := m[k]; !ok {
				order = append(order, k)
			}
			m[k] = append(m[k], r)
		}
		return m, order
	}
	oldG, _ := collect(old)
	curG, order := collect(cur)
	smallest := math.Inf(1)
	for _, k := range order {
		o, ok := oldG[k]
		if !ok {
			continue
		}
		n := curG[k]
		smallest = min(smallest, minimalP(len(o), len(n)))
		for _, m := range browserMetrics {
			a, b := metricSamples(m, o), metricSamples(m, n)
			if len(a) == 0 || len(b) == 0 {
				continue
			}
			u, p := MannWhitney(b, a)
			c := Comparison{Route: k.route, Viewport: k.vp, View: k.view, Metric: m.name, Old: a, New: b,
				OldMedian: round4(median(a)), NewMedian: round4(median(b)), U: u, P: round4(p)}
			worse := c.NewMedian > c.OldMedian && c.NewMedian > c.OldMedian*(1+minChange)
			c.Regression = worse && p < alpha
			change := "n/a"
			if c.OldMedian != 0 {
				change = fmt.Sprintf("%+.1f%%", (c.NewMedian-c.OldMedian)/c.OldMedian*100)
			}
			verdict := "no significant change"
			switch {
			case c.Regression:
				verdict = "REGRESSION"
			case p < alpha && c.NewMedian < c.OldMedian:
				verdict = "improvement"
			case p < alpha:
				verdict = "significant but within the minimum change"
			}
			c.Text = fmt.Sprintf("%s median %s → %s (%s), Mann-Whitney U=%g p=%.4f, %d vs %d runs: %s",
				m.name, fmtMetric(c.OldMedian), fmtMetric(c.NewMedian), change, u, p, len(a), len(b), verdict)
			res.Comparisons = append(res.Comparisons, c)
		}
	}
	if smallest >= alpha && len(res.Comparisons) > 0 {
		res.Note = fmt.Sprintf("with these run counts no difference can reach p < %g (smallest possible p %.3f): use --runs 5 on both sides", alpha, smallest)
	}
	return res
}

func metricSamples(m metricDef, rs []RouteResult) []float64 {
	var xs []float64
	for _, r := range rs {
		if v, ok := m.value(r); ok {
			xs = append(xs, v)
		}
	}
	return xs
}

// Regressions lists the comparisons that regressed.
func (b *BaselineResult) Regressions() []Comparison {
	var out []Comparison
	for _, c := range b.Comparisons {
		if c.Regression {
			out = append(out, c)
		}
	}
	return out
}
