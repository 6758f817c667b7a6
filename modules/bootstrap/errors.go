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
// connection or an answer, the server's statement_timeout cancelled the statement), as opposed
// to a bad query. Such errors become 503.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
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
