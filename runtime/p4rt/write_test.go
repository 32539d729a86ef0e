package p4rt_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

var mac = []byte{0x02, 0, 0, 0, 0, 0x0b}

// INSERT, MODIFY and DELETE on each exact-match table reach the pipeline
// and read back equal, in canonical bytestrings.
func TestWriteTables(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	role := &p4v1.TableEntry{TableId: x.portRole, Match: exact(3), Action: action(x.setRole, []byte{1})}
	host := &p4v1.TableEntry{TableId: x.ipv4Host, Match: exact(10, 77, 0, 11), Action: action(x.setHost, []byte{3}, mac)}
	l2 := &p4v1.TableEntry{TableId: x.l2, Match: exact(mac...), Action: action(x.setPort, []byte{3})}
	if err := b.write(0, tableUpdate(p4v1.Update_INSERT, role), tableUpdate(p4v1.Update_INSERT, host), tableUpdate(p4v1.Update_INSERT, l2)); err != nil {
		t.Fatal(err)
	}
	want := pipeline.Tables{
		PortRoles: map[pipeline.Port]pipeline.Role{3: pipeline.RoleClient},
		Hosts:     map[[4]byte]pipeline.HostAction{{10, 77, 0, 11}: {Port: 3, MAC: [6]byte(mac)}},
		L2:        map[[6]byte]pipeline.Port{[6]byte(mac): 3},
	}
	if got := b.pipe.ReadTables(); !cmp.Equal(got, want) {
		t.Errorf("pipeline tables = %+v, want %+v", got, want)
	}
	for _, e := range []*p4v1.TableEntry{role, host, l2} {
		got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: e.TableId, Match: e.Match}))
		if len(got) != 1 || !proto.Equal(got[0].GetTableEntry(), e) {
			t.Errorf("read of table %d = %v, want %v", e.TableId, got, e)
		}
	}

	// MODIFY changes the action; the pipeline follows.
	role2 := clone(role)
	role2.Action = action(x.setRole, []byte{2})
	if err := b.write(0, tableUpdate(p4v1.Update_MODIFY, role2)); err != nil {
		t.Fatal(err)
	}
	if r := b.pipe.ReadTables().PortRoles[3]; r != pipeline.RoleServer {
		t.Errorf("port 3 role %v after MODIFY, want server", r)
	}
	// DELETE removes it; its action may be left out.
	if err := b.write(0, tableUpdate(p4v1.Update_DELETE, &p4v1.TableEntry{TableId: x.portRole, Match: exact(3)})); err != nil {
		t.Fatal(err)
	}
	if n := len(b.pipe.ReadTables().PortRoles); n != 0 {
		t.Errorf("%d port roles after DELETE", n)
	}
}

