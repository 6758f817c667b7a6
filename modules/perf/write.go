package perf

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"connsum/modules/bootstrap"
)

// WriteSchema names the version of the `bench write` JSON.
const WriteSchema = "connsum.bench.write/v1"

// The writer classes of `bench write`, as named in its report.
const (
	ClassIngest   = "ingest"
	ClassCatalog  = "catalog"
	ClassRetained = "retained"
)

// The connector and connections `bench write` writes to: ingest writer i posts the runs of
// connection writeConnection(i); the catalog writer re-PUTs the connector and creates new
// connections of it (so every catalog write is an attribution write of the same connector the
// runs belong to), and the retained writers PUT one stream each of connection 0.
const (
	writeConnector = "bench-write"
	writeManifest  = `{"display_name":"Bench write","version":"1.%d.0","streams":[{"name":"stream_0"}]}`
)

func writeConnection(i int) string { return "cin_bench_write_" + strconv.Itoa(i) }

// WriteOptions says what `bench write` runs. Each phase lasts Duration, or ends earlier when
// every ingest writer has posted Batches batches (0: no bound but Duration).
type WriteOptions struct {
	Writers         int           // concurrent ingest clients of the concurrent phase
	BatchEvents     int           // events per ingest batch
	Duration        time.Duration // upper bound of each phase
	Batches         int           // batches per ingest writer and phase; 0 is no bound
	CatalogRate     float64       // catalog writes per second (connector PUTs and connection creates, alternating)
	RetainedWriters int           // clients PUTting retained figures, one stream each, of one connection
	RetainedRate    float64       // PUTs per second of each retained writer
	Memory          MemoryOptions // the backend-memory checkpoints that follow (PostgreSQL only)
}

// WriteClass is what one class of writers saw in a phase: the answers' figures and statuses.
type WriteClass struct {
	Class   string `json:"class"`
	Writers int    `json:"writers"`
	LoadSide
	Statuses map[string]int `json:"statuses"`
}

// WritePhase is one phase of `bench write`: Writers ingest clients (and, in the concurrent
// phase, the catalog and retained writers beside them). Seconds runs until the last ingest
// writer finished; EventsPerS and BatchesPerS are the events and batches the server
// acknowledged over that time, all ingest writers together.
type WritePhase struct {
	Name            string       `json:"name"`
	Writers         int          `json:"writers"`
	Seconds         float64      `json:"seconds"`
	Events          int          `json:"events"`
	EventsPerS      float64      `json:"events_per_s"`
	BatchesPerS     float64      `json:"batches_per_s"`
	TransportErrors int          `json:"transport_errors"`
	Classes         []WriteClass `json:"classes"`
}

// class returns the phase's figures of one writer class, or the zero value.
func (p WritePhase) class(name string) WriteClass {
	for _, c := range p.Classes {
		if c.Class == name {
			return c
		}
	}
	return WriteClass{Class: name}
}

// WriteReport is the `bench write` JSON.
type WriteReport struct {
	Schema      string  `json:"schema"`
	Profile     string  `json:"profile"`
	Dialect     string  `json:"dialect"`
	At          string  `json:"at"`
	Machine     string  `json:"machine"`
	BatchEvents int     `json:"batch_events"`
	CatalogRate float64 `json:"catalog_rate_per_s"`
	// Single is one ingest writer alone: the reference rate. Concurrent is the Writers ingest
	// writers with the catalog and retained writers running beside them.
	Single     WritePhase `json:"single"`
	Concurrent WritePhase `json:"concurrent"`
	// Ratio is the concurrent phase's events/s over the single writer's.
	Ratio float64 `json:"concurrent_over_single"`
	// Statuses counts the answers of both phases; FiveXX, Conflicts and OtherErrors are the
	// 5xx, the 409 and any other non-2xx among them.
	Statuses        map[string]int `json:"statuses"`
	FiveXX          int            `json:"status_5xx"`
	Conflicts       int            `json:"status_409"`
	OtherErrors     int            `json:"status_other_non_2xx"`
	TransportErrors int            `json:"transport_errors"`
	PeakRSSBytes    int64          `json:"peak_rss_bytes"`
	Memory          MemoryReport   `json:"backend_memory"`
}

