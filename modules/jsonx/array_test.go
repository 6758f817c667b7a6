package jsonx

import (
	"encoding/json"
	"reflect"
	"testing"
)

// checkArraySplit compares Array's elements of {"a": <array>} with encoding/json's.
func checkArraySplit(t *testing.T, array string) {
	t.Helper()
	o, err := ParseObject([]byte(`{"a":`+array+`}`), "")
	if err != nil {
		return // not an object ParseObject accepts: Array is never reached
	}
	got, ok, err := o.Array("a")
	var want []json.RawMessage
	if json.Unmarshal([]byte(array), &want) != nil {
		if err == nil && ok {
			t.Fatalf("Array(%q) = %q, but it is not an array", array, got)
		}
		return
	}
	if err != nil || !ok {
		t.Fatalf("Array(%q): %v", array, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Array(%q) = %q, encoding/json %q", array, got, want)
	}
}

// TestArraySplitsLikeEncodingJSON: Array cuts the (already validated) array without decoding it,
// into the same elements encoding/json decodes, whitespace, nesting and escapes included.
func TestArraySplitsLikeEncodingJSON(t *testing.T) {
	for _, a := range []string{`[]`, `[ ]`, "[\n]", `[1]`, ` [ 1 , "x" , null ]`, `[{"a":[1,{"b":"]"}]},"\"]\\",[],{}]`,
		`[true,false,-1.5e3,"\u00e9"]`, "[\t{\"k\" : [ [ ] ] }\r\n,2]", `["[", "{", "}", "]"]`, `{"x":1}`, `"s"`, `3`} {
		checkArraySplit(t, a)
	}
}

// FuzzArraySplit checks Array against encoding/json on any array text.
func FuzzArraySplit(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a",{"b":[2]}]`, ` [ "\"" , [ ] ] `} {
		f.Add(s)
	}
	f.Fuzz(checkArraySplit)
}

// TestParseMemberSplitsAnElement: an element of a checked text is split as ParseObject would,
// and a member that is no object is refused under its path.
func TestParseMemberSplitsAnElement(t *testing.T) {
	o, err := ParseObject([]byte(`{"events":[{"a":"x","b":{"c":1}}, 7]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	items, _, _ := o.Array("events")
	m, err := ParseMember(items[0], "events[0]")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok, err := m.String("a"); s != "x" || !ok || err != nil {
		t.Fatalf("a = %q %v %v", s, ok, err)
	}
	if _, err := ParseMember(items[1], "events[1]"); err == nil || err.(*Error).Field != "events[1]" {
		t.Fatalf("a number as member: %v, want a refusal naming events[1]", err)
	}
}
