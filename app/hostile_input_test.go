package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
)

// sqlText is what an attacker would put wherever a string goes.
const sqlText = `x'; DROP TABLE spine_events;--`

// requireTablesIntact fails when any data table is gone or unreadable.
func requireTablesIntact(t *testing.T, h *harness) {
	t.Helper()
	for _, tb := range append(dataTables, struct{ name, order string }{"bun_migrations", "id"}) {
		var n int
		if err := h.db.QueryRowContext(context.Background(), "SELECT count(*) FROM "+tb.name).Scan(&n); err != nil {
			t.Errorf("table %s is not readable after SQL-looking input: %v", tb.name, err)
		}
	}
}

// TestSQLLookingInputIsRefusedOrStoredLiterally extends the bad-input matrix with SQL: in ids it
// is refused by the id grammar (URL and body alike), in free text it is stored and returned
// byte for byte, and every table still exists afterwards.
func TestSQLLookingInputIsRefusedOrStoredLiterally(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		esc := url.PathEscape(sqlText)
		q := url.QueryEscape(sqlText)
		conn := "/_ref/connections/" + fx.conn
		sqlJSON, _ := json.Marshal(sqlText)
		s := string(sqlJSON)

		refused := []badRequest{
			{"connector id SQL in the URL", "PUT", "/_ref/connectors/" + esc, "", `{"display_name":"A"}`, 400, "connector_id"},
			{"connector id SQL in the URL, quote unescaped", "PUT", "/_ref/connectors/x'%3B--", "", `{"display_name":"A"}`, 400, "connector_id"},
			{"manifest of an SQL connector id", "GET", "/_ref/connectors/" + esc + "/manifest", "", "", 404, ""},
			{"connection with SQL connector_id", "POST", "/_ref/connections", "", `{"connector_id":` + s + `}`, 400, "connector_id"},
			{"connection with SQL connection_id", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n9","connection_id":` + s + `}`, 400, "connection_id"},
			{"connection with SQL status", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n9","status":` + s + `}`, 400, "status"},
			{"patch of an SQL connection id", "PATCH", "/_ref/connections/" + esc, "", `{"status":"paused"}`, 404, ""},
			{"patch with SQL status", "PATCH", conn, "", `{"status":` + s + `}`, 400, "status"},
			{"event with SQL event_id", "POST", "/_ref/spine/events", "", eventBody(eventJSON(sqlText, "run.started", "2026-11-20T08:00:00Z")), 400, "events[0].event_id"},
			{"event with SQL event_type", "POST", "/_ref/spine/events", "", eventBody(eventJSON("evt_sql", sqlText, "2026-11-20T08:00:00Z")), 400, "events[0].event_type"},
			{"event with SQL occurred_at", "POST", "/_ref/spine/events", "", eventBody(eventJSON("evt_sql", "run.started", sqlText)), 400, "events[0].occurred_at"},
			{"event with SQL run_id", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_sql", `"run_id":`+s)), 400, "events[0].run_id"},
			{"event with SQL source_id", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_sql", `"source_kind":"connector","source_id":`+s)), 400, "events[0].source_id"},
			{"event with SQL connection_id", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_sql", `"connection_id":`+s)), 400, "events[0].connection_id"},
			{"event with SQL status", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_sql", `"status":`+s)), 400, "events[0].status"},
			{"event with an SQL key", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_sql", s+`:1`)), 400, "events[0]." + sqlText},
			{"retained of an SQL connection id", "PUT", "/_ref/connections/" + esc + "/retained/orders", "", validFigures, 404, ""},
			{"retained with an SQL stream", "PUT", conn + "/retained/" + esc, "", validFigures, 400, "stream"},
			{"retained delete with an SQL stream", "DELETE", conn + "/retained/" + esc, "", "", 404, ""},
			{"feed filtered by an SQL connector_id", "GET", "/_ref/connectors?connector_id=" + q, "", "", 400, "connector_id"},
			{"feed with an SQL depth", "GET", "/_ref/connectors?depth=" + q, "", "", 400, "depth"},
			{"feed with an SQL limit", "GET", "/_ref/connectors?limit=" + q, "", "", 400, "limit"},
			{"feed with an SQL parameter name", "GET", "/_ref/connectors?" + q + "=1", "", "", 400, sqlText},
			{"runs of an SQL connection id", "GET", "/_ref/connections/" + esc + "/runs", "", "", 404, ""},
			{"runs with an SQL status", "GET", conn + "/runs?status=" + q, "", "", 400, "status"},
			{"diagnostics of an SQL connection id", "GET", "/_ref/connections/" + esc + "/diagnostics", "", "", 404, ""},
		}
		for _, c := range refused {
			t.Run(c.name, func(t *testing.T) {
				before := h.state()
				var body any
				if c.body != "" || c.method == "PUT" || c.method == "POST" || c.method == "PATCH" {
					body = c.body
				}
				h.do(c.method, c.path, body).expectError(t, c.status, c.field)
				requireUnchanged(t, before, h.state())
			})
		}
		requireTablesIntact(t, h)

		// Free text is data: stored and returned byte for byte.
		t.Run("SQL in free text is stored literally", func(t *testing.T) {
			nasty := sqlText + ` " \ ; /* */ UNION SELECT 1 -- ` + "\u00e9"
			nastyJSON, _ := json.Marshal(nasty)
			n := string(nastyJSON)
			got := h.do("PUT", "/_ref/connectors/amazon", `{"display_name":`+n+`,"version":`+n+`,"streams":[{"name":`+n+`}],"x":{"k":`+n+`}}`).expect(t, 200)
			if got["display_name"] != nasty || got["version"] != nasty {
				t.Errorf("connector stored as %v, want the text literally", got)
			}
			got = h.do("GET", "/_ref/connectors/amazon/manifest", nil).expect(t, 200)
			m, _ := got["manifest"].(map[string]any)
			if got["display_name"] != nasty || m == nil || m["x"].(map[string]any)["k"] != nasty {
				t.Errorf("manifest read back as %v", got)
			}
			created := h.do("POST", "/_ref/connections", `{"connector_id":"amazon","display_name":`+n+`,"source_binding_key":`+n+`}`).expect(t, 201)
			if created["display_name"] != nasty || created["source_binding_key"] != nasty {
				t.Errorf("connection stored as %v", created)
			}
			id := created["connection_id"].(string)
			if id != specConnectionID("amazon", "account", nasty) {
				t.Errorf("connection id %s is not derived from the literal binding key", id)
			}
			patched := h.do("PATCH", "/_ref/connections/"+id, `{"display_name":`+n+`}`).expect(t, 200)
			if patched["display_name"] != nasty {
				t.Errorf("patched display_name = %v", patched["display_name"])
			}
			h.do("POST", "/_ref/spine/events", eventBody(validEvent("evt_sql_data", `"data":{"reason":`+n+`,`+n+`:[`+n+`]}`))).expect(t, 200)
			var data string
			if err := h.db.QueryRowContext(context.Background(), "SELECT data FROM spine_events WHERE event_id = ?", "evt_sql_data").Scan(&data); err != nil {
				t.Fatal(err)
			}
			var stored map[string]any
			if err := json.Unmarshal([]byte(data), &stored); err != nil || stored["reason"] != nasty || stored[nasty] == nil {
				t.Errorf("event data stored as %s", data)
			}
			// The scoped read finds the connection and shows the literal name.
			r := h.do("GET", "/_ref/connectors?connection="+url.QueryEscape(id), nil).expect(t, 200)
			items, _ := r["data"].([]any)
			if len(items) != 1 || items[0].(map[string]any)["display_name"] != nasty {
				t.Errorf("scoped read = %v", r)
			}
			// An SQL "connection" in the scoped read is just an id that matches nothing.
			r = h.do("GET", "/_ref/connectors?connection="+q, nil).expect(t, 200)
			if items, _ := r["data"].([]any); len(items) != 0 {
				t.Errorf("scoped read of %q = %v, want no rows", sqlText, r)
			}
			// The console escapes it.
			page := h.do("GET", "/dashboard/connections/"+id, nil)
			if page.status != 200 || strings.Contains(string(page.body), "<script>") {
				t.Errorf("console page of the SQL-named connection: %d", page.status)
			}
		})
		requireTablesIntact(t, h)
		if n := h.state().counts["spine_events"]; n != 2 {
			t.Errorf("spine_events has %d rows, want the fixture's event and the literal one", n)
		}
		h.requireNoTokensLogged(t)
	})
}

// TestTamperedCursorsAreRefused: a cursor that does not decode, was altered, or was made for
// another filter is a 400 naming cursor, and never silently pages from somewhere else.
func TestTamperedCursorsAreRefused(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		for _, c := range []string{"amazon", "chase"} {
			h.do("PUT", "/_ref/connectors/"+c, `{"display_name":"`+c+`"}`).expect(t, 201)
			for _, k := range []string{"a", "b", "c"} {
				h.do("POST", "/_ref/connections", `{"connector_id":"`+c+`","source_binding_key":"`+k+`"}`).expect(t, 201)
			}
		}
		page := func(query string) map[string]any {
			t.Helper()
			return h.do("GET", "/_ref/connectors?"+query, nil).expect(t, 200)
		}
		first := page("limit=1")
		valid, _ := first["next_cursor"].(string)
		if valid == "" || first["has_more"] != true {
			t.Fatalf("first page has no cursor: %v", first)
		}
		// The untouched cursor works.
		if got := page("limit=1&cursor=" + url.QueryEscape(valid)); len(got["data"].([]any)) != 1 {
			t.Fatalf("the valid cursor gives %v", got)
		}
		filtered, _ := page("limit=1&connector_id=amazon")["next_cursor"].(string)
		deep, _ := page("limit=1&depth=deep")["next_cursor"].(string)
		if filtered == "" || deep == "" {
			t.Fatal("no cursor for the filtered or the deep list")
		}

		type tc struct{ name, query string }
		cases := []tc{
			{"base64 garbage", "limit=1&cursor=" + url.QueryEscape("!!!not*base64***")},
			{"empty cursor", "limit=1&cursor="},
			{"base64 of garbage bytes", "limit=1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte{0xff, 0x00, 0x13, 0x37, 0xfe})},
			{"base64 of an empty object", "limit=1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`{}`))},
			{"base64 of JSON null", "limit=1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(`null`))},
			{"base64 of SQL", "limit=1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(sqlText))},
			{"std base64 with padding", "limit=1&cursor=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(`{"k":{}}`)))},
			{"oversized cursor", "limit=1&cursor=" + strings.Repeat("A", 3000)},
			{"cursor without limit", "cursor=" + url.QueryEscape(valid)},
			{"cursor of another connector_id", "limit=1&connector_id=chase&cursor=" + url.QueryEscape(filtered)},
			{"filtered cursor without the filter", "limit=1&cursor=" + url.QueryEscape(filtered)},
			{"unfiltered cursor with a filter", "limit=1&connector_id=amazon&cursor=" + url.QueryEscape(valid)},
			{"deep cursor on the overview", "limit=1&cursor=" + url.QueryEscape(deep)},
			{"overview cursor on the deep list", "limit=1&depth=deep&cursor=" + url.QueryEscape(valid)},
			{"cursor with a suffix", "limit=1&cursor=" + url.QueryEscape(valid+"A")},
			{"truncated cursor", "limit=1&cursor=" + url.QueryEscape(valid[:len(valid)-1])},
		}
		// One character flipped, at every position of the encoded cursor.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		for i := range valid {
			j := (strings.IndexByte(alphabet, valid[i]) + 1) % len(alphabet)
			flipped := valid[:i] + string(alphabet[j]) + valid[i+1:]
			cases = append(cases, tc{fmt.Sprintf("encoded char %d flipped", i), "limit=1&cursor=" + url.QueryEscape(flipped)})
		}
		// One bit flipped in every byte of the decoded cursor, re-encoded properly.
		raw, err := base64.RawURLEncoding.DecodeString(valid)
		if err != nil {
			t.Fatalf("the service's cursor is not base64url: %v", err)
		}
		for i := range raw {
			b := append([]byte(nil), raw...)
			b[i] ^= 0x01
			cases = append(cases, tc{fmt.Sprintf("decoded byte %d flipped", i), "limit=1&cursor=" + base64.RawURLEncoding.EncodeToString(b)})
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				h.do("GET", "/_ref/connectors?"+c.query, nil).expectError(t, http.StatusBadRequest, "cursor")
			})
		}
	})
}

// TestMalformedBodiesAreRefused adds what the fuzzers found to the bad-input matrix: data after
// the JSON object (a stray "}" or "]" slipped past the decoder and a manifest was stored empty),
// numbers whose fraction a float64 rounds away, and times that leave 1970-9999 only once in UTC.
func TestMalformedBodiesAreRefused(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		conn := "/_ref/connections/" + fx.conn
		withRecord := func(key, raw string) string {
			return strings.TrimSuffix(validFigures, "}") + `,"` + key + `":` + raw + `}`
		}
		cases := []badRequest{
			{"manifest with a stray brace", "PUT", "/_ref/connectors/newone", "", `{"display_name":"A"}}`, 400, ""},
			{"manifest with a stray bracket", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A"}]`, 400, ""},
			{"manifest with a second object", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A"} {"display_name":"B"}`, 400, ""},
			{"connection with a stray brace", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"t1"}}`, 400, ""},
			{"patch with a stray bracket", "PATCH", conn, "", `{"status":"paused"}]`, 400, ""},
			{"events with a stray brace", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_new")) + `}`, 400, ""},
			{"retained with a stray brace", "PUT", conn + "/retained/orders", "", validFigures + `}`, 400, ""},
			{"occurred_at in year 10000 once in UTC", "POST", "/_ref/spine/events", "", eventBody(eventJSON("evt_new", "run.started", "9999-12-31T23:59:59-01:00")), 400, "events[0].occurred_at"},
			{"occurred_at in 1969 once in UTC", "POST", "/_ref/spine/events", "", eventBody(eventJSON("evt_new", "run.started", "1970-01-01T00:00:00+00:01")), 400, "events[0].occurred_at"},
			{"retained fraction a float64 rounds away", "PUT", conn + "/retained/orders", "", figuresWith("record_count", "1.0000000000000001"), 400, "record_count"},
			{"retained half above 2^52", "PUT", conn + "/retained/orders", "", figuresWith("blob_bytes", "4503599627370496.5"), 400, "blob_bytes"},
			{"retained 10^huge", "PUT", conn + "/retained/orders", "", figuresWith("blob_bytes", "1e999999999999999999"), 400, "blob_bytes"},
			{"retained last_record_at in year 10000 once in UTC", "PUT", conn + "/retained/orders", "", withRecord("last_record_at", `"9999-12-31T23:59:59.999-23:59"`), 400, "last_record_at"},
			{"manifest staleness fraction", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","capabilities":{"refresh_policy":{"maximum_staleness_seconds":1.0000000000000001}}}`, 400, "capabilities.refresh_policy.maximum_staleness_seconds"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := h.state()
				h.do(c.method, c.path, c.body).expectError(t, c.status, c.field)
				requireUnchanged(t, before, h.state())
			})
		}
		// The edges that are valid stay accepted.
		h.do("POST", "/_ref/spine/events", eventBody(eventJSON("evt_edge", "run.started", "9999-12-31T23:59:59+01:00"))).expect(t, 200)
		r := h.do("PUT", conn+"/retained/orders", figuresWith("record_count", "1200e-2")).expect(t, 200)
		if num(t, r, "record_count") != 12 {
			t.Errorf("record_count 1200e-2 stored as %v", r["record_count"])
		}
	})
}
