// Package apidoctest checks HTTP exchanges against the service's OpenAPI 3.1 document, for the
// HTTP test harnesses (the app's harness and network client, the summary module's routes). Every
// response a test receives must match the document: its status must be documented for the
// operation, its headers and body must match the schema. Every request must match too, except in
// the tests of InvalidRequestTests, which send invalid requests on purpose; there a request the
// document refuses must be refused by the service as well (a 4xx), so document and service agree
// on what is invalid.
//
// The document is loaded with kin-openapi (v0.153.0), which validates OpenAPI 3.1 documents and,
// for 3.1, validates values with its JSON Schema 2020-12 validator.
package apidoctest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"connsum/docs"
)

// InvalidRequestTests are the top-level tests that send requests the document refuses on
// purpose: wrong or missing credentials, malformed bodies and parameters, unknown routes and
// methods, limits. Their requests are still checked, but a refused request is not a failure as
// long as the service refused it too; their responses are checked like every other.
var InvalidRequestTests = map[string]string{
	// app
	"TestEveryRouteAuthMatrix":                      "sends every credential, and bodies of {}, to every route",
	"TestAuthMatrix":                                "sends no, wrong and misplaced credentials",
	"TestAdminRoutesAreOffWithoutAdminToken":        "admin routes without an admin token configured",
	"TestLogin":                                     "wrong login tokens and redirect targets",
	"TestConsoleErrorsByAccept":                     "browser requests without or with a wrong credential, an empty login form",
	"TestCookieWritesNeedJSONAndSameOrigin":         "the CSRF matrix: cookie and bearer writes with every content type and origin",
	"TestLogoutEndsTheSession":                      "a cross-site logout, the ended session used again",
	"TestLoginFailuresAreRateLimited":               "wrong login tokens until the rate limit answers",
	"TestRefusedRequestsWriteNothing":               "the matrix of invalid bodies, parameters and ids",
	"TestBatchLimits":                               "batches over the configured event limit",
	"TestBodyOverLimit":                             "bodies over http.body_limit",
	"TestSQLLookingInputIsRefusedOrStoredLiterally": "SQL in ids of URLs, bodies and queries",
	"TestTamperedCursorsAreRefused":                 "tampered cursors",
	"TestMalformedBodiesAreRefused":                 "malformed JSON bodies",
	"TestConfiguredLimitsAreHonoured":               "bodies and batches over configured limits",
	"TestConsolePages":                              "console pages without credentials",
	// app/hardening_test.go
	"TestNULAndLoneSurrogatesAreRefusedEverywhere": "NUL, lone surrogates and invalid UTF-8 in every body",
	"TestOffsetsBeyond2359AreRefused":              "timestamps with offsets beyond ±23:59",
	"TestRetainedSumsStayBelow2To53":               "retained figures whose sums pass 2^53-1",
	"TestEventDataLimitHoldsAsStored":              "event data over 64 KiB as stored",
	"TestMisspeltFieldsAreNamedWithASuggestion":    "misspelt fields in every body",
	"TestHEADAndMethodNotAllowed":                  "wrong methods, unknown methods, missing credentials",
	"TestMetricsCountTheStatusTheClientReceived":   "an unknown path, a wrong method, no credentials",
	"TestMetricsSeriesOnTheService":                "no credentials, an unknown path, a NUL in a body",
	// summary
	"TestFeedHTTP":                        "checkBadQueries sends invalid feed queries",
	"TestRunsRoutePagesWithCursors":       "invalid limits, cursors, repeated and unknown parameters of the runs route",
	"TestRunsRouteAcceptsEveryFoldStatus": "a status filter outside the fold's vocabulary",
	"TestFleetHealthCounts":               "invalid, repeated and unknown parameters of /_ref/fleet-health",
}

// TestOnlyRoutes are routes that tests register beside the service's own to provoke an answer
// (they are no part of the API, so the document does not describe them).
var TestOnlyRoutes = map[string]string{
	"GET /_ref/probe": "app's deadlineProbe: a route whose database work fails as the test says",
}

// Document is the loaded OpenAPI document with its router.
type Document struct {
	T      *openapi3.T
	router routers.Router
}

var (
	loadOnce sync.Once
	loaded   *Document
	loadErr  error
)

// Load returns the document the binary serves (docs.OpenAPIJSON), validated as OpenAPI 3.1 with
// its examples, defaults and patterns; it is loaded once per test process.
func Load() (*Document, error) {
	loadOnce.Do(func() { loaded, loadErr = load() })
	return loaded, loadErr
}

