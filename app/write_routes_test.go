package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
)

var apiTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// specConnectionID is SPEC §1.2's derived connection id, computed independently of the code.
func specConnectionID(connectorID, kind, key string) string {
	sum := sha256.Sum256([]byte("owner_local\n" + connectorID + "\n" + kind + "\n" + key))
	return "cin_" + hex.EncodeToString(sum[:])[:24]
}

func TestConnectorPutAndGet(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		manifest := `{"display_name":"Amazon","version":"1.4.0","streams":[{"name":"orders"},{"name":"returns"}],
			"capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400},"browser_surface":{"profile_key":"amazon-shopping"},
			"public_listing":{"listed":true}},"x_vendor":{"keep":["me",1]}}`
		got := h.do("PUT", "/_ref/connectors/amazon", manifest).expect(t, 201)
		if got["connector_id"] != "amazon" || got["display_name"] != "Amazon" || got["version"] != "1.4.0" || got["listed"] != true {
			t.Errorf("created connector = %v", got)
		}
		created, _ := got["created_at"].(string)
		if !apiTimeRE.MatchString(created) {
			t.Errorf("created_at %q is not UTC with milliseconds", created)
		}
		m, _ := got["manifest"].(map[string]any)
		if x, _ := m["x_vendor"].(map[string]any); x == nil {
			t.Errorf("unknown manifest key not returned: %v", m)
		}

		got = h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon EU","capabilities":{"public_listing":{"listed":false}}}`).expect(t, 200)
		if got["display_name"] != "Amazon EU" || got["listed"] != false || got["version"] != nil || got["created_at"] != created {
			t.Errorf("replaced connector = %v; want the new manifest and the original created_at %s", got, created)
		}
		if st := h.state(); st.counts["connectors"] != 1 {
			t.Errorf("connectors rows = %d after create+replace, want 1", st.counts["connectors"])
		}

		got = h.do("GET", "/_ref/connectors/amazon/manifest", nil).expect(t, 200)
		if got["connector_id"] != "amazon" || got["display_name"] != "Amazon EU" || got["listed"] != false {
			t.Errorf("GET manifest = %v", got)
		}
		if m, _ := got["manifest"].(map[string]any); m == nil || m["display_name"] != "Amazon EU" || m["x_vendor"] != nil {
			t.Errorf("GET manifest returned manifest %v; want the replacement, without the old keys", got["manifest"])
		}
		h.do("GET", "/_ref/connectors/chase/manifest", nil).expectError(t, 404, "")
	})
}

