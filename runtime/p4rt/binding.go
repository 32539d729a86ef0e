package p4rt

import (
	"fmt"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"

	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// table is one table as the server serves it: an exact-match table, with
// one match field and one action whose parameters it stores, or a keyless
// one, which holds only its const default entry. The pipeline's own
// methods do the writing; the server keeps no copy of its own.
type table struct {
	id       uint32
	name     string
	size     int64
	keyless  bool
	keyBits  int32
	action   uint32 // the one action an entry may take
	miss     uint32 // the const default action
	params   []int32
	actName  string
	missName string
	keyField string
}

// regKind says which pipeline cells a register's index addresses.
type regKind uint8

const (
	regDirKey regKind = iota
	regDirTarget
	regDirOrigin
	regDirPort
	regMinWorkload
)

// scalarBits is the width of a bit<W> register's cells, 0 for a struct's.
func (k regKind) scalarBits() int32 {
	switch k {
	case regDirPort:
		return 16
	case regDirTarget, regDirOrigin:
		return 32
	}
	return 0
}

// register is one register of the p4info: its cells and member widths
// (a struct's), or its width (bits, a bit<W> register's).
type register struct {
	id      uint32
	name    string
	kind    regKind
	level   int
	size    int64
	members []member
	bits    int32
}

type member struct {
	name string
	bits int32
}

// counter is the drops counter.
type counter struct {
	id   uint32
	name string
	size int64
}

// binding is the p4info resolved to pipeline operations.
type binding struct {
	info       *p4configv1.P4Info
	actions    map[uint32]string // every action of the p4info, by id
	tables     map[uint32]*table
	tableOrder []uint32
	registers  map[uint32]*register
	regOrder   []uint32
	drops      counter
	portRole   uint32
	ipv4Host   uint32
	l2Forward  uint32
}

// bind resolves the generated contract's names in info and checks that
// each object has the shape the pipeline model gives it, so a p4info that
// disagrees with the model fails here, loudly, and never at a Write.
func bind(info *p4configv1.P4Info) (*binding, error) {
	b := &binding{info: info, actions: map[uint32]string{}, tables: map[uint32]*table{}, registers: map[uint32]*register{}}
	actions := map[string]*p4configv1.Action{}
	actionByID := map[uint32]*p4configv1.Action{}
	for _, a := range info.Actions {
		actions[a.GetPreamble().GetName()] = a
		actionByID[a.GetPreamble().GetId()] = a
		b.actions[a.GetPreamble().GetId()] = a.GetPreamble().GetName()
	}
	type exactTable struct {
		action, miss string
		key          int32
		params       []int32
		id           *uint32
	}
	exact := map[string]exactTable{
		p4.TablePortRole:  {p4.ActionSetRole, p4.ActionMiss, pipeline.PortBits, []int32{2}, &b.portRole},
		p4.TableIPv4Host:  {p4.ActionSetHost, p4.ActionNoRoute, 32, []int32{pipeline.PortBits, 48}, &b.ipv4Host},
		p4.TableL2Forward: {p4.ActionSetPort, p4.ActionMiss, 48, []int32{pipeline.PortBits}, &b.l2Forward},
	}
	for _, t := range info.Tables {
		name := t.GetPreamble().GetName()
		x, ok := exact[name]
		if !ok {
			tb, err := keylessTable(t, actionByID)
			if err != nil {
				return nil, err
			}
			b.tables[tb.id] = tb
			b.tableOrder = append(b.tableOrder, tb.id)
			continue
		}
		delete(exact, name)
		miss, ok := actions[x.miss]
		if !ok {
			return nil, fmt.Errorf("p4info has no action %s", x.miss)
		}
		a, ok := actions[x.action]
		if !ok {
			return nil, fmt.Errorf("p4info has no action %s", x.action)
		}
		if len(t.MatchFields) != 1 || t.MatchFields[0].GetMatchType() != p4configv1.MatchField_EXACT || t.MatchFields[0].GetBitwidth() != x.key || t.MatchFields[0].GetId() != 1 {
			return nil, fmt.Errorf("p4info table %s: want one exact match field of %d bits with id 1, have %v", name, x.key, t.MatchFields)
		}
		if len(a.Params) != len(x.params) {
			return nil, fmt.Errorf("p4info action %s: %d params, the pipeline model has %d", x.action, len(a.Params), len(x.params))
		}
		for i, p := range a.Params {
			if p.GetId() != uint32(i+1) || p.GetBitwidth() != x.params[i] {
				return nil, fmt.Errorf("p4info action %s param %s: id %d of %d bits, want id %d of %d bits", x.action, p.GetName(), p.GetId(), p.GetBitwidth(), i+1, x.params[i])
			}
		}
		id := t.GetPreamble().GetId()
		*x.id = id
		b.tables[id] = &table{
			id: id, name: name, size: t.GetSize(), keyBits: x.key, keyField: t.MatchFields[0].GetName(),
			action: a.GetPreamble().GetId(), actName: x.action, miss: miss.GetPreamble().GetId(), missName: x.miss, params: x.params,
		}
		b.tableOrder = append(b.tableOrder, id)
	}
	for _, name := range []string{p4.TablePortRole, p4.TableIPv4Host, p4.TableL2Forward} {
		if _, missing := exact[name]; missing {
			return nil, fmt.Errorf("p4info has no table %s", name)
		}
	}
	regs := map[string]*p4configv1.Register{}
	for _, r := range info.Registers {
		regs[r.GetPreamble().GetName()] = r
	}
	addReg := func(name string, kind regKind, level int, size int64) error {
		r, ok := regs[name]
		if !ok {
			return fmt.Errorf("p4info has no register %s", name)
		}
		if r.GetSize() != int32(size) {
			return fmt.Errorf("p4info register %s has %d cells, the pipeline model %d", name, r.GetSize(), size)
		}
		if bits := kind.scalarBits(); bits > 0 {
			if w := r.GetTypeSpec().GetBitstring().GetBit().GetBitwidth(); w != bits {
				return fmt.Errorf("p4info register %s: want bit<%d> cells, have %v", name, bits, r.GetTypeSpec())
			}
			reg := &register{id: r.GetPreamble().GetId(), name: name, kind: kind, level: level, size: size, bits: bits}
			b.registers[reg.id] = reg
			b.regOrder = append(b.regOrder, reg.id)
			return nil
		}
		st := info.GetTypeInfo().GetStructs()[r.GetTypeSpec().GetStruct().GetName()]
		if st == nil || len(st.Members) != 2 {
			return fmt.Errorf("p4info register %s: want a struct of two members, have %v", name, r.GetTypeSpec())
		}
		reg := &register{id: r.GetPreamble().GetId(), name: name, kind: kind, level: level, size: size}
		for _, m := range st.Members {
			w := m.GetTypeSpec().GetBitstring().GetBit().GetBitwidth()
			if w <= 0 || w > 32 {
				return fmt.Errorf("p4info register %s member %s: want bit<1..32>, have %v", name, m.GetName(), m.GetTypeSpec())
			}
			reg.members = append(reg.members, member{m.GetName(), w})
		}
		b.registers[reg.id] = reg
		b.regOrder = append(b.regOrder, reg.id)
		return nil
	}
	for l := range p4.Levels {
		if err := addReg(p4.DirKeyRegisters[l], regDirKey, l, pipeline.Slots); err != nil {
			return nil, err
		}
		if err := addReg(p4.DirTargetRegisters[l], regDirTarget, l, pipeline.Slots); err != nil {
			return nil, err
		}
		if err := addReg(p4.DirOriginRegisters[l], regDirOrigin, l, pipeline.Slots); err != nil {
			return nil, err
		}
		if err := addReg(p4.DirPortRegisters[l], regDirPort, l, pipeline.Slots); err != nil {
			return nil, err
		}
	}
	if err := addReg(p4.RegisterMinWorkload, regMinWorkload, 0, 1); err != nil {
		return nil, err
	}
	for _, c := range info.Counters {
		if c.GetPreamble().GetName() == p4.CounterDrops {
			b.drops = counter{id: c.GetPreamble().GetId(), name: p4.CounterDrops, size: c.GetSize()}
		}
	}
	if b.drops.id == 0 {
		return nil, fmt.Errorf("p4info has no counter %s", p4.CounterDrops)
	}
	if b.drops.size != int64(pipeline.NumDropReasons) {
		return nil, fmt.Errorf("p4info counter %s has %d cells, the pipeline model %d", p4.CounterDrops, b.drops.size, pipeline.NumDropReasons)
	}
	return b, nil
}

// keylessTable binds a table without match fields whose only action is
// its const default one, with no parameters (the P4 program's
// mig_len_tbl and dir<i>_hash_tbl, which run one action on every packet):
// it holds its default entry and nothing else. Any other table is one the
// pipeline model does not have.
func keylessTable(t *p4configv1.Table, actionByID map[uint32]*p4configv1.Action) (*table, error) {
	name := t.GetPreamble().GetName()
	unknown := fmt.Errorf("p4info table %s is not one the pipeline model has (neither %s, %s, %s nor a keyless table with a const default action and no other)",
		name, p4.TablePortRole, p4.TableIPv4Host, p4.TableL2Forward)
	if len(t.GetMatchFields()) != 0 || t.GetConstDefaultActionId() == 0 {
		return nil, unknown
	}
	for _, r := range t.GetActionRefs() {
		if r.GetScope() != p4configv1.ActionRef_DEFAULT_ONLY {
			return nil, unknown
		}
	}
	a, ok := actionByID[t.GetConstDefaultActionId()]
	if !ok {
		return nil, fmt.Errorf("p4info table %s: its const default action id %d is not in the p4info", name, t.GetConstDefaultActionId())
	}
	if len(a.GetParams()) != 0 {
		return nil, fmt.Errorf("p4info table %s: its const default action %s has parameters, whose values the p4info does not give", name, a.GetPreamble().GetName())
	}
	return &table{id: t.GetPreamble().GetId(), name: name, size: t.GetSize(), keyless: true,
		miss: a.GetPreamble().GetId(), missName: a.GetPreamble().GetName()}, nil
}
