package spec_test

import (
	"strings"
	"testing"

	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

func vetStrings(t *testing.T, y []byte) []string {
	t.Helper()
	s, err := spec.Parse("spec/x.yaml", y)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var out []string
	for _, d := range spec.Vet(s) {
		out = append(out, d.String())
	}
	return out
}

func TestVet(t *testing.T) {
	const (
		finWarning     = "spec/x.yaml:119:14: warning: directory.delete_on: fin deletes the entry at the client's FIN, so the server's remaining segments of a half-closed migrated connection are no longer rewritten; use delete_on: [rst] with release: conn_closed if the application half-closes"
		releaseLine    = "  release: conn_closed            # and this clears the entry once the connection has finished\n"
		leakWarning    = "spec/x.yaml:119:14: warning: directory.delete_on: without fin and without directory.release, the entry of a migrated connection that closes with FIN is never deleted: entries pile up until every new migration is REJECTED; add release: conn_closed (the server reports each finished connection) or delete on fin"
		neverWarning   = "spec/x.yaml:119:14: warning: directory.delete_on: is empty and there is no directory.release, so no entry is ever deleted: entries pile up with every migration until each level's slot is taken and every new migration is REJECTED (the authors' switch had this bug); use delete_on: [rst] with release: conn_closed"
		deleteOnRST    = "delete_on: [rst] "
		deleteOnRSTFIN = "delete_on: [rst, fin] "
	)
	sameHash := "    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true, init: 0x0000, xor_out: 0x0000}\n    - hash: {name: crc16_xmodem, width: 16, poly: 0x1021, reversed: false, init: 0x0000, xor_out: 0x0000}\n"
	for _, tc := range []struct {
		name  string
		edits []string
		want  []string
	}{
		{"default", nil, nil},
		{"fin", []string{deleteOnRST, deleteOnRSTFIN}, []string{finWarning}},
		{"fin and no release", []string{deleteOnRST, deleteOnRSTFIN, releaseLine, ""}, []string{finWarning}},
		{"rst without release leaks FIN-closed entries", []string{releaseLine, ""}, []string{leakWarning}},
		{"release alone deletes", []string{deleteOnRST, "delete_on: [] "}, nil},
		{"never deletes", []string{deleteOnRST, "delete_on: [] ", releaseLine, ""}, []string{neverWarning}},
		{"even poly", []string{"poly: 0x1021, reversed: false", "poly: 0x1020, reversed: false"}, []string{
			"spec/x.yaml:116:13: warning: directory.levels[1].hash: poly 0x1020 ends in 5 zero bits, so 5 of the 16 index bits never change and only 2^11 of the 2^16 slots are used; use an odd polynomial",
		}},
		{"authors' scheme", []string{sameHash,
			"    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true}\n    - hash: {name: crc16_arc, width: 16, poly: 0x8005, reversed: true}\n"},
			[]string{
				"spec/x.yaml:116:13: warning: directory.levels[1].hash: every level uses the same hash crc16_arc, so keys that collide on one level collide on all of them and the extra levels add almost nothing; the 2 levels of 2^16 slots hold 9306 entries when 1% of inserts are rejected, against 18637 with a distinct hash per level (crc16_arc, crc32; 50% of the capacity lost; capygen plan measures the same); give each level its own polynomial",
			}},
		{"two of three", []string{sameHash,
			sameHash + "    - hash: {name: crc16_x2, width: 16, poly: 0x1021}\n"},
			[]string{
				"spec/x.yaml:117:13: warning: directory.levels[2].hash: levels 1 and 2 use the same hash, so a key that collides on one collides on the other; the 3 levels of 2^16 slots hold 48101 entries when 1% of inserts are rejected, against 62521 with a distinct hash per level (crc16_arc, crc16_xmodem, crc32; 23% of the capacity lost; capygen plan measures the same); give each level its own polynomial",
			}},
		{"no aging", []string{"age_step: 1 ", "age_step: 0 "}, []string{
			"spec/x.yaml:123:3: warning: workload: age_step is 0, so a least-loaded server that dies stays the switch's minimum, and every PREPARE goes to it, until a smaller load is reported, which may be never; add age_step: 1 (gen/SWITCH.md)",
		}},
		{"well-known port", []string{"udp_port: 7071", "udp_port: 80"}, []string{
			"spec/x.yaml:25:13: warning: transport.udp_port: 80 is a well-known port (below 1024): servers need privileges to bind it and it may clash with a system service, whose datagrams the switch then parses as TCPMig; use a port of 1024 or above, like 7071",
		}},
		{"port 1024 is fine", []string{"udp_port: 7071", "udp_port: 1024"}, nil},
		{"no constant", []string{`{name: magic, bits: 32, const: 0xCAFEDEAD, doc: "Marks a TCPMig datagram."}`, `{name: magic, bits: 32}`}, []string{
			"spec/x.yaml:47:3: warning: header: no field is a constant, so the switch takes every datagram to UDP port 7071 as TCPMig, and drops a client's as spoofed control; add a magic such as {name: magic, bits: 32, const: 0xCAFEDEAD}",
		}},
		// bf-p4c applies a reflected CRC's init as spec.CRC.Sum does
		// (gen/p4's TestP4CRCMatchesTheSpec ports its computation).
		{"reflected init", []string{"reversed: true, init: 0x0000", "reversed: true, init: 0x0001"}, nil},
		{"unused action", []string{"      - {name: free_buffer,", "      - {name: spare}\n      - {name: free_buffer,"}, []string{
			"spec/x.yaml:198:9: warning: machines.target.actions.spare: no transition or timeout does it; remove it or use it",
		}},
		{"unhandled event", []string{"      - {name: conn_state, message: conn_state,", "      - {name: surprise}\n      - {name: conn_state, message: conn_state,"}, []string{
			"spec/x.yaml:190:9: warning: machines.target.events.surprise: no state handles or ignores it, so it is an error in every state; add a transition or remove it",
		}},
		{"stuck state", []string{"      - {name: failed, final: true}\n", "      - {name: failed}\n"}, []string{
			"spec/x.yaml:143:9: warning: machines.origin.states.failed: no transition or timeout leaves this non-final state, so a machine can stay in it forever; add a timeout, a way out, or mark it final",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := spec.DefaultYAML()
			if len(tc.edits) > 0 {
				y = spectest.EditYAML(t, tc.edits...)
			}
			if got := vetStrings(t, y); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Vet =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A zero polynomial never comes out of Parse (it refuses it), but a spec
// built in code can have one; Vet says what it does without "64 zero bits".
func TestVetZeroPoly(t *testing.T) {
	s, err := spec.Parse("spec/x.yaml", spec.DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	s.Directory.Levels[1].Hash.Poly = 0
	var got []string
	for _, d := range spec.Vet(s) {
		got = append(got, d.String())
	}
	want := "spec/x.yaml:116:13: warning: directory.levels[1].hash: poly 0x0 is zero, so the CRC of every key is its init value and every key lands in one slot; use an odd polynomial"
	if len(got) != 1 || got[0] != want {
		t.Errorf("Vet(poly 0) =\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

// ConstantIndexBits agrees with the real hash: the slots a level can reach
// are 2^(IndexBits - constant bits).
func TestConstantIndexBits(t *testing.T) {
	for _, c := range []spec.CRC{
		{Name: "odd", Width: 16, Poly: 0x8005},
		{Name: "even", Width: 16, Poly: 0x8004},
		{Name: "even4", Width: 16, Poly: 0x1230},
		{Name: "even_reversed", Width: 16, Poly: 0x8004, Reversed: true},
		{Name: "even_reversed_wide", Width: 16, Poly: 0x1000, Reversed: true},
		{Name: "even32", Width: 32, Poly: 0x04C11DB6, Init: 0xFFFFFFFF},
	} {
		d := &spec.Directory{IndexBits: 16, Levels: []*spec.Level{{Hash: &c}}}
		seen := map[uint32]bool{}
		for i := uint32(0); i < 1<<18; i++ {
			seen[d.Index(0, [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}, uint16(i*2654435761>>16))] = true
		}
		k := spec.ConstantIndexBits(d, &c)
		if want := 1 << (16 - k); len(seen) > want || len(seen) < want*9/10 {
			t.Errorf("%s: %d constant bits predicts %d slots, the hash reached %d", c.Name, k, want, len(seen))
		}
	}
}
