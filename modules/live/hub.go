// Package live pushes the feed to clients (SPEC §2.7): the change stream's hub, which follows
// the feed revision (woken in-process after each commit, by PostgreSQL NOTIFY from every
// replica, and by a poll that recovers a missed notification) and the clock (the moments items
// change without a write), re-projects what changed with the same summary.Project as every read,
// and fans the changed items out to bounded subscribers; and the Server-Sent Events route.
package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connsum/modules/revision"
	"connsum/modules/summary"
)

// Options configures the hub and the stream route.
type Options struct {
	// MaxSubscribers is live.max_subscribers: streams open at once in this process (default 256);
	// one more is answered 503.
	MaxSubscribers int
	// QueueLength is live.queue_length: events a subscriber may fall behind by (default 1024);
	// a subscriber further behind is told to resync and its stream ends, so it never holds up
	// the hub or a writer.
	QueueLength int
	// Heartbeat is live.heartbeat: the comment line sent on an idle stream (default 15 s), so
	// proxies and clients see the stream alive.
	Heartbeat time.Duration
	// PollInterval is live.poll_interval: how often the hub reads the revision without being
	// woken (default 1 s), the bound on how late a change can be when a notification is lost.
	PollInterval time.Duration
	// WriteTimeout bounds each write to a client (http.write_timeout): a client that stops
	// reading is dropped after it.
	WriteTimeout time.Duration
}

// The defaults of Options.
const (
	DefaultMaxSubscribers = 256
	DefaultQueueLength    = 1024
	DefaultHeartbeat      = 15 * time.Second
	DefaultPollInterval   = time.Second
	DefaultWriteTimeout   = 60 * time.Second
)

