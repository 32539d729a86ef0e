// Package specload loads a spec the way the capygen and capyrun commands
// take it: a file named on the command line, with -set overrides patched
// into its YAML tree, and named in diagnostics and generated headers
// relative to its module root.
package specload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/capygen/capygen/spec"
)

// Load loads the spec file and applies the -set overrides. Diagnostics and
// generated headers name the spec relative to its module root, so that the
// output (and so the drift check) is the same from any working directory,
// `go generate` included.
func Load(file string, sets Sets) (*spec.Spec, error) {
	path := ModuleRelative(file)
	path = filepath.ToSlash(filepath.Clean(path))
	doc, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if len(sets) == 0 {
		return spec.Parse(path, doc)
	}
	var root, more yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	if err := dec.Decode(&root); err != nil {
		return spec.Parse(path, doc) // reports the syntax error with its line
	}
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		// A second document: refused (with its line) as without -set.
		if _, err := spec.Parse(path, doc); err != nil {
			return nil, err
		}
	}
	if err := applySets(&root, sets); err != nil {
		return nil, err
	}
	// The overrides patch the node tree in place, so diagnostics keep the
	// file's real lines (an overridden value is reported where the value
	// it replaced is written); generated headers name the overrides.
	s, err := spec.ParseNode(path, &root)
	if err != nil {
		return nil, fmt.Errorf("%w\n(with -set %s: an overridden value is reported where the value it replaces is written)", err, sets.String())
	}
	s.Source = path + " (with -set " + sets.String() + ")"
	return s, nil
}

// ModuleRelative names path relative to the nearest enclosing directory
// with a go.mod, or as given outside any module.
func ModuleRelative(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.ToSlash(filepath.Clean(path))
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			rel, err := filepath.Rel(dir, abs)
			if err == nil {
				return filepath.ToSlash(rel)
			}
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return filepath.ToSlash(filepath.Clean(path))
}
