package perf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// BudgetsSchema names the version of the budgets file.
const BudgetsSchema = "connsum.budgets/v1"

// BudgetsFile is what `bench browser --budgets FILE` reads (docs/browser-harness.md documents it):
// which routes to visit with which scripted interactions, the viewports and their throttling, the
// number of runs, and the budgets each route and viewport is judged against.
type BudgetsFile struct {
	Schema string `json:"schema,omitempty"`
	// Extends names another budgets file (relative to this one) whose settings this one starts
	// from: runs, warm, viewports and routes given here replace the base's; budgets are appended, so
	// they override the base's per metric.
	Extends string `json:"extends,omitempty"`
	// Runs is the number of fresh-browser runs per route and viewport (the --runs default).
	Runs int `json:"runs,omitempty"`
	// Warm adds a warm view (a second visit in the same profile) to every run.
	Warm bool `json:"warm,omitempty"`
	// Viewports are the viewports visited, in order; a name of a built-in viewport (desktop, mobile)
	// with nothing else set means the built-in one.
	Viewports []ViewportConfig `json:"viewports,omitempty"`
	// Routes are the routes visited, in order, each with its scripted interactions.
	Routes []RouteConfig `json:"routes,omitempty"`
	// Budgets are matched in order; a later entry's metric overrides an earlier one's.
	Budgets []Budget `json:"budgets"`
}

// ViewportConfig is a viewport of the budgets file.
type ViewportConfig struct {
	Name              string    `json:"name"`
	Width             int64     `json:"width,omitempty"`
	Height            int64     `json:"height,omitempty"`
	DeviceScaleFactor float64   `json:"device_scale_factor,omitempty"`
	Mobile            bool      `json:"mobile,omitempty"`
	Throttle          *Throttle `json:"throttle,omitempty"`
}

// RouteConfig is a route of the budgets file. Path may carry {connection}, replaced by the first
// connection id of the overview.
type RouteConfig struct {
	Path         string        `json:"path"`
	Interactions []Interaction `json:"interactions,omitempty"`
}

// Interaction is one scripted interaction: a click on the first element matching Click, or typing
// Text into the first element matching Type. An interaction whose element is absent is reported as
// skipped, never as a failure, so the budgets survive a console that changes its pages.
type Interaction struct {
	Name  string `json:"name"`
	Click string `json:"click,omitempty"`
	Type  string `json:"type,omitempty"`
	Text  string `json:"text,omitempty"`
}

// Budget is a set of limits for the routes, viewports and views it matches. Route is a path pattern
// (path.Match syntax, matched against the configured route and the resolved one; empty or "*" is
// every route); Viewport and View (cold, warm) are exact names, empty for all.
type Budget struct {
	Route    string             `json:"route,omitempty"`
	Viewport string             `json:"viewport,omitempty"`
	View     string             `json:"view,omitempty"`
	Metrics  map[string]float64 `json:"metrics"`
}

// metricDef is one budgetable metric: how to read it from a sample and whether it is judged on the
// median of the runs or on the worst run.
type metricDef struct {
	name  string
	worst bool
	value func(RouteResult) (float64, bool)
}

