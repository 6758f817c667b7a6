package perf

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"connsum/modules/bootstrap"
)

// LoadSchema names the version of the `bench load` JSON.
const LoadSchema = "connsum.bench.load/v1"

// LoadOptions says how hard `bench load` pushes: Readers clients read the overview in a loop
// while one writer posts a batch of BatchEvents new events every WriteInterval, for Duration.
type LoadOptions struct {
	Duration      time.Duration
	Readers       int
	BatchEvents   int
	WriteInterval time.Duration
}

// LoadSide summarises one side of the load (the overview readers or the ingest writer).
type LoadSide struct {
	N      int     `json:"n"`
	OK     int     `json:"ok"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P95    float64 `json:"p95_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
	Rate   float64 `json:"rate_per_s"`
	Events int     `json:"events,omitempty"`
}

// LoadCache is what the overview cache did during the run. Projections are the cache's misses
// over the run; TTLWindows is how many TTL windows the run touched, floor(elapsed/ttl)+1;
// Revisions is how many writes advanced the feed revision. A cache entry is kept for the TTL and
// only for the revision it was computed at (SPEC §2.7: a write shows in the next read), so a
// correct cache starts at most one computation per window and one per revision: Bound.
type LoadCache struct {
	Enabled              bool    `json:"enabled"`
	TTLSeconds           float64 `json:"ttl_seconds"`
	Projections          int64   `json:"projections"`
	TTLWindows           int     `json:"ttl_windows"`
	Revisions            int     `json:"revisions"`
	Bound                int     `json:"bound"`
	ProjectionsPerWindow float64 `json:"projections_per_window"`
}

// LoadReport is the `bench load` JSON.
type LoadReport struct {
	Schema          string         `json:"schema"`
	Profile         string         `json:"profile"`
	Dialect         string         `json:"dialect"`
	At              string         `json:"at"`
	Machine         string         `json:"machine"`
	Seconds         float64        `json:"seconds"`
	Readers         int            `json:"readers"`
	Reads           LoadSide       `json:"reads"`
	Writes          LoadSide       `json:"writes"`
	Statuses        map[string]int `json:"statuses"`
	FiveXX          int            `json:"status_5xx"`
	TransportErrors int            `json:"transport_errors"`
	PeakRSSBytes    int64          `json:"peak_rss_bytes"`
	Cache           LoadCache      `json:"cache"`
}

