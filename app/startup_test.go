package app

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/bootstrap/dbtest"
)

// serveOnce runs `connsum serve` in process and returns its exit code and what it printed.
func serveOnce(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	code := Main(append([]string{"serve"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestStartupFailurePrintsOneLine: a start that fails prints one line naming the cause and the
// config key it came from, and exits 1. (Before: `serve --db postgres://…/missing` printed about
// 700 characters of fx wiring with the cause at the very end.)
func TestStartupFailurePrintsOneLine(t *testing.T) {
	pg, err := url.Parse(dbtest.PostgresURL(t)) // a server that answers (or the test skips/fails)
	if err != nil {
		t.Fatal(err)
	}
	pg.Path = fmt.Sprintf("/connsum_missing_%d", os.Getpid())
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"missing PostgreSQL database", []string{"--db", pg.String(), "--addr", "127.0.0.1:0"},
			[]string{`database "connsum_missing_`, `" does not exist`, "config key db.url, from flag"}},
		{"address in use", []string{"--db", "sqlite:./connsum.db", "--addr", busy.Addr().String()},
			[]string{"address already in use", "config key http.addr, from flag"}},
		{"SQLite path that cannot be created", []string{"--db", "sqlite:/dev/null/connsum.db", "--addr", "127.0.0.1:0"},
			[]string{"not a directory", "config key data.dir"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := serveOnce(t, c.args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "connsum: cannot start: ") {
				t.Fatalf("exit %d, stderr %q; want exit 1 and one line", code, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%q lacks %q", lines[0], w)
				}
			}
			if len(lines[0]) > 200 || strings.Contains(lines[0], "fx.") || strings.Contains(lines[0], "could not build") {
				t.Errorf("%q is not one short line of cause and key", lines[0])
			}
		})
	}
}

// TestSIGTERMPastShutdownTimeoutExitsZero: SIGTERM while an upload is still arriving, and it
// outlasts http.shutdown_timeout: the shutdown logs what it cut and the process exits 0; the
// cut batch stores nothing. (Before: exit 1 with "context deadline exceeded".)
func TestSIGTERMPastShutdownTimeoutExitsZero(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc/net/tcp to see that the server is reading the request")
	}
	crashEngines(t, func(t *testing.T, dbURL string) {
		p := startServe(t, dbURL, t.TempDir(), "CONNSUM_HTTP_SHUTDOWN_TIMEOUT=1s")
		c := newNetClient(t, p.addr)
		fx := seedFaultFixture(t, c)
		body := batchOf("cut_b0_", 2000, fx.conn)
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
		fmt.Fprintf(conn, "POST /_ref/spine/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			testOwnerToken, len(body))
		if _, err := conn.Write(body[:len(body)/2]); err != nil {
			t.Fatal(err)
		}
		serverPort, clientPort := conn.RemoteAddr().(*net.TCPAddr).Port, conn.LocalAddr().(*net.TCPAddr).Port
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
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The rest of the body never comes: the upload outlasts the 1 s shutdown timeout.
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("exit code after a shutdown past its timeout = %d, want 0\n%s", code, p.out.String())
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("exited %s after SIGTERM, before the 1 s shutdown timeout", took)
		}
		out := p.out.String()
		if !strings.Contains(out, "shutdown: http.shutdown_timeout passed") || !strings.Contains(out, "connections_mid_request=1") {
			t.Errorf("the shutdown did not log what it cut:\n%s", out)
		}
		if strings.Contains(out, "context deadline exceeded") {
			t.Errorf("the cut is reported as an error:\n%s", out)
		}
		// The connection was cut without an answer, and nothing of the batch was stored.
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Errorf("the cut upload got an answer: %d %s", resp.StatusCode, raw)
		}
		db, err := bootstrap.Open(context.Background(), dbURL, bootstrap.PoolOptions{MaxOpenConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if n := batchCounts(t, db, "cut_%")["cut_b0_"]; n != 0 {
			t.Errorf("%d events of the cut batch stored, want 0", n)
		}
	})
}
