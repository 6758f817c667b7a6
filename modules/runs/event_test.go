package runs_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"connsum/modules/httpx"
	"connsum/modules/runs"
)

// nestedData returns a data object nested exactly levels deep ({"a":{"a":…{}}}).
func nestedData(levels int) string {
	return strings.Repeat(`{"a":`, levels-1) + `{}` + strings.Repeat(`}`, levels-1)
}

// sizedData returns a compact data object of exactly n encoded bytes.
func sizedData(n int) string {
	const frame = len(`{"pad":""}`)
	return `{"pad":"` + strings.Repeat("x", n-frame) + `"}`
}

func eventJSON(extra string) string {
	e := `{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00"`
	if extra != "" {
		e += "," + extra
	}
	return e + "}"
}

func TestParseEventNormalisesAndExtracts(t *testing.T) {
	e, err := runs.ParseEvent([]byte(`{"event_id":"evt_1","event_type":"run.failed","occurred_at":"2026-11-20T08:01:02.345+01:00",
		"run_id":"run_7","source_kind":"connector","source_id":"amazon","connection_id":"cin_ab12","status":"failed",
		"data":{"reason":"login_required","browser_surface":{"browser_surface_status":"surface_failed","browser_surface_wait_reason":"capacity_full","browser_surface_profile_key":"amazon-shopping:cin_ab12"},"n":12345678901234567890}}`), "events[0]")
	if err != nil {
		t.Fatal(err)
	}
	if e.OccurredAt != "2026-11-20T07:01:02.345Z" {
		t.Errorf("occurred_at = %q, want 2026-11-20T07:01:02.345Z", e.OccurredAt)
	}
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	if str(e.RunID) != "run_7" || str(e.SourceKind) != "connector" || str(e.SourceID) != "amazon" || str(e.Status) != "failed" {
		t.Errorf("parsed event = %+v", e)
	}
	if str(e.ConnectionRef) != "cin_ab12" || str(e.FailureReason) != "login_required" || !e.BSPresent ||
		str(e.BSStatus) != "surface_failed" || str(e.BSWaitReason) != "capacity_full" || str(e.BSProfileKey) != "amazon-shopping:cin_ab12" {
		t.Errorf("extracted columns = ref %s reason %s bs %v %s %s %s", str(e.ConnectionRef), str(e.FailureReason), e.BSPresent, str(e.BSStatus), str(e.BSWaitReason), str(e.BSProfileKey))
	}
	// data is kept exactly, including integers beyond float64 precision.
	var data map[string]json.RawMessage
	if err := json.Unmarshal([]byte(str(e.Data)), &data); err != nil || string(data["n"]) != "12345678901234567890" {
		t.Errorf("stored data %s lost the exact number", str(e.Data))
	}

	for in, want := range map[string]string{
		"2026-11-20T07:01:02Z":                "2026-11-20T07:01:02.000Z",
		"2026-11-20T07:01:02.3456789Z":        "2026-11-20T07:01:02.345Z",
		"2026-11-20T23:30:00-05:00":           "2026-11-21T04:30:00.000Z",
		"2026-11-20T08:01:02.345+01:00":       "2026-11-20T07:01:02.345Z",
		"2026-01-01T00:00:00.5+14:00":         "2025-12-31T10:00:00.500Z",
		"2026-11-20T07:01:02.345000000+00:00": "2026-11-20T07:01:02.345Z",
	} {
		e, err := runs.ParseEvent([]byte(`{"event_type":"x","occurred_at":"`+in+`"}`), "events[0]")
		if err != nil {
			t.Errorf("occurred_at %s refused: %v", in, err)
			continue
		}
		if e.OccurredAt != want {
			t.Errorf("occurred_at %s stored as %s, want %s", in, e.OccurredAt, want)
		}
	}
}

