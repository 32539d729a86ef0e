package p4

import (
	"fmt"
	"regexp"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// controlPlane is every object of the program the control plane sees; the
// templates' @ids and the p4info are both derived from it.
type controlPlane struct {
	Tables    []cpTable
	Actions   []cpAction
	Registers []cpRegister
	Counters  []cpCounter
	Structs   []cpStruct
}

type cpTable struct {
	Local string
	Keys  []cpParam
	// Actions are action names with their scope.
	Actions      []cpActionRef
	ConstDefault string
	Size         int64
}

type cpActionRef struct {
	Local string
	Scope p4configv1.ActionRef_Scope
}

type cpParam struct {
	Name string
	Bits int32
}

type cpAction struct {
	Local  string
	Params []cpParam
}

type cpRegister struct {
	Local  string
	Size   int32
	Struct string // the cell's struct; empty for a bit<Bits> cell
	Bits   int32
}

type cpCounter struct {
	Local string
	Size  int64
	// Doc says what the cells count, for the control plane.
	Doc string
}

type cpStruct struct {
	Name    string
	Members []cpParam
}

// dropsDoc is the drops counter's documentation in the p4info: its cells
// are drop_reason_t values, and cell 0, which no drop uses, counts the
// stale PREPARE_MIG_ACKs the switch answers REJECTED (gen/SWITCH.md).
const dropsDoc = "Packets dropped, indexed by drop_reason_t (gen/SWITCH.md); cell 0 (DROP_NONE) counts stale PREPARE_MIG_ACKs answered REJECTED, which are not dropped"

func controlPlaneOf(d *data) *controlPlane {
	port := int32(d.PortBits)
	cp := &controlPlane{
		Actions: []cpAction{
			{Local: "miss"},
			{Local: "no_route"},
			{Local: "set_role", Params: []cpParam{{"role", 2}}},
			{Local: "set_host", Params: []cpParam{{"port", port}, {"dst_mac", 48}}},
			{Local: "set_port", Params: []cpParam{{"port", port}}},
		},
		Tables: []cpTable{
			{Local: "port_role", Keys: []cpParam{{"ig_intr_md.ingress_port", port}}, Size: int64(d.Tables.Ports),
				Actions: []cpActionRef{{"set_role", p4configv1.ActionRef_TABLE_ONLY}, {"miss", p4configv1.ActionRef_DEFAULT_ONLY}}, ConstDefault: "miss"},
			{Local: "ipv4_host", Keys: []cpParam{{"hdr.ipv4.dst_addr", 32}}, Size: int64(d.Tables.Hosts),
				Actions: []cpActionRef{{"set_host", p4configv1.ActionRef_TABLE_ONLY}, {"no_route", p4configv1.ActionRef_DEFAULT_ONLY}}, ConstDefault: "no_route"},
			{Local: "l2_forward", Keys: []cpParam{{"hdr.ethernet.dst_addr", 48}}, Size: int64(d.Tables.L2),
				Actions: []cpActionRef{{"set_port", p4configv1.ActionRef_TABLE_ONLY}, {"miss", p4configv1.ActionRef_DEFAULT_ONLY}}, ConstDefault: "miss"},
		},
		Counters: []cpCounter{{Local: "drops", Size: int64(len(d.DropReasons) + 1), Doc: dropsDoc}},
		Structs: []cpStruct{
			{Name: "dir_key_t", Members: []cpParam{{"ip", 32}, {"port", 32}}},
			{Name: "min_workload_t", Members: []cpParam{{"holder_ip", 32}, {"load", 32}}},
		},
	}
	// mig_len_tbl is keyless, with one const default action, as the hash
	// tables are: no control plane writes it.
	cp.Actions = append(cp.Actions, cpAction{Local: "mig_len_check"})
	cp.Tables = append(cp.Tables, cpTable{Local: "mig_len_tbl", Size: 1,
		Actions: []cpActionRef{{"mig_len_check", p4configv1.ActionRef_DEFAULT_ONLY}}, ConstDefault: "mig_len_check"})
	for _, l := range d.Levels {
		cp.Actions = append(cp.Actions, cpAction{Local: l.HashAction()})
		cp.Tables = append(cp.Tables, cpTable{Local: l.HashTable(), Size: 1,
			Actions: []cpActionRef{{l.HashAction(), p4configv1.ActionRef_DEFAULT_ONLY}}, ConstDefault: l.HashAction()})
		cp.Registers = append(cp.Registers,
			cpRegister{Local: l.KeyReg(), Size: int32(d.Entries), Struct: "dir_key_t"},
			cpRegister{Local: l.TargetReg(), Size: int32(d.Entries), Bits: 32},
			cpRegister{Local: l.OriginReg(), Size: int32(d.Entries), Bits: 32},
			cpRegister{Local: l.PortReg(), Size: int32(d.Entries), Bits: 16})
	}
	cp.Registers = append(cp.Registers, cpRegister{Local: "min_workload", Size: 1, Struct: "min_workload_t"})
	return cp
}

func (cp *controlPlane) named() []named {
	var out []named
	for _, t := range cp.Tables {
		out = append(out, named{p4configv1.P4Ids_TABLE, ingress + "." + t.Local})
	}
	for _, a := range cp.Actions {
		out = append(out, named{p4configv1.P4Ids_ACTION, ingress + "." + a.Local})
	}
	for _, r := range cp.Registers {
		out = append(out, named{p4configv1.P4Ids_REGISTER, ingress + "." + r.Local})
	}
	for _, c := range cp.Counters {
		out = append(out, named{p4configv1.P4Ids_COUNTER, ingress + "." + c.Local})
	}
	return out
}

func bits(n int32) *p4configv1.P4DataTypeSpec {
	return &p4configv1.P4DataTypeSpec{TypeSpec: &p4configv1.P4DataTypeSpec_Bitstring{
		Bitstring: &p4configv1.P4BitstringLikeTypeSpec{TypeSpec: &p4configv1.P4BitstringLikeTypeSpec_Bit{
			Bit: &p4configv1.P4BitTypeSpec{Bitwidth: n}}}}}
}

// buildP4Info describes the program for P4Runtime, with the ids of ids.
func buildP4Info(d *data, cp *controlPlane, ids *idTable) (*p4configv1.P4Info, error) {
	var err error
	idOf := func(local string) uint32 {
		if err != nil {
			return 0
		}
		var id uint32
		id, err = ids.id(ingress + "." + local)
		return id
	}
	pre := func(local string) *p4configv1.Preamble {
		return &p4configv1.Preamble{Id: idOf(local), Name: ingress + "." + local, Alias: local}
	}
	info := &p4configv1.P4Info{
		PkgInfo: &p4configv1.PkgInfo{Name: string(d.Name), Version: d.Fingerprint, Arch: d.Arch,
			Doc: &p4configv1.Documentation{Brief: "Generated by capygen from spec " + string(d.Name) + "; see gen/SWITCH.md"}},
		TypeInfo: &p4configv1.P4TypeInfo{Structs: map[string]*p4configv1.P4StructTypeSpec{}},
	}
	for _, t := range cp.Tables {
		tb := &p4configv1.Table{Preamble: pre(t.Local), Size: t.Size}
		for i, k := range t.Keys {
			tb.MatchFields = append(tb.MatchFields, &p4configv1.MatchField{Id: uint32(i + 1), Name: k.Name, Bitwidth: k.Bits,
				Match: &p4configv1.MatchField_MatchType_{MatchType: p4configv1.MatchField_EXACT}})
		}
		for _, a := range t.Actions {
			tb.ActionRefs = append(tb.ActionRefs, &p4configv1.ActionRef{Id: idOf(a.Local), Scope: a.Scope})
		}
		if t.ConstDefault != "" {
			tb.ConstDefaultActionId = idOf(t.ConstDefault)
		}
		info.Tables = append(info.Tables, tb)
	}
	for _, a := range cp.Actions {
		ac := &p4configv1.Action{Preamble: pre(a.Local)}
		for i, p := range a.Params {
			ac.Params = append(ac.Params, &p4configv1.Action_Param{Id: uint32(i + 1), Name: p.Name, Bitwidth: p.Bits})
		}
		info.Actions = append(info.Actions, ac)
	}
	for _, c := range cp.Counters {
		p := pre(c.Local)
		if c.Doc != "" {
			p.Doc = &p4configv1.Documentation{Brief: c.Doc}
		}
		info.Counters = append(info.Counters, &p4configv1.Counter{Preamble: p, Size: c.Size,
			Spec: &p4configv1.CounterSpec{Unit: p4configv1.CounterSpec_PACKETS}})
	}
	for _, r := range cp.Registers {
		ts := bits(r.Bits)
		if r.Struct != "" {
			ts = &p4configv1.P4DataTypeSpec{TypeSpec: &p4configv1.P4DataTypeSpec_Struct{
				Struct: &p4configv1.P4NamedType{Name: r.Struct}}}
		}
		info.Registers = append(info.Registers, &p4configv1.Register{Preamble: pre(r.Local), Size: r.Size, TypeSpec: ts})
	}
	for _, s := range cp.Structs {
		st := &p4configv1.P4StructTypeSpec{}
		for _, m := range s.Members {
			st.Members = append(st.Members, &p4configv1.P4StructTypeSpec_Member{Name: m.Name, TypeSpec: bits(m.Bits)})
		}
		info.TypeInfo.Structs[s.Name] = st
	}
	if err != nil {
		return nil, err
	}
	return info, nil
}

// doubleSpace matches the extra space protobuf-go's text encoder inserts
// at random after a field name ("name:  value", "name  {") so that nobody
// depends on its exact output (internal/detrand). The choice is fixed per
// binary, so two capygen builds would disagree; we normalise it away. It
// only ever appears right after a field name at the start of a line.
var doubleSpace = regexp.MustCompile(`(?m)^([ \t]*[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]\n]*\])?:?) {2,}`)

// marshalP4Info writes info as prototext under the generated-file header.
func marshalP4Info(header string, info *p4configv1.P4Info) ([]byte, error) {
	txt, err := prototext.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("marshal p4info: %w", err)
	}
	txt = normalizeText(txt)
	// The normalised text must still say the same thing.
	back := &p4configv1.P4Info{}
	if err := prototext.Unmarshal(txt, back); err != nil || !proto.Equal(back, info) {
		return nil, fmt.Errorf("p4info text does not round-trip after normalising: %v", err)
	}
	return append([]byte(header), txt...), nil
}

func normalizeText(txt []byte) []byte {
	return doubleSpace.ReplaceAll(txt, []byte("$1 "))
}
