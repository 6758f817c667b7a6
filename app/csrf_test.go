package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"connsum/modules/bootstrap/dbtest"
	"connsum/modules/perf"
)

// TestCookieWritesNeedJSONAndSameOrigin is the CSRF matrix: {bearer, session cookie} × content
// types × Origin / Sec-Fetch-Site. A cookie-authenticated write passes only as application/json
// from the service's own origin; a bearer client is unaffected by either header. Every refused
// request stores nothing. (Before: a cookie write with Origin: http://evil.example and no
// Content-Type was stored with 200.)
func TestCookieWritesNeedJSONAndSameOrigin(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		fx := seedValidationFixture(t, h)
		session := h.login(t)

		contentTypes := []string{"application/json", "application/json; charset=utf-8", "text/plain", "text/plain; charset=utf-8",
			"application/x-www-form-urlencoded", ""}
		type origin struct {
			name    string
			headers map[string]string
			same    bool // what a browser sends from the service's own page
		}
		origins := []origin{
			{"same Origin", map[string]string{"Origin": "http://example.com"}, true},
			{"same Origin, port differs", map[string]string{"Origin": "http://example.com:8080"}, false},
			{"Sec-Fetch-Site same-origin", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
			{"both same", map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "same-origin"}, true},
			{"evil Origin", map[string]string{"Origin": "http://evil.example"}, false},
			{"evil Origin, Sec-Fetch-Site cross-site", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, false},
			{"Sec-Fetch-Site same-site", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
			{"Sec-Fetch-Site none", map[string]string{"Sec-Fetch-Site": "none"}, false},
			{"same Origin but Sec-Fetch-Site cross-site", map[string]string{"Origin": "http://example.com", "Sec-Fetch-Site": "cross-site"}, false},
			{"Origin null", map[string]string{"Origin": "null"}, false},
			{"neither header", map[string]string{}, false},
		}
		n := 0
		for _, cred := range []string{"bearer", "cookie"} {
			for _, ct := range contentTypes {
				for _, o := range origins {
					if cred == "bearer" && ct == "" {
						// A bearer body without Content-Type is httpx's business (read as JSON),
						// not the CSRF rule's; the document refuses it.
						continue
					}
					n++
					id := fmt.Sprintf("evt_csrf_%d", n)
					name := fmt.Sprintf("%s %q %s", cred, ct, o.name)
					opts := []reqOpt{func(r *http.Request) {
						r.Header.Del("Content-Type")
						if ct != "" {
							r.Header.Set("Content-Type", ct)
						}
						r.Header.Del("Sec-Fetch-Site")
						for k, v := range o.headers {
							r.Header.Set(k, v)
						}
					}}
					if cred == "cookie" {
						opts = append([]reqOpt{withSession(session)}, opts...)
					}
					body := eventBody(eventJSON(id, "run.started", "2026-11-20T08:00:00Z", `"connection_id":"`+fx.conn+`"`))
					r := h.do("POST", "/_ref/spine/events", body, opts...)
					json := strings.HasPrefix(ct, "application/json")
					var want int
					switch {
					case cred == "bearer" && json:
						want = 200
					case cred == "bearer":
						want = 415
					case !o.same:
						want = 403
					case !json:
						want = 415
					default:
						want = 200
					}
					if r.status != want {
						t.Errorf("%s = %d %s, want %d", name, r.status, r.body, want)
					}
					var stored int
					if err := h.db.NewSelect().Table("spine_events").ColumnExpr("count(*)").Where("event_id = ?", id).Scan(context.Background(), &stored); err != nil {
						t.Fatal(err)
					}
					if (stored == 1) != (want == 200) {
						t.Errorf("%s stored %d events, want %v", name, stored, want == 200)
					}
				}
			}
		}
		// The other unsafe methods follow the same rule.
		h.do("PATCH", "/_ref/connections/"+fx.conn, `{"display_name":"x"}`, withSession(session), withHeader("Content-Type", "text/plain")).expectError(t, 415, "")
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Evil"}`, withSession(session), withHeader("Sec-Fetch-Site", "cross-site")).expectError(t, 403, "")
		h.do("DELETE", "/_ref/connections/"+fx.conn+"/retained/orders", nil, withSession(session), withHeader("Sec-Fetch-Site", ""),
			withHeader("Origin", "http://evil.example")).expectError(t, 403, "")
		// Reads with the cookie need neither header.
		h.do("GET", "/_ref/connectors", nil, withSession(session), withHeader("Sec-Fetch-Site", "")).expect(t, 200)
	})
}

