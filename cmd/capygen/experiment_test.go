package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// A SIGTERM to capygen reaches capyrun, which takes its testbeds down,
// and capygen waits for it instead of leaving it running.
func TestExperimentPassesSignalsOn(t *testing.T) {
	dir := t.TempDir()
	started, term := filepath.Join(dir, "started"), filepath.Join(dir, "term")
	fake := "#!/bin/sh\ntrap 'echo term > " + term + "; exit 5' TERM\necho > " + started +
		"\ni=0\nwhile [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\nexit 9\n"
	if err := os.WriteFile(filepath.Join(dir, "capyrun"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	res := make(chan error, 1)
	go func() { res <- runExperiment([]string{"skew"}) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fake capyrun never started")
		}
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-res:
	case <-time.After(15 * time.Second):
		t.Fatal("capygen experiment still waits 15 s after SIGTERM")
	}
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 5 {
		t.Errorf("runExperiment = %v, want capyrun's exit status 5 after its TERM trap", err)
	}
	if _, err := os.Stat(term); err != nil {
		t.Errorf("capyrun never got SIGTERM: %v", err)
	}
}
