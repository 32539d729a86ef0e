package p4rt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/internal/bytestring"
)

// opError is the outcome of one update or request: a gRPC code and a
// message that names the input and what to change.
type opError struct {
	code codes.Code
	msg  string
}

func (e *opError) Error() string { return e.msg }

func errorf(code codes.Code, format string, a ...any) *opError {
	return &opError{code, fmt.Sprintf(format, a...)}
}

// codeOf maps a pipeline control-plane error to its P4Runtime code.
func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, pipeline.ErrTableFull):
		return codes.ResourceExhausted
	case errors.Is(err, pipeline.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, pipeline.ErrOutOfRange):
		return codes.InvalidArgument
	}
	return codes.Internal
}

// decodeBits reads a P4Runtime bytestring of a bit<width> value. The
// specification's canonical form is the shortest string; longer ones,
// with leading zero bytes, are accepted as long as the value fits.
func decodeBits(b []byte, width int32, what string) (uint64, *opError) {
	if len(b) == 0 {
		// P4Runtime 8.3: an empty string is always rejected, OUT_OF_RANGE.
		return 0, errorf(codes.OutOfRange, "%s: empty bytestring; a bit<%d> value needs at least one byte", what, width)
	}
	trimmed := bytes.TrimLeft(b, "\x00")
	if len(trimmed) > 8 || (len(trimmed) > 0 && bitLen(trimmed) > int(width)) {
		return 0, errorf(codes.OutOfRange, "%s: 0x%x does not fit in bit<%d>", what, b, width)
	}
	var v uint64
	for _, c := range trimmed {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// bitLen is the number of significant bits of a big-endian string whose
// first byte is not zero.
func bitLen(b []byte) int {
	n := (len(b) - 1) * 8
	for c := b[0]; c != 0; c >>= 1 {
		n++
	}
	return n
}

// keyString shows a table key as its field's type reads.
func (t *table) keyString(key uint64) string {
	switch t.keyBits {
	case 32:
		return netip.AddrFrom4(bytestring.IPv4(key)).String()
	case 48:
		m := bytestring.MAC(key)
		return net.HardwareAddr(m[:]).String()
	}
	return fmt.Sprint(key)
}

// entryKey reads a table entry's match: exactly one exact field, id 1.
func (t *table) entryKey(e *p4v1.TableEntry) (uint64, *opError) {
	if len(e.Match) != 1 {
		return 0, errorf(codes.InvalidArgument, "table %s: %d match fields; give exactly one, %s (field id 1, exact)", t.name, len(e.Match), t.keyField)
	}
	m := e.Match[0]
	if m.GetFieldId() != 1 {
		return 0, errorf(codes.InvalidArgument, "table %s: match field id %d is unknown; %s is field id 1", t.name, m.GetFieldId(), t.keyField)
	}
	ex := m.GetExact()
	if ex == nil {
		return 0, errorf(codes.InvalidArgument, "table %s: field %s is matched exact; the entry gives another match kind", t.name, t.keyField)
	}
	return decodeBits(ex.GetValue(), t.keyBits, fmt.Sprintf("table %s field %s", t.name, t.keyField))
}

// entryParams reads a table entry's action: the table's one action with
// every parameter once, in any order.
func (t *table) entryParams(e *p4v1.TableEntry) ([]uint64, *opError) {
	a := e.GetAction().GetAction()
	if a == nil {
		return nil, errorf(codes.InvalidArgument, "table %s: the entry has no action; give %s (action profiles are not supported)", t.name, t.actName)
	}
	if a.GetActionId() != t.action {
		if a.GetActionId() == t.miss {
			return nil, errorf(codes.InvalidArgument, "table %s: action %d is the default-only miss; entries take %s (id %d)", t.name, a.GetActionId(), t.actName, t.action)
		}
		return nil, errorf(codes.InvalidArgument, "table %s: action id %d is not one it takes; use %s (id %d)", t.name, a.GetActionId(), t.actName, t.action)
	}
	if len(a.Params) != len(t.params) {
		return nil, errorf(codes.InvalidArgument, "table %s action %s: %d params, want %d", t.name, t.actName, len(a.Params), len(t.params))
	}
	vals := make([]uint64, len(t.params))
	seen := make([]bool, len(t.params))
	for _, p := range a.Params {
		i := int(p.GetParamId()) - 1
		if i < 0 || i >= len(t.params) {
			return nil, errorf(codes.InvalidArgument, "table %s action %s: param id %d is unknown (ids 1..%d)", t.name, t.actName, p.GetParamId(), len(t.params))
		}
		if seen[i] {
			return nil, errorf(codes.InvalidArgument, "table %s action %s: param id %d given twice", t.name, t.actName, p.GetParamId())
		}
		seen[i] = true
		v, err := decodeBits(p.GetValue(), t.params[i], fmt.Sprintf("table %s action %s param %d", t.name, t.actName, p.GetParamId()))
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	return vals, nil
}

// metaKey names a table entry for its metadata.
type metaKey struct {
	table uint32
	key   uint64
}

// entryMeta is an entry's opaque controller data.
type entryMeta struct {
	controller uint64
	metadata   []byte
}

func metaOf(e *p4v1.TableEntry) entryMeta {
	//nolint:staticcheck // controller_metadata is deprecated but still returned as written.
	return entryMeta{controller: e.GetControllerMetadata(), metadata: bytes.Clone(e.GetMetadata())}
}

func (m entryMeta) zero() bool { return m.controller == 0 && len(m.metadata) == 0 }

// tableEntry builds the entry a Read returns, in canonical bytestrings.
func (t *table) tableEntry(key uint64, params []uint64, m entryMeta) *p4v1.TableEntry {
	ps := make([]*p4v1.Action_Param, len(params))
	for i, v := range params {
		ps[i] = &p4v1.Action_Param{ParamId: uint32(i + 1), Value: bytestring.Encode(v)}
	}
	return &p4v1.TableEntry{
		TableId:            t.id,
		Match:              []*p4v1.FieldMatch{{FieldId: 1, FieldMatchType: &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: bytestring.Encode(key)}}}},
		Action:             &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: &p4v1.Action{ActionId: t.action, Params: ps}}},
		ControllerMetadata: m.controller,
		Metadata:           bytes.Clone(m.metadata),
	}
}

