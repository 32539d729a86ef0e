// Package gen turns a spec into every capygen artifact. Each artifact has
// its own emitter package below this one:
//
//	gen/codec     Go codecs for the TCPMig messages      -> generated/tcpmig
//	gen/machines  migration state machines (+ DOT)       -> generated/migstate
//	gen/pipeline  Go model of the switch pipeline        -> generated/pipeline
//	gen/p4        Tofino P4 program and its p4info       -> generated/p4
//	gen/dissector Wireshark dissector (Lua)              -> generated/wireshark
//	gen/plan      switch resource plan (checked first; printed by `capygen plan`)
//
// Emitters return files in memory; Write and Diff are the only code that
// touches the output directory.
package gen

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/capygen/capygen/gen/codec"
	"github.com/capygen/capygen/gen/dissector"
	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/machines"
	"github.com/capygen/capygen/gen/p4"
	"github.com/capygen/capygen/gen/pipeline"
	"github.com/capygen/capygen/gen/plan"
	"github.com/capygen/capygen/spec"
)

// Version is the capygen version written into generated headers.
const Version = "v0.1.0"

// Emitter produces one artifact.
type Emitter struct {
	// Name is what the CLI calls the artifact.
	Name string
	// Dir is the emitter's directory below the output root for a spec; it
	// owns every generated file there.
	Dir      func(*spec.Spec) string
	Generate func(*spec.Spec, genfile.Options) (genfile.Files, error)
}

func fixed(dir string) func(*spec.Spec) string { return func(*spec.Spec) string { return dir } }

// Emitters lists every artifact, in the order they are generated.
var Emitters = []Emitter{
	// The codec package is named after the spec's header (tcpmig).
	{Name: "codec", Dir: func(s *spec.Spec) string { return s.Header.Name }, Generate: codec.Generate},
	{Name: "machines", Dir: fixed(machines.Dir), Generate: machines.Generate},
	{Name: "pipeline", Dir: fixed(pipeline.Dir), Generate: pipeline.Generate},
	{Name: "p4", Dir: fixed("p4"), Generate: p4.Generate},
	{Name: "dissector", Dir: fixed(dissector.Dir), Generate: dissector.Generate},
}

// Generate checks s against its switch budget and runs every emitter.
func Generate(s *spec.Spec, opt genfile.Options) (genfile.Files, error) {
	if opt.ImportRoot == "" {
		opt.ImportRoot = genfile.DefaultImportRoot
	}
	if err := plan.Check(s); err != nil {
		return nil, err
	}
	all := genfile.Files{}
	for _, e := range Emitters {
		files, err := e.Generate(s, opt)
		if err != nil {
			return nil, fmt.Errorf("%s emitter: %w", e.Name, err)
		}
		for _, name := range files.Names() {
			if dir := e.Dir(s); !strings.HasPrefix(name, dir+"/") {
				return nil, fmt.Errorf("%s emitter: %s is outside its directory %s/", e.Name, name, dir)
			}
			if !genfile.IsGenerated(files[name]) {
				return nil, fmt.Errorf("%s emitter: %s lacks the %q header", e.Name, name, genfile.Marker)
			}
		}
		if err := all.Merge(files); err != nil {
			return nil, err
		}
	}
	if err := checkGo(s, all); err != nil {
		return nil, err
	}
	if err := checkP4(s, all); err != nil {
		return nil, err
	}
	return all, nil
}

// Change is one file that Write changed or Diff found different.
type Change struct {
	Path string
	// Kind is "create", "update" or "delete" (a stale generated file).
	Kind string
}

// Write writes files below root and deletes stale generated files: files
// under an emitter's directory that carry the generated header but that
// the spec no longer produces. Hand-written files (tests beside the
// generated code) are never touched. It returns what changed.
func Write(root string, files genfile.Files) ([]Change, error) {
	changes, err := compare(root, files)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		p := filepath.Join(root, filepath.FromSlash(c.Path))
		switch c.Kind {
		case "delete":
			if err := os.Remove(p); err != nil {
				return nil, fmt.Errorf("remove stale %s: %w", p, err)
			}
		default:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, fmt.Errorf("create directory for %s: %w", p, err)
			}
			if err := os.WriteFile(p, files[c.Path], 0o644); err != nil {
				return nil, fmt.Errorf("write %s: %w", p, err)
			}
		}
	}
	return changes, nil
}

// Diff returns a unified diff between what is below root and files, and
// the changes Write would make; both are empty when there is no drift.
func Diff(root string, files genfile.Files) (string, []Change, error) {
	changes, err := compare(root, files)
	if err != nil {
		return "", nil, err
	}
	var out strings.Builder
	for _, c := range changes {
		p := filepath.Join(root, filepath.FromSlash(c.Path))
		name := strings.TrimPrefix(filepath.ToSlash(p), "/")
		from, to := "a/"+name, "b/"+name
		var old, cur string
		if c.Kind == "create" {
			from = "/dev/null"
		} else {
			b, err := os.ReadFile(p)
			if err != nil {
				return "", nil, err
			}
			old = string(b)
		}
		if c.Kind == "delete" {
			to = "/dev/null"
		} else {
			cur = string(files[c.Path])
		}
		d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: splitLines(old), B: splitLines(cur), FromFile: from, ToFile: to, Context: 3,
		})
		if err != nil {
			return "", nil, err
		}
		if d == "" { // the contents differ only where lines cannot show it
			d = fmt.Sprintf("--- %s\n+++ %s\n(%s; the files differ in their final newline)\n", from, to, c.Kind)
		}
		out.WriteString(d)
	}
	return out.String(), changes, nil
}

// ownedDirs are the top-level directories the files live in: generated
// files there that the spec no longer produces are stale.
func ownedDirs(files genfile.Files) []string {
	var dirs []string
	seen := map[string]bool{}
	for _, n := range files.Names() {
		d, _, _ := strings.Cut(n, "/")
		if !seen[d] && d != n {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// formerCodecDirs are the codec packages an earlier spec generated into
// root under another header name: top-level directories whose codec.go
// carries the generated header, that files does not write into. Their
// generated files are stale; without this a renamed header left the old
// package behind, where it still compiled against nothing current.
func formerCodecDirs(root string, files genfile.Files) []string {
	owned := map[string]bool{}
	for _, d := range ownedDirs(files) {
		owned[d] = true
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil // a root that does not exist yet holds nothing stale
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() || owned[e.Name()] {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(root, e.Name(), "codec.go")); err == nil && genfile.IsGenerated(b) {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

// splitLines splits s after each newline, keeping them, without the empty
// last element difflib.SplitLines adds (it makes hunks that do not apply).
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// compare lists what differs between root and files, in path order.
func compare(root string, files genfile.Files) ([]Change, error) {
	var changes []Change
	for _, name := range files.Names() {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			changes = append(changes, Change{name, "create"})
		case err != nil:
			return nil, err
		case !bytes.Equal(b, files[name]):
			changes = append(changes, Change{name, "update"})
		}
	}
	for _, d := range append(ownedDirs(files), formerCodecDirs(root, files)...) {
		dir := filepath.Join(root, d)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return filepath.SkipDir
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if _, ok := files[rel]; ok {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if genfile.IsGenerated(b) {
				changes = append(changes, Change{rel, "delete"})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return changes, nil
}
