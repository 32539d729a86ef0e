package control

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/internal/bytestring"
)

// Changes is what Deploy did.
type Changes struct {
	// Committed is true when the pipeline was (re)committed, which
	// clears the switch's tables and registers first.
	Committed                   bool
	Inserted, Modified, Deleted int
	// MinWorkload is true when the min_workload register was written.
	MinWorkload bool
}

func (c Changes) String() string {
	s := "pipeline already running"
	if c.Committed {
		s = "pipeline committed"
	}
	s += fmt.Sprintf("; %d entries inserted, %d modified, %d deleted", c.Inserted, c.Modified, c.Deleted)
	if c.MinWorkload {
		s += "; min_workload written"
	}
	return s
}

// Deploy pushes the pipeline (unless the switch runs it already) and
// makes the tables hold exactly prog: it reads what they hold, deletes
// what prog lacks, modifies what differs and inserts what is missing.
// The min_workload register is written only when prog sets it: a commit
// already resets it to its P4 initial value, the empty register, and some
// servers refuse struct-valued register writes (Stratum's BF-RT); without
// a commit its live value, kept by heartbeats, is left alone.
func (c *Client) Deploy(ctx context.Context, prog *Program, opt PipelineOptions) (Changes, error) {
	if err := prog.Check(); err != nil {
		return Changes{}, err
	}
	// Before the commit: a value the switch's field cannot hold would
	// otherwise fail only after the commit has emptied the tables.
	if err := c.ids.checkWidths(prog); err != nil {
		return Changes{}, err
	}
	committed, err := c.SetPipeline(ctx, opt)
	if err != nil {
		return Changes{}, err
	}
	ch, err := c.reconcile(ctx, prog)
	ch.Committed = committed
	return ch, err
}

// DeployTables makes the tables of the pipeline the switch runs hold
// exactly prog, as Deploy does, without pushing a pipeline: names resolve
// through the p4info read from the switch, which the client keeps using
// (State too). A p4info given in Options must be that one.
func (c *Client) DeployTables(ctx context.Context, prog *Program) (Changes, error) {
	if err := prog.Check(); err != nil {
		return Changes{}, err
	}
	if err := c.useRunningP4Info(ctx); err != nil {
		return Changes{}, err
	}
	if err := c.ids.checkWidths(prog); err != nil {
		return Changes{}, err
	}
	return c.reconcile(ctx, prog)
}

// useRunningP4Info resolves names through the p4info of the pipeline the
// switch runs, and fails if it runs none or another than Options.P4Info.
func (c *Client) useRunningP4Info(ctx context.Context) error {
	r, err := c.rt.GetForwardingPipelineConfig(ctx, &p4v1.GetForwardingPipelineConfigRequest{DeviceId: c.device,
		ResponseType: p4v1.GetForwardingPipelineConfigRequest_P4INFO_AND_COOKIE})
	// No pipeline is an empty answer (P4Runtime) or FAILED_PRECONDITION
	// (Stratum, PI).
	if status.Code(err) == codes.FailedPrecondition || err == nil && r.GetConfig().GetP4Info() == nil {
		return fmt.Errorf("control: %s: the switch runs no pipeline, so there are no tables to program; push the pipeline first (capygen deploy without -pipeline=false)", c.target)
	}
	if err != nil {
		return fmt.Errorf("control: %s: GetForwardingPipelineConfig: %w", c.target, err)
	}
	info := r.GetConfig().GetP4Info()
	if c.givenInfo && !proto.Equal(info, c.info) {
		return fmt.Errorf("control: %s: the p4info given (capygen deploy -p4info) is not the one of the pipeline the switch runs (pkg_info.version %q; the switch's %q): "+
			"leave it out to program the running pipeline through the switch's own p4info, or push the given one with its device config",
			c.target, c.info.GetPkgInfo().GetVersion(), info.GetPkgInfo().GetVersion())
	}
	x, err := resolve(info)
	if err != nil {
		return fmt.Errorf("control: %s: the pipeline the switch runs: %w", c.target, err)
	}
	c.info, c.ids = info, x
	return nil
}

