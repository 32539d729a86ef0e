package p4rt_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/p4rt"
)

func TestCapabilities(t *testing.T) {
	b := newBench(t)
	for _, id := range []uint64{0, device} {
		r, err := b.cli.Capabilities(ctx(t), &p4v1.CapabilitiesRequest{DeviceId: id})
		if err != nil || r.GetP4RuntimeApiVersion() != p4rt.APIVersion {
			t.Fatalf("Capabilities(device %d) = %v, %v; want version %s", id, r, err, p4rt.APIVersion)
		}
	}
	_, err := b.cli.Capabilities(ctx(t), &p4v1.CapabilitiesRequest{DeviceId: 8})
	wantCode(t, err, codes.NotFound, "device id 8 is unknown")
}

func TestUnimplementedAnswers(t *testing.T) {
	b := newBench(t)
	b.primary()
	_, err := b.read(&p4v1.Entity{Entity: &p4v1.Entity_MeterEntry{MeterEntry: &p4v1.MeterEntry{}}})
	wantQueryError(t, err, codes.Unimplemented, "MeterEntry")
	err = b.write(p4v1.WriteRequest_DATAPLANE_ATOMIC, tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{}))
	wantCode(t, err, codes.Unimplemented, "DATAPLANE_ATOMIC")
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_RECONCILE_AND_COMMIT, b.config(1))
	wantCode(t, err, codes.Unimplemented, "RECONCILE_AND_COMMIT")
}

// Arbitration with two clients: the higher election id is primary,
// whichever comes first, and both hear when it changes.
func TestArbitrationTwoClients(t *testing.T) {
	b := newBench(t)
	low := b.open(5)
	low.expect(codes.OK, 5)
	high := b.open(9)
	high.expect(codes.OK, 9)
	low.expect(codes.AlreadyExists, 9)

	// The backup may read but not write.
	b.commit(9, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, b.config(1))
	_, err := b.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(5)})
	wantCode(t, err, codes.PermissionDenied, "the primary's election id is 9")
	err = b.setPipeline(5, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, b.config(1))
	wantCode(t, err, codes.PermissionDenied, "the primary's election id is 9")
	if _, err := b.read(tableQuery(&p4v1.TableEntry{})); err != nil {
		t.Errorf("backup read: %v", err)
	}

	// The primary leaves: the backup takes over and hears it.
	high.cancel()
	low.expect(codes.OK, 5)
	if _, err := b.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(5)}); err != nil {
		t.Errorf("write by the new primary: %v", err)
	}
}

// Three clients: when the primary goes, the next-highest takes over, and
// every remaining client hears.
func TestArbitrationThreeClients(t *testing.T) {
	b := newBench(t)
	c3 := b.open(3)
	c3.expect(codes.OK, 3)
	c7 := b.open(7)
	c7.expect(codes.OK, 7)
	c3.expect(codes.AlreadyExists, 7)
	c5 := b.open(5)
	// c5 does not change the primary: only c5 hears.
	c5.expect(codes.AlreadyExists, 7)

	c7.cancel()
	c5.expect(codes.OK, 5)
	c3.expect(codes.AlreadyExists, 5)

	c5.cancel()
	c3.expect(codes.OK, 3)
}

// A client without an election id is a backup that never becomes primary.
func TestArbitrationUnsetElectionID(t *testing.T) {
	b := newBench(t)
	none := b.open(0)
	none.expect(codes.NotFound, 0)
	p := b.open(4)
	p.expect(codes.OK, 4)
	none.expect(codes.AlreadyExists, 4)
	p.cancel()
	// No primary now; the update carries the highest id a primary had.
	none.expect(codes.NotFound, 4)
}