// LoadMain runs `connsum bench load`.
func LoadMain(args []string, stdout, stderr io.Writer, start Starter) error {
	fs := flag.NewFlagSet("bench load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("db", "sqlite:./data/bench-load.db", "database URL (seeded with the profile when empty)")
	profile := fs.String("profile", "demo", "data profile seeded into an empty database: demo, live or fleet")
	seconds := fs.Float64("seconds", 60, "duration of the run")
	readers := fs.Int("readers", 64, "concurrent overview readers")
	batch := fs.Int("batch", 100, "events per ingest batch of the writer")
	interval := fs.Duration("write-interval", 100*time.Millisecond, "pause between two batches of the writer")
	jsonOut := fs.String("json", "", "write the JSON report here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *seconds <= 0 || *readers < 1 || *batch < 1 || *batch > 5000 {
		return errors.New("bench load: --seconds must be positive, --readers at least 1, --batch from 1 to 5000")
	}
	ctx := context.Background()
	if _, err := SeedIfEmpty(ctx, *dbURL, *profile, 1, stdout); err != nil {
		return err
	}
	t, err := start(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer t.Stop()
	d, _, _ := bootstrap.ParseURL(*dbURL)
	rep, err := RunLoad(ctx, t, string(d), *profile, LoadOptions{Duration: time.Duration(*seconds * float64(time.Second)),
		Readers: *readers, BatchEvents: *batch, WriteInterval: *interval})
	if err != nil {
		return err
	}
	rep.Print(stdout)
	if err := writeJSON(*jsonOut, rep); err != nil {
		return err
	}
	return rep.Check()
}

// Check turns the report into the pass/fail of a CI run: no 5xx, no transport error, and on
// an enabled cache at most one projection per TTL window.
func (r *LoadReport) Check() error {
	var problems []string
	if r.FiveXX > 0 {
		problems = append(problems, fmt.Sprintf("%d answers were 5xx", r.FiveXX))
	}
	if r.TransportErrors > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed in transport", r.TransportErrors))
	}
	if r.Cache.Enabled && r.Cache.Projections > int64(r.Cache.Bound) {
		problems = append(problems, fmt.Sprintf("%d projections in %d TTL windows with %d writes (bound %d)", r.Cache.Projections, r.Cache.TTLWindows, r.Cache.Revisions, r.Cache.Bound))
	}
	if len(problems) > 0 {
		return errors.New("bench load: " + strings.Join(problems, "; "))
	}
	return nil
}

// sample is one answer seen by a load client.
type sample struct {
	status int
	ms     float64
}

// RunLoad drives t with o.Readers overview readers and one steady ingest writer for o.Duration.
func RunLoad(ctx context.Context, t *Target, dialect, profile string, o LoadOptions) (*LoadReport, error) {
	tr := &http.Transport{MaxIdleConns: o.Readers + 8, MaxIdleConnsPerHost: o.Readers + 8}
	defer tr.CloseIdleConnections()
	c := &client{t: t, http: &http.Client{Timeout: 60 * time.Second, Transport: tr}}
	rep := &LoadReport{Schema: LoadSchema, Profile: profile, Dialect: dialect, At: time.Now().UTC().Format(time.RFC3339),
		Machine: machine(), Readers: o.Readers, Statuses: map[string]int{}}

	// The writer ingests into a connector of its own; creating it invalidates the cache, so it
	// happens before the cache's counters are read.
	if st, _, _, _, err := c.do(http.MethodPut, "/_ref/connectors/bench-load", t.OwnerToken, []byte(`{"display_name":"Bench load"}`)); err != nil || st >= 300 {
		return nil, fmt.Errorf("bench load: create the writer's connector: status %d %v", st, err)
	}
	if st, _, _, _, err := c.do(http.MethodPost, "/_ref/connections", t.OwnerToken, []byte(`{"connector_id":"bench-load","connection_id":"cin_bench_load"}`)); err != nil || st >= 300 {
		return nil, fmt.Errorf("bench load: create the writer's connection: status %d %v", st, err)
	}

	windowStart := time.Now()
	before, err := c.cacheState()
	if err != nil {
		return nil, err
	}
	var (
		mu        sync.Mutex
		reads     []sample
		writes    []sample
		transport int
		events    int
	)
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for r := 0; r < o.Readers; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sample
			var failed int
			for ctx.Err() == nil {
				status, _, _, dur, err := c.do(http.MethodGet, "/_ref/connectors", t.OwnerToken, nil)
				if err != nil {
					failed++
					continue
				}
				local = append(local, sample{status, float64(dur.Microseconds()) / 1000})
			}
			mu.Lock()
			reads, transport = append(reads, local...), transport+failed
			mu.Unlock()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		stamp := time.Now().UnixNano()
		paced(ctx, o.WriteInterval, func(b int) {
			body := spineBatch("load", "cin_bench_load", stamp, b, o.BatchEvents)
			status, _, _, dur, err := c.do(http.MethodPost, "/_ref/spine/events", t.OwnerToken, body)
			mu.Lock()
			if err != nil {
				transport++
			} else {
				writes = append(writes, sample{status, float64(dur.Microseconds()) / 1000})
				if status == http.StatusOK {
					events += o.BatchEvents
				}
			}
			mu.Unlock()
		})
	}()
	wg.Wait()
	elapsed := time.Since(start)
	after, err := c.cacheState()
	if err != nil {
		return nil, err
	}
	window := time.Since(windowStart)

	rep.Seconds = math.Round(elapsed.Seconds()*1000) / 1000
	rep.Reads = summarise(reads, elapsed, rep.Statuses)
	rep.Writes = summarise(writes, elapsed, rep.Statuses)
	rep.Writes.Events = events
	rep.TransportErrors = transport
	for code, n := range rep.Statuses {
		if strings.HasPrefix(code, "5") {
			rep.FiveXX += n
		}
	}
	rep.PeakRSSBytes = peakRSS()
	rep.Cache = LoadCache{Enabled: before.Enabled, TTLSeconds: before.TTLSeconds}
	if before.Enabled && before.TTLSeconds > 0 {
		ttl := time.Duration(before.TTLSeconds * float64(time.Second))
		rep.Cache.Projections = after.Misses - before.Misses
		rep.Cache.TTLWindows = int(window/ttl) + 1
		rep.Cache.Revisions = rep.Writes.OK
		rep.Cache.Bound = rep.Cache.TTLWindows + rep.Cache.Revisions
		rep.Cache.ProjectionsPerWindow = math.Round(float64(rep.Cache.Projections)/float64(rep.Cache.TTLWindows)*1000) / 1000
	} else {
		// Without a cache every overview read is a projection of its own.
		rep.Cache.Projections = int64(rep.Reads.N)
	}
	return rep, nil
}

