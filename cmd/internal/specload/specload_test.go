package specload

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/capygen/capygen/spec"
)

// specPath is the default spec, from this package's directory.
const specPath = "../../../spec/capybara.yaml"

func TestModuleRelative(t *testing.T) {
	if got := ModuleRelative(specPath); got != "spec/capybara.yaml" {
		t.Errorf("ModuleRelative(%q) = %q, want spec/capybara.yaml", specPath, got)
	}
	outside := filepath.Join(t.TempDir(), "x.yaml")
	if got := ModuleRelative(outside); got != filepath.ToSlash(outside) {
		t.Errorf("ModuleRelative(%q) = %q, want the path as given", outside, got)
	}
}

// FuzzApplySets: any -set string either patches the tree or is refused;
// the result (if any) goes through the loader without a panic.
func FuzzApplySets(f *testing.F) {
	for _, s := range []string{"directory.index_bits=14", "directory.levels.2={hash: {name: x, width: 16, poly: 0x3}}",
		"budget.sram=8%", "a.b.c=1", "directory.levels.-1=1", "version.x=1", "=", "header.fields.0=[1, {a: *b}]", "name=&a x"} {
		f.Add(s)
	}
	doc, err := os.ReadFile(specPath)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, set string) {
		var root yaml.Node
		if err := yaml.Unmarshal(doc, &root); err != nil {
			t.Fatal(err)
		}
		if err := applySets(&root, []string{set}); err != nil {
			return
		}
		_, _ = spec.ParseNode("spec/capybara.yaml", &root)
	})
}

// With -set, a spec file holding a second document is refused as without
// it, and an override with a newline is quoted where headers name it.
func TestSetsTakeTheFileAsIs(t *testing.T) {
	dir := t.TempDir()
	two := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(two, append(spec.DefaultYAML(), []byte("---\nversion: 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, plain := Load(two, nil)
	_, set := Load(two, Sets{"directory.index_bits=14"})
	if plain == nil || set == nil {
		t.Errorf("a second document: without -set %v, with -set %v; want both refused", plain, set)
	}
	one := filepath.Join(dir, "one.yaml")
	if err := os.WriteFile(one, spec.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(one, Sets{"doc=a\nb"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.Source, "\n") || !strings.Contains(s.Source, `"doc=a\nb"`) {
		t.Errorf("Source = %q, want the override quoted on one line", s.Source)
	}
}
