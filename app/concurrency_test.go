package app

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/runs/runstest"
)

// stressDuration is how long the concurrent writers of TestConcurrentWritersKeepReadModelEqualToLog
// run: a short form by default (CI), longer with CONNSUM_STRESS_DURATION=30s.
func stressDuration(t *testing.T) time.Duration {
	if v := os.Getenv("CONNSUM_STRESS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONNSUM_STRESS_DURATION: %v", err)
		}
		return d
	}
	return 2 * time.Second
}

// stressWorld is the owner the concurrent writers share: connectors whose browser profile key
// changes while runs are ingested, siblings, a draft shell, and connections that are created
// (with client-given ids) while their runs are being ingested.
type stressWorld struct {
	connectors []string
	present    map[string][]string // connector → connections created before the writers start
	late       map[string][]string // connector → connections the catalog writer creates mid-run
	keys       map[string][]string // connector → the profile keys its manifest switches between ("" for none)
}

func newStressWorld() *stressWorld {
	return &stressWorld{
		connectors: []string{"amazon", "chase", "gmail"},
		present: map[string][]string{
			"amazon": {"cin_amz_0", "cin_amz_1", "cin_amz_draft"},
			"chase":  {"cin_chase_0", "cin_chase_1"},
			"gmail":  {"cin_gmail_0"},
		},
		late: map[string][]string{
			"amazon": {"cin_amz_late_0", "cin_amz_late_1", "cin_amz_late_2"},
			"chase":  {"cin_chase_late_0"},
			"gmail":  {"cin_gmail_late_0", "cin_gmail_late_1"},
		},
		keys: map[string][]string{"amazon": {"amz-a", "amz-b"}, "chase": {""}, "gmail": {""}},
	}
}

func (w *stressWorld) all(connector string) []string {
	return append(append([]string{}, w.present[connector]...), w.late[connector]...)
}

func manifestWithKey(connector, key string) string {
	if key == "" {
		return fmt.Sprintf(`{"display_name":%q}`, connector)
	}
	return fmt.Sprintf(`{"display_name":%q,"capabilities":{"browser_surface":{"profile_key":%q}}}`, connector, key)
}

// stressIngest generates the batches of one ingest writer: runs spread over batches (started in
// one, terminal in a later one), browser runs carrying either of the connector's keys (so a key
// change re-attributes them), explicit-id runs for connections that may not exist yet, events
// without a source, and exact re-posts of earlier batches.
type stressIngest struct {
	w       *stressWorld
	rng     *rand.Rand
	writer  int
	batches int
	events  int
	open    []map[string]any // the started runs of this writer that have no terminal event yet
	sent    [][]byte
}

var stressT0 = time.Date(2026, 1, 5, 8, 0, 0, 0, time.UTC)

func (g *stressIngest) runEvent(runID, connector, owner, typ string, evidence func(e, data map[string]any)) map[string]any {
	g.events++
	e := map[string]any{"event_id": fmt.Sprintf("w%d_e%d", g.writer, g.events), "event_type": typ,
		"occurred_at": stressT0.Add(time.Duration(g.rng.Intn(72*3600)) * time.Second).Format(time.RFC3339Nano),
		"run_id":      runID}
	data := map[string]any{}
	switch g.rng.Intn(10) {
	case 0: // no source: derived from the connection it names when that exists (SPEC §1.4)
		e["connection_id"] = owner
	default:
		e["source_kind"], e["source_id"] = "connector", connector
		evidence(e, data)
	}
	if typ == "run.failed" {
		data["reason"] = []string{"login_required", "rate_limited"}[g.rng.Intn(2)]
	}
	if len(data) > 0 {
		e["data"] = data
	}
	return e
}

