package softswitch

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
)

// The simulator drives the switch through Node.
var _ sim.Handler = (*Node[*sim.Port])(nil)

// simNet is a client, two servers and a probe (a raw node that pings)
// around one switch, in one simulation.
type simNet struct {
	s              *sim.Sim
	sw             *Switch
	client, s1, s2 *sim.Host
	probe          *probe
}

var (
	ipProbe  = netip.MustParseAddr("10.77.0.50")
	macProbe = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x50}
)

// newSimNet builds the network; fault applies to the switch port of s1.
func newSimNet(t *testing.T, seed uint64, fault Fault) *simNet {
	t.Helper()
	s := sim.New(sim.Config{Seed: seed})
	tcpCfg := stack.Config{}.TCP
	tcpCfg.InitialRTO = 200 * time.Millisecond
	host := func(name string, mac net.HardwareAddr, addr netip.Addr, n uint64) *sim.Host {
		h, err := s.AddHost(name, mac, 1500, stack.Config{
			Addr: netip.PrefixFrom(addr, 24), Seed: seed*10 + n, TCP: tcpCfg, ARPRetries: 8, ARPRetry: 100 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	n := &simNet{s: s,
		client: host("client", macClient, ipClient, 1),
		s1:     host("s1", macS1, ipS1, 2),
		s2:     host("s2", macS2, ipS2, 3),
	}
	node := s.AddNode("switch")
	ids := map[*sim.Port]pipeline.Port{}
	var cfg Config
	cfg.Seed = seed
	cfg.Control.Addr = ipControl
	attach := func(name string, id pipeline.Port, role pipeline.Role, far *sim.Port, mac net.HardwareAddr, addr netip.Addr, f Fault) {
		p, err := node.AddPort(net.HardwareAddr{0x02, 0xaa, 0, 0, 0, byte(id)}, 1500)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Connect(far, p, sim.LinkConfig{Delay: 5 * time.Microsecond}); err != nil {
			t.Fatal(err)
		}
		ids[p] = id
		cfg.Ports = append(cfg.Ports, PortConfig{ID: id, Name: name, Role: role, Endpoint: p, Fault: f})
		cfg.Hosts = append(cfg.Hosts, Host{Addr: addr, Port: id, MAC: mac})
	}
	attach("client", pClient, pipeline.RoleClient, n.client.Port, macClient, ipClient, Fault{})
	attach("s1", pS1, pipeline.RoleServer, n.s1.Port, macS1, ipS1, fault)
	attach("s2", pS2, pipeline.RoleServer, n.s2.Port, macS2, ipS2, Fault{})
	probeNode := s.AddNode("probe")
	pp, err := probeNode.AddPort(macProbe, 1500)
	if err != nil {
		t.Fatal(err)
	}
	n.probe = &probe{t: t, port: pp}
	probeNode.SetHandler(n.probe)
	attach("probe", 4, pipeline.RoleClient, pp, macProbe, ipProbe, Fault{})

	sw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	node.SetHandler(NewNode(sw, ids))
	n.sw = sw
	return n
}

// probe is a raw node: it answers ARP for its address, sends echo
// requests and records the replies by source address.
type probe struct {
	t       testing.TB
	port    *sim.Port
	replies map[netip.Addr]int
}

func (p *probe) Deliver(_ sim.Time, _ *sim.Port, f []byte) {
	if len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == etherTypeARP && binary.BigEndian.Uint16(f[20:22]) == 1 && [4]byte(f[38:42]) == ipProbe.As4() {
		r := append([]byte(nil), f...)
		copy(r[0:6], f[6:12])
		copy(r[6:12], macProbe)
		binary.BigEndian.PutUint16(r[20:22], 2)
		copy(r[22:28], macProbe)
		copy(r[28:32], ipProbe.AsSlice())
		copy(r[32:38], f[22:28])
		copy(r[38:42], f[28:32])
		p.port.Send(r)
		return
	}
	if len(f) >= 42 && binary.BigEndian.Uint16(f[12:14]) == etherTypeIPv4 && f[23] == 1 && f[34] == 0 && inetChecksum(f[14:34]) == 0 && inetChecksum(f[34:]) == 0 {
		if p.replies == nil {
			p.replies = map[netip.Addr]int{}
		}
		p.replies[netip.AddrFrom4([4]byte(f[26:30]))]++
	}
}
func (*probe) Advance(sim.Time)               {}
func (*probe) NextDeadline() (sim.Time, bool) { return 0, false }
func (p *probe) ping(dstMAC net.HardwareAddr, dst netip.Addr, seq uint16) {
	p.port.Send(echoRequest(p.t, macProbe, dstMAC, ipProbe, dst, seq))
}

// exchange is one TCP connection through the switch: the client sends
// data and half-closes, the server answers with the data's sha256.
type exchange struct {
	client, server *stack.Conn
	ln             *stack.Listener
	data           []byte
	sent           int
	got            []byte
	answer         []byte
	closed, done   bool
	err            error
	buf            [16 << 10]byte
}

func startExchange(t *testing.T, n *simNet, srv *sim.Host, port uint16, size int) *exchange {
	t.Helper()
	x := &exchange{data: make([]byte, size)}
	r := n.s.Rand()
	for i := range x.data {
		x.data[i] = byte(r.Uint32())
	}
	var err error
	if x.ln, err = srv.Stack.Listen(port); err != nil {
		t.Fatal(err)
	}
	if x.client, err = n.client.Stack.Connect(netip.AddrPortFrom(srv.Stack.Addr(), port)); err != nil {
		t.Fatal(err)
	}
	n.client.OnStep(func(sim.Time) { x.clientStep() })
	srv.OnStep(func(sim.Time) { x.serverStep() })
	return x
}

func (x *exchange) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

func (x *exchange) clientStep() {
	if x.done || x.err != nil || !x.client.Established() {
		if err := x.client.Err(); err != nil && !x.done {
			x.fail(fmt.Errorf("client: %w", err))
		}
		return
	}
	for x.sent < len(x.data) {
		k, err := x.client.TryWrite(x.data[x.sent:])
		x.sent += k
		if err != nil {
			x.fail(err)
			return
		}
		if k == 0 {
			break
		}
	}
	if x.sent == len(x.data) && !x.closed {
		x.closed = true
		x.client.CloseWrite()
	}
	for {
		k, err := x.client.TryRead(x.buf[:])
		x.answer = append(x.answer, x.buf[:k]...)
		if err == io.EOF {
			x.done = true
			x.client.Close()
			return
		}
		if err != nil {
			x.fail(err)
			return
		}
		if k == 0 {
			return
		}
	}
}

func (x *exchange) serverStep() {
	if x.err != nil {
		return
	}
	if x.server == nil {
		if x.server = x.ln.TryAccept(); x.server == nil {
			return
		}
	}
	for {
		k, err := x.server.TryRead(x.buf[:])
		x.got = append(x.got, x.buf[:k]...)
		if errors.Is(err, io.EOF) {
			sum := sha256.Sum256(x.got)
			x.server.TryWrite(sum[:])
			x.server.Close()
			return
		}
		if err != nil || k == 0 {
			return
		}
	}
}

func (x *exchange) check() error {
	if x.err != nil {
		return x.err
	}
	if !x.done {
		return fmt.Errorf("not done: sent %d of %d, server got %d", x.sent, len(x.data), len(x.got))
	}
	if want := sha256.Sum256(x.data); !bytes.Equal(x.answer, want[:]) {
		return fmt.Errorf("server's sha256 of the %d bytes received = %x, want %x", len(x.got), x.answer, want)
	}
	return nil
}

// TestSimThroughSwitch runs hosts on capygen's stack through the switch
// in the simulator: ARP floods, TCP in both directions, UDP, a heartbeat
// to the control address, pings, and the counters of all of it.
func TestSimThroughSwitch(t *testing.T) {
	n := newSimNet(t, 1, Fault{})
	var udpGot []string
	n.s2.Stack.HandleUDP(9, func(src, _ netip.AddrPort, p []byte) { udpGot = append(udpGot, src.String()+" "+string(p)) })
	var hbGot []uint32
	n.s1.Stack.HandleUDP(tcpmig.UDPPort, func(src, _ netip.AddrPort, p []byte) {
		if h := tcpmig.TCPMig(p); len(p) >= tcpmig.HeaderLen+4 && h.Stage() == tcpmig.StageHeartbeatResponse && src.Addr() == ipControl {
			hbGot = append(hbGot, binary.BigEndian.Uint32(h.Payload()))
		}
	})
	x := startExchange(t, n, n.s1, 80, 200<<10)
	if err := n.client.Stack.SendUDP(netip.AddrPortFrom(ipClient, 5000), netip.AddrPortFrom(ipS2, 9), []byte("via the switch")); err != nil {
		t.Fatal(err)
	}
	hb := tcpmig.HeartbeatUpdate{Workload: 42}
	b := make([]byte, hb.EncodedLen())
	hb.Encode(b)
	if err := n.s1.Stack.SendUDP(netip.AddrPortFrom(ipS1, tcpmig.UDPPort), netip.AddrPortFrom(ipControl, tcpmig.UDPPort), b); err != nil {
		t.Fatal(err)
	}
	n.probe.ping(macS2, ipS2, 1)
	n.probe.ping(n.sw.ControlMAC(), ipControl, 2)
	if err := n.s.RunWhile(func() bool { return !x.done && x.err == nil }, time.Minute); err != nil {
		t.Fatalf("%v; exchange: %v", err, x.check())
	}
	if err := x.check(); err != nil {
		t.Fatal(err)
	}
	n.s.RunUntil(n.s.Now() + 10*time.Millisecond)

	if len(udpGot) != 1 || udpGot[0] != "10.77.0.1:5000 via the switch" {
		t.Errorf("s2 got UDP %q, want one datagram from 10.77.0.1:5000", udpGot)
	}
	if len(hbGot) != 1 || hbGot[0] != 42 {
		t.Errorf("s1 got heartbeat responses %v, want [42]", hbGot)
	}
	if n.probe.replies[ipS2] != 1 || n.probe.replies[ipControl] != 1 {
		t.Errorf("probe echo replies %v, want one from s2 and one from the switch", n.probe.replies)
	}
	r := n.sw.Report()
	t.Logf("\n%s", r)
	if r.Drops() != 0 || r.FaultDrops() != 0 || r.Verdicts.NoEgress != 0 {
		t.Errorf("drops on a clean run: pipeline %v, faults %d, no-egress %d", r.Pipeline.Drops, r.FaultDrops(), r.Verdicts.NoEgress)
	}
	// ARP requests flood (the client's for s1 and s2, s2's for the
	// probe); s1's for the control address is answered, not flooded.
	if r.Verdicts.Flooded < 3 {
		t.Errorf("flooded %d frames, want the ARP requests (>= 3)", r.Verdicts.Flooded)
	}
	if r.Control.ARPReplies < 1 || r.Control.EchoReplies != 1 {
		t.Errorf("control: %+v, want an ARP reply to s1 and an echo reply to the probe", r.Control)
	}
	if r.Pipeline.Heartbeats != 1 || r.MinWorkload.Holder != "10.77.0.11" || r.MinWorkload.Load != 42 {
		t.Errorf("heartbeats %d, min_workload %+v, want 1 and 10.77.0.11 at 42", r.Pipeline.Heartbeats, r.MinWorkload)
	}
	c, _ := r.Port("client")
	s1, _ := r.Port("s1")
	if c.RxBytes < 200<<10 || s1.TxBytes < 200<<10 || s1.RxFrames == 0 || c.TxFrames == 0 {
		t.Errorf("port counters client %+v s1 %+v: want the 200 KiB from client in and out to s1, and s1's ACKs back", c, s1)
	}
	if st := n.client.Stack.Counters(); st.RSTIn+st.RSTOut != 0 {
		t.Errorf("client stack saw RSTs: %s", st)
	}
}

// Through a faulty port (loss, duplication, delay) TCP still delivers
// every byte, and the same seed gives the same run: same trace, same
// report.
func TestSimFaultyPortIsDeterministic(t *testing.T) {
	fault := Fault{
		Ingress: Rates{Loss: 0.02, Dup: 0.02, Delay: 0.05, DelayMin: 10 * time.Microsecond, DelayMax: 200 * time.Microsecond},
		Egress:  Rates{Loss: 0.02, Dup: 0.02, Delay: 0.05, DelayMin: 10 * time.Microsecond, DelayMax: 200 * time.Microsecond},
	}
	run := func(seed uint64) ([32]byte, Report) {
		n := newSimNet(t, seed, fault)
		x := startExchange(t, n, n.s1, 80, 512<<10)
		if err := n.s.RunWhile(func() bool { return !x.done && x.err == nil }, 5*time.Minute); err != nil {
			t.Fatalf("seed %d: %v; exchange: %v", seed, err, x.check())
		}
		if err := x.check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return n.s.TraceHash(), n.sw.Report()
	}
	h1, r1 := run(5)
	h2, r2 := run(5)
	if h1 != h2 {
		t.Errorf("seed 5 twice: traces %x and %x differ", h1[:8], h2[:8])
	}
	if r1.String() != r2.String() {
		t.Errorf("seed 5 twice: reports differ:\n%s\n%s", r1, r2)
	}
	s1, _ := r1.Port("s1")
	t.Logf("s1 faults: ingress %+v egress %+v", s1.Ingress, s1.Egress)
	for _, v := range []uint64{s1.Ingress.Dropped, s1.Ingress.Duplicated, s1.Ingress.Delayed, s1.Egress.Dropped, s1.Egress.Duplicated, s1.Egress.Delayed} {
		if v == 0 {
			t.Errorf("a fault never fired on s1: ingress %+v egress %+v", s1.Ingress, s1.Egress)
			break
		}
	}
	if h3, _ := run(6); h3 == h1 {
		t.Error("seeds 5 and 6 gave the same trace")
	}
}

// The probe's echo request really is ICMP to the right place; a decode
// check keeps the raw frames honest.
func TestProbeFrames(t *testing.T) {
	f := echoRequest(t, macProbe, macS2, ipProbe, ipS2, 1)
	pkt := decode(t, f)
	if pkt.Layer(layers.LayerTypeICMPv4) == nil || f[23] != 1 {
		t.Fatalf("echo request does not decode as ICMP: %x", f)
	}
}