func optValue(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

// browserMetrics are the metrics a budget may limit, in report order. Error counts are judged on the
// worst run: a request that failed in one of three runs is a defect, not noise. Everything else is
// judged on the median.
var browserMetrics = []metricDef{
	{"ttfb_ms", false, func(r RouteResult) (float64, bool) { return r.TTFBMs, true }},
	{"fcp_ms", false, func(r RouteResult) (float64, bool) { return optValue(r.FCPMs) }},
	{"lcp_ms", false, func(r RouteResult) (float64, bool) { return optValue(r.LCPMs) }},
	{"cls", false, func(r RouteResult) (float64, bool) { return r.CLS, true }},
	{"tbt_ms", false, func(r RouteResult) (float64, bool) { return r.TBTMs, true }},
	{"inp_ms", false, func(r RouteResult) (float64, bool) { return optValue(r.INPMs) }},
	{"request_count", false, func(r RouteResult) (float64, bool) { return float64(r.RequestCount), true }},
	{"transfer_bytes", false, func(r RouteResult) (float64, bool) { return float64(r.TransferBytes), true }},
	{"data_fetches", true, func(r RouteResult) (float64, bool) { return float64(r.DataFetchCount), true }},
	{"console_errors", true, func(r RouteResult) (float64, bool) {
		return float64(r.ConsoleErrors + len(r.PageErrors) + len(r.InteractionErrors)), true
	}},
	{"failed_requests", true, func(r RouteResult) (float64, bool) { return float64(len(r.FailedRequests)), true }},
}

func metricByName(name string) (metricDef, bool) {
	for _, m := range browserMetrics {
		if m.name == name {
			return m, true
		}
	}
	return metricDef{}, false
}

// metricNames lists the budgetable metrics for error messages.
func metricNames() string {
	names := make([]string, len(browserMetrics))
	for i, m := range browserMetrics {
		names[i] = m.name
	}
	return strings.Join(names, ", ")
}

// DefaultBudgets are the budgets without a --budgets file: the machine-independent limits of SPEC
// §8 (no failed request, no console error, at most one data fetch per navigation). The timing
// targets stay in the verdict column and gate only through a budgets file.
func DefaultBudgets() BudgetsFile {
	return BudgetsFile{Schema: BudgetsSchema, Budgets: []Budget{{Metrics: map[string]float64{
		"failed_requests": 0, "console_errors": 0, "data_fetches": 1,
	}}}}
}

// LoadBudgets reads and checks a budgets file (and the files it extends); unknown fields, unknown
// metrics and negative limits are refused naming them.
func LoadBudgets(file string) (BudgetsFile, error) {
	return loadBudgets(file, 0)
}

func loadBudgets(file string, depth int) (BudgetsFile, error) {
	if depth > 4 {
		return BudgetsFile{}, fmt.Errorf("budgets %s: extends nests deeper than 4 files", file)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return BudgetsFile{}, fmt.Errorf("budgets: %w", err)
	}
	b, err := ParseBudgets(raw)
	if err != nil {
		return b, fmt.Errorf("budgets %s: %w", file, err)
	}
	if b.Extends == "" {
		return b, nil
	}
	base, err := loadBudgets(filepath.Join(filepath.Dir(file), b.Extends), depth+1)
	if err != nil {
		return b, err
	}
	if b.Runs != 0 {
		base.Runs = b.Runs
	}
	base.Warm = base.Warm || b.Warm
	if len(b.Viewports) > 0 {
		base.Viewports = b.Viewports
	}
	if len(b.Routes) > 0 {
		base.Routes = b.Routes
	}
	base.Budgets = append(base.Budgets, b.Budgets...)
	base.Extends = ""
	return base, nil
}

// ParseBudgets decodes and checks the JSON of a budgets file.
func ParseBudgets(raw []byte) (BudgetsFile, error) {
	var b BudgetsFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, err
	}
	if dec.More() {
		return b, errors.New("data after the JSON object")
	}
	if b.Schema != "" && b.Schema != BudgetsSchema {
		return b, fmt.Errorf("schema %q, want %q", b.Schema, BudgetsSchema)
	}
	if b.Runs < 0 {
		return b, errors.New("runs must not be negative")
	}
	for i, vp := range b.Viewports {
		if _, err := vp.Resolve(); err != nil {
			return b, fmt.Errorf("viewports[%d]: %w", i, err)
		}
	}
	for i, r := range b.Routes {
		if !strings.HasPrefix(r.Path, "/") {
			return b, fmt.Errorf("routes[%d].path %q must start with /", i, r.Path)
		}
		for j, in := range r.Interactions {
			if (in.Click == "") == (in.Type == "") || in.Name == "" {
				return b, fmt.Errorf("routes[%d].interactions[%d]: give a name and exactly one of click or type", i, j)
			}
		}
	}
	for i, bg := range b.Budgets {
		if bg.View != "" && bg.View != "cold" && bg.View != "warm" {
			return b, fmt.Errorf("budgets[%d].view %q: want cold or warm", i, bg.View)
		}
		if _, err := path.Match(bg.Route, "/"); err != nil {
			return b, fmt.Errorf("budgets[%d].route %q: %w", i, bg.Route, err)
		}
		for name, limit := range bg.Metrics {
			if _, ok := metricByName(name); !ok {
				return b, fmt.Errorf("budgets[%d].metrics: unknown metric %q (known: %s)", i, name, metricNames())
			}
			if limit < 0 {
				return b, fmt.Errorf("budgets[%d].metrics.%s: negative limit %g", i, name, limit)
			}
		}
	}
	return b, nil
}

