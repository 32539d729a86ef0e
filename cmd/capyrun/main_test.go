package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/capygen/capygen/cmd/internal/cli"
)

func TestCommands(t *testing.T) {
	if got := prog.Names(); !slices.Equal(got, cli.CapyrunCommands) {
		t.Errorf("capyrun's commands = %v, want cli.CapyrunCommands %v", got, cli.CapyrunCommands)
	}
}

// A generator command run here names the binary that has it.
func TestGeneratorCommands(t *testing.T) {
	var stderr bytes.Buffer
	code := prog.Run([]string{"generate", "-out", "x"}, &stderr)
	want := "capyrun generate: is a capygen command; run `go run ./cmd/capygen generate ...`\n"
	if code != 2 || stderr.String() != want {
		t.Errorf("capyrun generate = exit %d, %q, want exit 2, %q", code, stderr.String(), want)
	}
}

// The demo checks every flag before its first step: the later steps come
// minutes in, and a bad -migrate-every made time.NewTicker panic there.
func TestDemoRefusesBadFlagsFirst(t *testing.T) {
	for _, args := range [][]string{
		{"-migrate-every", "0"},
		{"-min-hops", "-1"},
		{"-rate", "32M; rm -rf /"},
		{"-skew-duration", "0"},
		{"-size", "0"},
		{"-migrate-size", "-5"},
		{"extra"},
	} {
		var stderr bytes.Buffer
		code := prog.Run(append([]string{"demo", "-spec", "/nonexistent"}, args...), &stderr)
		if code == 0 || !strings.Contains(stderr.String(), args[0]) {
			t.Errorf("demo %v = exit %d, %q; want an error naming %s before the spec is read", args, code, stderr.String(), args[0])
		}
	}
}
