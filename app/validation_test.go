package app

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connsum/modules/bootstrap/dbtest"
)

// validFigures is a retained body that passes, for cases that break one thing elsewhere.
const validFigures = `{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5,"blob_bytes":6}`

// figuresWith replaces one figure of validFigures with raw.
func figuresWith(key, raw string) string {
	out := validFigures
	for _, k := range []string{"record_count", "record_json_bytes", "record_changes_count", "record_changes_json_bytes", "blob_count", "blob_bytes"} {
		if k == key {
			i := strings.Index(out, `"`+k+`":`) + len(k) + 3
			j := i + strings.IndexAny(out[i:], ",}")
			out = out[:i] + raw + out[j:]
		}
	}
	return out
}

// validEvent is an event that passes; bad events are built by editing a copy.
func validEvent(id string, extra ...string) string {
	return eventJSON(id, "run.progress", "2026-11-20T08:01:02.345+01:00", append([]string{`"run_id":"run_v"`}, extra...)...)
}

// nestedObject is a JSON object nested exactly levels deep.
func nestedObject(levels int) string {
	return strings.Repeat(`{"a":`, levels-1) + `{}` + strings.Repeat(`}`, levels-1)
}

// validationFixture is the state every refused request must leave untouched.
type validationFixture struct {
	conn string // an existing connection id
}

func seedValidationFixture(t *testing.T, h *harness) validationFixture {
	t.Helper()
	h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon","streams":[{"name":"orders"}]}`).expect(t, 201)
	conn := h.do("POST", "/_ref/connections", `{"connector_id":"amazon"}`).expect(t, 201)["connection_id"].(string)
	h.do("POST", "/_ref/connections", `{"connector_id":"amazon","source_binding_key":"second","connection_id":"cin_second"}`).expect(t, 201)
	h.do("POST", "/_ref/spine/events", eventBody(validEvent("evt_base"))).expect(t, 200)
	h.do("PUT", "/_ref/connections/"+conn+"/retained/orders", validFigures).expect(t, 200)
	return validationFixture{conn: conn}
}

type badRequest struct {
	name   string
	method string
	path   string
	ct     string // "" → application/json
	body   string
	status int
	field  string // see expectError
}

