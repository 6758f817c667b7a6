package app

import (
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"connsum/modules/httpx"
)

// inFlight tracks the requests inside a handler and the server's connections, so that a
// shutdown past http.shutdown_timeout can say what it cut. (A request whose body is still
// arriving is not in a handler yet: it shows as a connection mid-request.)
type inFlight struct {
	mu    sync.Mutex
	next  uint64
	reqs  map[uint64]flight
	conns map[net.Conn]fasthttp.ConnState
}

type flight struct {
	method, path string
	started      time.Time
}

func newInFlight() *inFlight {
	return &inFlight{reqs: map[uint64]flight{}, conns: map[net.Conn]fasthttp.ConnState{}}
}

// connState is the server's ConnState hook: it keeps each open connection's state.
func (f *inFlight) connState(c net.Conn, st fasthttp.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == fasthttp.StateClosed || st == fasthttp.StateHijacked {
		delete(f.conns, c)
		return
	}
	f.conns[c] = st
}

// middleware registers each request while its handler runs; it is the outermost, so the time
// it reports covers the whole handling.
func (f *inFlight) middleware() httpx.Middleware {
	return httpx.Middleware{Name: "app.inflight", Order: httpx.OrderOutermost - 1, Handler: func(c *fiber.Ctx) error {
		f.mu.Lock()
		f.next++
		id := f.next
		// safePath, never the query: it may carry a login link.
		f.reqs[id] = flight{method: c.Method(), path: strings.Clone(safePath(c)), started: time.Now()}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.reqs, id)
			f.mu.Unlock()
		}()
		return c.Next()
	}}
}

// logCut logs, once the shutdown timeout passed, the requests and connections it leaves behind.
func (f *inFlight) logCut(log *slog.Logger, timeout time.Duration) {
	f.mu.Lock()
	list := make([]flight, 0, len(f.reqs))
	for _, r := range f.reqs {
		list = append(list, r)
	}
	active := 0
	for _, st := range f.conns {
		if st == fasthttp.StateActive {
			active++
		}
	}
	open := len(f.conns)
	f.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].started.Before(list[j].started) })
	var reqs []string
	for i, r := range list {
		if i == 10 {
			reqs = append(reqs, "…")
			break
		}
		reqs = append(reqs, r.method+" "+r.path+" ("+time.Since(r.started).Round(time.Millisecond).String()+")")
	}
	log.Warn("shutdown: http.shutdown_timeout passed; cutting what is left (its transactions roll back, nothing partial is stored)",
		"timeout", timeout, "connections_cut", open, "connections_mid_request", active,
		"requests_in_handlers", len(list), "requests", strings.Join(reqs, ", "))
}
