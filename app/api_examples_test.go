package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connsum/modules/apidoc/apidoctest"
	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// example is one ```sh block of docs/API.md.
type example struct {
	line   int    // where the block starts
	script string // the block's text
	expect int    // the status every request must get ("# expect: 404"), or 0 for any success
}

// apiExamples extracts the ```sh blocks of a Markdown file.
func apiExamples(t *testing.T, path string) []example {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	var cur *example
	for i, l := range strings.Split(string(raw), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(l) == "```sh":
			cur = &example{line: i + 1}
		case cur != nil && strings.TrimSpace(l) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "# expect:"); ok && cur.script == "" {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil {
					t.Fatalf("%s:%d: bad expect line %q", path, i+1, l)
				}
				cur.expect = n
			}
			cur.script += l + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated sh block", path, cur.line)
	}
	return out
}

// exchangeRecorder is a reverse proxy in front of the service that keeps every exchange, so the
// examples' requests and answers are checked against the OpenAPI document like the tests' own.
type exchangeRecorder struct {
	target string
	client *http.Client
	mu     sync.Mutex
	log    []apidoctest.Exchange
}

func (r *exchangeRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	// The client's context: a stream ends upstream when the example's curl leaves.
	out, err := http.NewRequestWithContext(req.Context(), req.Method, r.target+req.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = req.Header.Clone()
	resp, err := r.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// An event stream never ends by itself: record it as it starts (its body is not part of
		// the document), then pass the events on as they come until the client leaves.
		r.record(req, body, resp, nil)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}
	respBody, _ := io.ReadAll(resp.Body)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	// Recorded before the client gets the answer: once curl has it the block may end and the
	// test take the log, and an exchange recorded after that would count for the next block.
	r.record(req, body, resp, respBody)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

func (r *exchangeRecorder) record(req *http.Request, body []byte, resp *http.Response, respBody []byte) {
	var reqBody []byte
	if len(body) > 0 {
		reqBody = body
	}
	r.mu.Lock()
	r.log = append(r.log, apidoctest.Exchange{Method: req.Method, URL: req.URL.RequestURI(), RequestHeader: req.Header.Clone(),
		RequestBody: reqBody, Status: resp.StatusCode, ResponseHeader: resp.Header.Clone(), ResponseBody: respBody})
	r.mu.Unlock()
}

func (r *exchangeRecorder) take() []apidoctest.Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.log
	r.log = nil
	return out
}

// TestAPIExamples runs every ```sh block of docs/API.md with bash and curl against a demo
// server (the demo profile, both tokens set), in order, as a reader would paste them. Every block
// must exit 0; every answer must match docs/openapi.yaml; every request must get a success (2xx,
// 3xx), or the status of the block's "# expect:" line, and outside such blocks every request must
// match the document too. Together the examples must exercise every operation of the document.
func TestAPIExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			dbtest.Loudly("!!! app: no " + tool + ": the docs/API.md examples are SKIPPED")
			t.Skipf("no %s: %v", tool, err)
		}
	}
	examples := apiExamples(t, "../docs/API.md")
	if len(examples) < 10 {
		t.Fatalf("only %d sh blocks in docs/API.md", len(examples))
	}
	h := startOwnerAdmin(t, dbtest.SQLiteURL(t))
	if _, err := perf.Seed(context.Background(), h.db, "demo", 1, nil); err != nil {
		t.Fatal(err)
	}
	rec := &exchangeRecorder{target: "http://" + h.addr, client: &http.Client{Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	defer rec.client.CloseIdleConnections()
	doc, err := apidoctest.Load()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	env := append(os.Environ(), "BASE="+proxy.URL, "TOKEN="+testOwnerToken, "ADMIN_TOKEN="+testAdminToken,
		"HOME="+work, "CURL_HOME="+work, "LC_ALL=C")
	// No ~/.curlrc of the machine's user may change what curl sends.
	if err := os.WriteFile(work+"/.curlrc", []byte("max-time = 60\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exercised := map[string]bool{}
	for _, ex := range examples {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", ex.script)
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		cancel()
		where := fmt.Sprintf("docs/API.md:%d", ex.line)
		if err != nil {
			t.Errorf("%s: the block failed (%v):\n%s\noutput:\n%s", where, err, ex.script, out)
		}
		exchanges := rec.take()
		if len(exchanges) == 0 {
			t.Errorf("%s: the block made no request", where)
		}
		for _, x := range exchanges {
			res := doc.Check(x, apidoctest.Options{SecurityHeaders: true})
			exercised[res.Operation] = true
			what := fmt.Sprintf("%s: %s %s answered %d", where, x.Method, x.URL, x.Status)
			switch {
			case ex.expect != 0 && x.Status != ex.expect:
				t.Errorf("%s, want %d: %.300s", what, ex.expect, x.ResponseBody)
			case ex.expect == 0 && x.Status >= 400:
				t.Errorf("%s: %.300s", what, x.ResponseBody)
			}
			if res.Response != nil {
				t.Errorf("%s, which does not match docs/openapi.yaml: %v", what, res.Response)
			}
			if res.Request != nil && ex.expect < 400 {
				t.Errorf("%s: the request does not match docs/openapi.yaml: %v", what, res.Request)
			}
		}
	}
	var missing []string
	for path, item := range doc.T.Paths.Map() {
		for method := range item.Operations() {
			if !exercised[method+" "+path] {
				missing = append(missing, method+" "+path)
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("docs/API.md has no example of %s", m)
	}
	h.requireNoTokensLogged(t)
}
