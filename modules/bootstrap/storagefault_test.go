package bootstrap_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"connsum/modules/bootstrap"
)

// sqliteErr has the shape of modernc.org/sqlite's *sqlite.Error.
type sqliteErr struct {
	msg  string
	code int
}

func (e *sqliteErr) Error() string { return e.msg }
func (e *sqliteErr) Code() int     { return e.code }

// TestStorageFaultsAreUnavailable: a full or read-only database is a 503 (IsUnavailable) with
// its reason, on both engines; other constraint or syntax errors stay what they were.
func TestStorageFaultsAreUnavailable(t *testing.T) {
	cases := []struct {
		err    error
		reason string
	}{
		{&sqliteErr{"database or disk is full (13)", 13}, bootstrap.FaultDiskFull},
		{&sqliteErr{"attempt to write a readonly database (8)", 8}, bootstrap.FaultReadOnly},
		{&sqliteErr{"attempt to write a readonly database (1032)", 1032}, bootstrap.FaultReadOnly}, // SQLITE_READONLY_DBMOVED
		{&pgconn.PgError{Code: "53100", Message: "could not extend file: No space left on device"}, bootstrap.FaultDiskFull},
		{&pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"}, bootstrap.FaultReadOnly},
		{fmt.Errorf("runs: append: %w", &pgconn.PgError{Code: "53100"}), bootstrap.FaultDiskFull},
		{&sqliteErr{"UNIQUE constraint failed (2067)", 2067}, ""},
		{&sqliteErr{"no such table (1)", 1}, ""},
		{&pgconn.PgError{Code: "23505"}, ""},
		{errors.New("database or disk is full"), ""}, // text alone decides nothing
	}
	for _, c := range cases {
		reason, ok := bootstrap.StorageFault(c.err)
		if reason != c.reason || ok != (c.reason != "") {
			t.Errorf("StorageFault(%v) = %q %v, want %q", c.err, reason, ok, c.reason)
		}
		if c.reason != "" && !bootstrap.IsUnavailable(c.err) {
			t.Errorf("IsUnavailable(%v) = false: a storage fault is a 503", c.err)
		}
	}
}
