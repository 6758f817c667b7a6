package console

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connsum/modules/bootstrap"
	"connsum/modules/catalog"
	"connsum/modules/runs"
	"connsum/modules/summary"
)

// stringLiterals returns the string constants declared in file, and the string arguments of
// calls to the functions named in calls (the fold's ptr("browser_surface_failed")).
func stringLiterals(t *testing.T, file string, calls ...string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	lit := func(e ast.Expr) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			if s, err := strconv.Unquote(b.Value); err == nil {
				out = append(out, s)
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GenDecl:
			if n.Tok == token.CONST {
				for _, sp := range n.Specs {
					for _, v := range sp.(*ast.ValueSpec).Values {
						lit(v)
					}
				}
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok {
				for _, c := range calls {
					if id.Name == c && len(n.Args) == 1 {
						lit(n.Args[0])
					}
				}
			}
		}
		return true
	})
	return out
}

// TestReasonTableCoversEveryReason fails when the service can produce a reason that the table
// does not explain: the fold's own reasons and statuses (constants and literals of runs), the
// health reasons (constants of summary, and every reason summary.Project gives over a matrix of
// connection statuses and last runs), and the browser-surface wait reasons the API document
// lists.
func TestReasonTableCoversEveryReason(t *testing.T) {
	codes := map[string]string{}
	add := func(from string, list ...string) {
		for _, c := range list {
			if c != "" && !strings.Contains(c, ".") && c != "started" && !strings.HasSuffix(c, "_") {
				codes[c] = from
			}
		}
	}
	add("runs/fold.go", stringLiterals(t, "../runs/fold.go", "ptr")...)
	add("runs/statuses.go", stringLiterals(t, "../runs/statuses.go")...)
	add("runs.RunStatuses", runs.RunStatuses()...)
	var healthConsts []string
	for _, s := range stringLiterals(t, "../summary/item.go") {
		if strings.Contains(s, "_") || s == "fresh" { // reasons; the states are single words
			healthConsts = append(healthConsts, s)
		}
	}
	add("summary/item.go", healthConsts...)

	doc, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(doc), "browser_surface_wait_reason:\n")
	if i < 0 {
		t.Fatal("docs/openapi.yaml does not describe browser_surface_wait_reason")
	}
	waits := regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(string(doc[i:min(len(doc), i+600)]), -1)
	if len(waits) < 8 {
		t.Fatalf("found %d wait reasons in docs/openapi.yaml, want the 8 of SPEC §1.4", len(waits))
	}
	for _, m := range waits {
		add("openapi wait reasons", m[1])
	}

	// Health reasons as Project gives them.
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	at := bootstrap.FormatTime(now.Add(-time.Hour))
	for _, status := range []string{catalog.StatusActive, catalog.StatusPaused, catalog.StatusRevoked} {
		for _, manifest := range []string{`{"display_name":"X"}`, `{"display_name":"X","capabilities":{"refresh_policy":{"maximum_staleness_seconds":60}}}`, `{"display_name":"X","capabilities":{"refresh_policy":{"maximum_staleness_seconds":86400}}}`} {
			k := &catalog.Connector{ConnectorID: "x", Manifest: []byte(manifest)}
			k.DecodeManifest()
			for _, last := range append([]string{""}, runs.RunStatuses()...) {
				ev := &runs.ConnectionEvidence{}
				if last != "" {
					ev.LastRun = &runs.Summary{RunID: "r", Status: last, LastAt: at}
					if last == runs.StatusSucceeded {
						ev.LastSuccessfulRun = ev.LastRun
					}
				}
				it := summary.Project(summary.Input{Entry: catalog.Entry{Connection: &catalog.Connection{ConnectionID: "cin_x", Status: status},
					Connector: k}, Evidence: ev, EvidenceKind: runs.EvidenceReadModel, Now: now})
				add("summary.Project", it.Health.Reason)
			}
		}
	}
	if len(codes) < 30 {
		t.Fatalf("collected only %d codes: the scan is broken", len(codes))
	}
	for c, from := range codes {
		if r := Explain(c); !r.Known || r.Text == "" {
			t.Errorf("reason %q (from %s) is not in the reason table", c, from)
		}
	}
	if r := Explain("bank_said_no"); r.Known || !strings.Contains(r.Text, "Reported by the connector: bank_said_no") {
		t.Errorf("an unknown code reads %q, want it named as the connector's", r.Text)
	}
}