// defaultEntry is the table's const default entry.
func (t *table) defaultEntry() *p4v1.TableEntry {
	return &p4v1.TableEntry{TableId: t.id, IsDefaultAction: true,
		Action: &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: &p4v1.Action{ActionId: t.miss}}}}
}

// rows is a table's entries as keys and parameters.
type rows map[uint64][]uint64

// tableRows reads t's entries out of a copy of the pipeline's tables.
func (b *binding) tableRows(t *table, ts pipeline.Tables) rows {
	r := rows{}
	switch t.id {
	case b.portRole:
		for port, role := range ts.PortRoles {
			r[uint64(port)] = []uint64{uint64(role)}
		}
	case b.ipv4Host:
		for ip, h := range ts.Hosts {
			r[uint64(binary.BigEndian.Uint32(ip[:]))] = []uint64{uint64(h.Port), bytestring.MACValue(h.MAC[:])}
		}
	case b.l2Forward:
		for mac, port := range ts.L2 {
			r[bytestring.MACValue(mac[:])] = []uint64{uint64(port)}
		}
	}
	return r
}

// setRow writes one entry into the pipeline (insert or modify).
func (b *binding) setRow(p *pipeline.Pipeline, t *table, key uint64, params []uint64) error {
	switch t.id {
	case b.portRole:
		return p.SetPortRole(pipeline.Port(key), pipeline.Role(params[0]))
	case b.ipv4Host:
		return p.SetHost(bytestring.IPv4(key), pipeline.Port(params[0]), bytestring.MAC(params[1]))
	case b.l2Forward:
		return p.SetL2(bytestring.MAC(key), pipeline.Port(params[0]))
	}
	return fmt.Errorf("table %s has no pipeline binding", t.name)
}

// deleteRow removes one entry from the pipeline.
func (b *binding) deleteRow(p *pipeline.Pipeline, t *table, key uint64) error {
	switch t.id {
	case b.portRole:
		return p.DeletePortRole(pipeline.Port(key))
	case b.ipv4Host:
		return p.DeleteHost(bytestring.IPv4(key))
	case b.l2Forward:
		return p.DeleteL2(bytestring.MAC(key))
	}
	return fmt.Errorf("table %s has no pipeline binding", t.name)
}

// cell is one register cell's two members (a bit<W> register's value in
// the first).
type cell [2]uint64

// readCell reads one register cell from the pipeline.
func readCell(p *pipeline.Pipeline, r *register, index int) (cell, error) {
	switch r.kind {
	case regDirKey:
		k, _, err := p.ReadDirectoryCells(r.level, index)
		return cell{uint64(k.IP), uint64(k.Port)}, err
	case regDirTarget:
		_, a, err := p.ReadDirectoryCells(r.level, index)
		return cell{uint64(a.Target)}, err
	case regDirOrigin:
		_, a, err := p.ReadDirectoryCells(r.level, index)
		return cell{uint64(a.Origin)}, err
	case regDirPort:
		port, err := p.ReadDirectoryPort(r.level, index)
		return cell{uint64(port)}, err
	}
	h, load := p.ReadMinWorkload()
	return cell{uint64(binary.BigEndian.Uint32(h[:])), uint64(load)}, nil
}

