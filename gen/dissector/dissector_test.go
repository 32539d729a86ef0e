package dissector

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/gentest"
	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// TestGolden: generated/wireshark is the golden copy of the default spec.
func TestGolden(t *testing.T) {
	files, err := Generate(spectest.Default(t), genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := files.Names(), []string{"wireshark/tcpmig.lua"}; !cmp.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if !genfile.IsGenerated(files["wireshark/tcpmig.lua"]) {
		t.Error("the dissector lacks the generated-file marker")
	}
	gentest.MatchCommitted(t, files)
}

func TestDeterministic(t *testing.T) {
	s := spectest.Default(t)
	a, _ := Generate(s, genfile.Options{})
	b, _ := Generate(s, genfile.Options{})
	if !cmp.Equal(a, b) {
		t.Fatal("two runs differ")
	}
}

// TestEveryFieldHasItsSpecName: each header and payload field, each stage
// and each flag appears under the spec's own name.
func TestEveryFieldHasItsSpecName(t *testing.T) {
	s := spectest.Default(t)
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lua := string(files["wireshark/tcpmig.lua"])
	for _, f := range s.Header.Fields {
		if !strings.Contains(lua, `"tcpmig.`+f.Name+`", "`+f.Name+`"`) {
			t.Errorf("no ProtoField tcpmig.%s", f.Name)
		}
	}
	for _, m := range s.Messages {
		for _, f := range m.Payload {
			if !strings.Contains(lua, `"tcpmig.`+m.Name+`.`+f.Name+`"`) {
				t.Errorf("no ProtoField tcpmig.%s.%s", m.Name, f.Name)
			}
		}
		if !strings.Contains(lua, "stage == "+itoa(m.Stage.Value)+" then -- "+m.Name) {
			t.Errorf("message %s (stage %d) is not dissected", m.Name, m.Stage.Value)
		}
	}
	for _, v := range s.Enums[0].Values {
		if !strings.Contains(lua, "["+itoa(v.Value)+`] = "`+v.Name+`"`) {
			t.Errorf("stage %s is not named", v.Name)
		}
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

func TestRefusesFieldsWiresharkCannotShow(t *testing.T) {
	f := &spec.Field{Name: "wide", Type: spec.TypeUint, Bits: 64, Offset: 4}
	if _, err := protoField("tcpmig", "", f); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "tcpmig.wide spans 9 bytes") {
		t.Errorf("a 64-bit field at bit 4: %v, want ErrUnsupported naming it", err)
	}
	f = &spec.Field{Name: "wide", Type: spec.TypeUint, Bits: 40}
	if pf, err := protoField("tcpmig", "", f); err != nil || pf.Ctor != "uint64" || pf.Explicit {
		t.Errorf("a 40-bit field: %+v %v, want a uint64 field without a mask", pf, err)
	}
	f = &spec.Field{Name: "odd", Type: spec.TypeUint, Bits: 3, Offset: 7}
	pf, err := protoField("tcpmig", "m", f)
	if err != nil || pf.Len != 2 || pf.Mask != "0x01C0" || pf.Pos != "p + 0" || pf.Shift != 7 {
		t.Errorf("a 3-bit field at bit 7: %+v %v, want 2 bytes, mask 0x01C0, at p + 0, shift 7", pf, err)
	}
}

func TestLuaString(t *testing.T) {
	if got, want := luaString("a \"b\" \\ c\nd"), `"a \"b\" \\ c\nd"`; got != want {
		t.Errorf("luaString = %s, want %s", got, want)
	}
}

// Every constant header field is checked, each by its own bits: a 28-bit
// magic was compared as the whole 32-bit word (so nothing matched), and
// only the last constant field was checked.
func TestEveryConstantIsCheckedByItsBits(t *testing.T) {
	s := spectest.Edit(t, `- {name: magic, bits: 32, const: 0xCAFEDEAD, doc: "Marks a TCPMig datagram."}`, "- {name: magic, bits: 28, const: 0xCAFEDEA}\n    - {name: hops, bits: 4, const: 0}")
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lua := string(files["wireshark/tcpmig.lua"])
	for _, want := range []string{"if tvb(0, 4):bitfield(0, 28) ~= 0xCAFEDEA then", "if tvb(3, 1):bitfield(4, 4) ~= 0x0 then"} {
		if !strings.Contains(lua, want) {
			t.Errorf("the dissector lacks %q", want)
		}
	}
}
