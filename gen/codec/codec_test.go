package codec

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

func TestDeterministic(t *testing.T) {
	s := spectest.Default(t)
	a, err := Generate(s, genfile.Options{Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		b, err := Generate(s, genfile.Options{Version: "v1.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Fatalf("two runs differ:\n%s", diff)
		}
	}
	for _, name := range a.Names() {
		if !genfile.IsGenerated(a[name]) || !bytes.Contains(a[name], []byte("capygen v1.2.3")) || !bytes.Contains(a[name], []byte(s.Fingerprint)) {
			t.Errorf("%s lacks the generated header with version and fingerprint", name)
		}
	}
}

// TestGolden: generated/tcpmig is the golden copy of the default spec.
func TestGolden(t *testing.T) {
	files, err := Generate(spectest.Default(t), genfile.Options{ImportRoot: genfile.DefaultImportRoot})
	if err != nil {
		t.Fatal(err)
	}
	gentest.MatchCommitted(t, files)
}

func TestEmitterRefuses(t *testing.T) {
	tests := []struct {
		name  string
		edits []string
		want  string
	}{
		{"fragmented without total", []string{"{name: total_length, bits: 32, doc: \"Bytes of the whole serialized state.\"}", "{name: size, bits: 32}"},
			`fragmented but has no uint payload field "total_length"`},
		{"fragments beyond the index", []string{"max_bytes: 16777216", "max_bytes: 200000000"},
			"needs 138122 fragments, more than the 16-bit fragment_index can number"},
		{"name clash", []string{
			"- {name: heartbeat_response, value: 13,", "- {name: tcpmig_layer, value: 8}\n      - {name: heartbeat_response, value: 13,",
			"- name: conn_state_ack\n    stage: conn_state_ack", "- name: tcpmig_layer\n    stage: tcpmig_layer\n  - name: conn_state_ack\n    stage: conn_state_ack"},
			"both become the Go identifier TCPMigLayer"},
		{"field named like a method", []string{"- {name: workload, bits: 32, doc: \"The minimum workload after the update.\"}", "- {name: encode, bits: 32}"},
			"field encode becomes Encode, which the generated code already uses"},
		{"header field named data", []string{`- {name: epoch, bits: 8, doc: "Names one migration of a connection: the origin picks it and every message of the migration carries it, so a late message of another migration of the same connection is told apart."}`, "- {name: data, bits: 8}"},
			"clashes with the fragment bytes field Data"},
		{"unaligned address", []string{"- {name: origin_ip, type: ipv4", "- {name: pad, bits: 4, reserved: true}\n    - {name: origin_ip, type: ipv4",
			"- {name: origin_port, bits: 16", "- {name: pad2, bits: 4, reserved: true}\n    - {name: origin_port, bits: 16"},
			"origin_ip is an address at bit 36"},
	}
	for _, tt := range tests {
		s, err := spec.Parse(spectest.EditedName, spectest.EditYAML(t, tt.edits...))
		if err != nil {
			// The loader may already refuse it; that is fine too.
			t.Logf("%s: the loader refuses it: %v", tt.name, err)
			continue
		}
		if _, err := Generate(s, genfile.Options{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Generate = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// variantEdits change the port, the MTU, the header and the messages: an
// extra stage with a message whose fields are not whole Go integers and end
// in a length-prefixed byte string, and extra heartbeat fields.
var variantEdits = []string{
	"udp_port: 7071", "udp_port: 9099",
	"mtu: 1500", "mtu: 9000",
	`- {name: epoch, bits: 8, doc: "Names one migration of a connection: the origin picks it and every message of the migration carries it, so a late message of another migration of the same connection is told apart."}`, "- {name: hops, bits: 8}",
	"- {name: heartbeat_response, value: 13,", "- {name: drain, value: 8, doc: \"Stop sending new connections.\"}\n      - {name: heartbeat_response, value: 13,",
	"- name: heartbeat_update\n    stage: heartbeat_update\n    payload:\n      - {name: workload, bits: 32}",
	"- name: heartbeat_update\n    stage: heartbeat_update\n    payload:\n      - {name: workload, bits: 32}\n      - {name: queue_depth, bits: 16}\n      - {name: server_mac, type: mac}\n" +
		"  - name: drain\n    stage: drain\n    payload:\n      - {name: reason, bits: 12}\n      - {name: urgent, type: flag}\n      - {name: spare, bits: 3, reserved: true}\n      - {name: note, type: bytes, bits: 8}",
	// The switch answers a heartbeat in place: its response is as long.
	`- {name: workload, bits: 32, doc: "The minimum workload after the update."}`,
	`- {name: workload, bits: 32, doc: "The minimum workload after the update."}` + "\n      - {name: queue_depth, bits: 16}\n      - {name: server_mac, type: mac}",
}

func TestVariantSpec(t *testing.T) {
	s := spectest.Edit(t, variantEdits...)
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The spec is shared by every emitter: Generate must not change it.
	if note := s.MessageByName("drain").Payload[3]; note.Type != spec.TypeBytes {
		t.Errorf("Generate changed drain.note's type to %q", note.Type)
	}
	all := ""
	for _, n := range files.Names() {
		all += string(files[n])
	}
	for _, want := range []string{
		"UDPPort uint16 = 9099", "LayerTypeNumber = 1099", "MTU = 9000", "ConnStateFragmentBytes = 8948",
		"type Drain struct", "Reason uint16", "Urgent bool", "Note []byte", "QueueDepth uint16", "ServerMAC [6]byte",
		"Hops uint8", "StageDrain Stage = 8", "func FuzzDecodeDrain(", "func BenchmarkEncodeDrain(", "func BenchmarkDecodeDrain(",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the variant's output lacks %q", want)
		}
	}
	wrap := spectest.Edit(t, "checksum: udp", "checksum: wrapping16", "udp_port: 7071", "udp_port: 7072")
	wfiles, err := Generate(wrap, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(wfiles["tcpmig/udp.go"], []byte("16-bit wrapping sum")) || bytes.Contains(wfiles["tcpmig/udp.go"], []byte("onesSum")) {
		t.Error("udp.go does not implement the wrapping16 checksum alone")
	}
	// No fragmented message and no constant field: no reassembler, no magic.
	plain := spectest.Edit(t, "{name: magic, bits: 32, const: 0xCAFEDEAD, doc: \"Marks a TCPMig datagram.\"}", "{name: magic, bits: 32}",
		"    fragmented:\n      index_field: fragment_index\n      more_field: next_fragment\n      max_bytes: 16777216\n      max_pending: 256\n      timeout: 200ms\n", "")
	pfiles, err := Generate(plain, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pfiles["tcpmig/fragment.go"]; ok || bytes.Contains(pfiles["tcpmig/codec.go"], []byte("MagicValue")) {
		t.Error("a spec without fragmented messages or constants still gets a reassembler or a magic check")
	}
	// A header enum besides the stage, and an enum value past 2^63.
	enums := spectest.Edit(t, "enums:\n", "enums:\n  - name: kind\n    bits: 2\n    values:\n      - {name: plain, value: 1}\n  - name: big\n    bits: 64\n    values:\n      - {name: top, value: 0xFFFFFFFFFFFFFFFF}\n",
		"- {name: flags_reserved, bits: 2, reserved: true}", "- {name: kind, type: enum, enum: kind}",
		"      - {name: workload, bits: 32}\n", "      - {name: workload, bits: 32}\n      - {name: size, type: enum, enum: big}\n",
		`- {name: workload, bits: 32, doc: "The minimum workload after the update."}`, `- {name: workload, bits: 32, doc: "The minimum workload after the update."}`+"\n      - {name: size, type: enum, enum: big}")
	efiles, err := Generate(enums, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	buildModule(t, map[string]genfile.Files{"variant": files, "wrapping": wfiles, "plain": pfiles, "enums": efiles},
		map[string]string{"variant/tcpmig/variant_test.go": variantTest, "wrapping/tcpmig/wrapping_test.go": wrappingTest, "enums/tcpmig/enums_test.go": enumsTest})
}

// enumsTest: Decode refuses a header enum field outside its enum, as it
// does a payload's (it took kind = 3, which Encode then refused).
const enumsTest = `package tcpmig

import (
	"errors"
	"testing"
)

func TestHeaderEnumIsChecked(t *testing.T) {
	m0 := PrepareMig{TCPMigFields: TCPMigFields{Kind: KindPlain}}
	b := make([]byte, m0.EncodedLen())
	if _, err := m0.Encode(b); err != nil {
		t.Fatal(err)
	}
	b[18] |= 0x0C // kind, after the stage nibble: 3 is no value of kind
	var m PrepareMig
	if err := m.Decode(b); !errors.Is(err, ErrFieldRange) {
		t.Errorf("Decode of kind 3 = %v, want ErrFieldRange", err)
	}
	if BigTop != 18446744073709551615 {
		t.Error("BigTop is not 2^64-1")
	}
}
`

// variantTest exercises what only the variant has: a 12-bit field, a flag
// and a bytes field in one payload.
const variantTest = `package tcpmig

import (
	"errors"
	"testing"
)

func TestDrainFields(t *testing.T) {
	m := Drain{Reason: 0xfff, Urgent: true, Note: []byte("bye")}
	b := encoded(t, &m)
	// header, then reason (12 bits) | urgent | spare (3 bits), then the note's length and bytes.
	if got := b[HeaderLen:]; string(got) != "\xff\xf8\x03bye" {
		t.Errorf("payload = %x", got)
	}
	var back Drain
	if err := back.Decode(b); err != nil || back.Reason != 0xfff || !back.Urgent || string(back.Note) != "bye" {
		t.Errorf("Decode = %+v, %v", back, err)
	}
	m.Reason = 0x1000
	if _, err := m.Encode(make([]byte, 64)); !errors.Is(err, ErrFieldRange) {
		t.Errorf("Encode of a 13-bit reason = %v, want ErrFieldRange", err)
	}
	m.Reason, m.Note = 1, make([]byte, 256)
	if _, err := m.Encode(make([]byte, 512)); !errors.Is(err, ErrFieldRange) {
		t.Errorf("Encode of a 256-byte note = %v, want ErrFieldRange", err)
	}
	b[HeaderLen+2] = 9 // the note's length says 9, 3 bytes follow
	if err := back.Decode(b); !errors.Is(err, ErrBadLength) {
		t.Errorf("Decode with a lying length prefix = %v, want ErrBadLength", err)
	}
}
`

const wrappingTest = `package tcpmig

import "testing"

func TestWrapping16(t *testing.T) {
	m := HeartbeatUpdate{Workload: 0xffffffff}
	d := make([]byte, UDPHeaderLen+m.EncodedLen())
	if _, err := m.EncodeUDP(d, testSrc, testDst); err != nil {
		t.Fatal(err)
	}
	var want uint16
	for i := UDPHeaderLen; i < len(d); i += 2 {
		want += uint16(d[i])<<8 | uint16(d[i+1])
	}
	if got := uint16(d[6])<<8 | uint16(d[7]); got != want {
		t.Errorf("checksum field %#x, want the wrapping sum %#x", got, want)
	}
	if DatagramChecksum([4]byte{}, [4]byte{}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff}) != 0xff00 {
		t.Error("an odd last byte is not padded with zero")
	}
}
`

// buildModule writes files into a temporary module, one directory per
// tree, with extra hand-written files, then vets and tests it: the
// generated tests (round trips, fuzz seeds) run against each variant.
func buildModule(t *testing.T, trees map[string]genfile.Files, extra map[string]string) {
	t.Helper()
	dir := gentest.Module(t, nil, "example.com/variant")
	for tree, files := range trees {
		gentest.WriteFiles(t, filepath.Join(dir, tree), files)
	}
	hand := genfile.Files{}
	for name, text := range extra {
		hand[name] = []byte(text)
	}
	gentest.WriteFiles(t, dir, hand)
	for _, args := range [][]string{{"vet", "./..."}, {"test", "-count=1", "./..."}} {
		gentest.Go(t, dir, args...)
	}
}
