// Package gentest builds generated code the way a user would: in a
// temporary module that points back at this repository, with the go
// command run offline (cilium/ebpf bpf2go's TestRun pattern).
package gentest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
)

// repoModule is the module the temporary modules replace with this checkout.
const repoModule = "github.com/capygen/capygen"

// RepoRoot returns the directory of the nearest go.mod at or above the
// test's working directory: this repository's root when run by go test.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("gentest: working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("gentest: looking for the repository root: %v", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("gentest: no go.mod at or above the working directory; run the test inside the repository")
		}
		dir = parent
	}
}

// NeedGo skips the test with -short (building a module takes seconds) or
// when no go command is on PATH.
func NeedGo(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a module with the go command; skipped with -short")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command on PATH: %v", err)
	}
}

// Module creates a temporary module named modulePath holding files, which
// requires this repository and replaces it with the checkout at RepoRoot.
// The repository's go.sum comes along, so the generated code's own
// dependencies resolve from the module cache without a network. It calls
// NeedGo first, and returns the module's directory.
func Module(t testing.TB, files genfile.Files, modulePath string) string {
	t.Helper()
	NeedGo(t)
	if modulePath == "" || strings.ContainsAny(modulePath, " \t\n\"") {
		t.Fatalf("gentest.Module: module path %q is not a plain import path; pass one such as example.com/capytest", modulePath)
	}
	root := RepoRoot(t)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatalf("gentest.Module: the repository's go.sum: %v", err)
	}
	dir := t.TempDir()
	gomod := fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire %s v0.0.0\n\nreplace %s => %s\n", modulePath, repoModule, repoModule, root)
	WriteFiles(t, dir, genfile.Files{"go.mod": []byte(gomod), "go.sum": sum})
	WriteFiles(t, dir, files)
	return dir
}

// WriteFiles writes each file below dir, creating directories as needed.
func WriteFiles(t testing.TB, dir string, files genfile.Files) {
	t.Helper()
	for _, name := range files.Names() {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("gentest: %v", err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			t.Fatalf("gentest: %v", err)
		}
	}
}

// WithSuffix returns files with suffix appended to every name, such as
// ".golden" for golden copies kept under testdata.
func WithSuffix(files genfile.Files, suffix string) genfile.Files {
	out := make(genfile.Files, len(files))
	for name, b := range files {
		out[name+suffix] = b
	}
	return out
}

// Go runs the go command with args in dir and returns its combined output,
// failing the test with that output when it exits non-zero. It runs
// offline (GOPROXY=off, no workspace); -mod=mod lets go fill in the
// module's indirect requirements from the cache.
func Go(t testing.TB, dir string, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("gentest.Go: no go command on PATH (call NeedGo first): %v", err)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOPROXY=off", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out.String())
	}
	return out.String()
}

// MatchCommitted checks that files, generated from the default spec without
// a version, are exactly the committed generated/ tree of this repository
// but for the header's version lines (the CLI writes them, tests leave them
// out): the committed tree is the golden copy, kept once. Each top-level
// directory files writes is also checked for generated files the emitter
// no longer produces. `make generate` refreshes generated/.
func MatchCommitted(t testing.TB, files genfile.Files) {
	t.Helper()
	root := filepath.Join(RepoRoot(t), "generated")
	dirs := map[string]bool{}
	for _, name := range files.Names() {
		dirs[strings.SplitN(name, "/", 2)[0]] = true
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("generated/%s: %v; run make generate", name, err)
			continue
		}
		if got, want := string(genfile.WithoutVersion(b)), string(files[name]); got != want {
			t.Errorf("generated/%s differs from the emitter's output; run make generate (or fix the emitter):\n%s", name, lineDiff(want, got))
		}
	}
	for dir := range dirs {
		ents, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Errorf("generated/%s: %v", dir, err)
			continue
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(root, dir, e.Name()))
			if err == nil && genfile.IsGenerated(b) && files[dir+"/"+e.Name()] == nil {
				t.Errorf("generated/%s/%s carries the generated header but the emitter no longer produces it; run make generate", dir, e.Name())
			}
		}
	}
}

// lineDiff shows the first differing line of two texts after two lines of
// context, enough to find the change without a diff library. Line numbers
// count without the header's version lines.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	var b strings.Builder
	for j := max(0, i-2); j < i; j++ {
		fmt.Fprintf(&b, "%5d            %s\n", j+1, w[j])
	}
	for _, side := range []struct {
		name  string
		lines []string
	}{{"emitted:  ", w}, {"committed:", g}} {
		if i < len(side.lines) {
			fmt.Fprintf(&b, "%5d %s %s\n", i+1, side.name, side.lines[i])
		} else {
			fmt.Fprintf(&b, "%5d %s (end of file)\n", i+1, side.name)
		}
	}
	return b.String()
}
