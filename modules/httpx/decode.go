package httpx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
)

// MaxSafeInteger bounds integer figures (2^53), the largest integer every JSON client keeps exactly.
const MaxSafeInteger = 1 << 53

// Body checks that the request carries a JSON body in valid UTF-8 and returns its bytes.
// Invalid UTF-8 is refused, never replaced.
func Body(c *fiber.Ctx) ([]byte, error) {
	ct := strings.ToLower(strings.TrimSpace(string(c.Request().Header.ContentType())))
	if ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, &Error{Status: fiber.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "the body must be application/json"}
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, Invalid("", "the request body is empty; a JSON object is required")
	}
	if !utf8.Valid(body) {
		return nil, Invalid("", "the request body is not valid UTF-8")
	}
	return body, nil
}

// Object is a decoded JSON object whose fields are read one by one with their path named in
// every error.
type Object struct {
	path   string
	fields map[string]json.RawMessage
	seen   map[string]bool
}

// ParseObject decodes raw as a JSON object; path prefixes field names in errors ("" for the root).
// Invalid UTF-8 is refused here too, not only at the body, so that no parser built on it can
// store a silently replaced character.
func ParseObject(raw []byte, path string) (*Object, error) {
	if !utf8.Valid(raw) {
		return nil, Invalid(path, "must be valid UTF-8")
	}
	if !json.Valid(raw) {
		// Slow path, only to say what is wrong.
		var v any
		err := json.Unmarshal(raw, &v)
		if err != nil && strings.Contains(err.Error(), "after top-level value") {
			return nil, Invalid(path, "unexpected data after the JSON object")
		}
		return nil, Invalid(path, "must be a JSON object%s", detail(err))
	}
	fields, ok := splitObject(raw)
	if !ok {
		return nil, Invalid(path, "must be a JSON object")
	}
	return &Object{path: path, fields: fields, seen: map[string]bool{}}, nil
}

