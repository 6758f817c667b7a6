package runs

// The lease statuses of browser-surface events (SPEC §1.4). A run without run.started and
// without terminal event takes the latest of them as its status (SPEC §4.1 rule 3).
const (
	StatusWaitingForSurface = "waiting_for_browser_surface"
	StatusStartingSurface   = "starting_surface"
	StatusLeased            = "leased"
	StatusReleased          = "released"
	StatusExpired           = "expired"
	StatusDeferred          = "deferred"
	// StatusRejected is the status of a refused run; like failed, its event gives the run's
	// failure_reason (SPEC §4.1).
	StatusRejected = "rejected"
)

// runStatuses are the statuses the fold derives from the event vocabulary of SPEC §1.4: the
// terminal statuses (rule 1), in_progress and the orphaned failed (rule 2), the lease statuses,
// surface_failed and rejected (rule 3), and unknown (rule 4). This is the one list: the runs
// route's status filter accepts exactly these, and its error message and the API document name
// them. A status outside the vocabulary that a client put on its events still shows as the run's
// status; it is not a filter value.
var runStatuses = []string{
	StatusSucceeded, StatusFailed, StatusCancelled, StatusAbandoned, StatusInProgress,
	StatusSurfaceFailed, StatusWaitingForSurface, StatusStartingSurface, StatusLeased, StatusReleased,
	StatusExpired, StatusDeferred, StatusRejected, StatusUnknown,
}

var runStatusSet = func() map[string]bool {
	m := make(map[string]bool, len(runStatuses))
	for _, s := range runStatuses {
		m[s] = true
	}
	return m
}()

// RunStatuses returns the statuses a run summary can have from the event vocabulary, in a fixed
// order (a fresh slice: callers may keep it).
func RunStatuses() []string { return append([]string(nil), runStatuses...) }

// IsRunStatus reports whether s is one of RunStatuses.
func IsRunStatus(s string) bool { return runStatusSet[s] }
