package p4

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	model "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// The golden copy (generated/p4) only says that the program did not change. These checks say that every rule of gen/SWITCH.md is in the
// program, one rule each, so a template edit that drops a rule fails here
// whatever the goldens say. TestSwitchRulesCatchRemovals takes each rule
// out of a generated program and checks that its check fails.

// flat is generated P4 without comments, every run of white space one
// blank, so the checks match statements, not layout.
func flat(src string) string { return strings.Join(strings.Fields(stripComments(src)), " ") }

// block returns the body of the first block opened after head in code
// (between its { and the matching }), or "" when head is not there.
func block(code, head string) string {
	at := strings.Index(code, head)
	if at < 0 {
		return ""
	}
	open := strings.IndexByte(code[at+len(head)-1:], '{')
	if open < 0 {
		return ""
	}
	start := at + len(head) - 1 + open + 1
	depth := 1
	for i := start; i < len(code); i++ {
		switch code[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return strings.TrimSpace(code[start:i])
			}
		}
	}
	return ""
}

// rulesProgram is what a rule looks at: the flattened program and the
// blocks the rules live in.
type rulesProgram struct {
	s                                 *spec.Spec
	d                                 *data
	code, parser, ingress, apply, dep string
}

func newRulesProgram(s *spec.Spec, d *data, src string) rulesProgram {
	code := flat(src)
	p := rulesProgram{s: s, d: d, code: code}
	p.parser = block(code, "parser SwitchIngressParser(")
	p.ingress = block(code, "control SwitchIngress(")
	p.apply = block(p.ingress, " apply {")
	p.dep = block(code, "control SwitchIngressDeparser(")
	return p
}

// has reports the first snippet that scope lacks.
func has(where, scope string, snippets ...string) error {
	if scope == "" {
		return fmt.Errorf("%s not found", where)
	}
	for _, s := range snippets {
		if !strings.Contains(scope, s) {
			return fmt.Errorf("%s lacks %q", where, s)
		}
	}
	return nil
}

// state is the body of a parser state.
func (p rulesProgram) state(name string) string { return block(p.parser, "state "+name+" {") }

// action is the body of an ingress action.
func (p rulesProgram) action(name string) string { return block(p.ingress, "action "+name+"(") }

// regAction is the body of a RegisterAction's apply.
func (p rulesProgram) regAction(name string) string {
	return block(block(p.ingress, ") "+name+" = {"), "void apply(")
}

// perLevel runs f for every directory level.
func (p rulesProgram) perLevel(f func(l level) error) error {
	for _, l := range p.d.Levels {
		if err := f(l); err != nil {
			return fmt.Errorf("level %d: %w", l.N, err)
		}
	}
	return nil
}

// ordered checks that the snippets occur in scope in this order.
func ordered(where, scope string, snippets ...string) error {
	at := 0
	for _, s := range snippets {
		i := strings.Index(scope[at:], s)
		if i < 0 {
			return fmt.Errorf("%s lacks %q after offset %d (out of order or missing)", where, s, at)
		}
		at += i + len(s)
	}
	return nil
}

// preparedRE is the PREPARE's decision after the directory: the resend
// condition and arm, the reject condition and arm, and the steering arm.
var preparedRE = regexp.MustCompile(`\} else if \(ig_md\.dir_op == DIR_OP_PREPARE\) \{ if \(([^{}]*)\) \{ ([^{}]*) \} else if \(([^{}]*)\) \{ ([^{}]*) \} else \{ ([^{}]*) \} \}`)

// prepareBranch is the PREPARE's branch in the TCPMig section: it reads
// min_workload and sends the key to the directory.
func (p rulesProgram) prepareBranch() string {
	return fmt.Sprintf("} else if (%s == %s) { ig_md.least_loaded = min_workload_read.execute(0); ig_md.client_ip = %s; ig_md.client_port = %s; ig_md.dir_op = DIR_OP_PREPARE; }",
		p.d.Stage.Field, p.d.Stage.PrepareMig, p.d.KeyIP, p.d.KeyPort)
}

type switchRule struct {
	name  string
	check func(p rulesProgram) error
	// remove takes the rule out of a generated program (old, new pairs;
	// old must occur), for TestSwitchRulesCatchRemovals.
	remove [][2]string
}

