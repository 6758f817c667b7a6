package catalog_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
	"connsum/modules/jsonx/jsonxtest"
)

// The grammar of SPEC §1.1-1.2, restated so the parser is checked against the spec.
var (
	fuzzConnectorRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)
	fuzzConnectionRE = regexp.MustCompile(`^cin_[A-Za-z0-9_]{1,64}$`)
	fuzzStatuses     = map[string]bool{"active": true, "paused": true, "revoked": true, "draft": true}
	fuzzKinds        = map[string]bool{"account": true, "local_device": true, "browser_collector": true, "manual": true}
)

// requireBadRequest checks that a refusal is a 400 *httpx.Error with code and message.
func requireBadRequest(t *testing.T, err error) {
	t.Helper()
	e, ok := httpx.As(err)
	if !ok {
		t.Fatalf("error %T %v is not an *httpx.Error", err, err)
	}
	if e.Status != 400 || e.Code != "invalid_request" || e.Message == "" {
		t.Fatalf("error %+v: want a 400 invalid_request with a message", e)
	}
}

func requireDisplayName(t *testing.T, name string) {
	t.Helper()
	if strings.TrimSpace(name) == "" || len(name) > 200 || !utf8.ValidString(name) {
		t.Fatalf("accepted display_name %q", name)
	}
}

func generic(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", raw, err)
	}
	return v
}

func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		`{"display_name":"Amazon"}`,
		`{"display_name":"Amazon","version":"1.4.0","streams":[{"name":"orders"},{"name":"returns"}],"capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400},"browser_surface":{"profile_key":" amazon-shopping "},"public_listing":{"listed":false}},"x_vendor":{"keep":[1,"a",null]}}`,
		`{"display_name":"A","streams":[{"name":"a"},{"name":"a"}]}`,
		`{"display_name":"A","capabilities":{"refresh_policy":{"maximum_staleness_seconds":-1}}}`,
		`{"display_name":"A","capabilities":{"public_listing":{"listed":"false"}}}`,
		`{"display_name":"   "}`, `{"display_name":5}`, `{"version":"1"}`, `[]`, `null`, ``, `{"display_name":"A"}}`,
		`{"display_name":"x'; DROP TABLE connectors;--"}`,
		`{"display_name":"A\u0000B"}`, `{"display_name":"A","version":"\ud800"}`,
		`{"display_name":"A","capabilities":{"browser_surface":{"profile_key":"k\u0000"}}}`,
		`{"display_name":"<b>A & \ud83d\ude00</b>","x":{"\\u0000":"\udbff\udfff"}}`, `{"display_nme":"A"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := catalog.ParseManifest(raw)
		if err != nil {
			requireBadRequest(t, err)
			return
		}
		jsonxtest.RequireTextAsSent(t, raw)
		requireDisplayName(t, m.DisplayName)
		if !json.Valid(m.Raw) {
			t.Fatalf("stored manifest %q is not JSON", m.Raw)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, m.Raw); err != nil || !bytes.Equal(compact.Bytes(), m.Raw) {
			t.Fatalf("stored manifest %q is not compact", m.Raw)
		}
		// Unknown keys are kept: the stored manifest is the same JSON value as the one sent.
		if !reflect.DeepEqual(generic(t, raw), generic(t, m.Raw)) {
			t.Fatalf("manifest %s stored as %s", raw, m.Raw)
		}
		if m.ProfileKey != nil && (*m.ProfileKey == "" || strings.TrimSpace(*m.ProfileKey) != *m.ProfileKey) {
			t.Fatalf("profile key %q is not trimmed", *m.ProfileKey)
		}
		// Keys are exact (JSON is case-sensitive): "CAPABILITIES" is an unknown key, kept but
		// meaningless. Look the flag up the same way, key by key.
		want := true
		var top map[string]json.RawMessage
		var caps, listing map[string]json.RawMessage
		if json.Unmarshal(raw, &top) == nil && json.Unmarshal(top["capabilities"], &caps) == nil &&
			json.Unmarshal(caps["public_listing"], &listing) == nil {
			var listed *bool
			if json.Unmarshal(listing["listed"], &listed) == nil && listed != nil {
				want = *listed
			}
		}
		if m.Listed != want {
			t.Fatalf("listed = %v, want %v for %s", m.Listed, want, raw)
		}
		// The stored form is itself accepted, with the same meaning.
		again, err := catalog.ParseManifest(m.Raw)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("the stored manifest re-parses as %+v, %v; want %+v", again, err, m)
		}
	})
}

func FuzzParseConnectionInput(f *testing.F) {
	for _, s := range []string{
		`{"connector_id":"amazon"}`,
		`{"connector_id":"amazon","display_name":"Amazon — work","status":"draft","source_kind":"browser_collector","source_binding_key":"work","connection_id":"cin_ab12"}`,
		`{"connector_id":"Amazon"}`, `{"connector_id":"amazon","status":"deleted"}`, `{"connector_id":"amazon","source_kind":"cloud"}`,
		`{"connector_id":"amazon","connection_id":"conn-1"}`, `{"connector_id":"amazon","source_binding_key":""}`,
		`{"connector_id":"amazon","owner":"me"}`, `{"connector_id":"amazon","status":1}`, `{"display_name":"x"}`,
		`{"connector_id":"x'; DROP TABLE spine_events;--"}`, `{"connector_id":"amazon","display_name":null}`, `[1]`, ``,
		`{"connector_id":"amazon","display_name":"A\u0000"}`, `{"connector_id":"amazon","source_binding_key":"\udc00"}`,
		`{"conector_id":"amazon"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in, err := catalog.ParseConnectionInput(raw)
		if err != nil {
			requireBadRequest(t, err)
			return
		}
		jsonxtest.RequireTextAsSent(t, raw)
		if !fuzzConnectorRE.MatchString(in.ConnectorID) || !fuzzStatuses[in.Status] || !fuzzKinds[in.SourceKind] {
			t.Fatalf("accepted %+v", in)
		}
		if in.SourceBindingKey == "" || len(in.SourceBindingKey) > 256 || !utf8.ValidString(in.SourceBindingKey) {
			t.Fatalf("accepted binding key %q", in.SourceBindingKey)
		}
		if in.ConnectionID != "" && !fuzzConnectionRE.MatchString(in.ConnectionID) {
			t.Fatalf("accepted connection_id %q", in.ConnectionID)
		}
		if in.DisplayName != nil {
			requireDisplayName(t, *in.DisplayName)
		}
		// What was accepted, sent again explicitly, means the same.
		m := map[string]any{"connector_id": in.ConnectorID, "status": in.Status, "source_kind": in.SourceKind, "source_binding_key": in.SourceBindingKey}
		if in.ConnectionID != "" {
			m["connection_id"] = in.ConnectionID
		}
		if in.DisplayName != nil {
			m["display_name"] = *in.DisplayName
		}
		b, _ := json.Marshal(m)
		again, err := catalog.ParseConnectionInput(b)
		if err != nil || !reflect.DeepEqual(again, in) {
			t.Fatalf("%s re-parses as %+v, %v; want %+v", b, again, err, in)
		}
	})
}

