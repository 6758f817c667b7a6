package bootstrap

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// CopyRows writes rows into table's columns with one binary COPY on the pgx connection of ctx's
// transaction (WithPgx), and reports false, writing nothing, when the transaction has none.
//
// pgx's CopyFrom asks the server for the columns' types before every COPY (a Parse/Describe
// round trip: the simple protocol, QueryExecMode, keeps no description cache) and encodes each
// value through its type map. The columns written here are of three types only, known from the
// Go value: text (string, *string), boolean (bool) and bigint (int64), so the rows are encoded
// directly and the COPY is one round trip. A value of another type is an error, as is a value
// whose column has another type (the server refuses the COPY: nothing is written).
func CopyRows(ctx context.Context, table string, columns []string, rows [][]any) (bool, error) {
	if !HasPgx(ctx) {
		return false, nil
	}
	buf, err := encodeCopyRows(len(columns), rows)
	if err != nil {
		return true, fmt.Errorf("bootstrap: copy into %s: %w", table, err)
	}
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := "COPY " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN BINARY"
	var copied int64
	ok, err := WithPgx(ctx, func(conn *pgx.Conn) error {
		tag, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(buf), sql)
		copied = tag.RowsAffected()
		return err
	})
	if ok && err == nil && copied != int64(len(rows)) {
		err = fmt.Errorf("copied %d of %d rows", copied, len(rows))
	}
	if err != nil {
		return ok, fmt.Errorf("bootstrap: copy into %s: %w", table, err)
	}
	return ok, nil
}

// copySignature opens PostgreSQL's binary COPY format: the signature, no flags, no extension.
const copySignature = "PGCOPY\n\377\r\n\000\x00\x00\x00\x00\x00\x00\x00\x00"

// encodeCopyRows renders rows in the binary COPY format: per row the field count, then per field
// its length (-1 for NULL) and bytes; a field count of -1 ends the data.
func encodeCopyRows(width int, rows [][]any) ([]byte, error) {
	size := len(copySignature) + 2
	for _, r := range rows {
		size += 2 + 4*len(r)
		for _, v := range r {
			switch v := v.(type) {
			case string:
				size += len(v)
			case *string:
				if v != nil {
					size += len(*v)
				}
			default:
				size += 8
			}
		}
	}
	buf := make([]byte, 0, size)
	buf = append(buf, copySignature...)
	for i, r := range rows {
		if len(r) != width {
			return nil, fmt.Errorf("row %d has %d values for %d columns", i, len(r), width)
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(width))
		for j, v := range r {
			switch v := v.(type) {
			case string:
				buf = appendField(buf, v)
			case *string:
				if v == nil {
					buf = binary.BigEndian.AppendUint32(buf, 0xFFFFFFFF) // -1: NULL
				} else {
					buf = appendField(buf, *v)
				}
			case bool:
				b := byte(0)
				if v {
					b = 1
				}
				buf = append(binary.BigEndian.AppendUint32(buf, 1), b)
			case int64:
				buf = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(buf, 8), uint64(v))
			default:
				return nil, fmt.Errorf("row %d, column %d: no binary COPY encoding for %T", i, j, v)
			}
		}
	}
	return binary.BigEndian.AppendUint16(buf, 0xFFFF), nil // -1: end of data
}

// appendField appends a text field: its length and its bytes (text's binary form is its text).
func appendField(buf []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(buf, uint32(len(s))), s...)
}