// Resolve turns a viewport of the file into a Viewport: a bare built-in name is the built-in
// viewport; otherwise width, height and device_scale_factor are required.
func (vc ViewportConfig) Resolve() (Viewport, error) {
	if vc.Name == "" {
		return Viewport{}, errors.New("name is required")
	}
	if vc.Width == 0 && vc.Height == 0 && vc.DeviceScaleFactor == 0 && !vc.Mobile && vc.Throttle == nil {
		return ViewportByName(vc.Name)
	}
	if vc.Width <= 0 || vc.Height <= 0 || vc.DeviceScaleFactor <= 0 {
		return Viewport{}, fmt.Errorf("viewport %q needs width, height and device_scale_factor > 0", vc.Name)
	}
	vp := Viewport{Name: vc.Name, Width: vc.Width, Height: vc.Height, Scale: vc.DeviceScaleFactor, Mobile: vc.Mobile}
	if vc.Throttle != nil {
		t := *vc.Throttle
		if t.CPUSlowdown < 0 || t.RTTMs < 0 || t.DownKbps < 0 || t.UpKbps < 0 {
			return Viewport{}, fmt.Errorf("viewport %q: negative throttling", vc.Name)
		}
		vp.Throttle = t
	}
	return vp, nil
}

// limitsFor merges the budgets that match one group, later entries winning per metric.
func (b BudgetsFile) limitsFor(template, route, viewport, view string) map[string]float64 {
	out := map[string]float64{}
	for _, bg := range b.Budgets {
		if bg.Viewport != "" && bg.Viewport != viewport || bg.View != "" && bg.View != view {
			continue
		}
		if bg.Route != "" && bg.Route != "*" {
			m1, _ := path.Match(bg.Route, template)
			m2, _ := path.Match(bg.Route, route)
			if !m1 && !m2 {
				continue
			}
		}
		for k, v := range bg.Metrics {
			out[k] = v
		}
	}
	return out
}

// GroupSummary is one route in one viewport and view (cold or warm) over all its runs: the median
// (or worst) of every metric, the runs that failed, and the budget breaches.
type GroupSummary struct {
	Route    string `json:"route"`
	Template string `json:"template"`
	Viewport string `json:"viewport"`
	View     string `json:"view"`
	Runs     int    `json:"runs"`
	// Values holds, per metric, the median of the runs (the worst run for error counts); a metric
	// no run measured (an INP without interactions) is absent.
	Values map[string]float64 `json:"values"`
	// Limits are the budgets that applied.
	Limits map[string]float64 `json:"limits"`
	// Failures are the runs where the route itself failed (no answer, a status other than 200).
	Failures []string `json:"failures,omitempty"`
	Breaches []Breach `json:"breaches"`
}

