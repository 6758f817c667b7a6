package runs

// Rule names the decision of the matcher (SPEC §4.2), reported in the diagnostics trail.
type Rule string

// The matcher's rules.
const (
	RuleProfileKeyMatch      Rule = "profile_key_match"
	RuleProfileKeyMismatch   Rule = "profile_key_mismatch"
	RuleExplicitIDMatch      Rule = "explicit_id_match"
	RuleNoConnectionEvidence Rule = "no_connection_evidence"
)

// Target is the connection a run is matched against.
type Target struct {
	ConnectionID       string
	ExpectedProfileKey string
}

// Match decides whether run s belongs to t. A run with a profile key belongs only to the
// connection whose expected key it equals; a run without one belongs only to the connection it
// names explicitly. Nothing else matches: no connector-wide fallback.
func Match(s *Summary, t Target) (bool, Rule) {
	if nonEmptyPtr(s.BrowserSurfaceProfileKey) {
		if *s.BrowserSurfaceProfileKey == t.ExpectedProfileKey {
			return true, RuleProfileKeyMatch
		}
		return false, RuleProfileKeyMismatch
	}
	if s.ConnectionRef != nil && *s.ConnectionRef == t.ConnectionID {
		return true, RuleExplicitIDMatch
	}
	return false, RuleNoConnectionEvidence
}
