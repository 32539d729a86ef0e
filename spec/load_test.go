package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatalf("Default() = %v", err)
	}
	if s.Header.Bytes != 20 {
		t.Errorf("header bytes = %d, want 20 (the authors' TCPMig header)", s.Header.Bytes)
	}
	stage := s.HeaderField("stage")
	if stage.Offset != 18*8 || stage.Bits != 4 || stage.Enum != s.StageEnum() {
		t.Errorf("stage field = offset %d bits %d, want offset 144 bits 4 of the stage enum", stage.Offset, stage.Bits)
	}
	cs := s.MessageByName("conn_state")
	if cs.Fragmentation.FragmentBytes != 1500-28-20-4 || cs.Fragmentation.Timeout != 200*time.Millisecond {
		t.Errorf("conn_state fragmentation = %+v", *cs.Fragmentation)
	}
	if s.MessageByName("rejected").From != "any" || s.MessageByName("prepare_mig").From != "server" {
		t.Errorf("message senders not resolved")
	}
	if s.Budget.SRAMBlocks != 12*80*40/100 || s.Budget.Stages != 12 {
		t.Errorf("budget = %+v", s.Budget)
	}
	origin := s.Machines[0]
	if origin.Initial.Name != "idle" || origin.Events[len(origin.Events)-1].Name != TimeoutEvent {
		t.Errorf("origin machine: initial %s, last event %s", origin.Initial.Name, origin.Events[len(origin.Events)-1].Name)
	}
	prep := origin.States[1]
	if prep.Timeout.Resend.Send != s.MessageByName("prepare_mig") || prep.Timeout.Exhausted.Name != "failed" {
		t.Errorf("preparing timeout = %+v", *prep.Timeout)
	}
	// Positions point into the file.
	for _, p := range []struct {
		what string
		got  Pos
		want Pos
	}{
		{"stage enum", s.Enums[0].Pos, Pos{DefaultPath, 32, 5}},
		{"magic field", s.Header.Fields[0].Pos, Pos{DefaultPath, 48, 7}},
		{"directory", s.Directory.Pos, Pos{DefaultPath, 92, 3}},
		{"first transition", origin.Transitions[0].Pos, Pos{DefaultPath, 135, 9}},
		{"target", s.Target.Pos, Pos{"spec/targets/tofino1.yaml", 3, 1}},
	} {
		if p.got != p.want {
			t.Errorf("%s Pos = %v, want %v", p.what, p.got, p.want)
		}
	}
}

// An optional key with no value reads as absent.
func TestEmptyOptional(t *testing.T) {
	s, err := Parse("x.yaml", editDefault(t,
		"    ignore:\n      - {in: accepted, on: prepare_mig}\n      - {in: abandoned, on: prepare_mig}\n      - {in: abandoned, on: conn_state}\n",
		"    ignore:\n"))
	if err != nil {
		t.Fatalf("Parse with an empty ignore list: %v", err)
	}
	if n := len(s.Machines[1].Ignores); n != 0 {
		t.Errorf("target ignores = %d, want 0", n)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(path, editDefault(t, "udp_port: 7071", "udp_port: 7072"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(path)
	if err != nil || s.Transport.UDPPort != 7072 || s.Source != path {
		t.Fatalf("Load(%s) = %v, %v; want port 7072 and Source set", path, s, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("Load(missing) = %v, want a read error that is not ErrInvalid", err)
	}
}

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
	d := &decoder{file: "spec/targets/bad.yaml"}
	d.target([]byte("version: 1\nname: bad\narch: v1model\ntofino_version: 3\nstages: {value: 0}\n"))
	sortDiagnostics(d.diags)
	var got []string
	for _, x := range d.diags {
		got = append(got, x.String())
	}
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

// The fingerprint follows meaning, not formatting.
func TestFingerprint(t *testing.T) {
	base, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	same := map[string][2]string{
		"comment":     {"udp_port: 7071", "udp_port: 7071   # the TCPMig port\n  # more words"},
		"block style": {"{name: magic, bits: 32, const: 0xCAFEDEAD, doc: \"Marks a TCPMig datagram.\"}", "name: magic\n      bits: 32\n      const: 3405700781\n      doc: Marks a TCPMig datagram."},
		"key order":   {"  udp_port: 7071\n  mtu: 1500\n", "  mtu: 1500\n  udp_port: 7071\n"},
		"doc":         {"doc: The server that moves a connection out.", "doc: The server that moves connections away."},
		"percent":     {"sram: 40%", "sram: 40.0%"},
	}
	for name, e := range same {
		s, err := Parse("other.yaml", editDefault(t, e[0], e[1]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Fingerprint != base.Fingerprint {
			t.Errorf("%s edit changed the fingerprint %s -> %s", name, base.Fingerprint, s.Fingerprint)
		}
	}
	differ := map[string][2]string{
		"udp port":  {"udp_port: 7071", "udp_port: 7072"},
		"retries":   {"retries: 3, resend: send_prepare_mig", "retries: 4, resend: send_prepare_mig"},
		"poly":      {"poly: 0x1021", "poly: 0x1022"},
		"stage":     {"{name: heartbeat_response, value: 13,", "{name: heartbeat_response, value: 14,"},
		"action":    {"do: [release_connection]", "do: [release_connection, resume_connection]"},
		"target":    {"target: tofino1", "target: tofino2"},
		"delete_on": {"delete_on: [rst, fin]", "delete_on: [rst]"},
	}
	for name, e := range differ {
		s, err := Parse("other.yaml", editDefault(t, e[0], e[1]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Fingerprint == base.Fingerprint {
			t.Errorf("%s edit kept the fingerprint %s", name, base.Fingerprint)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(defaultSpec)
	for _, tc := range badEdits {
		f.Add(editDefault(f, tc.old, tc.new))
	}
	for _, tc := range badSnippets {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var el *ErrorList
			if !errors.As(err, &el) || len(el.Errors) == 0 {
				t.Fatalf("Parse error %T %v, want a non-empty *ErrorList", err, err)
			}
			for _, d := range el.Errors {
				if d.Pos.Line < 1 || d.Pos.Col < 1 || d.Msg == "" {
					t.Fatalf("diagnostic %q has no position or message", d)
				}
			}
			return
		}
		if s.Fingerprint == "" || s.Target == nil || s.Header == nil || s.Directory == nil || len(s.Directory.Levels) == 0 {
			t.Fatalf("valid spec lacks resolved parts: %+v", s)
		}
		for _, m := range s.Machines {
			if m.Initial == nil {
				t.Fatalf("machine %s has no initial state", m.Name)
			}
		}
	})
}
