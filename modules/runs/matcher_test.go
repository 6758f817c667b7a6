package runs_test

import (
	"testing"

	"connsum/modules/catalog"
	"connsum/modules/runs"
)

// Pure tests of the matcher (SPEC §4.2, §2.4): every rule, and a run naming another connection
// is explicit_id_mismatch, not no_connection_evidence.
func TestMatchRules(t *testing.T) {
	shopping := "amazon-shopping"
	amazon := &catalog.Connector{ConnectorID: "amazon", ProfileKey: &shopping}
	conn := &catalog.Connection{ConnectionID: "cin_a", ConnectorID: "amazon"}
	target := runs.Target{ConnectionID: "cin_a", ExpectedProfileKey: catalog.ExpectedProfileKey(conn, amazon)}
	if target.ExpectedProfileKey != "amazon-shopping:cin_a" {
		t.Fatalf("expected profile key = %q, want amazon-shopping:cin_a (SPEC §1.3)", target.ExpectedProfileKey)
	}
	run := func(key, ref string) *runs.Summary {
		s := &runs.Summary{RunID: "run_1"}
		if key != "\x00" {
			s.BrowserSurfaceProfileKey = &key
		}
		if ref != "\x00" {
			s.ConnectionRef = &ref
		}
		return s
	}
	const none = "\x00"
	cases := []struct {
		name    string
		run     *runs.Summary
		matched bool
		rule    runs.Rule
	}{
		{"expected key", run("amazon-shopping:cin_a", none), true, runs.RuleProfileKeyMatch},
		{"sibling's key", run("amazon-shopping:cin_b", none), false, runs.RuleProfileKeyMismatch},
		{"draft shell's key", run("amazon-shopping:cin_shell", none), false, runs.RuleProfileKeyMismatch},
		{"bare connection id as key", run("cin_a", none), false, runs.RuleProfileKeyMismatch},
		{"bare manifest key", run("amazon-shopping", none), false, runs.RuleProfileKeyMismatch},
		{"connector id instead of manifest key", run("amazon:cin_a", none), false, runs.RuleProfileKeyMismatch},
		{"key decides over an explicit id", run("amazon-shopping:cin_b", "cin_a"), false, runs.RuleProfileKeyMismatch},
		{"matching key with another explicit id", run("amazon-shopping:cin_a", "cin_b"), true, runs.RuleProfileKeyMatch},
		{"no key, explicit id", run(none, "cin_a"), true, runs.RuleExplicitIDMatch},
		{"empty key counts as no key", run("", "cin_a"), true, runs.RuleExplicitIDMatch},
		{"no key, sibling's id", run(none, "cin_b"), false, runs.RuleExplicitIDMismatch},
		{"no key, a connection that does not exist", run(none, "cin_nope"), false, runs.RuleExplicitIDMismatch},
		{"empty key, sibling's id", run("", "cin_b"), false, runs.RuleExplicitIDMismatch},
		{"no key, no id", run(none, none), false, runs.RuleNoConnectionEvidence},
		{"no key, empty id", run(none, ""), false, runs.RuleNoConnectionEvidence},
	}
	for _, c := range cases {
		ok, rule := runs.Match(c.run.Claim(), target)
		if ok != c.matched || rule != c.rule {
			t.Errorf("%s: Match = %v %s, want %v %s", c.name, ok, rule, c.matched, c.rule)
		}
	}

	// An empty target key never matches an empty run key (a connection always has a key).
	empty := ""
	if ok, _ := runs.Match(runs.Claim{ProfileKey: &empty}, runs.Target{ConnectionID: "cin_x"}); ok {
		t.Error("a run with an empty key and no id matched a connection")
	}
}