// WithDefaults fills unset fields with the defaults.
func (o Options) WithDefaults() Options {
	if o.MaxSubscribers <= 0 {
		o.MaxSubscribers = DefaultMaxSubscribers
	}
	if o.QueueLength <= 0 {
		o.QueueLength = DefaultQueueLength
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	return o
}

// Projector is what the hub needs of the feed: the overview items a change may have changed
// (summary.Projector.Changed).
type Projector interface {
	Changed(ctx context.Context, ch revision.Change) (*summary.Result, error)
}

// Log is what the hub needs of the database: the current revision, the change log since a
// revision and when a revision was written (revision.Current, Since, ChangedAt).
type Log interface {
	Current(ctx context.Context) (int64, error)
	Since(ctx context.Context, after int64) (revision.Change, int64, error)
	ChangedAt(ctx context.Context, rev int64) (time.Time, error)
}

// The event types of the stream.
const (
	EventRevision = "revision" // the revision the stream starts at
	EventItem     = "item"     // an item changed or appeared: the whole item
	EventRemoved  = "removed"  // a connection left the visible set
	EventResync   = "resync"   // the client must fetch the list again; the stream ends
)

// Event is one Server-Sent Event, encoded once and shared by every subscriber it goes to.
type Event struct {
	ID   string // "<revision>.<unix ms>": the revision and the hub's clock when it was sent
	Type string
	Data []byte
	// ConnectorID and ConnectionID say whose item it is (empty for revision/resync), for the
	// subscribers' filters.
	ConnectorID, ConnectionID string
}

// Filter keeps a subscriber's events to one connector or one connection.
type Filter struct {
	ConnectorID  string
	ConnectionID string
}

func (f Filter) keeps(e *Event) bool {
	switch {
	case e.ConnectionID == "" && e.ConnectorID == "":
		return true
	case e.Type == EventRemoved && e.ConnectorID == "" && f.ConnectionID == "":
		// A resume's removal whose connector the view no longer knows: the client may hold it.
		return true
	case f.ConnectionID != "":
		return e.ConnectionID == f.ConnectionID
	case f.ConnectorID != "":
		return e.ConnectorID == f.ConnectorID
	}
	return true
}

// Position is where a resuming client stopped: the revision it has seen and the hub's clock of
// the last event it got (zero: the moment of that revision's write, from the log).
type Position struct {
	Revision int64
	At       time.Time
}

// ParsePosition reads a Last-Event-ID: "<revision>.<unix ms>" as sent, or a bare revision (an
// ETag's, for a client that fetched the list first).
func ParsePosition(s string) (Position, bool) {
	rev, ms, hasMS := strings.Cut(strings.TrimSpace(s), ".")
	r, err := strconv.ParseInt(rev, 10, 64)
	if err != nil || r < 0 {
		return Position{}, false
	}
	p := Position{Revision: r}
	if hasMS {
		m, err := strconv.ParseInt(ms, 10, 64)
		if err != nil || m < 0 {
			return Position{}, false
		}
		p.At = time.UnixMilli(m)
	}
	return p, true
}

// ErrFull is Subscribe's answer when MaxSubscribers streams are open.
var ErrFull = errors.New("live: too many subscribers")

// ErrClosed is Subscribe's answer once the hub stopped.
var ErrClosed = errors.New("live: stopped")

// Subscription is one client's stream. Events delivers in revision order; it is closed when the
// subscription ends (Reason says why).
type Subscription struct {
	events  chan *Event
	filter  Filter
	resume  *Position
	hub     *Hub
	started bool // guarded by hub.mu: its beginning was sent, live events follow

	mu      sync.Mutex
	reason  string
	closed  bool
	dropped func() // onDrop's
}

// onDrop sets what runs when the hub ends the subscription (shutdown, slow, resync); not when
// the client leaves.
func (s *Subscription) onDrop(f func()) { s.mu.Lock(); s.dropped = f; s.mu.Unlock() }

// Events is the subscription's queue.
func (s *Subscription) Events() <-chan *Event { return s.events }

// Reason is why Events was closed: "" (the client left), "slow" (it fell QueueLength behind),
// "too_far_behind" (its Last-Event-ID is older than the change log), "shutdown".
func (s *Subscription) Reason() string { s.mu.Lock(); defer s.mu.Unlock(); return s.reason }

// Close ends the subscription (the client left).
func (s *Subscription) Close() { s.hub.drop(s, "") }

// entry is the hub's view of one visible connection: its encoded item and when the clock
// changes it.
type entry struct {
	connectorID   string
	item          []byte
	turns, turned time.Time
}

// Hub follows the feed and fans changed items out.
type Hub struct {
	proj   Projector
	log    Log
	now    func() time.Time
	o      Options
	logger *slog.Logger

	wake chan struct{}

	mu      sync.Mutex
	subs    map[*Subscription]bool
	fresh   []*Subscription // subscribed since the last step: not yet started
	stopped bool

	// The view, owned by the run goroutine: valid while ready.
	ready    bool
	revision int64
	view     map[string]*entry
	metrics  Metrics
}

// Metrics count what the hub did, for the bench and tests.
type Metrics struct {
	Steps, Projections, Events, Resyncs, Dropped atomic.Int64
}

// Metrics returns the hub's counters.
func (h *Hub) Metrics() *Metrics { return &h.metrics }

// NewHub returns a hub; Run makes it follow the feed.
func NewHub(proj Projector, log Log, now func() time.Time, o Options, logger *slog.Logger) *Hub {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{proj: proj, log: log, now: now, o: o.WithDefaults(), logger: logger, wake: make(chan struct{}, 1), subs: map[*Subscription]bool{}}
}

// Wake asks the hub to look at the revision now (a commit, a notification). It never blocks.
func (h *Hub) Wake() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// Subscribe opens a stream. Without from it starts at the current revision; with from it first
// delivers every item changed since that position (or a resync when the log no longer reaches
// back so far).
func (h *Hub) Subscribe(f Filter, from *Position) (*Subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, ErrClosed
	}
	if len(h.subs) >= h.o.MaxSubscribers {
		return nil, ErrFull
	}
	s := &Subscription{events: make(chan *Event, h.o.QueueLength+2), filter: f, resume: from, hub: h}
	h.subs[s] = true
	h.fresh = append(h.fresh, s)
	h.Wake()
	return s, nil
}