func TestConnectionCreatePatch(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon"}`).expect(t, 201)

		first := h.do("POST", "/_ref/connections", `{"connector_id":"amazon"}`).expect(t, 201)
		id := specConnectionID("amazon", "account", "default")
		if first["connection_id"] != id || first["connector_instance_id"] != id {
			t.Fatalf("derived id = %v / %v, want %s", first["connection_id"], first["connector_instance_id"], id)
		}
		for k, want := range map[string]any{"connector_id": "amazon", "status": "active", "source_kind": "account",
			"source_binding_key": "default", "display_name": "Amazon", "revoked_at": nil} {
			if first[k] != want {
				t.Errorf("%s = %#v, want %#v", k, first[k], want)
			}
		}
		again := h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_kind":"account","source_binding_key":"default"}`).expect(t, 200)
		if again["connection_id"] != id || again["created_at"] != first["created_at"] {
			t.Errorf("second create = %v, want the existing connection", again)
		}
		if n := h.state().counts["connections"]; n != 1 {
			t.Errorf("connections rows = %d after two creates of one source, want 1", n)
		}

		work := h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_kind":"browser_collector","source_binding_key":"work","display_name":"Amazon — work"}`).expect(t, 201)
		if want := specConnectionID("amazon", "browser_collector", "work"); work["connection_id"] != want || work["display_name"] != "Amazon — work" {
			t.Errorf("second source = %v, want id %s", work, want)
		}
		custom := h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_binding_key":"k3","connection_id":"cin_Custom_1"}`).expect(t, 201)
		if custom["connection_id"] != "cin_Custom_1" {
			t.Errorf("client id = %v", custom["connection_id"])
		}
		h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_binding_key":"k3","connection_id":"cin_Custom_1"}`).expect(t, 200)

		revoked := h.do("PATCH", "/_ref/connections/"+id, `{"status":"revoked"}`).expect(t, 200)
		at, _ := revoked["revoked_at"].(string)
		if revoked["status"] != "revoked" || !apiTimeRE.MatchString(at) {
			t.Errorf("revoke = %v; want status revoked and revoked_at set", revoked)
		}
		var stored *string
		if err := h.db.QueryRowContext(context.Background(), "SELECT revoked_at FROM connections WHERE connection_id = ?", id).Scan(&stored); err != nil || stored == nil || *stored != at {
			t.Errorf("stored revoked_at = %v, %v; want %s", stored, err, at)
		}
		active := h.do("PATCH", "/_ref/connections/"+id, `{"status":"active","display_name":"Amazon — home"}`).expect(t, 200)
		if active["revoked_at"] != nil || active["status"] != "active" || active["display_name"] != "Amazon — home" {
			t.Errorf("back to active = %v; want revoked_at null", active)
		}
		if err := h.db.QueryRowContext(context.Background(), "SELECT revoked_at FROM connections WHERE connection_id = ?", id).Scan(&stored); err != nil || stored != nil {
			t.Errorf("stored revoked_at after leaving revoked = %v, %v; want NULL", stored, err)
		}
		renamed := h.do("PATCH", "/_ref/connections/"+id, `{"display_name":"Home"}`).expect(t, 200)
		if renamed["status"] != "active" || renamed["display_name"] != "Home" {
			t.Errorf("rename = %v", renamed)
		}
	})
}

