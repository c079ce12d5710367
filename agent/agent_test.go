package agent_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoInternalImports guards that the agent, which ships to devices, and
// its reference binary stay independent of the server's internal packages.
// Direct imports suffice: other modules cannot import ours' internal/. The
// files are parsed in-process, unlike with go list, so that go test's cache
// notices when they change.
func TestNoInternalImports(t *testing.T) {
	const internal = "github.com/steward-iot/steward/internal"
	fset := token.NewFileSet()
	files := 0
	for _, root := range []string{".", filepath.Join("..", "cmd", "steward-agent")} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			// Test files don't ship.
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			files++
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if p == internal || strings.HasPrefix(p, internal+"/") {
					t.Errorf("%s imports %s", path, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 4 {
		t.Fatalf("checked only %d files; wrong directory?", files)
	}
}
