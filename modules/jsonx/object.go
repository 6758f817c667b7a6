// Package jsonx is the strict JSON object reader that request bodies (package httpx) and stored
// manifests (package catalog) share: keys match exactly, every string is refused when it holds
// U+0000 or a lone UTF-16 surrogate escape, numbers are judged on their decimal text, and every
// refusal names the field at fault. It knows nothing of HTTP; httpx turns an *Error into its
// 400 with the same field and message.
package jsonx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxSafeInteger bounds integer figures (2^53), the largest integer every JSON client keeps exactly.
const MaxSafeInteger = 1 << 53

// Error is a refusal of the reader: Field is the path of the offending member ("" for the
// root), Message what is wrong with it.
type Error struct {
	Field   string
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return e.Message + " (" + e.Field + ")"
	}
	return e.Message
}

func invalid(field, format string, args ...any) *Error {
	return &Error{Field: field, Message: fmt.Sprintf(format, args...)}
}

// UnknownField is the refusal of an unknown key at field, suggesting the closest of known.
func UnknownField(field, key string, known []string) *Error {
	if s := Suggest(key, known); s != "" {
		return invalid(field, "is not a known field; did you mean %s?", s)
	}
	return invalid(field, "is not a known field")
}

// InvalidUTF8Field names the member of raw (a JSON text at path) that holds its first byte that
// is not valid UTF-8; it only words a refusal.
func InvalidUTF8Field(raw []byte, path string) string {
	field, _ := fieldAt(raw, invalidUTF8At(raw), path)
	return field
}

// Object is a decoded JSON object whose fields are read one by one with their path named in
// every error.
type Object struct {
	path string
	// fields holds the members and whether each was read: one map per object, not a second
	// one for what was read (an ingest batch splits a thousand objects).
	fields map[string]member
	// absent are the keys read that the object does not hold; with the members read they are
	// the suggestions of RejectUnknown. It starts in absentBuf: an event reads a few absent
	// keys, and growing a slice for them was a third of a split object's allocations.
	absent    []string
	absentBuf [8]string
}

// member is one key of an Object: its raw value and whether it was read.
type member struct {
	raw  json.RawMessage
	seen bool
}

// ParseObject decodes raw as a JSON object; path prefixes field names in errors ("" for the root).
// Invalid UTF-8 is refused here too, not only at the body, so that no parser built on it can
// store a silently replaced character.
//
// Every string of the text — keys and values, at any depth, known fields and free-form data
// alike — is refused when it holds U+0000 (NUL) or a lone UTF-16 surrogate escape (\ud800
// without its pair): neither survives storage as sent (PostgreSQL text cannot hold NUL, and a
// lone surrogate decodes to U+FFFD), so the text is refused, naming the field, instead of
// failing in the database or storing a replaced character. Refusing at the decoder keeps one
// rule for every body and every parser built on it.
func ParseObject(raw []byte, path string) (*Object, error) {
	if !utf8.Valid(raw) {
		field, _ := fieldAt(raw, invalidUTF8At(raw), path)
		return nil, invalid(field, "must be valid UTF-8 (invalid bytes are refused, never replaced)")
	}
	if !json.Valid(raw) {
		// Slow path, only to say what is wrong.
		var v any
		err := json.Unmarshal(raw, &v)
		if err != nil && strings.Contains(err.Error(), "after top-level value") {
			return nil, invalid(path, "unexpected data after the JSON object")
		}
		return nil, invalid(path, "must be a JSON object%s", detail(err))
	}
	if off, problem := textProblem(raw); off >= 0 {
		field, inKey := fieldAt(raw, off, path)
		if inKey {
			return nil, invalid(field, "%s (in the key itself)", problem)
		}
		return nil, invalid(field, "%s", problem)
	}
	return splitChecked(raw, path)
}

// ParseStoredObject reads an object the service stored itself, validated by the rules of the
// build that stored it: it skips the string check of ParseObject, so that a manifest an earlier
// build accepted with a lone surrogate escape (it kept it as sent) still reads as the same
// manifest instead of silently losing its streams. Never use it for a request's body.
func ParseStoredObject(raw []byte) (*Object, error) {
	if !utf8.Valid(raw) || !json.Valid(raw) {
		return nil, invalid("", "must be a JSON object")
	}
	return splitChecked(raw, "")
}

// splitChecked is ParseObject for a text whose encoding and strings were already checked (a
// member of an object ParseObject accepted).
func splitChecked(raw []byte, path string) (*Object, error) {
	fields, ok := splitObject(raw)
	if !ok {
		return nil, invalid(path, "must be a JSON object")
	}
	o := &Object{path: path, fields: fields}
	o.absent = o.absentBuf[:0]
	return o, nil
}

