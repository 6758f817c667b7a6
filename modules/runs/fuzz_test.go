package runs_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"connsum/modules/bootstrap"
	"connsum/modules/httpx"
	"connsum/modules/jsonx/jsonxtest"
	"connsum/modules/runs"
)

// The grammar of SPEC §1.4, restated here so the fuzz bodies check the parser against the
// spec and not against itself.
var (
	fuzzIDRE         = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,128}$`)
	fuzzTypeRE       = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,63}$`)
	fuzzStatusRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	fuzzStoredTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)
	fuzzOffsetRE     = regexp.MustCompile(`[+-](\d{2}):(\d{2})$`)
)

// eventSeeds are the inputs every fuzz run starts from (the committed corpus in
// testdata/fuzz adds the hostile ones).
var eventSeeds = []string{
	`{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00"}`,
	`{"event_id":"evt_1","event_type":"run.failed","occurred_at":"2026-11-20T08:01:02.345+01:00","run_id":"run_7",` +
		`"source_kind":"connector","source_id":"amazon","connection_id":"cin_ab12","status":"failed","data":{"reason":"login_required"}}`,
	`{"event_type":"run.browser_surface_failed","occurred_at":"2026-11-20T08:01:02Z","run_id":"r","status":"surface_failed",` +
		`"data":{"browser_surface":{"pending_run_id":"r","browser_surface_status":"surface_failed","browser_surface_profile_key":"amazon-shopping:cin_ab12","browser_surface_wait_reason":"capacity_full"}}}`,
	`{"event_type":"run.completed","occurred_at":"2026-11-20T08:01:02.123456789-07:00","connector_instance_id":"cin_x","connection_id":"cin_x","data":{"known_gaps":["a"],"collection_facts":{"n":1e3,"big":12345678901234567890}}}`,
	`{"event_type":"run.progress","occurred_at":"2026-11-20T08:01:02.345","run_id":"r"}`,
	`{"event_type":"run.progress","occurred_at":"1969-12-31T23:59:59Z"}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":{"a":{"a":{"a":{}}}},"data2":1}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":{"s":"<>&\u2028 \ud800 é"}}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":{"s":"<>&\u2028 \ud83d\ude00 \\u0000 é"}}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":{"reason":"a\u0000b"}}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":{"k\udc00":1}}`,
	`{"event_type":"x","occurred_at":"2026-01-01T00:00:00+24:00"}`,
	`{"event_type":"x","occurred_at":"2026-01-01T00:00:00-23:59"}`,
	`{"event_type":"x","occured_at":"2026-11-20T08:01:02Z"}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","connection_id":"a","connector_instance_id":"b"}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","source_kind":"connector"}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":[]}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z","data":null,"run_id":null}`,
	`{"event_type":"x","occurred_at":"2026-11-20T08:01:02Z"} {}`,
	`[]`, `null`, `"x"`, ``, `{`, `{"event_type":5}`,
}

// requireClientError checks that a refusal is an *httpx.Error with a 4xx status that names a
// field under path.
func requireClientError(t *testing.T, err error, path string) *httpx.Error {
	t.Helper()
	e, ok := httpx.As(err)
	if !ok {
		t.Fatalf("error %T %v is not an *httpx.Error", err, err)
	}
	if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" {
		t.Fatalf("error %+v: want a 4xx with code and message", e)
	}
	if path != "" && !strings.HasPrefix(e.Field, path) {
		t.Fatalf("error field %q is not under %q", e.Field, path)
	}
	return e
}

func opt(t *testing.T, name string, v *string, re *regexp.Regexp) {
	t.Helper()
	if v != nil && !re.MatchString(*v) {
		t.Fatalf("accepted %s %q outside %s", name, *v, re)
	}
}

// decodeUseNumber decodes JSON into generic values with exact numbers.
func decodeUseNumber(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return v
}

