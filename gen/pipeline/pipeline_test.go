package pipeline

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec/spectest"
)

var update = flag.Bool("update", false, "rewrite the golden files from the default spec (make generate refreshes generated/)")

// TestGolden compares the output for the default spec with the golden
// files and with the committed generated/pipeline (refreshed by make
// generate, with capygen's version in the header).
func TestGolden(t *testing.T) {
	files, err := Generate(spectest.Default(t), genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatalf("Generate(default) = %v", err)
	}
	if *update {
		gentest.WriteFiles(t, filepath.Join("testdata", "golden"), gentest.WithSuffix(files, ".golden"))
	}
	for _, name := range files.Names() {
		golden := filepath.Join("testdata", "golden", filepath.FromSlash(name)+".golden")
		committed := filepath.Join("..", "..", "generated", filepath.FromSlash(name))
		for _, p := range []string{golden, committed} {
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%s: %v (run go test ./gen/pipeline -update, then make generate)", p, err)
			}
			// capygen generate writes its version into the header; the
			// golden files leave it out.
			want = withoutVersion(want)
			if d := cmp.Diff(string(want), string(files[name])); d != "" {
				t.Errorf("%s differs from Generate (-want +got); run go test ./gen/pipeline -update, then make generate:\n%s", p, d)
			}
		}
	}
}

// withoutVersion drops the "versions:" header lines genfile.Header writes
// when Options.Version is set.
func withoutVersion(b []byte) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		if lines[i] == "// versions:\n" {
			i++ // and the "//\tcapygen vX" line after it
			continue
		}
		out.WriteString(lines[i])
	}
	return []byte(out.String())
}
