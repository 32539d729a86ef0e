// Package plan estimates the Tofino resources of a spec's switch program,
// refuses a spec that is over its budget, and explores the directory shapes
// (levels x index bits) that fit a budget, each with its capacity measured
// by inserting random client addresses through the real hash functions
// (spec.MeasureCapacity, the same measurement `capygen vet` quotes).
//
// Everything here is an ESTIMATE. The real figures come from bf-p4c's
// resource report, which this machine cannot produce (DESIGN §6: no p4c).
// The estimate follows how the Tofino compiler lays out the objects of
// gen/SWITCH.md, with these rules:
//
//   - A register of 2^W cells of C bits packs 128/C cells in a row of a unit
//     RAM (1024 rows x 128 bits), so it needs ceil(2^W / (1024 * 128/C))
//     SRAM blocks, plus one spare block: a stateful table is a "synthetic
//     two-port" memory (bf-p4c's IR::MAU::Synth2Port; the Tofino model's
//     synth2port map RAMs) whose read-modify-write needs a spare unit RAM.
//     Each of those unit RAMs is paired with a map RAM, so map RAM = SRAM
//     blocks for stateful tables (and the packet counter, which bf-p4c
//     also lays out as a synthetic two-port table). The spare and the map
//     RAM pairing are how we read the compiler, not measured figures.
//   - A register lives in ONE stage: a stateful ALU reaches only its own
//     stage's RAMs. A register that needs more SRAM or map RAM than a stage
//     has cannot be placed at all (reported by Check).
//   - Each register needs its own stateful ALU, and a register is accessed
//     once per pass, so SALUs = registers; a stage has 4. A Tofino-1
//     stateful ALU has two condition units, so no RegisterAction makes more
//     than two comparisons (gen/p4 tests it): a directory key stays one
//     64-bit pair {ip, port|valid} per level, and the insert's third test
//     (is the returned port word the key's?) is a gateway on the action's
//     output, which costs no SALU, memory or extra stage.
//   - Exact-match tables (port_role, ipv4_host, l2_forward) store key + 4
//     bits of version/valid + immediate action data (up to 32 bits) per
//     entry, as many entries as fit a 128-bit word, and are filled to 80%
//     at most (cuckoo hashing needs headroom); action data wider than 32
//     bits goes to an action-data table of its own.
//   - Each directory level's CRC occupies one hash distribution unit.
//   - Stages follow the dependency chain of gen/SWITCH.md: port_role, then
//     the key's hashes, then for each level its key register, then its
//     address register (a level's key and address registers are in
//     different stages because the address access depends on the key's
//     result; level i+1's key waits for level i's key, whose result says
//     whether it inserts or clears a copy of the key), then ipv4_host.
//     Objects are placed greedily at the earliest stage their
//     dependencies allow that still has SALUs, SRAM, map RAM and hash units.
//
// For reference the plan also computes the authors' layout: 288 bits an
// entry in nine 32-bit registers per level (DESIGN §2), which for two
// 16-bit levels is 306 blocks, 31.9% of a Tofino-1, matching the 32.5% the
// Capybara paper reports to within the spare-block accounting.
package plan

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/capygen/capygen/spec"
)

// RowBits is the width of one unit-RAM row; BlockRows the rows of a block.
const (
	RowBits   = 128
	BlockRows = 1024
)

// AuthorsBitsPerEntry is the size of a directory entry in the authors' P4:
// request and reply identifiers and origin and target MAC/IP/port.
const AuthorsBitsPerEntry = 288

// DropCounterCells is the size of the drops counter: one cell per drop
// reason of gen/SWITCH.md (no_route, spoofed_control, unknown_port,
// bad_tcpmig, malformed), numbered from 1; cell 0, which no drop uses,
// counts stale PREPARE_MIG_ACKs. gen/p4's TestPlanPricesTheProgramsState
// keeps it equal to the p4info's.
const DropCounterCells = 6

// ErrOverBudget is wrapped by Check's error when a spec does not fit.
var ErrOverBudget = errors.New("over budget")

// ErrBadSpec is wrapped when the spec lacks what the plan needs.
var ErrBadSpec = errors.New("spec cannot be planned")

// Object is one resource-using object of the switch program.
type Object struct {
	Name string `json:"name"`
	// Kind is "register", "counter", "exact_table" or "hash".
	Kind         string `json:"kind"`
	Cells        int    `json:"cells,omitempty"`
	CellBits     int    `json:"cell_bits,omitempty"`
	SRAMBlocks   int    `json:"sram_blocks"`
	MapRAMBlocks int    `json:"map_ram_blocks"`
	StatefulALUs int    `json:"stateful_alus"`
	HashUnits    int    `json:"hash_units"`
	// Stage is the MAU stage the object was placed in.
	Stage int `json:"stage"`
	// after lists the objects whose results this one depends on.
	after []string
}