// inlineContent finds what a strict CSP blocks in a page: style and event-handler attributes,
// javascript: URLs (an inline <style> passes only by its hash; scripts: scriptElement).
var inlineContent = regexp.MustCompile(`(?i)\sstyle\s*=|\son[a-z]+\s*=|javascript:`)

// scriptElement is every script element of a page: each must load a file of this origin
// (script-src 'self') and have no inline body.
var scriptElement = regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)

var styleElement = regexp.MustCompile(`(?s)<style>(.*?)</style>`)

// TestSecurityHeadersOnEveryConsolePage: every console page and the login form carry a strict
// CSP (no inline script, the one inline stylesheet allowed by its hash), frame-ancestors 'none',
// nosniff and no-referrer, and no page needs what the CSP forbids. (The harness checks the
// headers on every other answer, errors included, through apidoctest.) Before: none of the
// headers was sent.
func TestSecurityHeadersOnEveryConsolePage(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		if _, err := perf.Seed(context.Background(), h.db, "demo", 3, nil); err != nil {
			t.Fatal(err)
		}
		h.do(http.MethodDelete, "/admin/summary-cache", nil, asBearer(testAdminToken))
		session := h.login(t)
		id := feedItems(t, h)[0]["connection_id"].(string)
		pages := map[string]*response{
			"/dashboard":                   h.do("GET", "/dashboard", nil, withSession(session)),
			"/dashboard/runs":              h.do("GET", "/dashboard/runs", nil, withSession(session)),
			"/dashboard/connections/" + id: h.do("GET", "/dashboard/connections/"+id, nil, withSession(session)),
			"/login":                       h.do("GET", "/login", nil, asBearer("")),
		}
		for name, r := range pages {
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Errorf("%s = %d %s", name, r.status, r.header.Get("Content-Type"))
			}
			if m := inlineContent.Find(r.body); m != nil {
				t.Errorf("%s has inline content the CSP blocks: %q", name, m)
			}
			if n := strings.Count(strings.ToLower(string(r.body)), "<script"); n != len(scriptElement.FindAll(r.body, -1)) {
				t.Errorf("%s has %d script tags but %d whole script elements", name, n, len(scriptElement.FindAll(r.body, -1)))
			}
			for _, m := range scriptElement.FindAllSubmatch(r.body, -1) {
				if !regexp.MustCompile(`^\s+src="/[^"/][^"]*"(\s+defer)?$`).Match(m[1]) || len(m[2]) != 0 {
					t.Errorf("%s has a script the CSP blocks or that is not this origin's file: %q", name, m[0])
				}
			}
			csp := r.header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self';", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s: CSP %q lacks %s", name, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
				t.Errorf("%s: CSP %q is not strict", name, csp)
			}
			for _, st := range styleElement.FindAllSubmatch(r.body, -1) {
				sum := sha256.Sum256(st[1])
				if src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, "style-src 'self' "+src) {
					t.Errorf("%s: the inline stylesheet (%s) is not allowed by the CSP %q", name, src, csp)
				}
			}
			for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
				if got := r.header.Get(k); got != want {
					t.Errorf("%s: %s = %q, want %q", name, k, got, want)
				}
			}
		}
		if !strings.Contains(string(pages["/dashboard"].body), `<form class="logout" method="post" action="/logout">`) {
			t.Error("the console header has no logout form")
		}
		if cc := pages["/login"].header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("/login Cache-Control %q, want no-store", cc)
		}
	})
}
