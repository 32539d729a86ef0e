package genfile_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/runtime/genrt"
	"github.com/capygen/capygen/spec"
	"github.com/dave/jennifer/jen"
)

// TestVersionMismatchDoesNotCompile builds a generated package carrying the
// version check at the version this capygen writes (it compiles), and at
// versions just outside what runtime/genrt serves (they must not).
func TestVersionMismatchDoesNotCompile(t *testing.T) {
	gentest.NeedGo(t)
	s, err := spec.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		version int
		builds  bool
	}{
		{genfile.GenVersion, true},
		{genrt.MaxVersion + 1, false},
		{genrt.MinVersion - 1, false},
	} {
		src, err := genfile.GoFile(s, genfile.Options{}, "v/v.go", "v", func(f *jen.File) { genfile.EnforceVersionAt(f, tc.version) })
		if err != nil {
			t.Fatal(err)
		}
		dir := gentest.Module(t, genfile.Files{"v/v.go": src}, "example.com/capyversion")
		cmd := exec.Command("go", "build", "./v")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOPROXY=off", "GOWORK=off")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Run()
		switch {
		case tc.builds && err != nil:
			t.Errorf("version %d: go build: %v\n%s", tc.version, err, out.String())
		case !tc.builds && err == nil:
			t.Errorf("version %d (runtime serves %d..%d) compiled; the check lets a mismatch through", tc.version, genrt.MinVersion, genrt.MaxVersion)
		case !tc.builds && !strings.Contains(out.String(), "EnforceVersion"):
			t.Errorf("version %d failed to build, but not at the version check:\n%s", tc.version, out.String())
		}
	}
}
