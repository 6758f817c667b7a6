package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// repoRoot is the module root, found from this file so the test runs from any directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// connsumBinary builds the real binary once per test process (`go build -o tmp/connsum .` from
// the repository root); the crash and shutdown tests run it as a subprocess.
func connsumBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		root := repoRoot()
		// `go test` puts its own GOROOT/bin first on the PATH of the test process.
		goTool, err := exec.LookPath("go")
		if err != nil {
			binaryErr = fmt.Errorf("go tool not found on PATH: %w", err)
			return
		}
		if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
			binaryErr = err
			return
		}
		// Build beside the target and rename, so a concurrent test process never runs half a file.
		tmp := filepath.Join(root, "tmp", fmt.Sprintf("connsum.build-%d", os.Getpid()))
		cmd := exec.Command(goTool, "build", "-o", tmp, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binaryPath = filepath.Join(root, "tmp", "connsum")
		binaryErr = os.Rename(tmp, binaryPath)
	})
	if binaryErr != nil {
		t.Fatalf("build the connsum binary: %v", binaryErr)
	}
	return binaryPath
}

// serveProc is `connsum serve` running as a child process.
type serveProc struct {
	cmd    *exec.Cmd
	addr   string
	out    *syncBuffer
	done   chan struct{}
	exit   error
	listen chan string
}

// lineWatcher collects the child's stdout and reports the address it listens on.
type lineWatcher struct {
	buf     *syncBuffer
	mu      sync.Mutex
	partial string
	found   chan string
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	_, _ = w.buf.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial += string(p)
	for {
		i := strings.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		w.partial = w.partial[i+1:]
		if rest, ok := strings.CutPrefix(line, "connsum listening on http://"); ok && w.found != nil {
			w.found <- strings.Fields(rest)[0]
			w.found = nil
		}
	}
	return len(p), nil
}

// startServe runs `connsum serve` on dbURL with the test tokens, on a free loopback port, with
// no config file and none of the caller's CONNSUM_* variables; env (KEY=value) overrides.
func startServe(t *testing.T, dbURL, dataDir string, env ...string) *serveProc {
	t.Helper()
	bin := connsumBinary(t)
	p := &serveProc{out: &syncBuffer{}, done: make(chan struct{}), listen: make(chan string, 1)}
	p.cmd = exec.Command(bin, "serve", "--db", dbURL, "--addr", "127.0.0.1:0")
	p.cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNSUM_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, "CONNSUM_AUTH_OWNER_TOKEN="+testOwnerToken, "CONNSUM_AUTH_ADMIN_TOKEN="+testAdminToken,
		"CONNSUM_DATA_DIR="+dataDir, "CONNSUM_LOG_LEVEL=warn", "CONNSUM_HTTP_SHUTDOWN_TIMEOUT=20s")
	p.cmd.Env = append(p.cmd.Env, env...) // the last value of a key wins
	p.cmd.Stdout = &lineWatcher{buf: p.out, found: p.listen}
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exit = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		for _, tok := range []string{testOwnerToken, testAdminToken} {
			if strings.Contains(p.out.String(), tok) {
				t.Errorf("connsum serve printed a token:\n%s", p.out.String())
			}
		}
		if t.Failed() {
			t.Logf("connsum serve output:\n%s", p.out.String())
		}
	})
	select {
	case p.addr = <-p.listen:
	case <-p.done:
		t.Fatalf("connsum serve exited at start (%v):\n%s", p.exit, p.out.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("connsum serve did not start:\n%s", p.out.String())
	}
	return p
}

