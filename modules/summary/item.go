// Package summary builds the per-connection summary feed: one pure function for the item shape,
// the shallow/deep/scoped pipelines, the overview cache, the feed and admin routes.
package summary

import (
	"encoding/json"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/retained"
	"connsum/modules/runs"
)

// StreamRecords is one entry of stream_records.
type StreamRecords struct {
	Stream       string  `json:"stream"`
	RecordCount  int64   `json:"record_count"`
	TotalBytes   int64   `json:"total_bytes"`
	LastRecordAt *string `json:"last_record_at"`
}

// RetainedBytes is the retained_bytes object.
type RetainedBytes struct {
	RecordJSONBytes        int64 `json:"record_json_bytes"`
	RecordChangesJSONBytes int64 `json:"record_changes_json_bytes"`
	BlobBytes              int64 `json:"blob_bytes"`
	TotalBytes             int64 `json:"total_bytes"`
}

// Freshness is the freshness object; absent times are left out.
type Freshness struct {
	Status          string `json:"status"`
	CapturedAt      string `json:"captured_at,omitempty"`
	LastAttemptedAt string `json:"last_attempted_at,omitempty"`
}

// Health is the health object.
type Health struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// The health states of SPEC §4.4; revoked and paused are the connection statuses of the same name.
const (
	HealthHealthy = "healthy"
	HealthSyncing = "syncing"
	HealthFailing = "failing"
	HealthStale   = "stale"
	HealthUnknown = "unknown"
	HealthPaused  = catalog.StatusPaused
	HealthRevoked = catalog.StatusRevoked
)

// HealthStates lists every health state, in the order of the rules that give them.
var HealthStates = []string{HealthRevoked, HealthPaused, HealthSyncing, HealthFailing, HealthStale, HealthHealthy, HealthUnknown}

// The health reasons that are not a run's failure_reason or a connection status.
const (
	ReasonRunInProgress      = "run_in_progress"
	ReasonUnknownFailure     = "unknown_failure"
	ReasonMaxStaleness       = "max_staleness_exceeded"
	ReasonFresh              = "fresh"
	ReasonLastRunSucceeded   = "last_run_succeeded"
	ReasonNoRunEvidence      = "no_run_evidence"
	ReasonLastRunNotTerminal = "last_run_not_terminal"
	reasonConnectionPrefix   = "connection_" // connection_revoked, connection_paused
)

// Item is one connector_summary. Field order follows SPEC §2.3; every key is always present.
type Item struct {
	Object               string            `json:"object"`
	ConnectionID         string            `json:"connection_id"`
	ConnectorInstanceID  string            `json:"connector_instance_id"`
	ConnectorID          string            `json:"connector_id"`
	ConnectorDisplayName string            `json:"connector_display_name"`
	DisplayName          string            `json:"display_name"`
	Status               string            `json:"status"`
	RevokedAt            *string           `json:"revoked_at"`
	SourceKind           string            `json:"source_kind"`
	CreatedAt            string            `json:"created_at"`
	ManifestVersion      *string           `json:"manifest_version"`
	Streams              []string          `json:"streams"`
	RefreshPolicy        json.RawMessage   `json:"refresh_policy"`
	TotalRecords         int64             `json:"total_records"`
	StreamCount          int               `json:"stream_count"`
	StreamRecords        []StreamRecords   `json:"stream_records"`
	RetainedBytes        *RetainedBytes    `json:"retained_bytes"`
	TotalRetainedBytes   *int64            `json:"total_retained_bytes"`
	Evidence             runs.EvidenceKind `json:"evidence"`
	LastRun              *runs.Summary     `json:"last_run"`
	LastSuccessfulRun    *runs.Summary     `json:"last_successful_run"`
	Freshness            Freshness         `json:"freshness"`
	Health               Health            `json:"health"`

	// turns: see TurnsAt; turned: see TurnedAt. Not part of the JSON shape.
	turns, turned time.Time
}

