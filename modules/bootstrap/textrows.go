package bootstrap

import (
	"database/sql"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// textRows is one result of a pgx batch as the read path's scans see it. Over the simple
// protocol every value arrives as text, and the scans fill only the few destinations that Rows
// names, so a row whose columns are all of those (text into *string and sql.NullString, bigint
// into *int64, boolean into *bool) is decoded here, the short texts of a row sharing one
// string: a page of 100 at 10,000 connections allocated about 6,000 objects in pgx's scans,
// one or two per text value (the string, and its interface for sql.Scanner). Any other row —
// another type or destination, a NULL into *string, a value that does not parse — is left to
// pgx's own Scan, which decodes it or says why not, exactly as before.
type textRows struct {
	pgx.Rows
}

// Scan implements Rows.
func (r textRows) Scan(dest ...any) error {
	if r.scanText(dest) {
		return nil
	}
	return r.Rows.Scan(dest...)
}

// scanText fills dest from the row's text values when every column is one it decodes the way
// pgx does, and reports whether it did.
func (r textRows) scanText(dest []any) bool {
	vals, fds := r.RawValues(), r.FieldDescriptions()
	if len(vals) != len(dest) || len(fds) != len(dest) {
		return false
	}
	shared := 0 // bytes of the row's short texts
	for i, d := range dest {
		if fds[i].Format != pgx.TextFormatCode {
			return false
		}
		v, oid := vals[i], fds[i].DataTypeOID
		switch d.(type) {
		case *string:
			if v == nil || !isTextOID(oid) {
				return false
			}
			shared += sharedLen(v)
		case *sql.NullString:
			if !isTextOID(oid) {
				return false
			}
			shared += sharedLen(v)
		case *int64:
			if v == nil || (oid != pgtype.Int8OID && oid != pgtype.Int4OID && oid != pgtype.Int2OID) {
				return false
			}
		case *bool:
			if v == nil || oid != pgtype.BoolOID || len(v) != 1 || (v[0] != 't' && v[0] != 'f') {
				return false
			}
		default:
			return false
		}
	}
	var sb strings.Builder
	sb.Grow(shared)
	for i, d := range dest {
		switch d.(type) {
		case *string, *sql.NullString:
			sb.Write(vals[i][:sharedLen(vals[i])])
		}
	}
	row, at := sb.String(), 0
	text := func(v []byte) string {
		if len(v) > sharedTextMax {
			return string(v)
		}
		at += len(v)
		return row[at-len(v) : at]
	}
	for i, d := range dest {
		v := vals[i]
		switch d := d.(type) {
		case *string:
			*d = text(v)
		case *sql.NullString:
			*d = sql.NullString{String: text(v), Valid: v != nil}
		case *int64:
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return false // pgx's Scan fills every destination again, or fails
			}
			*d = n
		case *bool:
			*d = v[0] == 't'
		}
	}
	return true
}

// sharedTextMax is the longest text that shares its row's string. A longer one (a connector's
// manifest, which the catalog copies once per connector; a run's collection facts) gets a
// string of its own, so that neither keeps the other alive longer than it is used.
const sharedTextMax = 256

// sharedLen is how many bytes of the row's string the text v takes: all of it when it is
// short, none when it gets a string of its own.
func sharedLen(v []byte) int {
	if len(v) > sharedTextMax {
		return 0
	}
	return len(v)
}

// isTextOID reports whether a column of type oid arrives as the very text pgx scans into a
// string.
func isTextOID(oid uint32) bool {
	return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.UnknownOID
}