// Breach is one budget a group missed, or a route that failed.
type Breach struct {
	Route    string  `json:"route"`
	Viewport string  `json:"viewport"`
	View     string  `json:"view"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Limit    float64 `json:"limit"`
	// Basis is median, worst or route (the route failed).
	Basis string `json:"basis"`
	// Samples are the metric's value in each run.
	Samples []float64 `json:"samples,omitempty"`
	Text    string    `json:"text"`
}

// String is the one line printed for the breach.
func (b Breach) String() string {
	return fmt.Sprintf("%s %s %s: %s", b.Route, b.Viewport, b.View, b.Text)
}

// visitFailure names what made one sample a failed visit, or "" for a visit that ran.
func visitFailure(r RouteResult) string {
	switch {
	case r.Error != "" && r.Status != 0 && r.Status != 200:
		return fmt.Sprintf("status %d, %s", r.Status, r.Error)
	case r.Error != "":
		return r.Error
	case r.Status != 200:
		return fmt.Sprintf("status %d", r.Status)
	}
	return ""
}

// Judge groups the samples by route, viewport and view and holds each group to the budgets.
// Samples of failed visits count as route failures and stay out of the medians.
func (b BudgetsFile) Judge(samples []RouteResult) []GroupSummary {
	type key struct{ route, vp, view string }
	var order []key
	groups := map[key][]RouteResult{}
	for _, r := range samples {
		k := key{r.Route, r.Viewport, viewName(r.Warm)}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]GroupSummary, 0, len(order))
	for _, k := range order {
		rs := groups[k]
		tmpl := rs[0].Template
		if tmpl == "" {
			tmpl = k.route
		}
		g := GroupSummary{Route: k.route, Template: tmpl, Viewport: k.vp, View: k.view, Runs: len(rs),
			Values: map[string]float64{}, Limits: b.limitsFor(tmpl, k.route, k.vp, k.view), Breaches: []Breach{}}
		var ok []RouteResult
		for _, r := range rs {
			if f := visitFailure(r); f != "" {
				g.Failures = append(g.Failures, fmt.Sprintf("run %d: %s", r.Run, f))
			} else {
				ok = append(ok, r)
			}
		}
		if len(g.Failures) > 0 {
			g.Breaches = append(g.Breaches, Breach{Route: k.route, Viewport: k.vp, View: k.view, Metric: "route", Basis: "route",
				Text: fmt.Sprintf("route failed in %d of %d runs: %s", len(g.Failures), len(rs), strings.Join(g.Failures, "; "))})
		}
		for _, m := range browserMetrics {
			xs := metricSamples(m, ok)
			limit, budgeted := g.Limits[m.name]
			if len(xs) == 0 {
				// A visit that painted nothing has no FCP/LCP: with a budget that is a breach. INP
				// without any measured interaction is not judged (interactions may be skipped).
				if budgeted && len(ok) > 0 && (m.name == "fcp_ms" || m.name == "lcp_ms") {
					g.Breaches = append(g.Breaches, Breach{Route: k.route, Viewport: k.vp, View: k.view, Metric: m.name,
						Limit: limit, Basis: "median", Text: fmt.Sprintf("%s not reported in any of %d runs (budget %g)", m.name, len(ok), limit)})
				}
				continue
			}
			basis, v := "median", round4(median(xs))
			if m.worst {
				basis, v = "worst", xs[0]
				for _, x := range xs {
					v = max(v, x)
				}
			}
			g.Values[m.name] = v
			if budgeted && v > limit {
				g.Breaches = append(g.Breaches, Breach{Route: k.route, Viewport: k.vp, View: k.view, Metric: m.name,
					Value: v, Limit: limit, Basis: basis, Samples: xs,
					Text: fmt.Sprintf("%s %s %s > budget %s (runs: %s)", m.name, basis, fmtMetric(v), fmtMetric(limit), fmtSamples(xs))})
			}
		}
		out = append(out, g)
	}
	return out
}

func viewName(warm bool) string {
	if warm {
		return "warm"
	}
	return "cold"
}

func round4(v float64) float64 { return float64(int64(v*10000+0.5*sign(v))) / 10000 }

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}

func fmtMetric(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
}

func fmtSamples(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmtMetric(x)
	}
	return strings.Join(parts, ", ")
}