// TurnsAt is the last moment at which the item is still what it is without a write: after it,
// the clock alone changes it (a run in progress becomes orphaned, a current connection becomes
// stale). Zero when no field of the item depends on the time.
func (it *Item) TurnsAt() time.Time { return it.turns }

// TurnedAt is the moment the clock alone last changed the item (its run was orphaned, it went
// stale by age): a client that last heard of it before then has missed a change. Zero when the
// item is what it was made by its writes alone.
func (it *Item) TurnedAt() time.Time { return it.turned }

// timeBounds sets it.turns and it.turned from the item's run fields and freshness (SPEC §4.1 rule
// 2, §4.4): the two ways the clock changes an item.
func timeBounds(it *Item, maxStaleness int64) {
	earliest := func(t time.Time) {
		if !t.IsZero() && (it.turns.IsZero() || t.Before(it.turns)) {
			it.turns = t
		}
	}
	latest := func(t time.Time) {
		if !t.IsZero() && t.After(it.turned) {
			it.turned = t
		}
	}
	if r := it.LastRun; r != nil && !r.TurnsAt.IsZero() {
		switch {
		case r.Status == runs.StatusInProgress:
			earliest(r.TurnsAt)
		case r.FailureReason != nil && *r.FailureReason == runs.OrphanedReason:
			latest(r.TurnsAt)
		}
	}
	if maxStaleness > 0 && it.Freshness.CapturedAt != "" {
		if captured, err := time.Parse(bootstrap.TimeFormat, it.Freshness.CapturedAt); err == nil {
			limit := captured.Add(time.Duration(maxStaleness) * time.Second)
			switch {
			case it.Freshness.Status == "current":
				earliest(limit)
			case it.Health.Reason == ReasonMaxStaleness:
				latest(limit)
			}
		}
	}
}

// ValidUntil is the last moment at which none of items changes with the time alone (the
// earliest TurnsAt); zero when none can.
func ValidUntil(items []Item) time.Time {
	var until time.Time
	for i := range items {
		if t := items[i].turns; !t.IsZero() && (until.IsZero() || t.Before(until)) {
			until = t
		}
	}
	return until
}

// Input is everything one item is built from.
type Input struct {
	Entry    catalog.Entry
	Retained *retained.Retained // nil: no rows
	// Evidence is the connection's run evidence; nil when none was found or none was looked up.
	Evidence *runs.ConnectionEvidence
	// EvidenceKind says where Evidence came from (the Evidence port's Kind); the zero value is
	// shallow: run fields not looked up.
	EvidenceKind runs.EvidenceKind
	Now          time.Time
}

// Project builds one item. It is pure (no I/O, time from the input) and the single source of the
// item's shape for every pipeline.
func Project(in Input) Item {
	conn, k := in.Entry.Connection, in.Entry.Connector
	it := Item{
		Object: "connector_summary", ConnectionID: conn.ConnectionID, ConnectorInstanceID: conn.ConnectionID,
		ConnectorID: conn.ConnectorID, ConnectorDisplayName: k.DisplayName, DisplayName: conn.DisplayName,
		Status: conn.Status, RevokedAt: conn.RevokedAt, SourceKind: conn.SourceKind, CreatedAt: conn.CreatedAt,
		ManifestVersion: k.Version, Streams: k.Streams(), RefreshPolicy: k.RefreshPolicy(),
		StreamRecords: []StreamRecords{}, Evidence: in.EvidenceKind,
	}
	if it.Evidence == "" {
		it.Evidence = runs.EvidenceShallow
	}
	if it.RefreshPolicy == nil {
		it.RefreshPolicy = json.RawMessage("null")
	}
	if r := in.Retained; r != nil {
		for _, s := range r.Streams {
			it.TotalRecords += s.RecordCount
			it.StreamRecords = append(it.StreamRecords, StreamRecords{Stream: s.Stream, RecordCount: s.RecordCount,
				TotalBytes: s.TotalBytesCol, LastRecordAt: s.LastRecordAt})
		}
		it.StreamCount = len(r.Streams)
		if c := r.Connection; c != nil {
			total := c.TotalBytesCol
			it.RetainedBytes = &RetainedBytes{RecordJSONBytes: c.RecordJSONBytes, RecordChangesJSONBytes: c.RecordChangesJSONBytes,
				BlobBytes: c.BlobBytes, TotalBytes: total}
			it.TotalRetainedBytes = &total
		}
	}
	if ev := in.Evidence; ev != nil {
		it.LastRun, it.LastSuccessfulRun = ev.LastRun, ev.LastSuccessfulRun
	}
	it.Freshness = freshness(it.LastRun, it.LastSuccessfulRun, k.MaxStalenessSeconds(), in.Now)
	it.Health = health(conn.Status, it.LastRun, it.Freshness, k.MaxStalenessSeconds())
	timeBounds(&it, k.MaxStalenessSeconds())
	return it
}

