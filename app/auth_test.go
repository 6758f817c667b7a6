package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"connsum/modules/auth"
	"connsum/modules/bootstrap/dbtest"
)

// authCase is one credential of the auth matrix.
type authCase struct {
	name string
	opt  reqOpt
}

// credentialsOf is every credential of the matrix; session is a browser session of the owner.
func credentialsOf(session *http.Cookie) []authCase {
	return []authCase{
		{"none", asBearer("")},
		{"owner bearer", asBearer(testOwnerToken)},
		{"admin bearer", asBearer(testAdminToken)},
		{"wrong bearer", asBearer("not-the-token-0123456789")},
		{"owner cookie", withSession(session)},
		{"wrong cookie", withSession(&http.Cookie{Name: auth.CookieName, Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})},
		// The cookie of the former login carried the owner token itself: it grants nothing now.
		{"token as cookie", withSession(&http.Cookie{Name: auth.CookieName, Value: testOwnerToken})},
		{"token in the old cookie", withCookie("connsum_owner", testOwnerToken)},
		{"basic scheme", withHeader("Authorization", "Basic "+testOwnerToken)},
		{"empty bearer", withHeader("Authorization", "Bearer ")},
	}
}

func TestAuthMatrix(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startOwnerAdmin(t, url)
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon"}`).expect(t, 201)
		event := eventBody(eventJSON("evt_auth", "run.started", "2026-11-20T08:00:00Z"))
		credentials := credentialsOf(h.login(t))

		type route struct {
			class, method, path, body string
		}
		routes := []route{
			{"owner", "GET", "/_ref/connectors/amazon/manifest", ""},
			{"owner", "POST", "/_ref/spine/events", event},
			{"owner", "PATCH", "/_ref/connections/cin_nope", `{"status":"paused"}`}, // 404 once through the guard
			{"admin", "GET", "/admin/bootstrap", ""},
			{"public", "GET", "/healthz", ""},
			{"public", "GET", "/readyz", ""},
		}
		// want[class][credential]: SPEC §2.1.
		want := map[string]map[string]int{
			"owner": {"none": 401, "owner bearer": 200, "admin bearer": 403, "wrong bearer": 401, "owner cookie": 200,
				"wrong cookie": 401, "token as cookie": 401, "token in the old cookie": 401, "basic scheme": 401, "empty bearer": 401},
			"admin": {"none": 401, "owner bearer": 403, "admin bearer": 200, "wrong bearer": 401, "owner cookie": 403,
				"wrong cookie": 401, "token as cookie": 401, "token in the old cookie": 401, "basic scheme": 401, "empty bearer": 401},
			"public": {"none": 200, "owner bearer": 200, "admin bearer": 200, "wrong bearer": 200, "owner cookie": 200,
				"wrong cookie": 200, "token as cookie": 200, "token in the old cookie": 200, "basic scheme": 200, "empty bearer": 200},
		}
		for _, rt := range routes {
			for _, cr := range credentials {
				t.Run(rt.method+" "+rt.path+" with "+cr.name, func(t *testing.T) {
					status := want[rt.class][cr.name]
					if status == 200 && rt.path == "/_ref/connections/cin_nope" {
						status = 404
					}
					var body any
					if rt.body != "" {
						body = rt.body
					}
					r := h.do(rt.method, rt.path, body, cr.opt)
					if status >= 400 {
						r.expectError(t, status, "")
						for _, tok := range []string{testOwnerToken, testAdminToken} {
							if strings.Contains(string(r.body), tok) {
								t.Errorf("error body echoes a token: %s", r.body)
							}
						}
						return
					}
					r.expect(t, status)
				})
			}
		}

		// The admin route answers with the bootstrap state of SPEC §4.9.
		st := h.do("GET", "/admin/bootstrap", nil, asBearer(testAdminToken)).expect(t, 200)
		if v, _ := st["schema_version"].(string); v == "" {
			t.Errorf("/admin/bootstrap has no schema_version: %v", st)
		}
		found := false
		for _, raw := range st["indexes"].([]any) {
			ix := raw.(map[string]any)
			if ix["exists"] != true {
				t.Errorf("index %v does not exist", ix)
			}
			if ix["name"] == "idx_spine_events_source_run_summary" {
				found = true
			}
		}
		if !found {
			t.Errorf("/admin/bootstrap does not report idx_spine_events_source_run_summary: %v", st)
		}
		if r := h.do("GET", "/healthz", nil, asBearer("")).expect(t, 200); r["status"] != "ok" {
			t.Errorf("/healthz = %v", r)
		}
		if r := h.do("GET", "/readyz", nil, asBearer("")).expect(t, 200); r["status"] != "ready" {
			t.Errorf("/readyz = %v", r)
		}
		h.requireNoTokensLogged(t)
	})
}

func TestAdminRoutesAreOffWithoutAdminToken(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		h := startApp(t, url, Tokens{Owner: testOwnerToken}, nil)
		for _, cr := range []authCase{
			{"none", asBearer("")},
			{"owner bearer", asBearer(testOwnerToken)},
			{"former admin token", asBearer(testAdminToken)},
			{"owner cookie", withSession(h.login(t))},
		} {
			t.Run(cr.name, func(t *testing.T) {
				h.do("GET", "/admin/bootstrap", nil, cr.opt).expectError(t, 404, "")
			})
		}
		h.do("GET", "/healthz", nil, asBearer("")).expect(t, 200)
		h.do("PUT", "/_ref/connectors/amazon", `{"display_name":"Amazon"}`).expect(t, 201)
		h.do("GET", "/_ref/connectors/amazon/manifest", nil, asBearer(testAdminToken)).expectError(t, 401, "")
	})
}

func TestRedeployRecreatesADroppedIndex(t *testing.T) {
	dbtest.EngineURLs(t, func(t *testing.T, url string) {
		first := startOwnerAdmin(t, url)
		if _, err := first.db.ExecContext(context.Background(), "DROP INDEX idx_spine_events_source_run_summary"); err != nil {
			t.Fatal(err)
		}
		state := func(h *harness) map[string]any {
			st := h.do("GET", "/admin/bootstrap", nil, asBearer(testAdminToken)).expect(t, 200)
			for _, raw := range st["indexes"].([]any) {
				if ix := raw.(map[string]any); ix["name"] == "idx_spine_events_source_run_summary" {
					return ix
				}
			}
			t.Fatalf("index not reported: %v", st)
			return nil
		}
		if ix := state(first); ix["exists"] != false {
			t.Errorf("after DROP INDEX /admin/bootstrap reports %v, want exists false", ix)
		}
		// A second start on the same database (a redeploy) repairs it without an operator step.
		second := startOwnerAdmin(t, url)
		if ix := state(second); ix["exists"] != true {
			t.Errorf("after restart /admin/bootstrap reports %v, want exists true", ix)
		}
	})
}