func TestArbitrationErrors(t *testing.T) {
	b := newBench(t)
	first := b.open(4)
	first.expect(codes.OK, 4)

	dup := b.open(4)
	wantCode(t, dup.recvErr(), codes.InvalidArgument, "election id 4 is already another client's")

	s, err := b.cli.StreamChannel(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{DeviceId: 99, ElectionId: eid(8)}}})
	wantCode(t, (&stream{t: t, s: s}).recvErr(), codes.NotFound, "device id 99 is unknown; this switch is device 1")

	s, _ = b.cli.StreamChannel(ctx(t))
	s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Packet{Packet: &p4v1.PacketOut{}}})
	wantCode(t, (&stream{t: t, s: s}).recvErr(), codes.FailedPrecondition, "first StreamChannel message must be a MasterArbitrationUpdate")

	s, _ = b.cli.StreamChannel(ctx(t))
	s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
		DeviceId: device, ElectionId: eid(8), Role: &p4v1.Role{Name: "sdn"}}}})
	wantCode(t, (&stream{t: t, s: s}).recvErr(), codes.Unimplemented, `role "sdn"`)

	s, _ = b.cli.StreamChannel(ctx(t))
	s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
		DeviceId: device, ElectionId: eid(8), Role: &p4v1.Role{Config: &anypb.Any{TypeUrl: "x/y"}}}}})
	wantCode(t, (&stream{t: t, s: s}).recvErr(), codes.InvalidArgument, "role.config")

	_, err = b.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(4), Role: "sdn"})
	wantCode(t, err, codes.NotFound, `role "sdn" is unknown`)

	// Without any primary, writes are refused.
	first.cancel()
	b2 := newBench(t)
	_, err = b2.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(4)})
	wantCode(t, err, codes.PermissionDenied, "there is no primary client")
	_, err = b2.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: 3, ElectionId: eid(4)})
	wantCode(t, err, codes.NotFound, "device id 3 is unknown")
}

// A primary that arbitrates again is re-announced to every client
// (P4Runtime 5.3); stream messages other than arbitration are answered
// with a StreamError: PERMISSION_DENIED for a backup, UNIMPLEMENTED (no
// packet I/O here) for the primary.
func TestArbitrationAgainAndStreamErrors(t *testing.T) {
	b := newBench(t)
	p := b.open(6)
	p.expect(codes.OK, 6)
	q := b.open(2)
	q.expect(codes.AlreadyExists, 6)
	p.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{DeviceId: device, ElectionId: eid(6)}}})
	p.expect(codes.OK, 6)
	q.expect(codes.AlreadyExists, 6)

	for _, c := range []struct {
		s    *stream
		code codes.Code
	}{{q, codes.PermissionDenied}, {p, codes.Unimplemented}} {
		c.s.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Packet{Packet: &p4v1.PacketOut{Payload: []byte{1}}}})
		m, err := c.s.s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		e := m.GetError()
		if codes.Code(e.GetCanonicalCode()) != c.code || e.GetPacketOut().GetPacketOut().GetPayload()[0] != 1 {
			t.Errorf("stream %d: packet out answered %v, want a StreamError %v carrying the packet", c.s.id, m, c.code)
		}
	}
}

// A client may raise its own election id on its stream.
func TestArbitrationRaise(t *testing.T) {
	b := newBench(t)
	a := b.open(2)
	a.expect(codes.OK, 2)
	c := b.open(6)
	c.expect(codes.OK, 6)
	a.expect(codes.AlreadyExists, 6)
	a.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{DeviceId: device, ElectionId: eid(8)}}})
	a.expect(codes.OK, 8)
	c.expect(codes.AlreadyExists, 8)
}