// WriteMain runs `connsum bench write`.
func WriteMain(args []string, stdout, stderr io.Writer, start Starter) error {
	fs := flag.NewFlagSet("bench write", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("db", "sqlite:./data/bench-write.db", "database URL (seeded with the profile when empty)")
	profile := fs.String("profile", "demo", "data profile seeded into an empty database: demo, live or fleet")
	writers := fs.Int("writers", 4, "concurrent ingest clients of the concurrent phase")
	batch := fs.Int("batch", 1000, "events per ingest batch")
	seconds := fs.Float64("seconds", 10, "upper bound of each phase (single writer, then concurrent writers)")
	batches := fs.Int("batches", 0, "batches per ingest writer and phase (0: bounded by --seconds only)")
	catalogRate := fs.Float64("catalog-rate", 5, "catalog writes per second beside the ingest writers (connector PUTs and connection creates)")
	retained := fs.Int("retained-writers", 2, "clients PUTting retained figures of one connection, one stream each")
	retainedRate := fs.Float64("retained-rate", 20, "retained PUTs per second of each retained writer")
	checkpoints := fs.String("memory-checkpoints", "0,50,100,200,250", "batch counts after which the service's database backend's memory is read (PostgreSQL; empty skips)")
	memBatch := fs.Int("memory-batch", 1000, "events per batch of the memory checkpoints")
	jsonOut := fs.String("json", "", "write the JSON report here")
	compare := fs.String("compare", "", "an earlier `bench write` JSON report to compare with")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cps, err := parseCheckpoints(*checkpoints)
	if err != nil {
		return err
	}
	o := WriteOptions{Writers: *writers, BatchEvents: *batch, Duration: time.Duration(*seconds * float64(time.Second)),
		Batches: *batches, CatalogRate: *catalogRate, RetainedWriters: *retained, RetainedRate: *retainedRate,
		Memory: MemoryOptions{Checkpoints: cps, BatchEvents: *memBatch}}
	if o.Writers < 1 || o.BatchEvents < 1 || o.BatchEvents > 5000 || o.Duration <= 0 || o.Batches < 0 ||
		o.CatalogRate < 0 || o.RetainedWriters < 0 || o.RetainedRate <= 0 || o.Memory.BatchEvents < 1 || o.Memory.BatchEvents > 5000 {
		return errors.New("bench write: --writers must be at least 1, --batch and --memory-batch from 1 to 5000, --seconds and --retained-rate positive, --batches, --catalog-rate and --retained-writers not negative")
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
	rep, err := RunWrite(ctx, t, string(d), *profile, o)
	if err != nil {
		return err
	}
	rep.Print(stdout)
	if *compare != "" {
		if err := rep.Compare(*compare, stdout); err != nil {
			return err
		}
	}
	if err := writeJSON(*jsonOut, rep); err != nil {
		return err
	}
	return rep.Check()
}

// parseCheckpoints reads "0,50,100" into ascending, distinct batch counts.
func parseCheckpoints(s string) ([]int, error) {
	var cps []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bench write: --memory-checkpoints: %q is no batch count", p)
		}
		cps = append(cps, n)
	}
	sort.Ints(cps)
	out := cps[:0]
	for i, n := range cps {
		if i == 0 || n != cps[i-1] {
			out = append(out, n)
		}
	}
	return out, nil
}

