package app_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// reproSwitch runs generated/pipeline as a simulator node, answers ARP
// for the control address, and can keep a copy of chosen frames to inject
// later: a delayed duplicate, which any network may deliver.
type reproSwitch struct {
	p      *pipeline.Pipeline
	ports  map[*sim.Port]pipeline.Port
	byID   []*sim.Port
	ctl    netip.Addr
	ctlMAC [6]byte
	// onFrame sees every frame before the pipeline; after the verdict it
	// may return frames to send out of ports.
	onFrame func(in *sim.Port, f []byte) (after func())
}

func (w *reproSwitch) Deliver(_ sim.Time, in *sim.Port, frame []byte) {
	if len(frame) >= 42 && frame[12] == 0x08 && frame[13] == 0x06 && frame[21] == 1 && netip.AddrFrom4([4]byte(frame[38:42])) == w.ctl {
		r := make([]byte, 42)
		copy(r[0:6], frame[6:12])
		copy(r[6:12], w.ctlMAC[:])
		copy(r[12:22], frame[12:22])
		r[21] = 2
		copy(r[22:28], w.ctlMAC[:])
		copy(r[28:32], frame[38:42])
		copy(r[32:38], frame[22:28])
		copy(r[38:42], frame[28:32])
		in.Send(r) //nolint:errcheck
		return
	}
	var after func()
	if w.onFrame != nil {
		after = w.onFrame(in, frame)
	}
	f := append([]byte(nil), frame...)
	r := w.p.Process(f, w.ports[in])
	switch r.Verdict {
	case pipeline.Forward, pipeline.Reply:
		w.byID[r.Egress].Send(f) //nolint:errcheck
	case pipeline.Flood:
		for _, p := range w.byID {
			if p != in {
				p.Send(f) //nolint:errcheck
			}
		}
	}
	if after != nil {
		after()
	}
}

func (*reproSwitch) Advance(sim.Time)               {}
func (*reproSwitch) NextDeadline() (sim.Time, bool) { return 0, false }

// tcpmigStage returns the TCPMig stage and IPv4 source of a frame, or 0.
func tcpmigStage(f []byte) (stage uint8, src netip.Addr) {
	if len(f) < 14+20+8+20 || f[12] != 0x08 || f[13] != 0x00 || f[14+9] != 17 {
		return 0, netip.Addr{}
	}
	l4 := f[14+int(f[14]&0xf)*4:]
	if len(l4) < 28 || binary.BigEndian.Uint16(l4[2:]) != 7071 {
		return 0, netip.Addr{}
	}
	return l4[8+18] >> 4, netip.AddrFrom4([4]byte(f[14+12 : 14+16]))
}

