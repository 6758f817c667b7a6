package perf

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"connsum/modules/bootstrap"
)

// LiveSchema is the `bench live` JSON schema.
const LiveSchema = "connsum.bench.live/v1"

// LiveReport is the `bench live` JSON: how long a write takes to reach the change stream's
// subscribers (on the replica that took the write, and on another one against the same
// PostgreSQL), what a 304 costs, and the memory of a subscriber.
type LiveReport struct {
	Schema      string  `json:"schema"`
	Dialect     string  `json:"dialect"`
	Profile     string  `json:"profile"`
	Machine     string  `json:"machine"`
	Replicas    int     `json:"replicas"`
	Subscribers int     `json:"subscribers"`
	Seconds     float64 `json:"seconds"`
	Probes      int     `json:"probes"`
	// SameReplica and CrossReplica are write-to-subscriber latencies in ms, from the moment the
	// probe write was sent (its commit is a little later; the event often arrives before the
	// write's own answer) to an event carrying it (or a later probe: the stream coalesces) at each
	// subscriber; CrossReplica is empty on SQLite (single-process).
	SameReplica  LoadSide `json:"same_replica"`
	CrossReplica LoadSide `json:"cross_replica"`
	// SameReplicaAfterAnswer and CrossReplicaAfterAnswer are the same deliveries measured from
	// the write's answer instead (negative when the event arrived first): what the stream adds
	// to a write the client already saw commit.
	SameReplicaAfterAnswer  LoadSide `json:"same_replica_after_answer"`
	CrossReplicaAfterAnswer LoadSide `json:"cross_replica_after_answer"`
	// Missed counts (probe, subscriber) pairs that never arrived.
	Missed int `json:"missed"`
	// IngestEvents were appended by the writer running alongside.
	IngestEvents int `json:"ingest_events"`
	// NotModifiedServerMs and NotModifiedClientMs are the p50 of a 304 (Server-Timing's
	// revision stage, and the client's round trip).
	NotModifiedServerMs float64 `json:"not_modified_server_ms"`
	NotModifiedClientMs float64 `json:"not_modified_client_ms"`
	// HeapPerSubscriberBytes is the Go heap grown per open stream, client and server side both
	// (the service runs in this process).
	HeapPerSubscriberBytes int64 `json:"heap_per_subscriber_bytes"`
}

