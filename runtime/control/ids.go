package control

import (
	"fmt"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"

	p4 "github.com/capygen/capygen/generated/p4"
)

// tableIDs are one exact-match table's ids: the table, its match field,
// its action and the action's parameters, in the order the client gives
// their values.
type tableIDs struct {
	name   string
	id     uint32
	field  uint32
	bits   int32
	action uint32
	params []uint32
}

// ids is every object the client touches, resolved by name.
type ids struct {
	portRole, ipv4Host, l2       tableIDs
	dirKey, dirTarget, dirOrigin []uint32 // by level
	dirSlots                     int64
	minWorkload                  uint32
	drops                        uint32
	dropCells                    int64
	names                        map[uint32]string
}

// resolve finds every name the client uses in info; an unknown table,
// field, action, parameter, register or counter fails, naming it and
// what the p4info has instead.
func resolve(info *p4configv1.P4Info) (*ids, error) {
	x := &ids{names: map[uint32]string{}}
	tables := map[string]*p4configv1.Table{}
	for _, t := range info.GetTables() {
		tables[t.GetPreamble().GetName()] = t
		x.names[t.GetPreamble().GetId()] = t.GetPreamble().GetName()
	}
	actions := map[string]*p4configv1.Action{}
	for _, a := range info.GetActions() {
		actions[a.GetPreamble().GetName()] = a
	}
	table := func(dst *tableIDs, name, field, action string, params ...string) error {
		t, ok := tables[name]
		if !ok {
			return fmt.Errorf("control: the p4info has no table %s (it has: %s)", name, names(info.GetTables()))
		}
		dst.name, dst.id = name, t.GetPreamble().GetId()
		for _, m := range t.GetMatchFields() {
			if m.GetName() == field {
				dst.field, dst.bits = m.GetId(), m.GetBitwidth()
			}
		}
		if dst.field == 0 {
			return fmt.Errorf("control: table %s has no match field %s", name, field)
		}
		a, ok := actions[action]
		if !ok {
			return fmt.Errorf("control: the p4info has no action %s (it has: %s)", action, names(info.GetActions()))
		}
		dst.action = a.GetPreamble().GetId()
		for _, p := range params {
			id := uint32(0)
			for _, ap := range a.GetParams() {
				if ap.GetName() == p {
					id = ap.GetId()
				}
			}
			if id == 0 {
				return fmt.Errorf("control: action %s has no parameter %s", action, p)
			}
			dst.params = append(dst.params, id)
		}
		return nil
	}
	if err := table(&x.portRole, p4.TablePortRole, p4.KeyPortRole, p4.ActionSetRole, p4.ParamSetRoleRole); err != nil {
		return nil, err
	}
	if err := table(&x.ipv4Host, p4.TableIPv4Host, p4.KeyIPv4Host, p4.ActionSetHost, p4.ParamSetHostPort, p4.ParamSetHostDstMAC); err != nil {
		return nil, err
	}
	if err := table(&x.l2, p4.TableL2Forward, p4.KeyL2Forward, p4.ActionSetPort, p4.ParamSetPortPort); err != nil {
		return nil, err
	}
	regs := map[string]*p4configv1.Register{}
	for _, r := range info.GetRegisters() {
		regs[r.GetPreamble().GetName()] = r
		x.names[r.GetPreamble().GetId()] = r.GetPreamble().GetName()
	}
	reg := func(name string) (*p4configv1.Register, error) {
		r, ok := regs[name]
		if !ok {
			return nil, fmt.Errorf("control: the p4info has no register %s (it has: %s); was the program compiled with --p4runtime-force-std-externs?", name, names(info.GetRegisters()))
		}
		return r, nil
	}
	for l := range p4.Levels {
		k, err := reg(p4.DirKeyRegisters[l])
		if err != nil {
			return nil, err
		}
		tg, err := reg(p4.DirTargetRegisters[l])
		if err != nil {
			return nil, err
		}
		og, err := reg(p4.DirOriginRegisters[l])
		if err != nil {
			return nil, err
		}
		x.dirKey = append(x.dirKey, k.GetPreamble().GetId())
		x.dirTarget = append(x.dirTarget, tg.GetPreamble().GetId())
		x.dirOrigin = append(x.dirOrigin, og.GetPreamble().GetId())
		x.dirSlots = int64(k.GetSize())
	}
	mw, err := reg(p4.RegisterMinWorkload)
	if err != nil {
		return nil, err
	}
	x.minWorkload = mw.GetPreamble().GetId()
	for _, c := range info.GetCounters() {
		if c.GetPreamble().GetName() == p4.CounterDrops {
			x.drops, x.dropCells = c.GetPreamble().GetId(), c.GetSize()
		}
	}
	if x.drops == 0 {
		return nil, fmt.Errorf("control: the p4info has no counter %s (it has: %s)", p4.CounterDrops, names(info.GetCounters()))
	}
	return x, nil
}
