package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestTargets(t *testing.T) {
	if got := strings.Join(TargetNames(), ","); got != "tofino1,tofino2" {
		t.Errorf("TargetNames() = %s, want tofino1,tofino2", got)
	}
	for _, n := range TargetNames() {
		tg, err := LoadTarget(n)
		if err != nil {
			t.Fatalf("LoadTarget(%s) = %v", n, err)
		}
		if len(tg.Sources) != len(targetFigures) {
			t.Errorf("%s cites %d figures, want %d", n, len(tg.Sources), len(targetFigures))
		}
	}
	if _, err := LoadTarget("../capybara"); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "known: tofino1, tofino2") {
		t.Errorf("LoadTarget(../capybara) = %v, want an unknown-target error listing the known ones", err)
	}
}

// A bad target profile is reported in the profile's own file.
func TestBadTargetProfile(t *testing.T) {
	d := newDecoder("spec/targets/bad.yaml", "target profile")
	d.target([]byte("version: 1\nname: bad\narch: v1model\ntofino_version: 3\nstages: {value: 0}\n"))
	err := d.Err(ErrInvalid)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad target profile: error %v does not wrap ErrInvalid", err)
	}
	got := strings.Split(err.Error(), "\n")
	want := []string{
		`spec/targets/bad.yaml:1:1: port_bits: missing; add it`,
		`spec/targets/bad.yaml:1:1: sram_blocks_per_stage: missing; add it`,
	}
	g := strings.Join(got, "\n")
	for _, w := range append(want,
		`spec/targets/bad.yaml:3:7: arch: "v1model" is not a Tofino architecture; use tna or t2na`,
		`spec/targets/bad.yaml:4:17: tofino_version: 3 is not a Tofino generation; set 1 or 2`,
		`spec/targets/bad.yaml:5:17: stages.value: 0 must be at least 1; raise it`,
		`spec/targets/bad.yaml:5:9: stages: missing key source; add it`) {
		if !strings.Contains(g, w) {
			t.Errorf("target diagnostics lack %q; got\n%s", w, g)
		}
	}
}
