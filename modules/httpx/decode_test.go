package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	e, ok := As(err)
	if !ok {
		t.Fatalf("error %v is not an *httpx.Error", err)
	}
	if e.Status != 400 || e.Code != "invalid_request" || e.Field != field || e.Message == "" {
		t.Errorf("error = %+v, want 400 invalid_request on field %q", e, field)
	}
}

func TestNonNegativeInt(t *testing.T) {
	cases := []struct {
		raw  string
		want int64
		ok   bool
	}{
		{`0`, 0, true},
		{`42`, 42, true},
		{`9007199254740991`, 1<<53 - 1, true},
		{`9007199254740992`, 0, false}, // 2^53
		{`9007199254740993`, 0, false},
		{`1e400`, 0, false},
		{`-1`, 0, false},
		{`1.5`, 0, false},
		{`"5"`, 0, false},
		{`true`, 0, false},
		{`[1]`, 0, false},
		{`{}`, 0, false},
	}
	for _, c := range cases {
		o, err := ParseObject([]byte(`{"n":`+c.raw+`}`), "figures")
		if err != nil {
			t.Fatalf("ParseObject(%s): %v", c.raw, err)
		}
		got, present, err := o.NonNegativeInt("n", true)
		if !c.ok {
			wantInvalid(t, err, "figures.n")
			continue
		}
		if err != nil || !present || got != c.want {
			t.Errorf("NonNegativeInt(%s) = %d, %v, %v; want %d", c.raw, got, present, err, c.want)
		}
	}
	o, _ := ParseObject([]byte(`{"other":1}`), "")
	if _, _, err := o.NonNegativeInt("n", true); err == nil {
		t.Error("a missing required integer was accepted")
	} else {
		wantInvalid(t, err, "n")
	}
	if v, present, err := o.NonNegativeInt("n", false); err != nil || present || v != 0 {
		t.Errorf("a missing optional integer = %d, %v, %v", v, present, err)
	}
}

func TestParseObjectRefusesNonObjects(t *testing.T) {
	for _, raw := range []string{`[]`, `"x"`, `1`, `null`, `{"a":1`, `{"a":1} {"b":2}`, `{"a":1}x`, ``} {
		if _, err := ParseObject([]byte(raw), "events[1]"); err == nil {
			t.Errorf("ParseObject(%q) accepted", raw)
		} else {
			wantInvalid(t, err, "events[1]")
		}
	}
}

func TestObjectReadersNameTheFieldPath(t *testing.T) {
	o, err := ParseObject([]byte(`{"s":1,"b":"yes","sub":{"x":[]},"arr":{},"name":"  ","ok":"v"}`), "events[3]")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.String("s"); err == nil {
		t.Error("a number was read as a string")
	} else {
		wantInvalid(t, err, "events[3].s")
	}
	if _, _, err := o.Bool("b"); err == nil {
		t.Error("a string was read as a boolean")
	} else {
		wantInvalid(t, err, "events[3].b")
	}
	sub, ok, err := o.Object("sub")
	if err != nil || !ok {
		t.Fatalf("Object(sub) = %v, %v", ok, err)
	}
	if _, _, err := sub.String("x"); err == nil {
		t.Error("an array was read as a string")
	} else {
		wantInvalid(t, err, "events[3].sub.x")
	}
	if _, _, err := o.Array("arr"); err == nil {
		t.Error("an object was read as an array")
	} else {
		wantInvalid(t, err, "events[3].arr")
	}
	if _, err := o.RequiredString("name"); err == nil {
		t.Error("a blank required string was accepted")
	} else {
		wantInvalid(t, err, "events[3].name")
	}
	if s, err := o.RequiredString("ok"); err != nil || s != "v" {
		t.Errorf("RequiredString(ok) = %q, %v", s, err)
	}
	if err := o.RejectUnknown(); err != nil {
		t.Errorf("every key was read, RejectUnknown = %v", err)
	}
}

func TestRejectUnknownNamesTheFirstUnknownKey(t *testing.T) {
	o, _ := ParseObject([]byte(`{"known":1,"zeta":2,"alpha":3}`), "")
	o.Raw("known")
	err := o.RejectUnknown()
	wantInvalid(t, err, "alpha")
	o, _ = ParseObject([]byte(`{"a":null}`), "p")
	if o.Has("a") {
		t.Error("Has reports a null value as present")
	}
	if err := o.RejectUnknown(); err == nil {
		t.Error("an unread null key was accepted")
	}
}

