package runs

// Rule names the decision of the matcher (SPEC §4.2, §2.4), reported in the diagnostics trail.
type Rule string

// The matcher's rules.
const (
	// RuleProfileKeyMatch: the run's profile key equals the connection's expected key.
	RuleProfileKeyMatch Rule = "profile_key_match"
	// RuleProfileKeyMismatch: the run carries a profile key, and it is another one. The key
	// decides alone: an explicit id the run also carries is not looked at.
	RuleProfileKeyMismatch Rule = "profile_key_mismatch"
	// RuleExplicitIDMatch: the run carries no profile key and names this connection.
	RuleExplicitIDMatch Rule = "explicit_id_match"
	// RuleExplicitIDMismatch: the run carries no profile key and names another connection
	// (which may not exist).
	RuleExplicitIDMismatch Rule = "explicit_id_mismatch"
	// RuleNoConnectionEvidence: the run carries neither a profile key nor a connection id.
	RuleNoConnectionEvidence Rule = "no_connection_evidence"
)

// Target is the connection a run is matched against.
type Target struct {
	ConnectionID       string
	ExpectedProfileKey string
}

// Claim is what a run carries about the connection it belongs to: its browser profile key and
// its explicit connection id (either may be nil; an empty value counts as absent).
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
	switch {
	case nonEmptyPtr(c.ProfileKey) && *c.ProfileKey == t.ExpectedProfileKey:
		return true, RuleProfileKeyMatch
	case nonEmptyPtr(c.ProfileKey):
		return false, RuleProfileKeyMismatch
	case nonEmptyPtr(c.ConnectionRef) && *c.ConnectionRef == t.ConnectionID:
		return true, RuleExplicitIDMatch
	case nonEmptyPtr(c.ConnectionRef):
		return false, RuleExplicitIDMismatch
	}
	return false, RuleNoConnectionEvidence
}
