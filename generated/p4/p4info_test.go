package p4

import (
	"testing"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// Every name of the contract resolves in the embedded p4info, as the kind
// of object its constant says; the fingerprint is the pipeline model's.
func TestContractResolves(t *testing.T) {
	info, err := P4Info()
	if err != nil {
		t.Fatal(err)
	}
	if v := info.GetPkgInfo().GetVersion(); v != Fingerprint {
		t.Errorf("pkg_info.version %q, Fingerprint %q: want equal", v, Fingerprint)
	}
	if got, want := Fingerprint, pipeline.Fingerprint; got != want {
		t.Errorf("Fingerprint %q, pipeline.Fingerprint %q: want equal", got, want)
	}
	if info.GetPkgInfo().GetName() != Program || info.GetPkgInfo().GetArch() != Arch {
		t.Errorf("pkg_info %v, want name %q arch %q", info.GetPkgInfo(), Program, Arch)
	}
	names := map[string]string{}
	for _, x := range info.Tables {
		names[x.Preamble.Name] = "table"
	}
	for _, x := range info.Actions {
		names[x.Preamble.Name] = "action"
	}
	for _, x := range info.Counters {
		names[x.Preamble.Name] = "counter"
	}
	for _, x := range info.Registers {
		names[x.Preamble.Name] = "register"
	}
	want := map[string]string{
		TablePortRole: "table", TableIPv4Host: "table", TableL2Forward: "table",
		ActionMiss: "action", ActionSetRole: "action", ActionSetHost: "action", ActionSetPort: "action",
		CounterDrops: "counter", RegisterMinWorkload: "register",
	}
	for l := range Levels {
		want[DirKeyRegisters[l]] = "register"
		want[DirTargetRegisters[l]] = "register"
		want[DirOriginRegisters[l]] = "register"
		want[DirPortRegisters[l]] = "register"
	}
	for name, kind := range want {
		if names[name] != kind {
			t.Errorf("%s is a %q in the p4info, want a %s", name, names[name], kind)
		}
	}
	if Levels != pipeline.Levels {
		t.Errorf("Levels %d, pipeline.Levels %d", Levels, pipeline.Levels)
	}
}

// P4InfoText is a copy: a caller that scribbles on it changes nothing.
func TestP4InfoTextIsACopy(t *testing.T) {
	a := P4InfoText()
	a[0] ^= 0xff
	if b := P4InfoText(); b[0] == a[0] {
		t.Error("P4InfoText returned the embedded slice itself")
	}
}