func TestPipelineConfig(t *testing.T) {
	b := newBench(t)
	p := b.open(10)
	p.expect(codes.OK, 10)

	// No config yet: Get answers OK with the config unset (P4Runtime 15).
	r, err := b.cli.GetForwardingPipelineConfig(ctx(t), &p4v1.GetForwardingPipelineConfigRequest{DeviceId: device})
	if err != nil || r.GetConfig() != nil {
		t.Fatalf("Get before any config = %v, %v; want OK with no config", r, err)
	}
	_, err = b.cli.Write(ctx(t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(10)})
	wantCode(t, err, codes.FailedPrecondition, "before writing")
	_, err = b.read(tableQuery(&p4v1.TableEntry{}))
	wantCode(t, err, codes.FailedPrecondition, "before reading")

	// Another spec's p4info: both fingerprints named.
	other := b.config(1)
	other.P4Info.PkgInfo.Version = "0123456789abcdef"
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY, other)
	wantCode(t, err, codes.InvalidArgument, fmt.Sprintf("spec fingerprint %q (pkg_info.version) but this switch runs spec fingerprint %q", "0123456789abcdef", p4.Fingerprint))

	// The right fingerprint on an edited p4info.
	edited := b.config(1)
	edited.P4Info.Tables[0].Size++
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, edited)
	wantCode(t, err, codes.InvalidArgument, "differs from the one generated from it")
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY, &p4v1.ForwardingPipelineConfig{})
	wantCode(t, err, codes.InvalidArgument, "no p4info")

	// VERIFY commits nothing; COMMIT needs a saved config.
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY, b.config(1))
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_COMMIT, nil)
	wantCode(t, err, codes.NotFound, "no config is saved")
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_COMMIT, b.config(1))
	wantCode(t, err, codes.InvalidArgument, "COMMIT takes no config")
	err = b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_UNSPECIFIED, b.config(1))
	wantCode(t, err, codes.InvalidArgument, "give VERIFY")

	// VERIFY_AND_SAVE, then COMMIT: the cookie comes back.
	cfg := b.config(42)
	cfg.P4DeviceConfig = []byte("tofino.bin and context.json")
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE, cfg)
	if r, err := b.cli.GetForwardingPipelineConfig(ctx(t), &p4v1.GetForwardingPipelineConfigRequest{DeviceId: device}); err != nil || r.GetConfig() != nil {
		t.Errorf("Get after VERIFY_AND_SAVE = %v, %v; want no config (nothing committed yet)", r, err)
	}
	// Writes refer to the saved config at once, and COMMIT realizes them
	// (TestWritesAfterSaveWaitForCommit has the details).
	x := resolve(t)
	if err := b.write(0, tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(6), Action: action(x.setRole, []byte{1})})); err != nil {
		t.Fatalf("write after VERIFY_AND_SAVE: %v", err)
	}
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_COMMIT, nil)
	if r := b.pipe.ReadTables().PortRoles[6]; r != pipeline.RoleClient {
		t.Errorf("port 6 role %v after COMMIT, want the write made after the save", r)
	}
	for _, c := range []struct {
		rt                 p4v1.GetForwardingPipelineConfigRequest_ResponseType
		info, deviceConfig bool
	}{
		{p4v1.GetForwardingPipelineConfigRequest_ALL, true, true},
		{p4v1.GetForwardingPipelineConfigRequest_COOKIE_ONLY, false, false},
		{p4v1.GetForwardingPipelineConfigRequest_P4INFO_AND_COOKIE, true, false},
		{p4v1.GetForwardingPipelineConfigRequest_DEVICE_CONFIG_AND_COOKIE, false, true},
	} {
		r, err := b.cli.GetForwardingPipelineConfig(ctx(t), &p4v1.GetForwardingPipelineConfigRequest{DeviceId: device, ResponseType: c.rt})
		if err != nil {
			t.Fatalf("Get(%v): %v", c.rt, err)
		}
		got := r.GetConfig()
		if got.GetCookie().GetCookie() != 42 || (got.GetP4Info() != nil) != c.info || (got.GetP4DeviceConfig() != nil) != c.deviceConfig {
			t.Errorf("Get(%v) = cookie %v, p4info %t, device config %t; want 42, %t, %t", c.rt, got.GetCookie(), got.GetP4Info() != nil, got.GetP4DeviceConfig() != nil, c.info, c.deviceConfig)
		}
		if c.info && !proto.Equal(got.GetP4Info(), cfg.P4Info) {
			t.Errorf("Get(%v) p4info differs from the one committed", c.rt)
		}
	}
}

// A commit starts the forwarding state over, as loading a program does.
func TestCommitClearsState(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	if err := b.write(0,
		tableUpdate(p4v1.Update_INSERT, &p4v1.TableEntry{TableId: x.portRole, Match: exact(1), Action: action(x.setRole, []byte{2})}),
		registerUpdate(p4v1.Update_MODIFY, x.minWorkload, 0, []byte{10, 77, 0, 11}, []byte{3}),
		registerUpdate(p4v1.Update_MODIFY, x.dirKey[0], 9, []byte{10, 77, 0, 1}, []byte{1, 0x1f, 0x90}),
	); err != nil {
		t.Fatal(err)
	}
	// A frame from a port without a role is dropped unknown_port: count it.
	b.pipe.Process(make([]byte, 60), 33)
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, b.config(8))
	if ts := b.pipe.ReadTables(); len(ts.PortRoles)+len(ts.Hosts)+len(ts.L2) != 0 {
		t.Errorf("tables after the commit: %+v", ts)
	}
	if h, l := b.pipe.ReadMinWorkload(); h != ([4]byte{}) || l != pipeline.EmptyLoad {
		t.Errorf("min_workload after the commit = %v %d, want empty", h, l)
	}
	if k, _, _ := b.pipe.ReadDirectoryCells(0, 9); k != (pipeline.KeyCell{}) {
		t.Errorf("dir0_key[9] after the commit = %v", k)
	}
	for _, e := range b.mustRead(&p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: x.drops}}}) {
		if n := e.GetCounterEntry().GetData().GetPacketCount(); n != 0 {
			t.Errorf("drops[%d] = %d after the commit, want 0", e.GetCounterEntry().GetIndex().GetIndex(), n)
		}
	}
}