func TestParseEventContentHash(t *testing.T) {
	parse := func(raw string) *runs.Event {
		t.Helper()
		e, err := runs.ParseEvent([]byte(raw), "events[0]")
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a := parse(`{"event_id":"e1","event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00","data":{"a":1,"b":2}}`)
	// The same instant in another offset and the same data in another key order is the same content.
	b := parse(`{"data":{"b":2,"a":1},"occurred_at":"2026-11-20T07:01:02.345Z","event_type":"run.started","event_id":"e1"}`)
	if a.ContentHash != b.ContentHash {
		t.Error("equal content hashes differently")
	}
	for _, other := range []string{
		`{"event_id":"e1","event_type":"run.progress","occurred_at":"2026-11-20T08:01:02.345+01:00","data":{"a":1,"b":2}}`,
		`{"event_id":"e1","event_type":"run.started","occurred_at":"2026-11-20T08:01:02.346+01:00","data":{"a":1,"b":2}}`,
		`{"event_id":"e1","event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00","data":{"a":1,"b":3}}`,
		`{"event_id":"e1","event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00","data":{"a":1,"b":2},"run_id":"r"}`,
		`{"event_id":"e1","event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00","data":{"a":1,"b":2},"status":"running"}`,
	} {
		if parse(other).ContentHash == a.ContentHash {
			t.Errorf("different content hashes equal: %s", other)
		}
	}
}

func TestParseEventValidation(t *testing.T) {
	cases := []struct {
		name, raw, field string
	}{
		{"missing event_type", `{"occurred_at":"2026-11-20T08:01:02Z"}`, "events[4].event_type"},
		{"empty event_type", `{"event_type":"","occurred_at":"2026-11-20T08:01:02Z"}`, "events[4].event_type"},
		{"trailing data after the object", eventJSON("") + "X", "events[4]"},
		{"bad event_type", `{"event_type":"Run.Started","occurred_at":"2026-11-20T08:01:02Z"}`, "events[4].event_type"},
		{"event_type not a string", `{"event_type":1,"occurred_at":"2026-11-20T08:01:02Z"}`, "events[4].event_type"},
		{"missing occurred_at", `{"event_type":"run.started"}`, "events[4].occurred_at"},
		{"occurred_at without offset", `{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345"}`, "events[4].occurred_at"},
		{"occurred_at date only", `{"event_type":"run.started","occurred_at":"2026-11-20"}`, "events[4].occurred_at"},
		{"occurred_at not a time", `{"event_type":"run.started","occurred_at":"yesterday"}`, "events[4].occurred_at"},
		{"occurred_at a number", `{"event_type":"run.started","occurred_at":1700000000}`, "events[4].occurred_at"},
		{"bad event_id", eventJSON(`"event_id":"a b"`), "events[4].event_id"},
		{"long event_id", eventJSON(`"event_id":"` + strings.Repeat("e", 129) + `"`), "events[4].event_id"},
		{"bad run_id", eventJSON(`"run_id":"run 7"`), "events[4].run_id"},
		{"empty run_id", eventJSON(`"run_id":""`), "events[4].run_id"},
		{"bad status", eventJSON(`"status":"Failed"`), "events[4].status"},
		{"source_kind without source_id", eventJSON(`"source_kind":"connector"`), "events[4].source_id"},
		{"source_id without source_kind", eventJSON(`"source_id":"amazon"`), "events[4].source_id"},
		{"bad source_kind", eventJSON(`"source_kind":"plugin","source_id":"amazon"`), "events[4].source_kind"},
		{"disagreeing connection ids", eventJSON(`"connection_id":"cin_a","connector_instance_id":"cin_b"`), "events[4].connection_id"},
		{"data an array", eventJSON(`"data":[1]`), "events[4].data"},
		{"data a string", eventJSON(`"data":"x"`), "events[4].data"},
		{"data too large", eventJSON(`"data":` + sizedData(runs.MaxDataBytes+1)), "events[4].data"},
		{"data too deep", eventJSON(`"data":` + nestedData(runs.MaxDataDepth+1)), "events[4].data"},
		{"data too deep through arrays", eventJSON(`"data":{"a":` + strings.Repeat("[", runs.MaxDataDepth) + strings.Repeat("]", runs.MaxDataDepth) + `}`), "events[4].data"},
		{"unknown field", eventJSON(`"foo":1`), "events[4].foo"},
		{"not an object", `["run.started"]`, "events[4]"},
	}
	for _, c := range cases {
		_, err := runs.ParseEvent([]byte(c.raw), "events[4]")
		e, ok := httpx.As(err)
		if !ok || e.Status != 400 || (c.field != "" && e.Field != c.field) {
			t.Errorf("%s: ParseEvent = %v, want 400 on %q", c.name, err, c.field)
		}
	}
}

func TestParseEventDataLimitsAreInclusive(t *testing.T) {
	for _, data := range []string{sizedData(runs.MaxDataBytes), nestedData(runs.MaxDataDepth),
		`{"s":"` + strings.Repeat("{[", 40) + `"}`} { // brackets inside strings are not nesting
		if _, err := runs.ParseEvent([]byte(eventJSON(`"data":`+data)), "events[0]"); err != nil {
			t.Errorf("data of %d bytes refused: %v", len(data), err)
		}
	}
	if len(sizedData(runs.MaxDataBytes)) != 64<<10 || runs.MaxDataDepth != 32 {
		t.Fatalf("limits are not those of SPEC §1.4 (64 KiB, 32 levels)")
	}
}

func TestParseBatch(t *testing.T) {
	ok := eventJSON("")
	bad := `{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02"}`
	if evs, err := runs.ParseBatch([]byte(`{"events":[`+ok+`,`+ok+`]}`), runs.MaxBatchEvents); err != nil || len(evs) != 2 {
		t.Fatalf("ParseBatch of two events = %d, %v", len(evs), err)
	}
	cases := []struct {
		raw    string
		status int
		field  string
	}{
		{`{"events":[` + ok + `,` + ok + `,` + bad + `,` + ok + `]}`, 400, "events[2].occurred_at"},
		{`{"events":[]}`, 400, "events"},
		{`{}`, 400, "events"},
		{`{"events":{}}`, 400, "events"},
		{`{"events":[` + ok + `],"extra":1}`, 400, "extra"},
		{`{"events":[1]}`, 400, "events[0]"},
		{`[` + ok + `]`, 400, ""},
	}
	for _, c := range cases {
		_, err := runs.ParseBatch([]byte(c.raw), runs.MaxBatchEvents)
		e, isErr := httpx.As(err)
		if !isErr || e.Status != c.status || e.Field != c.field {
			t.Errorf("ParseBatch(%.60s…) = %v, want %d on %q", c.raw, err, c.status, c.field)
		}
	}
	if runs.MaxBatchEvents != 5000 {
		t.Fatalf("MaxBatchEvents = %d, SPEC §2.2 says 5000", runs.MaxBatchEvents)
	}
	var b strings.Builder
	b.WriteString(`{"events":[`)
	for i := 0; i <= runs.MaxBatchEvents; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"event_type":"run.progress","occurred_at":"2026-11-20T08:01:02Z","event_id":"e%d"}`, i)
	}
	b.WriteString(`]}`)
	_, err := runs.ParseBatch([]byte(b.String()), runs.MaxBatchEvents)
	if e, isErr := httpx.As(err); !isErr || e.Status != 413 {
		t.Errorf("a batch of %d events = %v, want 413", runs.MaxBatchEvents+1, err)
	}
	if _, err := runs.ParseBatch([]byte(`{"events":[`+ok+`,`+ok+`,`+ok+`]}`), 2); err == nil {
		t.Error("a configured smaller batch limit is not enforced")
	}
}

// TestParseEventRefusesNULAndLoneSurrogates: NUL and half a surrogate pair are refused in every
// string of an event, data included, naming the field. Before, data.reason with NUL was a 500
// on SQLite and lost its NUL in failure_reason on PostgreSQL; "\ud800" was stored as U+FFFD.
func TestParseEventRefusesNULAndLoneSurrogates(t *testing.T) {
	for raw, field := range map[string]string{
		eventJSON(`"data":{"reason":"login\u0000required"}`):                              "events[4].data.reason",
		eventJSON(`"data":{"failure_reason":"\ud800"}`):                                   "events[4].data.failure_reason",
		eventJSON(`"data":{"browser_surface":{"browser_surface_status":"x\udfff"}}`):      "events[4].data.browser_surface.browser_surface_status",
		eventJSON(`"data":{"browser_surface":{"browser_surface_profile_key":"k\u0000"}}`): "events[4].data.browser_surface.browser_surface_profile_key",
		eventJSON(`"data":{"known_gaps":["a","\u0000"]}`):                                 "events[4].data.known_gaps[1]",
		eventJSON(`"data":{"r\u0000":1}`):                                                 "events[4].data.r\x00",
		`{"event_type":"run.\u0000","occurred_at":"2026-11-20T08:01:02Z"}`:                "events[4].event_type",
		`{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02Z\ud800"}`:         "events[4].occurred_at",
		eventJSON(`"run_id":"r\u0000"`):                                                   "events[4].run_id",
	} {
		_, err := runs.ParseEvent([]byte(raw), "events[4]")
		if e, ok := httpx.As(err); !ok || e.Status != 400 || e.Field != field {
			t.Errorf("ParseEvent(%s) = %v, want 400 on %q", raw, err, field)
		}
	}
	// A valid pair and an escaped backslash are text.
	e, err := runs.ParseEvent([]byte(eventJSON(`"data":{"reason":"\ud83d\ude00 \\u0000"}`)), "events[0]")
	if err != nil || e.FailureReason == nil || *e.FailureReason != "😀 \\u0000" {
		t.Errorf("ParseEvent with a valid pair = %v, %v", e, err)
	}
}