// LiveMain runs `connsum bench live`.
func LiveMain(args []string, stdout, stderr io.Writer, start Starter) error {
	fs := flag.NewFlagSet("bench live", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("db", "sqlite:./data/bench-live.db", "database URL (seeded with the profile when empty); PostgreSQL runs two replicas")
	profile := fs.String("profile", "demo", "data profile seeded into an empty database: demo, live or fleet")
	subscribers := fs.Int("subscribers", 64, "open streams (split over the replicas)")
	seconds := fs.Float64("seconds", 10, "duration of the run")
	rate := fs.Float64("probes-per-second", 10, "probe writes per second")
	batch := fs.Int("batch", 100, "events per ingest batch of the writer running alongside (0: none)")
	jsonOut := fs.String("json", "", "write the JSON report here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *subscribers < 1 || *seconds <= 0 || *rate <= 0 || *batch < 0 || *batch > 5000 {
		return errors.New("bench live: --subscribers at least 1, --seconds and --probes-per-second positive, --batch 0..5000")
	}
	ctx := context.Background()
	if _, err := SeedIfEmpty(ctx, *dbURL, *profile, 1, stdout); err != nil {
		return err
	}
	d, _, _ := bootstrap.ParseURL(*dbURL)
	var targets []*Target
	for i := 0; i < map[bool]int{true: 2, false: 1}[d == bootstrap.Postgres]; i++ {
		t, err := start(ctx, *dbURL)
		if err != nil {
			return err
		}
		defer t.Stop()
		targets = append(targets, t)
	}
	rep, err := RunLive(ctx, targets, string(d), *profile, *subscribers, time.Duration(*seconds*float64(time.Second)), *rate, *batch)
	if err != nil {
		return err
	}
	rep.Print(stdout)
	if err := writeJSON(*jsonOut, rep); err != nil {
		return err
	}
	if rep.Missed > 0 {
		return fmt.Errorf("bench live: %d probe deliveries never arrived", rep.Missed)
	}
	return nil
}

var probeName = regexp.MustCompile(`"display_name":"bench-probe-(\d+)"`)

// liveSubscriber is one open stream: when it first saw each probe number.
type liveSubscriber struct {
	replica int
	mu      sync.Mutex
	seen    map[int]time.Time
}

// RunLive measures write-to-subscriber latency: subscribers stream from every target, a probe
// writer renames one connection (on the first target) rate times a second while an ingest writer
// appends batches, and each subscriber notes when each probe's name reached it.
func RunLive(ctx context.Context, targets []*Target, dialect, profile string, subscribers int, d time.Duration, rate float64, batch int) (*LiveReport, error) {
	a := &client{t: targets[0], http: &http.Client{Timeout: 30 * time.Second}}
	tok := targets[0].OwnerToken
	for _, w := range []struct{ method, path, body string }{
		{http.MethodPut, "/_ref/connectors/bench-live", `{"display_name":"Bench live"}`},
		{http.MethodPost, "/_ref/connections", `{"connector_id":"bench-live","connection_id":"cin_bench_live","source_binding_key":"probe"}`},
		{http.MethodPost, "/_ref/connections", `{"connector_id":"bench-live","connection_id":"cin_bench_live_ingest","source_binding_key":"ingest"}`},
	} {
		if st, _, _, _, err := a.do(w.method, w.path, tok, []byte(w.body)); err != nil || st >= 300 {
			return nil, fmt.Errorf("bench live: %s %s: status %d %v", w.method, w.path, st, err)
		}
	}
	// 304 cost, before the streams open (an idle service).
	var server, rtt []float64
	for i := 0; i < 200; i++ {
		_, _, hdr, _, err := a.do(http.MethodGet, "/_ref/connectors", tok, nil)
		if err != nil {
			return nil, err
		}
		req, _ := http.NewRequest(http.MethodGet, targets[0].Base+"/_ref/connectors", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("If-None-Match", hdr.Get("ETag"))
		t0 := time.Now()
		resp, err := a.http.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotModified {
			rtt = append(rtt, float64(time.Since(t0).Microseconds())/1000)
			if v, ok := strings.CutPrefix(resp.Header.Get("Server-Timing"), "revision;dur="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					server = append(server, f)
				}
			}
		}
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	subs := make([]*liveSubscriber, subscribers)
	var ready sync.WaitGroup
	var streams sync.WaitGroup
	for i := range subs {
		s := &liveSubscriber{replica: i % len(targets), seen: map[int]time.Time{}}
		subs[i] = s
		ready.Add(1)
		streams.Add(1)
		go func() {
			defer streams.Done()
			s.follow(sctx, targets[s.replica], &ready)
		}()
	}
	ready.Wait()
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	// The ingest writer.
	ingested := 0
	var writer sync.WaitGroup
	wctx, wstop := context.WithTimeout(sctx, d)
	defer wstop()
	if batch > 0 {
		writer.Add(1)
		go func() {
			defer writer.Done()
			for n := 0; wctx.Err() == nil; n++ {
				var b strings.Builder
				b.WriteString(`{"events":[`)
				for i := 0; i < batch; i++ {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"event_type":"run.started","occurred_at":%q,"run_id":"bench-live-%d-%d","source_kind":"connector","source_id":"bench-live","connection_id":"cin_bench_live_ingest"}`,
						time.Now().UTC().Format(time.RFC3339Nano), n, i)
				}
				b.WriteString("]}")
				if st, _, _, _, err := a.do(http.MethodPost, "/_ref/spine/events", tok, []byte(b.String())); err == nil && st == 200 {
					ingested += batch
				}
			}
		}()
	}
	// The probes.
	sent, answered := map[int]time.Time{}, map[int]time.Time{}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	n := 0
	for wctx.Err() == nil {
		<-tick.C
		n++
		sent[n] = time.Now()
		st, _, _, _, err := a.do(http.MethodPatch, "/_ref/connections/cin_bench_live", tok, []byte(fmt.Sprintf(`{"display_name":"bench-probe-%d"}`, n)))
		if err != nil || st != 200 {
			return nil, fmt.Errorf("bench live: probe %d: status %d %v", n, st, err)
		}
		answered[n] = time.Now()
	}
	tick.Stop()
	writer.Wait()
	// Let the last probes arrive (bounded), then close the streams.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !allSeen(subs, n) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	streams.Wait()
	rep := &LiveReport{Schema: LiveSchema, Dialect: dialect, Profile: profile, Machine: machine(), Replicas: len(targets),
		Subscribers: subscribers, Seconds: d.Seconds(), Probes: n, IngestEvents: ingested,
		NotModifiedServerMs: percentile(server, 0.5), NotModifiedClientMs: percentile(rtt, 0.5),
		HeapPerSubscriberBytes: int64(m1.HeapInuse-m0.HeapInuse) / int64(subscribers)}
	if m1.HeapInuse < m0.HeapInuse {
		rep.HeapPerSubscriberBytes = 0
	}
	var same, cross, sameA, crossA []float64
	for _, s := range subs {
		for p := 1; p <= n; p++ {
			at, ok := s.firstAtLeast(p)
			if !ok {
				rep.Missed++
				continue
			}
			ms := float64(at.Sub(sent[p]).Microseconds()) / 1000
			msA := float64(at.Sub(answered[p]).Microseconds()) / 1000
			if s.replica == 0 {
				same, sameA = append(same, ms), append(sameA, msA)
			} else {
				cross, crossA = append(cross, ms), append(crossA, msA)
			}
		}
	}
	rep.SameReplica, rep.CrossReplica = latencySide(same, d), latencySide(cross, d)
	rep.SameReplicaAfterAnswer, rep.CrossReplicaAfterAnswer = latencySide(sameA, d), latencySide(crossA, d)
	return rep, nil
}

func latencySide(ms []float64, d time.Duration) LoadSide {
	s := LoadSide{N: len(ms), OK: len(ms), P50: percentile(ms, 0.5), P95: percentile(ms, 0.95), P99: percentile(ms, 0.99), Max: percentile(ms, 1)}
	if d > 0 {
		s.Rate = float64(len(ms)) / d.Seconds()
	}
	return s
}

func allSeen(subs []*liveSubscriber, n int) bool {
	for _, s := range subs {
		if _, ok := s.firstAtLeast(n); !ok {
			return false
		}
	}
	return true
}

// firstAtLeast is when the subscriber first saw probe p or a later one (the stream sends an
// item's latest state: a probe overtaken before delivery arrives as the later one).
func (s *liveSubscriber) firstAtLeast(p int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for q, at := range s.seen {
		if q >= p && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// follow reads one stream until ctx ends, noting the probes it carries.
func (s *liveSubscriber) follow(ctx context.Context, t *Target, ready *sync.WaitGroup) {
	once := sync.OnceFunc(ready.Done)
	defer once()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.Base+"/_ref/connectors/stream?connector_id=bench-live", nil)
	req.Header.Set("Authorization", "Bearer "+t.OwnerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), 1<<20) // grows to the largest event; small while idle
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("event: revision")) {
			once()
		}
		if m := probeName.FindSubmatch(line); m != nil {
			p, _ := strconv.Atoi(string(m[1]))
			now := time.Now()
			s.mu.Lock()
			if _, ok := s.seen[p]; !ok {
				s.seen[p] = now
			}
			s.mu.Unlock()
		}
	}
}

// Print writes the human summary.
func (r *LiveReport) Print(w io.Writer) {
	fmt.Fprintf(w, "connsum bench live — %d subscribers on %d replica(s), %d probe writes in %.1f s with %d events ingested alongside, %s, profile %s (%s)\n",
		r.Subscribers, r.Replicas, r.Probes, r.Seconds, r.IngestEvents, r.Dialect, r.Profile, r.Machine)
	sides := []namedSide{{"same replica, from the write sent", r.SameReplica}, {"same replica, from its answer", r.SameReplicaAfterAnswer}}
	if r.Replicas > 1 {
		sides = append(sides, namedSide{"across replicas, from the write sent", r.CrossReplica},
			namedSide{"across replicas, from its answer", r.CrossReplicaAfterAnswer})
	}
	printSides(w, sides)
	fmt.Fprintf(w, "write-to-subscriber targets: p50 ≤ 20 ms, p99 ≤ 250 ms across replicas; missed %d\n", r.Missed)
	fmt.Fprintf(w, "304: server %.3f ms (target ≤ 0.3), client round trip %.3f ms; heap per subscriber %.1f KiB\n",
		r.NotModifiedServerMs, r.NotModifiedClientMs, float64(r.HeapPerSubscriberBytes)/1024)
}