// reconcile makes the tables hold exactly prog, and writes min_workload
// when prog sets it.
func (c *Client) reconcile(ctx context.Context, prog *Program) (Changes, error) {
	var ch Changes
	have, err := c.read(ctx, tableQuery(c.ids.portRole.id), tableQuery(c.ids.ipv4Host.id), tableQuery(c.ids.l2.id))
	if err != nil {
		return ch, err
	}
	want := c.entries(prog)
	haveBy := map[string]*p4v1.TableEntry{}
	for _, e := range have {
		if te := e.GetTableEntry(); te != nil {
			haveBy[entryKey(te)] = te
		}
	}
	var dels, mods, ins, mw []*p4v1.Update
	var what []string
	wantBy := map[string]bool{}
	for _, w := range want {
		k := entryKey(w)
		wantBy[k] = true
		h, ok := haveBy[k]
		switch {
		case !ok:
			ins = append(ins, update(p4v1.Update_INSERT, w))
		case !sameAction(h, w):
			mods = append(mods, update(p4v1.Update_MODIFY, w))
		}
	}
	for _, e := range have {
		te := e.GetTableEntry()
		if te != nil && !wantBy[entryKey(te)] {
			dels = append(dels, update(p4v1.Update_DELETE, &p4v1.TableEntry{TableId: te.GetTableId(), Match: te.GetMatch()}))
		}
	}
	for _, u := range slices.Concat(dels, mods, ins) {
		what = append(what, fmt.Sprintf("%v %s", u.GetType(), c.describe(u.GetEntity().GetTableEntry())))
	}
	if w := prog.MinWorkload; w != nil {
		var holder [4]byte
		load := uint64(pipeline.EmptyLoad)
		if w.Holder.IsValid() && !w.Holder.IsUnspecified() {
			holder, load = w.Holder.As4(), uint64(w.Load)
		}
		mw = append(mw, &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: registerEntity(c.ids.minWorkload, 0,
			uint64(binary.BigEndian.Uint32(holder[:])), load)})
		what = append(what, fmt.Sprintf("MODIFY min_workload {%v, %d}", netip.AddrFrom4(holder), load))
	}
	// Deletes first, so a full table has room for what replaces them; in
	// a Write call of their own, since a server may apply one call's
	// updates in any order. min_workload last, alone: its failure then
	// leaves the tables written and Changes exact.
	off := 0
	for p, phase := range [][]*p4v1.Update{dels, slices.Concat(mods, ins), mw} {
		if err := c.write(ctx, phase, func(i int) string { return what[off+i] }); err != nil {
			err = deployError(err, off, len(what))
			if p == 2 {
				err = fmt.Errorf("%w; some servers (Stratum's BF-RT) take only bitstring register data, not min_workload's {holder, load} struct, "+
					"and a commit already empties min_workload: drop min_workload from the program to deploy without writing it", err)
			}
			return ch, err
		}
		off += len(phase)
		if p == 1 {
			ch.Inserted, ch.Modified, ch.Deleted = len(ins), len(mods), len(dels)
		}
	}
	ch.MinWorkload = len(mw) > 0
	return ch, nil
}

// deployError says what a failed Write leaves: off is where its phase
// starts among the total updates. Deploy works from what the switch has:
// running it again finishes the job once the cause is fixed.
func deployError(err error, off, total int) error {
	var w *writeFailure
	if !errors.As(err, &w) {
		return err
	}
	before, after, n := off+w.lo, total-(off+w.hi), w.hi-w.lo
	var parts []string
	if w.detailed {
		parts = append(parts, "this Write's updates not listed were applied")
	} else {
		parts = append(parts, fmt.Sprintf("the switch refused this Write as a whole: none of its %d updates was applied", n))
	}
	if before > 0 {
		parts = append(parts, fmt.Sprintf("the %d updates before it were applied", before))
	}
	if after > 0 {
		parts = append(parts, fmt.Sprintf("the %d after it were not sent", after))
	}
	return fmt.Errorf("%w (%s; deploy again once the cause is fixed)", err, strings.Join(parts, "; "))
}

