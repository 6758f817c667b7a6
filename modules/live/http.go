package live

import (
	"bufio"
	"context"
	"errors"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"

	"connsum/modules/catalog"
	"connsum/modules/httpx"
)

// Handlers serves the change stream.
type Handlers struct {
	hub   *Hub
	o     Options
	creds Credentials
}

// Credentials is what the stream needs of authentication (auth.Service): whether the credential
// a stream was opened with is still good, asked at every heartbeat, so that a logout, a revoked or
// an expired browser session ends its open streams within one heartbeat.
type Credentials interface {
	Credential(c *fiber.Ctx) func(ctx context.Context) bool
}

// NewHandlers returns the stream's handlers over hub; creds nil: the credential a stream was
// opened with stays good (tests).
func NewHandlers(hub *Hub, o Options, creds Credentials) *Handlers {
	return &Handlers{hub: hub, o: o.WithDefaults(), creds: creds}
}

// Routes implements httpx.Registrar.
func (h *Handlers) Routes() []httpx.Route {
	return []httpx.Route{{Method: fiber.MethodGet, Path: "/_ref/connectors/stream", Access: httpx.Owner, Handler: h.stream}}
}

var streamParams = map[string]bool{"connector_id": true, "connection": true, "last_event_id": true}

// ParseStreamQuery validates the stream's query and its resume position: the Last-Event-ID
// header (what a reconnecting EventSource sends) or else ?last_event_id= (what a page that just
// fetched the list at a revision passes on its first connection).
func ParseStreamQuery(args [][2]string, lastEventID string) (Filter, *Position, error) {
	var f Filter
	seen := map[string]string{}
	for _, kv := range args {
		if !streamParams[kv[0]] {
			return f, nil, httpx.Invalid(kv[0], "unknown query parameter")
		}
		if _, dup := seen[kv[0]]; dup {
			return f, nil, httpx.Invalid(kv[0], "must be given at most once")
		}
		seen[kv[0]] = kv[1]
	}
	if v, ok := seen["connector_id"]; ok {
		if !catalog.ValidConnectorID(v) {
			return f, nil, httpx.Invalid("connector_id", "must match ^[a-z0-9][a-z0-9._-]{0,127}$")
		}
		f.ConnectorID = v
	}
	if v, ok := seen["connection"]; ok {
		if v == "" || len(v) > 256 {
			return f, nil, httpx.Invalid("connection", "must be a connection id")
		}
		if f.ConnectorID != "" {
			return f, nil, httpx.Invalid("connection", "cannot be combined with connector_id")
		}
		f.ConnectionID = v
	}
	field, raw := "Last-Event-ID", lastEventID
	if raw == "" {
		field, raw = "last_event_id", seen["last_event_id"]
	}
	if raw == "" {
		return f, nil, nil
	}
	p, ok := ParsePosition(raw)
	if !ok {
		return f, nil, httpx.Invalid(field, "must be an event id of this stream (<revision>.<ms>) or a revision")
	}
	return f, &p, nil
}

// credentialCheck bounds the heartbeat's check of the stream's credential.
const credentialCheck = 2 * time.Second

// errFull is the 503 of a stream over live.max_subscribers.
var errFull = &httpx.Error{Status: fiber.StatusServiceUnavailable, Code: "unavailable", Message: "too many open streams; retry shortly"}

// stream serves GET /_ref/connectors/stream as Server-Sent Events. The handler returns at once;
// fasthttp then runs the body writer, which ends when the client leaves (a write fails), when
// the hub ends the subscription (slow, resync, shutdown), or when a write to a client that
// stopped reading outlasts WriteTimeout.
func (h *Handlers) stream(c *fiber.Ctx) error { return h.ServeQuery(c, nil) }

// ServeQuery parses the stream's query and resume position from c (ParseStreamQuery) and serves
// the stream; renderFor, when not nil, picks how the events are rendered for the parsed filter
// (the console's stream).
func (h *Handlers) ServeQuery(c *fiber.Ctx, renderFor func(Filter) func(*Event) *Event) error {
	f, from, err := ParseStreamQuery(httpx.QueryArgs(c), c.Get("Last-Event-ID"))
	if err != nil {
		return err
	}
	var render func(*Event) *Event
	if renderFor != nil {
		render = renderFor(f)
	}
	return h.serve(c, f, from, render)
}

// serve answers c with a stream of the hub's events for f from position from: the API's stream,
// and the console's, which passes render to turn each event into what its page needs (nil: the
// event as it is; a nil result: skip the event).
func (h *Handlers) serve(c *fiber.Ctx, f Filter, from *Position, render func(*Event) *Event) error {
	sub, err := h.hub.Subscribe(f, from)
	if errors.Is(err, ErrFull) || errors.Is(err, ErrClosed) {
		c.Set(fiber.HeaderRetryAfter, "2")
		return errFull
	}
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no") // a proxy must pass events on as they come
	if c.Method() == fiber.MethodHead {
		sub.Close()
		return c.SendStatus(fiber.StatusOK)
	}
	conn := c.Context().Conn()
	// The connection serves this stream only: closed after it, which also ends the watch below.
	c.Context().SetConnectionClose()
	// When the hub ends the stream (shutdown, a slow client) the writer may be stuck sending to a
	// client that stopped reading: a near deadline unblocks it, so a shutdown never waits for one.
	sub.onDrop(func() { _ = conn.SetWriteDeadline(time.Now().Add(time.Second)) })
	heartbeat, writeTimeout := h.o.Heartbeat, h.o.WriteTimeout
	still := func(context.Context) bool { return true }
	if h.creds != nil {
		still = h.creds.Credential(c)
	}
	write := func(w *bufio.Writer, e *Event) {
		if render != nil {
			if e = render(e); e == nil {
				return
			}
		}
		writeEvent(w, e)
	}
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer sub.Close()
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		// An event-stream client sends nothing after its request: a read that returns means it
		// closed the connection, so its subscriber slot is freed at once, not at the next
		// heartbeat.
		gone := make(chan struct{})
		go func() {
			var b [1]byte
			_, _ = conn.Read(b[:])
			close(gone)
		}()
		// A reconnecting client waits this long (ms) before it tries again.
		if _, err := w.WriteString("retry: 2000\n\n"); err != nil || flush(w, conn, writeTimeout) != nil {
			return
		}
		for {
			select {
			case e, ok := <-sub.Events():
				if !ok {
					return // the hub ended it; a resync event was queued before when one is due
				}
				write(w, e)
				// Write what else is queued before flushing: one flush per burst.
				for more := true; more; {
					select {
					case e, ok := <-sub.Events():
						if !ok {
							_ = flush(w, conn, writeTimeout)
							return
						}
						write(w, e)
					default:
						more = false
					}
				}
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), credentialCheck)
				ok := still(ctx)
				cancel()
				if !ok {
					return // logged out, revoked or expired: the reconnect meets the guard
				}
				_, _ = w.WriteString(": heartbeat\n\n")
			case <-gone:
				return
			}
			if flush(w, conn, writeTimeout) != nil {
				return
			}
		}
	})
	return nil
}

func writeEvent(w *bufio.Writer, e *Event) {
	if e.ID != "" {
		_, _ = w.WriteString("id: " + e.ID + "\n")
	}
	_, _ = w.WriteString("event: " + e.Type + "\ndata: ")
	_, _ = w.Write(e.Data) // one line: JSON has no raw newline
	_, _ = w.WriteString("\n\n")
}

// flush sends what is buffered, within timeout of now.
func flush(w *bufio.Writer, conn net.Conn, timeout time.Duration) error {
	if conn != nil {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	}
	return w.Flush()
}