// TestBackupThatNeverReadsStallsNoWrite: a backup that never reads its
// stream fills it with the arbitration updates of a primary that keeps
// re-arbitrating; its sender waits, but the control plane goes on: a
// third client takes over and a Write is answered. (The announcements
// held a lock taken under the server's, and every Write, Read and
// pipeline push hung until the backup left.)
func TestBackupThatNeverReadsStallsNoWrite(t *testing.T) {
	b := newBench(t)
	b.open(1) // never reads
	primary := b.open(2)
	go func() {
		for {
			if _, err := primary.s.Recv(); err != nil {
				return
			}
		}
	}()
	var sent atomic.Int64
	go func() { // bounded: until the server stops reading it, or 20,000
		for id := uint64(3); id < 20000; id++ {
			arb := &p4v1.MasterArbitrationUpdate{DeviceId: device, ElectionId: eid(id)}
			if primary.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: arb}}) != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Until the sends stall (the backup's stream is full) or end.
	for last, deadline := int64(-1), time.Now().Add(10*time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		n := sent.Load()
		if n == last || n >= 19997 {
			break
		}
		last = n
	}
	t.Logf("%d re-arbitrations sent", sent.Load())
	b.open(1 << 40)
	wctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := b.cli.Write(wctx, &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(1 << 40)})
	if status.Code(err) == codes.DeadlineExceeded {
		t.Fatalf("a Write with a backup that never reads: %v", err)
	}
}

