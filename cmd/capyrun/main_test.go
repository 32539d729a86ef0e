package main

import (
	"bytes"
	"slices"
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