func TestRefusedRequestsWriteNothing(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		fx := seedValidationFixture(t, h)
		conn := "/_ref/connections/" + fx.conn
		ev0 := func(extra ...string) string { return eventBody(validEvent("evt_new", extra...)) }
		evRaw := func(raw string) string { return eventBody(raw) }

		cases := []badRequest{
			// Connectors.
			{"connector id upper case", "PUT", "/_ref/connectors/Amazon", "", `{"display_name":"A"}`, 400, "connector_id"},
			{"connector id leading dash", "PUT", "/_ref/connectors/-amazon", "", `{"display_name":"A"}`, 400, "connector_id"},
			{"connector id too long", "PUT", "/_ref/connectors/" + strings.Repeat("a", 129), "", `{"display_name":"A"}`, 400, "connector_id"},
			{"connector id with a space", "PUT", "/_ref/connectors/ama%20zon", "", `{"display_name":"A"}`, 400, "connector_id"},
			{"manifest without display_name", "PUT", "/_ref/connectors/amazon", "", `{"version":"2.0.0"}`, 400, "display_name"},
			{"manifest blank display_name", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"  "}`, 400, "display_name"},
			{"manifest display_name a number", "PUT", "/_ref/connectors/amazon", "", `{"display_name":5}`, 400, "display_name"},
			{"manifest version a number", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","version":2}`, 400, "version"},
			{"manifest streams an object", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","streams":{"name":"x"}}`, 400, "streams"},
			{"manifest stream without name", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","streams":[{"name":"a"},{"title":"b"}]}`, 400, "streams[1].name"},
			{"manifest listed a string", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","capabilities":{"public_listing":{"listed":"false"}}}`, 400, "capabilities.public_listing.listed"},
			{"manifest staleness negative", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A","capabilities":{"refresh_policy":{"maximum_staleness_seconds":-5}}}`, 400, "capabilities.refresh_policy.maximum_staleness_seconds"},
			{"manifest an array", "PUT", "/_ref/connectors/amazon", "", `[{"display_name":"A"}]`, 400, ""},
			{"manifest malformed", "PUT", "/_ref/connectors/amazon", "", `{"display_name":"A"`, 400, ""},
			{"manifest empty body", "PUT", "/_ref/connectors/amazon", "", ``, 400, ""},
			{"manifest text/plain", "PUT", "/_ref/connectors/amazon", "text/plain", `{"display_name":"A"}`, 415, ""},
			{"manifest form content type", "PUT", "/_ref/connectors/newone", "application/x-www-form-urlencoded", `{"display_name":"A"}`, 415, ""},
			{"manifest invalid UTF-8", "PUT", "/_ref/connectors/amazon", "", "{\"display_name\":\"Am\xffzon\"}", 400, ""},
			{"new connector invalid UTF-8", "PUT", "/_ref/connectors/newone", "", "{\"display_name\":\"\xc3\x28\"}", 400, ""},
			{"unknown connector manifest", "GET", "/_ref/connectors/nope/manifest", "", "", 404, ""},

			// Connections.
			{"connection unknown connector", "POST", "/_ref/connections", "", `{"connector_id":"chase"}`, 404, "connector_id"},
			{"connection without connector_id", "POST", "/_ref/connections", "", `{"display_name":"x"}`, 400, "connector_id"},
			{"connection bad connector_id", "POST", "/_ref/connections", "", `{"connector_id":"Amazon!"}`, 400, "connector_id"},
			{"connection bad status", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","status":"deleted"}`, 400, "status"},
			{"connection bad source_kind", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","source_kind":"cloud"}`, 400, "source_kind"},
			{"connection status a number", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","status":1}`, 400, "status"},
			{"connection bad client id", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","connection_id":"conn-1"}`, 400, "connection_id"},
			{"connection unknown field", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n1","owner":"me"}`, 400, "owner"},
			{"connection client id conflicts with the source's id", "POST", "/_ref/connections", "", `{"connector_id":"amazon","connection_id":"cin_other"}`, 409, ""},
			{"connection client id used by another source", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n2","connection_id":"cin_second"}`, 409, ""},
			{"connection derived id of another source", "POST", "/_ref/connections", "", `{"connector_id":"amazon","source_binding_key":"n3","connection_id":"` + fx.conn + `"}`, 409, ""},
			{"connection text/plain", "POST", "/_ref/connections", "text/plain", `{"connector_id":"amazon","source_binding_key":"n1"}`, 415, ""},
			{"connection invalid UTF-8", "POST", "/_ref/connections", "", "{\"connector_id\":\"amazon\",\"source_binding_key\":\"n\xfe\"}", 400, ""},
			{"patch unknown connection", "PATCH", "/_ref/connections/cin_nope", "", `{"status":"paused"}`, 404, ""},
			{"patch bad status", "PATCH", conn, "", `{"status":"archived"}`, 400, "status"},
			{"patch empty object", "PATCH", conn, "", `{}`, 400, ""},
			{"patch unknown field", "PATCH", conn, "", `{"status":"paused","connector_id":"chase"}`, 400, "connector_id"},
			{"patch blank display_name", "PATCH", conn, "", `{"display_name":""}`, 400, "display_name"},
			{"patch text/plain", "PATCH", conn, "text/plain", `{"status":"paused"}`, 415, ""},

			// Spine events.
			{"event missing event_type", "POST", "/_ref/spine/events", "", evRaw(`{"event_id":"evt_new","occurred_at":"2026-11-20T08:01:02Z"}`), 400, "events[0].event_type"},
			{"event bad event_type", "POST", "/_ref/spine/events", "", evRaw(eventJSON("evt_new", "Run Started", "2026-11-20T08:01:02Z")), 400, "events[0].event_type"},
			{"event occurred_at without offset", "POST", "/_ref/spine/events", "", evRaw(eventJSON("evt_new", "run.started", "2026-11-20T08:01:02.345")), 400, "events[0].occurred_at"},
			{"event occurred_at not a time", "POST", "/_ref/spine/events", "", evRaw(eventJSON("evt_new", "run.started", "soon")), 400, "events[0].occurred_at"},
			{"event missing occurred_at", "POST", "/_ref/spine/events", "", evRaw(`{"event_id":"evt_new","event_type":"run.started"}`), 400, "events[0].occurred_at"},
			{"event bad run_id", "POST", "/_ref/spine/events", "", evRaw(eventJSON("evt_new", "run.started", "2026-11-20T08:01:02Z", `"run_id":"run/7"`)), 400, "events[0].run_id"},
			{"event bad event_id", "POST", "/_ref/spine/events", "", evRaw(eventJSON("evt new", "run.started", "2026-11-20T08:01:02Z")), 400, "events[0].event_id"},
			{"event bad status", "POST", "/_ref/spine/events", "", ev0(`"status":"FAILED"`), 400, "events[0].status"},
			{"event data an array", "POST", "/_ref/spine/events", "", ev0(`"data":["a"]`), 400, "events[0].data"},
			{"event data a string", "POST", "/_ref/spine/events", "", ev0(`"data":"reason"`), 400, "events[0].data"},
			{"event data over 64 KiB", "POST", "/_ref/spine/events", "", ev0(`"data":{"pad":"` + strings.Repeat("x", 64<<10) + `"}`), 400, "events[0].data"},
			{"event data nested 33 levels", "POST", "/_ref/spine/events", "", ev0(`"data":` + nestedObject(33)), 400, "events[0].data"},
			{"event unknown field", "POST", "/_ref/spine/events", "", ev0(`"severity":"high"`), 400, "events[0].severity"},
			{"event source_kind without source_id", "POST", "/_ref/spine/events", "", ev0(`"source_kind":"connector"`), 400, "events[0].source_id"},
			{"event bad source_kind", "POST", "/_ref/spine/events", "", ev0(`"source_kind":"agent","source_id":"amazon"`), 400, "events[0].source_kind"},
			{"event disagreeing connection ids", "POST", "/_ref/spine/events", "", ev0(`"connection_id":"cin_a","connector_instance_id":"cin_b"`), 400, "events[0].connection_id"},
			{"events missing", "POST", "/_ref/spine/events", "", `{}`, 400, "events"},
			{"events empty", "POST", "/_ref/spine/events", "", `{"events":[]}`, 400, "events"},
			{"events an object", "POST", "/_ref/spine/events", "", `{"events":{"a":1}}`, 400, "events"},
			{"events unknown top-level key", "POST", "/_ref/spine/events", "", `{"events":[` + validEvent("evt_new") + `],"source":"x"}`, 400, "source"},
			{"events text/plain", "POST", "/_ref/spine/events", "text/plain", ev0(), 415, ""},
			{"events invalid UTF-8", "POST", "/_ref/spine/events", "", ev0("\"data\":{\"r\":\"\xff\"}"), 400, ""},
			{"events batch with events[2] invalid", "POST", "/_ref/spine/events", "",
				eventBody(validEvent("evt_a"), validEvent("evt_b"), eventJSON("evt_c", "run.failed", "2026-11-20 08:01:02"), validEvent("evt_d")), 400, "events[2].occurred_at"},
			{"events batch with events[2] data not an object", "POST", "/_ref/spine/events", "",
				eventBody(validEvent("evt_a"), validEvent("evt_b"), validEvent("evt_c", `"data":[]`)), 400, "events[2].data"},
			{"event_id conflicting with a stored event", "POST", "/_ref/spine/events", "",
				eventBody(validEvent("evt_a"), eventJSON("evt_base", "run.failed", "2026-11-20T08:01:02.345+01:00", `"run_id":"run_v"`)), 409, "events[1].event_id"},
			{"event_id conflicting inside the batch", "POST", "/_ref/spine/events", "",
				eventBody(validEvent("evt_a"), validEvent("evt_a", `"status":"failed"`)), 409, "events[1].event_id"},

			// Retained sizes.
			{"retained negative", "PUT", conn + "/retained/orders", "", figuresWith("record_count", "-1"), 400, "record_count"},
			{"retained fractional", "PUT", conn + "/retained/orders", "", figuresWith("record_json_bytes", "1.5"), 400, "record_json_bytes"},
			{"retained 2^53", "PUT", conn + "/retained/orders", "", figuresWith("blob_bytes", "9007199254740992"), 400, "blob_bytes"},
			{"retained beyond int64", "PUT", conn + "/retained/orders", "", figuresWith("blob_bytes", "18446744073709551616"), 400, "blob_bytes"},
			{"retained string figure", "PUT", conn + "/retained/orders", "", figuresWith("blob_count", `"5"`), 400, "blob_count"},
			{"retained boolean figure", "PUT", conn + "/retained/orders", "", figuresWith("record_changes_count", `true`), 400, "record_changes_count"},
			{"retained missing figure", "PUT", conn + "/retained/orders", "", `{"record_count":1,"record_json_bytes":2,"record_changes_count":3,"record_changes_json_bytes":4,"blob_count":5}`, 400, "blob_bytes"},
			{"retained unknown field", "PUT", conn + "/retained/orders", "", strings.TrimSuffix(validFigures, "}") + `,"total_bytes":21}`, 400, "total_bytes"},
			{"retained bad last_record_at", "PUT", conn + "/retained/orders", "", strings.TrimSuffix(validFigures, "}") + `,"last_record_at":"2026-11-20T08:00:00"}`, 400, "last_record_at"},
			{"retained new stream negative", "PUT", conn + "/retained/returns", "", figuresWith("record_count", "-3"), 400, "record_count"},
			{"retained bad stream name", "PUT", conn + "/retained/-orders", "", validFigures, 400, "stream"},
			{"retained unknown connection", "PUT", "/_ref/connections/cin_nope/retained/orders", "", validFigures, 404, ""},
			{"retained text/plain", "PUT", conn + "/retained/orders", "text/plain", validFigures, 415, ""},
			{"retained delete unknown stream", "DELETE", conn + "/retained/returns", "", "", 404, ""},
			{"retained delete unknown connection", "DELETE", "/_ref/connections/cin_nope/retained/orders", "", "", 404, ""},

			// Routing.
			{"unknown route", "GET", "/_ref/nothing-here", "", "", 404, ""},
		}
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
	})
}

func TestBatchLimits(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		seedValidationFixture(t, h)

		// 5000 events are accepted; 5001 are refused with 413.
		events := make([]string, 5001)
		for i := range events {
			events[i] = eventJSON(fmt.Sprintf("evt_bulk_%d", i), "run.progress", "2026-11-20T08:00:00Z")
		}
		before := h.state()
		h.do("POST", "/_ref/spine/events", eventBody(events...)).expectError(t, 413, "")
		requireUnchanged(t, before, h.state())
		res := h.do("POST", "/_ref/spine/events", eventBody(events[:5000]...)).expect(t, 200)
		if num(t, res, "accepted") != 5000 {
			t.Errorf("a batch of 5000 = %v, want accepted 5000", res)
		}
		if n := h.state().counts["spine_events"]; n != before.counts["spine_events"]+5000 {
			t.Errorf("%d events stored, want %d", n, before.counts["spine_events"]+5000)
		}

		// Data limits are inclusive: exactly 64 KiB and exactly 32 levels pass.
		pad := strings.Repeat("x", 64<<10-len(`{"pad":""}`))
		res = h.do("POST", "/_ref/spine/events", eventBody(
			validEvent("evt_64k", `"data":{"pad":"`+pad+`"}`),
			validEvent("evt_32", `"data":`+nestedObject(32)),
		)).expect(t, 200)
		if num(t, res, "accepted") != 2 {
			t.Errorf("data at the limits = %v, want both accepted", res)
		}
	})
}

// TestBodyOverLimit sends a body over the 8 MiB limit to the real listener: fiber refuses it
// before the handler, and the answer must still be the JSON error shape with 413. (app.Test
// cannot be used: it returns fasthttp's error instead of the answer.)
func TestBodyOverLimit(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		seedValidationFixture(t, h)
		before := h.state()

		const size = 8<<20 + 1
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		// The server refuses on the declared length, so only the head is sent: sending the
		// whole body to a server that already closed could reset the connection before the
		// answer is read.
		fmt.Fprintf(conn, "POST /_ref/spine/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", testOwnerToken, size)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		r := &response{status: resp.StatusCode, header: resp.Header, body: raw}
		r.expectError(t, 413, "")
		requireUnchanged(t, before, h.state())

		// Just under the limit passes: 120 events of 64 KiB data (about 7.9 MiB) are one batch.
		pad := strings.Repeat("y", 64<<10-len(`{"pad":""}`))
		events := make([]string, 120)
		for i := range events {
			events[i] = validEvent(fmt.Sprintf("evt_pad_%d", i), `"data":{"pad":"`+pad+`"}`)
		}
		body := eventBody(events...)
		if len(body) >= 8<<20 || len(body) < 7<<20 {
			t.Fatalf("test body is %d bytes; it must be just under 8 MiB", len(body))
		}
		res := h.do("POST", "/_ref/spine/events", body).expect(t, 200)
		if num(t, res, "accepted") != 120 {
			t.Errorf("a batch just under 8 MiB = %v, want 120 accepted", res)
		}
	})
}
