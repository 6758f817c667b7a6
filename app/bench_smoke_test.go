package app

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// TestBenchAPISmoke runs `connsum bench api` on the tiny demo profile and checks the JSON's
// shape only (figures are for benchmarks, not tests).
func TestBenchAPISmoke(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		out := filepath.Join(t.TempDir(), "bench.json")
		err := perf.BenchMain([]string{"api", "--db", url, "--profile", "demo", "--samples", "3",
			"--concurrent-seconds", "0.3", "--ingest-batches", "2", "--floor", "--json", out}, io.Discard, io.Discard, benchStarter)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var rep map[string]any
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"schema", "profile", "dialect"} {
			if s, ok := rep[k].(string); !ok || s == "" {
				t.Errorf("%s = %v, want a non-empty string", k, rep[k])
			}
		}
		reads, ok := rep["reads"].([]any)
		if !ok || len(reads) < 7 {
			t.Fatalf("reads = %v, want the seven reads of SPEC §7", rep["reads"])
		}
		names := map[string]bool{}
		for _, r := range reads {
			m, ok := r.(map[string]any)
			if !ok {
				t.Fatalf("read %v is not an object", r)
			}
			for _, k := range []string{"name", "n", "p50_ms", "p95_ms", "p99_ms", "statements", "bytes"} {
				if _, ok := m[k]; !ok {
					t.Errorf("read %v lacks %s", m["name"], k)
				}
			}
			names[m["name"].(string)] = true
			// --floor: every read with a floor carries it and its ratio; ingest has a COPY
			// floor on PostgreSQL only.
			name := m["name"].(string)
			withFloor := name == "overview_cold" || name == "scoped_deep" || name == "deep_full_list" || name == "overview_page_100" ||
				(name == "spine_ingest_batch_1000" && strings.HasPrefix(url, "postgres"))
			if r, _ := m["floor_ratio"].(float64); withFloor && r <= 0 {
				t.Errorf("read %s: floor_ratio = %v, want > 0 with --floor (note %v)", name, m["floor_ratio"], m["note"])
			}
			if n, _ := m["n"].(float64); n < 1 {
				t.Errorf("read %v measured nothing (n=%v, errors=%v)", m["name"], m["n"], m["errors"])
			}
		}
		for _, want := range []string{"overview_cold", "overview_cached", "scoped_deep", "deep_full_list", "overview_page_100"} {
			if !names[want] {
				t.Errorf("no %s read", want)
			}
		}
	})
}

// TestBenchWriteSmoke runs `connsum bench write` in a tiny form on both engines: every answer
// of the ingest, catalog and retained writers is 2xx (BenchMain fails otherwise), each class
// was measured, and on PostgreSQL the backend-memory checkpoints were read from one backend and
// kept no prepared statements. Figures are for the benchmark, not the test.
func TestBenchWriteSmoke(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		out := filepath.Join(t.TempDir(), "write.json")
		err := perf.BenchMain([]string{"write", "--db", url, "--profile", "demo", "--writers", "2", "--batch", "20",
			"--batches", "2", "--seconds", "30", "--catalog-rate", "50", "--retained-writers", "2", "--retained-rate", "50",
			"--memory-checkpoints", "0,2,4", "--memory-batch", "20", "--json", out}, io.Discard, io.Discard, benchStarter)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var rep perf.WriteReport
		if err := json.Unmarshal(raw, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Schema != perf.WriteSchema || rep.Dialect == "" || rep.BatchEvents != 20 {
			t.Errorf("schema %q, dialect %q, batch %d", rep.Schema, rep.Dialect, rep.BatchEvents)
		}
		for code := range rep.Statuses {
			if !strings.HasPrefix(code, "2") {
				t.Errorf("statuses %v: not all 2xx", rep.Statuses)
			}
		}
		if rep.FiveXX+rep.Conflicts+rep.OtherErrors+rep.TransportErrors != 0 {
			t.Errorf("5xx %d, 409 %d, other %d, transport %d", rep.FiveXX, rep.Conflicts, rep.OtherErrors, rep.TransportErrors)
		}
		for _, p := range []struct {
			phase   perf.WritePhase
			writers int
			classes []string
		}{{rep.Single, 1, []string{perf.ClassIngest}}, {rep.Concurrent, 2, []string{perf.ClassIngest, perf.ClassCatalog, perf.ClassRetained}}} {
			if p.phase.Writers != p.writers || p.phase.Events != p.writers*2*20 {
				t.Errorf("phase %s: %d writers, %d events; want %d writers of 2 batches of 20", p.phase.Name, p.phase.Writers, p.phase.Events, p.writers)
			}
			if len(p.phase.Classes) != len(p.classes) {
				t.Fatalf("phase %s: classes %+v, want %v", p.phase.Name, p.phase.Classes, p.classes)
			}
			for i, cl := range p.phase.Classes {
				if cl.Class != p.classes[i] || cl.N < 1 || cl.OK != cl.N {
					t.Errorf("phase %s class %s: n %d, ok %d, statuses %v", p.phase.Name, cl.Class, cl.N, cl.OK, cl.Statuses)
				}
			}
		}
		mem := rep.Memory
		if strings.HasPrefix(url, "sqlite:") {
			if mem.Applies || mem.Note == "" || len(mem.Checkpoints) != 0 {
				t.Errorf("SQLite backend memory = %+v, want a note that it does not apply", mem)
			}
			return
		}
		if !mem.Applies || !mem.Flat || len(mem.Checkpoints) != 3 {
			t.Fatalf("PostgreSQL backend memory = %+v, want three flat checkpoints", mem)
		}
		for i, cp := range mem.Checkpoints {
			if cp.Batches != []int{0, 2, 4}[i] || cp.BackendPID != mem.Checkpoints[0].BackendPID || cp.ContextBytes <= 0 {
				t.Errorf("checkpoint %d = %+v", i, cp)
			}
			if cp.PreparedStatements != 0 {
				t.Errorf("after %d batches the backend keeps %d prepared statements, want none", cp.Batches, cp.PreparedStatements)
			}
		}
	})
}
