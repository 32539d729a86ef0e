package plan

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

const crc16Levels = `    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true, init: 0x0000, xor_out: 0x0000}
    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}
`

const crc32Levels = `    - hash: {name: crc32, width: 32, poly: 0x04C11DB7, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}
    - hash: {name: crc32c, width: 32, poly: 0x1EDC6F41, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}
    - hash: {name: crc32k, width: 32, poly: 0x741B8CD7, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}
`

func TestDefaultSpecFitsDefaultBudget(t *testing.T) {
	s := spectest.Default(t)
	if err := Check(s); err != nil {
		t.Fatalf("Check(default) = %v, want nil", err)
	}
	u, err := Estimate(s)
	if err != nil {
		t.Fatal(err)
	}
	// 2^16 pairs of 64 bits = 32 blocks, plus the synthetic two-port
	// spare; 2^16 addresses of 32 bits = 16 blocks, plus the spare; 2^16
	// ports of 16 bits = 8 blocks, plus the spare.
	for _, o := range u.Objects {
		want := 33
		switch {
		case strings.HasSuffix(o.Name, "_port"):
			want = 9
		case strings.HasSuffix(o.Name, "_target"), strings.HasSuffix(o.Name, "_origin"):
			want = 17
		}
		if strings.HasPrefix(o.Name, "dir") && o.Kind == "register" && o.SRAMBlocks != want {
			t.Errorf("%s: %d SRAM blocks, want %d", o.Name, o.SRAMBlocks, want)
		}
	}
	if u.StatefulALUs != 9 {
		t.Errorf("StatefulALUs = %d, want 9 (2 levels x key, port, target, origin; min_workload)", u.StatefulALUs)
	}
	if u.Entries != 2<<16 {
		t.Errorf("Entries = %d, want %d", u.Entries, 2<<16)
	}
	// The authors' layout: 2 levels x 9 registers x (16 + 1) blocks, 31.9%.
	if u.Authors.SRAMBlocks != 306 {
		t.Errorf("Authors.SRAMBlocks = %d, want 306", u.Authors.SRAMBlocks)
	}
	// A level's address register sits after its key register, and the
	// next level's key register after this one's.
	stage := map[string]int{}
	for _, o := range u.Objects {
		stage[o.Name] = o.Stage
	}
	if !(stage["dir0_key"] < stage["dir0_port"] && stage["dir0_port"] < stage["dir0_target"] && stage["dir0_port"] < stage["dir1_key"] &&
		stage["dir1_key"] < stage["dir1_target"] && stage["dir1_target"] < stage["ipv4_host"] && stage["dir1_origin"] < stage["ipv4_host"]) {
		t.Errorf("stages %v break the dependency chain", stage)
	}
}

func TestStagesRespectPerStageLimits(t *testing.T) {
	s := spectest.Edit(t, crc16Levels, crc32Levels, "index_bits: 16", "index_bits: 12")
	u, err := Estimate(s)
	if err != nil {
		t.Fatal(err)
	}
	tg := s.Target
	type room struct{ sram, mapRAM, salu, hash int }
	per := map[int]*room{}
	for _, o := range u.Objects {
		r := per[o.Stage]
		if r == nil {
			r = &room{}
			per[o.Stage] = r
		}
		r.sram += o.SRAMBlocks
		r.mapRAM += o.MapRAMBlocks
		r.salu += o.StatefulALUs
		r.hash += o.HashUnits
	}
	for st, r := range per {
		if r.sram > tg.SRAMBlocksPerStage || r.mapRAM > tg.MapRAMBlocksPerStage || r.salu > tg.StatefulALUsPerStage || r.hash > tg.HashUnitsPerStage {
			t.Errorf("stage %d holds %+v, over a stage's limits", st, *r)
		}
	}
}

func TestCheckRefusesOverBudgetSpec(t *testing.T) {
	s := spectest.Edit(t, crc16Levels, crc32Levels, "index_bits: 16", "index_bits: 20", "sram: 40%", "sram: 10%")
	err := Check(s)
	if !errors.Is(err, ErrOverBudget) {
		t.Fatalf("Check(3 levels x 20 bits, 10%% SRAM) = %v, want ErrOverBudget", err)
	}
	want := `spec capybara is over its budget on tofino1:
  sram: needs 3482 blocks, budget 96 (10% of tofino1's 960): 3386 over; lower directory.index_bits or levels, or raise budget.sram
  map_ram: needs 3472 blocks, budget 345 (59.9% of tofino1's 576): 3127 over; lower directory.index_bits or levels, or raise budget.map_ram
  stages: needs 15 stages, budget 12 (tofino1 has 12): 3 over; lower directory.levels, or raise budget.stages
  stage_memory: dir0_key needs 513 SRAM blocks and 513 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir0_port needs 129 SRAM blocks and 129 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir0_target needs 257 SRAM blocks and 257 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir0_origin needs 257 SRAM blocks and 257 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir1_key needs 513 SRAM blocks and 513 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir1_port needs 129 SRAM blocks and 129 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir1_target needs 257 SRAM blocks and 257 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir1_origin needs 257 SRAM blocks and 257 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir2_key needs 513 SRAM blocks and 513 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir2_port needs 129 SRAM blocks and 129 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir2_target needs 257 SRAM blocks and 257 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits
  stage_memory: dir2_origin needs 257 SRAM blocks and 257 map RAMs in one stage; a tofino1 stage has 80 and 48; lower directory.index_bits`
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Check error (-want +got):\n%s", diff)
	}
	var be *BudgetError
	if !errors.As(err, &be) || be.Overrun[0].Resource != "sram" || be.Overrun[0].Needs-be.Overrun[0].Budget != 3386 {
		t.Errorf("BudgetError = %+v, want sram first, 3386 over", be)
	}
}

