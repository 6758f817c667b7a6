package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"connsum/modules/auth"
	"connsum/modules/bootstrap/dbtest"
)

// formBody marks a request body as the login form's.
var formBody = withHeader("Content-Type", "application/x-www-form-urlencoded")

// sessionCookie is the session cookie a response sets, or nil.
func sessionCookie(r *response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == auth.CookieName {
			return c
		}
	}
	return nil
}

// login posts the owner token like the login form does and returns the session cookie.
func (h *harness) login(t *testing.T) *http.Cookie {
	t.Helper()
	r := h.do("POST", "/login", "token="+url.QueryEscape(testOwnerToken), asBearer(""), formBody)
	c := sessionCookie(r)
	if r.status != http.StatusSeeOther || c == nil || c.Value == "" {
		t.Fatalf("login: %d %s, cookies %v", r.status, r.body, r.header.Values("Set-Cookie"))
	}
	return c
}

// withSession sends the session cookie instead of the bearer token, with what a browser adds
// to a same-origin request (Sec-Fetch-Site).
func withSession(c *http.Cookie) reqOpt {
	return func(r *http.Request) {
		r.Header.Del("Authorization")
		r.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
}

// sessionRows reads the sessions table as text.
func (h *harness) sessionRows(t *testing.T) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := h.db.NewSelect().Table("sessions").OrderExpr("created_at").Scan(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestLogin: the login form posts the token and gets a server-side session whose random id is
// the cookie; a token in a URL is refused. (Before: GET /login?token= set the token itself as
// the cookie, with no expiry.)
func TestLogin(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon"}`).expect(t, 201)

		form := h.do("GET", "/login?next=/dashboard/runs", nil, asBearer(""))
		if form.status != 200 || !strings.Contains(string(form.body), `<form method="post" action="/login">`) ||
			!strings.Contains(string(form.body), `value="/dashboard/runs"`) || len(form.header.Values("Set-Cookie")) != 0 {
			t.Errorf("GET /login = %d %.200s, cookies %v; want the login form carrying next", form.status, form.body, form.header.Values("Set-Cookie"))
		}
		for _, r := range []*response{form, h.do("GET", "/login?token="+testOwnerToken, nil, asBearer(""))} {
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("login answer Cache-Control %q, want no-store", cc)
			}
		}
		// The token is refused in a URL, by GET and by POST, even when it is right.
		for _, r := range []*response{
			h.do("GET", "/login?token="+testOwnerToken, nil, asBearer("")),
			h.do("POST", "/login?token="+testOwnerToken, "next=/dashboard", asBearer(""), formBody),
		} {
			if r.status != http.StatusBadRequest || sessionCookie(r) != nil {
				t.Errorf("token in the URL = %d, cookie %v; want 400 and no cookie", r.status, sessionCookie(r))
			}
		}
		for _, bad := range []string{"token=wrong-token-0123456789", "token=" + testAdminToken, "token=", ""} {
			if r := h.do("POST", "/login", bad, asBearer(""), formBody); r.status != http.StatusUnauthorized || sessionCookie(r) != nil {
				t.Errorf("POST /login %q = %d, cookie %v; want 401 and no cookie", bad, r.status, sessionCookie(r))
			}
		}
		if r := h.do("POST", "/login", "token="+testOwnerToken, asBearer(""), withHeader("Content-Type", "text/plain")); r.status != http.StatusUnsupportedMediaType {
			t.Errorf("POST /login as text/plain = %d, want 415", r.status)
		}

		r := h.do("POST", "/login", "token="+url.QueryEscape(testOwnerToken)+"&next=/dashboard/runs", asBearer(""), formBody)
		c := sessionCookie(r)
		if r.status != http.StatusSeeOther || c == nil {
			t.Fatalf("POST /login = %d %s, cookies %v; want 303 with the session cookie", r.status, r.body, r.header.Values("Set-Cookie"))
		}
		if loc := r.header.Get("Location"); loc != "/dashboard/runs" {
			t.Errorf("login redirects to %q, want /dashboard/runs", loc)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.MaxAge != int((12*time.Hour).Seconds()) {
			t.Errorf("cookie %q: want HttpOnly, SameSite=Lax, Path=/, Max-Age 12h and no Secure over plain HTTP", c.Raw)
		}
		if c.Value == testOwnerToken || strings.Contains(c.Value, testOwnerToken) || len(c.Value) != 43 {
			t.Errorf("the cookie %q carries the token or is no session id", c.Value)
		}
		// The database holds the session's hash only: nothing in the table equals the cookie.
		rows := h.sessionRows(t)
		sum := sha256.Sum256([]byte(c.Value))
		if len(rows) != 1 || fmt.Sprint(rows[0]["id_hash"]) != hex.EncodeToString(sum[:]) || rows[0]["via"] != "token" {
			t.Fatalf("sessions table %v, want one row keyed by the cookie's SHA-256", rows)
		}
		for k, v := range rows[0] {
			if s := fmt.Sprint(v); strings.Contains(s, c.Value) || strings.Contains(s, testOwnerToken) {
				t.Errorf("sessions.%s holds the secret: %q", k, s)
			}
		}
		h.do("GET", "/_ref/connectors/amazon/manifest", nil, withSession(c)).expect(t, 200)
		if page := h.do("GET", "/dashboard", nil, withSession(c)); page.status != 200 {
			t.Errorf("/dashboard with the session = %d", page.status)
		}

		// Only a console page is a landing place.
		for next, want := range map[string]string{"//evil.example/": "/dashboard", "https://evil.example/": "/dashboard",
			"/dashboard/connections/cin_x": "/dashboard/connections/cin_x", "/_ref/connectors": "/dashboard", "/dashboardx": "/dashboard"} {
			r := h.do("POST", "/login", "token="+testOwnerToken+"&next="+url.QueryEscape(next), asBearer(""), formBody)
			if loc := r.header.Get("Location"); loc != want {
				t.Errorf("next=%q lands on %q, want %q", next, loc, want)
			}
		}
		// JSON login (scripts), and Secure behind an HTTPS proxy.
		j := h.do("POST", "/login", `{"token":"`+testOwnerToken+`"}`, asBearer(""), withHeader("X-Forwarded-Proto", "https"))
		obj := j.expect(t, 200)
		if sess, _ := obj["session"].(map[string]any); sess == nil || !strings.HasPrefix(fmt.Sprint(sess["id"]), "ses_") {
			t.Errorf("JSON login answered %v, want the session's public form", obj)
		}
		if jc := sessionCookie(j); jc == nil || !jc.Secure {
			t.Errorf("login over HTTPS set %v, want a Secure cookie", j.header.Values("Set-Cookie"))
		}
		if strings.Contains(string(j.body), testOwnerToken) || strings.Contains(string(j.body), sessionCookie(j).Value) {
			t.Errorf("the login answer echoes a secret: %s", j.body)
		}
		// A cross-site login form (login CSRF) is refused.
		if r := h.do("POST", "/login", "token="+testOwnerToken, asBearer(""), formBody, withHeader("Sec-Fetch-Site", "cross-site")); r.status != http.StatusForbidden || sessionCookie(r) != nil {
			t.Errorf("cross-site POST /login = %d, want 403 and no cookie", r.status)
		}
		h.requireNoTokensLogged(t)
		if strings.Contains(h.logs.String(), c.Value) {
			t.Error("a session id was logged")
		}
	})
}

