package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/jsonx"
)

// MaxSafeInteger bounds integer figures (2^53), the largest integer every JSON client keeps exactly.
const MaxSafeInteger = jsonx.MaxSafeInteger

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
		return nil, Invalid(jsonx.InvalidUTF8Field(body, ""), "the request body is not valid UTF-8 (invalid bytes are refused, never replaced)")
	}
	return body, nil
}

// ParseTimestamp parses an RFC 3339 timestamp with an offset ("Z" or ±hh:mm). Go's parser also
// takes what RFC 3339 does not — offset hours up to 24 and minutes up to 60 ("+24:00" is a
// whole day, "+00:60" an hour), and a comma before the fraction (ISO 8601's) — so those are
// refused here: offsets are ±23:59 at most, fractions follow a ".".
func ParseTimestamp(s string) (time.Time, bool) {
	if strings.IndexByte(s, ',') >= 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	if n := len(s); n >= 6 && (s[n-6] == '+' || s[n-6] == '-') && (s[n-5:n-3] > "23" || s[n-2:] > "59") {
		return time.Time{}, false // the parser checked these are two digits each
	}
	return t, true
}

// Object is a decoded JSON object whose fields are read one by one with their path named in
// every error. It is jsonx's reader (which decides key matching, the refusal of NUL and lone
// surrogates, and integers on their decimal text) with every refusal turned into a 400 *Error
// naming the same field with the same message.
type Object struct {
	o *jsonx.Object
}

// invalid turns a refusal of the jsonx reader into the 400 naming its field; other errors (and
// nil) pass unchanged.
func invalid(err error) error {
	if err == nil {
		return nil // before errors.As, whose target would be allocated for every field read
	}
	var e *jsonx.Error
	if errors.As(err, &e) {
		return Invalid(e.Field, "%s", e.Message)
	}
	return err
}

func wrap(o *jsonx.Object, err error) (*Object, error) {
	if o == nil {
		return nil, invalid(err)
	}
	return &Object{o: o}, invalid(err)
}

// ParseObject decodes raw as a JSON object; path prefixes field names in errors ("" for the root).
// Invalid UTF-8 is refused here too, not only at the body, so that no parser built on it can
// store a silently replaced character.
//
// Every string of the text — keys and values, at any depth, known fields and free-form data
// alike — is refused when it holds U+0000 (NUL) or a lone UTF-16 surrogate escape (\ud800
// without its pair): neither survives storage as sent (PostgreSQL text cannot hold NUL, and a
// lone surrogate decodes to U+FFFD), so the request is refused, naming the field, instead of
// failing in the database or storing a replaced character. Refusing at the decoder keeps one
// rule for every body and every parser built on it (see jsonx.ParseObject).
func ParseObject(raw []byte, path string) (*Object, error) {
	return wrap(jsonx.ParseObject(raw, path))
}

// ParseMember reads an element of an array that Array returned (jsonx.ParseMember): the text it
// is part of was checked by ParseObject already.
func ParseMember(raw []byte, path string) (*Object, error) {
	return wrap(jsonx.ParseMember(raw, path))
}

// Path joins the object's path with key.
func (o *Object) Path(key string) string { return o.o.Path(key) }

// Has reports whether key is present and not null.
func (o *Object) Has(key string) bool { return o.o.Has(key) }

// Raw returns the raw value of key and marks it read.
func (o *Object) Raw(key string) (json.RawMessage, bool) { return o.o.Raw(key) }

// String reads an optional string; ok is false when absent or null.
func (o *Object) String(key string) (string, bool, error) {
	s, ok, err := o.o.String(key)
	return s, ok, invalid(err)
}

// RequiredString reads a string that must be present and non-empty.
func (o *Object) RequiredString(key string) (string, error) {
	s, err := o.o.RequiredString(key)
	return s, invalid(err)
}

// Bool reads an optional boolean.
func (o *Object) Bool(key string) (bool, bool, error) {
	b, ok, err := o.o.Bool(key)
	return b, ok, invalid(err)
}

// NonNegativeInt reads an integer in [0, 2^53). Fractions, exponents that leave the integers,
// strings and out-of-range values are refused.
func (o *Object) NonNegativeInt(key string, required bool) (int64, bool, error) {
	v, ok, err := o.o.NonNegativeInt(key, required)
	return v, ok, invalid(err)
}

// Object reads an optional nested object.
func (o *Object) Object(key string) (*Object, bool, error) {
	sub, ok, err := o.o.Object(key)
	if sub == nil {
		return nil, ok, invalid(err)
	}
	return &Object{o: sub}, ok, invalid(err)
}

// Array reads an optional array and returns its raw elements.
func (o *Object) Array(key string) ([]json.RawMessage, bool, error) {
	items, ok, err := o.o.Array(key)
	return items, ok, invalid(err)
}

// RejectUnknown refuses keys that were never read; the first unknown key (sorted) is named,
// with the closest key that was read as a suggestion.
func (o *Object) RejectUnknown() error { return invalid(o.o.RejectUnknown()) }

// Known refuses, before any field is read, a key outside known: an unknown key is named first,
// ahead of a missing or invalid known field, because it is often the misspelt form of the
// field that then seems missing ({"occured_at": …} says "occured_at is not a known field; did
// you mean occurred_at?", not "occurred_at is required"). Objects that keep unknown keys (a
// manifest) do not call it.
func (o *Object) Known(known ...string) error { return invalid(o.o.Known(known...)) }

// UnknownField is the 400 for an unknown key at field, suggesting the closest of known.
func UnknownField(field, key string, known []string) *Error {
	e := jsonx.UnknownField(field, key, known)
	return Invalid(e.Field, "%s", e.Message)
}

// QueryArgs returns the request's query parameters as (key, value) pairs in the order sent, a
// repeated parameter as often as it was given, so parsers can refuse repeats and unknown keys.
func QueryArgs(c *fiber.Ctx) [][2]string {
	var out [][2]string
	c.Context().QueryArgs().VisitAll(func(k, v []byte) { out = append(out, [2]string{string(k), string(v)}) })
	return out
}
