package perf

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
)

// MemoryOptions says after how many ingest batches (Checkpoints, ascending) the memory of the
// service's database backend is read, and how many events each batch has.
type MemoryOptions struct {
	Checkpoints []int
	BatchEvents int
}

// MemoryCheckpoint is the state of the service's one PostgreSQL backend after Batches batches:
// the server's own account of its memory (the sum of pg_backend_memory_contexts), the prepared
// statements it keeps for the session, and its resident set as the kernel sees it when the
// server runs on this host, 0 when /proc does not show it. VmRSS counts the pages of shared
// buffers the backend has touched (RssShmem, bounded by shared_buffers, and growing with the
// data it reads); RssAnon is its private memory, where kept state would show.
type MemoryCheckpoint struct {
	Batches            int   `json:"batches"`
	Events             int   `json:"events"`
	BackendPID         int   `json:"backend_pid"`
	ContextBytes       int64 `json:"memory_context_bytes"`
	PreparedStatements int   `json:"prepared_statements"`
	VmRSSBytes         int64 `json:"vm_rss_bytes"`
	RssAnonBytes       int64 `json:"rss_anon_bytes"`
	RssShmemBytes      int64 `json:"rss_shmem_bytes"`
}

// MemoryReport is the backend-memory part of `bench write`. Applies is false where there is
// no server backend to measure (SQLite), or no handle to reach it; Note says why.
type MemoryReport struct {
	Applies     bool               `json:"applies"`
	Note        string             `json:"note,omitempty"`
	BatchEvents int                `json:"batch_events,omitempty"`
	Seconds     float64            `json:"seconds,omitempty"`
	Checkpoints []MemoryCheckpoint `json:"checkpoints"`
	// Flat is the verdict over the checkpoints (memoryFlat); Verdict says it in figures.
	Flat    bool   `json:"flat"`
	Verdict string `json:"verdict,omitempty"`
	// Error is why the checkpoints stopped early (a batch refused, the backend unreadable).
	Error string `json:"error,omitempty"`
}

// MemoryAllowance is how much the backend's memory contexts may grow from the first checkpoint
// to the last and still count as flat: the catalog and relation caches that the first batches
// fill, independent of the number of batches. The defect this guards against (a prepared
// statement kept per distinct batch text) grew by about 2 MiB per batch.
const MemoryAllowance = 8 << 20

// backendMemorySQL reads the three figures in one statement, so they describe one backend.
// pg_backend_memory_contexts needs a superuser or pg_read_all_stats.
const backendMemorySQL = `SELECT pg_backend_pid(), (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)::bigint, ` +
	`(SELECT count(*) FROM pg_prepared_statements)`

func (r *MemoryReport) last() (MemoryCheckpoint, bool) {
	if len(r.Checkpoints) == 0 {
		return MemoryCheckpoint{}, false
	}
	return r.Checkpoints[len(r.Checkpoints)-1], true
}

// RunMemory holds the service's pool (db, the service's own handle) to one connection, as
// db.max_open_conns=1 would, so that every statement of the service runs on one PostgreSQL
// backend; posts o.BatchEvents-event batches of new content over HTTP through c; and at each
// checkpoint reads that backend's memory through the same pool. It runs after the throughput
// phases and leaves the pool at one connection: the server stops after it. A failure ends the
// checkpoints and is kept in the report's Error, beside the checkpoints read until then.
func RunMemory(ctx context.Context, c *client, db *bun.DB, dialect string, o MemoryOptions) *MemoryReport {
	rep := &MemoryReport{Checkpoints: []MemoryCheckpoint{}}
	switch {
	case len(o.Checkpoints) == 0:
		rep.Note = "skipped: --memory-checkpoints is empty"
		return rep
	case dialect != string(bootstrap.Postgres):
		rep.Note = "does not apply on SQLite: the database runs inside the service's process, so there is no server backend (see peak_rss_bytes)"
		return rep
	case db == nil:
		rep.Note = "not measured: the server does not run in this process, so there is no pool to read its backend through"
		return rep
	}
	rep.Applies, rep.BatchEvents = true, o.BatchEvents
	start := time.Now()
	err := rep.checkpoints(ctx, c, db, o)
	rep.Seconds = math.Round(time.Since(start).Seconds()*1000) / 1000
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.Flat, rep.Verdict = memoryFlat(rep.Checkpoints)
	return rep
}

