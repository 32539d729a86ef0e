package stack

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// The tests here check that Run's deferral of Output to the end of a
// receive drain changes when the stack outputs a connection, never what
// it sends or sees: a drain must leave what Input, frame by frame, would.

// drain feeds frames to s as one of Run's drains of the link does.
func drain(s *Stack, now tcp.Time, frames ...[]byte) {
	for _, f := range frames {
		s.inputQueued(now, f)
	}
	s.flushTx()
}

// frame is the Ethernet frame of seg from the peer.
func (p *peerTCP) frame(seg tcp.Segment) []byte {
	seg.SrcPort, seg.DstPort = p.src.Port(), p.dst.Port()
	if seg.WindowScale == 0 {
		seg.WindowScale = -1
	}
	return ipFrame(p.src.Addr(), p.dst.Addr(), protoTCP, nil, tcp.AppendSegment(nil, p.src.Addr(), p.dst.Addr(), &seg))
}

// udpFrame is a datagram from the peer to our port.
func udpFrame(port uint16) []byte {
	return ipFrame(ipPeer, ipUs, protoUDP, nil, udpDatagram(netip.AddrPortFrom(ipPeer, 5000), netip.AddrPortFrom(ipUs, port), nil))
}

// pendingLeft reports what a drain left behind: entries in s.outPending
// and the flag of c.
func pendingLeft(s *Stack, c *Conn) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outPending), c.outPending
}

// established opens a connection from the peer and accepts it; the
// stack's ISS is returned for the peer's ACKs.
func established(t testing.TB, mod func(*Config)) (*Stack, *peerTCP, *Conn, uint32) {
	t.Helper()
	s, ep := newCaptureStack(t, mod)
	learnPeer(t, s, ep)
	ln, _ := s.Listen(80)
	p := newPeer(t, s, ep, 40000)
	siss := p.handshake(1000)
	c := ln.TryAccept()
	if c == nil {
		t.Fatal("no connection after the handshake")
	}
	return s, p, c, siss
}

// A connection detached in the middle of a drain (the migration layer
// freezes it from a hook, on a datagram that follows the client's data)
// first gets the Output the drain owed it: the client's data is ACKed
// from here, as Input alone would have done, and the snapshot holds the
// state after that ACK. Once detached, the stack never outputs it again.
func TestDetachInDrainSendsWhatWasOwed(t *testing.T) {
	s, p, c, siss := established(t, func(c *Config) { c.TCP.DelayedACK = -1 })
	var detached *tcp.Conn
	var sentBefore int
	if err := s.HandleUDP(7777, func(netip.AddrPort, netip.AddrPort, []byte) {
		tc, err := s.DetachConn(c.ID())
		if err != nil {
			t.Errorf("DetachConn: %v", err)
		}
		detached, sentBefore = tc, len(p.ep.frames)
	}); err != nil {
		t.Fatal(err)
	}
	data := p.frame(tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("hello")})
	drain(s, time.Millisecond, data, udpFrame(7777))
	segs := p.recv()
	if len(segs) != 1 || segs[0].Flags != tcp.FlagACK || segs[0].Ack != 1006 {
		t.Fatalf("a drain of data and a detach sent %v, want one ACK of 1006", segs)
	}
	if sentBefore != 1 {
		t.Errorf("%d frames were out when DetachConn returned, want the ACK", sentBefore)
	}
	if detached == nil || !errors.Is(c.Err(), ErrDetached) {
		t.Fatalf("detached %v, Conn error %v; want the tcp.Conn and ErrDetached", detached, c.Err())
	}
	if n, flag := pendingLeft(s, c); n != 0 || flag {
		t.Errorf("after the drain: %d pending outputs, the detached Conn's flag %v; want none", n, flag)
	}
	// Later drains and timers leave the detached connection alone.
	drain(s, 2*time.Millisecond, data)
	s.Advance(time.Minute)
	for _, seg := range p.recv() {
		if seg.Flags&tcp.FlagRST == 0 {
			t.Errorf("the stack output the detached connection: %v", seg)
		}
	}
}

