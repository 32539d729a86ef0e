package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capygen/capygen/cmd/internal/cli"
)

// TestExperimentRunsCapyrun: capygen experiment hands its arguments to
// capyrun experiment and passes its exit status on.
func TestExperimentRunsCapyrun(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "args")
	fake := "#!/bin/sh\necho \"$@\" > " + got + "\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, "capyrun"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	err := runExperiment([]string{"skew", "-patterns", "hot"})
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Errorf("runExperiment = %v, want capyrun's exit status 3", err)
	}
	b, _ := os.ReadFile(got)
	if strings.TrimSpace(string(b)) != "experiment skew -patterns hot" {
		t.Errorf("capyrun got %q, want \"experiment skew -patterns hot\"", b)
	}
}
