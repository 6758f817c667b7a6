package console

// Reason is a code the service produces (a run's failure reason, a browser-surface wait reason
// or status, a health reason) said for people: what happened, and what to do next.
type Reason struct {
	// Code is the machine code as the API carries it.
	Code string `json:"code"`
	// Text is one plain sentence.
	Text string `json:"text"`
	// Action is the next thing to do; empty when there is nothing to do.
	Action string `json:"action,omitempty"`
	// Known is false for a code that is not in the table (a connector's own code).
	Known bool `json:"known"`
}

type explanation struct{ text, action string }

const (
	retryBrowserHost = "Retry; if it repeats, check the browser host."
	retryLater       = "Nothing to do: the next scheduled sync retries. If it repeats, retry later by hand."
)

// reasons is the one table from every reason code the service can produce to a sentence and
// the next action. TestReasonTableCoversEveryReason fails when the fold, the health rules or the
// browser-surface vocabulary can produce a code that is missing here.
var reasons = map[string]explanation{
	// Health reasons (SPEC §4.4).
	"fresh":                  {"Synced recently, within what the connector allows.", ""},
	"last_run_succeeded":     {"The last sync succeeded (the connector sets no staleness limit to judge its age by).", ""},
	"run_in_progress":        {"A sync is running now.", ""},
	"max_staleness_exceeded": {"The last successful sync is older than the connector allows.", "Start a sync; if none runs, check that the connector is scheduled."},
	"unknown_failure":        {"The last sync failed without saying why.", "Retry; if it repeats, read the connector's logs."},
	"no_run_evidence":        {"No sync of this account has been recorded yet.", "Start a first sync."},
	"last_run_not_terminal":  {"The last sync neither finished nor is running: it is waiting or was left.", "Wait a few minutes; if it stays, retry."},
	"connection_paused":      {"You paused this account: it does not sync.", "Resume it when it should sync again."},
	"connection_revoked":     {"Access to this account was revoked: it no longer syncs.", "Reconnect the account to sync it again."},

	// Failure reasons the fold produces itself (SPEC §4.1).
	"orphaned_started_run":   {"A sync started but never reported an end: its worker probably stopped.", "Retry; if it repeats, check the connector's worker."},
	"browser_surface_failed": {"The browser session failed.", retryBrowserHost},

	// Browser-surface wait reasons (SPEC §1.4).
	"capacity_full":               {"Every browser session was busy.", "Retry later, or give the browser host more capacity."},
	"surface_starting":            {"The browser session was still starting.", "Wait: it should be ready shortly."},
	"surface_unhealthy":           {"The browser session was unhealthy.", retryBrowserHost},
	"surface_start_failed":        {"The browser session did not start.", retryBrowserHost},
	"surface_readiness_timeout":   {"The browser session did not become ready in time.", "Retry; if it repeats, check the browser host's load."},
	"incompatible_static_profile": {"The saved browser profile does not fit this connector.", "Enroll the account again in a fresh browser profile."},
	"launch_precondition_failed":  {"The browser could not be launched: a precondition failed.", "Check the browser host's set-up."},
	"lease_wait_timeout":          {"Waited too long for a browser session.", "Retry later, or give the browser host more capacity."},

	// Browser-surface lease statuses (SPEC §1.4): a surface failure without wait reason names
	// the status it ended in.
	"waiting_for_browser_surface": {"Waiting for a browser session.", "Wait; if it stays, check the browser host's capacity."},
	"starting_surface":            {"The browser session is starting.", ""},
	"leased":                      {"Holding a browser session.", ""},
	"released":                    {"The browser session was released.", ""},
	"expired":                     {"The browser session expired before the sync finished.", "Retry; if it repeats, check the browser host."},
	"deferred":                    {"The browser session was deferred.", "Nothing to do: it is tried again later."},
	"cancelled":                   {"The sync was cancelled.", "Start it again when needed."},
	"surface_failed":              {"The browser session failed.", retryBrowserHost},

	// Run statuses, for a run without failure reason.
	"succeeded":   {"The sync succeeded.", ""},
	"failed":      {"The sync failed.", "Retry; if it repeats, read the connector's logs."},
	"abandoned":   {"The sync was abandoned before it finished.", "Retry."},
	"in_progress": {"The sync is running.", ""},
	"rejected":    {"The sync was refused.", "Read the connector's logs for why."},
	"unknown":     {"The sync's state is not known.", ""},

	// Codes connectors commonly report (the demo's among them).
	"login_required": {"The site asks to log in again.", "Log in again in the connector's browser profile."},
	"mfa_timeout":    {"A two-factor code was not entered in time.", "Start a sync and enter the code when asked."},
	"rate_limited":   {"The site limited the number of requests.", retryLater},
	"upstream_5xx":   {"The site answered with a server error.", retryLater},
}

// Explain says a reason code for people. An unknown code (a connector's own) is shown as the
// connector reported it.
func Explain(code string) Reason {
	if e, ok := reasons[code]; ok {
		return Reason{Code: code, Text: e.text, Action: e.action, Known: true}
	}
	if code == "" {
		return Reason{}
	}
	return Reason{Code: code, Text: "Reported by the connector: " + code + ".", Action: "Read the connector's documentation or logs for this code."}
}

// statusWords are the run statuses, health states and connection statuses as badge words.
var statusWords = map[string]string{
	"succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled", "abandoned": "abandoned",
	"in_progress": "running", "surface_failed": "browser failed", "waiting_for_browser_surface": "waiting for browser",
	"starting_surface": "browser starting", "leased": "browser leased", "released": "browser released",
	"expired": "browser expired", "deferred": "deferred", "rejected": "refused", "unknown": "unknown",
	"healthy": "healthy", "syncing": "syncing", "failing": "failing", "stale": "stale",
	"paused": "paused", "revoked": "revoked", "active": "active", "draft": "draft",
	"current": "current",
	"account": "account", "local_device": "local device", "browser_collector": "browser", "manual": "manual",
}

// Word is a status, state or rule as a short label ("in_progress" → "running"); unknown values
// are shown as they are.
func Word(s string) string {
	if w, ok := statusWords[s]; ok {
		return w
	}
	return s
}