func TestSpineEventsIngest(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon"}`).expect(t, 201)
		conn := h.do("POST", "/_ref/connections", `{"connector_id":"amazon"}`).expect(t, 201)
		cid := conn["connection_id"].(string)

		batch := eventBody(
			eventJSON("e1", "run.started", "2026-11-20T08:01:02.345+01:00", `"run_id":"run_7"`, `"connection_id":"`+cid+`"`),
			eventJSON("e2", "run.failed", "2026-11-20T08:05:00+01:00", `"run_id":"run_7"`, `"connection_id":"`+cid+`"`, `"status":"failed"`, `"data":{"reason":"login_required"}`),
			eventJSON("e3", "run.started", "2026-11-20T07:00:00Z", `"run_id":"run_8"`, `"connection_id":"cin_unknown"`),
			eventJSON("e4", "run.started", "2026-11-20T07:00:00Z", `"run_id":"run_9"`, `"source_kind":"connector"`, `"source_id":"chase"`, `"connection_id":"`+cid+`"`),
		)
		res := h.do("POST", "/_ref/spine/events", batch).expect(t, 200)
		if num(t, res, "accepted") != 4 || num(t, res, "duplicates") != 0 {
			t.Errorf("first batch = %v, want accepted 4", res)
		}
		type row struct {
			EventSeq   int64   `bun:"event_seq"`
			EventID    string  `bun:"event_id"`
			OccurredAt string  `bun:"occurred_at"`
			RecordedAt string  `bun:"recorded_at"`
			SourceKind *string `bun:"source_kind"`
			SourceID   *string `bun:"source_id"`
		}
		read := func() []row {
			var rows []row
			if err := h.db.NewSelect().Table("spine_events").Column("event_seq", "event_id", "occurred_at", "recorded_at", "source_kind", "source_id").
				OrderExpr("event_seq").Scan(context.Background(), &rows); err != nil {
				t.Fatal(err)
			}
			return rows
		}
		rows := read()
		if len(rows) != 4 {
			t.Fatalf("%d rows stored, want 4", len(rows))
		}
		if last := num(t, res, "last_event_seq"); last != rows[3].EventSeq {
			t.Errorf("last_event_seq = %d, want %d", last, rows[3].EventSeq)
		}
		for i, want := range []string{"e1", "e2", "e3", "e4"} {
			if rows[i].EventID != want {
				t.Errorf("row %d = %s, want %s (insertion order)", i, rows[i].EventID, want)
			}
			if i > 0 && rows[i].EventSeq <= rows[i-1].EventSeq {
				t.Errorf("event_seq not strictly increasing: %d then %d", rows[i-1].EventSeq, rows[i].EventSeq)
			}
			if !apiTimeRE.MatchString(rows[i].RecordedAt) {
				t.Errorf("recorded_at %q not in the stored form", rows[i].RecordedAt)
			}
		}
		if rows[0].OccurredAt != "2026-11-20T07:01:02.345Z" || rows[1].OccurredAt != "2026-11-20T07:05:00.000Z" {
			t.Errorf("occurred_at stored as %q, %q", rows[0].OccurredAt, rows[1].OccurredAt)
		}
		src := func(r row) string {
			if r.SourceKind == nil || r.SourceID == nil {
				if r.SourceKind != nil || r.SourceID != nil {
					return "half"
				}
				return "null"
			}
			return *r.SourceKind + "/" + *r.SourceID
		}
		for i, want := range []string{"connector/amazon", "connector/amazon", "null", "connector/chase"} {
			if got := src(rows[i]); got != want {
				t.Errorf("%s source = %s, want %s", rows[i].EventID, got, want)
			}
		}

		// Re-posting the batch stores nothing and counts duplicates.
		res = h.do("POST", "/_ref/spine/events", batch).expect(t, 200)
		if num(t, res, "accepted") != 0 || num(t, res, "duplicates") != 4 {
			t.Errorf("re-posted batch = %v, want accepted 0 duplicates 4", res)
		}
		if n := len(read()); n != 4 {
			t.Errorf("%d rows after re-posting, want 4", n)
		}

		// A later batch continues the sequence.
		res = h.do("POST", "/_ref/spine/events", eventBody(eventJSON("e5", "run.completed", "2026-11-19T00:00:00Z", `"run_id":"run_8"`, `"status":"succeeded"`))).expect(t, 200)
		rows = read()
		if len(rows) != 5 || rows[4].EventID != "e5" || rows[4].EventSeq <= rows[3].EventSeq || num(t, res, "last_event_seq") != rows[4].EventSeq {
			t.Errorf("second batch: rows %v, answer %v", rows, res)
		}
	})
}

// figures is one retained PUT body.
type figures struct {
	RecordCount            int64   `json:"record_count"`
	RecordJSONBytes        int64   `json:"record_json_bytes"`
	RecordChangesCount     int64   `json:"record_changes_count"`
	RecordChangesJSONBytes int64   `json:"record_changes_json_bytes"`
	BlobCount              int64   `json:"blob_count"`
	BlobBytes              int64   `json:"blob_bytes"`
	LastRecordAt           *string `json:"last_record_at,omitempty"`
}

func (f figures) total() int64 { return f.RecordJSONBytes + f.RecordChangesJSONBytes + f.BlobBytes }