// Subscribers is the number of open streams.
func (h *Hub) Subscribers() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.subs) }

func (h *Hub) drop(s *Subscription, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(s, reason)
}

func (h *Hub) dropLocked(s *Subscription, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.reason = true, reason
	delete(h.subs, s)
	close(s.events)
	if reason != "" && s.dropped != nil {
		s.dropped()
	}
}

// Run follows the feed until ctx ends, then ends every stream. extra are further wake-ups (the
// in-process commit watcher, the NOTIFY listener).
func (h *Hub) Run(ctx context.Context, extra ...<-chan struct{}) {
	defer h.stop()
	poll := time.NewTicker(h.o.PollInterval)
	defer poll.Stop()
	merged := make(chan struct{}, 1)
	for _, c := range extra {
		go func(c <-chan struct{}) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-c:
					select {
					case merged <- struct{}{}:
					default:
					}
				}
			}
		}(c)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		case <-merged:
		case <-poll.C:
		case <-timer.C:
		}
		if err := h.Step(ctx); err != nil && ctx.Err() == nil {
			h.logger.Warn("live: step failed; retrying at the next wake-up", "err", err)
		}
		timer.Reset(h.untilNextTurn())
	}
}

// Drain ends every stream (the client reconnects, to this replica once it is back or to
// another) and refuses new ones; the app calls it before it shuts the HTTP server down.
func (h *Hub) Drain() { h.stop() }

func (h *Hub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stopped = true
	for s := range h.subs {
		h.dropLocked(s, "shutdown")
	}
}

// untilNextTurn is how long until the clock changes an item of the view (an hour at most, so the
// timer never has to be exact; Step judges by the clock).
func (h *Hub) untilNextTurn() time.Duration {
	next := time.Hour
	if !h.ready {
		return next
	}
	now := h.now()
	for _, e := range h.view {
		if !e.turns.IsZero() {
			if d := e.turns.Sub(now) + time.Millisecond; d < next {
				next = max(d, 10*time.Millisecond)
			}
		}
	}
	return next
}

// Step brings the view to the current revision and clock, sends what changed, and starts the
// streams subscribed since the last step. Run calls it on every wake-up; tests call it directly
// (with a fake clock) to make a step happen at a known moment.
func (h *Hub) Step(ctx context.Context) error {
	h.mu.Lock()
	fresh := h.fresh
	h.fresh = nil
	idle := len(h.subs) == 0
	h.mu.Unlock()
	h.metrics.Steps.Add(1)
	if idle {
		// Nobody listens: drop the view instead of following the feed for nobody.
		h.ready, h.view = false, nil
		return nil
	}
	if !h.ready {
		if err := h.load(ctx); err != nil {
			h.requeue(fresh)
			return err
		}
	} else if err := h.advance(ctx); err != nil {
		h.requeue(fresh)
		return err
	}
	if err := h.turn(ctx); err != nil {
		h.requeue(fresh)
		return err
	}
	for _, s := range fresh {
		h.start(ctx, s)
	}
	return nil
}

func (h *Hub) requeue(fresh []*Subscription) {
	h.mu.Lock()
	h.fresh = append(fresh, h.fresh...)
	h.mu.Unlock()
}

// load builds the view from the whole overview at the current revision.
func (h *Hub) load(ctx context.Context) error {
	rev, err := h.log.Current(ctx)
	if err != nil {
		return err
	}
	res, err := h.proj.Changed(ctx, revision.Change{All: true})
	if err != nil {
		return err
	}
	h.metrics.Projections.Add(1)
	h.view = make(map[string]*entry, len(res.Items))
	for i := range res.Items {
		h.view[res.Items[i].ConnectionID] = newEntry(&res.Items[i])
	}
	h.revision, h.ready = rev, true
	return nil
}

func newEntry(it *summary.Item) *entry {
	b, _ := json.Marshal(it) // items hold only encodable values
	return &entry{connectorID: it.ConnectorID, item: b, turns: it.TurnsAt(), turned: it.TurnedAt()}
}

