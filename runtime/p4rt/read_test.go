package p4rt_test

import (
	"strings"
	"testing"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	p4 "github.com/capygen/capygen/generated/p4"
)

func counterQuery(id uint32, index *p4v1.Index) *p4v1.Entity {
	return &p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: id, Index: index}}}
}

func registerQuery(id uint32, index *p4v1.Index) *p4v1.Entity {
	return &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{RegisterId: id, Index: index}}}
}

// Wildcard reads: every table, one table, one entry, the default entry.
func TestReadTableWildcards(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	var ups []*p4v1.Update
	for _, p := range []byte{9, 2, 5} {
		ups = append(ups, tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(p), Action: action(x.setRole, []byte{1})}))
	}
	ups = append(ups,
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.ipv4Host, Match: exact(10, 77, 0, 11), Action: action(x.setHost, []byte{2}, mac)}),
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.l2, Match: exact(mac...), Action: action(x.setPort, []byte{2})}))
	if err := b.write(0, ups...); err != nil {
		t.Fatal(err)
	}
	all := b.mustRead(tableQuery(&p4v1.TableEntry{}))
	if len(all) != 5 {
		t.Fatalf("read of every table: %d entries, want 5", len(all))
	}
	one := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole}))
	if len(one) != 3 {
		t.Fatalf("read of port_role: %d entries, want 3", len(one))
	}
	for i, want := range []byte{2, 5, 9} {
		if got := one[i].GetTableEntry().GetMatch()[0].GetExact().GetValue(); len(got) != 1 || got[0] != want {
			t.Errorf("port_role entry %d has key %x, want %d (key order)", i, got, want)
		}
	}
	if got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole, Match: exact(0, 5)})); len(got) != 1 {
		t.Errorf("read of port 5 (non-canonical key) = %v, want its entry", got)
	}
	if got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole, Match: exact(7)})); len(got) != 0 {
		t.Errorf("read of a missing entry = %v, want nothing", got)
	}
	def := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.ipv4Host, IsDefaultAction: true}))
	if len(def) != 1 || def[0].GetTableEntry().GetAction().GetAction().GetActionId() != x.noRoute || !def[0].GetTableEntry().GetIsDefaultAction() {
		t.Errorf("read of ipv4_host's default entry = %v, want no_route", def)
	}
	_, err := b.read(tableQuery(&p4v1.TableEntry{TableId: 4242}))
	wantCode(t, err, codes.InvalidArgument, "table id 4242")
	_, err = b.read(tableQuery(&p4v1.TableEntry{Match: exact(1)}))
	wantCode(t, err, codes.InvalidArgument, "table_id 0")
	_, err = b.read(&p4v1.Entity{})
	wantCode(t, err, codes.InvalidArgument, "is empty")
}

// Register reads: every register (every cell of each), one register, one
// cell. A whole directory level spans several ReadResponses.
func TestReadRegisterWildcards(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	if err := b.write(0, scalarUpdate(x.dirTarget[p4.Levels-1], 3, []byte{2})); err != nil {
		t.Fatal(err)
	}
	all := b.mustRead(registerQuery(0, nil))
	if want := int(4*p4.Levels*x.dirSlots) + 1; len(all) != want { // key, target, origin and port per level, min_workload
		t.Fatalf("read of every register: %d cells, want %d", len(all), want)
	}
	level := b.mustRead(registerQuery(x.dirTarget[p4.Levels-1], nil))
	if len(level) != int(x.dirSlots) {
		t.Fatalf("read of one level's target register: %d cells, want %d", len(level), x.dirSlots)
	}
	c := level[3].GetRegisterEntry()
	if c.GetIndex().GetIndex() != 3 || string(c.GetData().GetBitstring()) != "\x02" {
		t.Errorf("cell 3 = %v, want index 3 target 2", c)
	}
	mw := b.mustRead(registerQuery(x.minWorkload, &p4v1.Index{Index: 0}))
	if len(mw) != 1 || string(mw[0].GetRegisterEntry().GetData().GetStruct().GetMembers()[1].GetBitstring()) != "\xff\xff\xff\xff" {
		t.Errorf("min_workload = %v, want the empty load 0xffffffff", mw)
	}
	_, err := b.read(registerQuery(x.minWorkload, &p4v1.Index{Index: 1}))
	wantCode(t, err, codes.OutOfRange, "index 1 is outside 0..0")
	_, err = b.read(registerQuery(77, nil))
	wantCode(t, err, codes.InvalidArgument, "register id 77")
	_, err = b.read(registerQuery(0, &p4v1.Index{Index: 1}))
	wantCode(t, err, codes.InvalidArgument, "register_id 0")
}

