package p4

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/gen/plan"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

func generate(t testing.TB, s *spec.Spec) genfile.Files {
	t.Helper()
	files, err := Generate(s, genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatalf("Generate(%s) = %v", s.Name, err)
	}
	return files
}

// TestGolden: generated/p4 is the golden copy of the default spec.
func TestGolden(t *testing.T) {
	files := generate(t, spectest.Default(t))
	if got, want := files.Names(), []string{"p4/capybara.p4", "p4/capybara.p4info.txtpb", "p4/headers.p4", "p4/p4info.go"}; !cmp.Equal(got, want) {
		t.Fatalf("Generate files = %v, want %v", got, want)
	}
	for _, name := range files.Names() {
		if !genfile.IsGenerated(files[name]) {
			t.Errorf("%s lacks the generated-file marker", name)
		}
	}
	gentest.MatchCommitted(t, files)
}

func TestDeterministic(t *testing.T) {
	s := spectest.Default(t)
	a, b := generate(t, s), generate(t, s)
	if !cmp.Equal(a, b) {
		t.Fatal("two runs of Generate differ")
	}
}

func TestNormalizeTextRemovesRandomSpaces(t *testing.T) {
	in := "a:  1\nb  {\n  c:  \"x:  y\"\n  d: 2\n}\n"
	want := "a: 1\nb {\n  c: \"x:  y\"\n  d: 2\n}\n"
	if got := string(normalizeText([]byte(in))); got != want {
		t.Errorf("normalizeText(%q) = %q, want %q", in, got, want)
	}
}

func TestP4InfoParsesBack(t *testing.T) {
	files := generate(t, spectest.Default(t))
	info := parseP4Info(t, files["p4/capybara.p4info.txtpb"])
	if info.PkgInfo.GetName() != "capybara" || info.PkgInfo.GetArch() != "tna" || info.PkgInfo.GetVersion() != spectest.Default(t).Fingerprint {
		t.Errorf("pkg_info = %v, want capybara, tna, the fingerprint", info.PkgInfo)
	}
	if strings.Contains(string(files["p4/capybara.p4info.txtpb"]), ":  ") {
		t.Error("p4info text has a doubled space after a field name")
	}
}

// TestStaleAckCounterCell: the program counts stale PREPARE_MIG_ACKs in
// cell 0 of drops, the cell no drop reason uses, and the p4info says so;
// the counter keeps one cell per drop reason plus that one, as the plan
// prices it.
func TestStaleAckCounterCell(t *testing.T) {
	files := generate(t, spectest.Default(t))
	prog := flat(string(files["p4/capybara.p4"]))
	for _, want := range []string{
		"const drop_reason_t DROP_NONE = 8w0;",
		"const drop_reason_t STALE_ACK_CELL = DROP_NONE;",
		"ig_md.drop_reason = STALE_ACK_CELL; ig_md.count_drop = 1w1;",
		"action count_drop() { drops.count(ig_md.drop_reason); }",
	} {
		if !strings.Contains(prog, want) {
			t.Errorf("program lacks %q", want)
		}
	}
	// Two places count (a Tofino counter is used by one table, or by
	// mutually exclusive ones): ipv4_host's miss and count_drop.
	if n := strings.Count(prog, "drops.count("); n != 2 {
		t.Errorf("drops is counted in %d places, want 2 (no_route, count_drop)", n)
	}
	if n := strings.Count(prog, "count_drop();"); n != 1 {
		t.Errorf("count_drop is applied in %d places, want 1", n)
	}
	// No drop reason takes cell 0.
	for _, r := range dropReasons {
		if r.Value == 0 {
			t.Errorf("drop reason %s uses cell 0, which counts stale ACKs", r.Name)
		}
	}
	info := parseP4Info(t, files["p4/capybara.p4info.txtpb"])
	if len(info.Counters) != 1 {
		t.Fatalf("p4info has %d counters, want 1 (drops)", len(info.Counters))
	}
	c := info.Counters[0]
	if c.Preamble.Alias != "drops" || c.Size != plan.DropCounterCells || c.Size != int64(len(dropReasons)+1) {
		t.Errorf("p4info counter %s of %d cells, want drops of %d", c.Preamble.Alias, c.Size, plan.DropCounterCells)
	}
	if doc := c.Preamble.GetDoc().GetBrief(); !strings.Contains(doc, "cell 0 (DROP_NONE) counts stale PREPARE_MIG_ACKs") {
		t.Errorf("p4info drops doc %q does not say what cell 0 counts", doc)
	}
}

