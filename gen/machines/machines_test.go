package machines

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

var update = flag.Bool("update", false, "rewrite testdata/golden from the current emitter")

func generateDefault(t *testing.T) genfile.Files {
	t.Helper()
	s := spectest.Default(t)
	files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatalf("Generate(default) = %v", err)
	}
	return files
}

// TestGolden compares every file with testdata/golden/<path>.golden.
func TestGolden(t *testing.T) {
	files := generateDefault(t)
	golden := filepath.Join("testdata", "golden")
	if *update {
		if err := os.RemoveAll(golden); err != nil {
			t.Fatal(err)
		}
		gentest.WriteFiles(t, golden, gentest.WithSuffix(files, ".golden"))
		return
	}
	for _, name := range files.Names() {
		path := filepath.Join(golden, filepath.FromSlash(name)+".golden")
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./gen/machines -update)", err)
		}
		if diff := cmp.Diff(string(want), string(files[name])); diff != "" {
			t.Errorf("%s differs from %s (-golden +generated):\n%s", name, path, diff)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(golden, "*", "*.golden"))
	if len(matches) != len(files) {
		t.Errorf("%d golden files, %d generated; run -update", len(matches), len(files))
	}
}

// TestCommitted keeps the committed generated/migstate in step with the
// emitter; -update rewrites it.
//
// The committed files may carry a capygen version in their header (the CLI
// writes one unless -no-version); the comparison uses the same version.
func TestCommitted(t *testing.T) {
	root := filepath.Join("..", "..", "generated")
	s := spectest.Default(t)
	opt := genfile.Options{ImportRoot: genfile.DefaultImportRoot}
	if doc, err := os.ReadFile(filepath.Join(root, Dir, "doc.go")); err == nil && !*update {
		opt.Version = headerVersion(doc)
	}
	files, err := Generate(s, opt)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		gentest.WriteFiles(t, root, files)
	} else {
		for _, name := range files.Names() {
			path := filepath.Join(root, filepath.FromSlash(name))
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./gen/machines -update)", err)
			}
			if diff := cmp.Diff(string(files[name]), string(got)); diff != "" {
				t.Errorf("committed %s is stale (-emitted +committed):\n%s", path, diff)
			}
		}
	}
	// A generated file the emitter no longer produces is stale too.
	ents, err := os.ReadDir(filepath.Join(root, Dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(root, Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := files[Dir+"/"+e.Name()]; !ok && genfile.IsGenerated(b) {
			t.Errorf("%s/%s carries the generated header but the emitter no longer produces it; delete it", Dir, e.Name())
		}
	}
}

// headerVersion returns the capygen version in a generated header, or "".
func headerVersion(src []byte) string {
	for _, line := range strings.Split(string(src), "\n") {
		if v, ok := strings.CutPrefix(line, "// \tcapygen "); ok {
			return v
		}
		if line == "package migstate" {
			break
		}
	}
	return ""
}

func TestHeaderVersion(t *testing.T) {
	s := spectest.Default(t)
	files, err := Generate(s, genfile.Options{Version: "v9.8.7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files.Names() {
		if !genfile.IsGenerated(files[name]) {
			t.Errorf("%s lacks the generated header", name)
		}
	}
	if v := headerVersion(files[Dir+"/doc.go"]); v != "v9.8.7" {
		t.Errorf("headerVersion = %q, want v9.8.7", v)
	}
}