// advance applies the changes logged since the view's revision.
func (h *Hub) advance(ctx context.Context) error {
	ch, newest, err := h.log.Since(ctx, h.revision)
	if errors.Is(err, revision.ErrTooFarBehind) {
		// The hub fell further behind than the log keeps (a replica paused for long): look at
		// everything.
		if newest, err = h.log.Current(ctx); err != nil {
			return err
		}
		ch = revision.Change{All: true}
	} else if err != nil {
		return err
	}
	if newest == h.revision {
		return nil
	}
	if err := h.reproject(ctx, ch, newest); err != nil {
		return err
	}
	h.revision = newest
	return nil
}

// turn re-projects the items whose time-dependent fields the clock has changed.
func (h *Hub) turn(ctx context.Context) error {
	now := h.now()
	var due []string
	for id, e := range h.view {
		if !e.turns.IsZero() && now.After(e.turns) {
			due = append(due, id)
		}
	}
	if len(due) == 0 {
		return nil
	}
	return h.reproject(ctx, revision.Change{ConnectionIDs: due}, h.revision)
}

// inScope reports whether the view's entry id falls under ch.
func inScope(ch revision.Change, id string, e *entry, connections, connectors map[string]bool) bool {
	return ch.All || connections[id] || connectors[e.connectorID]
}

// reproject projects ch, compares with the view and sends the differences as of rev.
func (h *Hub) reproject(ctx context.Context, ch revision.Change, rev int64) error {
	res, err := h.proj.Changed(ctx, ch)
	if err != nil {
		return err
	}
	h.metrics.Projections.Add(1)
	id := h.eventID(rev)
	var out []*Event
	got := make(map[string]bool, len(res.Items))
	for i := range res.Items {
		it := &res.Items[i]
		got[it.ConnectionID] = true
		e := newEntry(it)
		old, ok := h.view[it.ConnectionID]
		h.view[it.ConnectionID] = e
		if ok && bytes.Equal(old.item, e.item) {
			continue
		}
		out = append(out, itemEvent(id, rev, it.ConnectorID, it.ConnectionID, e.item))
	}
	connections, connectors := set(ch.ConnectionIDs), set(ch.ConnectorIDs)
	for cid, e := range h.view {
		if !got[cid] && inScope(ch, cid, e, connections, connectors) {
			delete(h.view, cid)
			out = append(out, removedEvent(id, rev, e.connectorID, cid))
		}
	}
	h.broadcast(out)
	return nil
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func (h *Hub) eventID(rev int64) string {
	return strconv.FormatInt(rev, 10) + "." + strconv.FormatInt(h.now().UnixMilli(), 10)
}

func itemEvent(id string, rev int64, connector, connection string, item []byte) *Event {
	data := make([]byte, 0, len(item)+40)
	data = append(data, `{"revision":`...)
	data = strconv.AppendInt(data, rev, 10)
	data = append(data, `,"item":`...)
	data = append(data, item...)
	data = append(data, '}')
	return &Event{ID: id, Type: EventItem, Data: data, ConnectorID: connector, ConnectionID: connection}
}

func removedEvent(id string, rev int64, connector, connection string) *Event {
	b, _ := json.Marshal(struct {
		Revision     int64  `json:"revision"`
		ConnectionID string `json:"connection_id"`
		ConnectorID  string `json:"connector_id"`
	}{rev, connection, connector})
	return &Event{ID: id, Type: EventRemoved, Data: b, ConnectorID: connector, ConnectionID: connection}
}

func controlEvent(id, typ string, rev int64, reason string) *Event {
	v := map[string]any{"revision": rev}
	if reason != "" {
		v["reason"] = reason
	}
	b, _ := json.Marshal(v)
	return &Event{ID: id, Type: typ, Data: b}
}

// broadcast queues events on every started subscription that keeps them; a subscription whose
// queue is full is told to resync and dropped: the hub never waits for a client.
func (h *Hub) broadcast(events []*Event) {
	if len(events) == 0 {
		return
	}
	h.metrics.Events.Add(int64(len(events)))
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.started { // one not started yet gets the view as it is after these events
			h.send(s, events)
		}
	}
}