func TestCheckNamesStagesOverBudget(t *testing.T) {
	s := spectest.Edit(t, "stages: 12 ", "stages: 5 ")
	err := Check(s)
	if err == nil || !strings.Contains(err.Error(), "stages: needs 12 stages, budget 5 (tofino1 has 12): 7 over") {
		t.Fatalf("Check(5 stages) = %v, want the stages overrun", err)
	}
}

func TestExploreIsDeterministicAndFits(t *testing.T) {
	s := spectest.Default(t)
	a, err := Explore(s, ExploreOptions{MaxLevels: 2, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Explore(s, ExploreOptions{MaxLevels: 2, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, b, cmpopts.IgnoreUnexported(Object{})); diff != "" {
		t.Fatalf("Explore is not deterministic for a seed:\n%s", diff)
	}
	c, err := Explore(s, ExploreOptions{MaxLevels: 2, Seed: 43})
	if err != nil {
		t.Fatal(err)
	}
	if cmp.Equal(a, c, cmpopts.IgnoreUnexported(Object{})) {
		t.Errorf("seeds 42 and 43 measured identical capacities; the seed is not used")
	}
	if len(a) == 0 {
		t.Fatal("Explore(default) found no choice")
	}
	found := false
	for _, ch := range a {
		if ch.Levels == 2 && ch.IndexBits == 16 {
			found = true
			if ch.Hashes[0] != "crc16_arc" || ch.Hashes[1] != "crc16_xmodem" {
				t.Errorf("2x16 measured with %v, want the spec's CRCs", ch.Hashes)
			}
		}
		if ch.Usage.SRAMBlocks > s.Budget.SRAMBlocks {
			t.Errorf("choice %dx%d over the SRAM budget", ch.Levels, ch.IndexBits)
		}
	}
	if !found {
		t.Error("Explore(default) lacks the spec's own 2 levels x 16 bits")
	}
	var buf bytes.Buffer
	WriteTable(&buf, a)
	if !strings.Contains(buf.String(), "capacity@1%") || strings.Count(buf.String(), "\n") != len(a)+1 {
		t.Errorf("WriteTable output:\n%s", buf.String())
	}
}

func TestWriteUsage(t *testing.T) {
	s := spectest.Default(t)
	u, err := Estimate(s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	WriteUsage(&buf, s, u)
	for _, want := range []string{"sram blocks", "dir1_target", "authors' layout (288 bits an entry): 306 SRAM blocks, 31.9% of tofino1"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("WriteUsage lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestEstimateRejectsIncompleteSpec(t *testing.T) {
	if _, err := Estimate(&spec.Spec{}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("Estimate(empty) = %v, want ErrBadSpec", err)
	}
}

// vet's same-hash warning and plan's table measure the same way: for the
// authors' scheme (one hash on both levels) vet quotes plan's authors@1%
// as the spec's capacity and plan's capacity@1% as the distinct-hash one.
func TestVetQuotesPlanCapacities(t *testing.T) {
	s := spectest.Edit(t, crc16Levels,
		"    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true}\n    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true}\n")
	choices, err := Explore(s, ExploreOptions{MaxLevels: 2, Seed: spec.CapacitySeed})
	if err != nil {
		t.Fatal(err)
	}
	var row *Choice
	for i := range choices {
		if choices[i].Levels == 2 && choices[i].IndexBits == 16 {
			row = &choices[i]
		}
	}
	if row == nil {
		t.Fatal("Explore lacks the spec's own 2 levels x 16 bits")
	}
	want := fmt.Sprintf("hold %d entries when 1%% of inserts are rejected, against %d with a distinct hash per level (%s;",
		row.AuthorsCapacity, row.Capacity, strings.Join(row.Hashes, ", "))
	var warning string
	for _, d := range spec.Vet(s) {
		if strings.Contains(d.Msg, "same hash") {
			warning = d.Msg
		}
	}
	if !strings.Contains(warning, want) {
		t.Errorf("vet's same-hash warning:\n%s\nlacks plan's figures:\n%s", warning, want)
	}
}
