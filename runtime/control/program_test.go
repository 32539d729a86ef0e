package control_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capygen/capygen/runtime/control"
)

// TestStateJSON: -show -json prints MACs in the colon form and every key
// in snake_case, and reads back.
func TestStateJSON(t *testing.T) {
	_, d := server(t)
	c := dial(t, d, 1)
	if _, err := c.Deploy(context.Background(), rack(), control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ports":[{"id":0,"role":"client"}`, `{"addr":"10.77.0.11","port":1,"mac":"02:00:00:00:00:0b"}`,
		`"min_workload":{"holder":"0.0.0.0","load":4294967295}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	var back control.State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st.Hosts, back.Hosts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("hosts read back from JSON (-want +got):\n%s", diff)
	}
	var m control.MAC
	if err := json.Unmarshal([]byte(`"02:00:00:00:00"`), &m); err == nil || !strings.Contains(err.Error(), "not an Ethernet address") {
		t.Errorf("a short MAC = %v, want refused", err)
	}
}

// TestProgramDocuments: a file with no program is refused by name (read
// as an empty program it would delete every entry), and so is a second
// document, which would be ignored; a trailing --- is harmless.
func TestProgramDocuments(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"", "program rack.yaml: the file holds no program"},
		{"# nothing yet\n", "program rack.yaml: the file holds no program"},
		{"ports: []\n---\nhosts: []\n", "program rack.yaml: line 2: a second YAML document starts here"},
		{"ports: [{id: 0, role: client}]\n\n---\n# more\nhosts: []\n", "program rack.yaml: line 3: a second YAML document"},
	} {
		if _, err := control.ParseProgram("rack.yaml", []byte(c.src)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseProgram(%q) = %v, want %q", c.src, err, c.want)
		}
	}
	for _, src := range []string{"ports: []\n", "ports: [{id: 0, role: client}]\n---\n"} {
		if _, err := control.ParseProgram("rack.yaml", []byte(src)); err != nil {
			t.Errorf("ParseProgram(%q) = %v", src, err)
		}
	}
}
