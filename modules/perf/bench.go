package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/summary"
)

// Target is a running connsum the benchmark talks to over HTTP, like any client.
type Target struct {
	Base       string
	OwnerToken string
	AdminToken string
	Stop       func()
	// DB is the service's own database handle when the server runs in this process, else nil.
	// Only `bench write` uses it, to read the server-side memory of the service's database
	// backend through the service's own pool (memory.go); every measured request goes over HTTP.
	DB *bun.DB
}

// Starter starts a connsum server on dbURL (the app passes one, so perf does not import app).
type Starter func(ctx context.Context, dbURL string) (*Target, error)

// Read is one measured read of the JSON report.
type Read struct {
	Name       string  `json:"name"`
	N          int     `json:"n"`
	P50        float64 `json:"p50_ms"`
	P95        float64 `json:"p95_ms"`
	P99        float64 `json:"p99_ms"`
	Statements int     `json:"statements"`
	Bytes      int     `json:"bytes"`
	Errors     int     `json:"errors"`
	TargetMs   float64 `json:"target_ms,omitempty"`
	Note       string  `json:"note,omitempty"`
	Rate       float64 `json:"rate_per_s,omitempty"`
	// SQLBytes is the length of the read's SQL texts (with --floor, from the captured texts).
	SQLBytes int `json:"sql_bytes,omitempty"`
	// The floor of the read, measured in the same run (--floor, floor.go): the p50 of the
	// service's own SQL texts executed raw plus encoding/json of the same payload, and of each
	// part. For ingest the floor is a COPY of the same rows (FloorRate).
	FloorP50     float64 `json:"floor_p50_ms,omitempty"`
	FloorSQLP50  float64 `json:"floor_sql_p50_ms,omitempty"`
	FloorJSONP50 float64 `json:"floor_json_p50_ms,omitempty"`
	FloorRate    float64 `json:"floor_rate_per_s,omitempty"`
	// FloorRatio is the service's time over the floor's (p50 over floor p50; for ingest the
	// COPY rate over the service's rate): 1 is the floor, lower is better.
	FloorRatio float64 `json:"floor_ratio,omitempty"`
	// AllocPerRow is what the service's read path allocates per row of the answer (its
	// projection and body, measured in process with --floor) beside BodyPerRow, the answer's
	// bytes per row.
	AllocPerRow float64 `json:"alloc_bytes_per_row,omitempty"`
	BodyPerRow  float64 `json:"body_bytes_per_row,omitempty"`
}

// Report is the `bench api` JSON.
type Report struct {
	Schema  string    `json:"schema"`
	Profile string    `json:"profile"`
	Dialect string    `json:"dialect"`
	At      string    `json:"at"`
	Reads   []Read    `json:"reads"`
	Machine string    `json:"machine"`
	Started time.Time `json:"-"`
}