func TestSecureCookieWhenConfigured(t *testing.T) {
	h := startApp(t, dbtest.SQLiteURL(t), Tokens{Owner: testOwnerToken}, map[string]string{"auth.cookie_secure": "true", "auth.session_ttl": "2h"})
	c := h.login(t)
	if !c.Secure || c.MaxAge != 7200 {
		t.Errorf("cookie %q with auth.cookie_secure=true and auth.session_ttl=2h: want Secure and Max-Age 7200", c.Raw)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		c := h.login(t)
		other := h.login(t)

		// A page that another site makes the browser post from is refused, and ends nothing.
		if r := h.do("POST", "/logout", "", withSession(c), formBody, withHeader("Sec-Fetch-Site", "cross-site")); r.status != http.StatusForbidden {
			t.Errorf("cross-site logout = %d, want 403", r.status)
		}
		h.do("GET", "/_ref/connectors", nil, withSession(c)).expect(t, 200)

		// The console's logout button: a same-origin form post.
		r := h.do("POST", "/logout", "", withSession(c), formBody, withHeader("Accept", "text/html"),
			withHeader("Origin", "http://example.com"), withHeader("Sec-Fetch-Site", ""))
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
			t.Fatalf("logout = %d (Location %q), want 303 to /login", r.status, r.header.Get("Location"))
		}
		if cleared := sessionCookie(r); cleared == nil || cleared.Value != "" || !cleared.Expires.Before(time.Now()) {
			t.Errorf("logout did not clear the cookie: %v", r.header.Values("Set-Cookie"))
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("logout Cache-Control %q", cc)
		}
		h.do("GET", "/_ref/connectors", nil, withSession(c)).expectError(t, http.StatusUnauthorized, "")
		// A browser that navigates with the ended session is sent to the login form, and back.
		nav := h.do("GET", "/dashboard/runs", nil, withSession(c), withHeader("Accept", "text/html,application/xhtml+xml"))
		if nav.status != http.StatusSeeOther || nav.header.Get("Location") != "/login?next=%2Fdashboard%2Fruns" {
			t.Errorf("navigation with an ended session = %d to %q, want 303 to the login form", nav.status, nav.header.Get("Location"))
		}
		// The other browser's session is untouched; logging out twice is harmless.
		h.do("GET", "/_ref/connectors", nil, withSession(other)).expect(t, 200)
		if r := h.do("POST", "/logout", nil, withSession(c)); r.status != http.StatusNoContent {
			t.Errorf("second logout = %d, want 204", r.status)
		}
		if n := len(h.sessionRows(t)); n != 1 {
			t.Errorf("%d sessions stored after one of two logged out, want 1", n)
		}
	})
}