// entries are the table entries prog implies.
func (c *Client) entries(prog *Program) []*p4v1.TableEntry {
	var out []*p4v1.TableEntry
	x := c.ids
	for _, p := range prog.Ports {
		out = append(out, x.portRole.entry(uint64(p.ID), roles[p.Role]))
	}
	for _, h := range prog.Hosts {
		a := h.Addr.As4()
		out = append(out, x.ipv4Host.entry(uint64(binary.BigEndian.Uint32(a[:])), uint64(h.Port), bytestring.MACValue(h.MAC)))
	}
	for _, h := range prog.l2() {
		out = append(out, x.l2.entry(bytestring.MACValue(h.MAC), uint64(h.Port)))
	}
	return out
}

// entry is a table entry of t with key and parameter values.
func (t tableIDs) entry(key uint64, params ...uint64) *p4v1.TableEntry {
	a := &p4v1.Action{ActionId: t.action}
	for i, v := range params {
		a.Params = append(a.Params, &p4v1.Action_Param{ParamId: t.params[i], Value: bytestring.Encode(v)})
	}
	return &p4v1.TableEntry{TableId: t.id,
		Match:  []*p4v1.FieldMatch{{FieldId: t.field, FieldMatchType: &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: bytestring.Encode(key)}}}},
		Action: &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: a}}}
}

// describe names a table entry for messages.
func (c *Client) describe(e *p4v1.TableEntry) string {
	key := uint64(0)
	if m := e.GetMatch(); len(m) == 1 {
		key = bytestring.Uint(m[0].GetExact().GetValue())
	}
	switch e.GetTableId() {
	case c.ids.portRole.id:
		return fmt.Sprintf("port_role port %d", key)
	case c.ids.ipv4Host.id:
		return fmt.Sprintf("ipv4_host %v", netip.AddrFrom4(bytestring.IPv4(key)))
	case c.ids.l2.id:
		return fmt.Sprintf("l2_forward %v", net.HardwareAddr(macSlice(key)))
	}
	return fmt.Sprintf("table %d", e.GetTableId())
}

func tableQuery(id uint32) *p4v1.Entity {
	return &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{TableId: id}}}
}

func update(t p4v1.Update_Type, e *p4v1.TableEntry) *p4v1.Update {
	return &p4v1.Update{Type: t, Entity: &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: e}}}
}

func registerEntity(id uint32, index int64, a, b uint64) *p4v1.Entity {
	return &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{
		RegisterId: id, Index: &p4v1.Index{Index: index},
		Data: &p4v1.P4Data{Data: &p4v1.P4Data_Struct{Struct: &p4v1.P4StructLike{Members: []*p4v1.P4Data{
			{Data: &p4v1.P4Data_Bitstring{Bitstring: bytestring.Encode(a)}}, {Data: &p4v1.P4Data_Bitstring{Bitstring: bytestring.Encode(b)}},
		}}}},
	}}}
}

// entryKey identifies an entry by table and match value, whatever the
// bytestring's form.
func entryKey(e *p4v1.TableEntry) string {
	k := fmt.Sprint(e.GetTableId())
	for _, m := range e.GetMatch() {
		k += fmt.Sprintf("/%d=%x", m.GetFieldId(), bytestring.Uint(m.GetExact().GetValue()))
	}
	return k
}

// sameAction compares two entries' actions by value.
func sameAction(a, b *p4v1.TableEntry) bool {
	x, y := a.GetAction().GetAction(), b.GetAction().GetAction()
	if x.GetActionId() != y.GetActionId() || len(x.GetParams()) != len(y.GetParams()) {
		return false
	}
	vals := map[uint32]uint64{}
	for _, p := range x.GetParams() {
		vals[p.GetParamId()] = bytestring.Uint(p.GetValue())
	}
	for _, p := range y.GetParams() {
		if v, ok := vals[p.GetParamId()]; !ok || v != bytestring.Uint(p.GetValue()) {
			return false
		}
	}
	return true
}

func macSlice(v uint64) []byte {
	m := bytestring.MAC(v)
	return m[:]
}
