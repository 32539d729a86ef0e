package spec_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

func TestDefault(t *testing.T) {
	s, err := spec.Default()
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
	if origin.Initial.Name != "idle" || origin.Events[len(origin.Events)-1].Name != spec.TimeoutEvent {
		t.Errorf("origin machine: initial %s, last event %s", origin.Initial.Name, origin.Events[len(origin.Events)-1].Name)
	}
	prep := origin.States[1]
	if prep.Timeout.Resend.Send != s.MessageByName("prepare_mig") || prep.Timeout.Exhausted.Name != "failed" || prep.Timeout.Retries != 8 {
		t.Errorf("preparing timeout = %+v", *prep.Timeout)
	}
	if r := s.ReleaseMessage(); s.Directory.Release != spec.MessageConnClosed || r == nil || r.Stage.Value != 6 || r.From != "server" || r.PayloadBytes != 0 {
		t.Errorf("directory.release = %q, message %+v; want conn_closed, stage 6, from server, no payload", s.Directory.Release, r)
	}
	if got := s.Directory.DeleteOn; len(got) != 1 || got[0] != "rst" {
		t.Errorf("directory.delete_on = %v, want [rst]", got)
	}
	// Positions point into the file.
	for _, p := range []struct {
		what string
		got  spec.Pos
		want spec.Pos
	}{
		{"stage enum", s.Enums[0].Pos, spec.Pos{File: spec.DefaultPath, Line: 32, Col: 5}},
		{"magic field", s.Header.Fields[0].Pos, spec.Pos{File: spec.DefaultPath, Line: 50, Col: 7}},
		{"directory", s.Directory.Pos, spec.Pos{File: spec.DefaultPath, Line: 112, Col: 3}},
		{"first transition", origin.Transitions[0].Pos, spec.Pos{File: spec.DefaultPath, Line: 159, Col: 9}},
		{"target", s.Target.Pos, spec.Pos{File: "spec/targets/tofino1.yaml", Line: 3, Col: 1}},
	} {
		if p.got != p.want {
			t.Errorf("%s Pos = %v, want %v", p.what, p.got, p.want)
		}
	}
}

// An optional key with no value reads as absent.
func TestEmptyOptional(t *testing.T) {
	s, err := spec.Parse("x.yaml", spectest.EditYAML(t,
		"    ignore:\n      - {in: accepted, on: prepare_mig}\n      - {in: accepted, on: rejected}              # a late repeat of our ACK, after the connection moved on from here\n      - {in: abandoned, on: prepare_mig}\n      - {in: abandoned, on: conn_state}\n      - {in: abandoned, on: rejected}             # REJECTED of a repeated ACK\n",
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
	if err := os.WriteFile(path, spectest.EditYAML(t, "udp_port: 7071", "udp_port: 7072"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := spec.Load(path)
	if err != nil || s.Transport.UDPPort != 7072 || s.Source != path {
		t.Fatalf("Load(%s) = %v, %v; want port 7072 and Source set", path, s, err)
	}
	if _, err := spec.Load(filepath.Join(dir, "missing.yaml")); err == nil || errors.Is(err, spec.ErrInvalid) {
		t.Errorf("Load(missing) = %v, want a read error that is not ErrInvalid", err)
	}
}

// yaml.v3 reads one document and would drop a second one unseen.
func TestParseRefusesASecondDocument(t *testing.T) {
	src := append(spec.DefaultYAML(), "---\nversion: 1\n"...)
	line := strings.Count(string(spec.DefaultYAML()), "\n") + 1
	_, err := spec.Parse("x.yaml", src)
	want := fmt.Sprintf("x.yaml:%d:1: a second YAML document starts here; a spec file holds one, so remove it", line)
	if !errors.Is(err, spec.ErrInvalid) || err.Error() != want {
		t.Errorf("Parse(two documents) = %v, want %s", err, want)
	}
}

// The fingerprint follows meaning, not formatting.
func TestFingerprint(t *testing.T) {
	base, err := spec.Default()
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
		s, err := spec.Parse("other.yaml", spectest.EditYAML(t, e[0], e[1]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Fingerprint != base.Fingerprint {
			t.Errorf("%s edit changed the fingerprint %s -> %s", name, base.Fingerprint, s.Fingerprint)
		}
	}
	differ := map[string][2]string{
		"udp port":  {"udp_port: 7071", "udp_port: 7072"},
		"retries":   {"retries: 8, resend: send_prepare_mig", "retries: 4, resend: send_prepare_mig"},
		"poly":      {"poly: 0x1021", "poly: 0x1022"},
		"stage":     {"{name: heartbeat_response, value: 13,", "{name: heartbeat_response, value: 14,"},
		"action":    {"do: [release_connection]", "do: [release_connection, resume_connection]"},
		"target":    {"target: tofino1", "target: tofino2"},
		"delete_on": {"delete_on: [rst]", "delete_on: [rst, fin]"},
		"release":   {"  release: conn_closed ", "  # release: conn_closed "},
	}
	for name, e := range differ {
		s, err := spec.Parse("other.yaml", spectest.EditYAML(t, e[0], e[1]))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Fingerprint == base.Fingerprint {
			t.Errorf("%s edit kept the fingerprint %s", name, base.Fingerprint)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(spec.DefaultYAML())
	for _, tc := range badEdits {
		f.Add(spectest.EditYAML(f, tc.old, tc.new))
	}
	for _, tc := range badSnippets {
		f.Add([]byte(tc.yaml))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := spec.Parse("fuzz.yaml", data)
		if err != nil {
			var el *spec.ErrorList
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

// ParseNode reads an already decoded tree, edited or not, and takes its
// positions from the nodes: Parse is decode + ParseNode.
func TestParseNode(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(spec.DefaultYAML(), &doc); err != nil {
		t.Fatal(err)
	}
	want, err := spec.Default()
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*yaml.Node{"document": &doc, "root mapping": doc.Content[0]} {
		s, err := spec.ParseNode(spec.DefaultPath, n)
		if err != nil {
			t.Fatalf("%s: ParseNode = %v", name, err)
		}
		if s.Fingerprint != want.Fingerprint || s.Directory.Pos != want.Directory.Pos {
			t.Errorf("%s: fingerprint %s at %v, want %s at %v as Parse gives", name, s.Fingerprint, s.Directory.Pos, want.Fingerprint, want.Directory.Pos)
		}
	}
	// An edited node keeps the position it carries.
	dir := doc.Content[0]
	for i := 0; i+1 < len(dir.Content); i += 2 {
		if dir.Content[i].Value == "directory" {
			dir = dir.Content[i+1]
			break
		}
	}
	for i := 0; i+1 < len(dir.Content); i += 2 {
		if dir.Content[i].Value == "index_bits" {
			dir.Content[i+1].Value = "40"
		}
	}
	_, err = spec.ParseNode("x.yaml", &doc)
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:113:15: directory.index_bits: 40 is outside") {
		t.Errorf("ParseNode(index_bits 40) = %v, want it at 113:15", err)
	}
	for _, n := range []*yaml.Node{nil, {}, {Kind: yaml.DocumentNode}} {
		if _, err := spec.ParseNode("x.yaml", n); !errors.Is(err, spec.ErrInvalid) || !strings.Contains(err.Error(), "x.yaml:1:1: the file is empty") {
			t.Errorf("ParseNode(%v) = %v, want the empty-file error", n, err)
		}
	}
}