// Each failing update is reported in its own p4.v1.Error, in order, with
// the code the specification names; the others are applied.
func TestWriteErrorsContinue(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	good := &p4v1.TableEntry{TableId: x.ipv4Host, Match: exact(10, 77, 0, 12), Action: action(x.setHost, []byte{4}, mac)}
	if err := b.write(0, tableUpdate(p4v1.Update_INSERT, good)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		u    *p4v1.Update
		code codes.Code
		say  string
	}{
		{tableUpdate(p4v1.Update_INSERT, good), codes.AlreadyExists, "an entry for 10.77.0.12 exists"},
		{tableUpdate(p4v1.Update_MODIFY, &p4v1.TableEntry{TableId: x.ipv4Host, Match: exact(10, 77, 0, 99), Action: action(x.setHost, []byte{4}, mac)}), codes.NotFound, "no entry for 10.77.0.99 to modify"},
		{tableUpdate(p4v1.Update_DELETE, &p4v1.TableEntry{TableId: x.ipv4Host, Match: exact(10, 77, 0, 98)}), codes.NotFound, "no entry for 10.77.0.98 to delete"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: 12345, Match: exact(1)}), codes.InvalidArgument, "table id 12345"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{Match: exact(1)}), codes.InvalidArgument, "table id 0 is not a valid P4 object id"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(2, 0), Action: action(x.setRole, []byte{1})}), codes.OutOfRange, "0x0200 does not fit in bit<9>"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(), Action: action(x.setRole, []byte{1})}), codes.OutOfRange, "empty bytestring"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(4), Action: action(x.setRole, []byte{3})}), codes.InvalidArgument, "role 3"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(4), Action: action(x.setHost, []byte{1}, mac)}), codes.InvalidArgument, "is not one it takes"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(4)}), codes.InvalidArgument, "has no action"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(4), Action: action(x.setRole, []byte{1}), Priority: 5}), codes.InvalidArgument, "priority 5"},
		{tableUpdate(p4v1.Update_MODIFY, &p4v1.TableEntry{TableId: x.portRole, IsDefaultAction: true, Action: action(x.miss)}), codes.PermissionDenied, "const"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, IsDefaultAction: true, Action: action(x.miss)}), codes.InvalidArgument, "INSERT of the default entry"},
		{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(4), Action: action(x.setRole, []byte{1}), IdleTimeoutNs: 5}), codes.InvalidArgument, "idle timeout"},
		{registerUpdate(p4v1.Update_MODIFY, x.dirKey[0], -1, []byte{1}, []byte{1}), codes.InvalidArgument, "index -1 is negative"},
		{registerUpdate(p4v1.Update_INSERT, x.minWorkload, 0, []byte{1}, []byte{1}), codes.InvalidArgument, "only ever MODIFYed"},
		{registerUpdate(p4v1.Update_MODIFY, x.dirKey[0], x.dirSlots, []byte{1}, []byte{1}), codes.OutOfRange, "outside 0.."},
		{registerUpdate(p4v1.Update_MODIFY, x.minWorkload, 0, []byte{1, 2, 3, 4, 5}, []byte{1}), codes.OutOfRange, "does not fit in bit<32>"},
		{&p4v1.Update{Type: p4v1.Update_INSERT, Entity: &p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: x.drops}}}}, codes.InvalidArgument, "only ever MODIFYed"},
		{&p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{}}}}, codes.Unimplemented, "MeterEntry"},
	}
	var updates []*p4v1.Update
	ok := tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.l2, Match: exact(mac...), Action: action(x.setPort, []byte{0, 4})})
	updates = append(updates, ok)
	for _, c := range cases {
		updates = append(updates, c.u)
	}
	errs := details(t, b.write(p4v1.WriteRequest_CONTINUE_ON_ERROR, updates...))
	if len(errs) != len(updates) {
		t.Fatalf("%d details for %d updates", len(errs), len(updates))
	}
	if errs[0].GetCanonicalCode() != int32(codes.OK) {
		t.Errorf("detail 0 (a good insert) = %v, want OK", errs[0])
	}
	for i, c := range cases {
		e := errs[i+1]
		if codes.Code(e.GetCanonicalCode()) != c.code || !strings.Contains(e.GetMessage(), c.say) {
			t.Errorf("update %d: %v %q, want %v saying %q", i+1, codes.Code(e.GetCanonicalCode()), e.GetMessage(), c.code, c.say)
		}
	}
	// The good insert, given a non-canonical port (0x0004), went through.
	if p, found := b.pipe.ReadTables().L2[[6]byte(mac)]; !found || p != 4 {
		t.Errorf("l2_forward[%x] = %d %t, want port 4", mac, p, found)
	}
}

// ROLLBACK_ON_ERROR: one failure and the pipeline is as before the batch.
func TestWriteRollback(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	keep := &p4v1.TableEntry{TableId: x.portRole, Match: exact(1), Action: action(x.setRole, []byte{1})}
	if err := b.write(0, tableUpdate(p4v1.Update_INSERT, keep), registerUpdate(p4v1.Update_MODIFY, x.minWorkload, 0, []byte{10, 77, 0, 11}, []byte{7})); err != nil {
		t.Fatal(err)
	}
	before := b.pipe.ReadTables()
	errs := details(t, b.write(p4v1.WriteRequest_ROLLBACK_ON_ERROR,
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(2), Action: action(x.setRole, []byte{2})}),
		tableUpdate(p4v1.Update_MODIFY, &p4v1.TableEntry{TableId: x.portRole, Match: exact(1), Action: action(x.setRole, []byte{2})}),
		tableUpdate(p4v1.Update_DELETE, keep),
		registerUpdate(p4v1.Update_MODIFY, x.minWorkload, 0, []byte{10, 77, 0, 12}, []byte{1}),
		tableUpdate(p4v1.Update_DELETE, keep), // fails: deleted already; rolled back here
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(5), Action: action(x.setRole, []byte{2})}),
	))
	if len(errs) != 6 {
		t.Fatalf("%d details, want 6", len(errs))
	}
	if codes.Code(errs[4].GetCanonicalCode()) != codes.NotFound {
		t.Errorf("the failing update's detail = %v, want NOT_FOUND (its entry was deleted by update 2)", errs[4])
	}
	for _, i := range []int{0, 1, 2, 3, 5} {
		if codes.Code(errs[i].GetCanonicalCode()) != codes.Aborted || !strings.Contains(errs[i].GetMessage(), "ROLLBACK_ON_ERROR") {
			t.Errorf("detail %d = %v, want ABORTED naming ROLLBACK_ON_ERROR", i, errs[i])
		}
	}
	after := b.pipe.ReadTables()
	if len(after.PortRoles) != len(before.PortRoles) || after.PortRoles[1] != pipeline.RoleClient {
		t.Errorf("port roles after the rollback = %v, want %v", after.PortRoles, before.PortRoles)
	}
	if h, l := b.pipe.ReadMinWorkload(); h != [4]byte{10, 77, 0, 11} || l != 7 {
		t.Errorf("min_workload after the rollback = %v %d, want 10.77.0.11 7", h, l)
	}
}

