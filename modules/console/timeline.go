package console

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// TimelinePageSize is how many runs one page of /dashboard/runs shows.
const TimelinePageSize = 50

// TimelineOutcomes are the outcome filters the timeline offers (any run status is accepted).
var TimelineOutcomes = []string{runs.StatusFailed, runs.StatusSurfaceFailed, runs.StatusSucceeded, runs.StatusInProgress, runs.StatusCancelled}

// TimelineQuery is a parsed /dashboard/runs query.
type TimelineQuery struct {
	Status    string
	Connector string
	After     *runs.RunKey
}

// RunsData is the data of /dashboard/runs: the newest runs across the visible connections.
type RunsData struct {
	Runs []TimelineRun `json:"runs"`
	// Next continues after the last run; empty on the last page.
	Next string `json:"next,omitempty"`

	Query      TimelineQuery `json:"-"`
	First      string        `json:"-"`
	Connectors []Choice      `json:"-"`
	Outcomes   []Choice      `json:"-"`
	Hint       string        `json:"-"`
}

// Choice is one option of a filter.
type Choice struct {
	Value, Label string
	Href         string
	Current      bool
}

// TimelineRun is one run of the fleet timeline, with its connection.
type TimelineRun struct {
	ConnectionID         string       `json:"connection_id"`
	DisplayName          string       `json:"display_name"`
	ConnectorID          string       `json:"connector_id"`
	ConnectorDisplayName string       `json:"connector_display_name"`
	Run                  runs.Summary `json:"run"`
	Reason               Reason       `json:"reason"`
	Href                 string       `json:"-"`
}

var (
	runIDGrammar  = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	connectorRule = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
)

// validRunKey checks a position taken from a URL: a stored time and a run id.
func validRunKey(k runs.RunKey) bool {
	_, err := time.Parse(bootstrap.TimeFormat, k.LastAt)
	return err == nil && runIDGrammar.MatchString(k.RunID)
}

func parseTimelineQuery(c *fiber.Ctx) (TimelineQuery, error) {
	q := TimelineQuery{Status: c.Query("status"), Connector: c.Query("connector")}
	if q.Status != "" && !runs.IsRunStatus(q.Status) {
		return q, httpx.Invalid("status", "status must be a run status, e.g. %s", "failed, surface_failed, succeeded, in_progress")
	}
	if q.Connector != "" && !connectorRule.MatchString(q.Connector) {
		return q, httpx.Invalid("connector", "connector must be a connector id")
	}
	if s := c.Query("after"); s != "" {
		var k runs.RunKey
		raw, err := keyEncoding.DecodeString(s)
		if err != nil || len(s) > 1024 || json.Unmarshal(raw, &k) != nil || !validRunKey(k) {
			return q, httpx.Invalid("after", "after is not a position of the timeline: follow the page's own links")
		}
		q.After = &k
	}
	return q, nil
}

func (q TimelineQuery) href(after *runs.RunKey) string {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Connector != "" {
		v.Set("connector", q.Connector)
	}
	if after != nil {
		b, _ := json.Marshal(after)
		v.Set("after", keyEncoding.EncodeToString(b))
	}
	if len(v) == 0 {
		return "/dashboard/runs"
	}
	return "/dashboard/runs?" + v.Encode()
}

func (p *Pages) runsPage(c *fiber.Ctx) error {
	start := time.Now()
	q, err := parseTimelineQuery(c)
	if err != nil {
		return err
	}
	res, err := p.overview(c.UserContext())
	if err != nil {
		return err
	}
	byID := map[string]*summary.Item{}
	ids := []string{}
	var wanted []string
	connectors := map[string]string{}
	for i := range res.Items {
		it := &res.Items[i]
		if _, seen := connectors[it.ConnectorID]; !seen && (q.Connector == "" || it.ConnectorID == q.Connector) {
			wanted = append(wanted, it.ConnectorID)
		}
		connectors[it.ConnectorID] = it.ConnectorDisplayName
		if q.Connector == "" || it.ConnectorID == q.Connector {
			byID[it.ConnectionID] = it
			ids = append(ids, it.ConnectionID)
		}
	}
	list, err := p.timeline(c.UserContext(), wanted, ids, q)
	if err != nil {
		return err
	}
	d := RunsData{Runs: []TimelineRun{}, Query: q, First: TimelineQuery{Status: q.Status, Connector: q.Connector}.href(nil)}
	for i, r := range list {
		if i == TimelinePageSize {
			k := runs.KeyOf(&list[i-1].Summary)
			d.Next = q.href(&k)
			break
		}
		it := byID[r.ConnectionID]
		if it == nil {
			continue
		}
		s := r.Summary
		d.Runs = append(d.Runs, TimelineRun{ConnectionID: it.ConnectionID, DisplayName: it.DisplayName, ConnectorID: it.ConnectorID,
			ConnectorDisplayName: it.ConnectorDisplayName, Run: s, Reason: RunReason(&s), Href: RunHref(it.ConnectionID, &s)})
	}
	if c.Query("_data") != "" {
		return p.render(c, "", "", "", d, start)
	}
	d.Outcomes = append(d.Outcomes, Choice{Label: "all outcomes", Href: TimelineQuery{Connector: q.Connector}.href(nil), Current: q.Status == ""})
	for _, s := range TimelineOutcomes {
		d.Outcomes = append(d.Outcomes, Choice{Value: s, Label: Word(s), Href: TimelineQuery{Status: s, Connector: q.Connector}.href(nil), Current: q.Status == s})
	}
	d.Connectors = append(d.Connectors, Choice{Label: "all connectors", Href: TimelineQuery{Status: q.Status}.href(nil), Current: q.Connector == ""})
	keys := make([]string, 0, len(connectors))
	for k := range connectors {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return connectors[keys[i]]+keys[i] < connectors[keys[j]]+keys[j] })
	for _, k := range keys {
		d.Connectors = append(d.Connectors, Choice{Value: k, Label: connectors[k], Href: TimelineQuery{Status: q.Status, Connector: k}.href(nil), Current: q.Connector == k})
	}
	if p.history == nil {
		d.Hint = "With runs.evidence: spine this timeline holds the runs within each connector's most recent run page."
	}
	return p.render(c, "runs.html", "Recent runs", "runs", d, start)
}

// timeline returns up to TimelinePageSize+1 runs of the connections ids in run order: from the
// read model in one statement, or (runs.evidence=spine) from the deep list's run pages.
func (p *Pages) timeline(ctx context.Context, connectors, ids []string, q TimelineQuery) ([]runs.AttributedRun, error) {
	if p.history != nil {
		return p.history.Timeline(ctx, connectors, ids, q.Status, q.After, TimelinePageSize)
	}
	res, _, err := p.feed.Read(ctx, summary.FeedRequest{List: summary.ListQuery{Pipeline: summary.PipelineDeep, History: runs.HistoryPerConnection}})
	if err != nil {
		return nil, err
	}
	var out []runs.AttributedRun
	for id, ev := range res.Evidence {
		if ev == nil || !slices.Contains(ids, id) {
			continue
		}
		for _, s := range ev.Runs {
			if (q.Status == "" || s.Status == q.Status) && (q.After == nil || q.After.Precedes(&s)) {
				out = append(out, runs.AttributedRun{ConnectionID: id, Summary: s})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return runs.Before(&out[i].Summary, &out[j].Summary) })
	return out[:min(len(out), TimelinePageSize+1)], nil
}
