package machines

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	engine "github.com/capygen/capygen/runtime/genrt/machine"
	"github.com/capygen/capygen/spec/spectest"
)

// TestGolden: generated/migstate is the golden copy of the default spec.
func TestGolden(t *testing.T) {
	gentest.MatchCommitted(t, generateDefault(t))
}

func generateDefault(t *testing.T) genfile.Files {
	t.Helper()
	s := spectest.Default(t)
	files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatalf("Generate(default) = %v", err)
	}
	return files
}

// headerVersion returns the capygen version in a generated header, or "".
func headerVersion(src []byte) string {
	for _, line := range strings.Split(string(src), "\n") {
		if v, ok := strings.CutPrefix(line, "// \tcapygen "); ok {
			return v
		}
		if strings.HasPrefix(line, "package ") {
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

// TestStepBound: the generator refuses a step the engine cannot carry, so
// its bound is the engine's.
func TestStepBound(t *testing.T) {
	if maxStepActions != engine.MaxActions {
		t.Errorf("maxStepActions = %d, runtime/genrt/machine.MaxActions = %d; make them equal", maxStepActions, engine.MaxActions)
	}
}

// A state's doc of several lines holding "*/" stays a line comment: jen
// writes a multi-line comment as /* */, which the doc ended early.
func TestDocWithCommentEndCompiles(t *testing.T) {
	s := spectest.Edit(t, "      - name: idle\n      - name: preparing\n", "      - name: idle\n        doc: \"a\\nb */ c\"\n      - name: preparing\n")
	files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatalf("Generate = %v", err)
	}
	for name, b := range files {
		if strings.HasSuffix(name, ".go") {
			if _, err := parser.ParseFile(token.NewFileSet(), name, b, parser.ParseComments); err != nil {
				t.Errorf("%s does not parse: %v", name, err)
			}
		}
	}
}
