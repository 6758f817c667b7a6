package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/fx"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/health"
)

// singleConnection runs the service with a pool of one connection, so a setting the test makes
// on that connection (h.db is the service's own pool) is what every request meets: a real engine
// error, injected without root or a full disk.
var singleConnection = map[string]string{"db.max_open_conns": "1"}

// requireStorageFault503 checks a write refused for a storage fault: 503, code unavailable,
// Retry-After, the reason in the message, nothing stored.
func requireStorageFault503(t *testing.T, what string, r *response, reason string) {
	t.Helper()
	requireUnavailable503(t, what, r)
	if !strings.Contains(string(r.body), reason) {
		t.Errorf("%s: %s does not name the fault %s", what, r.body, reason)
	}
}

// requireDegraded checks /readyz while writes fail: 503 degraded naming the reason, with Retry-After.
func requireDegraded(t *testing.T, h *harness, reason string) {
	t.Helper()
	r := h.do("GET", "/readyz", nil, asBearer(""))
	r.expectError(t, http.StatusServiceUnavailable, "-")
	if obj := r.object(t); !strings.Contains(fmt.Sprint(obj["error"]), "degraded") || !strings.Contains(string(r.body), reason) {
		t.Errorf("/readyz = %s, want degraded: %s", r.body, reason)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("/readyz 503 without Retry-After")
	}
}

func requireReady(t *testing.T, h *harness) {
	t.Helper()
	if r := h.do("GET", "/readyz", nil, asBearer("")); r.status != http.StatusOK {
		t.Errorf("/readyz = %d %s, want 200 ready", r.status, r.body)
	}
}

func execSQL(t *testing.T, h *harness, sql string) {
	t.Helper()
	if _, err := h.db.ExecContext(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestSQLiteDiskFullAnswers503AndDegradesReadiness: SQLite answers SQLITE_FULL ("database or
// disk is full") once the file may not grow (max_page_count at its current size, the same error
// a full disk gives). Ingest and other writes answer 503 with Retry-After and store nothing,
// /readyz says degraded while reads are still served, and both recover once space is back.
// (Before: 500 "internal", and /readyz stayed 200.)
func TestSQLiteDiskFullAnswers503AndDegradesReadiness(t *testing.T) {
	h := startApp(t, dbtest.SQLiteURL(t), Tokens{Owner: testOwnerToken, Admin: testAdminToken}, singleConnection)
	fx := seedValidationFixture(t, h)
	var pages int
	if err := h.db.QueryRowContext(context.Background(), "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	execSQL(t, h, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
	before := h.state()
	requireStorageFault503(t, "ingest on a full disk", h.do("POST", "/_ref/spine/events", batchOf("full_", 500, fx.conn)), bootstrap.FaultDiskFull)
	requireUnchanged(t, before, h.state())
	requireDegraded(t, h, bootstrap.FaultDiskFull)
	h.do("GET", "/_ref/connectors", nil).expect(t, 200)
	h.do("GET", "/healthz", nil, asBearer("")).expect(t, 200)

	execSQL(t, h, "PRAGMA max_page_count = 1073741823")
	h.do("POST", "/_ref/spine/events", batchOf("full_", 500, fx.conn)).expect(t, 200)
	requireReady(t, h)
	h.requireNoTokensLogged(t)
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a full disk was logged as an internal error:\n%s", h.logs.String())
	}
}

// TestSQLiteReadOnlyDegradesUntilAProbeWrites: a read-only database (PRAGMA query_only, what a
// read-only file or mount gives: SQLITE_READONLY) refuses writes with 503; /readyz, once the
// fault is older than its hold, probes with a write of its own, stays degraded while that fails
// and recovers by itself, with no client write, once the database takes writes again.
func TestSQLiteReadOnlyDegradesUntilAProbeWrites(t *testing.T) {
	h := startAppWith(t, dbtest.SQLiteURL(t), Tokens{Owner: testOwnerToken}, singleConnection,
		fx.Decorate(func(o health.Options) health.Options { o.FaultHold = time.Nanosecond; return o }))
	fx := seedValidationFixture(t, h)
	execSQL(t, h, "PRAGMA query_only = 1")
	before := h.state()
	requireStorageFault503(t, "ingest on a read-only database", h.do("POST", "/_ref/spine/events", batchOf("ro_", 20, fx.conn)), bootstrap.FaultReadOnly)
	requireStorageFault503(t, "PATCH on a read-only database", h.do("PATCH", "/_ref/connections/"+fx.conn, `{"display_name":"x"}`), bootstrap.FaultReadOnly)
	requireUnchanged(t, before, h.state())
	requireDegraded(t, h, bootstrap.FaultReadOnly)
	requireDegraded(t, h, bootstrap.FaultReadOnly) // the probe failed too
	h.do("GET", "/_ref/connectors?connection="+fx.conn, nil).expect(t, 200)

	execSQL(t, h, "PRAGMA query_only = 0")
	requireReady(t, h)
	h.do("POST", "/_ref/spine/events", batchOf("ro_", 20, fx.conn)).expect(t, 200)
}

// TestPostgresReadOnlyAnswers503AndDegrades: a PostgreSQL session that is read-only (a standby
// after a failover, default_transaction_read_only) refuses writes with SQLSTATE 25006: 503 with
// Retry-After, nothing stored, and /readyz sees the read-only server at once.
func TestPostgresReadOnlyAnswers503AndDegrades(t *testing.T) {
	h := startApp(t, dbtest.PostgresURL(t), Tokens{Owner: testOwnerToken}, singleConnection)
	fx := seedValidationFixture(t, h)
	execSQL(t, h, "SET default_transaction_read_only = on")
	before := h.state()
	requireStorageFault503(t, "ingest on a read-only server", h.do("POST", "/_ref/spine/events", batchOf("pgro_", 20, fx.conn)), bootstrap.FaultReadOnly)
	requireStorageFault503(t, "connection create on a read-only server", h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_binding_key":"ro"}`), bootstrap.FaultReadOnly)
	requireUnchanged(t, before, h.state())
	requireDegraded(t, h, bootstrap.FaultReadOnly)
	h.do("GET", "/_ref/connectors", nil).expect(t, 200)

	execSQL(t, h, "SET default_transaction_read_only = off")
	h.do("POST", "/_ref/spine/events", batchOf("pgro_", 20, fx.conn)).expect(t, 200)
	requireReady(t, h)
	if strings.Contains(h.logs.String(), "level=ERROR") {
		t.Errorf("a read-only server was logged as an internal error:\n%s", h.logs.String())
	}
}