// A new SYN taking over a TIME-WAIT connection in the same drain as a
// segment the old connection must answer: the old one's ACK still goes
// out, before the new one's SYN-ACK, as with Input frame by frame.
func TestTakeoverInDrainSendsWhatWasOwed(t *testing.T) {
	s, p, c, siss := established(t, nil)
	c.Close()
	p.recv() // our FIN
	p.send(0, tcp.Segment{Seq: 1001, Ack: siss + 2, Flags: tcp.FlagACK | tcp.FlagFIN, Window: 65535})
	p.recv() // its ACK
	if st := s.LookupConn(c.ID()).TCP().State(); st != tcp.StateTimeWait {
		t.Fatalf("state %v, want TIME-WAIT", st)
	}
	old := p.frame(tcp.Segment{Seq: 900, Flags: tcp.FlagSYN, Window: 65535})   // answered with the TIME-WAIT's ACK
	syn := p.frame(tcp.Segment{Seq: 50000, Flags: tcp.FlagSYN, Window: 65535}) // a new connection
	drain(s, time.Millisecond, old, syn)
	segs := p.recv()
	if len(segs) != 2 || segs[0].Flags != tcp.FlagACK || segs[0].Ack != 1002 ||
		segs[1].Flags != tcp.FlagSYN|tcp.FlagACK || segs[1].Ack != 50001 {
		t.Fatalf("an old SYN and a new one in one drain were answered with %v, want the ACK of 1002, then a SYN-ACK of 50001", segs)
	}
	if n, flag := pendingLeft(s, c); n != 0 || flag {
		t.Errorf("after the drain: %d pending outputs, the old Conn's flag %v; want none", n, flag)
	}
}

// A connection reset earlier in a drain and reaped by an Advance that
// runs in the middle of it (from a hook; another connection's timer makes
// it scan) still has its transitions seen: the stack outputs what it owed
// before removing it.
func TestReapInDrainSeesTransitions(t *testing.T) {
	s, p, c, siss := established(t, nil)
	p2 := newPeer(t, s, p.ep, 40001)
	p2.send(0, tcp.Segment{Seq: 5000, Flags: tcp.FlagSYN, Window: 65535}) // its SYN-ACK's timer is due in 1 s
	p2.recv()
	var seen []tcp.StateSet
	s.traceStates = func(x *Conn, entered tcp.StateSet) {
		if x == c {
			seen = append(seen, entered)
		}
	}
	if err := s.HandleUDP(7777, func(netip.AddrPort, netip.AddrPort, []byte) { s.Advance(2 * time.Second) }); err != nil {
		t.Fatal(err)
	}
	rst := p.frame(tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagRST | tcp.FlagACK})
	drain(s, time.Millisecond, rst, udpFrame(7777))
	if !c.Done() {
		t.Fatal("the reset connection was not reaped by the Advance in the drain")
	}
	expectSeen(t, &seen, "a RST and a reap in one drain", tcp.StateClosed)
	if n, flag := pendingLeft(s, c); n != 0 || flag {
		t.Errorf("after the drain: %d pending outputs, the reaped Conn's flag %v; want none", n, flag)
	}
}

// A hook called from a drain stays in it: the Output its calls cause
// (Input of frames it replays, as the migration layer does) waits for the
// drain's end, so the datagram the hook sends after them leaves first.
// That datagram is the migration's CONN_STATE_ACK, on its critical path.
func TestHookInDrainOutputsAtTheDrainsEnd(t *testing.T) {
	s, p, c, siss := established(t, func(c *Config) { c.TCP.DelayedACK = -1 })
	data := p.frame(tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("hello")})
	var inHook []byte
	if err := s.HandleUDP(7777, func(netip.AddrPort, netip.AddrPort, []byte) {
		s.Input(time.Millisecond, data)
		if err := s.SendUDP(netip.AddrPortFrom(ipUs, 7777), netip.AddrPortFrom(ipPeer, 7777), []byte("ack")); err != nil {
			t.Error(err)
		}
		for _, f := range p.ep.frames {
			inHook = append(inHook, IPv4(ethernet(f).payload()).Protocol())
		}
	}); err != nil {
		t.Fatal(err)
	}
	drain(s, time.Millisecond, udpFrame(7777))
	if len(inHook) != 1 || inHook[0] != protoUDP {
		t.Errorf("frames sent while the hook ran, by protocol: %v; want only the datagram (%d)", inHook, protoUDP)
	}
	var protos []uint8
	for _, f := range p.ep.frames {
		protos = append(protos, IPv4(ethernet(f).payload()).Protocol())
	}
	var acked bool
	for _, seg := range p.recv() {
		acked = acked || seg.Flags&tcp.FlagACK != 0 && seg.Ack == 1006
	}
	if !acked || len(protos) != 2 || protos[0] != protoUDP || protos[1] != protoTCP {
		t.Errorf("after the drain: frames by protocol %v, data ACKed %v; want the datagram, then the ACK", protos, acked)
	}
	if n, flag := pendingLeft(s, c); n != 0 || flag {
		t.Errorf("after the drain: %d pending outputs, the Conn's flag %v; want none", n, flag)
	}
	// Outside a drain, Input from a hook outputs at once.
	more := p.frame(tcp.Segment{Seq: 1006, Ack: siss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("again")})
	acked = false
	if err := s.HandleUDP(7778, func(netip.AddrPort, netip.AddrPort, []byte) {
		s.Input(2*time.Millisecond, more)
		for _, seg := range p.recv() {
			acked = acked || seg.Flags&tcp.FlagACK != 0 && seg.Ack == 1011
		}
	}); err != nil {
		t.Fatal(err)
	}
	s.Input(2*time.Millisecond, udpFrame(7778))
	if !acked {
		t.Errorf("Input from a hook outside a drain returned before its ACK was sent")
	}
}