// Tables hold their spec sizes: one more is RESOURCE_EXHAUSTED.
func TestWriteTableFull(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	var ups []*p4v1.Update
	for p := range x.portRoleSize {
		ups = append(ups, tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(byte(p>>8), byte(p)), Action: action(x.setRole, []byte{1})}))
	}
	if err := b.write(0, ups...); err != nil {
		t.Fatal(err)
	}
	err := b.write(0, tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(1, 0xff), Action: action(x.setRole, []byte{1})}))
	errs := details(t, err)
	if len(errs) != 1 || codes.Code(errs[0].GetCanonicalCode()) != codes.ResourceExhausted || !strings.Contains(errs[0].GetMessage(), "is full") {
		t.Errorf("insert into the full table: %v", errs)
	}
	// MODIFY of an existing entry in a full table is fine.
	if err := b.write(0, tableUpdate(p4v1.Update_MODIFY, &p4v1.TableEntry{TableId: x.portRole, Match: exact(0), Action: action(x.setRole, []byte{2})})); err != nil {
		t.Errorf("modify in the full table: %v", err)
	}
}

// Register cells are written as they are and read back canonical.
func TestWriteRegisters(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	last := x.dirSlots - 1
	if err := b.write(0,
		registerUpdate(p4v1.Update_MODIFY, x.dirKey[0], last, []byte{0, 10, 77, 0, 1}, []byte{0, 1, 0x1f, 0x90}),
		scalarUpdate(x.dirOrigin[0], last, []byte{10, 77, 0, 11}),
		scalarUpdate(x.dirTarget[0], last, []byte{10, 77, 0, 12}),
		registerUpdate(p4v1.Update_MODIFY, x.minWorkload, 0, []byte{0}, []byte{5}),
	); err != nil {
		t.Fatal(err)
	}
	k, a, _ := b.pipe.ReadDirectoryCells(0, int(last))
	if k != (pipeline.KeyCell{IP: 0x0a4d0001, Port: 0x11f90}) || a != (pipeline.AddrCell{Origin: 0x0a4d000b, Target: 0x0a4d000c}) {
		t.Errorf("dir0[%d] = %v %v", last, k, a)
	}
	if e, _ := b.pipe.ReadDirectory(0, int(last)); !e.Valid || e.ClientPort != 8080 {
		t.Errorf("dir0[%d] entry = %+v, want client port 8080", last, e)
	}
	// A zero holder keeps its load: the register is written as is.
	if h, l := b.pipe.ReadMinWorkload(); h != ([4]byte{}) || l != 5 {
		t.Errorf("min_workload = %v %d, want 0 5", h, l)
	}
	got := b.mustRead(&p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{RegisterId: x.dirKey[0], Index: &p4v1.Index{Index: last}}}})
	want := registerUpdate(p4v1.Update_MODIFY, x.dirKey[0], last, []byte{10, 77, 0, 1}, []byte{1, 0x1f, 0x90}).Entity
	if len(got) != 1 || !proto.Equal(got[0], want) {
		t.Errorf("read dir0_key[%d] = %v, want %v", last, got, want)
	}
}

