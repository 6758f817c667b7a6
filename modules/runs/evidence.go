package runs

import (
	"context"
	"fmt"
	"sync"

	"connsum/modules/catalog"
)

// EvidenceKind is the item's `evidence` value (SPEC §2.3): where its run fields came from. The
// kinds are defined here, next to the Evidence implementations that produce them, and nowhere else.
type EvidenceKind string

// The evidence kinds of SPEC §2.3.
const (
	EvidenceShallow   EvidenceKind = "shallow"    // not looked up: the overview without the read model
	EvidenceDeep      EvidenceKind = "deep"       // the spine fold over run pages (SpineEvidence)
	EvidenceReadModel EvidenceKind = "read_model" // the maintained read model (ReadModelEvidence)
)

// Source is a value of the runs.evidence setting: which Evidence implementation serves run
// evidence. The empty Source is the default, the read model.
type Source string

// The values of runs.evidence.
const (
	SourceReadModel Source = "read_model"
	SourceSpine     Source = "spine"
)

// ParseSource checks a runs.evidence value, so that configuration validation accepts exactly the
// sources the module can wire.
func ParseSource(v string) (Source, error) {
	switch s := Source(v); s {
	case SourceReadModel, SourceSpine:
		return s, nil
	}
	return "", fmt.Errorf("must be %s or %s", SourceReadModel, SourceSpine)
}

// Candidate is one run considered for a connection, with the matcher's decision and the
// evidence it was decided on: what the run carried (ProfileKey, ConnectionID) beside what the
// connection expects (ExpectedProfileKey), so that a mismatch shows its cause.
type Candidate struct {
	RunID   string  `json:"run_id"`
	Status  string  `json:"status"`
	LastAt  string  `json:"last_at"`
	Page    PageKey `json:"page"`
	Matched bool    `json:"matched"`
	Rule    Rule    `json:"rule"`
	// ProfileKey is the run's browser_surface_profile_key (null: none, or empty).
	ProfileKey *string `json:"profile_key"`
	// ConnectionID is the run's explicit connection evidence: the first non-empty
	// connector_instance_id / connection_id of its events (null: none).
	ConnectionID *string `json:"connection_id"`
	// ExpectedProfileKey is the connection's expected key (SPEC §1.3).
	ExpectedProfileKey string `json:"expected_profile_key"`
}

// candidateOf records the matcher's decision on run s for t, read from page key.
func candidateOf(s *Summary, key PageKey, t Target) Candidate {
	ok, rule := Match(s.Claim(), t)
	c := Candidate{RunID: s.RunID, Status: s.Status, LastAt: s.LastAt, Page: key, Matched: ok, Rule: rule,
		ExpectedProfileKey: t.ExpectedProfileKey}
	if nonEmptyPtr(s.BrowserSurfaceProfileKey) {
		c.ProfileKey = s.BrowserSurfaceProfileKey
	}
	if nonEmptyPtr(s.ConnectionRef) {
		c.ConnectionID = s.ConnectionRef
	}
	return c
}

// RunKey is a position in run order (last_at DESC, run_id DESC): the keyset cursor of a
// connection's run list.
type RunKey struct {
	LastAt string `json:"l"`
	RunID  string `json:"r"`
}

// KeyOf returns the position of s in run order.
func KeyOf(s *Summary) RunKey { return RunKey{LastAt: s.LastAt, RunID: s.RunID} }

// Precedes reports whether s comes after k in run order (so a page that continues after k
// lists it).
func (k RunKey) Precedes(s *Summary) bool {
	if s.LastAt != k.LastAt {
		return s.LastAt < k.LastAt
	}
	return s.RunID < k.RunID
}

// ConnectionEvidence is the run evidence of one connection.
type ConnectionEvidence struct {
	LastRun           *Summary
	LastSuccessfulRun *Summary
	// Runs are the connection's matching runs in run order (within the pages read).
	Runs []Summary
	// Candidates and Pages form the diagnostics trail; filled when Request.Trail is set.
	Candidates []Candidate
	Pages      []PageKey
}

// Request asks for run evidence.
type Request struct {
	Entries []catalog.Entry
	// Trail records every candidate run and the matcher's rule (diagnostics).
	Trail bool
	// Concurrency bounds parallel page reads (default 4).
	Concurrency int
	// History asks for up to this many of each connection's runs in ConnectionEvidence.Runs
	// (deep reads). The spine pipeline always lists the runs of the pages it read.
	History int
	// Status, when set, restricts ConnectionEvidence.Runs to runs of that derived status, chosen
	// before any limit (SPEC §4.3): the spine lists the connector's (connector, Status) page, the
	// read model filters in its query. LastRun and LastSuccessfulRun are unaffected.
	Status string
	// After, when set, restricts ConnectionEvidence.Runs to the runs after this position in run
	// order (a keyset page): the read model seeks in its query; the spine lists the runs of its
	// page window after the position, so its pages end with the window.
	After *RunKey
	// Scope, when set, is the list filter whose rows Entries are: the read model's heads read
	// says it in SQL (catalog.IDs) instead of listing every connection id, so its text does not
	// grow with the number of connections. Nil: the heads of Entries' ids.
	Scope *catalog.Filter
}