// failingLink delivers its frames in one Receive and then fails, with
// ctx's end when cancel is set (as when Run is stopped while it waits).
type failingLink struct {
	*capture
	frames [][]byte
	cancel context.CancelFunc
}

func (l *failingLink) Receive(_ time.Duration, f func([]byte)) (int, error) {
	for _, fr := range l.frames {
		f(fr)
	}
	n := len(l.frames)
	l.frames = nil
	if l.cancel != nil {
		l.cancel()
	}
	return n, errors.New("link down")
}

// Run stopped in the middle of a drain (its link failed, or ctx ended)
// sends the Output the drain put off before it returns, and leaves
// nothing pending for a later Run or a direct Input/Advance caller, which
// then outputs at once.
func TestRunStoppedInDrainFlushes(t *testing.T) {
	for _, cancelled := range []bool{false, true} {
		ep := &capture{mac: macUs, mtu: 1500}
		link := &failingLink{capture: ep}
		s, err := New(Config{Addr: netip.MustParsePrefix("10.77.0.1/24"), Seed: 1, TCP: tcp.Config{DelayedACK: -1}}, link)
		if err != nil {
			t.Fatal(err)
		}
		learnPeer(t, s, ep)
		ln, _ := s.Listen(80)
		p := newPeer(t, s, ep, 40000)
		siss := p.handshake(1000)
		c := ln.TryAccept()
		link.frames = [][]byte{p.frame(tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("hello")})}
		ctx, cancel := context.WithCancel(context.Background())
		if cancelled {
			link.cancel = cancel
		}
		err = s.Run(ctx)
		cancel()
		if cancelled != (err == nil) {
			t.Fatalf("cancelled=%v: Run = %v", cancelled, err)
		}
		segs := p.recv()
		if len(segs) != 1 || segs[0].Flags != tcp.FlagACK || segs[0].Ack != 1006 {
			t.Errorf("cancelled=%v: Run stopped in a drain of data having sent %v, want an ACK of 1006", cancelled, segs)
		}
		if n, flag := pendingLeft(s, c); n != 0 || flag {
			t.Errorf("cancelled=%v: Run left %d pending outputs, the Conn's flag %v; want none", cancelled, n, flag)
		}
		p.send(s.Now(), tcp.Segment{Seq: 1006, Ack: siss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("world")})
		if segs := p.recv(); len(segs) != 1 || segs[0].Ack != 1011 {
			t.Errorf("cancelled=%v: Input after Run answered data with %v, want an ACK of 1011", cancelled, segs)
		}
	}
}

// A drain allocates nothing once its pending list has grown: Run's hot
// path, with the deferral and its flush.
func TestDrainAllocatesNothing(t *testing.T) {
	s, p, _, siss := established(t, func(c *Config) { c.TCP.DelayedACK = -1 })
	p.ep.discard = true
	// Data already received: each copy is answered with an ACK.
	data := p.frame(tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagACK, Window: 65535, Payload: []byte("hello")})
	drain(s, time.Millisecond, data)
	now := tcp.Time(time.Millisecond)
	if allocs := testing.AllocsPerRun(100, func() {
		now += time.Microsecond
		drain(s, now, data, data, data)
	}); allocs != 0 {
		t.Errorf("a drain of 3 segments allocates %v times", allocs)
	}
	if got := s.Counters().TCPOut; got < 100 {
		t.Errorf("the stack sent %d segments in 100 drains, want an ACK each", got)
	}
}
