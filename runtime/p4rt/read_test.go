package p4rt_test

import (
	"strings"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	wantQueryError(t, err, codes.InvalidArgument, "table id 4242")
	_, err = b.read(tableQuery(&p4v1.TableEntry{Match: exact(1)}))
	wantQueryError(t, err, codes.InvalidArgument, "table_id 0")
	_, err = b.read(&p4v1.Entity{})
	wantQueryError(t, err, codes.InvalidArgument, "is empty")
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
	wantQueryError(t, err, codes.OutOfRange, "index 1 is outside 0..0")
	_, err = b.read(registerQuery(77, nil))
	wantQueryError(t, err, codes.InvalidArgument, "register id 77")
	_, err = b.read(registerQuery(0, &p4v1.Index{Index: 1}))
	wantQueryError(t, err, codes.InvalidArgument, "register_id 0")
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
	wantQueryError(t, err, codes.OutOfRange, "outside")
	_, err = b.read(counterQuery(99, nil))
	wantQueryError(t, err, codes.InvalidArgument, "counter id 99")
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

// wildcardCells is a MODIFY of every cell of a bit<32> register: a slow
// update (2^16 cells), to keep a batch running.
func wildcardCells(id uint32, v byte) *p4v1.Update {
	return &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{
		RegisterId: id, Data: &p4v1.P4Data{Data: &p4v1.P4Data_Bitstring{Bitstring: []byte{v}}}}}}}
}

// A Read sees the state between two Writes, never part of one
// (P4Runtime 13.3: a Read locks out writes; 13.4): while batches that
// insert port_role[7] and then fail (ROLLBACK_ON_ERROR) keep running,
// and batches that insert port_role[8] and port_role[9] and delete both
// again, no Read returns port_role[7], nor one of 8 and 9 without the
// other.
func TestReadSeesNoPartOfAWrite(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	entry := func(port byte) *p4v1.TableEntry {
		return &p4v1.TableEntry{TableId: x.portRole, Match: exact(port), Action: action(x.setRole, []byte{1})}
	}
	var slow []*p4v1.Update
	for l := range p4.Levels {
		slow = append(slow, wildcardCells(x.dirTarget[l], 1), wildcardCells(x.dirOrigin[l], 1))
	}
	rolledBack := append(append([]*p4v1.Update{tableUpdate(p4v1.Update_INSERT, entry(7))}, slow...),
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: 12345, Match: exact(1)}))
	pair := func(typ p4v1.Update_Type) []*p4v1.Update {
		return append(append([]*p4v1.Update{tableUpdate(typ, entry(8))}, slow...), tableUpdate(typ, entry(9)))
	}
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for ; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.write(p4v1.WriteRequest_ROLLBACK_ON_ERROR, rolledBack...); status.Code(err) != codes.Unknown {
				t.Errorf("the failing batch: %v, want UNKNOWN", err)
				return
			}
			for _, typ := range []p4v1.Update_Type{p4v1.Update_INSERT, p4v1.Update_DELETE} {
				if err := b.write(0, pair(typ)...); err != nil {
					t.Errorf("%v of port_role[8] and [9]: %v", typ, err)
					return
				}
			}
		}
	}()
	reads := 0
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); reads++ {
		// A slow query first: the table is read well after the Read
		// began, when another batch may be under way.
		got, err := b.read(registerQuery(x.dirKey[1], nil), tableQuery(&p4v1.TableEntry{TableId: x.portRole}))
		if err != nil {
			t.Errorf("read %d: %v", reads, err)
			break
		}
		ports := map[byte]bool{}
		for _, e := range got {
			if te := e.GetTableEntry(); te != nil {
				ports[te.GetMatch()[0].GetExact().GetValue()[0]] = true
			}
		}
		if ports[7] {
			t.Errorf("read %d returned port_role[7], which only batches that were rolled back wrote", reads)
			break
		}
		if ports[8] != ports[9] {
			t.Errorf("read %d returned port_role %v: half of a batch", reads, ports)
			break
		}
	}
	close(stop)
	if n := <-done; n == 0 && !t.Failed() {
		t.Errorf("no batch completed while %d reads ran", reads)
	}
}

