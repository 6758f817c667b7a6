package apidoc_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gofiber/fiber/v2"
	"gopkg.in/yaml.v3"

	"connsum/docs"
	"connsum/modules/apidoc"
	"connsum/modules/apidoc/apidoctest"
)

// TestDocumentIsValidOpenAPI31 loads the served document and validates it as OpenAPI 3.1,
// examples, defaults and patterns included (apidoctest.Load does; every HTTP test depends on it).
func TestDocumentIsValidOpenAPI31(t *testing.T) {
	d, err := apidoctest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !d.T.IsOpenAPI31OrLater() || !strings.HasPrefix(d.T.OpenAPI, "3.1.") {
		t.Fatalf("openapi = %q, want 3.1.x", d.T.OpenAPI)
	}
	// The YAML as written, loaded on its own, is the same document.
	fromYAML, err := openapi3.NewLoader().LoadFromData(docs.OpenAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	if err := fromYAML.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	a, _ := json.Marshal(fromYAML)
	b, _ := json.Marshal(d.T)
	if string(a) != string(b) {
		t.Error("openapi.json and openapi.yaml load as different documents")
	}
}

// TestServedJSONIsTheYAML checks the conversion: the same values, keys in written order.
func TestServedJSONIsTheYAML(t *testing.T) {
	raw, err := docs.OpenAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON, fromYAML any
	if err := json.Unmarshal(raw, &fromJSON); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if err := yaml.Unmarshal(docs.OpenAPIYAML, &fromYAML); err != nil {
		t.Fatal(err)
	}
	// yaml.v3 decodes integers as int, JSON as float64: compare through JSON.
	yj, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatal(err)
	}
	var fromYAMLJSON any
	_ = json.Unmarshal(yj, &fromYAMLJSON)
	if !reflect.DeepEqual(fromJSON, fromYAMLJSON) {
		t.Error("openapi.json differs from openapi.yaml")
	}
	if !strings.HasPrefix(string(raw), `{"openapi":"3.1.0","info":`) {
		t.Errorf("keys are not in written order: %.60s", raw)
	}
	if strings.Contains(string(raw), `\u003c`) {
		t.Error("openapi.json escapes < as \\u003c")
	}
}