// The two refusals of textProblem.
const (
	problemNUL       = "must not contain U+0000 (NUL)"
	problemSurrogate = "must not contain a lone UTF-16 surrogate (an escaped \\ud800-\\udfff without its pair)"
)

// textProblem finds, in a valid JSON text, the first string escape that decodes to U+0000 or
// to half of a surrogate pair; off is -1 when there is none. A raw NUL or raw control
// character is no valid JSON and a raw surrogate no valid UTF-8, so only escapes can carry them.
// In valid JSON a backslash occurs only inside strings and always starts an escape, so jumping
// from backslash to backslash visits every escape; texts without one cost a single IndexByte.
func textProblem(raw []byte) (off int, problem string) {
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\\')
		if j < 0 || i+j+1 >= len(raw) {
			return -1, ""
		}
		i += j
		if raw[i+1] != 'u' {
			i += 2 // \" \\ \/ \b \f \n \r \t
			continue
		}
		r := hex4(raw[i+2:])
		switch {
		case r == 0:
			return i, problemNUL
		case r >= 0xD800 && r <= 0xDBFF:
			if len(raw) >= i+12 && raw[i+6] == '\\' && raw[i+7] == 'u' {
				if lo := hex4(raw[i+8:]); lo >= 0xDC00 && lo <= 0xDFFF {
					i += 12
					continue
				}
			}
			return i, problemSurrogate
		case r >= 0xDC00 && r <= 0xDFFF:
			return i, problemSurrogate
		}
		i += 6
	}
}

// hex4 decodes the four hex digits of a \u escape (valid JSON guarantees them); -1 otherwise.
func hex4(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	v := 0
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	return v
}

// invalidUTF8At is the offset of the first byte of raw that is not valid UTF-8.
func invalidUTF8At(raw []byte) int {
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(raw)
}

// maxFieldDepth bounds how deep fieldAt descends to name a field (event data nests at most 32
// levels; a deeper text is refused for its depth anyway).
const maxFieldDepth = 64

// fieldAt names the innermost member or element of raw (a JSON value at path) whose text holds
// byte offset off, e.g. events[3].data.browser_surface.browser_surface_status. raw need only be
// well formed before off; the walk never reads past malformed input. inKey reports that off
// lies inside an object key, which the path then ends with (as decoded, for the message only).
// It only runs to word a refusal.
func fieldAt(raw []byte, off int, path string) (field string, inKey bool) {
	i := skipSpace(raw, 0)
	for depth := 0; i < len(raw) && depth < maxFieldDepth; depth++ {
		next := -1
		switch raw[i] {
		case '{':
			for i = skipSpace(raw, i+1); i < len(raw) && raw[i] == '"'; {
				kend := endOfString(raw, i)
				key := string(raw[i+1 : max(i+1, kend-1)])
				if bytes.IndexByte(raw[i:kend], '\\') >= 0 {
					_ = json.Unmarshal(raw[i:kend], &key) // unchanged when it does not decode
				}
				if off < kend {
					return joinPath(path, key), true
				}
				v := skipSpace(raw, kend)
				if v < len(raw) && raw[v] == ':' {
					v = skipSpace(raw, v+1)
				}
				if v >= len(raw) {
					return joinPath(path, key), false
				}
				vend := endOfValue(raw, v)
				if off < vend || vend <= v {
					next, path = v, joinPath(path, key)
					break
				}
				if i = skipSpace(raw, vend); i < len(raw) && raw[i] == ',' {
					i = skipSpace(raw, i+1)
				}
			}
		case '[':
			for n, j := 0, skipSpace(raw, i+1); j < len(raw) && raw[j] != ']'; n++ {
				vend := endOfValue(raw, j)
				if off < vend || vend <= j {
					next, path = j, path+"["+strconv.Itoa(n)+"]"
					break
				}
				if j = skipSpace(raw, vend); j < len(raw) && raw[j] == ',' {
					j = skipSpace(raw, j+1)
				}
			}
		}
		if next < 0 {
			return path, false
		}
		i = next
	}
	return path, false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// splitObject cuts a valid JSON text that is an object into its members, without decoding or
// copying the values (they are read one by one, and many never are). Duplicate keys keep the
// last value, as encoding/json does. ok is false when the text is not an object.
func splitObject(raw []byte) (map[string]member, bool) {
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, false
	}
	// Sized for an event with every field read (ten keys): growing the map cost more than
	// the larger first allocation.
	fields := make(map[string]member, 8)
	i = skipSpace(raw, i+1)
	if raw[i] == '}' {
		return fields, true
	}
	for {
		kend := endOfString(raw, i)
		key, ok := objectKey(raw[i:kend])
		if !ok {
			return nil, false
		}
		i = skipSpace(raw, skipSpace(raw, kend)+1) // past ':'
		vend := endOfValue(raw, i)
		fields[key] = member{raw: raw[i:vend:vend]}
		i = skipSpace(raw, vend)
		if raw[i] == '}' {
			return fields, true
		}
		i = skipSpace(raw, i+1) // past ','
	}
}

