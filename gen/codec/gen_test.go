package codec

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
)

var writeRepo = flag.Bool("write-generated", false, "write the default spec's codec into ../../generated")

// TestWriteGenerated refreshes the committed generated/ output of this
// emitter when run with -write-generated.
func TestWriteGenerated(t *testing.T) {
	if !*writeRepo {
		t.Skip("run with -write-generated to refresh ../../generated")
	}
	s, err := spec.Default()
	if err != nil {
		t.Fatal(err)
	}
	files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files.Names() {
		p := filepath.Join("..", "..", "generated", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