// requireValidEvent checks everything a stored event promises, given the raw object it came from.
func requireValidEvent(t *testing.T, raw []byte, e *runs.Event) {
	t.Helper()
	if !utf8.Valid(raw) {
		t.Fatalf("accepted invalid UTF-8 %q", raw)
	}
	if e.EventID != "" && !fuzzIDRE.MatchString(e.EventID) {
		t.Fatalf("accepted event_id %q", e.EventID)
	}
	if !fuzzTypeRE.MatchString(e.EventType) {
		t.Fatalf("accepted event_type %q", e.EventType)
	}
	opt(t, "run_id", e.RunID, fuzzIDRE)
	opt(t, "source_id", e.SourceID, fuzzIDRE)
	opt(t, "connection_id", e.ConnectionID, fuzzIDRE)
	opt(t, "connector_instance_id", e.ConnectorInstanceID, fuzzIDRE)
	opt(t, "status", e.Status, fuzzStatusRE)
	if (e.SourceKind == nil) != (e.SourceID == nil) || (e.SourceKind != nil && *e.SourceKind != "connector" && *e.SourceKind != "provider_native") {
		t.Fatalf("accepted source %v/%v", e.SourceKind, e.SourceID)
	}
	if e.ConnectionID != nil && e.ConnectorInstanceID != nil && *e.ConnectionID != *e.ConnectorInstanceID {
		t.Fatal("accepted disagreeing connection ids")
	}
	if ref := firstSet(e.ConnectorInstanceID, e.ConnectionID); ref != nil && (e.ConnectionRef == nil || *e.ConnectionRef != *ref) {
		t.Fatalf("connection_ref %v, want %q", e.ConnectionRef, *ref)
	}

	// occurred_at is stored in the one text form whose order is time order.
	if !fuzzStoredTimeRE.MatchString(e.OccurredAt) {
		t.Fatalf("occurred_at stored as %q", e.OccurredAt)
	}
	at, err := time.Parse(bootstrap.TimeFormat, e.OccurredAt)
	if err != nil || at.Format(bootstrap.TimeFormat) != e.OccurredAt || at.Year() < 1970 || at.Year() > 9999 {
		t.Fatalf("occurred_at %q does not round-trip (%v)", e.OccurredAt, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("accepted %q, which is no JSON object: %v", raw, err)
	}
	var given string
	if json.Unmarshal(fields["occurred_at"], &given) != nil {
		t.Fatal("accepted an event without a string occurred_at")
	}
	gt, err := time.Parse(time.RFC3339Nano, given)
	if err != nil || gt.UTC().Format(bootstrap.TimeFormat) != e.OccurredAt {
		t.Fatalf("occurred_at %q stored as %q", given, e.OccurredAt)
	}
	if m := fuzzOffsetRE.FindStringSubmatch(given); strings.Contains(given, ",") || (m != nil && (m[1] > "23" || m[2] > "59")) {
		t.Fatalf("accepted occurred_at %q: no RFC 3339 (offset beyond ±23:59 or a comma before the fraction)", given)
	}
	jsonxtest.RequireTextAsSent(t, raw)

	// data: within the limits as given, stored as the same JSON value.
	d, present := fields["data"]
	present = present && string(d) != "null"
	if present != (e.Data != nil) {
		t.Fatalf("data given %v, stored %v", present, e.Data != nil)
	}
	if present {
		if len(d) > runs.MaxDataBytes {
			t.Fatalf("accepted data of %d bytes", len(d))
		}
		if !json.Valid([]byte(*e.Data)) || (*e.Data)[0] != '{' {
			t.Fatalf("stored data %q is no JSON object", *e.Data)
		}
		// The limit holds for the stored form too (no HTML escaping; U+2028/9 are measured).
		if len(*e.Data) > runs.MaxDataBytes {
			t.Fatalf("stored data is %d bytes", len(*e.Data))
		}
		if strings.Contains(*e.Data, `\u003c`) && !strings.Contains(strings.ToLower(string(d)), `\u003c`) {
			t.Fatalf("stored data %.80s is HTML-escaped", *e.Data)
		}
		if !reflect.DeepEqual(decodeUseNumber(t, d), decodeUseNumber(t, []byte(*e.Data))) {
			t.Fatalf("data %s stored as %s", d, *e.Data)
		}
	}
	if len(e.ContentHash) != 64 {
		t.Fatalf("content hash %q", e.ContentHash)
	}
}

func firstSet(vals ...*string) *string {
	for _, v := range vals {
		if v != nil {
			return v
		}
	}
	return nil
}

// storedJSON re-encodes a parsed event as the client would send it again (a replay of the log).
func storedJSON(e *runs.Event) []byte {
	m := map[string]any{"event_type": e.EventType, "occurred_at": e.OccurredAt}
	set := func(k string, v *string) {
		if v != nil {
			m[k] = *v
		}
	}
	if e.EventID != "" {
		m["event_id"] = e.EventID
	}
	set("run_id", e.RunID)
	set("source_kind", e.SourceKind)
	set("source_id", e.SourceID)
	set("connection_id", e.ConnectionID)
	set("connector_instance_id", e.ConnectorInstanceID)
	set("status", e.Status)
	if e.Data != nil {
		m["data"] = json.RawMessage(*e.Data)
	}
	// As stored: json.Marshal would HTML-escape the data again (< as \u003c, six bytes for one).
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(m)
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func FuzzParseEvent(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := runs.ParseEvent(raw, "events[7]")
		if err != nil {
			if e != nil {
				t.Fatal("an error came with a half-built event")
			}
			requireClientError(t, err, "events[7]")
			return
		}
		requireValidEvent(t, raw, e)
		// Parsing is deterministic and the stored form is itself valid input with the same
		// content (a replayed log is accepted as duplicates, never as conflicts).
		again, err := runs.ParseEvent(raw, "events[7]")
		if err != nil || again.ContentHash != e.ContentHash {
			t.Fatalf("second parse: %v, hash %s vs %s", err, again.ContentHash, e.ContentHash)
		}
		replay, err := runs.ParseEvent(storedJSON(e), "events[0]")
		if err != nil {
			t.Fatalf("the stored form %.200s is refused: %v", storedJSON(e), err)
		}
		if replay.ContentHash != e.ContentHash {
			t.Fatalf("the stored form %.200s hashes differently", storedJSON(e))
		}
	})
}