// Check turns the report into the pass/fail of a run: every answer 2xx (a 5xx or a 409 from
// racing writers is a defect), no transport error, and a flat backend memory where measured.
func (r *WriteReport) Check() error {
	var problems []string
	for _, p := range []struct {
		n    int
		what string
	}{{r.FiveXX, "answers were 5xx"}, {r.Conflicts, "answers were 409"}, {r.OtherErrors, "answers were another non-2xx"},
		{r.TransportErrors, "requests failed in transport"}} {
		if p.n > 0 {
			problems = append(problems, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	switch {
	case r.Memory.Error != "":
		problems = append(problems, "backend memory: "+r.Memory.Error)
	case r.Memory.Applies && !r.Memory.Flat:
		problems = append(problems, "backend memory grew: "+r.Memory.Verdict)
	}
	if len(problems) > 0 {
		return errors.New("bench write: " + strings.Join(problems, "; "))
	}
	return nil
}

// RunWrite measures ingest throughput against t: one ingest writer alone, then o.Writers
// ingest writers with the catalog and retained writers beside them, then (PostgreSQL, with the
// service in process) the memory of the service's database backend after o.Memory's batches.
func RunWrite(ctx context.Context, t *Target, dialect, profile string, o WriteOptions) (*WriteReport, error) {
	clients := o.Writers + o.RetainedWriters + 2
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &client{t: t, http: &http.Client{Timeout: 60 * time.Second, Transport: tr}}
	rep := &WriteReport{Schema: WriteSchema, Profile: profile, Dialect: dialect, At: time.Now().UTC().Format(time.RFC3339),
		Machine: machine(), BatchEvents: o.BatchEvents, CatalogRate: o.CatalogRate, Statuses: map[string]int{}}

	if st, _, _, _, err := c.do(http.MethodPut, "/_ref/connectors/"+writeConnector, t.OwnerToken, fmt.Appendf(nil, writeManifest, 0)); err != nil || st >= 300 {
		return nil, fmt.Errorf("bench write: create the writers' connector: status %d %v", st, err)
	}
	for i := 0; i < o.Writers; i++ {
		body := fmt.Appendf(nil, `{"connector_id":%q,"connection_id":%q,"source_binding_key":"writer_%d"}`, writeConnector, writeConnection(i), i)
		if st, _, _, _, err := c.do(http.MethodPost, "/_ref/connections", t.OwnerToken, body); err != nil || st >= 300 {
			return nil, fmt.Errorf("bench write: create connection %s: status %d %v", writeConnection(i), st, err)
		}
	}

	stamp := time.Now().UnixNano()
	rep.Single = runWritePhase(ctx, c, o, "single", 1, false, stamp)
	rep.Concurrent = runWritePhase(ctx, c, o, "concurrent", o.Writers, true, stamp)
	if rep.Single.EventsPerS > 0 {
		rep.Ratio = math.Round(rep.Concurrent.EventsPerS/rep.Single.EventsPerS*1000) / 1000
	}
	for _, p := range []WritePhase{rep.Single, rep.Concurrent} {
		rep.TransportErrors += p.TransportErrors
		for _, cl := range p.Classes {
			for code, n := range cl.Statuses {
				rep.Statuses[code] += n
				switch {
				case code == "409":
					rep.Conflicts += n
				case strings.HasPrefix(code, "5"):
					rep.FiveXX += n
				case !strings.HasPrefix(code, "2"):
					rep.OtherErrors += n
				}
			}
		}
	}
	rep.Memory = *RunMemory(ctx, c, t.DB, dialect, o.Memory)
	rep.PeakRSSBytes = peakRSS()
	return rep, nil
}

// runWritePhase runs ingest writers (and with others the catalog and retained writers) until
// o.Duration has passed or every ingest writer has posted o.Batches batches.
func runWritePhase(ctx context.Context, c *client, o WriteOptions, name string, writers int, others bool, stamp int64) WritePhase {
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	var (
		mu        sync.Mutex
		samples   = map[string][]sample{}
		transport int
		events    int
	)
	record := func(class string, local []sample, failed, accepted int) {
		mu.Lock()
		defer mu.Unlock()
		samples[class] = append(samples[class], local...)
		transport += failed
		events += accepted
	}
	// call posts one request and keeps its answer in local; a transport error counts apart.
	call := func(local *[]sample, failed *int, method, path string, body []byte) int {
		status, _, _, dur, err := c.do(method, path, c.t.OwnerToken, body)
		if err != nil {
			*failed++
			return 0
		}
		*local = append(*local, sample{status, float64(dur.Microseconds()) / 1000})
		return status
	}

	start := time.Now()
	var ingest, side sync.WaitGroup
	for w := 0; w < writers; w++ {
		ingest.Add(1)
		go func() {
			defer ingest.Done()
			var local []sample
			var failed, accepted int
			tag := fmt.Sprintf("write_%s%d", name, w)
			for b := 0; ctx.Err() == nil && (o.Batches == 0 || b < o.Batches); b++ {
				body := spineBatch(tag, writeConnection(w), stamp, b, o.BatchEvents)
				if call(&local, &failed, http.MethodPost, "/_ref/spine/events", body) == http.StatusOK {
					accepted += o.BatchEvents
				}
			}
			record(ClassIngest, local, failed, accepted)
		}()
	}
	if others && o.CatalogRate > 0 {
		side.Add(1)
		go func() {
			defer side.Done()
			var local []sample
			var failed int
			paced(ctx, time.Duration(float64(time.Second)/o.CatalogRate), func(i int) {
				if i%2 == 0 {
					call(&local, &failed, http.MethodPut, "/_ref/connectors/"+writeConnector, fmt.Appendf(nil, writeManifest, i+1))
				} else {
					body := fmt.Appendf(nil, `{"connector_id":%q,"source_binding_key":"%s_%d_%d"}`, writeConnector, name, stamp, i)
					call(&local, &failed, http.MethodPost, "/_ref/connections", body)
				}
			})
			record(ClassCatalog, local, failed, 0)
		}()
	}
	for r := 0; others && r < o.RetainedWriters; r++ {
		side.Add(1)
		go func() {
			defer side.Done()
			var local []sample
			var failed int
			path := fmt.Sprintf("/_ref/connections/%s/retained/stream_%d", writeConnection(0), r)
			paced(ctx, time.Duration(float64(time.Second)/o.RetainedRate), func(i int) {
				body := fmt.Appendf(nil, `{"record_count":%d,"record_json_bytes":%d,"record_changes_count":%d,"record_changes_json_bytes":%d,"blob_count":%d,"blob_bytes":%d}`,
					i, i*512, i/2, i*64, i/10, i*4096)
				call(&local, &failed, http.MethodPut, path, body)
			})
			record(ClassRetained, local, failed, 0)
		}()
	}
	ingest.Wait()
	elapsed := time.Since(start)
	cancel()
	side.Wait()

	p := WritePhase{Name: name, Writers: writers, Seconds: math.Round(elapsed.Seconds()*1000) / 1000, Events: events, TransportErrors: transport}
	counts := map[string]int{ClassIngest: writers}
	if others {
		counts[ClassRetained] = o.RetainedWriters
		if o.CatalogRate > 0 {
			counts[ClassCatalog] = 1
		}
	}
	for _, class := range []string{ClassIngest, ClassCatalog, ClassRetained} {
		if counts[class] == 0 {
			continue
		}
		cl := WriteClass{Class: class, Writers: counts[class], Statuses: map[string]int{}}
		cl.LoadSide = summarise(samples[class], elapsed, cl.Statuses)
		if class == ClassIngest {
			cl.Events = events
			if elapsed > 0 {
				p.BatchesPerS = math.Round(float64(cl.OK)/elapsed.Seconds()*10) / 10
				p.EventsPerS = math.Round(float64(events) / elapsed.Seconds())
			}
		}
		p.Classes = append(p.Classes, cl)
	}
	return p
}

// Print writes the human summary.
func (r *WriteReport) Print(w io.Writer) {
	fmt.Fprintf(w, "connsum bench write — batches of %d events on %s, profile %s (%s)\n", r.BatchEvents, r.Dialect, r.Profile, r.Machine)
	fmt.Fprintf(w, "%-11s %7s %8s %9s %10s %10s\n", "phase", "writers", "seconds", "events", "events/s", "batches/s")
	for _, p := range []WritePhase{r.Single, r.Concurrent} {
		fmt.Fprintf(w, "%-11s %7d %8.2f %9d %10.0f %10.1f\n", p.Name, p.Writers, p.Seconds, p.Events, p.EventsPerS, p.BatchesPerS)
	}
	fmt.Fprintf(w, "concurrent / single: %.2f× (%d ingest writers, catalog writes at %g/s, %d retained writers beside them)\n",
		r.Ratio, r.Concurrent.Writers, r.CatalogRate, r.Concurrent.class(ClassRetained).Writers)
	var sides []namedSide
	for _, p := range []WritePhase{r.Single, r.Concurrent} {
		for _, cl := range p.Classes {
			sides = append(sides, namedSide{p.Name + " " + cl.Class, cl.LoadSide})
		}
	}
	printSides(w, sides)
	fmt.Fprintf(w, "statuses %v; 5xx %d; 409 %d; other non-2xx %d; transport errors %d; peak RSS of this process %.1f MiB\n",
		r.Statuses, r.FiveXX, r.Conflicts, r.OtherErrors, r.TransportErrors, float64(r.PeakRSSBytes)/(1<<20))
	r.Memory.Print(w)
}

// Compare prints the change of the throughput and of each class's p50 against an earlier report.
func (r *WriteReport) Compare(path string, w io.Writer) error {
	var old WriteReport
	if err := readJSON(path, &old); err != nil {
		return err
	}
	var changes []change
	for _, p := range [][2]WritePhase{{old.Single, r.Single}, {old.Concurrent, r.Concurrent}} {
		was, now := p[0], p[1]
		changes = append(changes, change{name: now.Name + " events/s", old: was.EventsPerS, cur: now.EventsPerS, unit: "events/s"})
		for _, cl := range now.Classes {
			changes = append(changes, change{name: now.Name + " " + cl.Class + " p50", old: was.class(cl.Class).P50, cur: cl.P50, unit: "ms"})
		}
	}
	if last, ok := r.Memory.last(); ok {
		if was, ok := old.Memory.last(); ok && was.Batches == last.Batches {
			changes = append(changes, change{name: fmt.Sprintf("backend memory at %d", last.Batches),
				old: mib(was.ContextBytes), cur: mib(last.ContextBytes), unit: "MiB"})
		}
	}
	printChanges(w, "change against "+path, changes)
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
