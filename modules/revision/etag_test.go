package revision_test

import (
	"testing"
	"time"

	"connsum/modules/revision"
)

func TestNotModified(t *testing.T) {
	q := revision.QueryDigest("/_ref/connectors", "overview")
	other := revision.QueryDigest("/_ref/connectors", "connector_id=gmail")
	until := t0.Add(10 * time.Minute)
	tag := revision.Tag{Revision: 7, ValidUntil: until, Query: q}.String()
	timeless := revision.Tag{Revision: 7, Query: q}.String()
	cases := []struct {
		name   string
		header string
		rev    int64
		digest string
		now    time.Time
		want   bool
	}{
		{"same revision, query and time", tag, 7, q, t0, true},
		{"at the last valid moment", tag, 7, q, until, true},
		{"past the time horizon", tag, 7, q, until.Add(time.Millisecond), false},
		{"no time horizon", timeless, 7, q, t0.Add(1000 * time.Hour), true},
		{"a later revision", tag, 8, q, t0, false},
		{"another query", tag, 7, other, t0, false},
		{"weak form compares weakly", "W/" + tag, 7, q, t0, true},
		{"one of a list", `"x", ` + tag, 7, q, t0, true},
		{"star is for writes", "*", 7, q, t0, false},
		{"malformed", `"r7.0"`, 7, q, t0, false},
		{"unquoted", tag[1 : len(tag)-1], 7, q, t0, false},
		{"negative", `"r-7.0.` + q + `"`, 7, q, t0, false},
		{"empty", "", 7, q, t0, false},
	}
	for _, c := range cases {
		if _, got := revision.NotModified(c.header, c.rev, c.digest, c.now); got != c.want {
			t.Errorf("%s: NotModified(%q) = %v, want %v", c.name, c.header, got, c.want)
		}
	}
	if echo, _ := revision.NotModified("W/"+tag, 7, q, t0); echo != tag {
		t.Errorf("a 304 repeats the strong tag %s, got %s", tag, echo)
	}
	if q == other || len(q) != 12 {
		t.Fatalf("digests %q %q", q, other)
	}
}