func FuzzParseBatch(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(`{"events":[`+s+`]}`), uint8(4))
	}
	f.Add([]byte(`{"events":[`+eventSeeds[0]+`,`+eventSeeds[1]+`,`+eventSeeds[2]+`]}`), uint8(1))
	f.Add([]byte(`{"events":[]}`), uint8(3))
	f.Add([]byte(`{"events":{}}`), uint8(3))
	f.Add([]byte(`{"events":[`+eventSeeds[0]+`],"source":"x"}`), uint8(3))
	f.Add([]byte(`{}`), uint8(3))
	f.Fuzz(func(t *testing.T, raw []byte, limit uint8) {
		maxEvents := int(limit%8) + 1
		events, err := runs.ParseBatch(raw, maxEvents)
		if err != nil {
			if events != nil {
				t.Fatal("an error came with a half-built batch")
			}
			e := requireClientError(t, err, "")
			if e.Status == 413 && e.Field != "events" {
				t.Fatalf("413 names %q", e.Field)
			}
			if e.Status != 400 && e.Status != 413 {
				t.Fatalf("status %d", e.Status)
			}
			return
		}
		var body struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("accepted %q: %v", raw, err)
		}
		if len(events) == 0 || len(events) > maxEvents || len(events) != len(body.Events) {
			t.Fatalf("%d events accepted from %d with a limit of %d", len(events), len(body.Events), maxEvents)
		}
		for i, e := range events {
			requireValidEvent(t, body.Events[i], e)
		}
	})
}