func TestOneTimeLoginLink(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		path, exp, err := h.authn.IssueLoginLink(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Until(exp); d < 9*time.Minute || d > 10*time.Minute {
			t.Errorf("link valid for %s, want auth.login_link_ttl 10m", d)
		}
		if strings.Contains(path, testOwnerToken) {
			t.Fatal("the login link carries the owner token")
		}
		r := h.do("GET", path+"&next=/dashboard/runs", nil, asBearer(""))
		c := sessionCookie(r)
		if r.status != http.StatusSeeOther || c == nil || r.header.Get("Location") != "/dashboard/runs" {
			t.Fatalf("GET %s = %d, cookie %v; want 303 with a session", path, r.status, c)
		}
		h.do("GET", "/_ref/connectors", nil, withSession(c)).expect(t, 200)
		if rows := h.sessionRows(t); len(rows) != 1 || rows[0]["via"] != "link" {
			t.Errorf("sessions %v, want one made by the link", rows)
		}
		// Single use: the same link again (a second browser, the history) grants nothing.
		again := h.do("GET", path, nil, asBearer(""))
		if again.status != http.StatusUnauthorized || sessionCookie(again) != nil {
			t.Errorf("reused link = %d, cookie %v; want 401 and no cookie", again.status, sessionCookie(again))
		}
		if r := h.do("GET", "/login?link=never-issued-never-issued-never-issued-abcd", nil, asBearer("")); r.status != http.StatusUnauthorized {
			t.Errorf("unknown link = %d, want 401", r.status)
		}
	})
}

