package runs

import (
	"encoding/json"
	"testing"
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