var switchRules = []switchRule{
	{
		name: "drop reasons numbered as the Go model's DropReason",
		check: func(p rulesProgram) error {
			for r := model.DropNone; int(r) < model.NumDropReasons; r++ {
				want := fmt.Sprintf("const drop_reason_t DROP_%s = 8w%d;", strings.ToUpper(r.String()), r)
				if err := has("program", p.code, want); err != nil {
					return err
				}
			}
			return has("program", p.code, fmt.Sprintf("const bit<32> DROP_REASONS = 32w%d;", model.NumDropReasons),
				"Counter<bit<32>, drop_reason_t>(DROP_REASONS, CounterType_t.PACKETS) drops;")
		},
		remove: [][2]string{{"DROP_MALFORMED = 8w5", "DROP_MALFORMED = 8w6"}},
	},
	{
		name: "0. malformed: a parser error before the transport header drops, before the port role",
		check: func(p rulesProgram) error {
			return has("ingress apply", p.apply,
				"ig_md.drop_reason = DROP_NONE; if (ig_prsr_md.parser_err != PARSER_ERROR_OK && !hdr.tcp.isValid() && !hdr.udp.isValid()) { drop(DROP_MALFORMED); } else if (!port_role.apply().hit) {")
		},
		remove: [][2]string{{"drop(DROP_MALFORMED);", ""}},
	},
	{
		name: "1. port_role miss drops unknown_port",
		check: func(p rulesProgram) error {
			if err := has("table port_role", block(p.ingress, "table port_role {"),
				"key = { ig_intr_md.ingress_port : exact; }", "const default_action = miss();"); err != nil {
				return err
			}
			if err := has("action set_role", p.action("set_role"), "ig_md.role = role;"); err != nil {
				return err
			}
			return has("ingress apply", p.apply, "if (!port_role.apply().hit) { drop(DROP_UNKNOWN_PORT); } else if (!hdr.ipv4.isValid()) {")
		},
		remove: [][2]string{{"drop(DROP_UNKNOWN_PORT);", ""}},
	},
	{
		name: "2. not IPv4: l2_forward, flood on a miss or a group address",
		check: func(p rulesProgram) error {
			if err := has("action flood", p.action("flood"), "ig_tm_md.mcast_grp_a = 16w1; ig_tm_md.level2_exclusion_id = ig_intr_md.ingress_port;"); err != nil {
				return err
			}
			return has("ingress apply", p.apply,
				"} else if (!hdr.ipv4.isValid()) { if (hdr.ethernet.dst_addr[40:40] == 1w1) { flood(); } else if (!l2_forward.apply().hit) { flood(); } } else if (ig_md.tcpmig == 1w1) {")
		},
		remove: [][2]string{{"flood(); // broadcast or multicast", ""}},
	},
	{
		name: "3. IPv4 options or a fragment: no transport header, routed",
		check: func(p rulesProgram) error {
			if err := has("state parse_ipv4", p.state("parse_ipv4"),
				"transition select(hdr.ipv4.ihl, hdr.ipv4.flags[0:0], hdr.ipv4.frag_offset, hdr.ipv4.protocol) { (4w5, 1w0, 13w0, IP_PROTOCOLS_TCP) : parse_tcp; (4w5, 1w0, 13w0, IP_PROTOCOLS_UDP) : parse_udp; default : accept; }"); err != nil {
				return err
			}
			return has("ingress apply", p.apply, "} else { ig_md.route = 1w1; } if (ig_md.dir_op != DIR_OP_NONE) {")
		},
		remove: [][2]string{{"(4w5, 1w0, 13w0, IP_PROTOCOLS_TCP)", "(4w5, 1w0, _, IP_PROTOCOLS_TCP)"}},
	},
	{
		name: "4. TCPMig: the UDP port, a whole header and the magic",
		check: func(p rulesProgram) error {
			mig := p.d.TCPMig.Name
			if err := has("state parse_udp", p.state("parse_udp"),
				fmt.Sprintf("transition select(hdr.udp.dst_port) { %s_UDP_PORT : %s; default : accept; }", mig.Const(), mig.State())); err != nil {
				return err
			}
			// The magic by lookahead, before the extract; the stage in
			// the state that extracts the header, whose stage word's
			// checksum subtract sits between the extract and the
			// transition (rule 5).
			want := fmt.Sprintf("transition %s_stage;", mig.State())
			if len(p.d.Magic) > 0 {
				key := p.d.MagicLook.Value
				if !p.d.MagicLook.Full {
					key += " &&& " + p.d.MagicLook.Mask
				}
				want = fmt.Sprintf("transition select(pkt.lookahead<bit<%d>>()) { %s : %s_stage; default : accept; }", p.d.MagicLook.Bits, key, mig.State())
			}
			if err := has("state "+mig.State(), p.state(mig.State()), want); err != nil {
				return err
			}
			sub := "udp_csum.subtract({" + strings.Join(p.d.StageWord, ", ") + "}); "
			if err := has("state "+mig.State()+"_stage", p.state(mig.State()+"_stage"),
				fmt.Sprintf("pkt.extract(hdr.%s); %sig_md.tcpmig = 1w1; transition select(%s) {", mig, sub, p.d.Stage.Field)); err != nil {
				return err
			}
			if n := strings.Count(p.code, "ig_md.tcpmig = 1w1;"); n != 1 {
				return fmt.Errorf("ig_md.tcpmig is set in %d places, want 1 (after the magic)", n)
			}
			return has("state "+mig.State()+"_stage", p.state(mig.State()+"_stage"), "ig_md.tcpmig = 1w1;")
		},
		remove: [][2]string{{"TCPMIG_MAGIC : parse_tcpmig_stage;\n            default : accept;", "default : parse_tcpmig_stage;"}},
	},
	{
		name: "4. spoofed_control: TCPMig from a port that is not a server's is dropped first",
		check: func(p rulesProgram) error {
			return ordered("ingress apply", p.apply,
				"} else if (ig_md.tcpmig == 1w1) {",
				"if (ig_md.role != ROLE_SERVER) { drop(DROP_SPOOFED_CONTROL); } else if (ig_md.bad_tcpmig == 1w1",
				"} else if (hdr.tcp.isValid()) {")
		},
		remove: [][2]string{{"drop(DROP_SPOOFED_CONTROL);", ""}},
	},
	{
		name: "4. bad_tcpmig: unknown stage, UDP length below the stage's minimum, or the frame cut in the payload",
		check: func(p rulesProgram) error {
			mig := p.d.TCPMig.Name
			if err := has("state "+mig.State()+"_unknown_stage", p.state(mig.State()+"_unknown_stage"), "ig_md.bad_tcpmig = 1w1;"); err != nil {
				return err
			}
			sel := p.state(mig.State() + "_stage")
			if err := has("stage select", sel, "default : "+mig.State()+"_unknown_stage;"); err != nil {
				return err
			}
			for _, m := range p.d.Messages {
				if err := has("stage select", sel, fmt.Sprintf("%s : %s;", m.Stage, m.Name.State())); err != nil {
					return err
				}
				sm := p.s.MessageByName(string(m.Name))
				least := 8 + p.s.Header.Bytes + sm.PayloadBytes
				if err := has("state "+m.Name.State(), p.state(m.Name.State()), fmt.Sprintf("ig_md.mig_len = 16w%d;", least)); err != nil {
					return err
				}
			}
			if err := has("program", p.ingress, "action mig_len_check() { ig_md.mig_short = ig_md.mig_len |-| hdr.udp.length; }"); err != nil {
				return err
			}
			return ordered("ingress apply", p.apply,
				"} else if (ig_md.tcpmig == 1w1) { mig_len_tbl.apply();",
				"} else if (ig_md.bad_tcpmig == 1w1) { drop(DROP_BAD_TCPMIG); } else if (ig_md.mig_short != 16w0) { drop(DROP_BAD_TCPMIG); } else if (ig_prsr_md.parser_err != PARSER_ERROR_OK) { drop(DROP_BAD_TCPMIG); }")
		},
		remove: [][2]string{{"ig_md.mig_short = ig_md.mig_len |-| hdr.udp.length;", "ig_md.mig_short = 16w0;"}},
	},
	{
		name: "4. heartbeat: the holder's report or a smaller one takes min_workload",
		check: func(p rulesProgram) error {
			if err := has("program", p.ingress, "Register<min_workload_t, bit<1>>(1, {32w0, 32w0xFFFFFFFF}) min_workload;"); err != nil {
				return err
			}
			return has("RegisterAction min_workload_heartbeat", p.regAction("min_workload_heartbeat"),
				"if (cell.holder_ip == hdr.ipv4.src_addr || ig_md.workload < cell.load) { cell.holder_ip = hdr.ipv4.src_addr; cell.load = ig_md.workload; }")
		},
		remove: [][2]string{{"cell.holder_ip == hdr.ipv4.src_addr || ", ""}},
	},
	{
		name: "4. heartbeat: any other report ages the held load by workload.age_step, saturating",
		check: func(p rulesProgram) error {
			then := "cell.load = ig_md.workload; }"
			if p.d.AgeStep > 0 {
				// |+| saturates, as the model's clamp at EmptyLoad: a wrap
				// would make a silent holder the smallest again.
				then += fmt.Sprintf(" else { cell.load = cell.load |+| 32w%d; }", p.d.AgeStep)
			}
			return has("RegisterAction min_workload_heartbeat", p.regAction("min_workload_heartbeat"), then+" held = cell.load;")
		},
		remove: [][2]string{{"cell.load = cell.load |+| ", "cell.load = cell.load + "}},
	},
	{
		name: "4. heartbeat: the response with the minimum is reflected to the sender",
		check: func(p rulesProgram) error {
			st := p.d.Stage
			if err := has("action reply", p.action("reply"),
				"mac_addr_t mac = hdr.ethernet.src_addr; hdr.ethernet.src_addr = hdr.ethernet.dst_addr; hdr.ethernet.dst_addr = mac; "+
					"ipv4_addr_t ip = hdr.ipv4.src_addr; hdr.ipv4.src_addr = hdr.ipv4.dst_addr; hdr.ipv4.dst_addr = ip; "+
					"bit<16> port = hdr.udp.src_port; hdr.udp.src_port = hdr.udp.dst_port; hdr.udp.dst_port = port; "+
					st.Field+" = stage; ig_tm_md.ucast_egress_port = ig_intr_md.ingress_port;"); err != nil {
				return err
			}
			return has("ingress apply", p.apply, fmt.Sprintf(
				"} else if (%s == %s) { ig_md.workload = %s; ig_md.held_load = min_workload_heartbeat.execute(0); %s = %s; reply(%s); ig_md.update_udp_metric = ~ig_md.udp_csum_none; }",
				st.Field, st.Heartbeat, p.d.WorkloadIn, p.d.Metric, p.d.WorkloadOut, st.HeartbeatResponse))
		},
		remove: [][2]string{{"reply(STAGE_HEARTBEAT_RESPONSE);", "hdr.tcpmig.stage = STAGE_HEARTBEAT_RESPONSE;"}},
	},
	{
		name: "4. PREPARE: steered to the least loaded; REJECTED to the sender when it is the least loaded",
		check: func(p rulesProgram) error {
			m := preparedRE.FindStringSubmatch(p.apply)
			if m == nil || !strings.Contains(p.apply, p.prepareBranch()) {
				return fmt.Errorf("ingress apply lacks the PREPARE branch or its decision")
			}
			if !strings.Contains(m[3], "ig_md.least_loaded == hdr.ipv4.src_addr") {
				return fmt.Errorf("PREPARE reject condition %q does not test the sender", m[3])
			}
			if m[4] != "reply("+p.d.Stage.Rejected+"); ig_md.update_udp = ~ig_md.udp_csum_none;" {
				return fmt.Errorf("PREPARE reject does %q, want a REJECTED reply", m[4])
			}
			if m[5] != "hdr.ipv4.dst_addr = ig_md.least_loaded; ig_md.update_ipv4 = 1w1; ig_md.update_udp = ~ig_md.udp_csum_none; ig_md.route = 1w1;" {
				return fmt.Errorf("PREPARE steering does %q", m[5])
			}
			return has("RegisterAction min_workload_read", p.regAction("min_workload_read"), "holder = cell.holder_ip;")
		},
		remove: [][2]string{{" || ig_md.least_loaded == hdr.ipv4.src_addr", ""}},
	},
	{
		name: "4. PREPARE: REJECTED to the sender when no server reported",
		check: func(p rulesProgram) error {
			m := preparedRE.FindStringSubmatch(p.apply)
			if m == nil {
				return fmt.Errorf("ingress apply lacks the PREPARE's decision")
			}
			if !strings.Contains(m[3], "ig_md.least_loaded == 0") || m[4] != "reply("+p.d.Stage.Rejected+"); ig_md.update_udp = ~ig_md.udp_csum_none;" {
				return fmt.Errorf("PREPARE does not answer REJECTED when no server reported: if (%s) { %s }", m[3], m[4])
			}
			return nil
		},
		remove: [][2]string{{"ig_md.least_loaded == 0 || ", ""}},
	},
	{
		name: "4. PREPARE: a resend for a key whose entry names another target goes to that target; each register read once",
		check: func(p rulesProgram) error {
			if err := has("program", p.code, "const dir_op_t DIR_OP_PREPARE = 3w5;"); err != nil {
				return err
			}
			if err := has("ingress apply", p.apply, p.prepareBranch()); err != nil {
				return err
			}
			// min_workload is read in the TCPMig branch only; the
			// directory decides after it.
			if n := strings.Count(p.apply, "min_workload_read.execute("); n != 1 {
				return fmt.Errorf("min_workload_read is executed in %d places, want 1", n)
			}
			m := preparedRE.FindStringSubmatch(p.apply)
			if m == nil {
				return fmt.Errorf("ingress apply lacks the PREPARE's decision")
			}
			if !strings.Contains(m[1], "ig_md.dir_done == 1w1") || m[2] != "hdr.ipv4.dst_addr = ig_md.dir_target; ig_md.update_ipv4 = 1w1; ig_md.update_udp = ~ig_md.udp_csum_none; ig_md.route = 1w1;" {
				return fmt.Errorf("a PREPARE whose key is in the directory is not sent to the entry's target: if (%s) { %s }", m[1], m[2])
			}
			// Each level's lookup gives a PREPARE its entry's target, the
			// key and addr registers accessed once (the first hit ends it).
			return p.perLevel(func(l level) error {
				return has("ingress apply", p.apply, fmt.Sprintf(
					"} else if (ig_md.dir_done == 1w0) { ig_md.dir_done = %[1]s.execute(ig_md.%[3]s); if (ig_md.dir_done == 1w1) { if (ig_md.dir_op == DIR_OP_CLIENT) { hdr.ipv4.dst_addr = %[2]s.execute(ig_md.%[3]s); } else if (ig_md.dir_op == DIR_OP_PREPARE) { ig_md.dir_target = %[2]s.execute(ig_md.%[3]s); } else {",
					l.KeyLookup(), l.TargetRead(), l.Index()))
			})
		},
		remove: [][2]string{{"} else if (ig_md.dir_op == DIR_OP_PREPARE) {\n                        ig_md.dir_target = dir1_target_read",
			"} else if (ig_md.dir_op == DIR_OP_NONE) {\n                        ig_md.dir_target = dir1_target_read"}},
	},
	{
		name: "4. PREPARE: the holder's own PREPARE (a re-migration) is steered by min_workload, not back to itself",
		check: func(p rulesProgram) error {
			m := preparedRE.FindStringSubmatch(p.apply)
			if m == nil {
				return fmt.Errorf("ingress apply lacks the PREPARE's decision")
			}
			if m[1] != "ig_md.dir_done == 1w1 && ig_md.dir_target != hdr.ipv4.src_addr" {
				return fmt.Errorf("the resend condition is %q; a PREPARE from the entry's own target must go on to min_workload", m[1])
			}
			return nil
		},
		remove: [][2]string{{"ig_md.dir_done == 1w1 && ig_md.dir_target != hdr.ipv4.src_addr", "ig_md.dir_done == 1w1"}},
	},
	{
		name: "4. insert: write if empty or the same key, the winning level writes the entry",
		check: func(p rulesProgram) error {
			if err := has("ingress apply", p.apply, fmt.Sprintf(
				"} else if (%s == %s && %s == 1w1) { ig_md.client_ip = %s; ig_md.client_port = %s; ig_md.dir_op = DIR_OP_INSERT; ig_md.route = 1w1; }",
				p.d.Stage.Field, p.d.Stage.PrepareMigAck, p.d.Load, p.d.KeyIP, p.d.KeyPort)); err != nil {
				return err
			}
			return p.perLevel(func(l level) error {
				// One output (the IP word as it was) in every branch; the
				// port test on dir<i>_port.
				if err := has("RegisterAction "+l.KeyInsert(), p.regAction(l.KeyInsert()),
					"seen = cell.ip; if (cell.ip == 0) { cell.ip = ig_md.client_ip; cell.port = ig_md.client_vport; }"); err != nil {
					return err
				}
				if err := has("program", p.ingress, fmt.Sprintf("Register<bit<16>, bit<%d>>(%d, 16w0) %s;", p.d.IndexBits, p.d.Entries, l.PortReg())); err != nil {
					return err
				}
				// An empty slot is all zero: tna's Register(size) leaves
				// the cells undefined, so every directory register says it.
				for _, decl := range []string{
					fmt.Sprintf("Register<dir_key_t, bit<%d>>(%d, {32w0, 32w0}) %s;", p.d.IndexBits, p.d.Entries, l.KeyReg()),
					fmt.Sprintf("Register<bit<32>, bit<%d>>(%d, 32w0) %s;", p.d.IndexBits, p.d.Entries, l.TargetReg()),
					fmt.Sprintf("Register<bit<32>, bit<%d>>(%d, 32w0) %s;", p.d.IndexBits, p.d.Entries, l.OriginReg()),
				} {
					if err := has("program", p.ingress, decl); err != nil {
						return err
					}
				}
				if err := has("RegisterAction "+l.PortWrite(), p.regAction(l.PortWrite()), "cell = ig_md.client_port;"); err != nil {
					return err
				}
				if err := has("RegisterAction "+l.PortRead(), p.regAction(l.PortRead()), "port = cell;"); err != nil {
					return err
				}
				if err := has("RegisterAction "+l.TargetWrite(), p.regAction(l.TargetWrite()), "cell = hdr.ipv4.src_addr;"); err != nil {
					return err
				}
				if err := has("RegisterAction "+l.OriginWrite(), p.regAction(l.OriginWrite()), fmt.Sprintf("cell = %s;", p.d.Origin)); err != nil {
					return err
				}
				return has("ingress apply", p.apply, fmt.Sprintf(
					"if (ig_md.dir_op == DIR_OP_INSERT) { if (ig_md.dir_done == 1w0) { ig_md.dir_seen = %[1]s.execute(ig_md.%[3]s); if (ig_md.dir_seen == 0) { ig_md.dir_done = 1w1; %[6]s.execute(ig_md.%[3]s); %[2]s.execute(ig_md.%[3]s); %[5]s.execute(ig_md.%[3]s); } else if (ig_md.dir_seen == ig_md.client_ip) { ig_md.dir_seen_port = %[7]s.execute(ig_md.%[3]s); if (ig_md.dir_seen_port == ig_md.client_port) { ig_md.dir_done = 1w1; ig_md.dir_wrote = %[4]s.execute(ig_md.%[3]s); } } } else {",
					l.KeyInsert(), l.TargetWrite(), l.Index(), l.TargetHandOver(), l.OriginWrite(), l.PortWrite(), l.PortRead()))
			})
		},
		remove: [][2]string{{"if (ig_md.dir_seen_port == ig_md.client_port) {", "if (ig_md.dir_seen_port == ig_md.dir_seen_port) {"}},
	},
	{
		name: "4. insert: the lease: the key's own entry is rewritten only by its target again or for its holder",
		check: func(p rulesProgram) error {
			if err := has("parser start", p.state("start"), "ig_md.dir_wrote = 1w1;"); err != nil {
				return err
			}
			return p.perLevel(func(l level) error {
				// Two packet values only across the register's actions (a
				// Tofino-1 SALU's limit): IPv4 src and dst; the origin,
				// in a register of its own, stays.
				return has("RegisterAction "+l.TargetHandOver(), p.regAction(l.TargetHandOver()),
					"wrote = 1w0; if (cell == hdr.ipv4.src_addr || cell == hdr.ipv4.dst_addr) { cell = hdr.ipv4.src_addr; wrote = 1w1; }")
			})
		},
		remove: [][2]string{{" || cell == hdr.ipv4.dst_addr", ""}},
	},
	{
		name: "4. insert: a stale ACK (the lease refused it) goes back to its sender as REJECTED, counted, not routed",
		check: func(p rulesProgram) error {
			if err := has("program", p.code, "const drop_reason_t STALE_ACK_CELL = DROP_NONE;"); err != nil {
				return err
			}
			return has("ingress apply", p.apply, fmt.Sprintf(
				"} else if (ig_md.dir_wrote == 1w0) { reply(%s); ig_md.update_udp = ~ig_md.udp_csum_none; ig_md.route = 1w0; ig_md.drop_reason = STALE_ACK_CELL; ig_md.count_drop = 1w1; } } else if (ig_md.dir_op == DIR_OP_PREPARE) {",
				p.d.Stage.Rejected))
		},
		remove: [][2]string{{"reply(STAGE_REJECTED);\n                    ig_md.update_udp = ~ig_md.udp_csum_none;\n                    ig_md.route = 1w0;",
			"hdr.tcpmig.stage = STAGE_REJECTED;\n                    ig_md.update_udp = ~ig_md.udp_csum_none;"}},
	},
	{
		name: "4. insert: every level after the winner clears a copy of the key",
		check: func(p rulesProgram) error {
			return p.perLevel(func(l level) error {
				return has("ingress apply", p.apply, fmt.Sprintf(
					"ig_md.dir_wrote = %[1]s.execute(ig_md.%[3]s); } } } else { ig_md.dir_hit = %[2]s.execute(ig_md.%[3]s); } } else if (ig_md.delete_entry == 1w1) {",
					l.TargetHandOver(), l.KeyClear(), l.Index()))
			})
		},
		remove: [][2]string{{"                    ig_md.dir_hit = dir1_key_clear.execute(ig_md.dir1_index);\n                }\n            } else if (ig_md.delete_entry == 1w1) {", "                }\n            } else if (ig_md.delete_entry == 1w1) {"}},
	},
	{
		name: "4. insert: when every level is taken the ACK becomes REJECTED and goes on to the origin",
		check: func(p rulesProgram) error {
			return has("ingress apply", p.apply, fmt.Sprintf(
				"if (ig_md.dir_op == DIR_OP_INSERT) { if (ig_md.dir_done == 1w0) { %s = %s; ig_md.update_udp = ~ig_md.udp_csum_none; } else if (ig_md.dir_wrote == 1w0) {",
				p.d.Stage.Field, p.d.Stage.Rejected))
		},
		remove: [][2]string{{"hdr.tcpmig.stage = STAGE_REJECTED;\n                    ig_md.update_udp = ~ig_md.udp_csum_none;", "reply(STAGE_REJECTED);\n                    ig_md.update_udp = ~ig_md.udp_csum_none;"}},
	},
	{
		name: "4. release: a server's conn_closed clears the key on every level, after the spoofed_control check",
		check: func(p rulesProgram) error {
			if p.d.Release == "" {
				if strings.Contains(p.code, "DIR_OP_RELEASE") {
					return fmt.Errorf("the program has a release path but the spec has no directory.release")
				}
				return nil
			}
			st := p.d.Stage
			if err := has("program", p.code, "typedef bit<3> dir_op_t;", "const dir_op_t DIR_OP_RELEASE = 3w4;"); err != nil {
				return err
			}
			if err := ordered("ingress apply", p.apply,
				"} else if (ig_md.tcpmig == 1w1) {",
				"if (ig_md.role != ROLE_SERVER) { drop(DROP_SPOOFED_CONTROL); }",
				fmt.Sprintf("} else if (%s == %s) { ig_md.client_ip = %s; ig_md.client_port = %s; ig_md.dir_op = DIR_OP_RELEASE;", st.Field, st.Release, p.d.KeyIP, p.d.KeyPort),
				"} else if (hdr.tcp.isValid()) {"); err != nil {
				return err
			}
			return p.perLevel(func(l level) error {
				if err := has("RegisterAction "+l.KeyClear(), p.regAction(l.KeyClear()),
					"hit = 1w0; if (cell.ip == ig_md.client_ip && cell.port == ig_md.client_vport) { cell.ip = 0; cell.port = 0; hit = 1w1; }"); err != nil {
					return err
				}
				return has("ingress apply", p.apply, fmt.Sprintf(
					"} else if (ig_md.dir_op == DIR_OP_RELEASE) { ig_md.dir_hit = %[1]s.execute(ig_md.%[2]s); } else if (ig_md.dir_done == 1w0) {",
					l.KeyClear(), l.Index()))
			})
		},
		remove: [][2]string{{"                ig_md.dir_hit = dir1_key_clear.execute(ig_md.dir1_index);\n            } else if (ig_md.dir_done == 1w0) {",
			"            } else if (ig_md.dir_done == 1w0) {"}},
	},
	{
		name: "4. release: conn_closed goes back to its sender, stage kept, no checksum update, not routed",
		check: func(p rulesProgram) error {
			if p.d.Release == "" {
				return nil
			}
			st := p.d.Stage
			// The branch ends with the reply: no update_udp (the swaps and
			// the unchanged stage keep every sum, and a zero checksum stays
			// zero) and no route (ipv4_host would send it elsewhere).
			return has("ingress apply", p.apply, fmt.Sprintf(
				"} else if (%[1]s == %[2]s) { ig_md.client_ip = %[3]s; ig_md.client_port = %[4]s; ig_md.dir_op = DIR_OP_RELEASE; reply(%[2]s); } else { ig_md.route = 1w1; }",
				st.Field, st.Release, p.d.KeyIP, p.d.KeyPort))
		},
		remove: [][2]string{{"reply(STAGE_CONN_CLOSED);", "ig_md.route = 1w1;"}},
	},
	{
		name: "5. request: a client's segment goes to the target of the first level holding its key",
		check: func(p rulesProgram) error {
			if err := has("ingress apply", p.apply,
				"if (ig_md.role == ROLE_CLIENT) { ig_md.client_ip = hdr.ipv4.src_addr; ig_md.client_port = hdr.tcp.src_port; ig_md.dir_op = DIR_OP_CLIENT; }"); err != nil {
				return err
			}
			return p.perLevel(func(l level) error {
				if err := has("RegisterAction "+l.KeyLookup(), p.regAction(l.KeyLookup()),
					"hit = 1w0; if (cell.ip == ig_md.client_ip && cell.port == ig_md.client_vport) { hit = 1w1; }"); err != nil {
					return err
				}
				if err := has("RegisterAction "+l.TargetRead(), p.regAction(l.TargetRead()), "ip = cell;"); err != nil {
					return err
				}
				return has("ingress apply", p.apply, fmt.Sprintf(
					"} else if (ig_md.dir_done == 1w0) { ig_md.dir_done = %[1]s.execute(ig_md.%[3]s); if (ig_md.dir_done == 1w1) { if (ig_md.dir_op == DIR_OP_CLIENT) { hdr.ipv4.dst_addr = %[2]s.execute(ig_md.%[3]s); } else",
					l.KeyLookup(), l.TargetRead(), l.Index()))
			})
		},
		remove: [][2]string{{"hdr.ipv4.dst_addr = dir0_target_read", "ig_md.least_loaded = dir0_target_read"}},
	},
	{
		name: "5. response: a server's segment to a migrated client leaves with the origin's address",
		check: func(p rulesProgram) error {
			if err := has("ingress apply", p.apply,
				"} else { ig_md.client_ip = hdr.ipv4.dst_addr; ig_md.client_port = hdr.tcp.dst_port; ig_md.dir_op = DIR_OP_SERVER; }"); err != nil {
				return err
			}
			return p.perLevel(func(l level) error {
				if err := has("RegisterAction "+l.OriginRead(), p.regAction(l.OriginRead()), "ip = cell;"); err != nil {
					return err
				}
				return has("ingress apply", p.apply, fmt.Sprintf(
					"ig_md.dir_target = %s.execute(ig_md.%[3]s); } else { hdr.ipv4.src_addr = %[2]s.execute(ig_md.%[3]s); } } }",
					l.TargetRead(), l.OriginRead(), l.Index()))
			})
		},
		remove: [][2]string{{"hdr.ipv4.src_addr = dir1_origin_read", "ig_md.least_loaded = dir1_origin_read"}},
	},
	{
		name: "5. RST/FIN: every level clears the key; the first that held it rewrites",
		check: func(p rulesProgram) error {
			if err := has("program", p.code, fmt.Sprintf("const bit<8> TCP_DELETE_FLAGS = %s;", lit(8, p.d.DeleteFlags)),
				"if ((hdr.tcp.flags & TCP_DELETE_FLAGS) != 8w0) { ig_md.delete_entry = 1w1; }"); err != nil {
				return err
			}
			return p.perLevel(func(l level) error {
				if err := has("RegisterAction "+l.KeyClear(), p.regAction(l.KeyClear()),
					"hit = 1w0; if (cell.ip == ig_md.client_ip && cell.port == ig_md.client_vport) { cell.ip = 0; cell.port = 0; hit = 1w1; }"); err != nil {
					return err
				}
				return has("ingress apply", p.apply, fmt.Sprintf(
					"} else if (ig_md.delete_entry == 1w1) { ig_md.dir_hit = %[1]s.execute(ig_md.%[4]s); if (ig_md.dir_hit == 1w1) { if (ig_md.dir_done == 1w0) { if (ig_md.dir_op == DIR_OP_CLIENT) { hdr.ipv4.dst_addr = %[2]s.execute(ig_md.%[4]s); } else { hdr.ipv4.src_addr = %[3]s.execute(ig_md.%[4]s); } } ig_md.dir_done = 1w1; } }",
					l.KeyClear(), l.TargetRead(), l.OriginRead(), l.Index()))
			})
		},
		remove: [][2]string{{"} else if (ig_md.delete_entry == 1w1) {\n                ig_md.dir_hit = dir1_key_clear", "} else if (ig_md.delete_entry == 1w1 && ig_md.dir_done == 1w0) {\n                ig_md.dir_hit = dir1_key_clear"}},
	},
	{
		name: "5. checksums: IPv4 and TCP updated after a rewrite, UDP after a TCPMig change",
		check: func(p rulesProgram) error {
			// bf-p4c: a checksum's operations on a header belong to the
			// state that extracts it, so the stage word is subtracted
			// where the TCPMig header is extracted.
			st := p.d.TCPMig.Name.State() + "_stage" // the state that extracts it
			for _, c := range []struct{ where, scope, want string }{
				{"state parse_ipv4", p.state("parse_ipv4"), "tcp_csum.subtract({hdr.ipv4.src_addr, hdr.ipv4.dst_addr}); udp_csum.subtract({hdr.ipv4.src_addr, hdr.ipv4.dst_addr});"},
				{"state parse_tcp", p.state("parse_tcp"), "tcp_csum.subtract({hdr.tcp.checksum}); ig_md.tcp_residual = tcp_csum.get();"},
				{"state parse_udp", p.state("parse_udp"), "udp_csum.subtract({hdr.udp.src_port, hdr.udp.dst_port}); udp_csum.subtract({hdr.udp.checksum});"},
				{"state " + st, p.state(st), "udp_csum.subtract({" + strings.Join(p.d.StageWord, ", ") + "});"},
				{"ingress apply", p.apply, "} else if (ig_md.dir_done == 1w1) { ig_md.update_ipv4 = 1w1; ig_md.update_tcp = 1w1; }"},
				{"deparser", p.dep, "if (ig_md.update_ipv4 == 1w1) { hdr.ipv4.hdr_checksum = ipv4_csum.update({ hdr.ipv4.version, hdr.ipv4.ihl, hdr.ipv4.diffserv, hdr.ipv4.total_len, hdr.ipv4.identification, hdr.ipv4.flags, hdr.ipv4.frag_offset, hdr.ipv4.ttl, hdr.ipv4.protocol, hdr.ipv4.src_addr, hdr.ipv4.dst_addr}); }"},
				{"deparser", p.dep, "if (ig_md.update_tcp == 1w1) { hdr.tcp.checksum = tcp_csum.update({ hdr.ipv4.src_addr, hdr.ipv4.dst_addr, ig_md.tcp_residual}); }"},
				{"deparser", p.dep, "if (ig_md.update_udp == 1w1) { hdr.udp.checksum = udp_csum.update(data = { hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.udp.src_port, hdr.udp.dst_port, " + strings.Join(p.d.StageWord, ", ") + ", ig_md.udp_residual}, zeros_as_ones = true); }"},
				{"deparser", p.dep, "if (ig_md.update_udp_metric == 1w1) { hdr.udp.checksum = udp_metric_csum.update(data = { hdr.ipv4.src_addr, hdr.ipv4.dst_addr, hdr.udp.src_port, hdr.udp.dst_port, " + strings.Join(p.d.StageWord, ", ") + ", " + strings.Join(p.d.MetricWord, ", ") + ", ig_md.udp_residual}, zeros_as_ones = true); }"},
			} {
				if err := has(c.where, c.scope, c.want); err != nil {
					return err
				}
			}
			return nil
		},
		remove: [][2]string{{"ig_md.update_tcp = 1w1;", ""}},
	},
	{
		name: "UDP checksum 0 stays 0",
		check: func(p rulesProgram) error {
			if err := has("ingress apply", p.apply, "} else if (ig_md.tcpmig == 1w1) { mig_len_tbl.apply(); if (hdr.udp.checksum == 16w0) { ig_md.udp_csum_none = 1w1; }"); err != nil {
				return err
			}
			// Every update of the UDP checksum is the flag's complement: a
			// datagram that came without a checksum keeps none.
			for _, flag := range []string{"ig_md.update_udp = ", "ig_md.update_udp_metric = "} {
				sets := strings.Count(p.apply, flag)
				if sets == 0 {
					return fmt.Errorf("ingress apply never sets %s", flag)
				}
				if n := strings.Count(p.apply, flag+"~ig_md.udp_csum_none;"); n != sets {
					return fmt.Errorf("ingress apply sets %s%d times, %d of them to ~ig_md.udp_csum_none; want all", flag, sets, n)
				}
			}
			return has("parser start", p.state("start"), "ig_md.udp_csum_none = 1w0;")
		},
		remove: [][2]string{{"ig_md.update_udp_metric = ~ig_md.udp_csum_none;", "ig_md.update_udp_metric = 1w1;"}},
	},
	{
		name: "drops are counted in one of two mutually exclusive places: ipv4_host's miss, or count_drop when nothing is routed",
		check: func(p rulesProgram) error {
			if err := has("program", p.ingress, "action no_route() { ig_dprsr_md.drop_ctl = 3w1; ig_md.drop_reason = DROP_NO_ROUTE; drops.count(DROP_NO_ROUTE); }"); err != nil {
				return err
			}
			if err := has("program", p.ingress, "actions = { @tableonly set_host; @defaultonly no_route; } const default_action = no_route();"); err != nil {
				return err
			}
			if end := "if (ig_md.route == 1w1) { ipv4_host.apply(); } else if (ig_md.count_drop == 1w1) { count_drop(); }"; !strings.HasSuffix(p.apply, end) {
				return fmt.Errorf("ingress apply does not end with %q", end)
			}
			return nil
		},
		remove: [][2]string{{"} else if (ig_md.count_drop == 1w1) {", "}\n        if (ig_md.count_drop == 1w1) {"}},
	},
}

