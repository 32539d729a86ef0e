package codec

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec/spectest"
)

var (
	writeRepo    = flag.Bool("write-generated", false, "write the default spec's codec into ../../generated")
	writeVersion = flag.String("write-version", "", "capygen version for -write-generated headers (default: the committed one)")
)

// committedDir is where the repository keeps this emitter's output.
var committedDir = filepath.Join("..", "..", "generated")

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

// committedOptions are the options the committed output was generated
// with: `capygen generate` writes its version into the headers.
func committedOptions(t *testing.T) genfile.Options {
	t.Helper()
	opt := genfile.Options{ImportRoot: genfile.DefaultImportRoot}
	if b, err := os.ReadFile(filepath.Join(committedDir, "tcpmig", "codec.go")); err == nil {
		opt.Version = headerVersion(b)
	}
	return opt
}

// TestWriteGenerated refreshes the committed generated/ output of this
// emitter when run with -write-generated (capygen generate does the same
// for every emitter).
func TestWriteGenerated(t *testing.T) {
	if !*writeRepo {
		t.Skip("run with -write-generated to refresh ../../generated")
	}
	opt := committedOptions(t)
	if *writeVersion != "" {
		opt.Version = *writeVersion
	}
	files, err := Generate(spectest.Default(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	gentest.WriteFiles(t, committedDir, files)
}