// dir<i>_port is a bit<16> register: its cells are bitstrings, not
// structs, both ways.
func TestPortRegisterCells(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	port := func(v []byte) *p4v1.Update { return scalarUpdate(x.dirPort[0], 7, v) }
	if err := b.write(0, port([]byte{0x1f, 0x90})); err != nil {
		t.Fatal(err)
	}
	if got, err := b.pipe.ReadDirectoryPort(0, 7); err != nil || got != 8080 {
		t.Fatalf("pipeline port cell = %d, %v; want 8080", got, err)
	}
	cells := b.mustRead(registerQuery(x.dirPort[0], &p4v1.Index{Index: 7}))
	if len(cells) != 1 || string(cells[0].GetRegisterEntry().GetData().GetBitstring()) != "\x1f\x90" {
		t.Errorf("read of the port cell = %v, want the bitstring 0x1f90", cells)
	}
	for _, c := range []struct {
		u    *p4v1.Update
		code codes.Code
		say  string
	}{
		{registerUpdate(p4v1.Update_MODIFY, x.dirPort[0], 7, []byte{1}, []byte{2}), codes.InvalidArgument, "data must be a bitstring (bit<16>)"},
		{port([]byte{1, 0, 0}), codes.OutOfRange, ""},
	} {
		errs := details(t, b.write(0, c.u))
		if len(errs) != 1 || codes.Code(errs[0].GetCanonicalCode()) != c.code || !strings.Contains(errs[0].GetMessage(), c.say) {
			t.Errorf("write %v: %v, want %v saying %q", c.u, errs, c.code, c.say)
		}
	}
}

// The drop counter counts by reason since the commit.
func TestReadCounters(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	// Two frames from a port without a role: unknown_port (reason 3).
	b.pipe.Process(make([]byte, 60), 7)
	b.pipe.Process(make([]byte, 60), 7)
	all := b.mustRead(counterQuery(0, nil))
	if len(all) != int(x.dropCells) {
		t.Fatalf("read of every counter: %d cells, want %d", len(all), x.dropCells)
	}
	for i, e := range all {
		want := int64(0)
		if i == 3 {
			want = 2
		}
		if n := e.GetCounterEntry().GetData().GetPacketCount(); n != want {
			t.Errorf("drops[%d] = %d, want %d", i, n, want)
		}
	}
	one := b.mustRead(counterQuery(x.drops, &p4v1.Index{Index: 3}))
	if len(one) != 1 || one[0].GetCounterEntry().GetData().GetPacketCount() != 2 {
		t.Errorf("drops[3] = %v, want 2", one)
	}
	_, err := b.read(counterQuery(x.drops, &p4v1.Index{Index: x.dropCells}))
	wantCode(t, err, codes.OutOfRange, "outside")
	_, err = b.read(counterQuery(99, nil))
	wantCode(t, err, codes.InvalidArgument, "counter id 99")
}

// A query that fails does not stop the others: the good ones' entities
// come back and the call ends UNKNOWN with one p4.v1.Error per query.
func TestReadBatchErrors(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	rs, err := b.cli.Read(ctx(t), &p4v1.ReadRequest{DeviceId: device, Entities: []*p4v1.Entity{
		counterQuery(x.drops, nil), tableQuery(&p4v1.TableEntry{TableId: 5}), counterQuery(x.drops, &p4v1.Index{Index: -1}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got int
	for {
		r, err := rs.Recv()
		if err != nil {
			st, _ := status.FromError(err)
			if st.Code() != codes.Unknown || len(st.Details()) != 3 {
				t.Fatalf("Read ended %v with %d details, want UNKNOWN with 3", err, len(st.Details()))
			}
			want := []codes.Code{codes.OK, codes.InvalidArgument, codes.InvalidArgument}
			for i, d := range st.Details() {
				if e := d.(*p4v1.Error); codes.Code(e.GetCanonicalCode()) != want[i] {
					t.Errorf("detail %d = %v, want %v", i, e, want[i])
				}
			}
			break
		}
		got += len(r.Entities)
	}
	if got != int(x.dropCells) {
		t.Errorf("the good query returned %d entities, want %d", got, x.dropCells)
	}
}