// TestOpenAPIRoute serves the document without credentials, as JSON.
func TestOpenAPIRoute(t *testing.T) {
	r, err := apidoc.NewRoutes()
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New()
	for _, rt := range r.Routes() {
		if rt.Path != "/openapi.json" || rt.Method != http.MethodGet || rt.Access.String() != "public" {
			t.Errorf("route %s %s (%s), want public GET /openapi.json", rt.Method, rt.Path, rt.Access)
		}
		app.Add(rt.Method, rt.Path, rt.Handler)
	}
	resp, err := app.Test(httptest.NewRequest(http.MethodGet, "/openapi.json", nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	want, _ := docs.OpenAPIJSON()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || string(body) != string(want) {
		t.Fatalf("GET /openapi.json = %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	apidoctest.Verify(t, apidoctest.Exchange{Method: "GET", URL: "/openapi.json", Status: resp.StatusCode,
		ResponseHeader: resp.Header, ResponseBody: body}, apidoctest.Options{})
}

// TestValidationIsStrict proves that the checks bite: each answer below differs from a valid one
// in one detail, and each must be refused.
func TestValidationIsStrict(t *testing.T) {
	d, err := apidoctest.Load()
	if err != nil {
		t.Fatal(err)
	}
	jsonCT := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	owner := http.Header{"Authorization": {"Bearer owner-token"}}
	item := `{"object":"connector_summary","connection_id":"cin_a1","connector_instance_id":"cin_a1","connector_id":"amazon",
	  "connector_display_name":"Amazon","display_name":"Amazon — work","status":"active","revoked_at":null,"source_kind":"account",
	  "created_at":"2026-11-20T07:01:02.345Z","manifest_version":null,"streams":[],"refresh_policy":null,"total_records":0,
	  "stream_count":0,"stream_records":[],"retained_bytes":null,"total_retained_bytes":null,"evidence":"shallow","last_run":null,
	  "last_successful_run":null,"freshness":{"status":"unknown"},"health":{"state":"unknown","reason":"no_run_evidence"}}`
	feed := func(it string) string {
		return `{"object":"list","data":[` + it + `],"has_more":false,"next_cursor":null}`
	}
	feedHeaders := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Summary-Cache": {"off"}, "X-Summary-Statements": {"3"},
		"Server-Timing": {"db;dur=0.100, project;dur=0.010, total;dur=0.200, cache;desc=off"},
		"Etag":          {`"r7.0.NakY-HINCko3"`}, "Cache-Control": {"private, no-cache"}}
	ok := apidoctest.Exchange{Method: "GET", URL: "/_ref/connectors", RequestHeader: owner, Status: 200, ResponseHeader: feedHeaders, ResponseBody: []byte(feed(item))}
	if res := d.Check(ok, apidoctest.Options{}); res.Request != nil || res.Response != nil || res.Operation != "GET /_ref/connectors" {
		t.Fatalf("a valid exchange is refused: %+v", res)
	}
	badResponses := map[string]apidoctest.Exchange{}
	mutate := func(name, from, to string) {
		ex := ok
		if !strings.Contains(item, from) {
			t.Fatalf("%s: %q not in the item", name, from)
		}
		ex.ResponseBody = []byte(feed(strings.Replace(item, from, to, 1)))
		badResponses[name] = ex
	}
	mutate("extra key", `"evidence":"shallow"`, `"evidence":"shallow","extra":1`)
	mutate("enum", `"evidence":"shallow"`, `"evidence":"guessed"`)
	mutate("null where not allowed", `"streams":[]`, `"streams":null`)
	mutate("pattern", `"created_at":"2026-11-20T07:01:02.345Z"`, `"created_at":"2026-11-20T08:01:02+01:00"`)
	mutate("const", `"object":"connector_summary"`, `"object":"connection"`)
	mutate("health reason of another state", `"reason":"no_run_evidence"`, `"reason":"fresh"`)
	mutate("missing key", `"total_records":0,`, ``)
	mutate("negative count", `"total_records":0`, `"total_records":-1`)
	noHeader := ok
	noHeader.ResponseHeader = http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	badResponses["missing X-Summary-Cache"] = noHeader
	plainJSON := ok
	plainJSON.ResponseHeader = feedHeaders.Clone()
	plainJSON.ResponseHeader.Set("Content-Type", "application/json")
	badResponses["content type"] = plainJSON
	undocumented := ok
	undocumented.Status = 418
	badResponses["undocumented status"] = undocumented
	errShape := ok
	errShape.Status, errShape.ResponseHeader, errShape.ResponseBody = 400, jsonCT, []byte(`{"error":{"code":"invalid_request"}}`)
	badResponses["error without message"] = errShape
	wrongCode := errShape
	wrongCode.ResponseBody = []byte(`{"error":{"code":"not_found","message":"x"}}`)
	badResponses["error code of another status"] = wrongCode
	for name, ex := range badResponses {
		res := d.Check(ex, apidoctest.Options{})
		t.Logf("%s: %v", name, res.Response)
		if res.Response == nil {
			t.Errorf("%s: the answer is accepted", name)
		}
	}

	badRequests := map[string]apidoctest.Exchange{
		"undeclared query parameter": {Method: "GET", URL: "/_ref/connectors?nope=1", RequestHeader: owner},
		"repeated query parameter":   {Method: "GET", URL: "/_ref/connectors?limit=1&limit=2", RequestHeader: owner},
		"limit out of range":         {Method: "GET", URL: "/_ref/connectors?limit=1001", RequestHeader: owner},
		"no credential":              {Method: "GET", URL: "/_ref/connectors"},
		"unknown route":              {Method: "GET", URL: "/nope", RequestHeader: owner},
	}
	body := func(s string) apidoctest.Exchange {
		h := owner.Clone()
		h.Set("Content-Type", "application/json")
		return apidoctest.Exchange{Method: "POST", URL: "/_ref/spine/events", RequestHeader: h, RequestBody: []byte(s)}
	}
	badRequests["event without occurred_at"] = body(`{"events":[{"event_type":"run.started"}]}`)
	badRequests["event with an offset-less time"] = body(`{"events":[{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02"}]}`)
	badRequests["event with an unknown field"] = body(`{"events":[{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02Z","evnt_id":"x"}]}`)
	badRequests["source_kind without source_id"] = body(`{"events":[{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02Z","source_kind":"connector"}]}`)
	badRequests["empty batch"] = body(`{"events":[]}`)
	badRequests["NUL in a string"] = body(`{"events":[{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02Z","run_id":"a\u0000"}]}`)
	badRequests["unpaired surrogate"] = body(`{"events":[{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02Z","data":{"x":"\ud800"}}]}`)
	badRequests["invalid UTF-8"] = body("{\"events\":[{\"event_type\":\"run.started\",\"occurred_at\":\"2026-11-20T08:01:02Z\",\"data\":{\"x\":\"\xff\"}}]}")
	for name, ex := range badRequests {
		ex.Status, ex.ResponseHeader, ex.ResponseBody = 400, jsonCT, []byte(`{"error":{"code":"invalid_request","message":"x"}}`)
		res := d.Check(ex, apidoctest.Options{})
		t.Logf("%s: %v", name, res.Request)
		if res.Request == nil {
			t.Errorf("%s: the request is accepted", name)
		}
	}
	good := body(`{"events":[{"event_type":"run.started","occurred_at":"2026-11-20T08:01:02.345+01:00","run_id":"r1","source_kind":"connector","source_id":"amazon","data":{"x":"\u00e9\ud83d\ude00","browser_surface":{"browser_surface_profile_key":"amazon:cin_a1"}}}]}`)
	good.Status, good.ResponseHeader, good.ResponseBody = 200, jsonCT, []byte(`{"accepted":1,"duplicates":0,"last_event_seq":7,"unattributed":0,"unattributed_examples":[]}`)
	if res := d.Check(good, apidoctest.Options{}); res.Request != nil || res.Response != nil {
		t.Errorf("a valid ingest is refused: %+v", res)
	}
}
