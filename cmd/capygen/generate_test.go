package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capygen/capygen/cmd/internal/cli"
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
	var e cli.ExitError
	if err := runDiff([]string{"-spec", specPath, "-out", out}); !errors.As(err, &e) || e.Code != 1 {
		t.Fatalf("diff after a hand edit = %v, want exit status 1", err)
	}
	// A different spec drifts too: the directory is regenerated, not patched.
	if err := runDiff([]string{"-spec", specPath, "-out", out, "-set", "transport.udp_port=9099"}); !errors.As(err, &e) || e.Code != 1 {
		t.Fatalf("diff against another UDP port = %v, want exit status 1", err)
	}
}

func TestSetOverridesReachTheOutput(t *testing.T) {
	out := t.TempDir()
	err := runGenerate([]string{"-spec", specPath, "-out", out,
		"-set", "target=tofino2", "-set", "budget.stages=20", // three levels need 15 stages
		"-set", "directory.index_bits=14",
		"-set", "directory.levels.2={hash: {name: crc16_dnp, width: 16, poly: 0x3D65, reversed: true, init: 0, xor_out: 0xFFFF}}"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "pipeline", "pipeline.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Levels = 3", "IndexBits = 14", "with -set target=tofino2 budget.stages=20 directory.index_bits=14"} {
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
	if err == nil || !strings.Contains(err.Error(), "sram: needs 166 blocks, budget 19") {
		t.Fatalf("generate over budget = %v, want the SRAM overrun named", err)
	}
}

// lineOf is the 1-based line of the first line of the default spec that
// contains text, so the tests follow edits of capybara.yaml.
func lineOf(t *testing.T, text string) int {
	t.Helper()
	b, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line containing %q", specPath, text)
	return 0
}

// -set patches the YAML tree in place: diagnostics keep the file's lines.
func TestSetKeepsPositions(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  string
		want string
	}{
		{"replaced value", "directory.index_bits=40",
			fmt.Sprintf("spec/capybara.yaml:%d:15: directory.index_bits: 40 is outside what tofino1 allows", lineOf(t, "index_bits: 16"))},
		// An appended item is reported at its list (the first item's dash).
		{"appended item", "directory.levels.2={hash: {name: zero, width: 16, poly: 0x0}}",
			fmt.Sprintf("spec/capybara.yaml:%d:5: directory.levels[2].hash.poly: 0x0: a zero polynomial", lineOf(t, "- hash: {name: crc16_arc"))},
		// A replaced mapping: every node of it takes the replaced one's place.
		{"replaced mapping", "directory.levels.1={hash: {name: crc16_xmodem, width: 12, poly: 0x1021}}",
			fmt.Sprintf("spec/capybara.yaml:%d:7: directory.levels[1].hash.width: 12 is not a CRC width", lineOf(t, "- hash: {name: crc16_xmodem"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runVet([]string{"-spec", specPath, "-set", tc.set})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("vet -set %s = %v, want an error containing %q", tc.set, err, tc.want)
			}
			if !strings.Contains(err.Error(), "(with -set "+tc.set) {
				t.Errorf("vet -set %s = %v, want a note naming the override", tc.set, err)
			}
		})
	}
}

// vet refuses what generate refuses: the loader's switch names, and every
// emitter's own limits (run in memory).
func TestVetAgreesWithGenerate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  string
		want string
	}{
		{"renamed load flag", "header.fields.9.name=install",
			fmt.Sprintf("spec/capybara.yaml:%d:5: header.fields: no field load; the switch reads it as the flag", lineOf(t, "- {name: magic,"))},
		{"renamed rejected", "messages.0.name=refused",
			fmt.Sprintf("spec/capybara.yaml:%d:3: messages: no message rejected", lineOf(t, "  - name: rejected"))},
		// A 21-byte header loads, but the P4 program needs an even length.
		{"odd header", "header.fields.11={name: hops, bits: 8}", "capygen generate refuses it: p4 emitter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			verr := runVet([]string{"-spec", specPath, "-set", tc.set})
			if verr == nil || !strings.Contains(verr.Error(), tc.want) {
				t.Fatalf("vet -set %s = %v, want an error containing %q", tc.set, verr, tc.want)
			}
			if gerr := runGenerate([]string{"-spec", specPath, "-out", t.TempDir(), "-set", tc.set}); gerr == nil {
				t.Errorf("generate -set %s succeeded, but vet refused it: %v", tc.set, verr)
			}
		})
	}
}

func TestPlanMaxLevelsRange(t *testing.T) {
	for _, n := range []string{"0", "-1", "9", "99"} {
		err := runPlan([]string{"-spec", specPath, "-max-levels", n})
		if err == nil || !strings.Contains(err.Error(), "-max-levels "+n+" is outside 1..8") {
			t.Errorf("plan -max-levels %s = %v, want it refused as outside 1..8", n, err)
		}
	}
}

// A spec that is not YAML is reported with its line even with -set.
func TestSetOnBrokenYAML(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("version: 1\nname: capybara\ntransport:\n  mtu: [1500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := runVet([]string{"-spec", p, "-set", "name=x"})
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") || !strings.Contains(err.Error(), "fix the YAML syntax") {
		t.Errorf("vet -set on broken YAML = %v, want the positioned syntax error", err)
	}
}

// A spec path given without -spec is a usage error: generate used to
// regenerate the default spec into ./generated instead.
func TestGeneratorCommandsRefuseArguments(t *testing.T) {
	for _, cmd := range []string{"generate", "diff", "vet", "plan"} {
		var stderr bytes.Buffer
		code := prog.Run([]string{cmd, "other.yaml", "-out", "x"}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), `unexpected arguments ["other.yaml" "-out" "x"]`) {
			t.Errorf("capygen %s other.yaml = exit %d, %q; want exit 2 naming the arguments", cmd, code, stderr.String())
		}
	}
}