func TestLoginFailuresAreRateLimited(t *testing.T) {
	h := startApp(t, dbtest.SQLiteURL(t), Tokens{Owner: testOwnerToken}, map[string]string{"auth.login_per_minute": "5"})
	for i := 0; i < 5; i++ {
		if r := h.do("POST", "/login", "token=guess-"+strconv.Itoa(i), asBearer(""), formBody); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d, want 401", i, r.status)
		}
	}
	for _, r := range []*response{
		h.do("POST", "/login", "token=guess-6", asBearer(""), formBody),
		h.do("POST", "/login", `{"token":"guess-7"}`, asBearer("")),
		// Once limited, even the right token waits: guessing cannot be told from logging in.
		h.do("POST", "/login", "token="+testOwnerToken, asBearer(""), formBody),
		h.do("GET", "/login?link=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", nil, asBearer("")),
	} {
		ra, err := strconv.Atoi(r.header.Get("Retry-After"))
		if r.status != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 12 || sessionCookie(r) != nil {
			t.Errorf("limited login = %d, Retry-After %q, cookie %v; want 429 with Retry-After 1..12 s", r.status, r.header.Get("Retry-After"), sessionCookie(r))
		}
	}
	// The form itself and bearer clients are not limited.
	if r := h.do("GET", "/login", nil, asBearer("")); r.status != 200 {
		t.Errorf("GET /login while limited = %d", r.status)
	}
	h.do("GET", "/_ref/connectors", nil).expect(t, 200)
}

func TestAdminListsAndRevokesSessions(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		h := startOwnerAdmin(t, dbURL)
		a, b, c := h.login(t), h.login(t), h.login(t)
		list := h.do("GET", "/admin/sessions", nil, asBearer(testAdminToken))
		obj := list.expect(t, 200)
		data, _ := obj["data"].([]any)
		if len(data) != 3 {
			t.Fatalf("/admin/sessions lists %d sessions, want 3: %s", len(data), list.body)
		}
		for _, secret := range []string{a.Value, b.Value, c.Value, testOwnerToken} {
			if strings.Contains(string(list.body), secret) {
				t.Errorf("/admin/sessions shows a secret: %s", list.body)
			}
		}
		first := data[0].(map[string]any)
		for _, k := range []string{"id", "via", "created_at", "last_seen_at", "expires_at", "idle_expires_at", "user_agent", "client_ip"} {
			if _, ok := first[k]; !ok {
				t.Errorf("a listed session lacks %q: %v", k, first)
			}
		}
		// Revoking one listed session ends exactly that one. (Which of a, b, c it is the list does
		// not say — it shows no secret, and three logins within one millisecond share created_at.)
		h.do("DELETE", "/admin/sessions/"+fmt.Sprint(first["id"]), nil, asBearer(testAdminToken)).expect(t, 204)
		var left []*http.Cookie
		for _, s := range []*http.Cookie{a, b, c} {
			if r := h.do("GET", "/_ref/connectors", nil, withSession(s)); r.status == http.StatusOK {
				left = append(left, s)
			} else {
				r.expectError(t, http.StatusUnauthorized, "")
			}
		}
		if len(left) != 2 {
			t.Fatalf("after revoking one session, %d of 3 still work; want 2", len(left))
		}
		h.do("DELETE", "/admin/sessions/"+fmt.Sprint(first["id"]), nil, asBearer(testAdminToken)).expectError(t, http.StatusNotFound, "id")
		all := h.do("DELETE", "/admin/sessions", nil, asBearer(testAdminToken)).expect(t, 200)
		if num(t, all, "revoked") != 2 {
			t.Errorf("DELETE /admin/sessions = %v, want 2 revoked", all)
		}
		for _, s := range left {
			h.do("GET", "/_ref/connectors", nil, withSession(s)).expectError(t, http.StatusUnauthorized, "")
		}
	})
}

// TestSessionsSurviveARestart: sessions live in the database, so a second process on the same
// database (a restart, another replica) accepts them and sees a logout.
func TestSessionsSurviveARestart(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, dbURL string) {
		first := startOwnerAdmin(t, dbURL)
		c := first.login(t)
		second := startOwnerAdmin(t, dbURL)
		second.do("GET", "/_ref/connectors", nil, withSession(c)).expect(t, 200)
		if r := first.do("POST", "/logout", nil, withSession(c)); r.status != http.StatusNoContent {
			t.Fatalf("logout = %d", r.status)
		}
		second.do("GET", "/_ref/connectors", nil, withSession(c)).expectError(t, http.StatusUnauthorized, "")
	})
}
