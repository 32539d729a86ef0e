package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// specPath is the default spec, from this package's directory.
const specPath = "../../spec/capybara.yaml"

func TestGenerateThenDiffIsClean(t *testing.T) {
	out := t.TempDir()
	if err := runGenerate([]string{"-spec", specPath, "-out", out}); err != nil {
		t.Fatalf("generate: %v", err)
	}
	if err := runDiff([]string{"-spec", specPath, "-out", out}); err != nil {
		t.Fatalf("diff right after generate = %v, want no drift", err)
	}
}

func TestDiffExitsOneOnDrift(t *testing.T) {
	out := t.TempDir()
	if err := runGenerate([]string{"-spec", specPath, "-out", out}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, "tcpmig", "codec.go")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, "// hand edit\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	var e exitError
	if err := runDiff([]string{"-spec", specPath, "-out", out}); !errors.As(err, &e) || e.code != 1 {
		t.Fatalf("diff after a hand edit = %v, want exit status 1", err)
	}
	// A different spec drifts too: the directory is regenerated, not patched.
	if err := runDiff([]string{"-spec", specPath, "-out", out, "-set", "transport.udp_port=9099"}); !errors.As(err, &e) || e.code != 1 {
		t.Fatalf("diff against another UDP port = %v, want exit status 1", err)
	}
}

func TestSetOverridesReachTheOutput(t *testing.T) {
	out := t.TempDir()
	err := runGenerate([]string{"-spec", specPath, "-out", out,
		"-set", "directory.index_bits=14",
		"-set", "directory.levels.2={hash: {name: crc16_dnp, width: 16, poly: 0x3D65, reversed: true, init: 0, xor_out: 0xFFFF}}"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "pipeline", "pipeline.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Levels = 3", "IndexBits = 14", "with -set directory.index_bits=14"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("pipeline.go generated with -set lacks %q", want)
		}
	}
}

func TestSetErrors(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"directory.index_bits", "want path=value"},
		{"directory.nothing.deeper=1", `the spec has no "nothing" here`},
		{"directory.levels.7=1", "is not an index of a 2-item list"},
		{"version.x=1", "inside a scalar"},
		{"directory.index_bits=abc", "directory.index_bits: want an integer"},
		{"budget.sram=[", "is not YAML"},
	} {
		err := runPlan([]string{"-spec", specPath, "-set", tc.set})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plan -set %s = %v, want an error containing %q", tc.set, err, tc.want)
		}
	}
}

func TestOverBudgetIsRefused(t *testing.T) {
	err := runGenerate([]string{"-spec", specPath, "-out", t.TempDir(), "-set", "budget.sram=2%"})
	if err == nil || !strings.Contains(err.Error(), "sram: needs 140 blocks, budget 19") {
		t.Fatalf("generate over budget = %v, want the SRAM overrun named", err)
	}
}

func TestModuleRelative(t *testing.T) {
	if got := moduleRelative(specPath); got != "spec/capybara.yaml" {
		t.Errorf("moduleRelative(%q) = %q, want spec/capybara.yaml", specPath, got)
	}
	outside := filepath.Join(t.TempDir(), "x.yaml")
	if got := moduleRelative(outside); got != filepath.ToSlash(outside) {
		t.Errorf("moduleRelative(%q) = %q, want the path as given", outside, got)
	}
}