func (g *stressIngest) next() []byte {
	if len(g.sent) > 0 && g.rng.Intn(8) == 0 {
		return g.sent[g.rng.Intn(len(g.sent))] // a re-post: every event a duplicate
	}
	var batch []map[string]any
	// Finish some runs started in earlier batches.
	for len(g.open) > 0 && g.rng.Intn(2) == 0 {
		o := g.open[0]
		g.open = g.open[1:]
		typ := []string{"run.completed", "run.failed", "run.completed"}[g.rng.Intn(3)]
		batch = append(batch, g.runEvent(o["run_id"].(string), o["connector"].(string), o["owner"].(string), typ, o["evidence"].(func(e, data map[string]any))))
	}
	for n := 5 + g.rng.Intn(20); n > 0; n-- {
		connector := g.w.connectors[g.rng.Intn(len(g.w.connectors))]
		owners := g.w.all(connector)
		owner := owners[g.rng.Intn(len(owners))]
		g.batches++
		runID := fmt.Sprintf("w%d_r%d_%d", g.writer, g.batches, n)
		keys := g.w.keys[connector]
		key := keys[g.rng.Intn(len(keys))]
		browser := connector != "gmail" && g.rng.Intn(3) != 0
		evidence := func(e, data map[string]any) {
			switch {
			case browser:
				base := connector
				if key != "" {
					base = key
				}
				data["browser_surface"] = map[string]any{"pending_run_id": runID, "browser_surface_profile_key": base + ":" + owner,
					"browser_surface_status": "leased"}
			case g.rng.Intn(6) == 0: // no connection evidence at all
			case g.rng.Intn(2) == 0:
				e["connector_instance_id"] = owner
			default:
				e["connection_id"] = owner
			}
		}
		batch = append(batch, g.runEvent(runID, connector, owner, "run.started", evidence))
		if g.rng.Intn(2) == 0 {
			g.open = append(g.open, map[string]any{"run_id": runID, "connector": connector, "owner": owner, "evidence": evidence})
		} else {
			batch = append(batch, g.runEvent(runID, connector, owner, []string{"run.completed", "run.failed"}[g.rng.Intn(2)], evidence))
		}
	}
	body, _ := json.Marshal(map[string]any{"events": batch})
	g.sent = append(g.sent, body)
	return body
}

// stressLog collects every answer that was neither the success nor a 4xx the SPEC defines for it.
type stressLog struct {
	mu     sync.Mutex
	counts map[string]int
	bad    []string
}

func (l *stressLog) record(what string, r *response, ok ...int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[fmt.Sprintf("%s %d", what, r.status)]++
	for _, s := range ok {
		if r.status == s {
			return
		}
	}
	if len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf("%s = %d %.300s", what, r.status, r.body))
	}
}