// TestParseEventDataLimitHoldsAsStored: data is stored without HTML escaping, so the 64 KiB
// bound holds for what is stored; what would still grow (U+2028 and U+2029 are always escaped)
// is measured as stored. Before, 65,000 "<" were accepted and stored as 390,008 bytes.
func TestParseEventDataLimitHoldsAsStored(t *testing.T) {
	lt := `{"p":"` + strings.Repeat("<", 65000) + `&>"}`
	e, err := runs.ParseEvent([]byte(eventJSON(`"data":`+lt)), "events[0]")
	if err != nil {
		t.Fatal(err)
	}
	if *e.Data != lt {
		t.Errorf("data of %d bytes stored as %d bytes (%.40s…)", len(lt), len(*e.Data), *e.Data)
	}
	ls := `{"p":"` + strings.Repeat("\u2028", 21800) + `"}` // 65,410 bytes sent, 130,810 as stored
	if len(ls) > runs.MaxDataBytes {
		t.Fatalf("test data is %d bytes", len(ls))
	}
	_, err = runs.ParseEvent([]byte(eventJSON(`"data":`+ls)), "events[3]")
	if e, ok := httpx.As(err); !ok || e.Status != 400 || e.Field != "events[3].data" {
		t.Errorf("data whose stored form exceeds 64 KiB = %v, want 400 on events[3].data", err)
	}
}