// BenchMain runs `connsum bench api`, `bench browser`, `bench load` and `bench write`.
func BenchMain(args []string, stdout, stderr io.Writer, start Starter) error {
	if len(args) > 0 && args[0] == "browser" {
		return BrowserMain(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "load" {
		return LoadMain(args[1:], stdout, stderr, start)
	}
	if len(args) > 0 && args[0] == "write" {
		return WriteMain(args[1:], stdout, stderr, start)
	}
	if len(args) > 0 && args[0] == "live" {
		return LiveMain(args[1:], stdout, stderr, start)
	}
	if len(args) == 0 || args[0] != "api" {
		return errors.New("bench: usage: connsum bench api [--db URL] [--profile NAME] [--json FILE] [--compare OLD.json] [--samples N] [--concurrent-seconds S] [--ingest-batches N] [--floor] [--reads a,b] | connsum bench browser --base URL … | connsum bench load [--db URL] [--seconds S] [--readers N] [--json FILE] | connsum bench write [--db URL] [--writers N] [--batch B] [--seconds S] [--memory-checkpoints 0,50,…] [--json FILE] [--compare OLD.json] | connsum bench live [--db URL] [--subscribers N] [--seconds S] [--json FILE]")
	}
	fs := flag.NewFlagSet("bench api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("db", "sqlite:./data/bench.db", "database URL (seeded with the profile when empty)")
	profile := fs.String("profile", "live", "data profile: demo, live or fleet")
	jsonOut := fs.String("json", "", "write the JSON report here")
	compare := fs.String("compare", "", "an earlier JSON report to compare with")
	samples := fs.Int("samples", 200, "samples per read")
	concSeconds := fs.Float64("concurrent-seconds", 10, "duration of the 64-client run")
	ingestBatches := fs.Int("ingest-batches", 20, "batches of 1000 events for the ingest figure")
	only := fs.String("reads", "", "comma-separated names of the reads to measure (e.g. overview_page_100,scoped_deep); empty: all")
	withFloor := fs.Bool("floor", false, "measure each read's floor in the same run (its SQL texts executed raw + encoding/json of the payload; COPY for ingest) and print the ratio")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx := context.Background()
	seeded, err := SeedIfEmpty(ctx, *dbURL, *profile, 1, stdout)
	if err != nil {
		return err
	}
	// A database that already held data is measured as it is: the report names the profile it
	// holds, which need not be --profile.
	measured := *profile
	if !seeded {
		if measured, err = ProfileOf(ctx, *dbURL); err != nil {
			return err
		}
		if measured != *profile {
			fmt.Fprintf(stdout, "bench api: the database already holds the %s profile, so that is what is measured (not --profile %s); use an empty database to measure %s\n", measured, *profile, *profile)
		}
	}
	var floor *floorProbe
	if *withFloor {
		if floor, err = newFloorProbe(ctx, *dbURL); err != nil {
			return err
		}
		defer floor.Close()
		// One overview through the probe before the server starts warms the database's caches,
		// so that overview_first measures what a new process costs, not a cold buffer cache.
		if _, err := floor.capture(ctx, listRead(summary.ListQuery{Pipeline: summary.PipelineOverview})(0)); err != nil {
			return err
		}
	}
	t, err := start(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer t.Stop()
	d, _, _ := bootstrap.ParseURL(*dbURL)
	var selected map[string]bool
	if *only != "" {
		selected = map[string]bool{}
		for _, name := range strings.Split(*only, ",") {
			selected[strings.TrimSpace(name)] = true
		}
	}
	rep, err := RunAPI(ctx, t, string(d), measured, *samples, time.Duration(*concSeconds*float64(time.Second)), *ingestBatches, floor, selected)
	if err != nil {
		return err
	}
	rep.Print(stdout)
	if *compare != "" {
		if err := rep.Compare(*compare, stdout); err != nil {
			return err
		}
	}
	return writeJSON(*jsonOut, rep)
}

// writeJSON writes report v, indented, to path; an empty path writes nothing.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// readJSON reads an earlier report from path into v, for --compare.
func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("bench: %s: %w", path, err)
	}
	return nil
}

type client struct {
	t     *Target
	http  *http.Client
	floor *floorProbe // nil without --floor
	// only names the reads to measure (nil: all); the others are reported as skipped. At
	// 10,000 connections on SQLite the whole-list reads take minutes, which a run that is after
	// the page or the scoped read need not wait for.
	only map[string]bool
}

// skips reports whether read name is not to be measured, and its row if so.
func (c *client) skips(name string) (Read, bool) {
	if c.only == nil || c.only[name] {
		return Read{}, false
	}
	return Read{Name: name, Note: "skipped (--reads)"}, true
}

// floorSpec is how a measured read is computed in process for its floor; perSample when each
// sample reads something else (the scoped reads go round the connections).
type floorSpec struct {
	read      floorRead
	perSample bool
}

func (c *client) do(method, path, token string, body []byte) (status int, n int, hdr http.Header, dur time.Duration, err error) {
	req, err := http.NewRequest(method, c.t.Base+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, len(b), resp.Header, time.Since(start), err
}

func percentile(ms []float64, p float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// measure runs fn n times after a short warm-up and summarises the client-side durations. With
// a floor probe and a floor spec, each request is followed by one floor sample of the same read.
func (c *client) measure(name string, n int, target float64, path func(i int) (string, string), before func(), fl *floorSpec) Read {
	if r, skip := c.skips(name); skip {
		return r
	}
	r := Read{Name: name, TargetMs: target}
	var ms []float64
	var ff floorFigures
	var plan *floorPlan
	for i := -min(10, n/10+1); i < n; i++ {
		if before != nil {
			before()
		}
		p, tok := path(max(i, 0))
		status, size, hdr, dur, err := c.do(http.MethodGet, p, tok, nil)
		if c.floor != nil && fl != nil {
			if ferr := c.floor.sample(context.Background(), fl.read, max(i, 0), fl.perSample, &plan, &ff); ferr != nil && r.Note == "" {
				r.Note = "floor: " + ferr.Error()
			}
			if i < 0 {
				ff.total, ff.sql, ff.json = nil, nil, nil
			}
		}
		if i < 0 {
			continue
		}
		if err != nil || status != 200 {
			r.Errors++
			continue
		}
		ms = append(ms, float64(dur.Microseconds())/1000)
		r.Bytes = size
		if s, err := strconv.Atoi(hdr.Get("X-Summary-Statements")); err == nil {
			r.Statements = s
		}
	}
	r.N, r.P50, r.P95, r.P99 = len(ms), percentile(ms, 0.5), percentile(ms, 0.95), percentile(ms, 0.99)
	if len(ff.total) > 0 {
		r.FloorP50, r.FloorSQLP50, r.FloorJSONP50 = percentile(ff.total, 0.5), percentile(ff.sql, 0.5), percentile(ff.json, 0.5)
		r.SQLBytes = ff.sqlBytes
		if ff.rows > 0 {
			r.AllocPerRow, r.BodyPerRow = float64(ff.allocated)/float64(ff.rows), float64(ff.body)/float64(ff.rows)
		}
		if r.FloorP50 > 0 {
			r.FloorRatio = r.P50 / r.FloorP50
		}
	}
	return r
}

// RunAPI measures the reads of SPEC §7 against t.
// With floor, each read is measured beside its floor (floor.go) and ingest beside a COPY of the
// same rows (PostgreSQL only). With only, just the reads it names are (the first overview, which
// finds the connections of the scoped reads, always is).
func RunAPI(ctx context.Context, t *Target, dialect, profile string, samples int, concurrent time.Duration, ingestBatches int, floor *floorProbe, only map[string]bool) (*Report, error) {
	c := &client{t: t, floor: floor, only: only, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}}
	defer c.http.CloseIdleConnections()
	rep := &Report{Schema: "connsum.bench.api/v1", Profile: profile, Dialect: dialect, At: time.Now().UTC().Format(time.RFC3339),
		Machine: machine()}
	// Connection ids for scoped reads.
	_, _, _, _, _ = c.do(http.MethodDelete, "/admin/summary-cache", t.AdminToken, nil)
	// The first overview after the start (a fresh process, an empty cache and pool) is a read
	// of its own: the target is at most twice a warm one.
	req, _ := http.NewRequest(http.MethodGet, t.Base+"/_ref/connectors", nil)
	req.Header.Set("Authorization", "Bearer "+t.OwnerToken)
	firstStart := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	first := Read{Name: "overview_first", N: 1, P50: float64(time.Since(firstStart).Microseconds()) / 1000, Bytes: len(raw)}
	first.P95, first.P99 = first.P50, first.P50
	var env struct {
		Data []struct {
			ConnectionID string `json:"connection_id"`
		} `json:"data"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &env)
	}
	if err != nil || len(env.Data) == 0 {
		return nil, fmt.Errorf("bench: overview unreadable or empty: %v", err)
	}
	ids := make([]string, len(env.Data))
	for i, d := range env.Data {
		ids[i] = d.ConnectionID
	}
	owner := func(p string) func(int) (string, string) {
		return func(int) (string, string) { return p, t.OwnerToken }
	}
	overview := summary.ListQuery{Pipeline: summary.PipelineOverview}
	rep.Reads = append(rep.Reads,
		// The API's own route on a cache miss (the cache dropped before each request, untimed):
		// what a client waits for. /admin/connectors?bypass=1 computes the same but answers a
		// diagnostics object beside it.
		c.measure("overview_cold", samples, 5, owner("/_ref/connectors"), func() {
			_, _, _, _, _ = c.do(http.MethodDelete, "/admin/summary-cache", t.AdminToken, nil)
		}, &floorSpec{read: listRead(overview)}),
		c.measure("overview_cached", samples*5, 0.5, owner("/_ref/connectors"), nil, nil),
		c.measure("scoped_deep", samples, 10, func(i int) (string, string) {
			return "/_ref/connectors?connection=" + ids[i%len(ids)], t.OwnerToken
		}, nil, &floorSpec{read: scopedRead(ids), perSample: true}),
		c.measure("deep_full_list", max(samples/4, 10), 100, owner("/_ref/connectors?depth=deep"), nil,
			&floorSpec{read: listRead(summary.ListQuery{Pipeline: summary.PipelineDeep})}),
		c.measure("overview_page_100", samples, 15, owner("/_ref/connectors?limit=100"), func() {
			_, _, _, _, _ = c.do(http.MethodDelete, "/admin/summary-cache", t.AdminToken, nil)
		}, &floorSpec{read: listRead(summary.ListQuery{Pipeline: summary.PipelineOverview, Limit: 100})}),
	)
	// Ingest into a connector of its own, so the measured reads' data stay as seeded.
	if st, _, _, _, err := c.do(http.MethodPut, "/_ref/connectors/bench-ingest", t.OwnerToken, []byte(`{"display_name":"Bench ingest"}`)); err != nil || st >= 300 {
		return nil, fmt.Errorf("bench: create ingest connector: status %d %v", st, err)
	}
	if st, _, _, _, err := c.do(http.MethodPost, "/_ref/connections", t.OwnerToken, []byte(`{"connector_id":"bench-ingest","connection_id":"cin_bench_ingest"}`)); err != nil || st >= 300 {
		return nil, fmt.Errorf("bench: create ingest connection: status %d %v", st, err)
	}
	if warm := rep.Reads[0].P50; warm > 0 {
		first.Note = fmt.Sprintf("%.2f× the warm overview_cold p50 (target ≤ 2×)", first.P50/warm)
	}
	rep.Reads = append(rep.Reads, first, c.concurrent(64, concurrent), c.ingest("bench-ingest", "cin_bench_ingest", 1000, ingestBatches))
	return rep, nil
}

// concurrent runs 64 overview clients for d and counts projections from the cache's misses.
func (c *client) concurrent(clients int, d time.Duration) Read {
	r := Read{Name: fmt.Sprintf("overview_%d_concurrent", clients)}
	if skipped, skip := c.skips(r.Name); skip {
		return skipped
	}
	missesBefore := c.cacheMisses()
	var mu sync.Mutex
	var ms []float64
	var errs atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []float64
			for time.Now().Before(deadline) {
				status, _, _, dur, err := c.do(http.MethodGet, "/_ref/connectors", c.t.OwnerToken, nil)
				if err != nil || status != 200 {
					errs.Add(1)
					continue
				}
				local = append(local, float64(dur.Microseconds())/1000)
			}
			mu.Lock()
			ms = append(ms, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r.N, r.P50, r.P95, r.P99, r.Errors = len(ms), percentile(ms, 0.5), percentile(ms, 0.95), percentile(ms, 0.99), int(errs.Load())
	r.Rate = float64(len(ms)) / d.Seconds()
	if before, after := missesBefore, c.cacheMisses(); before >= 0 && after >= 0 {
		r.Note = fmt.Sprintf("%d projections in %.0f s", after-before, d.Seconds())
	}
	return r
}

func (c *client) cacheMisses() int64 {
	req, _ := http.NewRequest(http.MethodGet, c.t.Base+"/admin/summary-cache", nil)
	req.Header.Set("Authorization", "Bearer "+c.t.AdminToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var s struct {
		Enabled bool  `json:"enabled"`
		Misses  int64 `json:"misses"`
	}
	if json.NewDecoder(resp.Body).Decode(&s) != nil || !s.Enabled {
		return -1
	}
	return s.Misses
}

// ingestEvents makes batch b of size events of runs of five events each, under prefix.
func ingestEvents(prefix string, stamp int64, b, size int, connectionID string) []string {
	out := make([]string, size)
	for i := range out {
		out[i] = fmt.Sprintf(`{"event_id":"%s_%d_%d_%d","event_type":"run.progress","occurred_at":"%s","run_id":"%s_%d_%d","connection_id":"%s","status":"running","data":{"records":%d}}`,
			prefix, stamp, b, i, time.Now().UTC().Format(time.RFC3339Nano), prefix, stamp, b*size/5+i/5, connectionID, i)
	}
	return out
}

// ingest posts batches of size new events and reports events per second. With a floor probe on
// PostgreSQL each batch is followed by a COPY of a batch of the same shape (floor.go).
func (c *client) ingest(connectorID, connectionID string, size, batches int) Read {
	r := Read{Name: fmt.Sprintf("spine_ingest_batch_%d", size), Statements: 0}
	if skipped, skip := c.skips(r.Name); skip {
		return skipped
	}
	stamp := time.Now().UnixNano()
	var ms, floorMs []float64
	var total, floorTotal time.Duration
	for b := 0; b < batches; b++ {
		body := []byte(`{"events":[` + strings.Join(ingestEvents("bench", stamp, b, size, connectionID), ",") + `]}`)
		status, _, _, dur, err := c.do(http.MethodPost, "/_ref/spine/events", c.t.OwnerToken, body)
		if err != nil || status != 200 {
			r.Errors++
		} else {
			total += dur
			ms = append(ms, float64(dur.Microseconds())/1000)
		}
		if c.floor == nil || c.floor.copy == nil {
			continue
		}
		d, err := c.floor.copyBatch(connectorID, ingestEvents("copy", stamp, b, size, connectionID))
		if err != nil {
			r.Note = "floor: " + err.Error()
			continue
		}
		floorTotal += d
		floorMs = append(floorMs, float64(d.Microseconds())/1000)
	}
	r.N, r.P50, r.P95, r.P99 = len(ms), percentile(ms, 0.5), percentile(ms, 0.95), percentile(ms, 0.99)
	if total > 0 {
		r.Rate = float64(len(ms)*size) / total.Seconds()
	}
	if r.Note == "" {
		r.Note = fmt.Sprintf("%.0f events/s (target ≥ 20000)", r.Rate)
	}
	if floorTotal > 0 && r.Rate > 0 {
		r.FloorP50 = percentile(floorMs, 0.5)
		r.FloorRate = float64(len(floorMs)*size) / floorTotal.Seconds()
		r.FloorRatio = r.FloorRate / r.Rate
	}
	return r
}

// Print writes the human table.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "connsum bench api — profile %s on %s (%s)\n", r.Profile, r.Dialect, r.Machine)
	fmt.Fprintf(w, "%-26s %6s %9s %9s %9s %6s %9s %8s  %s\n", "read", "n", "p50 ms", "p95 ms", "p99 ms", "stmts", "bytes", "target", "note")
	defer r.printFloors(w)
	for _, x := range r.Reads {
		target := ""
		if x.TargetMs > 0 {
			target = fmt.Sprintf("≤%g", x.TargetMs)
			if x.P50 > x.TargetMs {
				target += " MISS"
			}
		}
		note := x.Note
		if x.Errors > 0 {
			note += fmt.Sprintf(" errors=%d", x.Errors)
		}
		fmt.Fprintf(w, "%-26s %6d %9.3f %9.3f %9.3f %6d %9d %8s  %s\n", x.Name, x.N, x.P50, x.P95, x.P99, x.Statements, x.Bytes, target, note)
	}
}

// printFloors writes the floor table of a --floor run: per read the service's p50, its floor
// (SQL raw + encoding/json) and the ratio; for ingest the rates against COPY.
func (r *Report) printFloors(w io.Writer) {
	header := false
	for _, x := range r.Reads {
		if x.FloorRatio == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(w, "\nfloor (same run, same database)\n%-26s %9s %9s %9s %9s %7s %9s %6s\n", "read", "p50 ms", "floor ms", "sql ms", "json ms", "ratio", "sql bytes", "stmts")
			header = true
		}
		if x.FloorRate > 0 {
			fmt.Fprintf(w, "%-26s %9.3f %9.3f %9s %9s %6.2f× %9s %6s  %.0f events/s vs COPY %.0f events/s (%.2f of COPY)\n",
				x.Name, x.P50, x.FloorP50, "", "", x.FloorRatio, "", "", x.Rate, x.FloorRate, 1/x.FloorRatio)
			continue
		}
		fmt.Fprintf(w, "%-26s %9.3f %9.3f %9.3f %9.3f %6.2f× %9d %6d  allocated %.0f B/row for %.0f B/row sent\n",
			x.Name, x.P50, x.FloorP50, x.FloorSQLP50, x.FloorJSONP50, x.FloorRatio, x.SQLBytes, x.Statements, x.AllocPerRow, x.BodyPerRow)
	}
}

// Compare prints the change of p50 per read against an earlier report.
func (r *Report) Compare(path string, w io.Writer) error {
	var old Report
	if err := readJSON(path, &old); err != nil {
		return err
	}
	prev := map[string]Read{}
	for _, x := range old.Reads {
		prev[x.Name] = x
	}
	var changes, ratios []change
	for _, x := range r.Reads {
		changes = append(changes, change{name: x.Name, old: prev[x.Name].P50, cur: x.P50, unit: "ms"})
		if x.FloorRatio > 0 {
			ratios = append(ratios, change{name: x.Name, old: prev[x.Name].FloorRatio, cur: x.FloorRatio, unit: "× floor"})
		}
	}
	printChanges(w, "change of p50 against "+path, changes)
	if len(ratios) > 0 {
		// The ratio is what a noisy machine leaves comparable between runs.
		printChanges(w, "change of the floor ratio against "+path, ratios)
	}
	return nil
}

// change is one figure of a report beside the same figure of an earlier one.
type change struct {
	name     string
	old, cur float64
	unit     string
}

// printChanges writes each change whose earlier figure is known (positive) with its percentage.
func printChanges(w io.Writer, title string, changes []change) {
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, c := range changes {
		if c.old > 0 {
			digits := 3 // milliseconds, mebibytes
			if c.old >= 1000 {
				digits = 0 // events per second
			}
			fmt.Fprintf(w, "%-26s %9.*f → %9.*f %s (%+.1f%%)\n", c.name, digits, c.old, digits, c.cur, c.unit, (c.cur-c.old)/c.old*100)
		}
	}
}

func machine() string {
	host, _ := os.Hostname()
	cpus := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strings.Count(string(b), "processor\t:")
	}
	return fmt.Sprintf("%s, %d cores", host, cpus)
}