// A table read's action id, priority, controller_metadata and metadata
// filter the entries when not zero (P4Runtime 9.1.6); with table_id 0 no
// filter may be given.
func TestReadTableFilters(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	if err := b.write(0,
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(1), Action: action(x.setRole, []byte{1}), Metadata: []byte("a"), ControllerMetadata: 5}),
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(2), Action: action(x.setRole, []byte{2}), Metadata: []byte("b"), ControllerMetadata: 6}),
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(3), Action: action(x.setRole, []byte{2})}),
	); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		q     *p4v1.TableEntry
		ports []byte
	}{
		{"no filter", &p4v1.TableEntry{TableId: x.portRole}, []byte{1, 2, 3}},
		{"metadata b", &p4v1.TableEntry{TableId: x.portRole, Metadata: []byte("b")}, []byte{2}},
		{"metadata c", &p4v1.TableEntry{TableId: x.portRole, Metadata: []byte("c")}, nil},
		{"controller_metadata 5", &p4v1.TableEntry{TableId: x.portRole, ControllerMetadata: 5}, []byte{1}},
		{"priority 11", &p4v1.TableEntry{TableId: x.portRole, Priority: 11}, nil},
		{"action set_role", &p4v1.TableEntry{TableId: x.portRole, Action: action(x.setRole)}, []byte{1, 2, 3}},
		{"action set_host", &p4v1.TableEntry{TableId: x.portRole, Action: action(x.setHost)}, nil},
		{"match and metadata", &p4v1.TableEntry{TableId: x.portRole, Match: exact(1), Metadata: []byte("b")}, nil},
		{"two filters", &p4v1.TableEntry{TableId: x.portRole, Metadata: []byte("a"), ControllerMetadata: 5}, []byte{1}},
	} {
		got, err := b.read(tableQuery(c.q))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var ports []byte
		for _, e := range got {
			ports = append(ports, e.GetTableEntry().GetMatch()[0].GetExact().GetValue()[0])
		}
		if string(ports) != string(c.ports) {
			t.Errorf("read filtered by %s returned ports %v, want %v", c.name, ports, c.ports)
		}
	}
	// The default entry passes or fails the filters as an entry does.
	if got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole, IsDefaultAction: true, Action: action(x.miss)})); len(got) != 1 {
		t.Errorf("read of the default entry filtered by its action = %v, want it", got)
	}
	if got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole, IsDefaultAction: true, Action: action(x.setRole)})); len(got) != 0 {
		t.Errorf("read of the default entry filtered by another action = %v, want nothing", got)
	}
	for _, c := range []struct {
		q    *p4v1.TableEntry
		want string
	}{
		{&p4v1.TableEntry{Metadata: []byte("a")}, "table_id 0"},
		{&p4v1.TableEntry{Priority: 1}, "table_id 0"},
		{&p4v1.TableEntry{Action: action(x.setRole)}, "table_id 0"},
		{&p4v1.TableEntry{TableId: x.portRole, Action: action(x.setRole, []byte{1})}, "leave params empty"},
		{&p4v1.TableEntry{TableId: x.portRole, Action: action(4242)}, "action id 4242 is not in the p4info"},
		{&p4v1.TableEntry{TableId: x.portRole, Action: action(0)}, "action id 0"},
		{&p4v1.TableEntry{TableId: x.portRole, Action: &p4v1.TableAction{Type: &p4v1.TableAction_ActionProfileMemberId{ActionProfileMemberId: 1}}}, "no action profiles"},
	} {
		_, err := b.read(tableQuery(c.q))
		wantQueryError(t, err, codes.InvalidArgument, c.want)
	}
}

// The keyless tables of the p4info (mig_len_tbl, dir<i>_hash_tbl) are
// served: a read of the default entry returns the const default action,
// a read of the table nothing else; MODIFY of the default entry is
// PERMISSION_DENIED (P4Runtime 9.1.3), any other write refused.
func TestKeylessTablesHoldTheirConstDefault(t *testing.T) {
	b := newBench(t)
	b.primary()
	n := 0
	for _, tb := range b.srv.P4Info().Tables {
		if len(tb.MatchFields) != 0 {
			continue
		}
		n++
		id, name := tb.Preamble.Id, tb.Preamble.Name
		def, err := b.read(tableQuery(&p4v1.TableEntry{TableId: id, IsDefaultAction: true}))
		want := &p4v1.TableEntry{TableId: id, IsDefaultAction: true, Action: action(tb.ConstDefaultActionId)}
		if err != nil || len(def) != 1 || !proto.Equal(def[0].GetTableEntry(), want) {
			t.Errorf("%s: read of the default entry = %v, %v; want %v", name, def, err, want)
		}
		if got := b.mustRead(tableQuery(&p4v1.TableEntry{TableId: id})); len(got) != 0 {
			t.Errorf("%s: read of its entries = %v, want none", name, got)
		}
		for _, c := range []struct {
			u    *p4v1.Update
			code codes.Code
			say  string
		}{
			{tableUpdate(p4v1.Update_MODIFY, &p4v1.TableEntry{TableId: id, IsDefaultAction: true, Action: action(tb.ConstDefaultActionId)}), codes.PermissionDenied, "is const"},
			{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: id, IsDefaultAction: true}), codes.InvalidArgument, "only MODIFY"},
			{tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: id, Action: action(tb.ConstDefaultActionId)}), codes.InvalidArgument, "no match fields"},
			{tableUpdate(p4v1.Update_MODIFY, &p4v1.TableEntry{TableId: id, Action: action(tb.ConstDefaultActionId)}), codes.InvalidArgument, "no match fields"},
			{tableUpdate(p4v1.Update_DELETE, &p4v1.TableEntry{TableId: id}), codes.NotFound, "no entry to delete"},
		} {
			errs := details(t, b.write(0, c.u))
			if len(errs) != 1 || codes.Code(errs[0].GetCanonicalCode()) != c.code || !strings.Contains(errs[0].GetMessage(), name) || !strings.Contains(errs[0].GetMessage(), c.say) {
				t.Errorf("%s: %v: %v, want %v naming the table and saying %q", name, c.u, errs, c.code, c.say)
			}
		}
	}
	if n != 3 {
		t.Errorf("the p4info has %d keyless tables, want 3 (mig_len_tbl, dir0_hash_tbl, dir1_hash_tbl)", n)
	}
	// They hold no entries, so a read of every table returns none of theirs.
	if got := b.mustRead(tableQuery(&p4v1.TableEntry{})); len(got) != 0 {
		t.Errorf("read of every table = %v, want nothing", got)
	}
}
