package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/capygen/capygen/testbed/experiment"
)

// -from takes only a result of its own experiment with something in it:
// anything else would be written back over the run in -out.
func TestDecodeResultRefusesOtherResults(t *testing.T) {
	skew, err := os.ReadFile("../../results/reference/skew/skew.json")
	if err != nil {
		t.Fatal(err)
	}
	fig1, err := os.ReadFile("../../results/reference/fig1/fig1.json")
	if err != nil {
		t.Fatal(err)
	}
	if res, err := decodeResult[experiment.SkewResult](skew); err != nil || len(res.Runs) == 0 {
		t.Fatalf("the reference skew.json: %v", err)
	}
	for name, b := range map[string][]byte{
		"fig1's result": fig1,
		"null":          []byte("null"),
		"empty object":  []byte("{}"),
		"two values":    append(append([]byte(nil), skew...), skew...),
		"not JSON":      []byte("skew"),
	} {
		if _, err := decodeResult[experiment.SkewResult](b); err == nil {
			t.Errorf("%s decoded as a skew result", name)
		}
	}
}

// A run that fails before its first result leaves the result already in
// -out as it was.
func TestFailedRunKeepsTheEarlierResult(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile("../../results/reference/skew/skew.json")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "skew.json")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	out, from := dir, ""
	failed := errors.New("needs root")
	err = runExp(experimentFlags{out: &out, from: &from}, "capyrun experiment skew",
		func() (*experiment.SkewResult, error) {
			return &experiment.SkewResult{Config: experiment.DefaultSkew()}, failed
		}, experiment.SkewSummary, experiment.WriteSkew)
	if !errors.Is(err, failed) {
		t.Errorf("runExp = %v, want the run's error", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
		t.Error("the earlier skew.json was overwritten by a run that measured nothing")
	}
}
