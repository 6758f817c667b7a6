// Package jsonxtest holds test helpers for code that accepts JSON through the strict reader.
package jsonxtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// RequireTextAsSent fails when an accepted JSON text holds a string (key or value, at any
// depth) with U+0000, or one in which decoding replaced something with U+FFFD (a lone
// surrogate escape): SPEC §2, never silently replaced. U+FFFD the text spells itself is fine.
func RequireTextAsSent(t *testing.T, raw []byte) {
	t.Helper()
	spelt := strings.Count(string(raw), "\uFFFD") + strings.Count(strings.ToLower(string(raw)), `\ufffd`)
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // 1e700 is valid JSON, beyond a float64
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("accepted %q: %v", raw, err)
	}
	decoded := 0
	var walk func(v any)
	check := func(s string) {
		if strings.ContainsRune(s, 0) {
			t.Fatalf("accepted a string with NUL in %q", raw)
		}
		decoded += strings.Count(s, "\uFFFD")
	}
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			check(x)
		case []any:
			for _, el := range x {
				walk(el)
			}
		case map[string]any:
			for k, el := range x {
				check(k)
				walk(el)
			}
		}
	}
	walk(v)
	if decoded > spelt {
		t.Fatalf("accepted %q, in which decoding replaced %d characters with U+FFFD", raw, decoded-spelt)
	}
}