// paced calls fn(0) at once, even when ctx has ended already (so that a short run still
// measures each paced writer once), and fn(i) every interval after it until ctx ends; a call
// that takes longer than interval is followed at once by the next one.
func paced(ctx context.Context, interval time.Duration, fn func(i int)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i == 0 || ctx.Err() == nil; i++ {
		fn(i)
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// spineBatch is batch b of a writer: n new events of runs that complete (every tenth event
// ends its run), naming connectionID. tag and stamp keep the event and run ids of one writer
// apart from every other writer's and run's, so each batch has content of its own.
func spineBatch(tag, connectionID string, stamp int64, b, n int) []byte {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		typ := "run.progress"
		if i%10 == 9 {
			typ = "run.completed"
		}
		fmt.Fprintf(&sb, `{"event_id":"%s_%d_%d_%d","event_type":%q,"occurred_at":%q,"run_id":"%s_%d_%d_%d","connection_id":%q,"data":{"n":%d}}`,
			tag, stamp, b, i, typ, at, tag, stamp, b, i/10, connectionID, i)
	}
	sb.WriteString(`]}`)
	return []byte(sb.String())
}

// summarise folds the answers of one side into its figures and counts their statuses into
// statuses; a 2xx answer is ok, any other an error.
func summarise(s []sample, elapsed time.Duration, statuses map[string]int) LoadSide {
	var side LoadSide
	ms := make([]float64, 0, len(s))
	for _, x := range s {
		statuses[strconv.Itoa(x.status)]++
		if x.status/100 == 2 {
			side.OK++
		} else {
			side.Errors++
		}
		ms = append(ms, x.ms)
		side.Max = math.Max(side.Max, x.ms)
	}
	side.N = len(s)
	side.P50, side.P95, side.P99 = percentile(ms, 0.5), percentile(ms, 0.95), percentile(ms, 0.99)
	if elapsed > 0 {
		side.Rate = math.Round(float64(side.N)/elapsed.Seconds()*10) / 10
	}
	return side
}

// cacheStats is the part of /admin/summary-cache the load run reads.
type cacheStats struct {
	Enabled    bool    `json:"enabled"`
	TTLSeconds float64 `json:"ttl_seconds"`
	Misses     int64   `json:"misses"`
}

func (c *client) cacheState() (cacheStats, error) {
	var s cacheStats
	status, _, body, err := c.get("/admin/summary-cache", c.t.AdminToken)
	if err != nil || status != http.StatusOK {
		return s, fmt.Errorf("bench load: /admin/summary-cache: status %d %v", status, err)
	}
	return s, json.Unmarshal(body, &s)
}

func (c *client) get(path, token string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, c.t.Base+path, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// peakRSS is the process's peak resident set (VmHWM); the server runs in this process.
func peakRSS() int64 {
	return procStatus("/proc/self/status")["VmHWM"]
}

// procStatus reads the sizes (the "kB" lines) of a /proc/<pid>/status file in bytes; an
// unreadable file gives an empty map.
func procStatus(path string) map[string]int64 {
	sizes := map[string]int64{}
	raw, err := os.ReadFile(path)
	if err != nil {
		return sizes
	}
	for _, line := range strings.Split(string(raw), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			sizes[key] = kb * 1024
		}
	}
	return sizes
}

// Print writes the human summary.
func (r *LoadReport) Print(w io.Writer) {
	fmt.Fprintf(w, "connsum bench load — %d overview readers + 1 ingest writer for %.1f s on %s, profile %s (%s)\n",
		r.Readers, r.Seconds, r.Dialect, r.Profile, r.Machine)
	printSides(w, []namedSide{{"reads", r.Reads}, {"writes", r.Writes}})
	fmt.Fprintf(w, "events ingested %d; statuses %v; 5xx %d; transport errors %d; peak RSS %.1f MiB\n",
		r.Writes.Events, r.Statuses, r.FiveXX, r.TransportErrors, float64(r.PeakRSSBytes)/(1<<20))
	if r.Cache.Enabled {
		fmt.Fprintf(w, "cache ttl %.3g s: %d projections in %d TTL windows with %d writes (%.3g per window; bound: one per window and per write, %d)\n",
			r.Cache.TTLSeconds, r.Cache.Projections, r.Cache.TTLWindows, r.Cache.Revisions, r.Cache.ProjectionsPerWindow, r.Cache.Bound)
	} else {
		fmt.Fprintf(w, "cache off: every overview read is a projection (%d)\n", r.Cache.Projections)
	}
}

// namedSide is one row of a side table.
type namedSide struct {
	name string
	side LoadSide
}

// printSides writes the answers of each side as a table: counts, latency percentiles, rate.
func printSides(w io.Writer, sides []namedSide) {
	width := 8
	for _, s := range sides {
		width = max(width, len(s.name))
	}
	fmt.Fprintf(w, "%-*s %8s %8s %7s %9s %9s %9s %9s %9s\n", width, "side", "n", "ok", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "rate/s")
	for _, s := range sides {
		fmt.Fprintf(w, "%-*s %8d %8d %7d %9.3f %9.3f %9.3f %9.3f %9.1f\n", width, s.name, s.side.N, s.side.OK, s.side.Errors,
			s.side.P50, s.side.P95, s.side.P99, s.side.Max, s.side.Rate)
	}
}
