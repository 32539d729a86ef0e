package spec_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// badEdits are edits of the default spec, each with every diagnostic it
// must produce, exactly and in order.
var badEdits = []struct {
	name, old, new string
	want           []string
}{
	{"version2", "version: 1\nname", "version: 2\nname", []string{
		`spec/x.yaml:4:10: version: 2 is not supported; set version: 1`,
	}},
	{"noversion", "version: 1\nname", "name", []string{
		`spec/x.yaml:4:1: version: missing; add version: 1 as the first line`,
	}},
	{"unknownkey", "target: tofino1\n", "target: tofino1\ncolour: red\n", []string{
		`spec/x.yaml:12:1: colour: unknown key; allowed keys are version, name, doc, target, budget, tables, transport, enums, header, messages, directory, workload, machines`,
	}},
	{"mtutype", "mtu: 1500", "mtu: big", []string{
		`spec/x.yaml:26:8: transport.mtu: want an integer, got "big"`,
	}},
	{"mturange", "mtu: 1500", "mtu: 100", []string{
		`spec/x.yaml:26:8: transport.mtu: 100 is outside 576..9000 (the IPv4 minimum to jumbo frames); pick an MTU in that range`,
	}},
	{"udpport0", "udp_port: 7071", "udp_port: 0", []string{
		`spec/x.yaml:25:13: transport.udp_port: 0 is not a UDP port; use 1..65535`,
	}},
	{"checksum", "checksum: udp", "checksum: crc", []string{
		`spec/x.yaml:29:13: transport.checksum: "crc" is not a checksum kind; use udp or wrapping16`,
	}},
	{"target", "target: tofino1", "target: tofino3", []string{
		`spec/x.yaml:11:9: target: unknown target "tofino3"; known targets are tofino1, tofino2`,
	}},
	{"indexbits", "index_bits: 16", "index_bits: 24", []string{
		`spec/x.yaml:113:15: directory.index_bits: 24 is outside what tofino1 allows (8..20); lower it into 8..20`,
		`spec/x.yaml:115:38: directory.levels[0].hash.width: a 16-bit CRC cannot index 24 bits; use width: 32 or lower index_bits`,
		`spec/x.yaml:116:41: directory.levels[1].hash.width: a 16-bit CRC cannot index 24 bits; use width: 32 or lower index_bits`,
	}},
	{"nolevels", "  levels:\n    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true, init: 0x0000, xor_out: 0x0000}\n    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}\n", "  levels: []\n", []string{
		`spec/x.yaml:114:11: directory.levels: has no levels; a directory needs at least 1`,
	}},
	{"crcwidth", "name: crc16_arc, width: 16", "name: crc16_arc, width: 8", []string{
		`spec/x.yaml:115:38: directory.levels[0].hash.width: 8 is not a CRC width Tofino hashes; use 16 or 32`,
	}},
	{"polywide", "poly: 0x8005", "poly: 0x18005", []string{
		`spec/x.yaml:115:48: directory.levels[0].hash.poly: 0x18005 is wider than the 16-bit CRC; use a value up to 0xffff`,
	}},
	{"dupvalue", "{name: conn_state, value: 4,", "{name: prepare_mig, value: 4,", []string{
		`spec/x.yaml:39:16: enums.stage.values.prepare_mig.name: value "prepare_mig" is already in enum stage at line 37; rename one`,
		`spec/x.yaml:72:12: messages.conn_state.stage: "conn_state" is not a value of enum stage; use one of rejected, prepare_mig, prepare_mig_ack, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
	}},
	{"dupnumber", "{name: conn_state, value: 4,", "{name: conn_state, value: 3,", []string{
		`spec/x.yaml:39:35: enums.stage.values.conn_state.value: 3 is already the value of prepare_mig_ack (line 38); pick another number`,
	}},
	{"valuerange", "{name: heartbeat_response, value: 13,", "{name: heartbeat_response, value: 16,", []string{
		`spec/x.yaml:44:43: enums.stage.values.heartbeat_response.value: 16 does not fit enum stage's 4 bits (max 15); widen bits or pick a smaller value`,
	}},
	{"enumbits", "{name: stage, type: enum, enum: stage}", "{name: stage, type: enum, enum: stage, bits: 8}", []string{
		`spec/x.yaml:56:52: header.fields.stage.bits: 8 does not match enum stage's 4 bits; set bits: 4 or remove it`,
	}},
	{"wholebytes", `{name: epoch, bits: 8, doc: "Names one migration of a connection: the origin picks it and every message of the migration carries it, so a late message of another migration of the same connection is told apart."}`, "{name: epoch, bits: 7}", []string{
		`spec/x.yaml:50:5: header.fields: the fields add up to 159 bits, not whole bytes; add a reserved field of 1 bit`,
	}},
	{"constwide", "const: 0xCAFEDEAD", "const: 0x1CAFEDEAD", []string{
		`spec/x.yaml:50:38: header.fields.magic.const: 0x1cafedead does not fit the field's 32 bits; widen the field or fix the constant`,
	}},
	{"stageundef", "stage: conn_state_ack\n", "stage: conn_state_acked\n", []string{
		`spec/x.yaml:82:12: messages.conn_state_ack.stage: "conn_state_acked" is not a value of enum stage; use one of rejected, prepare_mig, prepare_mig_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
	}},
	{"machinetestfile", "  - name: origin\n", "  - name: origin_test\n", []string{
		`spec/x.yaml:130:11: machines.origin_test.name: "origin_test" ends in _test: its generated file origin_test.go would be a test file; rename the machine`,
	}},
	{"machinegoos", "  - name: target\n", "  - name: target_linux\n", []string{
		`spec/x.yaml:176:11: machines.target_linux.name: "target_linux" ends in _linux, a GOOS: its generated file target_linux.go would build only on linux; rename the machine`,
	}},
	{"gonamecollision", "      - {name: freeze_connection, doc:", "      - {name: tcp_x}\n      - {name: tcpx}\n      - {name: freeze_connection, doc:", []string{
		`spec/x.yaml:153:9: action "tcpx" and action "tcp_x" (spec/x.yaml:152:9) are both the Go identifier TCPX in machine origin's actions; rename one`,
	}},
	{"dupmessage", "  - name: conn_state_ack\n", "  - name: conn_state\n", []string{
		`spec/x.yaml:81:11: messages.conn_state.name: message "conn_state" is already defined at line 71; rename one`,
		`spec/x.yaml:148:41: machines.origin.events.conn_state_ack.message: message "conn_state_ack" is not defined; use one of rejected, prepare_mig, prepare_mig_ack, conn_state, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
		`spec/x.yaml:197:43: machines.target.actions.send_conn_state_ack.send: message "conn_state_ack" is not defined; use one of rejected, prepare_mig, prepare_mig_ack, conn_state, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
	}},
	{"keyword", "{name: client_port, bits: 16}", "{name: func, bits: 16}", []string{
		`spec/x.yaml:50:5: header.fields: no field client_port; the switch reads it as the client's port, the second half of the directory key (gen/SWITCH.md), so add {name: client_port, bits: 16}`,
		`spec/x.yaml:54:14: header.fields.func.name: "func" is a Go keyword; rename it`,
	}},
	{"notsnake", "name: capybara", "name: Capybara", []string{
		`spec/x.yaml:5:7: name: "Capybara" is not a lower_snake identifier (a-z, 0-9, single underscores, starting with a letter); rename it`,
	}},
	{"unreachable", "      - {name: failed, final: true}\n", "      - {name: failed, final: true}\n      - {name: limbo}\n", []string{
		`spec/x.yaml:144:9: machines.origin.states.limbo: unreachable from initial state idle; add a transition into it or remove it`,
	}},
	{"undefevent", "{from: transferring, on: conn_state_ack,", "{from: transferring, on: conn_state_acked,", []string{
		`spec/x.yaml:162:34: machines.origin.transitions[3].on: event "conn_state_acked" is not defined in machine origin; define it under events`,
	}},
	{"duptransition", "      - {from: preparing, on: rejected, to: rejected, do: [resume_connection]}\n", "      - {from: preparing, on: rejected, to: rejected, do: [resume_connection]}\n      - {from: preparing, on: rejected, to: failed}\n", []string{
		`spec/x.yaml:162:9: machines.origin.transitions[3]: a second transition for (preparing, rejected) (first at line 161); a state handles an event once, so remove one`,
	}},
	{"transignore", "      - {in: transferring, on: prepare_mig_ack}", "      - {in: preparing, on: prepare_mig_ack}", []string{
		`spec/x.yaml:167:9: machines.origin.ignore[0]: (preparing, prepare_mig_ack) has a transition at line 160; remove the ignore or the transition`,
	}},
	{"noinitial", "    initial: idle\n    states:\n      - name: idle\n      - name: preparing", "    states:\n      - name: idle\n      - name: preparing", []string{
		`spec/x.yaml:130:5: machines.origin: missing key initial; add it`,
	}},
	{"finalmove", "      - {from: accepted, on: conn_state, to: accepted,", "      - {from: accepted, on: conn_state, to: abandoned,", []string{
		`spec/x.yaml:204:46: machines.target.transitions[3].to: final state accepted may only transition to itself, not to abandoned; make it non-final or change to`,
	}},
	{"negretries", "retries: 8, resend: send_prepare_mig", "retries: -1, resend: send_prepare_mig", []string{
		`spec/x.yaml:137:41: machines.origin.states.preparing.timeout.retries: -1 is negative; use 0 for no retries`,
	}},
	{"after0", "after: 10ms", "after: 0s", []string{
		`spec/x.yaml:137:26: machines.origin.states.preparing.timeout.after: 0s must be above 0; set a positive duration like 5ms`,
	}},
	{"resendnothing", "resend: send_prepare_mig", "resend: freeze_connection", []string{
		`spec/x.yaml:137:52: machines.origin.states.preparing.timeout.resend: action freeze_connection sends nothing; resend names an action with send:`,
	}},
	{"keyfield", "key: [client_ip, client_port]", "key: [client_port, client_ip]", []string{
		`spec/x.yaml:112:8: directory.key: must be [client_ip, client_port]: the switch keys its directory on the client's address, which it reads from those header fields (gen/SWITCH.md); got [client_port, client_ip]`,
	}},
	{"keynotheader", "key: [client_ip, client_port]", "key: [client_ip, port]", []string{
		`spec/x.yaml:112:8: directory.key: must be [client_ip, client_port]: the switch keys its directory on the client's address, which it reads from those header fields (gen/SWITCH.md); got [client_ip, port]`,
	}},
	// The key is the client's address, never the origin server's.
	{"keyorigin", "key: [client_ip, client_port]", "key: [origin_ip, client_port]", []string{
		`spec/x.yaml:112:8: directory.key: must be [client_ip, client_port]: the switch keys its directory on the client's address, which it reads from those header fields (gen/SWITCH.md); got [origin_ip, client_port]`,
	}},
	// The names gen/SWITCH.md relies on: the emitters need them, so the
	// loader refuses their absence at the header or messages section.
	{"noorigin", "{name: origin_ip, type: ipv4,", "{name: server_ip, type: ipv4,", []string{
		`spec/x.yaml:50:5: header.fields: no field origin_ip; the switch reads it as the origin server it installs as a directory entry's origin on PREPARE_MIG_ACK (gen/SWITCH.md), so add {name: origin_ip, type: ipv4}`,
	}},
	{"noload", "{name: load, type: flag,", "{name: install, type: flag,", []string{
		`spec/x.yaml:50:5: header.fields: no field load; the switch reads it as the flag that makes a PREPARE_MIG_ACK install the directory entry (gen/SWITCH.md), so add {name: load, type: flag}`,
	}},
	{"loaduint", "{name: load, type: flag,", "{name: load, bits: 1,", []string{
		`spec/x.yaml:59:7: header.fields.load: is a 1-bit uint; the switch reads it as the flag that makes a PREPARE_MIG_ACK install the directory entry (gen/SWITCH.md), so make it type: flag`,
	}},
	{"clientport15", "{name: client_port, bits: 16}", "{name: client_port, bits: 15}\n    - {name: pad1, bits: 1, reserved: true}", []string{
		`spec/x.yaml:54:7: header.fields.client_port: is a 15-bit uint; the switch reads it as the client's port, the second half of the directory key (gen/SWITCH.md), so make it a 16-bit uint`,
	}},
	{"norejected", "  - name: rejected\n    stage: rejected\n", "  - name: refused\n    stage: rejected\n", []string{
		`spec/x.yaml:63:3: messages: no message rejected; the switch sends it back for a PREPARE_MIG it cannot serve, a PREPARE_MIG_ACK whose entry fits no level and a stale PREPARE_MIG_ACK from a target that lost the connection to another (gen/SWITCH.md), so add one named rejected with a stage of its own`,
		`spec/x.yaml:147:35: machines.origin.events.rejected.message: message "rejected" is not defined; use one of refused, prepare_mig, prepare_mig_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
		`spec/x.yaml:191:35: machines.target.events.rejected.message: message "rejected" is not defined; use one of refused, prepare_mig, prepare_mig_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
	}},
	{"noprepare", "  - name: prepare_mig\n    stage: prepare_mig\n", "  - name: prepare\n    stage: prepare_mig\n", []string{
		`spec/x.yaml:63:3: messages: no message prepare_mig; the switch steers it to the least-loaded server, or to the target a migration in progress already has (gen/SWITCH.md), so add one named prepare_mig with a stage of its own`,
		`spec/x.yaml:137:52: machines.origin.states.preparing.timeout.resend: action send_prepare_mig sends nothing; resend names an action with send:`,
		`spec/x.yaml:151:40: machines.origin.actions.send_prepare_mig.send: message "prepare_mig" is not defined; use one of rejected, prepare, prepare_mig_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
		`spec/x.yaml:189:38: machines.target.events.prepare_mig.message: message "prepare_mig" is not defined; use one of rejected, prepare, prepare_mig_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
	}},
	{"noack", "  - name: prepare_mig_ack\n    stage: prepare_mig_ack\n", "  - name: prepare_ack\n    stage: prepare_mig_ack\n", []string{
		`spec/x.yaml:63:3: messages: no message prepare_mig_ack; the switch installs the directory entry from it when its load flag is set (gen/SWITCH.md), so add one named prepare_mig_ack with a stage of its own`,
		`spec/x.yaml:146:42: machines.origin.events.prepare_mig_ack.message: message "prepare_mig_ack" is not defined; use one of rejected, prepare_mig, prepare_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
		`spec/x.yaml:194:44: machines.target.actions.send_prepare_mig_ack.send: message "prepare_mig_ack" is not defined; use one of rejected, prepare_mig, prepare_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
		`spec/x.yaml:199:43: machines.target.actions.send_abandon_notice.send: message "prepare_mig_ack" is not defined; use one of rejected, prepare_mig, prepare_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response`,
	}},
	{"noresponse", "  - name: heartbeat_response\n", "  - name: heartbeat_reply\n", []string{
		`spec/x.yaml:63:3: messages: no message heartbeat_response; the switch answers every heartbeat with it, carrying the minimum workload (gen/SWITCH.md), so add one named heartbeat_response with a stage of its own`,
	}},
	{"responsemetric", "      - {name: workload, bits: 32, doc: \"The minimum workload after the update.\"}", "      - {name: minimum, bits: 32}", []string{
		`spec/x.yaml:105:5: messages.heartbeat_response.payload: needs workload (workload.metric_field) as a 32-bit uint at bit 0 of the payload, where heartbeat_update has it: the switch turns a heartbeat into its response in place (gen/SWITCH.md); add {name: workload, bits: 32} there`,
	}},
	{"polyzero", "poly: 0x8005", "poly: 0x0", []string{
		`spec/x.yaml:115:48: directory.levels[0].hash.poly: 0x0: a zero polynomial hashes every key to init, so every key lands in one slot; use an odd polynomial such as 0x8005`,
	}},
	{"deleteon", "delete_on: [rst]", "delete_on: [rst, syn]", []string{
		`spec/x.yaml:119:20: directory.delete_on[1]: "syn" is not a TCP flag that deletes entries; use rst or fin`,
	}},
	{"insert", "insert: write_if_empty", "insert: overwrite", []string{
		`spec/x.yaml:117:11: directory.insert: unknown insert policy "overwrite"; use write_if_empty`,
	}},
	{"onfull", "on_full: reject", "on_full: drop", []string{
		`spec/x.yaml:118:12: directory.on_full: unknown on_full policy "drop"; use reject`,
	}},
	{"heartbeat", "heartbeat: heartbeat_update", "heartbeat: heartbeat", []string{
		`spec/x.yaml:124:14: workload.heartbeat: "heartbeat" is not a message; name the message servers report their load with`,
	}},
	{"metric", "metric_field: workload", "metric_field: load", []string{
		`spec/x.yaml:125:17: workload.metric_field: "load" is not a uint field of heartbeat_update's payload; name the field with the load`,
	}},
	{"fragindex", "index_field: fragment_index", "index_field: stage", []string{
		`spec/x.yaml:76:20: messages.conn_state.fragmented.index_field: "stage" is not a 16-bit uint header field; name the header field that carries the fragment index`,
	}},
	{"fragmore", "more_field: next_fragment", "more_field: fragment_index", []string{
		`spec/x.yaml:77:19: messages.conn_state.fragmented.more_field: "fragment_index" is not a flag header field; name the flag that says another fragment follows`,
	}},
	{"maxbytes", "max_bytes: 16777216", "max_bytes: 0", []string{
		`spec/x.yaml:78:18: messages.conn_state.fragmented.max_bytes: 0 must be above 0; set a positive value`,
	}},
	{"fragtimeout", "timeout: 200ms", "timeout: 0s", []string{
		`spec/x.yaml:80:16: messages.conn_state.fragmented.timeout: 0s must be above 0; set a positive duration like 5ms`,
	}},
	{"pct", "sram: 40%", "sram: 40", []string{
		`spec/x.yaml:13:9: budget.sram: 40 is not a percentage; write it like 40%`,
	}},
	{"pct140", "sram: 40%", "sram: 140%", []string{
		`spec/x.yaml:13:9: budget.sram: 140% is outside (0%, 100%]; use a share above 0 and at most 100%`,
	}},
	{"stages", "stages: 12 ", "stages: 13 ", []string{
		`spec/x.yaml:17:11: budget.stages: 13 is outside what tofino1 has (1..12); use a value in that range`,
	}},
	{"hosts", "hosts: 1024", "hosts: 0", []string{
		`spec/x.yaml:20:10: tables.hosts: 0 entries is too small; a table needs at least 1`,
	}},
	{"dupyamlkey", "  mtu: 1500\n", "  mtu: 1500\n  mtu: 9000\n", []string{
		`spec/x.yaml:27:3: transport.mtu: duplicate key (first at line 26); remove one`,
	}},
	{"workloadbits", "  bits: 32\n  heartbeat", "  bits: 33\n  heartbeat", []string{
		`spec/x.yaml:123:9: workload.bits: 33 is outside 1..32 (the register holds a 32-bit load); pick a width in that range`,
	}},
	{"agestep", "age_step: 1 ", "age_step: 70000 ", []string{
		`spec/x.yaml:127:13: workload.age_step: 70000 is outside 0..65535; use 0 (no aging) or a small step such as 1`,
	}},
	{"agestepnarrow", "  bits: 32\n  heartbeat", "  bits: 16\n  heartbeat", []string{
		`spec/x.yaml:127:13: workload.age_step: aging needs workload.bits 32 (it is 16): an aged load runs past 16 bits; set bits to 32 or age_step to 0`,
	}},
	{"syntax", "  mtu: 1500\n", "  mtu: [1500\n", []string{
		`spec/x.yaml:26:1: yaml: did not find expected ',' or ']'; fix the YAML syntax`,
	}},
	{"maplist", "enums:\n", "enums: {}\nxx:\n", []string{
		`spec/x.yaml:31:8: enums: want a list, got a mapping`,
		`spec/x.yaml:32:1: xx: unknown key; allowed keys are version, name, doc, target, budget, tables, transport, enums, header, messages, directory, workload, machines`,
		`spec/x.yaml:51:5: header.fields: the fields add up to 156 bits, not whole bytes; add a reserved field of 4 bits`,
		`spec/x.yaml:57:39: header.fields.stage.enum: enum "stage" is not defined; define it under enums or use one of (none defined)`,
	}},
	{"strlist", "delete_on: [rst]", "delete_on: rst", []string{
		`spec/x.yaml:119:14: directory.delete_on: want a list, got "rst"`,
	}},
	{"timeoutevent", "{name: start, doc:", "{name: timeout, doc:", []string{
		`spec/x.yaml:145:16: machines.origin.events.timeout.name: "timeout" is built in (raised by a state's timer); rename the event`,
		`spec/x.yaml:159:26: machines.origin.transitions[0].on: event "start" is not defined in machine origin; define it under events`,
	}},
	{"dupevent", "{name: conn_state_ack, message: conn_state_ack}", "{name: rejected, message: conn_state_ack}", []string{
		`spec/x.yaml:148:16: machines.origin.events.rejected.name: event "rejected" is already defined at line 147; rename one`,
		`spec/x.yaml:162:34: machines.origin.transitions[3].on: event "conn_state_ack" is not defined in machine origin; define it under events`,
		`spec/x.yaml:169:24: machines.origin.ignore[2].on: event "conn_state_ack" is not defined in machine origin; define it under events`,
		`spec/x.yaml:173:26: machines.origin.ignore[6].on: event "conn_state_ack" is not defined in machine origin; define it under events`,
	}},
	{"undefaction", "do: [release_connection]", "do: [release]", []string{
		`spec/x.yaml:162:65: machines.origin.transitions[3].do[0]: action "release" is not defined in machine origin; define it under actions`,
	}},
	{"dupstate", "      - {name: failed, final: true}\n", "      - {name: failed, final: true}\n      - {name: failed}\n", []string{
		`spec/x.yaml:144:16: machines.origin.states.failed.name: state "failed" is already defined at line 143; rename one`,
	}},
	{"timeoutfinal", "{name: abandoned, final: true,", "{name: abandoned, final: true, timeout: {after: 1s, retries: 0, exhausted: accepted},", []string{
		`spec/x.yaml:187:49: machines.target.states.abandoned.timeout: final state abandoned cannot have a timeout; remove it or make the state non-final`,
	}},
	{"bytesinheader", "{name: origin_port, bits: 16,", "{name: origin_port, type: bytes, bits: 16,", []string{
		`spec/x.yaml:52:33: header.fields.origin_port.type: bytes fields are only allowed in a message payload; use uint`,
	}},
	{"budgetstages0", "stages: 12 ", "stages: 0 ", []string{
		`spec/x.yaml:17:11: budget.stages: 0 is outside what tofino1 has (1..12); use a value in that range`,
	}},
	{"fromtype", "from: switch", "from: client", []string{
		`spec/x.yaml:107:11: messages.heartbeat_response.from: "client" is not a sender; use server, switch or any`,
	}},
	{"samemessage", "{name: conn_state_ack, message: conn_state_ack}", "{name: conn_state_ack, message: rejected}", []string{
		`spec/x.yaml:148:41: machines.origin.events.conn_state_ack.message: message rejected already raises event rejected; one message raises one event`,
	}},
	{"indexbits21", "index_bits: 16", "index_bits: 21", []string{
		`spec/x.yaml:113:15: directory.index_bits: 21 is outside what tofino1 allows (8..20); lower it or pick target tofino2`,
		`spec/x.yaml:115:38: directory.levels[0].hash.width: a 16-bit CRC cannot index 21 bits; use width: 32 or lower index_bits`,
		`spec/x.yaml:116:41: directory.levels[1].hash.width: a 16-bit CRC cannot index 21 bits; use width: 32 or lower index_bits`,
	}},
	{"transitiontimeout", "      - {from: idle, on: start,", "      - {from: preparing, on: timeout, to: failed}\n      - {from: idle, on: start,", []string{
		`spec/x.yaml:159:31: machines.origin.transitions[0].on: timeout is handled by the state's timeout (retries, exhausted); remove this entry`,
	}},
	{"selfexhausted", "exhausted: failed, give_up: [resume_connection, reclaim_entry]", "exhausted: preparing, give_up: [resume_connection]", []string{
		`spec/x.yaml:137:81: machines.origin.states.preparing.timeout.exhausted: preparing cannot be its own exhausted state (the retries would never end); name the state to give up into`,
	}},
	{"nullname", "name: capybara", "name:", []string{
		`spec/x.yaml:5:6: name: has no value; set it`,
	}},
	{"alias", "  udp_port: 7071\n  mtu: 1500\n", "  udp_port: &m 7071\n  mtu: *m\n", []string{
		`spec/x.yaml:26:8: transport.mtu: YAML aliases are not supported; write the value out`,
	}},
	// directory.release names a header-only message from a server that the
	// switch does not otherwise act on.
	{"releaseundef", "release: conn_closed ", "release: conn_close ", []string{
		`spec/x.yaml:120:12: directory.release: "conn_close" is not a message; name the message a server sends when a migrated connection it holds has finished, and define it under messages (for example {name: conn_closed, stage: conn_closed, from: server})`,
	}},
	{"releaseack", "release: conn_closed ", "release: prepare_mig_ack ", []string{
		`spec/x.yaml:120:12: directory.release: prepare_mig_ack is a message the switch already acts on (it installs the directory entry from it when its load flag is set); give the release a message and stage of its own, such as conn_closed`,
	}},
	{"releaseheartbeat", "release: conn_closed ", "release: heartbeat_update ", []string{
		`spec/x.yaml:120:12: directory.release: heartbeat_update is a message the switch already acts on (it updates the minimum-workload register with it (workload.heartbeat)); give the release a message and stage of its own, such as conn_closed`,
	}},
	{"releasefrom", "    stage: conn_closed\n    from: server\n", "    stage: conn_closed\n    from: any\n", []string{
		`spec/x.yaml:120:12: directory.release: message conn_closed is from: any; a release is a server's report about a connection it holds (the switch drops TCPMig from other ports), so set from: server on it`,
	}},
	{"releasepayload", "    stage: conn_closed\n", "    stage: conn_closed\n    payload:\n      - {name: reason, bits: 8}\n", []string{
		`spec/x.yaml:122:12: directory.release: message conn_closed has a payload; the switch reads a release's header only (origin_ip, origin_port, client_ip and client_port name the connection) and echoes it, so remove its payload and fragmented keys`,
	}},
	{"releasename", "release: conn_closed ", "release: ConnClosed ", []string{
		`spec/x.yaml:120:12: directory.release: "ConnClosed" is not a lower_snake identifier (a-z, 0-9, single underscores, starting with a letter); rename it`,
	}},
	{"releaselist", "release: conn_closed ", "release: [conn_closed] ", []string{
		`spec/x.yaml:120:12: directory.release: want a string, got a list`,
	}},
	{"durationnumber", "timeout: {after: 10ms, retries: 8", "timeout: {after: 10, retries: 8", []string{
		`spec/x.yaml:137:26: machines.origin.states.preparing.timeout.after: want a string, got the integer 10; write it like 10ms`,
	}},
	{"bitsnull", "      - {name: workload, bits: 32}\n", "      - {name: workload, bits: ~}\n", []string{
		`spec/x.yaml:104:32: messages.heartbeat_update.payload.workload.bits: has no value; set it`,
	}},
	{"flagconst", "- {name: next_fragment, type: flag,", "- {name: next_fragment, type: flag, const: 1,", []string{
		`spec/x.yaml:58:48: header.fields.next_fragment.const: a flag field cannot be a constant; only uint fields can (make it type: uint with bits: 1)`,
	}},
	{"enumconst", "- {name: stage, type: enum, enum: stage}", "- {name: stage, type: enum, enum: stage, const: 1}", []string{
		`spec/x.yaml:56:53: header.fields.stage.const: an enum field cannot be a constant; only uint fields can (make it type: uint with bits: 4)`,
	}},
	{"payloadconst", "      - {name: workload, bits: 32}\n", "      - {name: workload, bits: 32}\n      - {name: version, bits: 8, const: 3}\n", []string{
		`spec/x.yaml:105:41: messages.heartbeat_update.payload.version.const: a payload field cannot be a constant; the header's constants tell TCPMig apart (move it to the header, or drop const)`,
		`spec/x.yaml:106:5: messages.heartbeat_response: the switch rewrites heartbeat_update into it in place (gen/SWITCH.md), so the two payloads must be as long and neither fragmented (heartbeat_response: 4 bytes, heartbeat_update: 5); make them the same length`,
	}},
	{"headerpipeline", "  name: tcpmig\n", "  name: pipeline\n", []string{
		`spec/x.yaml:47:9: header.name: "pipeline" is the name of a generated or imported package; pick another name for the codec package`,
	}},
	{"heartbeatprepare", "heartbeat: heartbeat_update", "heartbeat: prepare_mig", []string{
		`spec/x.yaml:123:3: workload.heartbeat: prepare_mig is a message the switch already acts on (it steers it to the least-loaded server, or to the target a migration in progress already has); give the heartbeat a message and stage of its own, such as heartbeat_update`,
		`spec/x.yaml:125:17: workload.metric_field: "workload" is not a uint field of prepare_mig's payload; name the field with the load`,
	}},
	{"responseshorter", "      - {name: workload, bits: 32}\n", "      - {name: workload, bits: 32}\n      - {name: queue, bits: 32}\n", []string{
		`spec/x.yaml:106:5: messages.heartbeat_response: the switch rewrites heartbeat_update into it in place (gen/SWITCH.md), so the two payloads must be as long and neither fragmented (heartbeat_response: 4 bytes, heartbeat_update: 8); make them the same length`,
	}},
	{"overmtu", "  - name: conn_state_ack\n    stage: conn_state_ack\n", "  - name: conn_state_ack\n    stage: conn_state_ack\n    payload:\n" + manyFields(190), []string{
		`spec/x.yaml:81:5: messages.conn_state_ack: is 1540 bytes with its header, over the 1472 a datagram holds at MTU 1500; shrink the payload, raise transport.mtu or fragment it`,
	}},
}

