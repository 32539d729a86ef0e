package gentest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec/spectest"
)

func TestRepoRoot(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "go.mod"))
	if err != nil || !strings.HasPrefix(string(b), "module "+repoModule+"\n") {
		t.Errorf("RepoRoot's go.mod = %.40q, %v; want module %s", b, err, repoModule)
	}
}

func TestWithSuffix(t *testing.T) {
	got := WithSuffix(genfile.Files{"a/b.go": []byte("x")}, ".golden")
	if len(got) != 1 || string(got["a/b.go.golden"]) != "x" {
		t.Errorf("WithSuffix = %v, want only a/b.go.golden", got)
	}
}

// TestModule builds a package that imports this repository, so the
// replace and the copied go.sum must both work offline.
func TestModule(t *testing.T) {
	NeedGo(t)
	dir := Module(t, genfile.Files{"use/use.go": []byte(`package use

import "github.com/capygen/capygen/spec"

// Port is the default spec's UDP port.
func Port() (uint16, error) {
	s, err := spec.Default()
	if err != nil {
		return 0, err
	}
	return s.Transport.UDPPort, nil
}
`)}, "example.com/gentest")
	Go(t, dir, "build", "./...")
	Go(t, dir, "vet", "./...")
	if out := Go(t, dir, "list", "-m", repoModule); !strings.Contains(out, "=> "+RepoRoot(t)) {
		t.Errorf("go list -m %s = %q, want it replaced by %s", repoModule, out, RepoRoot(t))
	}
}

func TestModuleRefuses(t *testing.T) {
	NeedGo(t)
	broken := Module(t, genfile.Files{"bad/bad.go": []byte("package bad\n\nfunc F() int { return \"no\" }\n")}, "example.com/broken")
	for _, tc := range []struct {
		name string
		f    func(tb testing.TB)
		want string
	}{
		{"empty module path", func(tb testing.TB) { Module(tb, nil, "") }, `module path "" is not a plain import path`},
		{"quoted module path", func(tb testing.TB) { Module(tb, nil, `a"b`) }, "is not a plain import path"},
		{"build error", func(tb testing.TB) { Go(tb, broken, "build", "./...") }, "go build ./... in " + broken},
		{"build output", func(tb testing.TB) { Go(tb, broken, "build", "./...") }, "bad.go:3"},
	} {
		if got := spectest.Failure(t, tc.f); !strings.Contains(got, tc.want) {
			t.Errorf("%s: failed with %q, want it to contain %q", tc.name, got, tc.want)
		}
	}
}
