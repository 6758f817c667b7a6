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
// into *int64, boolean into *bool) is decoded here, the *string columns of a row sharing one
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
	shared := 0 // bytes of the row's *string values
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
			shared += len(v)
		case *sql.NullString:
			if !isTextOID(oid) {
				return false
			}
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
		if _, ok := d.(*string); ok {
			sb.Write(vals[i])
		}
	}
	row, at := sb.String(), 0
	for i, d := range dest {
		v := vals[i]
		switch d := d.(type) {
		case *string:
			*d = row[at : at+len(v)]
			at += len(v)
		case *sql.NullString:
			// A string of its own: a nullable column may be a large value that the scan throws
			// away for most rows (a connector's manifest, kept once per connector), which the
			// row's other strings must not keep alive.
			*d = sql.NullString{String: string(v), Valid: v != nil}
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

// isTextOID reports whether a column of type oid arrives as the very text pgx scans into a
// string.
func isTextOID(oid uint32) bool {
	return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.UnknownOID
}