func TestSwitchRules(t *testing.T) {
	noRelease := spectest.Edit(t, "delete_on: [rst] ", "delete_on: [rst, fin] ", "  release: conn_closed ", "  # release: conn_closed ")
	for _, s := range []*spec.Spec{spectest.Default(t), threeLevels(t), noRelease} {
		d, err := newData(s, genfile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := newRulesProgram(s, d, string(generate(t, s)["p4/"+s.Name+".p4"]))
		for _, r := range switchRules {
			if err := r.check(p); err != nil {
				t.Errorf("%d levels, release %q: %s: %v", len(d.Levels), s.Directory.Release, r.name, err)
			}
		}
	}
}

// TestSwitchRulesCatchRemovals: each rule's check fails on a program that
// lacks the rule, and no other edit is needed to make it fail.
func TestSwitchRulesCatchRemovals(t *testing.T) {
	s := spectest.Default(t)
	d, err := newData(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := string(generate(t, s)["p4/capybara.p4"])
	for _, r := range switchRules {
		if len(r.remove) == 0 {
			t.Errorf("%s: no removal to test the check with", r.name)
			continue
		}
		cut := src
		for _, e := range r.remove {
			if !strings.Contains(cut, e[0]) {
				t.Fatalf("%s: the program lacks %q, which the removal edits", r.name, e[0])
			}
			cut = strings.ReplaceAll(cut, e[0], e[1])
		}
		if err := r.check(newRulesProgram(s, d, cut)); err == nil {
			t.Errorf("%s: the check passes on a program without the rule", r.name)
		}
	}
}

func threeLevels(t *testing.T) *spec.Spec {
	return spectest.Edit(t,
		"index_bits: 16", "index_bits: 14",
		"    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}\n",
		"    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}\n"+
			"    - hash: {name: crc32c, width: 32, poly: 0x1EDC6F41, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}\n")
}
