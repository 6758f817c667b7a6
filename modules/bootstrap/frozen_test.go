package bootstrap

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// migrationFile matches the files that register a migration (NNNNNNNNNNNNNN_name.go).
var migrationFile = regexp.MustCompile(`^\d{14}_[a-z0-9_]+\.go$`)

// TestMigrationsAreFrozen: a migration is history, so its statements must be its own. A
// migration file may not reach, directly or through the package's functions, a package-level
// variable declared in another file (the registry `migrations` aside) or the live verify list
// RequiredIndexes: editing schema.go would then silently change what a fresh database gets.
func TestMigrationsAreFrozen(t *testing.T) {
	bad, migrations, err := liveDependencies(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("a migration depends on live definitions: %s", b)
	}
	if migrations < 3 {
		t.Fatalf("found %d migration files, want at least 3", migrations)
	}
}

// liveDependencies parses the package in dir and lists, per migration file, the live
// definitions it reaches, with the path it reaches them by.
func liveDependencies(dir string) (bad []string, migrations int, err error) {
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	type decl struct {
		file  string
		isVar bool
		body  ast.Node // function declarations: what they reach
	}
	decls := map[string]decl{}
	files := map[string]*ast.File{}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, 0, err
		}
		files[name] = f
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name != "init" {
					decls[d.Name.Name] = decl{file: name, body: d}
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					if vs, ok := s.(*ast.ValueSpec); ok {
						for _, n := range vs.Names {
							decls[n.Name] = decl{file: name, isVar: d.Tok == token.VAR}
						}
					}
				}
			}
		}
	}
	// uses lists the package-level names a node refers to (selector fields are not names).
	uses := func(n ast.Node) []string {
		var out []string
		ast.Inspect(n, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.SelectorExpr:
				ast.Inspect(n.X, func(x ast.Node) bool {
					if id, ok := x.(*ast.Ident); ok {
						out = append(out, id.Name)
					}
					return true
				})
				return false
			case *ast.Ident:
				out = append(out, n.Name)
			}
			return true
		})
		return out
	}
	for name, f := range files {
		if !migrationFile.MatchString(name) {
			continue
		}
		migrations++
		seen := map[string]bool{}
		var reach func(path []string, names []string)
		reach = func(path []string, names []string) {
			for _, n := range names {
				d, ok := decls[n]
				if !ok || seen[n] || (d.file == name && len(path) == 0) {
					continue
				}
				seen[n] = true
				via := name + ": " + strings.Join(append(append([]string{}, path...), n), " → ")
				switch {
				case n == "RequiredIndexes":
					bad = append(bad, via)
				case d.isVar && n != "migrations" && d.file != name:
					bad = append(bad, via+" (a variable of "+d.file+")")
				case d.body != nil:
					reach(append(path, n), uses(d.body))
				}
			}
		}
		reach(nil, uses(f))
	}
	sort.Strings(bad)
	return bad, migrations, nil
}
