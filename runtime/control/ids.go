package control

import (
	"encoding/binary"
	"fmt"
	"strings"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"

	p4 "github.com/capygen/capygen/generated/p4"
	"github.com/capygen/capygen/runtime/internal/bytestring"
)

// tableIDs are one exact-match table's ids: the table, its match field,
// its action and the action's parameters, in the order the client gives
// their values.
type tableIDs struct {
	name      string
	id        uint32
	field     uint32
	fieldName string
	bits      int32
	action    uint32
	params    []uint32
	// paramNames and paramBits are the params' names and widths.
	paramNames []string
	paramBits  []int32
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
				dst.field, dst.fieldName, dst.bits = m.GetId(), field, m.GetBitwidth()
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
			id, bits := uint32(0), int32(0)
			for _, ap := range a.GetParams() {
				if ap.GetName() == p {
					id, bits = ap.GetId(), ap.GetBitwidth()
				}
			}
			if id == 0 {
				return fmt.Errorf("control: action %s has no parameter %s", action, p)
			}
			dst.params = append(dst.params, id)
			dst.paramNames = append(dst.paramNames, action+"'s "+p)
			dst.paramBits = append(dst.paramBits, bits)
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

// checkWidths reports every value of prog that is wider than the p4info's
// field or parameter it goes in, naming the entry: the switch would refuse
// it only after the commit and the writes before it.
func (x *ids) checkWidths(prog *Program) error {
	var probs []string
	bad := map[string]bool{} // entry: one problem each
	check := func(entry string, v uint64, what string, bits int32, fix string) {
		if bits > 0 && bits < 64 && v >= 1<<bits && !bad[entry] {
			bad[entry] = true
			probs = append(probs, fmt.Sprintf("%s: %d does not fit %s, bit<%d> in the p4info (at most %d); %s",
				entry, v, what, bits, uint64(1)<<bits-1, fix))
		}
	}
	const portFix = "give the switch's port number (on a Tofino its dev port)"
	for i, p := range prog.Ports {
		check(fmt.Sprintf("ports[%d] id", i), uint64(p.ID), x.portRole.name+"'s key "+x.portRole.fieldName, x.portRole.bits, portFix)
		check(fmt.Sprintf("ports[%d] (id %d) role", i, p.ID), roles[p.Role], x.portRole.paramNames[0], x.portRole.paramBits[0], "the p4info's role field is too narrow for gen/SWITCH.md's roles")
	}
	for i, h := range prog.Hosts {
		entry := fmt.Sprintf("hosts[%d] (%v)", i, h.Addr)
		check(entry+" port", uint64(h.Port), x.ipv4Host.paramNames[0], x.ipv4Host.paramBits[0], portFix)
		check(entry+" port", uint64(h.Port), x.l2.paramNames[0], x.l2.paramBits[0], portFix)
		if h.Addr.Is4() {
			a := h.Addr.As4()
			check(entry+" addr", uint64(binary.BigEndian.Uint32(a[:])), x.ipv4Host.name+"'s key "+x.ipv4Host.fieldName, x.ipv4Host.bits, "the p4info's field is too narrow for an IPv4 address")
		}
		mac := bytestring.MACValue(h.MAC)
		check(entry+" mac", mac, x.ipv4Host.paramNames[1], x.ipv4Host.paramBits[1], "the p4info's field is too narrow for a MAC")
		check(entry+" mac", mac, x.l2.name+"'s key "+x.l2.fieldName, x.l2.bits, "the p4info's field is too narrow for a MAC")
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: it does not fit the p4info:\n  %s", ErrProgram, strings.Join(probs, "\n  "))
}