// Authors is the authors' 288-bit layout of the same directory.
type Authors struct {
	BitsPerEntry int `json:"bits_per_entry"`
	SRAMBlocks   int `json:"sram_blocks"`
}

// Usage is the estimated resource use of a spec's program on its target.
type Usage struct {
	Target    string `json:"target"`
	Levels    int    `json:"levels"`
	IndexBits int    `json:"index_bits"`
	// Entries is the directory's slot count over all levels.
	Entries      int `json:"entries"`
	SRAMBlocks   int `json:"sram_blocks"`
	MapRAMBlocks int `json:"map_ram_blocks"`
	StatefulALUs int `json:"stateful_alus"`
	HashUnits    int `json:"hash_units"`
	Stages       int `json:"stages"`
	// Objects is the per-object breakdown, in placement order.
	Objects []Object `json:"objects"`
	// Unplaceable names objects that need more than one stage has.
	Unplaceable []string `json:"unplaceable,omitempty"`
	// Authors is the same directory in the authors' layout, for reference.
	Authors Authors `json:"authors"`
}

// Estimate returns the estimated resources s's switch program uses on
// s.Target.
func Estimate(s *spec.Spec) (*Usage, error) {
	if s == nil || s.Target == nil || s.Directory == nil {
		return nil, fmt.Errorf("%w: it needs a target and a directory", ErrBadSpec)
	}
	if len(s.Directory.Levels) < 1 {
		return nil, fmt.Errorf("%w: directory.levels is empty; give it at least one level", ErrBadSpec)
	}
	return estimate(s.Target, s.Tables, len(s.Directory.Levels), s.Directory.IndexBits)
}

// estimate lays out a program with the given directory shape.
func estimate(t *spec.Target, tables spec.Tables, levels, bits int) (*Usage, error) {
	if bits < 1 || bits > 30 {
		return nil, fmt.Errorf("%w: directory.index_bits %d is outside 1..30", ErrBadSpec, bits)
	}
	if t.SRAMBlocksPerStage < 1 || t.Stages < 1 || t.StatefulALUsPerStage < 1 {
		return nil, fmt.Errorf("%w: target %s has no stages, SRAM or stateful ALUs", ErrBadSpec, t.Name)
	}
	u := &Usage{Target: t.Name, Levels: levels, IndexBits: bits, Entries: levels << bits}
	cells := 1 << bits
	var objs []Object
	objs = append(objs, exactTable("port_role", t.PortBits, 2, tables.Ports))
	l2 := exactTable("l2_forward", 48, t.PortBits, tables.L2)
	l2.after = []string{"port_role"}
	objs = append(objs, l2)
	mw := register("min_workload", 1, 64)
	mw.after = []string{"port_role"}
	objs = append(objs, mw)
	// The gateways bf-p4c places before the directory (p4c's Tofino back end
	// on the default program): the TCPMig stage and the drops in the stage
	// after port_role, the client key and the directory operation in the
	// next; the hashes follow.
	classify := Object{Name: "classify", Kind: "gateways", after: []string{"port_role"}}
	clientKey := Object{Name: "client_key", Kind: "gateways", after: []string{classify.Name}}
	objs = append(objs, classify, clientKey)
	for i := 0; i < levels; i++ {
		h := Object{Name: fmt.Sprintf("dir%d_hash", i), Kind: "hash", HashUnits: 1, after: []string{clientKey.Name}}
		key := register(fmt.Sprintf("dir%d_key", i), cells, 64)
		key.after = []string{h.Name}
		if i > 0 {
			// The next level waits for this one's result, which bf-p4c
			// settles in the stage of its target register.
			key.after = append(key.after, fmt.Sprintf("dir%d_target", i-1))
		}
		// The insert's port test: dir<i>_port after the key, the target
		// register after both (the hand-over waits for the test), the
		// origin after the key.
		port := register(fmt.Sprintf("dir%d_port", i), cells, 16)
		port.after = []string{key.Name}
		target := register(fmt.Sprintf("dir%d_target", i), cells, 32)
		target.after = []string{key.Name, port.Name}
		origin := register(fmt.Sprintf("dir%d_origin", i), cells, 32)
		origin.after = []string{key.Name}
		objs = append(objs, h, key, port, target, origin)
	}
	// Then the gateways that decide where the packet goes, ipv4_host, and
	// the drop counter beside it (counted in the branch that routes nothing).
	decide := Object{Name: "decide", Kind: "gateways", after: []string{"min_workload"}}
	for i := 0; i < levels; i++ {
		decide.after = append(decide.after, fmt.Sprintf("dir%d_target", i), fmt.Sprintf("dir%d_origin", i))
	}
	objs = append(objs, decide)
	host := exactTable("ipv4_host", 32, t.PortBits+48, tables.Hosts)
	host.after = []string{decide.Name}
	objs = append(objs, host)
	drops := register("drops", DropCounterCells, 64)
	drops.Kind, drops.StatefulALUs = "counter", 0
	drops.after = []string{decide.Name}
	objs = append(objs, drops)

	u.Unplaceable = place(t, objs)
	for _, o := range objs {
		u.SRAMBlocks += o.SRAMBlocks
		u.MapRAMBlocks += o.MapRAMBlocks
		u.StatefulALUs += o.StatefulALUs
		u.HashUnits += o.HashUnits
		if o.Stage+1 > u.Stages {
			u.Stages = o.Stage + 1
		}
	}
	u.Objects = objs
	u.Authors = Authors{BitsPerEntry: AuthorsBitsPerEntry, SRAMBlocks: levels * (AuthorsBitsPerEntry / 32) * registerBlocks(cells, 32)}
	return u, nil
}

