package retained_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/retained"
)

func fixedClock() time.Time { return time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC) }

// seedConnections creates connector amazon with two connections and returns their ids.
func seedConnections(t *testing.T, db *bun.DB) (string, string) {
	t.Helper()
	ctx := context.Background()
	s := catalog.NewStore(db, fixedClock)
	m, err := catalog.ParseManifest([]byte(`{"display_name":"Amazon"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutConnector(ctx, "amazon", m); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, key := range []string{"work", "home"} {
		c, _, err := s.CreateConnection(ctx, catalog.ConnectionInput{ConnectorID: "amazon", Status: "active", SourceKind: "account", SourceBindingKey: key})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ConnectionID)
	}
	return ids[0], ids[1]
}

func ptr(s string) *string { return &s }

// sums is the connection row SPEC §1.5 requires, computed here from the stream figures.
func sums(streams map[string]retained.Figures) retained.ConnectionRow {
	var r retained.ConnectionRow
	for _, f := range streams {
		r.StreamCount++
		r.RecordCount += f.RecordCount
		r.RecordJSONBytes += f.RecordJSONBytes
		r.RecordChangesCount += f.RecordChangesCount
		r.RecordChangesJSONBytes += f.RecordChangesJSONBytes
		r.BlobCount += f.BlobCount
		r.BlobBytes += f.BlobBytes
		r.TotalBytesCol += f.RecordJSONBytes + f.RecordChangesJSONBytes + f.BlobBytes
		if f.LastRecordAt != nil && (r.LastRecordAt == nil || *f.LastRecordAt > *r.LastRecordAt) {
			r.LastRecordAt = f.LastRecordAt
		}
	}
	return r
}

func checkConnectionRow(t *testing.T, s *retained.Store, id string, streams map[string]retained.Figures) {
	t.Helper()
	got, err := s.ForConnection(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Streams) != len(streams) {
		t.Errorf("%s: %d stream rows, want %d", id, len(got.Streams), len(streams))
	}
	for i, st := range got.Streams {
		if i > 0 && got.Streams[i-1].Stream >= st.Stream {
			t.Errorf("stream rows not sorted by stream: %s before %s", got.Streams[i-1].Stream, st.Stream)
		}
		f, ok := streams[st.Stream]
		if !ok {
			t.Errorf("unexpected stream row %s", st.Stream)
			continue
		}
		if st.RecordCount != f.RecordCount || st.BlobBytes != f.BlobBytes || st.TotalBytesCol != f.RecordJSONBytes+f.RecordChangesJSONBytes+f.BlobBytes {
			t.Errorf("stream row %s = %+v, want figures %+v", st.Stream, st, f)
		}
	}
	if len(streams) == 0 {
		if got.Connection != nil {
			t.Errorf("%s: connection row %+v left after its last stream was deleted", id, got.Connection)
		}
		return
	}
	if got.Connection == nil {
		t.Fatalf("%s: no connection row", id)
	}
	want := sums(streams)
	c := got.Connection
	if c.StreamCount != want.StreamCount || c.RecordCount != want.RecordCount || c.RecordJSONBytes != want.RecordJSONBytes ||
		c.RecordChangesCount != want.RecordChangesCount || c.RecordChangesJSONBytes != want.RecordChangesJSONBytes ||
		c.BlobCount != want.BlobCount || c.BlobBytes != want.BlobBytes || c.TotalBytesCol != want.TotalBytesCol {
		t.Errorf("%s: connection row %+v, want the sums %+v", id, *c, want)
	}
	if (c.LastRecordAt == nil) != (want.LastRecordAt == nil) || (c.LastRecordAt != nil && *c.LastRecordAt != *want.LastRecordAt) {
		t.Errorf("%s: last_record_at %v, want %v", id, c.LastRecordAt, want.LastRecordAt)
	}
}

func TestPutAndDeleteKeepTheConnectionRowInStep(t *testing.T) {
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		work, home := seedConnections(t, db)
		s := retained.NewStore(db, fixedClock)
		state := map[string]map[string]retained.Figures{work: {}, home: {}}
		put := func(id, stream string, f retained.Figures) {
			t.Helper()
			row, err := s.Put(ctx, id, stream, f)
			if err != nil {
				t.Fatalf("Put %s/%s: %v", id, stream, err)
			}
			if row.TotalBytesCol != f.RecordJSONBytes+f.RecordChangesJSONBytes+f.BlobBytes || row.Stream != stream || row.ConnectionID != id {
				t.Errorf("Put returned %+v", row)
			}
			state[id][stream] = f
			checkConnectionRow(t, s, id, state[id])
		}
		put(work, "orders", retained.Figures{RecordCount: 1000, RecordJSONBytes: 52000, RecordChangesCount: 40, RecordChangesJSONBytes: 3000, BlobCount: 2, BlobBytes: 700, LastRecordAt: ptr("2026-11-19T10:00:00.000Z")})
		put(work, "returns", retained.Figures{RecordCount: 200, RecordJSONBytes: 9000, RecordChangesCount: 1, RecordChangesJSONBytes: 10, LastRecordAt: ptr("2026-11-20T01:00:00.000Z")})
		put(home, "orders", retained.Figures{RecordCount: 7, RecordJSONBytes: 70})
		// Absolute figures: a second report replaces the first.
		put(work, "orders", retained.Figures{RecordCount: 1100, RecordJSONBytes: 56000, BlobBytes: 1 << 40})
		// Figures up to 2^53-1 are stored exactly on both engines, and the connection's sums may
		// reach 2^53-1 exactly (home already holds 7 records and 70 bytes).
		put(home, "big", retained.Figures{RecordCount: 1<<53 - 1 - 7, BlobBytes: 1<<53 - 1 - 70})

		all, err := s.All(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[work] == nil || all[home] == nil || len(all[work].Streams) != 2 {
			t.Errorf("All(nil) = %v", all)
		}
		if some, err := s.All(ctx, []string{home}); err != nil || len(some) != 1 || some[home] == nil {
			t.Errorf("All([home]) = %v, %v", some, err)
		}
		if none, err := s.All(ctx, []string{}); err != nil || len(none) != 0 {
			t.Errorf("All([]) = %v, %v", none, err)
		}

		if err := s.Delete(ctx, work, "returns"); err != nil {
			t.Fatal(err)
		}
		delete(state[work], "returns")
		checkConnectionRow(t, s, work, state[work])
		if err := s.Delete(ctx, work, "orders"); err != nil {
			t.Fatal(err)
		}
		delete(state[work], "orders")
		checkConnectionRow(t, s, work, state[work])
		checkConnectionRow(t, s, home, state[home])
		if err := s.Delete(ctx, work, "orders"); !errors.Is(err, retained.ErrNotFound) {
			t.Errorf("delete of a missing row: %v, want ErrNotFound", err)
		}
		if _, err := s.Put(ctx, "cin_nope", "orders", retained.Figures{}); !errors.Is(err, retained.ErrNotFound) {
			t.Errorf("put for an unknown connection: %v, want ErrNotFound", err)
		}
		if n, _ := db.NewSelect().Table("retained_streams").Where("connection_id = 'cin_nope'").Count(ctx); n != 0 {
			t.Errorf("a refused put left %d rows", n)
		}
	})
}

func TestParseFigures(t *testing.T) {
	full := `"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6`
	f, err := retained.ParseFigures([]byte(`{` + full + `,"last_record_at":"2026-11-20T08:01:02.345+01:00"}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.RecordCount != 1 || f.BlobBytes != 6 || f.TotalBytes() != 2+4+6 || f.LastRecordAt == nil || *f.LastRecordAt != "2026-11-20T07:01:02.345Z" {
		t.Errorf("ParseFigures = %+v", f)
	}
	cases := []struct{ raw, field string }{
		{`{"record_count":-1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`, "record_count"},
		{`{"record_count":1,"record_json_bytes":2.5,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`, "record_json_bytes"},
		{`{"record_count":1,"record_json_bytes":2,"record_changes_count":9007199254740992,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`, "record_changes_count"},
		{`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":"4","blob_count":5,"blob_bytes":6}`, "record_changes_json_bytes"},
		{`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":null,"blob_bytes":6}`, "blob_count"},
		{`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5}`, "blob_bytes"},
		{`{` + full + `,"last_record_at":"2026-11-20T08:01:02"}`, "last_record_at"},
		{`{` + full + `,"total_bytes":21}`, "total_bytes"},
		// RFC 3339 offsets stop at ±23:59; Go's parser takes +24:00 and minute 60.
		{`{` + full + `,"last_record_at":"2026-01-01T00:00:00+24:00"}`, "last_record_at"},
		{`{` + full + `,"last_record_at":"2026-01-01T00:00:00-24:00"}`, "last_record_at"},
		{`{` + full + `,"last_record_at":"2026-01-01T00:00:00+00:60"}`, "last_record_at"},
		// NUL and a lone surrogate are refused wherever they are, naming the field.
		{`{` + full + `,"last_record_at":"2026-01-01T00:00:00Z\u0000"}`, "last_record_at"},
		{`{` + full + `,"last_record_at":"\ud800"}`, "last_record_at"},
		// A misspelt figure is named, with the suggestion, ahead of the figure that seems missing.
		{`{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_byte":6}`, "blob_byte"},
		// A stream's own total_bytes is a sum the feed reports: three figures of 2^53-1 are valid
		// alone, not together; the byte figure at which the total passes 2^53-1 is named.
		{`{"record_count":1,"record_json_bytes":9007199254740991,"record_changes_count":3,"record_changes_json_bytes":1,"blob_count":5,"blob_bytes":6}`, "record_changes_json_bytes"},
		{`{"record_count":1,"record_json_bytes":4503599627370496,"record_changes_count":3,"record_changes_json_bytes":4503599627370495,"blob_count":5,"blob_bytes":1}`, "blob_bytes"},
	}
	for _, c := range cases {
		_, err := retained.ParseFigures([]byte(c.raw))
		e, ok := httpx.As(err)
		if !ok || e.Status != 400 || e.Field != c.field {
			t.Errorf("ParseFigures(%s) = %v, want 400 on %q", c.raw, err, c.field)
		}
	}
}

// TestPutRefusesSumsBeyond2To53: every figure is valid alone below 2^53 (SPEC §1.5), but the
// feed reports sums over a connection's streams; the write that would carry one of them past
// 2^53-1 is refused inside the transaction (the other streams summed under the connection's
// lock), naming the figure, and writes nothing. Before, 400 streams of 2^53-1 each overflowed
// the bigint sums (500 from the 342nd PUT) and the feed reported 9214364837600033793.
func TestPutRefusesSumsBeyond2To53(t *testing.T) {
	const maxSafe = 1<<53 - 1
	dbtest.Engines(t, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		work, home := seedConnections(t, db)
		s := retained.NewStore(db, fixedClock)
		if _, err := s.Put(ctx, work, "a", retained.Figures{RecordCount: maxSafe - 10, BlobBytes: maxSafe - 100}); err != nil {
			t.Fatal(err)
		}
		rowsBefore := func() []map[string]any {
			var rows []map[string]any
			if err := db.NewSelect().Table("retained_streams").OrderExpr("connection_id, stream").Scan(ctx, &rows); err != nil {
				t.Fatal(err)
			}
			var conns []map[string]any
			if err := db.NewSelect().Table("retained_connections").OrderExpr("connection_id").Scan(ctx, &conns); err != nil {
				t.Fatal(err)
			}
			return append(rows, conns...)
		}
		before := rowsBefore()
		for _, c := range []struct {
			name, stream string
			f            retained.Figures
			field, sum   string
		}{
			{"record_count one past", "b", retained.Figures{RecordCount: 11}, "record_count", "record_count"},
			{"total_bytes one past", "b", retained.Figures{RecordJSONBytes: 50, RecordChangesJSONBytes: 51}, "record_changes_json_bytes", "total_bytes"},
			{"blob_bytes one past", "b", retained.Figures{BlobBytes: 101}, "blob_bytes", "blob_bytes"},
			{"replacing the stream that holds the sum", "a", retained.Figures{RecordCount: maxSafe, BlobBytes: maxSafe, RecordJSONBytes: 1}, "blob_bytes", "total_bytes"},
		} {
			_, err := s.Put(ctx, work, c.stream, c.f)
			var sum *retained.SumTooLargeError
			if !errors.As(err, &sum) || sum.Field != c.field || sum.Sum != c.sum {
				t.Errorf("%s: Put = %v, want SumTooLargeError{%s, %s}", c.name, err, c.field, c.sum)
			}
		}
		if after := rowsBefore(); len(after) != len(before) {
			t.Errorf("refused puts changed the rows: %v → %v", before, after)
		}
		// Exactly 2^53-1 is accepted; replacing a stream counts its new figures, not old + new.
		if _, err := s.Put(ctx, work, "b", retained.Figures{RecordCount: 10, BlobBytes: 100}); err != nil {
			t.Errorf("sums of exactly 2^53-1: %v", err)
		}
		if _, err := s.Put(ctx, work, "a", retained.Figures{RecordCount: maxSafe - 10, BlobBytes: maxSafe - 100}); err != nil {
			t.Errorf("the same figures again: %v", err)
		}
		// Another connection's streams do not count.
		if _, err := s.Put(ctx, home, "a", retained.Figures{RecordCount: maxSafe, BlobBytes: maxSafe}); err != nil {
			t.Errorf("the other connection: %v", err)
		}
		got, err := s.ForConnection(ctx, work)
		if err != nil {
			t.Fatal(err)
		}
		if c := got.Connection; c == nil || c.RecordCount != maxSafe || c.BlobBytes != maxSafe || c.TotalBytesCol != maxSafe {
			t.Errorf("connection row %+v, want the sums at exactly 2^53-1", c)
		}
	})
}