// TestConcurrentWritersKeepReadModelEqualToLog is the concurrency property of SPEC §4.8 on both
// engines: ingest writers, a catalog writer (late connection creates with client-given ids,
// profile-key switches, PATCHes) and retained writers (several streams of one connection at
// once) interleave for a bounded time. Every answer must be the success answer; afterwards the
// read model equals a rebuild from the log and the unlimited spine fold for every connection, and
// every retained connection row equals the sums of its streams.
func TestConcurrentWritersKeepReadModelEqualToLog(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startApp(t, dbURL, Tokens{Owner: testOwnerToken, Admin: testAdminToken}, map[string]string{"summary.cache.ttl": "0"})
		c := newNetClient(t, h.addr)
		w := newStressWorld()
		log := &stressLog{counts: map[string]int{}}
		for _, k := range w.connectors {
			log.record("PUT connector", c.call("PUT", "/_ref/connectors/"+k, "", []byte(manifestWithKey(k, w.keys[k][0]))), 201)
			for _, id := range w.present[k] {
				status := "active"
				if strings.Contains(id, "draft") {
					status = "draft"
				}
				log.record("POST connection", c.call("POST", "/_ref/connections", "", []byte(fmt.Sprintf(
					`{"connector_id":%q,"connection_id":%q,"source_binding_key":%q,"status":%q}`, k, id, id, status))), 201)
			}
		}
		deadline := time.Now().Add(stressDuration(t))
		var wg sync.WaitGroup
		const ingestWriters = 3
		for i := 0; i < ingestWriters; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				g := &stressIngest{w: w, rng: rand.New(rand.NewSource(int64(i + 1))), writer: i}
				for n := 0; time.Now().Before(deadline) && n < 2000; n++ {
					log.record("POST events", c.call("POST", "/_ref/spine/events", "", g.next()), 200)
				}
			}()
		}
		// The catalog writer: creates the late connections one by one while their runs arrive,
		// switches amazon's profile key, renames and pauses connections.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(99))
			var late [][2]string
			for _, k := range w.connectors {
				for _, id := range w.late[k] {
					late = append(late, [2]string{k, id})
				}
			}
			rng.Shuffle(len(late), func(i, j int) { late[i], late[j] = late[j], late[i] })
			for n := 0; time.Now().Before(deadline) && n < 2000; n++ {
				switch op := rng.Intn(4); {
				case op == 0 && len(late) > 0:
					k, id := late[0][0], late[0][1]
					late = late[1:]
					log.record("POST late connection", c.call("POST", "/_ref/connections", "", []byte(fmt.Sprintf(
						`{"connector_id":%q,"connection_id":%q,"source_binding_key":%q,"source_kind":"browser_collector"}`, k, id, id))), 201)
				case op == 1:
					log.record("PUT connector key", c.call("PUT", "/_ref/connectors/amazon", "", []byte(manifestWithKey("amazon", w.keys["amazon"][n%2]))), 200)
				default:
					id := w.present["chase"][rng.Intn(2)]
					body := fmt.Sprintf(`{"display_name":"Chase %d","status":%q}`, n, []string{"active", "paused"}[rng.Intn(2)])
					log.record("PATCH connection", c.call("PATCH", "/_ref/connections/"+id, "", []byte(body)), 200)
				}
				time.Sleep(time.Duration(rng.Intn(15)) * time.Millisecond)
			}
			for _, l := range late { // whatever the time allowed, every late connection exists at the end
				log.record("POST late connection", c.call("POST", "/_ref/connections", "", []byte(fmt.Sprintf(
					`{"connector_id":%q,"connection_id":%q,"source_binding_key":%q,"source_kind":"browser_collector"}`, l[0], l[1], l[1]))), 201)
			}
		}()
		// Retained writers: several streams of one connection at once, and deletes.
		const retainedWriters = 4
		for i := 0; i < retainedWriters; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(100 + i)))
				for n := 0; time.Now().Before(deadline) && n < 2000; n++ {
					conn := []string{"cin_amz_0", "cin_gmail_0"}[rng.Intn(2)]
					stream := fmt.Sprintf("st%d", rng.Intn(6))
					path := "/_ref/connections/" + conn + "/retained/" + stream
					if rng.Intn(5) == 0 {
						log.record("DELETE retained", c.call("DELETE", path, "", nil), 204, 404)
						continue
					}
					v := rng.Intn(1_000_000)
					body := fmt.Sprintf(`{"record_count":%d,"record_json_bytes":%d,"record_changes_count":%d,"record_changes_json_bytes":%d,"blob_count":%d,"blob_bytes":%d}`,
						v, 2*v, v%7, v%11, v%3, 3*v)
					log.record("PUT retained", c.call("PUT", path, "", []byte(body)), 200)
				}
			}()
		}
		wg.Wait()
		t.Logf("answers: %v", log.counts)
		for _, b := range log.bad {
			t.Errorf("unexpected answer: %s", b)
		}
		if log.counts["POST events 200"] < ingestWriters {
			t.Fatalf("the ingest writers got only %d answers", log.counts["POST events 200"])
		}
		requireReadModelEqualsLog(t, h.db)
		requireRetainedSums(t, h.db)
		if strings.Contains(h.logs.String(), "level=ERROR") {
			t.Errorf("the service logged an internal error:\n%.3000s", h.logs.String())
		}
	})
}

