package health

import (
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"connsum/modules/bootstrap"
)

// TestFaultWatcherHoldsAFaultUntilAWriteSucceeds: a storage fault is fresh for the hold, stays
// reported after it (so /readyz probes), and ends with a successful write; other errors are
// not faults.
func TestFaultWatcherHoldsAFaultUntilAWriteSucceeds(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w := NewFaultWatcher(Options{})
	w.now = func() time.Time { return now }
	if w.ObserveWrite(errors.New("boom")) {
		t.Fatal("a plain error counted as a storage fault")
	}
	if !w.ObserveWrite(&pgconn.PgError{Code: "53100"}) {
		t.Fatal("disk_full not observed")
	}
	start := now
	now = now.Add(DefaultFaultHold - time.Millisecond)
	if reason, since, fresh := w.WriteFault(); reason != bootstrap.FaultDiskFull || !since.Equal(start) || !fresh {
		t.Errorf("within the hold: %q %v %v", reason, since, fresh)
	}
	now = now.Add(time.Millisecond)
	if reason, _, fresh := w.WriteFault(); reason != bootstrap.FaultDiskFull || fresh {
		t.Errorf("after the hold: %q fresh=%v, want the fault, not fresh", reason, fresh)
	}
	w.WritesSucceeded()
	if reason, _, _ := w.WriteFault(); reason != "" {
		t.Errorf("after a successful write: %q", reason)
	}
}

// TestMiddlewareEndsAFaultOnlyOnASuccessfulAPIWrite: the middleware records a handler's storage
// fault, and only a 2xx unsafe /_ref/ request ends it.
func TestMiddlewareEndsAFaultOnlyOnASuccessfulAPIWrite(t *testing.T) {
	w := &FaultWatcher{}
	app := fiber.New()
	app.Use(w.Middleware().Handler)
	app.Post("/_ref/fail", func(*fiber.Ctx) error { return &pgconn.PgError{Code: "25006"} })
	app.Post("/_ref/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	app.Get("/_ref/ok", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
	do := func(method, path string) {
		resp, err := app.Test(httptest.NewRequest(method, path, nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("POST", "/_ref/fail")
	if reason, _, _ := w.WriteFault(); reason != bootstrap.FaultReadOnly {
		t.Fatalf("after a read-only error: %q", reason)
	}
	do("GET", "/_ref/ok")
	if reason, _, _ := w.WriteFault(); reason == "" {
		t.Error("a read ended the fault")
	}
	do("POST", "/_ref/ok")
	if reason, _, _ := w.WriteFault(); reason != "" {
		t.Errorf("a successful write did not end the fault: %q", reason)
	}
}
