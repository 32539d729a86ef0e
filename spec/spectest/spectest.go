// Package spectest gives tests the default capygen spec, whole or with
// textual edits, so every package's tests change it the same way.
package spectest

import (
	"strings"
	"testing"

	"github.com/capygen/capygen/spec"
)

// EditedName is the file name Edit parses its result under; diagnostics
// and generated headers show it.
const EditedName = "edited.yaml"

// Default parses the default spec, failing the test if it does not load.
func Default(t testing.TB) *spec.Spec {
	t.Helper()
	s, err := spec.Default()
	if err != nil {
		t.Fatalf("spec.Default() = %v", err)
	}
	return s
}

// EditYAML returns the default spec's YAML with each pair of old, new
// strings replaced in turn. Every old must occur exactly once in the text
// it is applied to, so a change to capybara.yaml cannot make an edit
// silently miss or hit the wrong place.
func EditYAML(t testing.TB, pairs ...string) []byte {
	t.Helper()
	if len(pairs)%2 != 0 {
		t.Fatalf("spectest.EditYAML: %d strings, want old, new pairs; add the missing replacement", len(pairs))
	}
	y := string(spec.DefaultYAML())
	for i := 0; i < len(pairs); i += 2 {
		if n := strings.Count(y, pairs[i]); n != 1 {
			t.Fatalf("edit %q occurs %d times in the default spec, want once; update the edit to match capybara.yaml", pairs[i], n)
		}
		y = strings.Replace(y, pairs[i], pairs[i+1], 1)
	}
	return []byte(y)
}

// Edit parses EditYAML's result as EditedName, failing the test if the
// edited spec does not load.
func Edit(t testing.TB, pairs ...string) *spec.Spec {
	t.Helper()
	s, err := spec.Parse(EditedName, EditYAML(t, pairs...))
	if err != nil {
		t.Fatalf("edited spec: %v", err)
	}
	return s
}
