package runs

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestContentHashMatchesEarlierBuilds: data is now stored without HTML escaping, but the content
// hash still reads the escaped form earlier builds stored (and hashed), so an event stored by
// them and sent again is a duplicate, not a 409 conflict.
func TestContentHashMatchesEarlierBuilds(t *testing.T) {
	raw := []byte(`{"event_id":"e1","event_type":"run.failed","occurred_at":"2026-11-20T08:01:02Z","data":{"reason":"a<b & c>d","n":1}}`)
	e, err := ParseEvent(raw, "events[0]")
	if err != nil {
		t.Fatal(err)
	}
	if *e.Data != `{"n":1,"reason":"a<b & c>d"}` {
		t.Errorf("stored data %s, want it compact, sorted and not HTML-escaped", *e.Data)
	}
	var data map[string]any
	if err := json.Unmarshal([]byte(*e.Data), &data); err != nil {
		t.Fatal(err)
	}
	escaped, _ := json.Marshal(data) // what earlier builds stored and hashed
	old := *e
	old.Data = new(string)
	*old.Data = string(escaped)
	if got := old.contentHash(); got != e.ContentHash {
		t.Errorf("the hash of the form earlier builds stored (%s) is %s, the hash now is %s", escaped, got, e.ContentHash)
	}
}

// dataSamples are data objects both ways of parseData must agree on: the shapes clients send,
// repeated keys, nesting, numbers whose text a float64 would change, literals, space, and the
// characters (escapes, U+2028, <>&) that send data the decoding way.
var dataSamples = []string{
	`{}`, `{"records":12}`, `{ "b" : 1 , "a" : [ 1 , 2.50 , -3e+2 , true , false , null ] }`,
	`{"z":{"y":{"x":[{},[],{"k":"v"}]}},"a":"A"}`, `{"a":1,"a":2,"b":{"c":1,"c":{"d":3}}}`,
	`{"n":12345678901234567890123,"f":1.000000000000000000001,"e":1E400}`,
	`{"reason":"quota","failure_reason":"x","connection_id":"cin_1","connector_instance_id":""}`,
	`{"connection_id":7,"reason":{"nested":"no"},"failure_reason":"late"}`,
	`{"browser_surface":{"browser_surface_status":"waiting","browser_surface_wait_reason":"login","browser_surface_profile_key":"gmail:cin_1"}}`,
	`{"browser_surface":{"browser_surface_status":""},"browser_surface ":1}`, `{"browser_surface":"not an object"}`,
	`{"browser_surface":null,"reason":null}`, `{"B":1,"a":2,"_":3,"é":4,"aa":5,"a ":6}`,
	`{"s":"tab\tescaped","u":"\u00e9"}`, `{"s":"line\u2028sep"}`, "{\"s\":\"raw\u2029sep\"}", `{"html":"<a href='x'>&amp;</a>"}`,
	`{"reason":"a\"b","k\"ey":1}`,
}

// TestParseDataWaysAgree: data without escapes is canonicalised from its text, other data by
// decoding it; for every sample both ways give the same stored bytes (so the same content hash)
// and the same extracted columns.
func TestParseDataWaysAgree(t *testing.T) {
	for _, raw := range dataSamples {
		checkDataWaysAgree(t, raw)
	}
}

// FuzzParseDataWaysAgree is TestParseDataWaysAgree over any valid JSON object.
func FuzzParseDataWaysAgree(f *testing.F) {
	for _, s := range dataSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		// The body's checks (ParseBatch) come first: valid UTF-8, one object.
		if !utf8.ValidString(raw) || len(raw) == 0 || raw[0] != '{' || !json.Valid([]byte(raw)) || depth([]byte(raw)) > MaxDataDepth {
			return
		}
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) != nil {
			return // not an object
		}
		checkDataWaysAgree(t, raw)
	})
}

func checkDataWaysAgree(t *testing.T, raw string) {
	t.Helper()
	got, gotView, err := parseData(json.RawMessage(raw), "data")
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	want, wantView, err := decodedData(json.RawMessage(raw), "data")
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if got != want {
		t.Errorf("%s: stored %s, decoding stores %s", raw, got, want)
	}
	var a, b Event
	a.extract(gotView)
	b.extract(wantView)
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if string(ga) != string(gb) {
		t.Errorf("%s: extracted %s, decoding extracts %s", raw, ga, gb)
	}
}