func TestErrorJSONShape(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"error": Invalid("events[3].occurred_at", "bad %s", "time")})
	var got map[string]map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	e := got["error"]
	if len(got) != 1 || e["code"] != "invalid_request" || e["message"] != "bad time" || e["field"] != "events[3].occurred_at" || len(e) != 3 {
		t.Errorf("error JSON = %s", raw)
	}
	raw, _ = json.Marshal(NotFound("", "gone"))
	if strings.Contains(string(raw), "field") || strings.Contains(string(raw), "404") {
		t.Errorf("an error without field renders %s; want no field and no status", raw)
	}
	if e, ok := As(errors.Join(errors.New("x"), Conflict("f", "c"))); !ok || e.Status != 409 {
		t.Errorf("As on a wrapped conflict = %v, %v", e, ok)
	}
	if Internal.Status != 500 || Unavailable.Status != 503 {
		t.Error("Internal/Unavailable statuses are wrong")
	}
}

func TestBody(t *testing.T) {
	app := fiber.New(fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		e, ok := As(err)
		if !ok {
			return c.SendStatus(599)
		}
		return JSON(c, e.Status, fiber.Map{"error": e})
	}})
	app.Post("/", func(c *fiber.Ctx) error {
		b, err := Body(c)
		if err != nil {
			return err
		}
		return c.Send(b)
	})
	cases := []struct {
		ct     string
		body   []byte
		status int
	}{
		{"application/json", []byte(`{"a":"é"}`), 200},
		{"application/json; charset=utf-8", []byte(`{"a":1}`), 200},
		{"Application/JSON", []byte(`{"a":1}`), 200},
		{"", []byte(`{"a":1}`), 200},
		{"text/plain", []byte(`{"a":1}`), 415},
		{"application/x-www-form-urlencoded", []byte(`a=1`), 415},
		{"application/json", []byte("{\"a\":\"\xff\xfe\"}"), 400},
		{"application/json", []byte("{\"a\":\"\xc3\"}"), 400},
		{"application/json", []byte("   "), 400},
		{"application/json", nil, 400},
	}
	for _, c := range cases {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(c.body))
		if c.ct != "" {
			req.Header.Set("Content-Type", c.ct)
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("Body(%q, %q) status = %d (%s), want %d", c.ct, c.body, resp.StatusCode, raw, c.status)
			continue
		}
		if c.status == 200 && !bytes.Equal(raw, c.body) {
			t.Errorf("Body(%q) returned %q; the body must come back unchanged", c.body, raw)
		}
		if c.status != 200 {
			if ct := resp.Header.Get("Content-Type"); ct != ContentTypeJSON {
				t.Errorf("error content type = %q", ct)
			}
		}
	}
}

// TestNULAndLoneSurrogatesAreRefusedNamingTheField: U+0000 and half a surrogate pair are
// refused in every string at any depth — known fields, free-form data, keys — with the path of
// the string; a backslash that is itself escaped, a valid pair and raw text are not escapes.
// Before, PUT {"display_name":"A\u0000B"} was a 500 on both engines and "\ud800" was stored as
// U+FFFD.
func TestNULAndLoneSurrogatesAreRefusedNamingTheField(t *testing.T) {
	refused := []struct{ raw, field, says string }{
		{`{"display_name":"A\u0000B"}`, "events[2].display_name", "U+0000"},
		{`{"a":1,"data":{"reason":"x\u0000"}}`, "events[2].data.reason", "U+0000"},
		{`{"data":{"browser_surface":{"browser_surface_status":"ok","browser_surface_wait_reason":"\u0000"}}}`, "events[2].data.browser_surface.browser_surface_wait_reason", "U+0000"},
		{`{"data":{"list":[1,"a",{"b":["\u0000"]}]}}`, "events[2].data.list[2].b[0]", "U+0000"},
		{`{"s":"\ud800"}`, "events[2].s", "surrogate"},
		{`{"s":"\uD800x"}`, "events[2].s", "surrogate"},
		{`{"s":"\udc00"}`, "events[2].s", "surrogate"},
		{`{"s":"\ud800\u0041"}`, "events[2].s", "surrogate"},
		{`{"s":"\udc00\ud800"}`, "events[2].s", "surrogate"},
		{`{"s":"\ud83d\ude00\ud800"}`, "events[2].s", "surrogate"},
		{`{"s":"\ud800\ud800\udc00"}`, "events[2].s", "surrogate"},
		{`{"s":"\\\u0000"}`, "events[2].s", "U+0000"},
		{`{"ok":"\\u0000","k\u0000":1}`, "events[2].k\x00", "key"},
		{`{"nested":{"k\ud800":1}}`, "events[2].nested.k\ufffd", "key"},
		{`{"s":"\u0000","t":"\ud800"}`, "events[2].s", "U+0000"},
	}
	for _, c := range refused {
		_, err := ParseObject([]byte(c.raw), "events[2]")
		wantInvalid(t, err, c.field)
		if e, ok := As(err); ok && !strings.Contains(e.Message, c.says) {
			t.Errorf("ParseObject(%s) says %q, want it to mention %q", c.raw, e.Message, c.says)
		}
	}
	for _, raw := range []string{
		`{"s":"\\u0000"}`,      // a backslash, then the text u0000
		`{"s":"\\\\u0000"}`,    // two backslashes, then the text
		`{"s":"\ud83d\ude00"}`, // a valid pair (😀)
		`{"s":"\uD83D\uDE00é\u00e9\n\"\/"}`,
		`{"s":"\u0001\u001f\uffff\ufffd"}`, // other control characters and non-characters are text
		`{"s":"😀 \u2028"}`,
	} {
		if _, err := ParseObject([]byte(raw), ""); err != nil {
			t.Errorf("ParseObject(%s) = %v, want it accepted", raw, err)
		}
	}
	// Invalid UTF-8 is refused naming the field it is in.
	_, err := ParseObject([]byte("{\"a\":{\"b\":[\"x\",\"\xff\"]}}"), "")
	wantInvalid(t, err, "a.b[1]")
}

