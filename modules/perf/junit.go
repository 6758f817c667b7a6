package perf

import (
	"encoding/xml"
	"fmt"
	"os"
	"sort"
	"strings"
)

// JUnitSuites is the root of the JUnit XML that `bench browser --junit FILE` writes, the shape CI
// systems (GitLab, Jenkins, GitHub test reporters) read: one test case per route, viewport and view,
// failing with one line per breach, plus one per significant regression against a baseline.
type JUnitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []JUnitSuite `xml:"testsuite"`
}

// JUnitSuite is one suite of the JUnit XML.
type JUnitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	Cases     []JUnitCase `xml:"testcase"`
}

// JUnitCase is one test case; Failure is nil when it passed, Skipped set for a skipped one.
type JUnitCase struct {
	ClassName string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Failure   *JUnitFailure `xml:"failure,omitempty"`
	Skipped   *JUnitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// JUnitFailure carries the first breach as the message and every breach in the body.
type JUnitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// JUnitSkipped marks a case that did not run.
type JUnitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnit builds the JUnit document of the report.
func (r *BrowserReport) JUnit() JUnitSuites {
	budgets := JUnitSuite{Name: "bench browser budgets", Timestamp: r.At}
	for _, g := range r.Groups {
		c := JUnitCase{ClassName: "bench.browser." + g.Route, Name: g.Viewport + " " + g.View}
		var lines []string
		for k, v := range g.Values {
			lines = append(lines, fmt.Sprintf("%s=%s", k, fmtMetric(v)))
		}
		c.SystemOut = fmt.Sprintf("runs %d; %s", g.Runs, strings.Join(sortedStrings(lines), " "))
		if len(g.Breaches) > 0 {
			body := make([]string, len(g.Breaches))
			for i, b := range g.Breaches {
				body[i] = b.String()
			}
			c.Failure = &JUnitFailure{Message: g.Breaches[0].Text, Type: "budget", Body: strings.Join(body, "\n")}
			budgets.Failures++
		}
		budgets.Cases = append(budgets.Cases, c)
	}
	for _, s := range r.Skipped {
		budgets.Cases = append(budgets.Cases, JUnitCase{ClassName: "bench.browser." + s.Route, Name: "route",
			Failure: &JUnitFailure{Message: s.Reason, Type: "route", Body: s.Route + ": " + s.Reason}})
		budgets.Failures++
	}
	if r.Fatal != "" {
		budgets.Cases = append(budgets.Cases, JUnitCase{ClassName: "bench.browser", Name: "harness",
			Failure: &JUnitFailure{Message: r.Fatal, Type: "harness", Body: r.Fatal}})
		budgets.Failures++
	}
	budgets.Tests = len(budgets.Cases)
	out := JUnitSuites{Name: "connsum bench browser", Suites: []JUnitSuite{budgets}}
	if r.Baseline != nil {
		base := JUnitSuite{Name: "bench browser baseline " + r.Baseline.File, Timestamp: r.At}
		for _, c := range r.Baseline.Comparisons {
			jc := JUnitCase{ClassName: "bench.browser.baseline." + c.Route, Name: c.Viewport + " " + c.View + " " + c.Metric,
				SystemOut: c.Text}
			if c.Regression {
				jc.Failure = &JUnitFailure{Message: c.Text, Type: "regression", Body: c.String()}
				base.Failures++
			}
			base.Cases = append(base.Cases, jc)
		}
		base.Tests = len(base.Cases)
		out.Suites = append(out.Suites, base)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
	}
	return out
}

// WriteJUnit writes the report's JUnit XML to file.
func (r *BrowserReport) WriteJUnit(file string) error {
	b, err := xml.MarshalIndent(r.JUnit(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append([]byte(xml.Header), append(b, '\n')...), 0o644)
}

func sortedStrings(s []string) []string {
	sort.Strings(s)
	return s
}
