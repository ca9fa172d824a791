package contract_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/basaltos/basalt"

// walls: no package under the key may import, directly or through other
// packages of this module, one under any of the values. The builder and
// the device share only contract/; contract/ is shared by both, so it
// imports neither. Tests are outside the wall: e2e tests build images.
var walls = map[string][]string{
	"image":    {"initsys"},
	"initsys":  {"image"},
	"contract": {"image", "initsys"},
}

// TestImportWall parses the imports of every non-test Go file in the module
// (go/parser, imports only: a few milliseconds) and follows them through
// the module's own packages.
func TestImportWall(t *testing.T) {
	imports := moduleImports(t, "..")
	for _, pkg := range sortedKeys(imports) {
		top, _, _ := strings.Cut(pkg, "/")
		for _, bad := range walls[top] {
			if via := reach(imports, pkg, bad); via != nil {
				t.Errorf("%s imports %s: %s", pkg, bad+"/...", strings.Join(via, " -> "))
			}
		}
	}
}

// moduleImports maps each package directory (relative to root,
// slash-separated) to the module packages its non-test files import.
func moduleImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	imports := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil // a package without module imports is still one
		}
		for _, im := range f.Imports {
			ip, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				return err
			}
			if dep, ok := strings.CutPrefix(ip, module+"/"); ok {
				imports[pkg] = append(imports[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil || len(imports["initsys"]) == 0 {
		t.Fatalf("module root %s not found or initsys has no imports (%v)", root, err)
	}
	return imports
}

// reach returns an import path from pkg to a package under bad, or nil.
func reach(imports map[string][]string, pkg, bad string) []string {
	seen := map[string]bool{}
	var walk func(p string, via []string) []string
	walk = func(p string, via []string) []string {
		if seen[p] {
			return nil
		}
		seen[p] = true
		via = append(via, p)
		if p == bad || strings.HasPrefix(p, bad+"/") {
			return via
		}
		for _, dep := range imports[p] {
			if found := walk(dep, via); found != nil {
				return found
			}
		}
		return nil
	}
	return walk(pkg, nil)
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
