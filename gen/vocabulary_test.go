package gen

import (
	"go/scanner"
	"go/token"
	"strconv"
	"strings"
	"testing"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// relaidHeader is the default spec with every TCPMig number the codec owns
// moved: another magic, every stage at another value, the header's fields
// in another order and two bytes longer, so every field but magic sits at
// another offset, and the heartbeats' workload at other payload offsets.
// The directory, the UDP port and every name stay, so nothing else a
// generated package may legitimately spell changes.
func relaidHeader(t *testing.T) *spec.Spec {
	return spectest.Edit(t,
		"const: 0xCAFEDEAD", "const: 0x5EEDF00D",
		"{name: rejected, value: 1,", "{name: rejected, value: 9,",
		"{name: prepare_mig, value: 2,", "{name: prepare_mig, value: 10,",
		"{name: prepare_mig_ack, value: 3,", "{name: prepare_mig_ack, value: 11,",
		"{name: conn_state, value: 4,", "{name: conn_state, value: 14,",
		"{name: conn_state_ack, value: 5,", "{name: conn_state_ack, value: 15,",
		"{name: conn_closed, value: 6,", "{name: conn_closed, value: 8,",
		"{name: heartbeat_update, value: 12,", "{name: heartbeat_update, value: 3,",
		"{name: heartbeat_response, value: 13,", "{name: heartbeat_response, value: 2,",
		// Swap the origin and client address pairs, and move fragment_index
		// to the end: every offset after magic changes.
		"    - {name: origin_ip, type: ipv4, doc: \"The address the client knows the server by.\"}\n    - {name: origin_port, bits: 16, doc: \"The server's TCP port of the connection.\"}\n    - {name: client_ip, type: ipv4}\n    - {name: client_port, bits: 16}\n    - {name: fragment_index, bits: 16, doc: \"Index of this CONN_STATE fragment.\"}\n",
		"    - {name: client_ip, type: ipv4}\n    - {name: client_port, bits: 16}\n    - {name: origin_ip, type: ipv4, doc: \"The address the client knows the server by.\"}\n    - {name: origin_port, bits: 16, doc: \"The server's TCP port of the connection.\"}\n",
		// ... and a 22-byte header.
		"is told apart.\"}\n", "is told apart.\"}\n    - {name: fragment_index, bits: 16, doc: \"Index of this CONN_STATE fragment.\"}\n    - {name: hops, bits: 16}\n",
		// The workload moves within both heartbeats' payloads.
		"    stage: heartbeat_update\n    payload:\n", "    stage: heartbeat_update\n    payload:\n      - {name: queue, bits: 16}\n",
		"      - {name: workload, bits: 32, doc: \"The minimum workload", "      - {name: hint, bits: 16}\n      - {name: workload, bits: 32, doc: \"The minimum workload",
	)
}

// TestOnlyTCPMigSpellsTheHeader is the check that the TCPMig layout lives
// in one generated package: regenerating with another magic, other stage
// values and other field offsets must change generated/tcpmig and the P4
// program (a separate language, which must spell its own header) and not
// one byte of any other generated Go file, apart from the lines naming the
// spec's fingerprint. A package that wrote a stage number, the magic or an
// offset of its own would differ.
func TestOnlyTCPMigSpellsTheHeader(t *testing.T) {
	def := spectest.Default(t)
	moved := relaidHeader(t)
	moved.Source = def.Source
	a, err := Generate(def, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(moved, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if string(a["tcpmig/codec.go"]) == string(b["tcpmig/codec.go"]) {
		t.Fatal("the edited spec did not change generated/tcpmig; the test's edits no longer apply")
	}
	checked := 0
	for _, n := range a.Names() {
		if !strings.HasSuffix(n, ".go") || strings.HasPrefix(n, "tcpmig/") {
			continue
		}
		checked++
		got := withoutFingerprint(string(b[n]), moved.Fingerprint)
		want := withoutFingerprint(string(a[n]), def.Fingerprint)
		if got != want {
			t.Errorf("%s changes when only the TCPMig magic, stage values and field offsets change; it must use generated/tcpmig's names for them:\n%s",
				n, firstDifference(want, got))
		}
	}
	if checked == 0 {
		t.Fatal("no generated Go file outside tcpmig/ was checked")
	}
}

// TestNoMagicOutsideTCPMig scans every generated Go file outside tcpmig/
// for the magic's value in any base, comments included.
func TestNoMagicOutsideTCPMig(t *testing.T) {
	s := spectest.Default(t)
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const magic = 0xCAFEDEAD
	for _, n := range files.Names() {
		if !strings.HasSuffix(n, ".go") || strings.HasPrefix(n, "tcpmig/") {
			continue
		}
		src := files[n]
		if strings.Contains(strings.ToLower(string(src)), "cafedead") {
			t.Errorf("%s spells the TCPMig magic; use tcpmig.MagicValue", n)
		}
		fset := token.NewFileSet()
		var sc scanner.Scanner
		sc.Init(fset.AddFile(n, -1, len(src)), src, nil, 0)
		for {
			pos, tok, lit := sc.Scan()
			if tok == token.EOF {
				break
			}
			if tok != token.INT {
				continue
			}
			if v, err := strconv.ParseUint(strings.ReplaceAll(lit, "_", ""), 0, 64); err == nil && v == magic {
				t.Errorf("%s: %s is the TCPMig magic (%s); use tcpmig.MagicValue", n, fset.Position(pos), lit)
			}
		}
	}
}

func withoutFingerprint(src, fp string) string {
	return strings.ReplaceAll(src, fp, "FINGERPRINT")
}

// firstDifference shows the first differing line of two texts.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) && i < len(g); i++ {
		if w[i] != g[i] {
			return "line " + strconv.Itoa(i+1) + ":\n  default: " + w[i] + "\n  edited:  " + g[i]
		}
	}
	return "one is a prefix of the other (" + strconv.Itoa(len(w)) + " and " + strconv.Itoa(len(g)) + " lines)"
}
