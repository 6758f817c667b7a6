package jsonx

import (
	"strings"
	"testing"
)

// TestFieldAtStopsOnMalformedInput: fieldAt words refusals of texts that may be malformed past
// the offset (invalid UTF-8 is found before JSON validity); it must neither loop nor panic.
func TestFieldAtStopsOnMalformedInput(t *testing.T) {
	for _, raw := range []string{``, `{`, `[`, `{"a"`, `{"a":`, `{"a":[1,`, `[}`, `{"a":1}}`, `[[[[`, `{"a":[}]}`, `"`, `{"`, `{"a":"\`, `[,,,]`, `{,}`} {
		for off := 0; off <= len(raw); off++ {
			fieldAt([]byte(raw), off, "p")
		}
	}
	deep := strings.Repeat(`{"a":`, 10000) + `"\u0000"` + strings.Repeat(`}`, 10000)
	if f, _ := fieldAt([]byte(deep), strings.Index(deep, `\u`), ""); strings.Count(f, "a") != maxFieldDepth {
		t.Errorf("a 10000-level path is named with %d levels, want %d", strings.Count(f, "a"), maxFieldDepth)
	}
}