// TestUnknownFieldsSuggestTheKnownOne: a misspelt field is named ahead of the required field it
// leaves missing, with the closest known key; a key that resembles nothing gets no suggestion.
// Before, {"occured_at": …} said "occurred_at is required".
func TestUnknownFieldsSuggestTheKnownOne(t *testing.T) {
	known := []string{"event_id", "event_type", "occurred_at", "run_id", "status", "data"}
	cases := []struct{ key, suggestion string }{
		{"occured_at", "occurred_at"},
		{"ocurred_at", "occurred_at"},
		{"occurred_At", "occurred_at"},
		{"Event_Type", "event_type"},
		{"stauts", "status"},
		{"dta", "data"},
		{"run_ids", "run_id"},
		{"severity", ""},
		{"x", ""},
		{"id", ""},
		{strings.Repeat("occurred_at", 20), ""},
	}
	for _, c := range cases {
		o, err := ParseObject([]byte(`{"`+c.key+`":"2026-11-20T08:01:02Z","event_type":"run.started"}`), "events[0]")
		if err != nil {
			t.Fatal(err)
		}
		err = o.Known(known...)
		wantInvalid(t, err, "events[0]."+c.key)
		e, _ := As(err)
		want := "is not a known field"
		if c.suggestion != "" {
			want += "; did you mean " + c.suggestion + "?"
		}
		if e == nil || e.Message != want {
			t.Errorf("unknown key %q: %v, want %q", c.key, err, want)
		}
	}
	o, _ := ParseObject([]byte(`{"event_type":"x","occurred_at":"t"}`), "")
	if err := o.Known(known...); err != nil {
		t.Errorf("only known keys: %v", err)
	}
	// RejectUnknown suggests among the keys that were read.
	o, _ = ParseObject([]byte(`{"blob_byte":1,"blob_count":2}`), "")
	o.Raw("blob_count")
	o.Raw("blob_bytes")
	err := o.RejectUnknown()
	wantInvalid(t, err, "blob_byte")
	if e, _ := As(err); e == nil || !strings.HasSuffix(e.Message, "did you mean blob_bytes?") {
		t.Errorf("RejectUnknown = %v, want the suggestion blob_bytes", err)
	}
	// An object that keeps unknown keys (a manifest) says which kept key looks like the missing one.
	o, _ = ParseObject([]byte(`{"display_nme":"A"}`), "")
	_, err = o.RequiredString("display_name")
	wantInvalid(t, err, "display_name")
	if e, _ := As(err); e == nil || !strings.Contains(e.Message, `"display_nme"`) {
		t.Errorf("missing display_name next to display_nme = %v", err)
	}
}

// TestParseTimestampOffsets: RFC 3339 offsets stop at ±23:59; Go's parser took +24:00 (a whole
// day) and minute 60.
func TestParseTimestampOffsets(t *testing.T) {
	for s, ok := range map[string]bool{
		"2026-01-01T00:00:00Z":          true,
		"2026-01-01T00:00:00.123+23:59": true,
		"2026-01-01T00:00:00-23:59":     true,
		"2026-01-01T00:00:00+00:00":     true,
		"2026-01-01T00:00:00+24:00":     false,
		"2026-01-01T00:00:00-24:00":     false,
		"2026-01-01T00:00:00+24:59":     false,
		"2026-01-01T00:00:00+23:60":     false,
		"2026-01-01T00:00:00+00:60":     false,
		"2026-01-01T00:00:00+25:00":     false,
		"2026-01-01T00:00:00":           false,
		"2026-01-01T00:00:00,5Z":        false, // ISO 8601's comma is no RFC 3339
	} {
		if _, got := ParseTimestamp(s); got != ok {
			t.Errorf("ParseTimestamp(%s) = %v, want %v", s, got, ok)
		}
	}
}