func load() (*Document, error) {
	// The change stream's answers and the console's script are text, not described by a schema.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.PlainBodyDecoder)
	raw, err := docs.OpenAPIJSON()
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if !t.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("openapi.json declares openapi %q, want 3.1", t.OpenAPI)
	}
	opts := []openapi3.ValidationOption{openapi3.EnableExamplesValidation(), openapi3.EnableSchemaDefaultsValidation(),
		openapi3.EnableSchemaPatternValidation(), openapi3.EnableSchemaFormatValidation()}
	if err := t.Validate(loader.Context, opts...); err != nil {
		return nil, fmt.Errorf("openapi.json is not a valid OpenAPI 3.1 document: %w", err)
	}
	r, err := legacy.NewRouter(t, opts...)
	if err != nil {
		return nil, err
	}
	return &Document{T: t, router: r}, nil
}

// Exchange is one request and its answer as a test saw them.
type Exchange struct {
	Method         string
	URL            string // path and query, or an absolute URL
	RequestHeader  http.Header
	RequestBody    []byte
	Status         int
	ResponseHeader http.Header
	ResponseBody   []byte
}

// Result is what the document says about an exchange.
type Result struct {
	Operation string // "GET /_ref/connectors", or "" when the document has no such operation
	Request   error  // nil when the request matches the document
	Response  error  // nil when the response matches the document
}

// Options tune a check.
type Options struct {
	// NoCredentials skips the security requirements: for harnesses that register the routes
	// without the app's guards and send no token.
	NoCredentials bool
	// SecurityHeaders requires the browser-security headers the document promises on every
	// answer (the whole service; a harness of bare module routes has none).
	SecurityHeaders bool
}

// securityHeaders are the headers of every answer (the document's info.description).
var securityHeaders = map[string]func(string) bool{
	"Content-Security-Policy":      func(v string) bool { return strings.Contains(v, "frame-ancestors 'none'") },
	"X-Frame-Options":              func(v string) bool { return v == "DENY" },
	"X-Content-Type-Options":       func(v string) bool { return v == "nosniff" },
	"Referrer-Policy":              func(v string) bool { return v == "no-referrer" },
	"Cross-Origin-Opener-Policy":   func(v string) bool { return v != "" },
	"Cross-Origin-Resource-Policy": func(v string) bool { return v == "same-origin" },
}

func checkSecurityHeaders(h http.Header) error {
	var errs []error
	names := make([]string, 0, len(securityHeaders))
	for k := range securityHeaders {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if v := headerOf(h, k); !securityHeaders[k](v) {
			errs = append(errs, fmt.Errorf("header %s is %q", k, v))
		}
	}
	return errors.Join(errs...)
}

// Check validates an exchange against the document.
func (d *Document) Check(ex Exchange, o Options) Result {
	req, err := ex.request()
	if err != nil {
		return Result{Request: err, Response: err}
	}
	var headerErr error
	if o.SecurityHeaders {
		headerErr = checkSecurityHeaders(ex.ResponseHeader)
	}
	res := d.check(ex, req, o)
	res.Response = errors.Join(headerErr, res.Response)
	return res
}

func (d *Document) check(ex Exchange, req *http.Request, o Options) Result {
	method := req.Method
	if method == http.MethodHead {
		req.Method = http.MethodGet // HEAD is answered for every GET route, without a body
	}
	route, params, err := d.router.FindRoute(req)
	if err == nil && segments(req.URL.Path) != segments(route.Path) {
		// The legacy router lets a trailing parameter match nothing: PUT /_ref/connectors is not
		// PUT /_ref/connectors/{connector_id}.
		err = routers.ErrMethodNotAllowed
	}
	if err != nil {
		// Not an operation of the document: the service must refuse it with the error shape.
		res := Result{Request: fmt.Errorf("%s %s is not an operation of the document (%v)", method, req.URL.Path, err)}
		res.Response = d.checkUnrouted(ex, d.knownPath(req))
		return res
	}
	res := Result{Operation: route.Method + " " + route.Path}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: options()}
	in.Options.AuthenticationFunc, in.Options.SkipSettingDefaults = authenticate, true
	if o.NoCredentials {
		in.Options.AuthenticationFunc = openapi3filter.NoopAuthenticationFunc
	}
	res.Request = errors.Join(strictQuery(req.URL.Query(), route), strictBody(ex), openapi3filter.ValidateRequest(context.Background(), in))
	if method == http.MethodHead {
		res.Response = d.checkHead(ex, route)
		return res
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.Status, Header: ex.ResponseHeader, Options: options()}
	out.Options.IncludeResponseStatus = true
	out.SetBodyBytes(ex.ResponseBody)
	res.Response = errors.Join(openapi3filter.ValidateResponse(context.Background(), out), emptyBodyWhenNoContent(route, ex))
	return res
}