// DELETE looks at the key only; metadata is kept and read back.
func TestWriteDeleteKeyOnlyAndMetadata(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	e := &p4v1.TableEntry{TableId: x.portRole, Match: exact(7), Action: action(x.setRole, []byte{2}), Metadata: []byte("rack A"), ControllerMetadata: 99}
	if err := b.write(0, tableUpdate(p4v1.Update_INSERT, e)); err != nil {
		t.Fatal(err)
	}
	got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole}))
	if len(got) != 1 || !proto.Equal(got[0].GetTableEntry(), e) {
		t.Errorf("read = %v, want %v (with its metadata)", got, e)
	}
	// A nonsense action on a DELETE is ignored.
	del := &p4v1.TableEntry{TableId: x.portRole, Match: exact(0, 7), Action: action(12345, []byte{9})}
	if err := b.write(0, tableUpdate(p4v1.Update_DELETE, del)); err != nil {
		t.Fatalf("DELETE with a nonsense action: %v", err)
	}
	if err := b.write(0, tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(7), Action: action(x.setRole, []byte{2})})); err != nil {
		t.Fatal(err)
	}
	if got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole})); len(got[0].GetTableEntry().GetMetadata()) != 0 {
		t.Errorf("a re-inserted entry has the deleted one's metadata: %v", got)
	}
}

// Counter cells are MODIFYed to a value, one or all; registers are
// written whole with an unset index, which clears a directory level.
func TestWriteCountersAndWildcardRegisters(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	for range 3 {
		b.pipe.Process(make([]byte, 60), 9) // unknown_port, cell 3
	}
	set := func(index *p4v1.Index, v int64) *p4v1.Update {
		return &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{
			CounterId: x.drops, Index: index, Data: &p4v1.CounterData{PacketCount: v}}}}}
	}
	if err := b.write(0, set(&p4v1.Index{Index: 3}, 10)); err != nil {
		t.Fatal(err)
	}
	b.pipe.Process(make([]byte, 60), 9)
	if got := b.mustRead(counterQuery(x.drops, &p4v1.Index{Index: 3})); got[0].GetCounterEntry().GetData().GetPacketCount() != 11 {
		t.Errorf("drops[3] = %v, want 10 written + 1 counted", got)
	}
	if err := b.write(0, set(nil, 0)); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.mustRead(counterQuery(x.drops, nil)) {
		if n := e.GetCounterEntry().GetData().GetPacketCount(); n != 0 {
			t.Errorf("drops[%d] = %d after zeroing every cell", e.GetCounterEntry().GetIndex().GetIndex(), n)
		}
	}

	for _, i := range []int{0, 5, int(x.dirSlots) - 1} {
		b.pipe.WriteDirectory(0, i, pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 0, 0, 1}, ClientPort: uint16(i), Origin: [4]byte{1}, Target: [4]byte{2}})
	}
	all := &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{
		RegisterId: x.dirKey[0], Data: registerUpdate(0, 0, 0, []byte{0}, []byte{0}).GetEntity().GetRegisterEntry().GetData()}}}}
	if err := b.write(0, all); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 5, int(x.dirSlots) - 1} {
		if e, _ := b.pipe.ReadDirectory(0, i); e.Valid {
			t.Errorf("dir0[%d] still valid after the wildcard write: %+v", i, e)
		}
	}
}

// A Write is checked in P4Runtime 12's order: the device and role
// (NOT_FOUND), the primary (PERMISSION_DENIED) and a pipeline
// (FAILED_PRECONDITION) before anything else of it, its atomicity too.
func TestWriteChecksPrimaryBeforeAtomicity(t *testing.T) {
	b := newBench(t)
	p := b.open(10)
	p.expect(codes.OK, 10)
	w := func(election uint64, a p4v1.WriteRequest_Atomicity) error {
		_, err := b.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(election), Atomicity: a})
		return err
	}
	// No pipeline yet.
	wantCode(t, w(3, p4v1.WriteRequest_DATAPLANE_ATOMIC), codes.PermissionDenied, "the primary's election id is 10")
	wantCode(t, w(3, 9), codes.PermissionDenied, "the primary's election id is 10")
	wantCode(t, w(10, p4v1.WriteRequest_DATAPLANE_ATOMIC), codes.FailedPrecondition, "before writing")
	wantCode(t, w(10, 9), codes.FailedPrecondition, "before writing")
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, b.config(1))
	wantCode(t, w(3, p4v1.WriteRequest_DATAPLANE_ATOMIC), codes.PermissionDenied, "the primary's election id is 10")
	wantCode(t, w(10, p4v1.WriteRequest_DATAPLANE_ATOMIC), codes.Unimplemented, "DATAPLANE_ATOMIC")
	wantCode(t, w(10, 9), codes.InvalidArgument, "atomicity 9 is unknown")
}
