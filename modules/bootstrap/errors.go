package bootstrap

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsUnavailable reports whether err means the database cannot answer right now (connection
// refused or lost, server shutting down, the request's deadline passed while it waited for a
// connection or an answer, the server's statement_timeout cancelled the statement, the storage
// is full or read-only: StorageFault), as opposed to a bad query. Such errors become 503.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := StorageFault(err); ok {
		return true
	}
	if IsRetryable(err) {
		// A serialization failure or deadlock that outlasted RunInTx's retries: the client may
		// retry, and nothing it sent was wrong.
		return true
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57: operator intervention (57014 query canceled by
		// statement_timeout or a cancel request, 57P01 admin shutdown, 57P03 cannot connect now);
		// 55P03: lock not available (lock_timeout); 25P03: the session sat idle in a transaction
		// past idle_in_transaction_session_timeout; 53300: too many connections.
		switch code := pgErr.Code; {
		case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "57"):
			return true
		default:
			return code == "55P03" || code == "25P03" || code == "53300"
		}
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
}

// IsUniqueViolation reports whether err is a unique-key violation. On PostgreSQL (read
// committed) two transactions that both found no row may both insert it; the loser's insert
// fails with this error and the request can simply run again, now seeing the winner's row.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// The storage faults StorageFault reports: the database is up and answers reads, but refuses
// writes until an operator frees space or makes it writable again.
const (
	FaultDiskFull = "disk_full"
	FaultReadOnly = "read_only"
)

// StorageFault reports whether err is the database refusing a write because its storage is full
// (SQLITE_FULL, PostgreSQL 53100 disk_full) or read-only (SQLITE_READONLY and its extended
// codes, PostgreSQL 25006 read_only_sql_transaction: a standby, or default_transaction_read_only),
// and which of the two. Such errors are not the request's fault and pass when the operator acts,
// so they answer 503 with Retry-After and put /readyz in the degraded state.
func StorageFault(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53100":
			return FaultDiskFull, true
		case "25006":
			return FaultReadOnly, true
		}
		return "", false
	}
	// modernc.org/sqlite's *sqlite.Error; the primary result code is the low byte of an extended one.
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff {
		case sqliteFull:
			return FaultDiskFull, true
		case sqliteReadOnly:
			return FaultReadOnly, true
		}
	}
	return "", false
}

// SQLite primary result codes (sqlite3.h).
const (
	sqliteReadOnly = 8
	sqliteFull     = 13
)
