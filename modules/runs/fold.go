package runs

import (
	"encoding/json"
	"sort"
	"time"

	"connsum/modules/bootstrap"
)

// Run statuses produced by the fold.
const (
	StatusSucceeded     = "succeeded"
	StatusFailed        = "failed"
	StatusCancelled     = "cancelled"
	StatusAbandoned     = "abandoned"
	StatusInProgress    = "in_progress"
	StatusSurfaceFailed = "surface_failed"
	StatusUnknown       = "unknown"
	OrphanedReason      = "orphaned_started_run"
)

// terminalTypes maps terminal event types to the status they give (SPEC §4.1 rule 1).
var terminalTypes = map[string]string{
	"run.completed": StatusSucceeded,
	"run.failed":    StatusFailed,
	"run.cancelled": StatusCancelled,
	"run.abandoned": StatusAbandoned,
}

// terminalTypeList is terminalTypes' keys, for SQL that loads `data` of terminal events only.
var terminalTypeList = []string{"run.completed", "run.failed", "run.cancelled", "run.abandoned"}

// IsTerminalStatus reports whether a run with this status is finished.
func IsTerminalStatus(s string) bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusAbandoned, StatusSurfaceFailed:
		return true
	}
	return false
}

// EventRow is what the fold reads of one event. Data is loaded for terminal events only.
type EventRow struct {
	RunID         string  `bun:"run_id"`
	Seq           int64   `bun:"event_seq"`
	Type          string  `bun:"event_type"`
	OccurredAt    string  `bun:"occurred_at"`
	Status        *string `bun:"status"`
	ConnectionRef *string `bun:"connection_ref"`
	FailureReason *string `bun:"failure_reason"`
	BSPresent     bool    `bun:"bs_present"`
	BSStatus      *string `bun:"bs_status"`
	BSWaitReason  *string `bun:"bs_wait_reason"`
	BSProfileKey  *string `bun:"bs_profile_key"`
	Data          *string `bun:"data"`
}

// Summary is the fold of one run's events (SPEC §4.1, §2.3 run summary shape).
type Summary struct {
	RunID                    string          `json:"run_id"`
	Status                   string          `json:"status"`
	StartedAt                *string         `json:"started_at"`
	FinishedAt               *string         `json:"finished_at"`
	FirstAt                  string          `json:"first_at"`
	LastAt                   string          `json:"last_at"`
	EventCount               int             `json:"event_count"`
	FailureReason            *string         `json:"failure_reason"`
	BrowserSurfaceStatus     *string         `json:"browser_surface_status"`
	BrowserSurfaceWaitReason *string         `json:"browser_surface_wait_reason"`
	BrowserSurfaceProfileKey *string         `json:"browser_surface_profile_key"`
	KnownGaps                json.RawMessage `json:"known_gaps"`
	CollectionFacts          json.RawMessage `json:"collection_facts"`

	// ConnectionRef is the run's explicit connection evidence (first non-empty
	// connector_instance_id/connection_id); it is not part of the JSON shape.
	ConnectionRef *string `json:"-"`
	// TurnsAt is, for a run in progress, the moment the clock alone turns it into a failed
	// (orphaned) run, and for a run the clock turned so, the moment it did; zero for every
	// other run. It is what lets an answer say how long it stays true (SPEC §2.7).
	TurnsAt time.Time `json:"-"`
}

func ptr(s string) *string { return &s }

func nonEmptyPtr(p *string) bool { return p != nil && *p != "" }

