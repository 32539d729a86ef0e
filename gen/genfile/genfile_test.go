package genfile_test

import (
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/runtime/genrt"
)

// TestGenVersionServed: the generator writes code this runtime serves.
func TestGenVersionServed(t *testing.T) {
	if genfile.GenVersion < genrt.MinVersion || genfile.GenVersion > genrt.MaxVersion {
		t.Fatalf("gen/genfile writes generated code version %d, runtime/genrt serves %d..%d; raise genrt.MaxVersion or genfile.GenVersion together",
			genfile.GenVersion, genrt.MinVersion, genrt.MaxVersion)
	}
}