// options are the filter options of every check: schema errors say what failed where, without
// dumping the whole schema into the test log.
func options() *openapi3filter.Options {
	o := &openapi3filter.Options{}
	o.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
		return fmt.Sprintf("%s (at /%s)", err.Reason, strings.Join(err.JSONPointer(), "/"))
	})
	return o
}

func (ex Exchange) request() (*http.Request, error) {
	u, err := url.Parse(ex.URL)
	if err != nil {
		return nil, err
	}
	var body io.Reader = http.NoBody
	if ex.RequestBody != nil {
		body = bytes.NewReader(ex.RequestBody)
	}
	req, err := http.NewRequest(ex.Method, u.RequestURI(), body)
	if err != nil {
		return nil, err
	}
	req.URL.Path = u.Path
	for k, v := range ex.RequestHeader {
		req.Header[k] = append([]string(nil), v...)
	}
	return req, nil
}

// authenticate checks that the credential a security scheme names is presented; whether it is
// the right token is the service's business (401/403 are documented answers).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r, s := in.RequestValidationInput.Request, in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); !ok || strings.TrimSpace(t) == "" {
			return in.NewError(errors.New("no bearer token"))
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := r.Cookie(s.Name); err != nil {
			return in.NewError(fmt.Errorf("no %s cookie", s.Name))
		}
	default:
		return in.NewError(fmt.Errorf("security scheme %q is not checked by apidoctest", in.SecuritySchemeName))
	}
	return nil
}

// strictQuery refuses query parameters the operation does not declare, and repeated ones:
// OpenAPI lets undeclared parameters through, the feed refuses them.
func strictQuery(q url.Values, route *routers.Route) error {
	declared := map[string]bool{}
	for _, ps := range []openapi3.Parameters{route.PathItem.Parameters, route.Operation.Parameters} {
		for _, p := range ps {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = true
			}
		}
	}
	var errs []error
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case !declared[k]:
			errs = append(errs, fmt.Errorf("query parameter %q is not declared by %s %s", k, route.Method, route.Path))
		case len(q[k]) > 1:
			errs = append(errs, fmt.Errorf("query parameter %q is repeated", k))
		}
	}
	return errors.Join(errs...)
}

// strictBody refuses what the document states in words but JSON Schema cannot say: a JSON body
// in invalid UTF-8 (encoding/json would replace it silently), and strings holding NUL or an
// unpaired surrogate.
func strictBody(ex Exchange) error {
	if len(ex.RequestBody) == 0 || !strings.Contains(strings.ToLower(headerOf(ex.RequestHeader, "Content-Type")), "json") {
		return nil
	}
	if !utf8.Valid(ex.RequestBody) {
		return errors.New("the JSON body is not valid UTF-8")
	}
	if bad := badEscape(ex.RequestBody); bad != "" {
		return fmt.Errorf("the JSON body holds %s", bad)
	}
	return nil
}

// badEscape finds \u0000 or an unpaired surrogate escape in a JSON text (raw NUL bytes are not
// valid JSON at all).
func badEscape(raw []byte) string {
	s := string(raw)
	hex := func(i int) (rune, bool) {
		if i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(s[i+2:i+6], 16, 32)
		return rune(v), err == nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		r, ok := hex(i)
		if !ok {
			i++ // another escaped character: skip it
			continue
		}
		switch {
		case r == 0:
			return "a NUL character (\\u0000)"
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := hex(i + 6); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return "an unpaired surrogate"
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return "an unpaired surrogate"
		default:
			i += 5
		}
	}
	return ""
}

func headerOf(h http.Header, k string) string {
	if h == nil {
		return ""
	}
	return h.Get(k)
}