// objectKey decodes the quoted key k. A key without escapes is its bytes; only an escaped one
// goes through encoding/json, in a function of its own so that the common case does not move
// the key to the heap (a variable whose address is taken escapes, on every key).
func objectKey(k []byte) (string, bool) {
	if bytes.IndexByte(k, '\\') < 0 {
		return string(k[1 : len(k)-1]), true
	}
	return decodeString(k)
}

func decodeString(k []byte) (string, bool) {
	var s string
	err := json.Unmarshal(k, &s)
	return s, err == nil
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
	m, ok := o.fields[key]
	return ok && string(m.raw) != "null"
}

// Raw returns the raw value of key and marks it read.
func (o *Object) Raw(key string) (json.RawMessage, bool) {
	m, ok := o.fields[key]
	switch {
	case !ok:
		if !slices.Contains(o.absent, key) {
			o.absent = append(o.absent, key)
		}
	case !m.seen:
		m.seen = true
		o.fields[key] = m
	}
	raw := m.raw
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
		return "", false, invalid(o.Path(key), "must be a string")
	}
	return s, true, nil
}

// RequiredString reads a string that must be present and non-empty.
func (o *Object) RequiredString(key string) (string, error) {
	s, ok, err := o.String(key)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", o.missing(key)
	}
	if strings.TrimSpace(s) == "" {
		return "", invalid(o.Path(key), "is required")
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
		return false, false, invalid(o.Path(key), "must be true or false")
	}
	return b, true, nil
}

// NonNegativeInt reads an integer in [0, 2^53). Fractions, exponents that leave the integers,
// strings and out-of-range values are refused.
func (o *Object) NonNegativeInt(key string, required bool) (int64, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		if required {
			return 0, false, o.missing(key)
		}
		return 0, false, nil
	}
	// json.Number also accepts a quoted number ("5"); a figure must be a JSON number.
	var n json.Number
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, false, invalid(o.Path(key), "must be a non-negative integer")
	}
	v, problem := exactInteger(string(n))
	if problem != "" {
		return 0, false, invalid(o.Path(key), "%s", problem)
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
		return nil, false, invalid(o.Path(key), "must be a JSON object")
	}
	sub, err := splitChecked(raw, o.Path(key))
	return sub, err == nil, err
}

// Array reads an optional array and returns its raw elements.
func (o *Object) Array(key string) ([]json.RawMessage, bool, error) {
	raw, ok := o.Raw(key)
	if !ok {
		return nil, false, nil
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false, invalid(o.Path(key), "must be an array")
	}
	return splitArray(raw), true, nil
}

// splitArray cuts a valid JSON array into its elements, without decoding or copying them: the
// text of an Object was checked when it was parsed (decoding it again cost a batch of 1000
// events a second validation of the whole body and an allocation per element).
func splitArray(raw []byte) []json.RawMessage {
	items := []json.RawMessage{}
	i := skipSpace(raw, 1)
	if raw[i] == ']' {
		return items
	}
	for {
		end := endOfValue(raw, i)
		items = append(items, raw[i:end:end])
		i = skipSpace(raw, end)
		if raw[i] == ']' {
			return items
		}
		i = skipSpace(raw, i+1) // past ','
	}
}

// ParseMember reads an element of an array that Array returned, as ParseObject would: its
// encoding and strings were checked with the text it is part of, so only its shape is
// (a batch of 1000 events was checked twice, once as the body and once per event).
func ParseMember(raw []byte, path string) (*Object, error) {
	return splitChecked(raw, path)
}