// splitObject cuts a valid JSON text that is an object into its members, without decoding or
// copying the values (they are read one by one, and many never are). Duplicate keys keep the
// last value, as encoding/json does. ok is false when the text is not an object.
func splitObject(raw []byte) (map[string]json.RawMessage, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	fields := map[string]json.RawMessage{}
	i = skipSpace(raw, i+1)
	if raw[i] == '}' {
		return fields, true
	}
	for {
		kend := endOfString(raw, i)
		var key string
		if k := raw[i:kend]; bytes.IndexByte(k, '\\') < 0 {
			key = string(k[1 : len(k)-1])
		} else if json.Unmarshal(k, &key) != nil {
			return nil, false
		}
		i = skipSpace(raw, skipSpace(raw, kend)+1) // past ':'
		vend := endOfValue(raw, i)
		fields[key] = raw[i:vend:vend]
		i = skipSpace(raw, vend)
		if raw[i] == '}' {
			return fields, true
		}
		i = skipSpace(raw, i+1) // past ','
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the string that starts at raw[i] == '"'.
func endOfString(raw []byte, i int) int {
	for j := i + 1; j < len(raw); j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(raw)
}

// endOfValue returns the index after the (valid) value that starts at raw[i].
func endOfValue(raw []byte, i int) int {
	switch raw[i] {
	case '"':
		return endOfString(raw, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(raw); j++ {
			switch raw[j] {
			case '"':
				j = endOfString(raw, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(raw)
	}
	j := i
	for j < len(raw) && raw[j] != ',' && raw[j] != '}' && raw[j] != ']' && raw[j] != ' ' && raw[j] != '\t' && raw[j] != '\n' && raw[j] != '\r' {
		j++
	}
	return j
}

func detail(err error) string {
	if err == nil {
		return ""
	}
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf(" (malformed JSON at byte %d)", se.Offset)
	}
	if _, ok := err.(*json.UnmarshalTypeError); ok {
		return ""
	}
	return " (malformed JSON)"
}

// Path joins the object's path with key.
func (o *Object) Path(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// Has reports whether key is present and not null.
func (o *Object) Has(key string) bool {
	raw, ok := o.fields[key]
	return ok && string(raw) != "null"
}

// Raw returns the raw value of key and marks it read.
func (o *Object) Raw(key string) (json.RawMessage, bool) {
	o.seen[key] = true
	raw, ok := o.fields[key]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// String reads an optional string; ok is false when absent or null.
func (o *Object) String(key string) (string, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		return "", false, nil
	}
	if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true, nil // valid JSON without escapes: the bytes are the string
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, Invalid(o.Path(key), "must be a string")
	}
	return s, true, nil
}

// RequiredString reads a string that must be present and non-empty.
func (o *Object) RequiredString(key string) (string, error) {
	s, ok, err := o.String(key)
	if err != nil {
		return "", err
	}
	if !ok || strings.TrimSpace(s) == "" {
		return "", Invalid(o.Path(key), "is required")
	}
	return s, nil
}

// Bool reads an optional boolean.
func (o *Object) Bool(key string) (bool, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		return false, false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, false, Invalid(o.Path(key), "must be true or false")
	}
	return b, true, nil
}

// NonNegativeInt reads an integer in [0, 2^53). Fractions, exponents that leave the integers,
// strings and out-of-range values are refused.
func (o *Object) NonNegativeInt(key string, required bool) (int64, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		if required {
			return 0, false, Invalid(o.Path(key), "is required")
		}
		return 0, false, nil
	}
	// json.Number also accepts a quoted number ("5"); a figure must be a JSON number.
	var n json.Number
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, false, Invalid(o.Path(key), "must be a non-negative integer")
	}
	v, problem := exactInteger(string(n))
	if problem != "" {
		return 0, false, Invalid(o.Path(key), "%s", problem)
	}
	return v, true, nil
}

// exactInteger decides on the decimal text of a JSON number, not on a float64, whether it is an
// integer in [0, 2^53): a float64 would round 1.0000000000000001 or 4503599627370496.5 to an
// integer and store a fraction as if it had been sent. The work is bounded by the literal's
// length whatever its exponent.
func exactInteger(lit string) (int64, string) {
	const notInteger, negative, tooLarge = "must be a non-negative integer", "must not be negative", "must be below 2^53"
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mant, expText, hasExp := strings.Cut(strings.ToLower(lit), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return 0, "" // zero, whatever its sign or exponent
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(strings.TrimPrefix(expText, "+"))
		switch {
		case err != nil && strings.HasPrefix(expText, "-"):
			return 0, notInteger // 10^-huge: a fraction
		case err != nil:
			return 0, tooLarge
		}
		exp = e
	}
	exp -= len(frac)
	if exp < 0 {
		zeros := len(digits) - len(strings.TrimRight(digits, "0"))
		if -exp > zeros {
			return 0, notInteger
		}
		digits, exp = digits[:len(digits)+exp], 0
	}
	if neg {
		return 0, negative
	}
	if len(digits)+exp > 16 { // 2^53 has 16 digits
		return 0, tooLarge
	}
	v, err := strconv.ParseInt(digits+strings.Repeat("0", exp), 10, 64)
	if err != nil || v >= MaxSafeInteger {
		return 0, tooLarge
	}
	return v, ""
}

// Object reads an optional nested object.
func (o *Object) Object(key string) (*Object, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		return nil, false, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false, Invalid(o.Path(key), "must be a JSON object")
	}
	sub, err := ParseObject(raw, o.Path(key))
	return sub, err == nil, err
}

// Array reads an optional array and returns its raw elements.
func (o *Object) Array(key string) ([]json.RawMessage, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		return nil, false, nil
	}
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return nil, false, Invalid(o.Path(key), "must be an array")
	}
	return items, true, nil
}

// RejectUnknown refuses keys that were never read; the first unknown key (sorted) is named.
func (o *Object) RejectUnknown() error {
	var unknown []string
	for k := range o.fields {
		if !o.seen[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return Invalid(o.Path(unknown[0]), "is not a known field")
}