func TestRetainedPutDelete(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon"}`).expect(t, 201)
		id := h.do("POST", "/_ref/connections", `{"connector_id":"amazon"}`).expect(t, 201)["connection_id"].(string)
		other := h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_binding_key":"other"}`).expect(t, 201)["connection_id"].(string)
		at1, at2 := "2026-11-19T10:00:00.000Z", "2026-11-20T08:00:00+01:00"
		streams := map[string]figures{}

		// checkConnectionRow compares the stored per-connection row with the sums of the streams.
		checkConnectionRow := func() {
			t.Helper()
			var want struct{ streams, rc, rjb, rcc, rcjb, bc, bb, total int64 }
			var last string
			for _, f := range streams {
				want.streams++
				want.rc += f.RecordCount
				want.rjb += f.RecordJSONBytes
				want.rcc += f.RecordChangesCount
				want.rcjb += f.RecordChangesJSONBytes
				want.bc += f.BlobCount
				want.bb += f.BlobBytes
				want.total += f.total()
				if f.LastRecordAt != nil {
					if s := normaliseTime(t, *f.LastRecordAt); s > last {
						last = s
					}
				}
			}
			var got struct{ streams, rc, rjb, rcc, rcjb, bc, bb, total int64 }
			var gotLast *string
			err := h.db.QueryRowContext(context.Background(), `SELECT stream_count, record_count, record_json_bytes, record_changes_count,
				record_changes_json_bytes, blob_count, blob_bytes, total_bytes, last_record_at FROM retained_connections WHERE connection_id = ?`, id).
				Scan(&got.streams, &got.rc, &got.rjb, &got.rcc, &got.rcjb, &got.bc, &got.bb, &got.total, &gotLast)
			if len(streams) == 0 {
				if err == nil {
					t.Errorf("connection row left after the last stream was deleted: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("connection row: %v", err)
			}
			if got != want {
				t.Errorf("connection row = %+v, want the stream sums %+v", got, want)
			}
			if (gotLast == nil) != (last == "") || (gotLast != nil && *gotLast != last) {
				t.Errorf("connection last_record_at = %v, want %q", gotLast, last)
			}
		}
		put := func(stream string, f figures) {
			t.Helper()
			row := h.do("PUT", "/_ref/connections/"+id+"/retained/"+stream, f).expect(t, 200)
			if row["stream"] != stream || row["connection_id"] != id || num(t, row, "total_bytes") != f.total() || num(t, row, "record_count") != f.RecordCount {
				t.Errorf("PUT %s answered %v; want total_bytes %d", stream, row, f.total())
			}
			streams[stream] = f
			checkConnectionRow()
		}
		put("orders", figures{RecordCount: 1000, RecordJSONBytes: 52000, RecordChangesCount: 12, RecordChangesJSONBytes: 900, BlobCount: 3, BlobBytes: 4096, LastRecordAt: &at1})
		put("returns", figures{RecordCount: 200, RecordJSONBytes: 8000, LastRecordAt: &at2})
		// Large figures are stored exactly; the connection's sums stay at or below 2^53-1 (a
		// write beyond is refused: TestRetainedSumsStayBelow2To53), here up to exactly that.
		put("invoices", figures{RecordCount: 1<<53 - 1 - 1400, BlobBytes: 1<<53 - 1 - 1<<20})
		put("orders", figures{RecordCount: 1200, RecordJSONBytes: 60000, BlobBytes: 1})
		h.do("PUT", "/_ref/connections/"+other+"/retained/orders", figures{RecordCount: 5}).expect(t, 200)
		checkConnectionRow()

		if r := h.do("DELETE", "/_ref/connections/"+id+"/retained/invoices", nil); r.status != 204 || len(r.body) != 0 {
			t.Fatalf("DELETE = %d %q, want 204", r.status, r.body)
		}
		delete(streams, "invoices")
		checkConnectionRow()
		h.do("DELETE", "/_ref/connections/"+id+"/retained/invoices", nil).expectError(t, 404, "")
		h.do("DELETE", "/_ref/connections/"+id+"/retained/orders", nil).expect(t, 204)
		h.do("DELETE", "/_ref/connections/"+id+"/retained/returns", nil).expect(t, 204)
		streams = map[string]figures{}
		checkConnectionRow()
		var n int
		if err := h.db.QueryRowContext(context.Background(), "SELECT count(*) FROM retained_connections WHERE connection_id = ?", other).Scan(&n); err != nil || n != 1 {
			t.Errorf("the other connection's row = %d, %v; deleting one connection's streams must not touch another", n, err)
		}
	})
}

// normaliseTime renders an RFC 3339 time in the stored form, as SPEC §1.4 defines it.
func normaliseTime(t *testing.T, s string) string {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC().Format("2006-01-02T15:04:05.000Z")
}