// registerBlocks is the SRAM of a register: its rows in 1024-row blocks,
// plus the synthetic two-port spare.
func registerBlocks(cells, cellBits int) int {
	perRow := RowBits / cellBits
	rows := ceilDiv(cells, perRow)
	return ceilDiv(rows, BlockRows) + 1
}

func register(name string, cells, cellBits int) Object {
	b := registerBlocks(cells, cellBits)
	return Object{Name: name, Kind: "register", Cells: cells, CellBits: cellBits,
		SRAMBlocks: b, MapRAMBlocks: b, StatefulALUs: 1}
}

// exactTable estimates an exact-match table of size entries.
func exactTable(name string, keyBits, actionBits, size int) Object {
	const overhead = 4 // version/valid bits per entry
	imm, adBits := actionBits, 0
	if actionBits > 32 {
		imm, adBits = 0, actionBits
	}
	entryBits := keyBits + overhead + imm
	perWord := max(1, RowBits/entryBits)
	words := ceilDiv(size, perWord)
	blocks := max(1, int(math.Ceil(float64(words)/(BlockRows*0.8))))
	if words > BlockRows/8 {
		// bf-p4c spreads an exact table of more than a few rows over four
		// RAMs, one per hash way (measured: l2_forward and ipv4_host of
		// 1024 entries take four each, port_role of 64 one).
		blocks = max(blocks, 4)
	}
	if adBits > 0 {
		adWord := 1 << bitsLen(adBits) // action data is stored in power-of-two slots
		blocks += ceilDiv(size*adWord, BlockRows*RowBits)
	}
	return Object{Name: name, Kind: "exact_table", Cells: size, CellBits: entryBits, SRAMBlocks: blocks}
}

// bitsLen is the exponent of the smallest power of two >= n.
func bitsLen(n int) int {
	e := 0
	for 1<<e < n {
		e++
	}
	return e
}

// place assigns stages greedily in list order (the list is topologically
// sorted) and returns the objects no stage can hold.
func place(t *spec.Target, objs []Object) []string {
	type room struct{ sram, mapRAM, salu, hash int }
	var stages []room
	at := map[string]int{}
	var unplaceable []string
	for i := range objs {
		o := &objs[i]
		s := 0
		for _, d := range o.after {
			if st, ok := at[d]; ok && st+1 > s {
				s = st + 1
			}
		}
		fits := o.SRAMBlocks <= t.SRAMBlocksPerStage && o.MapRAMBlocks <= t.MapRAMBlocksPerStage &&
			o.StatefulALUs <= t.StatefulALUsPerStage && o.HashUnits <= t.HashUnitsPerStage &&
			(o.Kind != "register" || t.MaxRegisterBlocks == 0 || o.SRAMBlocks <= t.MaxRegisterBlocks)
		if !fits {
			unplaceable = append(unplaceable, tooBig(t, o))
		}
		for ; ; s++ {
			for len(stages) <= s {
				stages = append(stages, room{})
			}
			r := stages[s]
			if !fits || (r.sram+o.SRAMBlocks <= t.SRAMBlocksPerStage && r.mapRAM+o.MapRAMBlocks <= t.MapRAMBlocksPerStage &&
				r.salu+o.StatefulALUs <= t.StatefulALUsPerStage && r.hash+o.HashUnits <= t.HashUnitsPerStage) {
				break
			}
		}
		stages[s].sram += o.SRAMBlocks
		stages[s].mapRAM += o.MapRAMBlocks
		stages[s].salu += o.StatefulALUs
		stages[s].hash += o.HashUnits
		o.Stage = s
		at[o.Name] = s
	}
	return unplaceable
}

