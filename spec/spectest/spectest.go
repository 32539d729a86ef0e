// Package spectest gives tests the default capygen spec, whole or with
// textual edits, so every package's tests change it the same way.
package spectest

import (
	"fmt"
	"runtime"
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

// Failure runs f with a stand-in for t and returns the message f failed
// with through Fatalf, or "" if f returned normally. It lets tests check
// that a test helper refuses bad input. Only Fatalf is caught: every other
// method reaches t itself, from f's own goroutine, so f must not Skip.
func Failure(t testing.TB, f func(tb testing.TB)) string {
	t.Helper()
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.msg
}

// fatalRecorder records the first Fatalf and ends the goroutine, as
// testing.T does, without failing the real test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