// wait returns the exit code once the process ended (bounded, to keep a hung process from
// hanging the suite).
func (p *serveProc) wait(t *testing.T, bound time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(bound):
		t.Fatalf("connsum serve did not exit within %s:\n%s", bound, p.out.String())
	}
	var ee *exec.ExitError
	switch {
	case p.exit == nil:
		return 0
	case errors.As(p.exit, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("connsum serve: %v", p.exit)
	return -1
}

// crashEngines runs fn with a fresh database on each engine that a subprocess can open.
func crashEngines(t *testing.T, fn func(t *testing.T, dbURL string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, "sqlite:"+filepath.Join(t.TempDir(), "connsum.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, dbtest.PostgresURL(t)) })
}

// TestKill9MidIngestLosesNoAcknowledgedBatch posts batches from several clients, kills the
// server with SIGKILL while requests are in flight, restarts it on the same database (three
// times), and checks that every acknowledged batch is fully there and no batch is partly
// there. Re-sending the batches that got no answer is then safe: they are stored once.
func TestKill9MidIngestLosesNoAcknowledgedBatch(t *testing.T) {
	crashEngines(t, func(t *testing.T, dbURL string) {
		const rounds, writers, size = 3, 3, 200
		dataDir := t.TempDir()
		var (
			mu       sync.Mutex
			acked    = map[string]bool{}
			sent     = map[string][]byte{}
			inFlight atomic.Int64 // requests sent before a kill that got no answer
			fx       faultFixture
		)
		for round := 0; round < rounds; round++ {
			p := startServe(t, dbURL, dataDir)
			c := newNetClient(t, p.addr)
			if round == 0 {
				fx = seedFaultFixture(t, c)
			}
			var ackCount, killedAt atomic.Int64
			var wg sync.WaitGroup
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := 0; ; k++ {
						prefix := fmt.Sprintf("crash_r%d_w%d_b%04d_", round, w, k)
						body := batchOf(prefix, size, fx.conn)
						mu.Lock()
						sent[prefix] = body
						mu.Unlock()
						sentAt := time.Now().UnixNano()
						r := c.call("POST", "/_ref/spine/events", "", body)
						if r.status == 0 { // the server is gone
							if k := killedAt.Load(); k != 0 && sentAt < k {
								inFlight.Add(1)
							}
							return
						}
						if r.status != http.StatusOK {
							t.Errorf("batch %s = %d %s before the kill", prefix, r.status, r.body)
							return
						}
						mu.Lock()
						acked[prefix] = true
						mu.Unlock()
						ackCount.Add(1)
					}
				}()
			}
			// Kill after a different number of acknowledged batches each round.
			for deadline := time.Now().Add(60 * time.Second); ackCount.Load() < int64(4+5*round) && time.Now().Before(deadline) && !t.Failed(); {
				time.Sleep(time.Millisecond)
			}
			// A little later each round, so the kill meets the requests at different stages
			// (upload, parse, insert, commit, answer).
			time.Sleep(time.Duration(round*7) * time.Millisecond)
			killedAt.Store(time.Now().UnixNano())
			if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			p.wait(t, 30*time.Second)
			if ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("round %d: the server was not killed by SIGKILL: %v", round, p.cmd.ProcessState)
			}
		}
		if inFlight.Load() == 0 {
			t.Fatal("no request was in flight when the server was killed; the test proves nothing")
		}

		// Restart on the same database: the service comes up by itself (WAL replay on SQLite,
		// crash recovery on PostgreSQL), and the log holds whole batches only.
		p := startServe(t, dbURL, dataDir)
		c := newNetClient(t, p.addr)
		if r := c.call("GET", "/readyz", "", nil); r.status != http.StatusOK {
			t.Fatalf("/readyz after the restart = %d %s", r.status, r.body)
		}
		db, err := bootstrap.Open(context.Background(), dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		counts := batchCounts(t, db, "crash_%")
		committedUnacked := requireAllOrNothing(t, counts, acked, size)
		lost := 0
		for prefix := range acked {
			if counts[prefix] != size {
				lost++
			}
		}

		// A client that got no answer re-sends: every such batch ends up stored exactly once.
		for prefix, body := range sent {
			if acked[prefix] {
				continue
			}
			r := c.call("POST", "/_ref/spine/events", "", body)
			if r.status != http.StatusOK {
				t.Errorf("re-sending %s after the restart = %d %s", prefix, r.status, r.body)
				continue
			}
			var res struct{ Accepted, Duplicates int }
			_ = json.Unmarshal(r.body, &res)
			if res.Accepted+res.Duplicates != size || (res.Duplicates != 0 && res.Duplicates != size) {
				t.Errorf("re-sending %s: %s, want all %d accepted or all duplicates", prefix, r.body, size)
			}
		}
		after := batchCounts(t, db, "crash_%")
		if len(after) != len(sent) {
			t.Errorf("%d batches stored after the re-send, want %d", len(after), len(sent))
		}
		requireAllOrNothing(t, after, acked, size)
		if r := c.call("GET", "/_ref/connectors?connection="+fx.conn, "", nil); r.status != http.StatusOK {
			t.Errorf("scoped read after the restart = %d %s", r.status, r.body)
		}
		t.Logf("%d kill -9 with %d requests in flight: %d batches acknowledged, %d lost, %d committed without an answer, %d absent; all re-sent once",
			rounds, inFlight.Load(), len(acked), lost, committedUnacked, len(sent)-len(acked)-committedUnacked)

		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 40*time.Second); code != 0 {
			t.Errorf("the restarted server exited %d on SIGTERM", code)
		}
	})
}

