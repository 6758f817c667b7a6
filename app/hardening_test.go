package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/httpx"
	"connsum/modules/metrics"
)

// The input and HTTP-semantics half of the hardening issue: what an attacker tried, per engine,
// each refusal checked for its status, code and field and for writing nothing.

// runRefused sends every case and checks the JSON error and that no table changed.
func runRefused(t *testing.T, h *harness, cases []badRequest) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.state()
			var body any
			if c.body != "" || c.method == "PUT" || c.method == "POST" || c.method == "PATCH" {
				body = c.body
			}
			var opts []reqOpt
			if c.ct != "" {
				opts = append(opts, withHeader("Content-Type", c.ct))
			}
			h.do(c.method, c.path, body, opts...).expectError(t, c.status, c.field)
			requireUnchanged(t, before, h.state())
		})
	}
}

// errorMessage is the message of an error answer.
func errorMessage(t *testing.T, r *response) string {
	t.Helper()
	var env struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &env); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return env.Error.Message
}

// TestNULAndLoneSurrogatesAreRefusedEverywhere: every string of every body — ids, names, keys,
// statuses, reasons, anything inside event data or a manifest, keys included — refuses U+0000
// and half a surrogate pair with a 400 naming the field. Before: PUT {"display_name":"A\u0000B"}
// was a 500 on both engines (PostgreSQL 42601, SQLite "unrecognized token"), data.reason with
// NUL a 500 on SQLite and silently shortened in failure_reason on PostgreSQL, and "\ud800" was
// stored as U+FFFD in display_name and data while the manifest route returned it unchanged.
func TestNULAndLoneSurrogatesAreRefusedEverywhere(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		conn := "/_ref/connections/" + fx.conn
		ev := func(extra string) string { return eventBody(validEvent("evt_hostile", extra)) }
		withRecordAt := func(at string) string {
			return strings.TrimSuffix(validFigures, "}") + `,"last_record_at":"` + at + `"}`
		}
		runRefused(t, h, []badRequest{
			{"new connector display_name NUL", "PUT", "/_ref/connectors/nul1", "", `{"display_name":"A\u0000B"}`, 400, "display_name"},
			{"connector display_name NUL", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A\u0000B"}`, 400, "display_name"},
			{"connector display_name lone surrogate", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A\ud800"}`, 400, "display_name"},
			{"manifest version NUL", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","version":"1.0\u0000"}`, 400, "version"},
			{"manifest version low surrogate alone", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","version":"\udc00"}`, 400, "version"},
			{"manifest profile_key NUL", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","capabilities":{"browser_surface":{"profile_key":"amazon\u0000"}}}`, 400, "capabilities.browser_surface.profile_key"},
			{"manifest stream name NUL", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","streams":[{"name":"orders"},{"name":"re\u0000turns"}]}`, 400, "streams[1].name"},
			{"manifest unknown key holding NUL", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","x_vendor":{"notes":["ok","\u0000"]}}`, 400, "x_vendor.notes[1]"},
			{"manifest key with NUL", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","x\u0000":1}`, 400, "x\x00"},
			{"connection display_name NUL", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","display_name":"A\u0000"}`, 400, "display_name"},
			{"connection source_binding_key NUL", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n\u00001"}`, 400, "source_binding_key"},
			{"connection source_binding_key lone surrogate", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n\udbff"}`, 400, "source_binding_key"},
			{"connection connector_id NUL", "POST", "/_ref/connections", "", `{"connector_id":"amazon\u0000"}`, 400, "connector_id"},
			{"connection status NUL", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","status":"active\u0000"}`, 400, "status"},
			{"patch display_name NUL", "PATCH", conn, "", `{"display_name":"A\u0000B"}`, 400, "display_name"},
			{"patch display_name reversed pair", "PATCH", conn, "", `{"display_name":"\udc00\ud800"}`, 400, "display_name"},
			{"event data.reason NUL", "POST", "/_ref/spine/events", "", ev(`"data":{"reason":"login\u0000required"}`), 400, "events[0].data.reason"},
			{"event data.reason lone surrogate", "POST", "/_ref/spine/events", "", ev(`"data":{"reason":"\ud800"}`), 400, "events[0].data.reason"},
			{"event data.browser_surface NUL", "POST", "/_ref/spine/events", "",
				ev(`"data":{"browser_surface":{"browser_surface_status":"surface_failed","browser_surface_wait_reason":"capacity\u0000full"}}`), 400, "events[0].data.browser_surface.browser_surface_wait_reason"},
			{"event data.browser_surface lone surrogate", "POST", "/_ref/spine/events", "",
				ev(`"data":{"browser_surface":{"browser_surface_profile_key":"amazon:\udfff"}}`), 400, "events[0].data.browser_surface.browser_surface_profile_key"},
			{"event data deep in an array", "POST", "/_ref/spine/events", "", ev(`"data":{"known_gaps":["a",{"b":"\u0000"}]}`), 400, "events[0].data.known_gaps[1].b"},
			{"event data key with NUL", "POST", "/_ref/spine/events", "", ev(`"data":{"r\u0000":1}`), 400, "events[0].data.r\x00"},
			{"event status NUL", "POST", "/_ref/spine/events", "", ev(`"status":"failed\u0000"`), 400, "events[0].status"},
			{"second event of a batch", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_a"), validEvent("evt_b", `"data":{"failure_reason":"\u0000"}`)), 400, "events[1].data.failure_reason"},
			{"event invalid UTF-8 names the field", "POST", "/_ref/spine/events", "", ev("\"data\":{\"r\":\"\xff\"}"), 400, "events[0].data.r"},
			{"retained last_record_at NUL", "PUT", conn + "/retained/orders", "", withRecordAt(`2026-11-20T08:00:00Z\u0000`), 400, "last_record_at"},
			{"retained last_record_at lone surrogate", "PUT", conn + "/retained/orders", "", withRecordAt(`\ud800`), 400, "last_record_at"},
			// Query strings follow the same rule (a NUL in ?connection= was a 500 on both engines).
			{"scoped read connection NUL", "GET", "/_ref/connectors?connection=%00", "", "", 400, "connection"},
			{"scoped read connection invalid UTF-8", "GET", "/_ref/connectors?connection=cin_%ED%A0%80", "", "", 400, "connection"},
			{"feed connector_id NUL", "GET", "/_ref/connectors?connector_id=amazon%00", "", "", 400, "connector_id"},
			{"runs status NUL", "GET", conn + "/runs?status=failed%00", "", "", 400, "status"},
			{"parameter name with NUL", "GET", "/_ref/connectors?depth%00=deep", "", "", 400, "depth\x00"},
		})
		if r := h.do("HEAD", "/_ref/connectors?connection=%00", nil); r.status != 400 || len(r.body) != 0 {
			t.Errorf("HEAD with a NUL in the query = %d %q, want 400 without a body", r.status, r.body)
		}
		// Text that only looks like an escape is text, and a valid pair is one character: stored
		// and returned as sent.
		got := h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"A\\u0000B \ud83d\ude00"}`).expect(t, 200)
		if got["display_name"] != `A\u0000B 😀` {
			t.Errorf("display_name stored as %q", got["display_name"])
		}
		r := h.do("GET", "/_ref/connectors/amazon/manifest", nil).expect(t, 200)
		if r["display_name"] != `A\u0000B 😀` {
			t.Errorf("manifest read back as %v", r)
		}
		h.requireNoTokensLogged(t)
	})
}

// TestOffsetsBeyond2359AreRefused: RFC 3339 offsets stop at ±23:59. Before,
// "2026-01-01T00:00:00+24:00" was accepted (Go's parser takes hour 24 and minute 60).
func TestOffsetsBeyond2359AreRefused(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		conn := "/_ref/connections/" + fx.conn
		withRecordAt := func(at string) string {
			return strings.TrimSuffix(validFigures, "}") + `,"last_record_at":"` + at + `"}`
		}
		var cases []badRequest
		for _, at := range []string{"2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00-24:00", "2026-01-01T00:00:00+23:60", "2026-01-01T00:00:00.5+00:60"} {
			cases = append(cases,
				badRequest{"occurred_at " + at, "POST", "/_ref/spine/events", "", eventBody(eventJSON("evt_off", "run.started", at)), 400, "events[0].occurred_at"},
				badRequest{"last_record_at " + at, "PUT", conn + "/retained/orders", "", withRecordAt(at), 400, "last_record_at"})
		}
		runRefused(t, h, cases)
		// ±23:59 are the edges that stay valid.
		h.do("POST", "/_ref/spine/events", eventBody(eventJSON("evt_p", "run.started", "2026-01-01T00:00:00+23:59"),
			eventJSON("evt_m", "run.started", "2026-01-01T00:00:00-23:59"))).expect(t, 200)
		row := h.do("PUT", conn+"/retained/orders", withRecordAt("2026-01-01T00:00:00+23:59")).expect(t, 200)
		if row["last_record_at"] != "2025-12-31T00:01:00.000Z" {
			t.Errorf("last_record_at +23:59 stored as %v", row["last_record_at"])
		}
	})
}

// TestRetainedSumsStayBelow2To53: each figure below 2^53 is valid (SPEC §1.5), but the feed
// reports sums; the write that would carry a connection's sum past 2^53-1 is a 400 naming the
// figure, and writes nothing. Before: 400 streams with every figure 2^53-1 answered 500 from
// the 342nd PUT on (bigint out of range) and the feed reported total_retained_bytes
// 9214364837600033793.
func TestRetainedSumsStayBelow2To53(t *testing.T) {
	const maxSafe = "9007199254740991"
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h) // stream orders: 1 record, 2+4+6 bytes
		conn := "/_ref/connections/" + fx.conn
		all := func(v string) string {
			return `{"record_count":` + v + `,"record_json_bytes":` + v + `,"record_changes_count":` + v +
				`,"record_changes_json_bytes":` + v + `,"blob_count":` + v + `,"blob_bytes":` + v + `}`
		}
		only := func(key, v string) string { // one figure set, the others 0
			var parts []string
			for _, k := range []string{"record_count", "record_json_bytes", "record_changes_count", "record_changes_json_bytes", "blob_count", "blob_bytes"} {
				val := "0"
				if k == key {
					val = v
				}
				parts = append(parts, `"`+k+`":`+val)
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
		runRefused(t, h, []badRequest{
			// The attack: every figure 2^53-1 in one stream; the stream's own total_bytes would pass it.
			{"every figure 2^53-1", "PUT", conn + "/retained/s1", "", all(maxSafe), 400, "record_changes_json_bytes"},
			// orders holds 1 record: one more stream of 2^53-1 records passes the sum.
			{"record_count sum", "PUT", conn + "/retained/s1", "", only("record_count", maxSafe), 400, "record_count"},
			{"blob_count sum", "PUT", conn + "/retained/s1", "", only("blob_count", maxSafe), 400, "blob_count"},
			// orders holds 12 bytes: total_bytes passes 2^53-1 at blob_bytes.
			{"total_bytes sum", "PUT", conn + "/retained/s1", "", only("blob_bytes", "9007199254740980"), 400, "blob_bytes"},
		})
		// Up to exactly 2^53-1 is accepted, and the feed reports it exactly.
		h.do("PUT", conn+"/retained/s1", only("record_count", "9007199254740990")).expect(t, 200)
		h.do("PUT", conn+"/retained/s2", only("blob_bytes", "9007199254740979")).expect(t, 200)
		runRefused(t, h, []badRequest{
			{"one more record", "PUT", conn + "/retained/s3", "", only("record_count", "1"), 400, "record_count"},
			{"one more byte", "PUT", conn + "/retained/s3", "", only("record_json_bytes", "1"), 400, "record_json_bytes"},
		})
		r := h.do("GET", "/_ref/connectors?connection="+fx.conn, nil).expect(t, 200)
		item := r["data"].([]any)[0].(map[string]any)
		if item["total_records"] != json.Number(maxSafe) || item["total_retained_bytes"] != json.Number(maxSafe) {
			t.Errorf("feed total_records %v, total_retained_bytes %v; want both %s", item["total_records"], item["total_retained_bytes"], maxSafe)
		}
		// Replacing a stream counts its new figures, not old and new: a smaller report passes.
		h.do("PUT", conn+"/retained/s1", only("record_count", "5")).expect(t, 200)
		h.do("PUT", conn+"/retained/s3", only("record_count", "5")).expect(t, 200)
	})
}

// TestEventDataLimitHoldsAsStored: the 64 KiB data limit holds for what is stored. Before, the
// stored copy was re-encoded with < as \u003c: 65,000 "<" (accepted as sent) were stored as
// 390,008 bytes.
func TestEventDataLimitHoldsAsStored(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		seedValidationFixture(t, h)
		data := `{"p":"` + strings.Repeat("<", 65000) + ` & >"}`
		h.do("POST", "/_ref/spine/events", eventBody(validEvent("evt_lt", `"data":`+data))).expect(t, 200)
		var stored string
		if err := h.db.QueryRowContext(context.Background(), "SELECT data FROM spine_events WHERE event_id = ?", "evt_lt").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != data {
			t.Errorf("data of %d bytes stored as %d bytes (%.30s…)", len(data), len(stored), stored)
		}
		// Sent again, it is a duplicate (same content hash), not a conflict.
		if r := h.do("POST", "/_ref/spine/events", eventBody(validEvent("evt_lt", `"data":`+data))).expect(t, 200); num(t, r, "duplicates") != 1 {
			t.Errorf("the same event again = %v, want 1 duplicate", r)
		}
		// U+2028 is always escaped when stored (3 bytes → 6): within 64 KiB as sent, not as stored.
		sep := `{"p":"` + strings.Repeat("\u2028", 21800) + `"}`
		runRefused(t, h, []badRequest{
			{"data over 64 KiB as stored", "POST", "/_ref/spine/events", "", eventBody(validEvent("evt_sep", `"data":`+sep)), 400, "events[0].data"},
		})
	})
}

// TestMisspeltFieldsAreNamedWithASuggestion: an unknown field next to a missing required one is
// named, with the known field suggested, in every body. Before, {"occured_at": …} answered
// "events[0].occurred_at is required".
func TestMisspeltFieldsAreNamedWithASuggestion(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		conn := "/_ref/connections/" + fx.conn
		for _, c := range []struct {
			name, method, path, body, field, hint string
		}{
			{"event occured_at", "POST", "/_ref/spine/events", eventBody(`{"event_type":"run.started","occured_at":"2026-11-20T08:01:02Z"}`), "events[0].occured_at", "is not a known field; did you mean occurred_at?"},
			{"event eventType", "POST", "/_ref/spine/events", eventBody(`{"eventtype":"run.started","occurred_at":"2026-11-20T08:01:02Z"}`), "events[0].eventtype", "is not a known field; did you mean event_type?"},
			{"batch event", "POST", "/_ref/spine/events", `{"event":[` + validEvent("evt_t") + `]}`, "event", "is not a known field; did you mean events?"},
			{"connection conector_id", "POST", "/_ref/connections", `{"conector_id":"amazon"}`, "conector_id", "is not a known field; did you mean connector_id?"},
			{"patch stauts", "PATCH", conn, `{"stauts":"paused"}`, "stauts", "is not a known field; did you mean status?"},
			{"retained blob_byte", "PUT", conn + "/retained/orders", strings.Replace(validFigures, `"blob_bytes"`, `"blob_byte"`, 1), "blob_byte", "is not a known field; did you mean blob_bytes?"},
			{"manifest display_nme (unknown keys are kept)", "PUT", "/_ref/connectors/amazon", `{"display_nme":"A"}`, "display_name", `is required (the body has "display_nme"; did you mean display_name?)`},
			{"no suggestion for an unrelated key", "POST", "/_ref/connections", `{"connector_id":"amazon","owner":"me"}`, "owner", "is not a known field"},
		} {
			t.Run(c.name, func(t *testing.T) {
				before := h.state()
				r := h.do(c.method, c.path, c.body)
				r.expectError(t, 400, c.field)
				if got := errorMessage(t, r); got != c.hint {
					t.Errorf("message %q, want %q", got, c.hint)
				}
				requireUnchanged(t, before, h.state())
			})
		}
	})
}

// TestHEADAndMethodNotAllowed: HEAD is served wherever GET is, behind the same guard (an
// unauthenticated HEAD is a 401); a known path asked with a method it does not serve is a 405
// in the JSON error shape with Allow, behind the path's guard; an unknown method is a JSON 501.
// Before: HEAD on any route was a 404, and POST /_ref/connectors/foo a 404 "no route".
func TestHEADAndMethodNotAllowed(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		conn := "/_ref/connections/" + fx.conn

		for _, c := range []struct {
			path   string
			opt    reqOpt
			status int
		}{
			{"/_ref/connectors", asBearer(testOwnerToken), 200},
			{"/_ref/connectors?connection=" + fx.conn, asBearer(testOwnerToken), 200},
			{"/_ref/connectors/amazon/manifest", asBearer(testOwnerToken), 200},
			{"/_ref/connectors/nope/manifest", asBearer(testOwnerToken), 404},
			{conn + "/runs", asBearer(testOwnerToken), 200},
			{"/healthz", asBearer(""), 200},
			{"/readyz", asBearer(""), 200},
			{"/metrics", asBearer(testAdminToken), 200},
			{"/admin/summary-cache", asBearer(testAdminToken), 200},
			{"/_ref/connectors", asBearer(""), 401},
			{"/_ref/connectors", asBearer("wrong-token-0123456789abc"), 401},
			{"/admin/summary-cache", asBearer(testOwnerToken), 403},
			{"/_ref/nothing-here", asBearer(testOwnerToken), 404},
		} {
			head := h.do("HEAD", c.path, nil, c.opt)
			get := h.do("GET", c.path, nil, c.opt)
			if head.status != c.status || get.status != c.status {
				t.Errorf("HEAD %s = %d, GET = %d; want %d", c.path, head.status, get.status, c.status)
				continue
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD %s has a body of %d bytes", c.path, len(head.body))
			}
			if head.header.Get("Content-Type") != get.header.Get("Content-Type") {
				t.Errorf("HEAD %s content type %q, GET %q", c.path, head.header.Get("Content-Type"), get.header.Get("Content-Type"))
			}
			if c.status == 200 && strings.HasPrefix(c.path, "/_ref/connectors?") && head.header.Get("X-Summary-Cache") == "" {
				t.Errorf("HEAD %s lacks the feed's headers: %v", c.path, head.header)
			}
		}

		type wrong struct {
			method, path string
			opt          reqOpt
			status       int
			allow        string
		}
		cases := []wrong{
			{"POST", "/_ref/connectors/foo", asBearer(testOwnerToken), 405, "PUT"},
			{"GET", "/_ref/connectors/foo", asBearer(testOwnerToken), 405, "PUT"},
			{"DELETE", "/_ref/connectors/amazon", asBearer(testOwnerToken), 405, "PUT"},
			{"PATCH", "/_ref/connectors", asBearer(testOwnerToken), 405, "GET, HEAD"},
			{"DELETE", conn, asBearer(testOwnerToken), 405, "PATCH"},
			{"GET", "/_ref/spine/events", asBearer(testOwnerToken), 405, "POST"},
			{"PUT", "/_ref/spine/events", asBearer(testOwnerToken), 405, "POST"},
			{"POST", conn + "/retained/orders", asBearer(testOwnerToken), 405, "PUT, DELETE"},
			{"OPTIONS", "/_ref/connectors", asBearer(testOwnerToken), 405, "GET, HEAD"},
			{"POST", "/admin/summary-cache", asBearer(testAdminToken), 405, "GET, HEAD, DELETE"},
			{"POST", "/healthz", asBearer(""), 405, "GET, HEAD"},
			// The path's guard comes first: no credentials learn nothing about its methods.
			{"POST", "/_ref/connectors/foo", asBearer(""), 401, ""},
			{"DELETE", conn, asBearer("wrong-token-0123456789abc"), 401, ""},
			{"POST", "/admin/summary-cache", asBearer(testOwnerToken), 403, ""},
			{"POST", "/admin/summary-cache", asBearer(""), 401, ""},
			// An unknown path stays a 404.
			{"POST", "/_ref/nothing-here", asBearer(testOwnerToken), 404, ""},
		}
		for _, c := range cases {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				before := h.state()
				var body any
				if c.method == "POST" || c.method == "PUT" || c.method == "PATCH" {
					body = `{"display_name":"A"}`
				}
				r := h.do(c.method, c.path, body, c.opt)
				field := "-"
				if c.status == 401 || c.status == 403 {
					field = "" // the guard's answer, whatever it names
				}
				r.expectError(t, c.status, field)
				if got := r.header.Get("Allow"); got != c.allow {
					t.Errorf("Allow = %q, want %q", got, c.allow)
				}
				if c.status == 405 && !strings.Contains(string(r.body), `"method_not_allowed"`) {
					t.Errorf("405 body %s lacks the code method_not_allowed", r.body)
				}
				requireUnchanged(t, before, h.state())
			})
		}
		// A method fiber does not know at all is answered like any other request: through the
		// middleware (security headers, metrics) to a 501 in the JSON error shape. (Sent past
		// h.do: the document's check wants a 4xx for every request it refuses.)
		for _, m := range []string{"FOO", "PROPFIND"} {
			resp, err := h.app.Test(httptest.NewRequest(m, "/healthz", nil), -1)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := &response{status: resp.StatusCode, header: resp.Header, body: raw}
			r.expectError(t, 501, "-")
			if !strings.Contains(string(raw), `"not_implemented"`) || r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s /healthz = %s %v, want not_implemented with the security headers", m, raw, r.header)
			}
		}

		// With no admin token configured, admin paths stay hidden whatever the method.
		ownerOnly := startApp(t, dbURL, Tokens{Owner: testOwnerToken}, nil)
		for _, m := range []string{"GET", "HEAD", "POST", "PUT"} {
			if r := ownerOnly.do(m, "/admin/summary-cache", nil, asBearer(testOwnerToken)); r.status != 404 {
				t.Errorf("%s /admin/summary-cache without an admin token = %d, want 404", m, r.status)
			}
		}
	})
}

// TestMetricsCountTheStatusTheClientReceived: the code label is the status the client got — an
// error returned by a handler is counted with the status the error handler maps it to (503 for
// a database past its deadline, the guard's 401, 404 for no route, 405). Before, a fault test's
// 15 answers 503 of 507 event POSTs were counted as 2xx, and so were 401 and 404.
func TestMetricsCountTheStatusTheClientReceived(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := metrics.New()
	if err != nil {
		t.Fatal(err)
	}
	probe := &deadlineProbe{} // GET /_ref/probe, owner: 200, or 503 while it fails
	app := NewServer(ServerParams{Config: cfg, Tokens: Tokens{Owner: testOwnerToken, Admin: testAdminToken},
		Registrars: []httpx.Registrar{probe, reg}, Middleware: []httpx.Middleware{reg.Middleware()},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := &harness{t: t, app: app, logs: &syncBuffer{}}

	for _, c := range []struct {
		fail         error
		method, path string
		opt          reqOpt
		status       int
	}{
		{nil, "GET", "/_ref/probe", asBearer(testOwnerToken), 200},
		{nil, "GET", "/_ref/probe", asBearer(testOwnerToken), 200},
		{nil, "GET", "/_ref/probe", asBearer(""), 401},
		{context.DeadlineExceeded, "GET", "/_ref/probe", asBearer(testOwnerToken), 503},
		{context.DeadlineExceeded, "GET", "/_ref/probe", asBearer(testOwnerToken), 503},
		{context.DeadlineExceeded, "GET", "/_ref/probe", asBearer(testOwnerToken), 503},
		{nil, "GET", "/nowhere", asBearer(""), 404},
		{nil, "POST", "/metrics", asBearer(testAdminToken), 405},
	} {
		probe.fail = c.fail
		if r := h.do(c.method, c.path, nil, c.opt); r.status != c.status {
			t.Fatalf("%s %s = %d %s, want %d", c.method, c.path, r.status, r.body, c.status)
		}
	}
	for _, m := range []string{"FOO", "BAR"} { // unknown methods share one label value
		resp, err := h.app.Test(httptest.NewRequest(m, "/_ref/probe", nil), -1)
		if err != nil || resp.StatusCode != http.StatusNotImplemented {
			t.Fatalf("%s /_ref/probe = %v, %v; want 501", m, resp, err)
		}
		resp.Body.Close()
	}
	r := h.do("GET", "/metrics", nil, asBearer(testAdminToken))
	if r.status != http.StatusOK {
		t.Fatalf("/metrics = %d", r.status)
	}
	body := string(r.body)
	for _, want := range []string{
		`connsum_http_request_duration_seconds_count{code="2xx",method="GET",route="/_ref/probe"} 2`,
		`connsum_http_request_duration_seconds_count{code="4xx",method="GET",route="/_ref/probe"} 1`,
		`connsum_http_request_duration_seconds_count{code="5xx",method="GET",route="/_ref/probe"} 3`,
		`connsum_http_request_duration_seconds_count{code="4xx",method="GET",route="unmatched"} 1`,
		`connsum_http_request_duration_seconds_count{code="4xx",method="POST",route="/metrics"} 1`,
		`connsum_http_request_duration_seconds_count{code="5xx",method="X-UNKNOWN-METHOD",route="unmatched"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(body, "connsum_http_request_duration_seconds_count"))
		}
	}
	for _, wrong := range []string{`code="2xx",method="GET",route="unmatched"`, `code="2xx",method="POST"`} {
		if strings.Contains(body, wrong) {
			t.Errorf("/metrics counts an error answer as 2xx: %s", wrong)
		}
	}
}

// TestMetricsSeriesOnTheService: the same through the whole service on both engines: a feed
// read, an unauthenticated read and an unknown path land in 2xx, 4xx and 4xx.
func TestMetricsSeriesOnTheService(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		h.do("GET", "/_ref/connectors", nil).expect(t, 200)
		h.do("GET", "/_ref/connectors", nil, asBearer("")).expectError(t, 401, "")
		h.do("GET", "/_ref/nothing-here", nil).expectError(t, 404, "")
		h.do("PUT", "/_ref/connectors/nul1", `{"display_name":"A\u0000B"}`).expectError(t, 400, "display_name")
		body := string(h.do("GET", "/metrics", nil, asBearer(testAdminToken)).body)
		for _, want := range []string{
			`connsum_http_request_duration_seconds_count{code="2xx",method="GET",route="/_ref/connectors"} 1`,
			`connsum_http_request_duration_seconds_count{code="4xx",method="GET",route="/_ref/connectors"} 1`,
			`connsum_http_request_duration_seconds_count{code="4xx",method="PUT",route="/_ref/connectors/:connector_id"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(body, `code="2xx",method="PUT"`) || strings.Contains(body, `code="5xx"`) {
			t.Errorf("/metrics counts a refused request as 2xx or 5xx:\n%s", grepLines(body, "connsum_http_request_duration_seconds_count"))
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCacheMaxEntriesConfig: summary.cache.max_entries bounds the overview cache (default 1000),
// reaches the cache, and an invalid value stops the start naming the key.
func TestCacheMaxEntriesConfig(t *testing.T) {
	cfg, err := LoadConfig("", false, noEnv, nil)
	if err != nil || cfg.CacheMaxEntries != 1000 {
		t.Fatalf("default summary.cache.max_entries = %d, %v; want 1000", cfg.CacheMaxEntries, err)
	}
	env := func(k string) (string, bool) { return "25", k == "CONNSUM_SUMMARY_CACHE_MAX_ENTRIES" }
	if cfg, err := LoadConfig("", false, env, nil); err != nil || cfg.CacheMaxEntries != 25 {
		t.Errorf("CONNSUM_SUMMARY_CACHE_MAX_ENTRIES=25 gives %v, %v", cfg, err)
	}
	for _, bad := range []string{"0", "-1", "abc", "1.5", "1000001"} {
		_, err := LoadConfig("", false, noEnv, map[string]string{"summary.cache.max_entries": bad})
		if ce, ok := err.(*ConfigError); !ok || ce.Key != "summary.cache.max_entries" {
			t.Errorf("summary.cache.max_entries=%s: %v, want a ConfigError naming the key", bad, err)
		}
	}
	h := startApp(t, "sqlite:"+t.TempDir()+"/c.db", Tokens{Owner: testOwnerToken, Admin: testAdminToken},
		map[string]string{"summary.cache.sqlite": "true", "summary.cache.max_entries": "7"})
	st := h.do("GET", "/admin/summary-cache", nil, asBearer(testAdminToken)).expect(t, 200)
	if st["max_entries"] != json.Number("7") {
		t.Errorf("cache state max_entries = %v, want 7", st["max_entries"])
	}
}
