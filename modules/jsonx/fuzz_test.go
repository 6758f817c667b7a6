package jsonx

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"connsum/modules/jsonx/jsonxtest"
)

// FuzzParseObject checks the decoder every body and every stored manifest goes through: a
// refusal is an *Error naming a field under the path (httpx answers it as a 400); an accepted object is valid UTF-8 JSON none of whose strings (keys included,
// at any depth) holds U+0000 or a character that decoding replaced with U+FFFD (a lone
// surrogate escape), and fieldAt names some field of any input without looping or panicking.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{
		`{"a":"x"}`, `{"a":"\u0000"}`, `{"a":{"b":["\ud800"]}}`, `{"a":"\ud83d\ude00"}`, `{"a":"\\u0000"}`,
		`{"k\udc00":1}`, `{"a":"\\\ud800"}`, `{"a":"\uDBFF\uDFFF"}`, `{"a":"\ud800\u0041"}`, "{\"a\":\"\xff\"}",
		`{"a":1}}`, `[]`, `{"a":[{"b":{"c":"\u0000"}}]}`, `{"a":"é\u00e9\n\t\"\/\\"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for off := 0; off <= len(raw) && off < 64; off++ {
			fieldAt(raw, off, "p")
		}
		o, err := ParseObject(raw, "events[1]")
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.Message == "" || !strings.HasPrefix(e.Field, "events[1]") {
				t.Fatalf("refusal %T %v: want an *Error naming a field under events[1]", err, err)
			}
			return
		}
		if o == nil || !utf8.Valid(raw) || !json.Valid(raw) {
			t.Fatalf("accepted %q", raw)
		}
		jsonxtest.RequireTextAsSent(t, raw)
	})
}