// tooBig says what o needs more of than one stage of t has.
func tooBig(t *spec.Target, o *Object) string {
	var needs, has []string
	add := func(n, limit int, what string) {
		if n > limit {
			needs = append(needs, fmt.Sprintf("%d %s", n, what))
			has = append(has, strconv.Itoa(limit))
		}
	}
	add(o.SRAMBlocks, t.SRAMBlocksPerStage, "SRAM blocks")
	add(o.MapRAMBlocks, t.MapRAMBlocksPerStage, "map RAMs")
	add(o.StatefulALUs, t.StatefulALUsPerStage, "stateful ALUs")
	add(o.HashUnits, t.HashUnitsPerStage, "hash units")
	if len(needs) == 0 && o.Kind == "register" && o.SRAMBlocks > t.MaxRegisterBlocks {
		return fmt.Sprintf("%s needs %d SRAM blocks in one register; a %s register spans at most %d", o.Name, o.SRAMBlocks, t.Name, t.MaxRegisterBlocks)
	}
	return fmt.Sprintf("%s needs %s in one stage; a %s stage has %s", o.Name, strings.Join(needs, " and "), t.Name, strings.Join(has, " and "))
}

// Overrun is one resource a spec needs more of than its budget allows.
type Overrun struct {
	Resource string `json:"resource"`
	Needs    int    `json:"needs"`
	Budget   int    `json:"budget"`
	// Message is the full diagnostic line.
	Message string `json:"message"`
}

// BudgetError lists every resource a spec is over; it wraps ErrOverBudget.
type BudgetError struct {
	Spec    string
	Target  string
	Overrun []Overrun
}

func (e *BudgetError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "spec %s is over its budget on %s:", e.Spec, e.Target)
	for _, o := range e.Overrun {
		b.WriteString("\n  ")
		b.WriteString(o.Message)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrOverBudget) hold.
func (e *BudgetError) Unwrap() error { return ErrOverBudget }

// Check refuses a spec whose estimated use exceeds its budget, naming each
// resource that is over and by how much.
func Check(s *spec.Spec) error {
	u, err := Estimate(s)
	if err != nil {
		return err
	}
	if over := overruns(s.Target, s.Budget, u); len(over) > 0 {
		return &BudgetError{Spec: s.Name, Target: s.Target.Name, Overrun: over}
	}
	return nil
}

func overruns(t *spec.Target, b spec.Budget, u *Usage) []Overrun {
	var out []Overrun
	add := func(res, unit string, needs, budget, total int, hint string) {
		if needs <= budget {
			return
		}
		share := fmt.Sprintf("%s%% of %s's %d", pct(budget, total), t.Name, total)
		out = append(out, Overrun{Resource: res, Needs: needs, Budget: budget,
			Message: fmt.Sprintf("%s: needs %d %s, budget %d (%s): %d over; %s", res, needs, unit, budget, share, needs-budget, hint)})
	}
	add("sram", "blocks", u.SRAMBlocks, b.SRAMBlocks, t.Stages*t.SRAMBlocksPerStage,
		"lower directory.index_bits or levels, or raise budget.sram")
	add("map_ram", "blocks", u.MapRAMBlocks, b.MapRAMBlocks, t.Stages*t.MapRAMBlocksPerStage,
		"lower directory.index_bits or levels, or raise budget.map_ram")
	add("stateful_alus", "ALUs", u.StatefulALUs, b.StatefulALUs, t.Stages*t.StatefulALUsPerStage,
		"lower directory.levels, or raise budget.stateful_alus")
	add("hash_units", "units", u.HashUnits, b.HashUnits, t.Stages*t.HashUnitsPerStage,
		"lower directory.levels, or raise budget.hash_units")
	stageBudget := min(b.Stages, t.Stages)
	if u.Stages > stageBudget {
		out = append(out, Overrun{Resource: "stages", Needs: u.Stages, Budget: stageBudget,
			Message: fmt.Sprintf("stages: needs %d stages, budget %d (%s has %d): %d over; lower directory.levels, or raise budget.stages",
				u.Stages, stageBudget, t.Name, t.Stages, u.Stages-stageBudget)})
	}
	for _, p := range u.Unplaceable {
		out = append(out, Overrun{Resource: "stage_memory",
			Message: "stage_memory: " + p + "; lower directory.index_bits"})
	}
	return out
}

// pct formats part/total as a percentage with at most one decimal.
func pct(part, total int) string {
	if total == 0 {
		return "0"
	}
	return strconv.FormatFloat(math.Round(float64(part)*1000/float64(total))/10, 'f', -1, 64)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
