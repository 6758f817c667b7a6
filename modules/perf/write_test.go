package perf

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestBenchWriteCheck: any 5xx, 409, other non-2xx answer or transport error fails the run, and
// so does a backend whose memory grew; a clean report passes.
func TestBenchWriteCheck(t *testing.T) {
	clean := WriteReport{Memory: MemoryReport{Applies: true, Flat: true}}
	if err := clean.Check(); err != nil {
		t.Fatalf("clean report: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*WriteReport)
		want string
	}{
		{"5xx", func(r *WriteReport) { r.FiveXX = 2 }, "2 answers were 5xx"},
		{"409", func(r *WriteReport) { r.Conflicts = 1 }, "1 answers were 409"},
		{"other", func(r *WriteReport) { r.OtherErrors = 3 }, "3 answers were another non-2xx"},
		{"transport", func(r *WriteReport) { r.TransportErrors = 1 }, "1 requests failed in transport"},
		{"memory", func(r *WriteReport) { r.Memory.Flat, r.Memory.Verdict = false, "memory contexts +90 MiB" }, "backend memory grew: memory contexts +90 MiB"},
		{"memory failed", func(r *WriteReport) { r.Memory.Error = "memory batch 3: status 503" }, "backend memory: memory batch 3: status 503"},
	} {
		r := clean
		tc.edit(&r)
		if err := r.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check() = %v, want %q", tc.name, err, tc.want)
		}
	}
	// Where the memory does not apply (SQLite), its verdict does not count.
	sqlite := WriteReport{Memory: MemoryReport{Note: "does not apply"}}
	if err := sqlite.Check(); err != nil {
		t.Errorf("SQLite report: %v", err)
	}
}

// TestBenchMemoryFlat: the verdict over the checkpoints — a prepared statement kept per batch
// or memory contexts growing beyond the allowance are not flat; the caches that the first
// batches fill are.
func TestBenchMemoryFlat(t *testing.T) {
	const mb = 1 << 20
	cp := func(batches int, ctx int64, prepared int) MemoryCheckpoint {
		return MemoryCheckpoint{Batches: batches, ContextBytes: ctx, PreparedStatements: prepared}
	}
	for _, tc := range []struct {
		name string
		cps  []MemoryCheckpoint
		flat bool
	}{
		{"one checkpoint", []MemoryCheckpoint{cp(0, mb, 0)}, true},
		{"warm caches", []MemoryCheckpoint{cp(0, 14*mb/10, 0), cp(50, 21*mb/10, 0), cp(250, 21*mb/10, 0)}, true},
		{"statements kept", []MemoryCheckpoint{cp(0, mb, 1), cp(10, 2*mb, 31)}, false},
		{"contexts grow", []MemoryCheckpoint{cp(0, mb, 0), cp(250, mb+MemoryAllowance+1, 0)}, false},
		{"at the allowance", []MemoryCheckpoint{cp(0, mb, 0), cp(250, mb+MemoryAllowance, 0)}, true},
	} {
		if flat, verdict := memoryFlat(tc.cps); flat != tc.flat || verdict == "" {
			t.Errorf("%s: flat %v (%s), want %v", tc.name, flat, verdict, tc.flat)
		}
	}
}

// TestBenchWriteCheckpointsFlag: --memory-checkpoints is sorted and deduplicated; a bad entry
// names itself; empty skips the checkpoints.
func TestBenchWriteCheckpointsFlag(t *testing.T) {
	got, err := parseCheckpoints("250, 0,50,50,100")
	if err != nil || !reflect.DeepEqual(got, []int{0, 50, 100, 250}) {
		t.Errorf("parseCheckpoints = %v, %v", got, err)
	}
	if got, err := parseCheckpoints(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	if _, err := parseCheckpoints("0,-5"); err == nil || !strings.Contains(err.Error(), `"-5"`) {
		t.Errorf("negative: %v", err)
	}
}

// TestBenchWriteCompare: --compare prints the change of each phase's events/s and of each
// class's p50 against an earlier report.
func TestBenchWriteCompare(t *testing.T) {
	phase := func(name string, rate, p50 float64) WritePhase {
		return WritePhase{Name: name, EventsPerS: rate, Classes: []WriteClass{{Class: ClassIngest, LoadSide: LoadSide{P50: p50}}}}
	}
	old := &WriteReport{Single: phase("single", 20000, 40), Concurrent: phase("concurrent", 22000, 160)}
	path := filepath.Join(t.TempDir(), "old.json")
	if err := writeJSON(path, old); err != nil {
		t.Fatal(err)
	}
	cur := &WriteReport{Single: phase("single", 25000, 32), Concurrent: phase("concurrent", 22000, 176)}
	var out bytes.Buffer
	if err := cur.Compare(path, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"single events/s", "+25.0%", "concurrent ingest p50", "+10.0%", "single ingest p50", "-20.0%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare output lacks %q:\n%s", want, out.String())
		}
	}
}