// Evidence is the run-evidence port: the spine fold with per-projection page reuse, the
// maintained read model, and Shallow for an overview that reads no runs.
type Evidence interface {
	// For returns the evidence of the requested connections by connection id; a connection
	// without evidence may be missing from the map.
	For(ctx context.Context, req Request) (map[string]*ConnectionEvidence, error)
	// Kind is the item's `evidence` value for this implementation.
	Kind() EvidenceKind
}

// Shallow is the Evidence of an overview that does not look runs up (the spine configuration):
// it reads nothing, so the items' run fields are null and their kind is shallow.
type Shallow struct{}

// For implements Evidence: no statements, no evidence.
func (Shallow) For(context.Context, Request) (map[string]*ConnectionEvidence, error) { return nil, nil }

// Kind implements Evidence.
func (Shallow) Kind() EvidenceKind { return EvidenceShallow }

// SpineEvidence derives evidence by folding run pages of the spine (SPEC §4.3).
type SpineEvidence struct{ src *PageSource }

// NewSpineEvidence returns the spine implementation of Evidence.
func NewSpineEvidence(src *PageSource) *SpineEvidence { return &SpineEvidence{src: src} }

// Kind implements Evidence.
func (e *SpineEvidence) Kind() EvidenceKind { return EvidenceDeep }

// For implements Evidence. Each connection reads its connector's unfiltered page; only when that
// page holds no matching success and does not cover the whole history does it read the
// connector's `succeeded` page. So a deep list reads at most two pages per connector. A request
// filtered by status also reads the (connector, status) page its Runs come from.
func (e *SpineEvidence) For(ctx context.Context, req Request) (map[string]*ConnectionEvidence, error) {
	reader := NewPageReader(e.src)
	out := make(map[string]*ConnectionEvidence, len(req.Entries))
	var mu sync.Mutex
	var firstErr error
	workers := req.Concurrency
	if workers <= 0 {
		workers = 4
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, entry := range req.Entries {
		wg.Add(1)
		sem <- struct{}{}
		go func(entry catalog.Entry) {
			defer func() { <-sem; wg.Done() }()
			ev, err := connectionEvidence(ctx, reader, entry, req)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			out[entry.Connection.ConnectionID] = ev
		}(entry)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// connectionEvidence matches the runs of the connector's pages against one connection. Runs
// lists the matches of the page the request lists: the unfiltered page, or the (connector,
// Status) page when the request filters by status, after req.After when set. A keyset page of a
// connection's runs is therefore a page within the run-page window (runs.page_size runs of the
// connector, SPEC §4.3): once the window is listed there is no next page, even when older
// runs of the connection exist beyond it (the read model has no window).
func connectionEvidence(ctx context.Context, reader *PageReader, entry catalog.Entry, req Request) (*ConnectionEvidence, error) {
	t := Target{ConnectionID: entry.Connection.ConnectionID, ExpectedProfileKey: catalog.ExpectedProfileKey(entry.Connection, entry.Connector)}
	ev := &ConnectionEvidence{}
	considered := map[string]bool{}
	consider := func(status string) (*Page, error) {
		key := PageKey{ConnectorID: entry.Connector.ConnectorID, Status: status}
		considered[status] = true
		page, err := reader.Page(ctx, key)
		if err != nil {
			return nil, err
		}
		ev.Pages = append(ev.Pages, key)
		for i := range page.Runs {
			s := &page.Runs[i]
			ok, _ := Match(s.Claim(), t)
			if req.Trail {
				ev.Candidates = append(ev.Candidates, candidateOf(s, key, t))
			}
			if !ok {
				continue
			}
			if status == req.Status && (req.After == nil || req.After.Precedes(s)) {
				ev.Runs = append(ev.Runs, *s)
			}
			if status == "" && ev.LastRun == nil {
				ev.LastRun = s
			}
			if ev.LastSuccessfulRun == nil && s.Status == StatusSucceeded {
				ev.LastSuccessfulRun = s
			}
		}
		return page, nil
	}
	page, err := consider("")
	if err != nil {
		return nil, err
	}
	if ev.LastSuccessfulRun == nil && !page.Exhausted {
		if _, err := consider(StatusSucceeded); err != nil {
			return nil, err
		}
	}
	if req.Status != "" && !considered[req.Status] {
		if _, err := consider(req.Status); err != nil {
			return nil, err
		}
	}
	return ev, nil
}