// Partial is the time-independent part of a run's fold: everything but the in-progress /
// orphaned decision, which depends on the clock. The read model stores it per run; Resolve
// finishes it at read time, so both evidence paths share one fold.
type Partial struct {
	RunID      string
	FirstAt    string
	LastAt     string
	EventCount int
	// StatusKey is the status from rules 1 and 3 of SPEC §4.1, or "started" when rule 2 (a
	// run.started without terminal event) applies and the clock must decide. It is derived from
	// the three status inputs below, which is what lets partials merge.
	StatusKey          string
	TerminalStatus     *string // status of the latest terminal event
	Started            bool    // a run.started exists
	LastStatus         *string // latest non-empty status other than unknown
	EventFailureReason *string
	BSStatus           *string
	BSWaitReason       *string
	BSProfileKey       *string
	ConnectionRef      *string
	KnownGaps          json.RawMessage
	CollectionFacts    json.RawMessage

	bsPresent bool // the partial holds an event with data.browser_surface
}

// statusStarted is the StatusKey of a started run without terminal event.
const statusStarted = "started"

func emptyPartial(runID string) Partial {
	return Partial{RunID: runID, StatusKey: StatusUnknown, KnownGaps: json.RawMessage("[]"), CollectionFacts: json.RawMessage("null")}
}

// single is the partial of one event.
func single(runID string, e *EventRow) Partial {
	p := emptyPartial(runID)
	p.FirstAt, p.LastAt, p.EventCount = e.OccurredAt, e.OccurredAt, 1
	if st, ok := terminalTypes[e.Type]; ok {
		p.TerminalStatus = ptr(st)
		p.applyTerminalData(e.Data)
	}
	p.Started = e.Type == "run.started"
	if nonEmptyPtr(e.Status) && *e.Status != StatusUnknown {
		p.LastStatus = e.Status
	}
	if e.BSPresent {
		p.bsPresent, p.BSStatus, p.BSWaitReason, p.BSProfileKey = true, e.BSStatus, e.BSWaitReason, e.BSProfileKey
	}
	if nonEmptyPtr(e.ConnectionRef) {
		p.ConnectionRef = e.ConnectionRef
	}
	if nonEmptyPtr(e.FailureReason) && (e.Type == "run.failed" || (e.Status != nil && (*e.Status == "failed" || *e.Status == "rejected"))) {
		p.EventFailureReason = e.FailureReason
	}
	p.StatusKey = statusKey(p.TerminalStatus, p.Started, p.LastStatus)
	return p
}

func statusKey(terminal *string, started bool, last *string) string {
	switch {
	case terminal != nil:
		return *terminal
	case started:
		return statusStarted
	case last != nil:
		return *last
	}
	return StatusUnknown
}

// Merge folds later into p, where every event of later has a higher event_seq than every event
// of p (appends only ever add higher sequence numbers). "Latest" fields take later's value when
// it has one, "first" fields keep p's. Accumulate is Merge over single events, so the read model
// (which merges each batch into the stored partial) and the fold are one computation.
func (p Partial) Merge(later Partial) Partial {
	if p.EventCount == 0 {
		later.RunID = p.RunID
		return later
	}
	if later.EventCount == 0 {
		return p
	}
	out := p
	out.FirstAt, out.LastAt = min(p.FirstAt, later.FirstAt), max(p.LastAt, later.LastAt)
	out.EventCount += later.EventCount
	if later.TerminalStatus != nil {
		out.TerminalStatus, out.KnownGaps, out.CollectionFacts = later.TerminalStatus, later.KnownGaps, later.CollectionFacts
	}
	out.Started = p.Started || later.Started
	if later.LastStatus != nil {
		out.LastStatus = later.LastStatus
	}
	if out.EventFailureReason == nil {
		out.EventFailureReason = later.EventFailureReason
	}
	if later.bsPresent {
		out.bsPresent, out.BSStatus, out.BSWaitReason, out.BSProfileKey = true, later.BSStatus, later.BSWaitReason, later.BSProfileKey
	}
	if out.ConnectionRef == nil {
		out.ConnectionRef = later.ConnectionRef
	}
	out.StatusKey = statusKey(out.TerminalStatus, out.Started, out.LastStatus)
	return out
}