// serverReadAll reports whether the server side of the connection from clientPort to
// serverPort has no unread bytes in the kernel: the server has accepted the connection and is
// reading the request. Linux only (/proc/net/tcp).
func serverReadAll(serverPort, clientPort int) (bool, error) {
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			return false, err
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 5 {
				continue
			}
			port := func(a string) int {
				i := strings.LastIndexByte(a, ':')
				n, _ := strconv.ParseInt(a[i+1:], 16, 32)
				return int(n)
			}
			if port(fields[1]) != serverPort || port(fields[2]) != clientPort {
				continue
			}
			queues := strings.SplitN(fields[4], ":", 2)
			rx, _ := strconv.ParseInt(queues[1], 16, 64)
			return rx == 0, nil
		}
	}
	return false, nil
}

// TestSIGTERMLetsTheInFlightRequestFinish sends SIGTERM while a large batch is being uploaded:
// the server stops accepting, the request still completes with 200 and is stored, and the
// process exits 0.
func TestSIGTERMLetsTheInFlightRequestFinish(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc/net/tcp to see that the server is reading the request")
	}
	crashEngines(t, func(t *testing.T, dbURL string) {
		p := startServe(t, dbURL, t.TempDir())
		c := newNetClient(t, p.addr)
		fx := seedFaultFixture(t, c)

		body := batchOf("term_b0_", 5000, fx.conn)
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprintf(conn, "POST /_ref/spine/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			testOwnerToken, len(body))
		half := len(body) / 2
		if _, err := conn.Write(body[:half]); err != nil {
			t.Fatal(err)
		}
		// Wait until the server has read everything sent so far: the request is in flight in the
		// server, not waiting in the accept queue.
		serverPort := conn.RemoteAddr().(*net.TCPAddr).Port
		clientPort := conn.LocalAddr().(*net.TCPAddr).Port
		for i := 0; ; i++ {
			ok, err := serverReadAll(serverPort, clientPort)
			if err != nil {
				t.Skipf("cannot read /proc/net/tcp: %v", err)
			}
			if ok {
				break
			}
			if i > 2000 {
				t.Fatal("the server never read the request head")
			}
			time.Sleep(5 * time.Millisecond)
		}

		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The listener closes: new connections are refused while the request finishes.
		refused := false
		for i := 0; i < 400 && !refused; i++ {
			if nc, err := net.DialTimeout("tcp", p.addr, time.Second); err != nil {
				refused = true
			} else {
				nc.Close()
				time.Sleep(5 * time.Millisecond)
			}
		}
		if !refused {
			t.Error("the server kept accepting connections after SIGTERM")
		}
		if _, err := conn.Write(body[half:]); err != nil {
			t.Fatalf("the in-flight upload was cut by the shutdown: %v", err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to the in-flight request: %v", err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("in-flight request = %d %s, want 200", resp.StatusCode, raw)
		}
		var res struct{ Accepted int }
		if err := json.Unmarshal(raw, &res); err != nil || res.Accepted != 5000 {
			t.Errorf("in-flight batch answer %s, want 5000 accepted", raw)
		}
		if code := p.wait(t, 40*time.Second); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0\n%s", code, p.out.String())
		}
		db, err := bootstrap.Open(context.Background(), dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if n := batchCounts(t, db, "term_%")["term_b0_"]; n != 5000 {
			t.Errorf("%d events of the in-flight batch stored, want 5000", n)
		}
	})
}