// After VERIFY_AND_SAVE the forwarding state is not modified (P4Runtime
// 14): writes go to the state the saved config will start with (cleared,
// as a loaded program's), which Reads see; COMMIT clears the forwarding
// state and replays them; a new save starts them over, and
// VERIFY_AND_COMMIT drops them.
func TestWritesAfterSaveWaitForCommit(t *testing.T) {
	b := newBench(t)
	b.primary()
	x := resolve(t)
	role := func(typ p4v1.Update_Type, port byte) *p4v1.Update {
		return tableUpdate(typ, &p4v1.TableEntry{TableId: x.portRole, Match: exact(port), Action: action(x.setRole, []byte{1})})
	}
	roles := func() []byte {
		var ports []byte
		for _, e := range b.mustRead(tableQuery(&p4v1.TableEntry{TableId: x.portRole})) {
			ports = append(ports, e.GetTableEntry().GetMatch()[0].GetExact().GetValue()[0])
		}
		return ports
	}
	live := func() map[pipeline.Port]pipeline.Role { return b.pipe.ReadTables().PortRoles }
	drops3 := func() int64 {
		return b.mustRead(counterQuery(x.drops, &p4v1.Index{Index: 3}))[0].GetCounterEntry().GetData().GetPacketCount()
	}
	setDrops3 := &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{
		CounterId: x.drops, Index: &p4v1.Index{Index: 3}, Data: &p4v1.CounterData{PacketCount: 5}}}}}
	if err := b.write(0, role(p4v1.Update_INSERT, 1), registerUpdate(p4v1.Update_MODIFY, x.minWorkload, 0, []byte{10, 77, 0, 11}, []byte{7})); err != nil {
		t.Fatal(err)
	}

	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE, b.config(9))
	if err := b.write(0, role(p4v1.Update_INSERT, 6), registerUpdate(p4v1.Update_MODIFY, x.dirKey[0], 9, []byte{10, 77, 0, 1}, []byte{1, 0x1f, 0x90}), setDrops3); err != nil {
		t.Fatalf("write after VERIFY_AND_SAVE: %v", err)
	}
	if got := live(); len(got) != 1 || got[1] != pipeline.RoleClient {
		t.Errorf("port_role in the data plane after writes following VERIFY_AND_SAVE = %v, want only port 1's, as before the save", got)
	}
	if k, _, _ := b.pipe.ReadDirectoryCells(0, 9); k != (pipeline.KeyCell{}) {
		t.Errorf("dir0_key[9] in the data plane before COMMIT = %v, want it empty", k)
	}
	// Checked against the saved config's state: port 1 is not in it; a
	// batch that fails and rolls back is not replayed.
	errs := details(t, b.write(0, role(p4v1.Update_INSERT, 8), role(p4v1.Update_MODIFY, 1)))
	if codes.Code(errs[0].GetCanonicalCode()) != codes.OK || codes.Code(errs[1].GetCanonicalCode()) != codes.NotFound {
		t.Errorf("INSERT of port 8 and MODIFY of port 1 after the save = %v, want OK and NOT_FOUND", errs)
	}
	details(t, b.write(p4v1.WriteRequest_ROLLBACK_ON_ERROR, role(p4v1.Update_INSERT, 7), role(p4v1.Update_INSERT, 7)))
	if got := live(); len(got) != 1 || got[1] != pipeline.RoleClient {
		t.Errorf("port_role in the data plane before COMMIT = %v, want only port 1's, as before the save", got)
	}
	if got := string(roles()); got != "\x06\x08" {
		t.Errorf("read of port_role after the save = %v, want ports 6 and 8 (the saved config's state)", []byte(got))
	}
	if n := drops3(); n != 5 {
		t.Errorf("read of drops[3] after the save = %d, want 5", n)
	}
	if r, err := b.cli.GetForwardingPipelineConfig(ctx(t), &p4v1.GetForwardingPipelineConfigRequest{DeviceId: device}); err != nil || r.GetConfig().GetCookie().GetCookie() != 7 {
		t.Errorf("Get before COMMIT = %v, %v; want the committed cookie 7", r, err)
	}

	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_COMMIT, nil)
	if got := live(); len(got) != 2 || got[6] != pipeline.RoleClient || got[8] != pipeline.RoleClient {
		t.Errorf("port_role in the data plane after COMMIT = %v, want ports 6 and 8 only", got)
	}
	if k, _, _ := b.pipe.ReadDirectoryCells(0, 9); k != (pipeline.KeyCell{IP: 0x0a4d0001, Port: 0x11f90}) {
		t.Errorf("dir0_key[9] after COMMIT = %+v, want the cell written after the save", k)
	}
	if h, l := b.pipe.ReadMinWorkload(); h != ([4]byte{}) || l != pipeline.EmptyLoad {
		t.Errorf("min_workload after COMMIT = %v %d, want it cleared (it was written before the save)", h, l)
	}
	if got := string(roles()); got != "\x06\x08" {
		t.Errorf("read of port_role after COMMIT = %v, want ports 6 and 8", []byte(got))
	}
	if n := drops3(); n != 5 {
		t.Errorf("read of drops[3] after COMMIT = %d, want the 5 written after the save", n)
	}

	// Only the writes since the last save are replayed.
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE, b.config(10))
	if err := b.write(0, role(p4v1.Update_INSERT, 20)); err != nil {
		t.Fatal(err)
	}
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE, b.config(11))
	if got := roles(); len(got) != 0 {
		t.Errorf("read of port_role after a second save = %v, want nothing", got)
	}
	if err := b.write(0, role(p4v1.Update_INSERT, 21)); err != nil {
		t.Fatal(err)
	}
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_COMMIT, nil)
	if got := live(); len(got) != 1 || got[21] != pipeline.RoleClient {
		t.Errorf("port_role after the second COMMIT = %v, want port 21 only", got)
	}

	// VERIFY_AND_COMMIT drops the writes since the save.
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE, b.config(12))
	if err := b.write(0, role(p4v1.Update_INSERT, 30)); err != nil {
		t.Fatal(err)
	}
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, b.config(13))
	if got := live(); len(got) != 0 {
		t.Errorf("port_role after VERIFY_AND_COMMIT = %v, want nothing", got)
	}
	wantCode(t, b.setPipeline(10, p4v1.SetForwardingPipelineConfigRequest_COMMIT, nil), codes.NotFound, "no config is saved")
}