// writeCell writes one register cell as is.
func writeCell(p *pipeline.Pipeline, r *register, index int, c cell) error {
	switch r.kind {
	case regDirKey:
		return p.WriteDirectoryKey(r.level, index, pipeline.KeyCell{IP: uint32(c[0]), Port: uint32(c[1])})
	case regDirTarget:
		return p.WriteDirectoryTarget(r.level, index, uint32(c[0]))
	case regDirOrigin:
		return p.WriteDirectoryOrigin(r.level, index, uint32(c[0]))
	case regDirPort:
		return p.WriteDirectoryPort(r.level, index, uint16(c[0]))
	}
	return p.WriteMinWorkloadCell(bytestring.IPv4(c[0]), uint32(c[1]))
}

// cells is the cells a register entry's index names: one, or every cell
// when it has none (a wildcard, P4Runtime 9.7).
func (r *register) cells(e *p4v1.RegisterEntry) (lo, hi int, err *opError) {
	if e.GetIndex() == nil {
		return 0, int(r.size), nil
	}
	i, err := checkIndex("register "+r.name, e.GetIndex().GetIndex(), r.size)
	return i, i + 1, err
}

// checkIndex refuses a negative index (INVALID_ARGUMENT) and one past the
// end (OUT_OF_RANGE), as P4Runtime 9.3 and 9.7 say.
func checkIndex(what string, i, size int64) (int, *opError) {
	if i < 0 {
		return 0, errorf(codes.InvalidArgument, "%s: index %d is negative", what, i)
	}
	if i >= size {
		return 0, errorf(codes.OutOfRange, "%s: index %d is outside 0..%d", what, i, size-1)
	}
	return int(i), nil
}

// cellOf reads a register entry's data: a struct of the register's two
// members, in order.
func (r *register) cellOf(e *p4v1.RegisterEntry) (cell, *opError) {
	if r.bits > 0 {
		bs, ok := e.GetData().GetData().(*p4v1.P4Data_Bitstring)
		if !ok {
			return cell{}, errorf(codes.InvalidArgument, "register %s: data must be a bitstring (bit<%d>)", r.name, r.bits)
		}
		v, err := decodeBits(bs.Bitstring, r.bits, "register "+r.name)
		if err != nil {
			return cell{}, err
		}
		return cell{v}, nil
	}
	st := e.GetData().GetStruct()
	if st == nil {
		return cell{}, errorf(codes.InvalidArgument, "register %s: data must be a struct {%s, %s}", r.name, r.members[0].name, r.members[1].name)
	}
	if len(st.Members) != 2 {
		return cell{}, errorf(codes.InvalidArgument, "register %s: struct data has %d members, want 2 (%s, %s)", r.name, len(st.Members), r.members[0].name, r.members[1].name)
	}
	var c cell
	for i, m := range st.Members {
		bs, ok := m.GetData().(*p4v1.P4Data_Bitstring)
		if !ok {
			return cell{}, errorf(codes.InvalidArgument, "register %s member %s: want a bitstring", r.name, r.members[i].name)
		}
		v, err := decodeBits(bs.Bitstring, r.members[i].bits, fmt.Sprintf("register %s member %s", r.name, r.members[i].name))
		if err != nil {
			return cell{}, err
		}
		c[i] = v
	}
	return c, nil
}

// registerEntry builds a Read's register entry.
func (r *register) registerEntry(index int, c cell) *p4v1.RegisterEntry {
	if r.bits > 0 {
		return &p4v1.RegisterEntry{
			RegisterId: r.id,
			Index:      &p4v1.Index{Index: int64(index)},
			Data:       &p4v1.P4Data{Data: &p4v1.P4Data_Bitstring{Bitstring: bytestring.Encode(c[0])}},
		}
	}
	return &p4v1.RegisterEntry{
		RegisterId: r.id,
		Index:      &p4v1.Index{Index: int64(index)},
		Data: &p4v1.P4Data{Data: &p4v1.P4Data_Struct{Struct: &p4v1.P4StructLike{Members: []*p4v1.P4Data{
			{Data: &p4v1.P4Data_Bitstring{Bitstring: bytestring.Encode(c[0])}},
			{Data: &p4v1.P4Data_Bitstring{Bitstring: bytestring.Encode(c[1])}},
		}}}},
	}
}

// dropCells is the drops counter's cells: cell 0 the stale ACKs, the
// others the drops by reason (gen/SWITCH.md).
func dropCells(c pipeline.Counters) []uint64 {
	cells := make([]uint64, pipeline.NumDropReasons)
	copy(cells, c.Drops[:])
	cells[0] = c.StaleAcks
	return cells
}

// countersBase is, per drop counter cell, the pipeline's count the cell
// reads from: the count at the last commit, moved by counter writes. The
// pipeline's own counters only grow.
type countersBase [pipeline.NumDropReasons]uint64

func baseOf(c pipeline.Counters) countersBase { return countersBase(dropCells(c)) }

func (b countersBase) since(now pipeline.Counters) []uint64 {
	cells := dropCells(now)
	for i := range cells {
		cells[i] -= b[i]
	}
	return cells
}

func (b *countersBase) set(i int, v uint64) { b[i] = v }