// failedStatuses make a connection stale when its last run ended in one of them (SPEC §4.4).
var failedStatuses = map[string]bool{runs.StatusFailed: true, runs.StatusSurfaceFailed: true, runs.StatusCancelled: true, runs.StatusAbandoned: true}

func freshness(last, success *runs.Summary, maxStaleness int64, now time.Time) Freshness {
	f := Freshness{Status: "unknown"}
	if success != nil {
		f.CapturedAt = success.LastAt
	}
	if last != nil {
		f.LastAttemptedAt = last.LastAt
	}
	switch {
	case last != nil && failedStatuses[last.Status] && (f.CapturedAt == "" || last.LastAt >= f.CapturedAt):
		f.Status = "stale"
	case f.CapturedAt != "" && maxStaleness > 0:
		captured, err := time.Parse(bootstrap.TimeFormat, f.CapturedAt)
		if err == nil && now.Sub(captured) <= time.Duration(maxStaleness)*time.Second {
			f.Status = "current"
		} else {
			f.Status = "stale"
		}
	}
	return f
}

// health applies the rules of SPEC §4.4 in order. maxStaleness is the connector's
// maximum_staleness_seconds: without a positive one a succeeded last run has nothing to be
// judged stale by, and is healthy for having succeeded.
func health(status string, last *runs.Summary, f Freshness, maxStaleness int64) Health {
	switch {
	case status == catalog.StatusRevoked || status == catalog.StatusPaused:
		return Health{State: status, Reason: reasonConnectionPrefix + status}
	case last != nil && last.Status == runs.StatusInProgress:
		return Health{State: HealthSyncing, Reason: ReasonRunInProgress}
	case f.Status == "stale" && last != nil && failedStatuses[last.Status] && (f.CapturedAt == "" || last.LastAt >= f.CapturedAt):
		reason := ReasonUnknownFailure
		if last.FailureReason != nil && *last.FailureReason != "" {
			reason = *last.FailureReason
		}
		return Health{State: HealthFailing, Reason: reason}
	case f.Status == "stale":
		return Health{State: HealthStale, Reason: ReasonMaxStaleness}
	case f.Status == "current":
		return Health{State: HealthHealthy, Reason: ReasonFresh}
	case last != nil && last.Status == runs.StatusSucceeded && maxStaleness <= 0:
		return Health{State: HealthHealthy, Reason: ReasonLastRunSucceeded}
	case last == nil:
		// Not looked up (a shallow overview) or none found.
		return Health{State: HealthUnknown, Reason: ReasonNoRunEvidence}
	}
	// A last run that is neither terminal nor in progress (waiting_for_browser_surface, leased,
	// unknown, …), with no success recent enough to call the connection current.
	return Health{State: HealthUnknown, Reason: ReasonLastRunNotTerminal}
}