// checkpoints posts the batches and reads the backend at each checkpoint.
func (r *MemoryReport) checkpoints(ctx context.Context, c *client, db *bun.DB, o MemoryOptions) error {
	// Closing the idle connections too makes the first checkpoint a fresh backend that none of
	// the throughput phases' statements touched.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(0)
	db.SetMaxIdleConns(1)
	stamp := time.Now().UnixNano()
	posted := 0
	for _, cp := range o.Checkpoints {
		for ; posted < cp; posted++ {
			body := spineBatch("memory", writeConnection(0), stamp, posted, o.BatchEvents)
			status, _, _, _, err := c.do(http.MethodPost, "/_ref/spine/events", c.t.OwnerToken, body)
			if err != nil {
				return fmt.Errorf("memory batch %d: %w", posted, err)
			}
			if status != http.StatusOK {
				return fmt.Errorf("memory batch %d: status %d", posted, status)
			}
		}
		m := MemoryCheckpoint{Batches: cp, Events: cp * o.BatchEvents}
		if err := db.QueryRowContext(ctx, backendMemorySQL).Scan(&m.BackendPID, &m.ContextBytes, &m.PreparedStatements); err != nil {
			return fmt.Errorf("read the backend's memory (needs a superuser or pg_read_all_stats): %w", err)
		}
		if prev, ok := r.last(); ok && prev.BackendPID != m.BackendPID {
			return fmt.Errorf("the backend changed from pid %d to %d after %d batches: the pool was not held to one connection", prev.BackendPID, m.BackendPID, cp)
		}
		m.VmRSSBytes, m.RssAnonBytes, m.RssShmemBytes = backendRSS(m.BackendPID)
		r.Checkpoints = append(r.Checkpoints, m)
	}
	return nil
}

// memoryFlat judges the checkpoints: flat when the backend keeps no more prepared statements
// at the last checkpoint than at the first, and its memory contexts grew by at most
// MemoryAllowance. RSS is reported, not judged: it counts the shared buffers a backend has
// touched, which grows with the data it reads, not with what it keeps.
func memoryFlat(cps []MemoryCheckpoint) (bool, string) {
	if len(cps) < 2 {
		return true, "one checkpoint: nothing to compare"
	}
	first, last := cps[0], cps[len(cps)-1]
	grew := last.ContextBytes - first.ContextBytes
	verdict := fmt.Sprintf("memory contexts %+.1f MiB (allowance %.0f MiB), prepared statements %+d from %d to %d batches",
		mib(grew), mib(MemoryAllowance), last.PreparedStatements-first.PreparedStatements, first.Batches, last.Batches)
	return grew <= MemoryAllowance && last.PreparedStatements <= first.PreparedStatements, verdict
}

// backendRSS reads VmRSS, RssAnon and RssShmem of PostgreSQL backend pid from /proc, when that
// process is on this host and is a postgres process (a server elsewhere may reuse the number);
// zeros otherwise.
func backendRSS(pid int) (vmRSS, rssAnon, rssShmem int64) {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return 0, 0, 0
	}
	st := procStatus(fmt.Sprintf("/proc/%d/status", pid))
	return st["VmRSS"], st["RssAnon"], st["RssShmem"]
}

// Print writes the checkpoint table, or why there is none.
func (r *MemoryReport) Print(w io.Writer) {
	if !r.Applies {
		fmt.Fprintf(w, "server-side memory of a database connection: %s\n", r.Note)
		return
	}
	pid := 0
	if last, ok := r.last(); ok {
		pid = last.BackendPID
	}
	fmt.Fprintf(w, "server-side memory of the service's one PostgreSQL backend (pool held to 1 connection, pid %d), batches of %d new events:\n", pid, r.BatchEvents)
	fmt.Fprintf(w, "%8s %9s %16s %10s %11s %11s %11s\n", "batches", "events", "memory contexts", "prepared", "VmRSS", "RssAnon", "RssShmem")
	for _, m := range r.Checkpoints {
		rss := func(b int64) string {
			if m.VmRSSBytes == 0 { // the backend's /proc entry was not readable
				return "n/a"
			}
			return fmt.Sprintf("%.1f MiB", mib(b))
		}
		fmt.Fprintf(w, "%8d %9d %12.2f MiB %10d %11s %11s %11s\n", m.Batches, m.Events, mib(m.ContextBytes), m.PreparedStatements,
			rss(m.VmRSSBytes), rss(m.RssAnonBytes), rss(m.RssShmemBytes))
	}
	switch {
	case r.Error != "":
		fmt.Fprintf(w, "FAILED after %.1f s: %s\n", r.Seconds, r.Error)
	case r.Flat:
		fmt.Fprintf(w, "flat: %s (%.1f s)\n", r.Verdict, r.Seconds)
	default:
		fmt.Fprintf(w, "NOT FLAT: %s (%.1f s)\n", r.Verdict, r.Seconds)
	}
}