// A late duplicate of an earlier migration's CONN_STATE must not be taken
// for the state of the migration in progress: the applications here count
// on the target restoring the state of the origin it acknowledged. The
// connection moves S0→S1→S2→S1, and a duplicate of S0's CONN_STATE (of
// S0→S1) reaches S1 right after S1 acknowledged S2's PREPARE_MIG. Before
// the engine tagged migrations with an epoch, S1 restored it (onConnState
// does not check the sender) and acknowledged it to S2, which dropped its
// copy: the bytes the client had sent since were gone from the connection,
// though the client saw them acknowledged.
func TestStaleConnStateIgnored(t *testing.T) {
	s := sim.New(sim.Config{Seed: 7})
	ctl := netip.MustParseAddr("10.79.0.254")
	sw := &reproSwitch{p: pipeline.New(), ports: map[*sim.Port]pipeline.Port{}, ctl: ctl, ctlMAC: [6]byte{2, 0, 0, 0, 0xfe, 0xfe}}
	node := s.AddNode("switch")
	node.SetHandler(sw)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 79, 0, byte(i)}) }
	swPort := map[int]*sim.Port{} // by host number
	attach := func(i int, role pipeline.Role) *sim.Host {
		mac := net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}
		h, err := s.AddHost(addr(i).String(), mac, 1500, stack.Config{Addr: netip.PrefixFrom(addr(i), 24), Seed: uint64(i), ARPQueue: 4096})
		if err != nil {
			t.Fatal(err)
		}
		p, err := node.AddPort(net.HardwareAddr{2, 0, 0, 0, 2, byte(i)}, 1500)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Connect(h.Port, p, sim.LinkConfig{Delay: 10 * time.Microsecond}); err != nil {
			t.Fatal(err)
		}
		id := pipeline.Port(len(sw.byID))
		sw.ports[p], sw.byID = id, append(sw.byID, p)
		swPort[i] = p
		if sw.p.SetPortRole(id, role) != nil || sw.p.SetHost(addr(i).As4(), id, [6]byte(mac)) != nil || sw.p.SetL2([6]byte(mac), id) != nil {
			t.Fatal("switch tables")
		}
		return h
	}
	client := attach(1, pipeline.RoleClient)
	var servers []*sim.Host
	var engines []*migrate.Engine
	for i := range 3 {
		h := attach(11+i, pipeline.RoleServer)
		e, err := migrate.New(h.Stack, migrate.Config{Switch: ctl, HeartbeatPeriod: -1, Seed: uint64(i + 1), Clock: func() int64 { return int64(s.Now()) }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Stack.Listen(80); err != nil {
			t.Fatal(err)
		}
		servers, engines = append(servers, h), append(engines, e)
	}
	c, err := client.Stack.Connect(netip.AddrPortFrom(addr(11), 80))
	if err != nil {
		t.Fatal(err)
	}
	s.RunWhile(func() bool { return !c.Established() }, time.Second) //nolint:errcheck
	sent := 0
	write := func() {
		n, err := c.TryWrite(make([]byte, 1000))
		if err != nil || n != 1000 {
			t.Fatalf("client write: %d, %v", n, err)
		}
		sent += n
		s.RunUntil(s.Now() + 2*time.Millisecond) //nolint:errcheck
	}
	move := func(from, to int) {
		t.Helper()
		sw.p.WriteMinWorkload(addr(11+to).As4(), 0) //nolint:errcheck
		id := tcp.ID{Local: netip.AddrPortFrom(addr(11+from), 80), Remote: c.ID().Local}
		var out migrate.Outcome
		if err := engines[from].Start(id, nil, func(o migrate.Outcome) { out = o }); err != nil {
			t.Fatalf("start S%d→S%d: %v", from, to, err)
		}
		s.RunUntil(s.Now() + 3*time.Millisecond) //nolint:errcheck
		if out.Result != migrate.ResultMoved {
			t.Fatalf("S%d→S%d: %v (%v)", from, to, out.Result, out.Err)
		}
	}
	// Keep a copy of S0's CONN_STATE; release it to S1 just after S1's
	// PREPARE_MIG_ACK of the third migration went out.
	var dup [][]byte
	acks := 0
	sw.onFrame = func(in *sim.Port, f []byte) func() {
		stage, src := tcpmigStage(f)
		switch {
		case stage == 4 && src == addr(11):
			dup = append(dup, append([]byte(nil), f...))
		case stage == 3 && src == addr(12):
			if acks++; acks == 2 {
				return func() {
					// S0 sent them to S1's address: the pipeline forwards
					// them unchanged, so the copies go out as they came.
					for _, d := range dup {
						swPort[12].Send(d) //nolint:errcheck
					}
				}
			}
		}
		return nil
	}
	write()
	move(0, 1)
	write()
	move(1, 2)
	write()
	move(2, 1)
	s.RunUntil(s.Now() + 20*time.Millisecond) //nolint:errcheck
	id := tcp.ID{Local: netip.AddrPortFrom(addr(12), 80), Remote: c.ID().Local}
	sc := servers[1].Stack.LookupConn(id)
	if sc == nil {
		t.Fatal("S1 does not hold the connection")
	}
	if len(dup) == 0 || acks < 2 {
		t.Fatalf("the scenario did not run: %d fragments copied, %d PREPARE_MIG_ACKs from S1", len(dup), acks)
	}
	if got := sc.TCP().Readable(); got != sent {
		for _, r := range engines[1].Records() {
			b, _ := r.MarshalJSON()
			t.Logf("S1 record %s", b)
		}
		t.Errorf("S1's connection holds %d of the %d bytes the client sent and saw acknowledged: it was restored from S0's CONN_STATE of the first migration, not S2's", got, sent)
	}
}