func parseP4Info(t testing.TB, b []byte) *p4configv1.P4Info {
	t.Helper()
	info := &p4configv1.P4Info{}
	if err := prototext.Unmarshal(b, info); err != nil {
		t.Fatalf("p4info does not parse: %v", err)
	}
	return info
}

// stripComments removes // and /* */ comments and string literals, so the
// structural checks see only code.
func stripComments(src string) string {
	var b strings.Builder
	for i := 0; i < len(src); i++ {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			i += end + 3
		case src[i] == '"':
			j := strings.IndexByte(src[i+1:], '"')
			if j < 0 {
				return b.String()
			}
			b.WriteString(`""`)
			i += j + 1
		default:
			b.WriteByte(src[i])
		}
	}
	return b.String()
}

func checkBalanced(t *testing.T, name, src string) {
	t.Helper()
	code := stripComments(src)
	var stack []rune
	line := 1
	pairs := map[rune]rune{')': '(', '}': '{', ']': '['}
	for _, r := range code {
		switch r {
		case '\n':
			line++
		case '(', '{', '[':
			stack = append(stack, r)
		case ')', '}', ']':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				t.Fatalf("%s:%d: unbalanced %q", name, line, r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("%s: %d unclosed delimiters at the end", name, len(stack))
	}
	// #if/#endif and include guards pair up too.
	opens := len(regexp.MustCompile(`(?m)^#if`).FindAllString(code, -1))
	closes := len(regexp.MustCompile(`(?m)^#endif`).FindAllString(code, -1))
	if opens != closes {
		t.Fatalf("%s: %d #if/#ifndef, %d #endif", name, opens, closes)
	}
}

var (
	declRE      = regexp.MustCompile(`(?m)\b(?:Register|RegisterAction|Counter|Hash|CRCPolynomial)<[^;=]*?>\([^;=]*?\)\s+(\w+)\s*[;=]`)
	tableRE     = regexp.MustCompile(`\btable\s+(\w+)\s*\{`)
	actionRE    = regexp.MustCompile(`\baction\s+(\w+)\s*\(`)
	stateRE     = regexp.MustCompile(`\bstate\s+(\w+)\s*\{`)
	useRE       = regexp.MustCompile(`\b(\w+)\.(execute|apply|get|count)\(`)
	transRE     = regexp.MustCompile(`\btransition\s+(\w+)\s*;`)
	selectRE    = regexp.MustCompile(`(?s)select\((?:[^()]|\([^()]*\))*\)\s*\{(.*?)\n\s*\}`)
	selectArmRE = regexp.MustCompile(`(?m)^\s*[^:\n]+?\s:\s(\w+);`)
	tableActRE  = regexp.MustCompile(`actions\s*=\s*\{([^}]*)\}`)
	constRE     = regexp.MustCompile(`\bconst\s+[\w<>]+\s+([A-Z][A-Z0-9_]*)\s*=`)
	upperRE     = regexp.MustCompile(`\b([A-Z][A-Z0-9_]{2,})\b`)
	mdUseRE     = regexp.MustCompile(`\big_md\.(\w+)`)
	hdrUseRE    = regexp.MustCompile(`\bhdr\.(\w+)\.(\w+)`)
	structRE    = regexp.MustCompile(`(?s)\b(?:struct|header)\s+(\w+)\s*\{(.*?)\}`)
	memberRE    = regexp.MustCompile(`(?m)^\s*[\w<>]+\s+(\w+);`)
)

// tnaNames are names the program takes from tna.p4/t2na.p4.
var tnaNames = map[string]bool{"PORT_METADATA_SIZE": true, "PARSER_ERROR_OK": true, "CUSTOM": true, "PACKETS": true}

// checkDeclared checks that every object, state, constant, metadata field
// and header field the program uses is declared.
func checkDeclared(t *testing.T, files genfile.Files, program string) {
	t.Helper()
	prog := stripComments(string(files[program]))
	hdrs := stripComments(string(files["p4/headers.p4"]))
	all := hdrs + prog
	declared := map[string]bool{}
	for _, re := range []*regexp.Regexp{declRE, tableRE, actionRE} {
		for _, m := range re.FindAllStringSubmatch(prog, -1) {
			if declared[m[1]] {
				t.Errorf("%s is declared twice", m[1])
			}
			declared[m[1]] = true
		}
	}
	for _, m := range useRE.FindAllStringSubmatch(prog, -1) {
		if m[1] == "pkt" || m[1] == "hdr" {
			continue
		}
		if !declared[m[1]] && !strings.HasSuffix(m[1], "_csum") {
			t.Errorf("%s.%s() uses an undeclared object", m[1], m[2])
		}
	}
	for _, m := range tableActRE.FindAllStringSubmatch(prog, -1) {
		for _, a := range strings.Split(m[1], ";") {
			f := strings.Fields(a)
			if len(f) == 0 {
				continue
			}
			if name := f[len(f)-1]; !declared[name] {
				t.Errorf("a table lists undeclared action %s", name)
			}
		}
	}
	states := map[string]bool{"accept": true, "reject": true}
	for _, m := range stateRE.FindAllStringSubmatch(prog, -1) {
		states[m[1]] = true
	}
	targets := transRE.FindAllStringSubmatch(prog, -1)
	for _, sel := range selectRE.FindAllStringSubmatch(prog, -1) {
		targets = append(targets, selectArmRE.FindAllStringSubmatch(sel[1], -1)...)
	}
	if len(targets) < 10 {
		t.Errorf("found only %d parser transitions", len(targets))
	}
	for _, m := range targets {
		if !states[m[1]] {
			t.Errorf("transition to undeclared state %s", m[1])
		}
	}
	consts := map[string]bool{}
	for _, m := range constRE.FindAllStringSubmatch(all, -1) {
		consts[m[1]] = true
	}
	for _, m := range upperRE.FindAllStringSubmatch(all, -1) {
		if !consts[m[1]] && !tnaNames[m[1]] && !strings.HasPrefix(m[1], "_") && !strings.HasPrefix(m[1], "__") {
			t.Errorf("constant %s is not declared", m[1])
		}
	}
	types := map[string]map[string]bool{}
	for _, m := range structRE.FindAllStringSubmatch(all, -1) {
		types[m[1]] = map[string]bool{}
		for _, f := range memberRE.FindAllStringSubmatch(m[2], -1) {
			types[m[1]][f[1]] = true
		}
	}
	// header_t maps instance -> header type.
	instType := map[string]string{}
	for _, m := range regexp.MustCompile(`(?s)struct header_t\s*\{(.*?)\}`).FindAllStringSubmatch(hdrs, -1) {
		for _, f := range regexp.MustCompile(`(?m)^\s*(\w+)\s+(\w+);`).FindAllStringSubmatch(m[1], -1) {
			instType[f[2]] = f[1]
		}
	}
	for _, m := range mdUseRE.FindAllStringSubmatch(prog, -1) {
		if !types["ingress_metadata_t"][m[1]] {
			t.Errorf("ig_md.%s is not a field of ingress_metadata_t", m[1])
		}
	}
	for _, m := range hdrUseRE.FindAllStringSubmatch(prog, -1) {
		if m[2] == "isValid" || m[2] == "setValid" || m[2] == "setInvalid" {
			continue
		}
		typ, ok := instType[m[1]]
		if !ok || !types[typ][m[2]] {
			t.Errorf("hdr.%s.%s is not a declared header field", m[1], m[2])
		}
	}
}

var idRE = regexp.MustCompile(`@id\((0x[0-9A-Fa-f]+)\)\s*(?:@\w+\s*)*(?:(?:table|action)\s+(\w+)|(?:Register|Counter)<[^;]*?>\([^;]*?\)\s+(\w+)\s*;)`)

// p4IDs returns each annotated object's local name and @id value.
func p4IDs(t *testing.T, src string) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	for _, m := range idRE.FindAllStringSubmatch(src, -1) {
		v, err := strconv.ParseUint(m[1][2:], 16, 32)
		if err != nil {
			t.Fatal(err)
		}
		name := m[2] + m[3]
		if _, dup := out[name]; dup {
			t.Errorf("%s has two @id annotations", name)
		}
		out[name] = uint32(v)
	}
	if n := strings.Count(src, "@id("); n != len(out) {
		t.Errorf("%d @id annotations, %d matched to a declaration", n, len(out))
	}
	return out
}

// checkIDs compares the P4's @ids with the p4info: every table and action
// is annotated with its p4info id, and every register and counter has no
// @id (bf-p4c ignores it) and the id bf-p4c computes from its name.
func checkIDs(t *testing.T, src string, info *p4configv1.P4Info) {
	t.Helper()
	annotated := p4IDs(t, src)
	seen := map[uint32]string{}
	check := func(pre *p4configv1.Preamble, prefix p4configv1.P4Ids_Prefix) {
		local := strings.TrimPrefix(pre.Name, ingress+".")
		if pre.Id>>24 != uint32(prefix) {
			t.Errorf("%s: p4info id %#x lacks prefix %#x", pre.Name, pre.Id, uint32(prefix))
		}
		if other, dup := seen[pre.Id]; dup {
			t.Errorf("%s and %s share id %#x", pre.Name, other, pre.Id)
		}
		seen[pre.Id] = pre.Name
		at, ok := annotated[local]
		switch {
		case prefix == p4configv1.P4Ids_REGISTER || prefix == p4configv1.P4Ids_COUNTER:
			if ok {
				t.Errorf("%s: an extern with an @id, which bf-p4c ignores", pre.Name)
			}
			if want := uint32(prefix)<<24 | jenkinsOneAtATime("pipe."+pre.Name)&0xFFFFFF; pre.Id != want {
				t.Errorf("%s: p4info id %#x, bf-p4c's is %#x", pre.Name, pre.Id, want)
			}
		case !ok:
			t.Errorf("%s is in the p4info but has no @id in the P4", pre.Name)
		case at != pre.Id:
			t.Errorf("%s: @id %#x, p4info id %#x", pre.Name, at, pre.Id)
		}
		delete(annotated, local)
	}
	for _, x := range info.Tables {
		check(x.Preamble, p4configv1.P4Ids_TABLE)
	}
	for _, x := range info.Actions {
		check(x.Preamble, p4configv1.P4Ids_ACTION)
	}
	for _, x := range info.Registers {
		check(x.Preamble, p4configv1.P4Ids_REGISTER)
	}
	for _, x := range info.Counters {
		check(x.Preamble, p4configv1.P4Ids_COUNTER)
	}
	for name := range annotated {
		t.Errorf("%s has an @id but is not in the p4info", name)
	}
	// Table action refs point at actions of the p4info.
	actions := map[uint32]bool{}
	for _, a := range info.Actions {
		actions[a.Preamble.Id] = true
	}
	for _, tb := range info.Tables {
		for _, r := range tb.ActionRefs {
			if !actions[r.Id] {
				t.Errorf("table %s refers to unknown action id %#x", tb.Preamble.Name, r.Id)
			}
		}
	}
}

func TestProgramStructure(t *testing.T) {
	files := generate(t, spectest.Default(t))
	for _, name := range []string{"p4/capybara.p4", "p4/headers.p4"} {
		checkBalanced(t, name, string(files[name]))
	}
	checkDeclared(t, files, "p4/capybara.p4")
	prog := string(files["p4/capybara.p4"])
	for _, want := range []string{
		"#if __TARGET_TOFINO__ == 2\n#include <t2na.p4>\n#else\n#include <tna.p4>\n#endif",
		"inout ingress_intrinsic_metadata_for_tm_t ig_tm_md)",
		"Switch(pipe) main;",
		`@pkginfo(name="capybara", version="` + spectest.Default(t).Fingerprint + `")`,
		"min_workload_heartbeat",
	} {
		if !strings.Contains(prog, want) {
			t.Errorf("program lacks %q", want)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(prog), "Switch(pipe) main;") {
		t.Error("program does not end with Switch(pipe) main;")
	}
	// Every RegisterAction says in one comment what it returns.
	for _, m := range regexp.MustCompile(`RegisterAction<[^>]*>\(\w+\) (\w+) = \{\n\s*// (\w+)`).FindAllStringSubmatch(prog, -1) {
		if m[2] != "Returns" {
			t.Errorf("RegisterAction %s's comment does not say what it returns", m[1])
		}
	}
	if n, c := strings.Count(prog, "RegisterAction<"), strings.Count(prog, "        // Returns "); n != c {
		t.Errorf("%d RegisterActions, %d Returns comments", n, c)
	}
	info := parseP4Info(t, files["p4/capybara.p4info.txtpb"])
	checkIDs(t, prog, info)
}

// crcRE matches a level's polynomial: width, coefficient, reversed, init, xor.
var crcRE = regexp.MustCompile(`CRCPolynomial<bit<(\d+)>>\((\d+)w0x([0-9A-F]+), (true|false), false, false, \d+w0x([0-9A-F]+), \d+w0x([0-9A-F]+)\) dir(\d+)_poly;`)

func TestThreeLevelsFourteenBits(t *testing.T) {
	s := spectest.Edit(t,
		"index_bits: 16", "index_bits: 14",
		"    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}\n",
		"    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}\n"+
			"    - hash: {name: crc32c, width: 32, poly: 0x1EDC6F41, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}\n",
		"udp_port: 7071", "udp_port: 9099",
		"      - {name: heartbeat_response, value: 13,", "      - {name: drain, value: 14, doc: \"Stop sending new connections here.\"}\n      - {name: heartbeat_response, value: 13,",
		"  - name: heartbeat_response\n", "  - name: drain\n    stage: drain\n    payload:\n      - {name: deadline_ms, bits: 16}\n      - {name: pad, bits: 16, reserved: true}\n  - name: heartbeat_response\n",
	)
	files := generate(t, s)
	prog := string(files["p4/capybara.p4"])
	hdrs := string(files["p4/headers.p4"])
	checkBalanced(t, "capybara.p4", prog)
	checkDeclared(t, files, "p4/capybara.p4")

	// The Go contract names every level's registers, as the p4info does.
	contract := string(files["p4/p4info.go"])
	for _, want := range []string{"Levels = 3", `"SwitchIngress.dir2_key"}`, `"SwitchIngress.dir2_target"}`, `"SwitchIngress.dir2_origin"}`, `"SwitchIngress.dir2_port"}`} {
		if !strings.Contains(contract, want) {
			t.Errorf("p4/p4info.go lacks %s", want)
		}
	}
	for reg, n := range map[string]int{"dir_key_t": 3, "bit<32>": 6, "bit<16>": 3} { // key; target and origin; port
		if got := strings.Count(prog, "Register<"+reg+", bit<14>>(16384, "); got != n {
			t.Errorf("%d registers Register<%s, bit<14>>(16384, ...), want %d", got, reg, n)
		}
	}
	if n := strings.Count(prog, "Hash<bit<14>>(HashAlgorithm_t.CUSTOM"); n != 3 {
		t.Errorf("%d 14-bit hashes, want 3", n)
	}
	polys := crcRE.FindAllStringSubmatch(prog, -1)
	if len(polys) != 3 {
		t.Fatalf("%d CRC polynomials, want 3", len(polys))
	}
	for _, m := range polys {
		lvl, _ := strconv.Atoi(m[7])
		h := s.Directory.Levels[lvl].Hash
		got := fmt.Sprintf("%s %s %s %s %s", m[1], strings.ToLower(m[3]), m[4], strings.ToLower(m[5]), strings.ToLower(m[6]))
		want := fmt.Sprintf("%d %0*x %t %0*x %0*x", h.Width, h.Width/4, h.Poly, h.Reversed, h.Width/4, h.Init, h.Width/4, h.XorOut)
		if got != want || m[2] != m[1] {
			t.Errorf("level %d CRC in P4 = %s, spec %s", lvl, got, want)
		}
	}
	if !strings.Contains(hdrs, "const bit<16> TCPMIG_UDP_PORT = 16w9099;") {
		t.Error("headers.p4 lacks the new UDP port")
	}
	if !strings.Contains(hdrs, "const stage_t STAGE_DRAIN = 4w14;") || !strings.Contains(hdrs, "header drain_h {\n    bit<16> deadline_ms;") {
		t.Error("headers.p4 lacks the new stage or message payload")
	}
	if !strings.Contains(prog, "STAGE_DRAIN : parse_drain;") {
		t.Error("the parser does not extract the new message's payload")
	}

	info := parseP4Info(t, files["p4/capybara.p4info.txtpb"])
	checkIDs(t, prog, info)
	regs := 0
	for _, r := range info.Registers {
		if strings.HasPrefix(r.Preamble.Alias, "dir") {
			regs++
			if r.Size != 16384 {
				t.Errorf("p4info register %s size %d, want 16384", r.Preamble.Name, r.Size)
			}
		}
	}
	hashTables := 0
	for _, tb := range info.Tables {
		if strings.HasSuffix(tb.Preamble.Alias, "_hash_tbl") {
			hashTables++
		}
	}
	if regs != 12 || hashTables != 3 {
		t.Errorf("p4info has %d directory registers and %d hash tables, want 12 (key, target, origin, port per level) and 3", regs, hashTables)
	}
}

func TestTofino2Arch(t *testing.T) {
	s := spectest.Edit(t, "target: tofino1", "target: tofino2")
	files := generate(t, s)
	info := parseP4Info(t, files["p4/capybara.p4info.txtpb"])
	if info.PkgInfo.Arch != "t2na" {
		t.Errorf("arch = %q, want t2na", info.PkgInfo.Arch)
	}
}

func TestUnsupportedSpecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*spec.Spec)
		want string
	}{
		{"wrapping checksum", func(s *spec.Spec) { s.Transport.Checksum = "wrapping16" }, `transport.checksum "wrapping16"`},
		{"keyword name", func(s *spec.Spec) { s.Name = "table" }, `name "table" is a P4 keyword`},
		{"narrow crc", func(s *spec.Spec) { s.Directory.Levels[0].Hash = &spec.CRC{Name: "crc8", Width: 8, Poly: 7} },
			"directory.levels[0].hash crc8 is 8 bits, narrower than index_bits 16"},
		{"no levels", func(s *spec.Spec) { s.Directory.Levels = nil }, "directory.levels is empty"},
		{"wide workload", func(s *spec.Spec) { s.Workload.Bits = 48 }, "workload.bits 48"},
		{"other workload rule", func(s *spec.Spec) { s.Workload.Update = "smaller_only" }, `workload.update "smaller_only"`},
		{"delete on syn", func(s *spec.Spec) { s.Directory.DeleteOn = []string{"syn"} }, `delete_on "syn"`},
		{"release of a handled message", func(s *spec.Spec) { s.Directory.Release = "heartbeat_update" }, "directory.release heartbeat_update is a message the switch already acts on"},
		{"release of no message", func(s *spec.Spec) { s.Directory.Release = "bye" }, `no message "bye"`},
		{"release with a payload", func(s *spec.Spec) { s.Directory.Release = "conn_state" }, "directory.release conn_state must be a header-only message from: server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spectest.Default(t)
			tc.edit(s)
			_, err := Generate(s, genfile.Options{})
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Generate = %v, want ErrUnsupported mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAssignIDsResolvesCollisions(t *testing.T) {
	// Find two names whose hashes collide in the low 24 bits.
	seen := map[uint32]string{}
	var a, b string
	for i := 0; a == ""; i++ {
		n := fmt.Sprintf("SwitchIngress.t%d", i)
		ids, err := assignIDs([]named{{p4configv1.P4Ids_TABLE, n}})
		if err != nil {
			t.Fatal(err)
		}
		low := ids.byName[n] & 0xFFFFFF
		if prev, ok := seen[low]; ok {
			a, b = prev, n
		}
		seen[low] = n
	}
	one, err := assignIDs([]named{{p4configv1.P4Ids_TABLE, a}, {p4configv1.P4Ids_ACTION, b}})
	if err != nil {
		t.Fatal(err)
	}
	two, err := assignIDs([]named{{p4configv1.P4Ids_ACTION, b}, {p4configv1.P4Ids_TABLE, a}})
	if err != nil {
		t.Fatal(err)
	}
	if one.byName[a]&0xFFFFFF == one.byName[b]&0xFFFFFF {
		t.Errorf("%s and %s still share low bits %#x", a, b, one.byName[a]&0xFFFFFF)
	}
	if !cmp.Equal(one.byName, two.byName) {
		t.Errorf("ids depend on input order: %v vs %v", one.byName, two.byName)
	}
	if _, err := assignIDs([]named{{p4configv1.P4Ids_TABLE, a}, {p4configv1.P4Ids_ACTION, a}}); !errors.Is(err, ErrIDs) {
		t.Errorf("assignIDs(duplicate name) = %v, want ErrIDs", err)
	}
}

func TestUnknownIDInTemplateFails(t *testing.T) {
	ids, err := assignIDs([]named{{p4configv1.P4Ids_TABLE, ingress + ".known"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := funcMap(ids)["id"].(func(string) (string, error))("unknown"); !errors.Is(err, ErrIDs) {
		t.Errorf("id(unknown) = %v, want ErrIDs", err)
	}
}

func TestWordSpan(t *testing.T) {
	fs := []field{
		{Expr: "a", off: 0, Bits: 12}, {Expr: "b", off: 12, Bits: 4},
		{Expr: "c", off: 16, Bits: 8}, {Expr: "d", off: 24, Bits: 16}, {Expr: "e", off: 40, Bits: 8},
	}
	got, err := wordSpan(fs, "b")
	if err != nil || !cmp.Equal(got, []string{"a", "b"}) {
		t.Errorf("wordSpan(b) = %v, %v, want [a b]", got, err)
	}
	// d straddles two words, so c and e join it.
	got, err = wordSpan(fs, "c")
	if err != nil || !cmp.Equal(got, []string{"c", "d", "e"}) {
		t.Errorf("wordSpan(c) = %v, %v, want [c d e]", got, err)
	}
	if _, err := wordSpan(fs[:4], "d"); err == nil {
		t.Error("wordSpan over a half-covered word succeeded")
	}
}

// FuzzNormalizeText checks that normalising never panics, is idempotent,
// and leaves text without doubled spaces after a field name alone.
func FuzzNormalizeText(f *testing.F) {
	f.Add([]byte("a:  1\nb  {\n  c: 2\n}\n"))
	f.Add([]byte("tables: {\n  preamble: {\n    name:  \"x:  y\"\n  }\n}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		once := normalizeText(in)
		if twice := normalizeText(once); string(twice) != string(once) {
			t.Fatalf("normalizeText is not idempotent on %q: %q then %q", in, once, twice)
		}
		if !strings.Contains(string(in), "  ") && string(once) != string(in) {
			t.Fatalf("normalizeText changed %q to %q", in, once)
		}
	})
}

// TestPlanPricesTheProgramsState keeps gen/plan honest: the registers and
// counters it prices are exactly the p4info's, with the same sizes.
func TestPlanPricesTheProgramsState(t *testing.T) {
	s := spectest.Default(t)
	info := parseP4Info(t, generate(t, s)["p4/capybara.p4info.txtpb"])
	u, err := plan.Estimate(s)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, r := range info.Registers {
		want["register "+r.Preamble.Alias] = int(r.Size)
	}
	for _, c := range info.Counters {
		want["counter "+c.Preamble.Alias] = int(c.Size)
	}
	got := map[string]int{}
	for _, o := range u.Objects {
		if o.Kind == "register" || o.Kind == "counter" {
			got[o.Kind+" "+o.Name] = o.Cells
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan objects differ from the p4info (-p4info +plan):\n%s", diff)
	}
}

// registerActionRE matches a RegisterAction with its body, up to the
// closing "    };" at the declaration's indentation.
var registerActionRE = regexp.MustCompile(`(?s)RegisterAction<[^\n]*?>\(\w+\) (\w+) = \{\n(.*?)\n    \};`)

// comparisonRE matches the comparison operators a condition unit
// evaluates (the body holds no type arguments, so < and > are compares).
var comparisonRE = regexp.MustCompile(`==|!=|<=|>=|<|>`)

// comparisons counts the comparisons in the if conditions of a
// RegisterAction body: each needs one of the stateful ALU's condition
// units.
func comparisons(body string) int {
	n := 0
	for _, cond := range regexp.MustCompile(`\bif \((.*?)\) \{`).FindAllStringSubmatch(body, -1) {
		n += len(comparisonRE.FindAllString(cond[1], -1))
	}
	return n
}

// TestRegisterActionsFitTofino1SALU: a Tofino-1 stateful ALU has two
// condition units, so bf-p4c refuses a RegisterAction that needs three
// comparisons. Each one must need at most two and say how many.
func TestRegisterActionsFitTofino1SALU(t *testing.T) {
	for _, s := range []*spec.Spec{spectest.Default(t), spectest.Edit(t, "index_bits: 16", "index_bits: 14")} {
		prog := string(generate(t, s)["p4/capybara.p4"])
		actions := registerActionRE.FindAllStringSubmatch(prog, -1)
		if n := strings.Count(prog, "RegisterAction<"); len(actions) != n || n == 0 {
			t.Fatalf("matched %d RegisterAction bodies of %d", len(actions), n)
		}
		said := regexp.MustCompile(`Comparisons: (\d+)\.`)
		for _, a := range actions {
			name, body := a[1], a[2]
			n := comparisons(body)
			if n > 2 {
				t.Errorf("RegisterAction %s needs %d comparisons; a Tofino-1 stateful ALU has 2 condition units", name, n)
			}
			m := said.FindStringSubmatch(body)
			if m == nil {
				t.Errorf("RegisterAction %s's comment does not give its number of comparisons", name)
			} else if m[1] != strconv.Itoa(n) {
				t.Errorf("RegisterAction %s's comment says %s comparisons, its body makes %d", name, m[1], n)
			}
		}
	}
}

// TestComparisonsCounted keeps the counter honest on the shapes it must
// catch, including the old three-comparison insert.
func TestComparisonsCounted(t *testing.T) {
	for _, c := range []struct {
		body string
		want int
	}{
		{"if (cell.port == 0 || (cell.ip == ig_md.client_ip && cell.port == ig_md.client_vport)) {", 3},
		{"if (cell.holder_ip == 0 || cell.holder_ip == hdr.ipv4.src_addr || ig_md.workload < cell.load) {", 3},
		{"if (a == b) {\n x = 1;\n} else if (c != d) {", 2},
		{"held = cell.load;", 0},
	} {
		if got := comparisons(c.body); got != c.want {
			t.Errorf("comparisons(%q) = %d, want %d", c.body, got, c.want)
		}
	}
}

// actionRegisterRE matches a RegisterAction's register argument.
var actionRegisterRE = regexp.MustCompile(`RegisterAction<[^\n]*?>\((\w+)\) \w+ = \{`)

// bf-p4c attaches at most four RegisterActions to one Register (a stateful
// ALU holds four instructions: p4c backends/tofino bf-p4c
// midend/register_read_write.cpp CheckRegisterActions, and
// specs/device.cpp MaxInstructions for Tofino and JBay).
func TestAtMostFourRegisterActions(t *testing.T) {
	for _, s := range []*spec.Spec{spectest.Default(t), spectest.Edit(t, "index_bits: 16", "index_bits: 14")} {
		prog := string(generate(t, s)["p4/capybara.p4"])
		per := map[string]int{}
		for _, m := range actionRegisterRE.FindAllStringSubmatch(prog, -1) {
			per[m[1]]++
		}
		if len(per) == 0 {
			t.Fatal("no RegisterActions found: the pattern no longer matches the program")
		}
		for reg, n := range per {
			if n > 4 {
				t.Errorf("register %s has %d RegisterActions; bf-p4c allows 4", reg, n)
			}
		}
	}
}

// The extern ids are bf-p4c's: the values below are from its p4info for
// the default spec (p4c's open-source Tofino back end, 34b86e9bac, with
// --p4runtime-force-std-externs), and jenkinsOneAtATime is p4c's hash
// (Wikipedia's test vector).
func TestExternIDsAreBfP4cs(t *testing.T) {
	if got := jenkinsOneAtATime("a"); got != 0xca2e9442 {
		t.Fatalf("jenkinsOneAtATime(a) = %#x, want 0xca2e9442", got)
	}
	if got := jenkinsOneAtATime("The quick brown fox jumps over the lazy dog"); got != 0x519e91f5 {
		t.Fatalf("jenkinsOneAtATime(fox) = %#x, want 0x519e91f5", got)
	}
	d, err := newData(spectest.Default(t), genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := assignIDs(controlPlaneOf(d).named())
	if err != nil {
		t.Fatal(err)
	}
	// bf-p4c hashes an extern's name under the program's Pipeline instance.
	if src := string(generate(t, spectest.Default(t))["p4/capybara.p4"]); !strings.Contains(src, "Switch("+pipeInstance+") main;") {
		t.Fatalf("the program's Pipeline instance is not %q, which the extern ids are hashed under", pipeInstance)
	}
	for name, want := range map[string]uint32{
		"SwitchIngress.min_workload": 369153942, "SwitchIngress.dir0_key": 381113015, "SwitchIngress.dir1_port": 374613486,
		"SwitchIngress.dir0_target": 374246503, "SwitchIngress.dir1_origin": 378914263, "SwitchIngress.drops": 310003819,
		"SwitchIngress.port_role": 38641698, "SwitchIngress.mig_len_check": 32722462,
	} {
		if got, err := ids.id(name); err != nil || got != want {
			t.Errorf("%s: id %d (%v), bf-p4c's %d", name, got, err, want)
		}
	}
}
