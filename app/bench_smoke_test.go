package app

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
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
			"--concurrent-seconds", "0.3", "--ingest-batches", "2", "--json", out}, io.Discard, io.Discard, benchStarter)
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