// manyFields is n 64-bit payload fields, one a line.
func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "      - {name: f%d, bits: 64}\n", i)
	}
	return b.String()
}

func TestParseBadEdits(t *testing.T) {
	for _, tc := range badEdits {
		t.Run(tc.name, func(t *testing.T) {
			_, err := spec.Parse("spec/x.yaml", spectest.EditYAML(t, tc.old, tc.new))
			checkDiagnostics(t, err, tc.want)
		})
	}
}

// badSnippets are small whole files.
var badSnippets = []struct {
	name, yaml string
	want       []string
}{
	{"empty", "", []string{
		"spec/x.yaml:1:1: the file is empty; it must be a mapping starting with version: 1",
	}},
	{"list", "- version: 1\n", []string{
		"spec/x.yaml:1:1: the file holds a list, not a mapping; it must be a mapping starting with version: 1",
	}},
	{"tab", "version: 1\n\tname: x\n", []string{
		"spec/x.yaml:2:1: yaml: found a tab character that violates indentation; fix the YAML syntax",
	}},
}

func TestParseBadSnippets(t *testing.T) {
	for _, tc := range badSnippets {
		t.Run(tc.name, func(t *testing.T) {
			_, err := spec.Parse("spec/x.yaml", []byte(tc.yaml))
			checkDiagnostics(t, err, tc.want)
		})
	}
}

func checkDiagnostics(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse = nil error, want\n%s", strings.Join(want, "\n"))
	}
	if !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false, want true", err)
	}
	var el *spec.ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("Parse error is %T, want *ErrorList", err)
	}
	got := make([]string, len(el.Errors))
	for i, d := range el.Errors {
		got[i] = d.String()
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("Parse diagnostics:\n%s\nwant:\n%s", g, w)
	}
}
