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

// Claim is what a run carries about the connection it belongs to: its browser profile key and
// its explicit connection id (either may be nil).
type Claim struct {
	ProfileKey    *string
	ConnectionRef *string
}

// Claim returns the connection evidence of a resolved run.
func (s *Summary) Claim() Claim {
	return Claim{ProfileKey: s.BrowserSurfaceProfileKey, ConnectionRef: s.ConnectionRef}
}

// Match decides whether a run with claim c belongs to t. A run with a profile key belongs only
// to the connection whose expected key it equals; a run without one belongs only to the
// connection it names explicitly. Nothing else matches: no connector-wide fallback.
func Match(c Claim, t Target) (bool, Rule) {
	if nonEmptyPtr(c.ProfileKey) {
		if *c.ProfileKey == t.ExpectedProfileKey {
			return true, RuleProfileKeyMatch
		}
		return false, RuleProfileKeyMismatch
	}
	if c.ConnectionRef != nil && *c.ConnectionRef == t.ConnectionID {
		return true, RuleExplicitIDMatch
	}
	return false, RuleNoConnectionEvidence
}