// checkUnrouted checks the answer to a request that is no operation of the document. An
// unknown path is a 404; a known path asked with another method is a 405 with Allow, behind the
// path's guard (so 401, 403, 415 for a cookie write, or 404 for admin paths while no admin
// token is configured); an
// unknown method is a 501. Always in the error shape.
func (d *Document) checkUnrouted(ex Exchange, knownPath bool) error {
	switch {
	case ex.Status == http.StatusNotImplemented:
	case ex.Status == http.StatusMethodNotAllowed && headerOf(ex.ResponseHeader, "Allow") == "":
		return fmt.Errorf("%s %s answered 405 without an Allow header", ex.Method, ex.URL)
	case ex.Status == http.StatusNotFound || ex.Status == http.StatusMethodNotAllowed:
	case knownPath && (ex.Status == http.StatusUnauthorized || ex.Status == http.StatusForbidden ||
		ex.Status == http.StatusUnsupportedMediaType): // the guard's answers, cookie writes included
	default:
		return fmt.Errorf("%s %s is no operation of the document, yet the service answered %d", ex.Method, ex.URL, ex.Status)
	}
	if ex.Method == http.MethodHead {
		return nil
	}
	return d.checkErrorBody(ex)
}

// segments counts the segments of a path ("/" and "/x" have one, "/x/" too).
func segments(path string) int {
	if path != "/" {
		path = strings.TrimSuffix(path, "/")
	}
	return strings.Count(path, "/")
}

// knownPath reports whether some operation of the document has the request's path.
func (d *Document) knownPath(req *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := req.Clone(context.Background())
		probe.Method = m
		if route, _, err := d.router.FindRoute(probe); err == nil && segments(req.URL.Path) == segments(route.Path) {
			return true
		}
	}
	return false
}

// checkErrorBody validates a body against the Error schema.
func (d *Document) checkErrorBody(ex Exchange) error {
	if ct := headerOf(ex.ResponseHeader, "Content-Type"); ct != "application/json; charset=utf-8" {
		return fmt.Errorf("error answer %d has content type %q, want application/json; charset=utf-8", ex.Status, ct)
	}
	var v any
	if err := json.Unmarshal(ex.ResponseBody, &v); err != nil {
		return fmt.Errorf("error answer %d is not JSON: %v", ex.Status, err)
	}
	s := d.T.Components.Schemas["Error"]
	if err := s.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("error answer %d does not match the Error schema: %w", ex.Status, err)
	}
	return nil
}

// checkHead checks a HEAD answer: a status the GET operation documents, and no body.
func (d *Document) checkHead(ex Exchange, route *routers.Route) error {
	if len(ex.ResponseBody) != 0 {
		return fmt.Errorf("HEAD %s answered a body", ex.URL)
	}
	if route.Operation.Responses.Status(ex.Status) == nil {
		return fmt.Errorf("HEAD %s answered %d, which GET %s does not document", ex.URL, ex.Status, route.Path)
	}
	return nil
}

// emptyBodyWhenNoContent refuses a body on a response the document describes without content
// (204, redirects).
func emptyBodyWhenNoContent(route *routers.Route, ex Exchange) error {
	r := route.Operation.Responses.Status(ex.Status)
	if r == nil || r.Value == nil || len(r.Value.Content) > 0 || len(ex.ResponseBody) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s answered %d with a body, which the document describes without content: %.200q", ex.Method, ex.URL, ex.Status, ex.ResponseBody)
}

// Verify checks an exchange that a test made and reports what does not match on t: a response
// always; a request unless the test is in InvalidRequestTests, where a refused request must have
// been refused by the service (4xx) too. A document that does not load fails the test.
func Verify(t testing.TB, ex Exchange, o Options) {
	t.Helper()
	d, err := Load()
	if err != nil {
		t.Fatalf("apidoctest: %v", err)
		return
	}
	if u, err := url.Parse(ex.URL); err == nil {
		if _, ok := TestOnlyRoutes[ex.Method+" "+u.Path]; ok {
			return
		}
	}
	res := d.Check(ex, o)
	where := ex.Method + " " + ex.URL
	if res.Response != nil {
		t.Errorf("apidoctest: the answer %d to %s does not match docs/openapi.yaml: %v\nbody: %.600s", ex.Status, where, res.Response, ex.ResponseBody)
	}
	if res.Request == nil {
		return
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	if _, onPurpose := InvalidRequestTests[top]; !onPurpose {
		t.Errorf("apidoctest: the request %s does not match docs/openapi.yaml (add the test to apidoctest.InvalidRequestTests only if it sends invalid requests on purpose): %v\nbody: %.300s", where, res.Request, ex.RequestBody)
		return
	}
	if ex.Status < 400 || ex.Status > 499 {
		t.Errorf("apidoctest: docs/openapi.yaml refuses the request %s, but the service answered %d: %v\nbody: %.300s", where, ex.Status, res.Request, ex.RequestBody)
	}
}