// TestParseEventOffsetsStopAt2359: RFC 3339 offsets are at most ±23:59; Go's parser took +24:00.
func TestParseEventOffsetsStopAt2359(t *testing.T) {
	for _, at := range []string{"2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00-24:00", "2026-01-01T00:00:00+23:60", "2026-01-01T00:00:00.5+00:60"} {
		_, err := runs.ParseEvent([]byte(`{"event_type":"x","occurred_at":"`+at+`"}`), "events[0]")
		if e, ok := httpx.As(err); !ok || e.Status != 400 || e.Field != "events[0].occurred_at" {
			t.Errorf("occurred_at %s = %v, want 400 on events[0].occurred_at", at, err)
		}
	}
	for at, want := range map[string]string{"2026-01-01T00:00:00+23:59": "2025-12-31T00:01:00.000Z", "2026-01-01T00:00:00-23:59": "2026-01-01T23:59:00.000Z"} {
		if e, err := runs.ParseEvent([]byte(`{"event_type":"x","occurred_at":"`+at+`"}`), "events[0]"); err != nil || e.OccurredAt != want {
			t.Errorf("occurred_at %s = %v, %v; want %s", at, e, err, want)
		}
	}
}

// TestParseEventNamesAMisspeltField: the unknown key is named, with the known one suggested,
// ahead of the required field it leaves missing. Before: "events[0].occurred_at is required".
func TestParseEventNamesAMisspeltField(t *testing.T) {
	for raw, want := range map[string]string{
		`{"event_type":"run.started","occured_at":"2026-11-20T08:01:02Z"}`:                    "events[0].occured_at: is not a known field; did you mean occurred_at?",
		`{"eventtype":"run.started","occurred_at":"2026-11-20T08:01:02Z"}`:                    "events[0].eventtype: is not a known field; did you mean event_type?",
		`{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02Z","stauts":"failed"}`: "events[0].stauts: is not a known field; did you mean status?",
		`{"occurred_at":"2026-11-20T08:01:02Z","severity":"high"}`:                            "events[0].severity: is not a known field",
	} {
		_, err := runs.ParseEvent([]byte(raw), "events[0]")
		e, ok := httpx.As(err)
		if !ok || e.Field+": "+e.Message != want {
			t.Errorf("ParseEvent(%s) = %v, want %q", raw, err, want)
		}
	}
	_, err := runs.ParseBatch([]byte(`{"event":[`+eventJSON("")+`]}`), 10)
	if e, ok := httpx.As(err); !ok || e.Field != "event" || !strings.HasSuffix(e.Message, "did you mean events?") {
		t.Errorf("a batch under \"event\" = %v, want the suggestion events", err)
	}
}