// send queues one batch of events (one step's) on s (h.mu held), or drops s when they do not
// fit. Only the batch's last event carries its id: the events of a step share one position, and a
// client that lost the connection in the middle of a batch must resume from the previous one (an
// SSE event without an id leaves the client's last event id as it was), or it would skip the
// rest of the batch.
func (h *Hub) send(s *Subscription, events []*Event) {
	kept := make([]*Event, 0, len(events))
	for _, e := range events {
		if s.filter.keeps(e) {
			kept = append(kept, e)
		}
	}
	for i, e := range kept {
		if len(s.events) >= h.o.QueueLength {
			h.metrics.Dropped.Add(1)
			s.events <- controlEvent("", EventResync, h.revision, "slow")
			h.dropLocked(s, "slow")
			return
		}
		if i < len(kept)-1 && e.ID != "" {
			c := *e
			c.ID = ""
			e = &c
		}
		s.events <- e
	}
}

// start sends a new subscription its beginning: the revision, and for a resume everything the
// client missed since its position, from the view (so it is exactly the state as of the view's
// revision, and later changes follow as events).
func (h *Hub) start(ctx context.Context, s *Subscription) {
	id := h.eventID(h.revision)
	first := []*Event{controlEvent(id, EventRevision, h.revision, "")}
	if p := s.resume; p != nil {
		missed, err := h.missed(ctx, *p, id)
		if err != nil {
			h.mu.Lock()
			if errors.Is(err, revision.ErrTooFarBehind) {
				h.metrics.Resyncs.Add(1)
				if !s.closed {
					s.events <- controlEvent(id, EventResync, h.revision, "too_far_behind")
				}
				h.dropLocked(s, "too_far_behind")
			} else {
				h.fresh = append(h.fresh, s) // try again at the next step
			}
			h.mu.Unlock()
			return
		}
		first = append(first, missed...)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.resume, s.started = nil, true
	h.send(s, first)
}

// missed lists the view's items (and removals) a client at p has not seen: those the log names
// after its revision, and those the clock changed after its moment.
func (h *Hub) missed(ctx context.Context, p Position, id string) ([]*Event, error) {
	if p.Revision > h.revision {
		return nil, fmt.Errorf("%w: revision %d is ahead of %d", revision.ErrTooFarBehind, p.Revision, h.revision)
	}
	if p.At.IsZero() {
		// A bare revision (an ETag's): the client's items are as of that revision's write.
		at, err := h.log.ChangedAt(ctx, p.Revision)
		if err != nil {
			return nil, err
		}
		p.At = at
	}
	var ch revision.Change
	if p.Revision < h.revision {
		var err error
		if ch, _, err = h.log.Since(ctx, p.Revision); err != nil {
			return nil, err
		}
	}
	if ch.All {
		// A change of everything (a rebuild) names no connection: the client cannot be told
		// which of its items are gone.
		return nil, fmt.Errorf("%w: the feed was rebuilt", revision.ErrTooFarBehind)
	}
	// Connections leave the feed only by writes that name them (a PATCH, a connector PUT names
	// every connection of the connector): those not in the view are the removals.
	connections, connectors := set(ch.ConnectionIDs), set(ch.ConnectorIDs)
	var out []*Event
	for cid, e := range h.view {
		changed := inScope(ch, cid, e, connections, connectors)
		turned := !e.turned.IsZero() && (p.At.IsZero() || e.turned.After(p.At))
		if changed || turned {
			out = append(out, itemEvent(id, h.revision, e.connectorID, cid, e.item))
		}
	}
	for cid := range connections {
		if _, ok := h.view[cid]; !ok {
			out = append(out, removedEvent(id, h.revision, "", cid))
		}
	}
	return out, nil
}