// Accumulate folds a run's events into its Partial. Every "first", "latest" and "terminal"
// decision uses event_seq, never occurred_at.
func Accumulate(runID string, events []EventRow) Partial {
	evs := make([]EventRow, len(events))
	copy(evs, events)
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	p := emptyPartial(runID)
	for i := range evs {
		p = p.Merge(single(runID, &evs[i]))
	}
	return p
}

// Resolve finishes a Partial against the clock: a started run without terminal event is
// in_progress while now - last_at <= staleAfter, else failed/orphaned_started_run.
func (p Partial) Resolve(now time.Time, staleAfter time.Duration) Summary {
	s := Summary{RunID: p.RunID, Status: p.StatusKey, FirstAt: p.FirstAt, LastAt: p.LastAt, EventCount: p.EventCount,
		FailureReason: p.EventFailureReason, BrowserSurfaceStatus: p.BSStatus, BrowserSurfaceWaitReason: p.BSWaitReason,
		BrowserSurfaceProfileKey: p.BSProfileKey, KnownGaps: p.KnownGaps, CollectionFacts: p.CollectionFacts,
		ConnectionRef: p.ConnectionRef}
	if p.EventCount == 0 {
		return s
	}
	orphaned := false
	if p.StatusKey == statusStarted {
		last, err := time.Parse(bootstrap.TimeFormat, p.LastAt)
		if err == nil && now.Sub(last) <= staleAfter {
			s.Status = StatusInProgress
		} else {
			s.Status, orphaned = StatusFailed, true
		}
		if err == nil {
			// In progress up to and including last + staleAfter; orphaned from just after.
			s.TurnsAt = last.Add(staleAfter)
		}
	}
	if s.FailureReason == nil {
		switch {
		case s.Status == StatusSurfaceFailed:
			switch {
			case nonEmptyPtr(s.BrowserSurfaceWaitReason):
				s.FailureReason = s.BrowserSurfaceWaitReason
			case nonEmptyPtr(s.BrowserSurfaceStatus):
				s.FailureReason = s.BrowserSurfaceStatus
			default:
				s.FailureReason = ptr("browser_surface_failed")
			}
		case orphaned:
			s.FailureReason = ptr(OrphanedReason)
		}
	}
	s.StartedAt = ptr(s.FirstAt)
	if IsTerminalStatus(s.Status) {
		s.FinishedAt = ptr(s.LastAt)
	}
	return s
}

// Fold folds one run's events into its summary: Accumulate, then Resolve against now. The same
// events fold differently as time passes (a started run becomes orphaned).
func Fold(runID string, events []EventRow, now time.Time, staleAfter time.Duration) Summary {
	return Accumulate(runID, events).Resolve(now, staleAfter)
}

// applyTerminalData takes known_gaps (an array, default []) and collection_facts (an object or
// null) from the latest terminal event's data.
func (p *Partial) applyTerminalData(data *string) {
	if data == nil {
		return
	}
	var d struct {
		KnownGaps       json.RawMessage `json:"known_gaps"`
		CollectionFacts json.RawMessage `json:"collection_facts"`
	}
	if json.Unmarshal([]byte(*data), &d) != nil {
		return
	}
	if len(d.KnownGaps) > 0 && d.KnownGaps[0] == '[' {
		p.KnownGaps = d.KnownGaps
	}
	if len(d.CollectionFacts) > 0 && d.CollectionFacts[0] == '{' {
		p.CollectionFacts = d.CollectionFacts
	}
}

// Before reports whether a comes before b in run order: last_at DESC, then run_id DESC.
func Before(a, b *Summary) bool {
	if a.LastAt != b.LastAt {
		return a.LastAt > b.LastAt
	}
	return a.RunID > b.RunID
}

// SortRuns sorts summaries in run order.
func SortRuns(s []Summary) {
	sort.SliceStable(s, func(i, j int) bool { return Before(&s[i], &s[j]) })
}