func FuzzParseConnectionPatch(f *testing.F) {
	for _, s := range []string{
		`{"status":"paused"}`, `{"display_name":"Amazon — home"}`, `{"display_name":"x","status":"revoked"}`,
		`{}`, `{"status":"archived"}`, `{"display_name":""}`, `{"status":"paused","connector_id":"chase"}`,
		`{"display_name":null}`, `{"status":null,"display_name":"a"}`, `null`, `{"display_name":"a"} x`,
		`{"display_name":"a\u0000"}`, `{"display_name":"\ud800\ud800"}`, `{"stauts":"paused"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := catalog.ParseConnectionPatch(raw)
		if err != nil {
			requireBadRequest(t, err)
			return
		}
		jsonxtest.RequireTextAsSent(t, raw)
		if p.DisplayName == nil && p.Status == nil {
			t.Fatal("accepted a patch that changes nothing")
		}
		if p.DisplayName != nil {
			requireDisplayName(t, *p.DisplayName)
		}
		if p.Status != nil && !fuzzStatuses[*p.Status] {
			t.Fatalf("accepted status %q", *p.Status)
		}
		b, _ := json.Marshal(map[string]*string{"display_name": p.DisplayName, "status": p.Status})
		again, err := catalog.ParseConnectionPatch(b)
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("%s re-parses as %+v, %v", b, again, err)
		}
	})
}
