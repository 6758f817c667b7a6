// Package health serves liveness (/healthz) and readiness (/readyz) and watches every request
// for storage faults (a full or read-only database), which put /readyz in the degraded state.
package health

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/uptrace/bun"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
)

// Options configures readiness.
type Options struct {
	// FaultHold is how long /readyz keeps reporting a storage fault (disk full, read-only) that a
	// write ran into before it probes with a write of its own; 0 means DefaultFaultHold.
	FaultHold time.Duration
}

// DefaultFaultHold is the FaultHold when none is set: a few load-balancer probe intervals, so a
// replica whose writes fail stays out of rotation instead of flapping with every small write
// that happens to fit (SQLite reuses WAL space), yet comes back within seconds of the fix.
const DefaultFaultHold = 5 * time.Second

// Bootstrap is what readiness needs from bootstrap: whether migrations and index verification
// finished (*bootstrap.Ready).
type Bootstrap interface {
	Done() bool
}

// FaultWatcher records whether writes are failing for a storage fault (see
// bootstrap.StorageFault). The zero value is usable (no fault, DefaultFaultHold, the wall clock).
type FaultWatcher struct {
	hold time.Duration
	now  func() time.Time

	mu     sync.Mutex
	reason string    // the storage fault (bootstrap.FaultDiskFull, FaultReadOnly); "" when writes work
	since  time.Time // first fault of this episode
	last   time.Time // latest fault seen, by a request or a failed probe
}

// NewFaultWatcher returns a watcher that holds a fault for o.FaultHold.
func NewFaultWatcher(o Options) *FaultWatcher {
	return &FaultWatcher{hold: o.FaultHold}
}

func (w *FaultWatcher) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

// ObserveWrite records err when it is a storage fault (see bootstrap.StorageFault) and reports
// whether it was.
func (w *FaultWatcher) ObserveWrite(err error) bool {
	reason, ok := bootstrap.StorageFault(err)
	if !ok {
		return false
	}
	now := w.clock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reason == "" {
		w.since = now
	}
	w.reason, w.last = reason, now
	return true
}

// WritesSucceeded ends a storage-fault episode: a write went through.
func (w *FaultWatcher) WritesSucceeded() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reason = ""
}

// WriteFault returns the current storage fault, when it began, and whether the fault was seen
// within the hold (so /readyz need not probe yet).
func (w *FaultWatcher) WriteFault() (reason string, since time.Time, fresh bool) {
	hold := w.hold
	if hold <= 0 {
		hold = DefaultFaultHold
	}
	now := w.clock()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reason, w.since, w.reason != "" && now.Sub(w.last) < hold
}

// Middleware watches every request's outcome: a storage fault puts /readyz in the degraded
// state, and a successful write to the API (a 2xx answer to an unsafe /_ref/ request) ends it.
// Its name predates this package and is kept: the app orders middleware by Order, then Name.
func (w *FaultWatcher) Middleware() httpx.Middleware {
	return httpx.Middleware{Name: "bootstrap.write_health", Handler: func(c *fiber.Ctx) error {
		err := c.Next()
		if err != nil {
			w.ObserveWrite(err)
			return err
		}
		switch c.Method() {
		case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		default:
			if st := c.Response().StatusCode(); st >= 200 && st < 300 && strings.HasPrefix(c.Path(), "/_ref/") {
				w.WritesSucceeded()
			}
		}
		return nil
	}}
}

// Routes serves /healthz and /readyz.
type Routes struct {
	db     *bun.DB
	boot   Bootstrap
	faults *FaultWatcher
}

// NewRoutes returns the health routes.
func NewRoutes(db *bun.DB, boot Bootstrap, faults *FaultWatcher) *Routes {
	return &Routes{db: db, boot: boot, faults: faults}
}

// Routes implements httpx.Registrar.
func (r *Routes) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: fiber.MethodGet, Path: "/healthz", Access: httpx.Public, Handler: func(c *fiber.Ctx) error {
			return httpx.JSON(c, fiber.StatusOK, fiber.Map{"status": "ok"})
		}},
		{Method: fiber.MethodGet, Path: "/readyz", Access: httpx.Public, Handler: r.readyz},
	}
}

// readyz answers 200 only when bootstrap completed, the database answers and it takes writes.
// A PostgreSQL server that is read-only (a standby, default_transaction_read_only) is seen at
// once; a full disk, or a read-only SQLite file, shows only when a write fails, so a storage
// fault that a request ran into is reported for the hold, and then a write probe decides.
func (r *Routes) readyz(c *fiber.Ctx) error {
	if !r.boot.Done() {
		return &httpx.Error{Status: fiber.StatusServiceUnavailable, Code: "unavailable", Message: "bootstrap has not completed"}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if bootstrap.DialectOf(r.db) == bootstrap.Postgres {
		var readOnly bool
		if err := r.db.QueryRowContext(ctx, "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'").Scan(&readOnly); err != nil {
			return httpx.Unavailable
		}
		if readOnly {
			return degraded(bootstrap.FaultReadOnly, time.Time{})
		}
	} else if err := r.db.PingContext(ctx); err != nil {
		return httpx.Unavailable
	}
	if reason, since, fresh := r.faults.WriteFault(); reason != "" {
		if fresh {
			return degraded(reason, since)
		}
		if err := r.probe(ctx); err != nil {
			if r.faults.ObserveWrite(err) {
				reason, since, _ = r.faults.WriteFault()
				return degraded(reason, since)
			}
			return httpx.Unavailable
		}
		r.faults.WritesSucceeded()
	}
	return httpx.JSON(c, fiber.StatusOK, fiber.Map{"status": "ready"})
}

// probe writes the one row of readiness_probe: a committed write, refused like any other while
// the storage is read-only or (on PostgreSQL) full.
func (r *Routes) probe(ctx context.Context) error {
	_, err := r.db.NewUpdate().Table("readiness_probe").Set("probed_at = ?", bootstrap.FormatTime(r.faults.clock())).Where("id = 1").Exec(ctx)
	return err
}

// degraded is the 503 of /readyz while writes fail; the error handler adds Retry-After.
func degraded(reason string, since time.Time) *httpx.Error {
	msg := reason + ": the database refuses writes"
	if !since.IsZero() {
		msg += " since " + bootstrap.FormatTime(since)
	}
	return &httpx.Error{Status: fiber.StatusServiceUnavailable, Code: "degraded", Message: msg + "; reads are still served"}
}
