package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connsum/modules/perf"
)

// cliCommands are every command of the CLI; --help and help must list each on a line of its own.
var cliCommands = []string{"serve", "migrate", "seed", "rebuild", "bench api", "bench browser", "bench load", "bench write", "help"}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpListsEveryCommand(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 {
			t.Errorf("connsum %s = %d, want 0", strings.Join(args, " "), code)
		}
		lines := strings.Split(out, "\n")
		for _, cmd := range cliCommands {
			n := 0
			for _, l := range lines {
				if strings.HasPrefix(strings.TrimSpace(l), cmd+" ") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("connsum %s lists %q on %d lines, want one:\n%s", strings.Join(args, " "), cmd, n, out)
			}
		}
	}
	for _, args := range [][]string{{"bench", "--help"}, {"bench", "-h"}, {"bench", "help"}, {"help", "bench"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 {
			t.Errorf("connsum %s = %d, want 0 (%s)", strings.Join(args, " "), code, errOut)
		}
		for _, sub := range []string{"api", "browser", "load", "write"} {
			if !strings.Contains(out, "  "+sub+" ") {
				t.Errorf("connsum %s does not list bench %s:\n%s", strings.Join(args, " "), sub, out)
			}
		}
	}
	if code, _, _ := runCLI(t, "help", "seed"); code != 0 {
		t.Errorf("connsum help seed = %d, want 0 (seed's flags)", code)
	}
	if code, _, errOut := runCLI(t, "bench"); code != 2 || !strings.Contains(errOut, "api") {
		t.Errorf("connsum bench = %d %q, want 2 with the bench commands", code, errOut)
	}
	if code, _, errOut := runCLI(t, "bench", "frob"); code != 2 || !strings.Contains(errOut, "frob") {
		t.Errorf("connsum bench frob = %d %q, want 2 naming it", code, errOut)
	}
	if _, err := os.Stat("data"); err == nil {
		t.Error("a help command created ./data")
	}
}

// TestStrayArgumentsAreRefused: every command takes flags only (`connsum seed help` seeded a
// database); a stray argument is a usage error (2) and nothing is created.
func TestStrayArgumentsAreRefused(t *testing.T) {
	t.Chdir(t.TempDir())
	db := "sqlite:" + filepath.Join(t.TempDir(), "x.db")
	for _, args := range [][]string{{"seed", "help"}, {"seed", "--db", db, "demo"}, {"migrate", "--db", db, "now"},
		{"rebuild", "--db", db, "all"}, {"serve", "--db", db, "extra"}, {"--db", db, "extra"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 2 || !strings.Contains(errOut, "unexpected argument") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("connsum %s = %d %q %q, want 2 and one line naming the argument", strings.Join(args, " "), code, out, errOut)
		}
	}
	if _, err := os.Stat("data"); err == nil {
		t.Error("a refused command created ./data")
	}
	if _, err := os.Stat(strings.TrimPrefix(db, "sqlite:")); err == nil {
		t.Error("a refused command created the database")
	}
}

// TestMissingSQLiteDirectoryIsRefused: only serve creates its data directory; the other commands
// refuse a SQLite path in a directory that does not exist (a typo) instead of creating it.
func TestMissingSQLiteDirectoryIsRefused(t *testing.T) {
	root := t.TempDir()
	t.Chdir(root)
	missing := filepath.Join(root, "typo")
	db := "sqlite:" + filepath.Join(missing, "x.db")
	for _, args := range [][]string{{"migrate", "--db", db}, {"seed", "--profile", "demo", "--db", db}, {"rebuild", "--db", db},
		{"bench", "api", "--db", db}, {"bench", "load", "--db=" + db}, {"bench", "write", "-db", db}} {
		code, _, errOut := runCLI(t, args...)
		if code != 1 || !strings.Contains(errOut, "db.url") || !strings.Contains(errOut, "typo") {
			t.Errorf("connsum %s = %d %q, want 1 naming db.url and the directory", strings.Join(args, " "), code, errOut)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("connsum %s created %s", strings.Join(args, " "), missing)
		}
	}
	// An existing directory is fine.
	if code, _, errOut := runCLI(t, "migrate", "--db", "sqlite:"+filepath.Join(root, "ok.db")); code != 0 {
		t.Errorf("migrate into an existing directory = %d %q", code, errOut)
	}
}

// TestBenchAPISaysWhichProfileItMeasured: bench api seeds --profile only into an empty
// database; on one that holds another profile it measures that one, says so, and reports it.
func TestBenchAPISaysWhichProfileItMeasured(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "demo.db")
	if code, _, errOut := runCLI(t, "seed", "--profile", "demo", "--db", db); code != 0 {
		t.Fatalf("seed: %d %s", code, errOut)
	}
	if got, err := perf.ProfileOf(context.Background(), db); err != nil || got != "demo" {
		t.Fatalf("ProfileOf = %q, %v; want demo", got, err)
	}
	out := filepath.Join(dir, "bench.json")
	var stdout bytes.Buffer
	err := perf.BenchMain([]string{"api", "--db", db, "--profile", "live", "--samples", "2",
		"--concurrent-seconds", "0.2", "--ingest-batches", "1", "--json", out}, &stdout, &bytes.Buffer{}, benchStarter)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "already holds the demo profile") || !strings.Contains(stdout.String(), "profile demo") {
		t.Errorf("bench api on a demo database with --profile live printed:\n%s", stdout.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Profile string }
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Profile != "demo" {
		t.Errorf("report profile = %q (%v), want demo", rep.Profile, err)
	}
	// After a bench run (its own bench-* connector added) the database still reads as demo.
	if got, _ := perf.ProfileOf(context.Background(), db); got != "demo" {
		t.Errorf("ProfileOf after a bench run = %q, want demo", got)
	}
}