// requireReadModelEqualsLog checks the maintained read model against the log twice over: against
// the unlimited spine fold for every connection (last run, last success, every attributed run),
// and against a rebuild, which must find nothing to fix.
func requireReadModelEqualsLog(t *testing.T, db *bun.DB) {
	t.Helper()
	ctx := context.Background()
	at := time.Now()
	clock := func() time.Time { return at }
	entries := runstest.AllEntries(t, ctx, db, catalog.NewStore(db, clock))
	o := runs.Options{PageSize: 1 << 20}
	rm := runs.NewReadModel(db, o, clock)
	spine, err := runs.NewSpineEvidence(runs.NewPageSource(db, o, clock)).For(ctx, runs.Request{Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	model, err := runs.NewReadModelEvidence(rm).For(ctx, runs.Request{Entries: entries, History: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	render := func(s *runs.Summary) string {
		if s == nil {
			return "null"
		}
		b, _ := json.Marshal(s)
		return string(b)
	}
	attributed, diffs := 0, 0
	for _, e := range entries {
		id := e.Connection.ConnectionID
		s, m := spine[id], model[id]
		attributed += len(s.Runs)
		if a, b := render(m.LastRun), render(s.LastRun); a != b {
			diffs++
			t.Errorf("%s last_run:\n read model %s\n spine fold %s", id, a, b)
		}
		if a, b := render(m.LastSuccessfulRun), render(s.LastSuccessfulRun); a != b {
			diffs++
			t.Errorf("%s last_successful_run:\n read model %s\n spine fold %s", id, a, b)
		}
		got, want := map[string]string{}, map[string]string{}
		for i := range m.Runs {
			got[m.Runs[i].RunID] = render(&m.Runs[i])
		}
		for i := range s.Runs {
			want[s.Runs[i].RunID] = render(&s.Runs[i])
		}
		var missing, extra []string
		for k, v := range want {
			if got[k] != v {
				missing = append(missing, k)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				extra = append(extra, k)
			}
		}
		if len(missing)+len(extra) > 0 {
			diffs++
			sort.Strings(missing)
			sort.Strings(extra)
			t.Errorf("%s: the read model lists %d runs, the spine fold %d; differing or missing %d %.200v, extra %d %.200v",
				id, len(m.Runs), len(s.Runs), len(missing), missing, len(extra), extra)
		}
	}
	if attributed == 0 {
		t.Fatal("no run was attributed: the writers did not exercise attribution")
	}
	rep := runstest.RequireRebuildFixesNothing(t, ctx, db, clock)
	t.Logf("%d connections, %d attributed runs, %d runs in the log, %d differences", len(entries), attributed, rep.RunsScanned, diffs)
}

// requireRetainedSums checks that every retained connection row holds the sums of its stream rows
// and that no connection row outlives its last stream.
func requireRetainedSums(t *testing.T, db *bun.DB) {
	t.Helper()
	var bad []struct {
		ConnectionID string `bun:"connection_id"`
	}
	if err := db.NewRaw(`SELECT COALESCE(c.connection_id, s.connection_id) AS connection_id
		FROM retained_connections c FULL JOIN (
			SELECT connection_id, count(*) AS n, sum(record_count) AS rc, sum(record_json_bytes) AS rj,
				sum(record_changes_count) AS cc, sum(record_changes_json_bytes) AS cj, sum(blob_count) AS bc,
				sum(blob_bytes) AS bb, sum(total_bytes) AS tb
			FROM retained_streams GROUP BY connection_id) s ON s.connection_id = c.connection_id
		WHERE c.connection_id IS NULL OR s.connection_id IS NULL OR c.stream_count <> s.n OR c.record_count <> s.rc
			OR c.record_json_bytes <> s.rj OR c.record_changes_count <> s.cc OR c.record_changes_json_bytes <> s.cj
			OR c.blob_count <> s.bc OR c.blob_bytes <> s.bb OR c.total_bytes <> s.tb`).Scan(context.Background(), &bad); err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("retained totals of %s differ from the sum of its streams", b.ConnectionID)
	}
	var n int
	if err := db.NewSelect().Table("retained_streams").ColumnExpr("count(*)").Scan(context.Background(), &n); err != nil || n == 0 {
		t.Errorf("no retained stream rows (%d, %v): the retained writers did not run", n, err)
	}
}

// TestConcurrentRetainedStreamsOfOneConnection: 20 concurrent PUTs on different streams of one
// connection all succeed (none is a 409), and the connection row holds the sums of all 20.
func TestConcurrentRetainedStreamsOfOneConnection(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		c := newNetClient(t, h.addr)
		h.do("PUT", "/_ref/connectors/dropbox", `{"display_name":"Dropbox"}`).expect(t, 201)
		h.do("POST", "/_ref/connections", `{"connector_id":"dropbox","connection_id":"cin_dbx"}`).expect(t, 201)
		for round := 0; round < 3; round++ {
			var wg sync.WaitGroup
			answers := make([]*response, 20)
			start := make(chan struct{})
			for i := range answers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					body := fmt.Sprintf(`{"record_count":%d,"record_json_bytes":10,"record_changes_count":0,"record_changes_json_bytes":0,"blob_count":0,"blob_bytes":1}`, i+round)
					answers[i] = c.call("PUT", fmt.Sprintf("/_ref/connections/cin_dbx/retained/st%d", i), "", []byte(body))
				}()
			}
			close(start)
			wg.Wait()
			for i, r := range answers {
				if r.status != http.StatusOK {
					t.Errorf("round %d: PUT st%d = %d %s", round, i, r.status, r.body)
				}
			}
			var row struct {
				Streams int64 `bun:"stream_count"`
				Records int64 `bun:"record_count"`
				Total   int64 `bun:"total_bytes"`
			}
			if err := h.db.NewSelect().Table("retained_connections").Column("stream_count", "record_count", "total_bytes").
				Where("connection_id = 'cin_dbx'").Scan(context.Background(), &row); err != nil {
				t.Fatal(err)
			}
			wantRecords := int64(190 + 20*round) // Σ (i + round) for i in 0..19
			if row.Streams != 20 || row.Records != wantRecords || row.Total != 20*11 {
				t.Errorf("round %d: connection row %+v, want 20 streams, %d records, %d bytes", round, row, wantRecords, 20*11)
			}
		}
		requireRetainedSums(t, h.db)
	})
}