// RejectUnknown refuses keys that were never read; the first unknown key (sorted) is named,
// with the closest key that was read as a suggestion.
func (o *Object) RejectUnknown() error {
	var unknown, known []string
	for k, m := range o.fields {
		if !m.seen {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	for k, m := range o.fields {
		if m.seen {
			known = append(known, k)
		}
	}
	known = append(known, o.absent...)
	sort.Strings(unknown)
	return UnknownField(o.Path(unknown[0]), unknown[0], known)
}

// Known refuses, before any field is read, a key outside known: an unknown key is named first,
// ahead of a missing or invalid known field, because it is often the misspelt form of the
// field that then seems missing ({"occured_at": …} says "occured_at is not a known field; did
// you mean occurred_at?", not "occurred_at is required"). Objects that keep unknown keys (a
// manifest) do not call it.
func (o *Object) Known(known ...string) error {
	var unknown []string
	for k := range o.fields {
		if !slices.Contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return UnknownField(o.Path(unknown[0]), unknown[0], known)
}

// missing is the refusal of a required key that is absent; when the object holds an unread key
// that looks like a misspelling of it (a manifest keeps unknown keys, so it was not refused),
// the message says so.
func (o *Object) missing(key string) *Error {
	var unread []string
	for k, m := range o.fields {
		if !m.seen {
			unread = append(unread, k)
		}
	}
	sort.Strings(unread)
	for _, k := range unread {
		if Suggest(k, []string{key}) != "" {
			return invalid(o.Path(key), "is required (the body has %q; did you mean %s?)", k, key)
		}
	}
	return invalid(o.Path(key), "is required")
}

// Suggest returns the key of known closest to key when it is close enough to be a typo (at
// most two edits — insertions, deletions, substitutions or swaps of adjacent characters, case
// ignored — and at most a third of the suggestion's length), else "". Ties go to the first in
// sorted order, so the hint is deterministic.
func Suggest(key string, known []string) string {
	if len(key) > 128 {
		return "" // a long key is no typo of a field name, and the distance is quadratic
	}
	best, bestD := "", 3
	sorted := slices.Clone(known)
	sort.Strings(sorted)
	lk := strings.ToLower(key)
	for _, k := range sorted {
		if k == key {
			continue
		}
		d := editDistance(lk, strings.ToLower(k))
		if d < bestD && d*3 <= len(k) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b (bytes): Levenshtein
// with the swap of two adjacent characters counted as one edit.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// Canonical is the canonical form of raw, a valid JSON text in valid UTF-8, as encoding/json writes it after
// decoding into map[string]any with UseNumber and encoding with SetEscapeHTML(false): no
// insignificant space, object keys sorted bytewise (a repeated key keeps its last value),
// numbers and literals as sent. It answers only for texts whose strings that encoder would write
// back byte for byte — no escape at all and no U+2028 or U+2029, the two characters it escapes —
// and reports false for any other text (or one that is not an object), which the caller then
// encodes the slow way. Going through maps and reflection cost an ingest batch of 1000 events a
// third of its validation time.
func Canonical(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '\\') >= 0 || bytes.Contains(raw, []byte("\u2028")) || bytes.Contains(raw, []byte("\u2029")) {
		return "", false
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return "", false
	}
	out := make([]byte, 0, len(raw))
	out, _ = appendCanonical(out, raw, i)
	return string(out), true
}

// appendCanonical appends the canonical form of the value at raw[i] (valid JSON without
// escapes) and returns the index after it.
func appendCanonical(out, raw []byte, i int) ([]byte, int) {
	switch raw[i] {
	case '{':
		type kv struct {
			key        []byte
			start, end int
		}
		var members []kv
		i = skipSpace(raw, i+1)
		for raw[i] != '}' {
			kend := endOfString(raw, i)
			key := raw[i+1 : kend-1]
			v := skipSpace(raw, skipSpace(raw, kend)+1) // past ':'
			vend := endOfValue(raw, v)
			members = append(members, kv{key, v, vend})
			if i = skipSpace(raw, vend); raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
		}
		// Stable, so that of a repeated key the last one sent is the last of its run: the one
		// kept (sorting first keeps a hostile object of thousands of keys at n log n).
		slices.SortStableFunc(members, func(a, b kv) int { return bytes.Compare(a.key, b.key) })
		out = append(out, '{')
		first := true
		for n, m := range members {
			if n+1 < len(members) && bytes.Equal(m.key, members[n+1].key) {
				continue
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, '"')
			out = append(out, m.key...)
			out = append(out, '"', ':')
			out, _ = appendCanonical(out, raw, m.start)
		}
		return append(out, '}'), i + 1
	case '[':
		out = append(out, '[')
		i = skipSpace(raw, i+1)
		for n := 0; raw[i] != ']'; n++ {
			if n > 0 {
				out = append(out, ',')
			}
			out, i = appendCanonical(out, raw, i)
			if i = skipSpace(raw, i); raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
		}
		return append(out, ']'), i + 1
	}
	end := endOfValue(raw, i)
	return append(out, raw[i:end]...), end
}
