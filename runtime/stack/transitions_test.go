package stack

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// traced records the state transitions the stack takes from its
// connections, one set per output that found any.
func traced(s *Stack) *[]tcp.StateSet {
	var seen []tcp.StateSet
	s.traceStates = func(_ *Conn, entered tcp.StateSet) { seen = append(seen, entered) }
	return &seen
}

// expectSeen checks what the stack saw since the last call.
func expectSeen(t *testing.T, seen *[]tcp.StateSet, step string, want ...tcp.State) {
	t.Helper()
	var sets []tcp.StateSet
	for _, st := range want {
		sets = append(sets, 1<<st)
	}
	if !slices.Equal(*seen, sets) {
		t.Errorf("after %s the stack saw %v, want %v", step, *seen, sets)
	}
	*seen = nil
}

// TestStackSeesAcceptedTransitions follows an accepted connection through
// its handshake and an active close: the stack sees each state as it is
// entered, and the connection reaches the accept queue with ESTABLISHED.
func TestStackSeesAcceptedTransitions(t *testing.T) {
	const timeWait = time.Second
	s, ep := newCaptureStack(t, func(c *Config) { c.TCP.DelayedACK, c.TCP.TimeWait = -1, timeWait })
	learnPeer(t, s, ep)
	seen := traced(s)
	ln, _ := s.Listen(80)
	p := newPeer(t, s, ep, 40000)

	p.send(0, tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN, Window: 65535})
	synack := p.recv()
	expectSeen(t, seen, "the SYN", tcp.StateSynReceived)
	if c := ln.TryAccept(); c != nil {
		t.Fatalf("TryAccept returned a connection before the handshake completed")
	}
	p.send(0, tcp.Segment{Seq: 1001, Ack: synack[0].Seq + 1, Flags: tcp.FlagACK, Window: 65535})
	expectSeen(t, seen, "the handshake's ACK", tcp.StateEstablished)
	c := ln.TryAccept()
	if c == nil || !c.Established() {
		t.Fatalf("after the handshake TryAccept = %v, want an established connection", c)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fin := p.recv()
	expectSeen(t, seen, "Close", tcp.StateFinWait1)
	p.send(0, tcp.Segment{Seq: 1001, Ack: fin[0].Seq + 1, Flags: tcp.FlagACK, Window: 65535})
	expectSeen(t, seen, "the ACK of our FIN", tcp.StateFinWait2)
	p.send(0, tcp.Segment{Seq: 1001, Ack: fin[0].Seq + 1, Flags: tcp.FlagACK | tcp.FlagFIN, Window: 65535})
	expectSeen(t, seen, "the peer's FIN", tcp.StateTimeWait)
	s.Advance(tcp.Time(timeWait))
	expectSeen(t, seen, "2MSL", tcp.StateClosed)
	if !c.Done() {
		t.Errorf("the connection is still in the stack after TIME-WAIT")
	}
}

// TestStackSeesDialedTransitions follows a dialed connection through its
// handshake and a passive close.
func TestStackSeesDialedTransitions(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.TCP.DelayedACK = -1 })
	learnPeer(t, s, ep)
	seen := traced(s)
	c, err := s.Connect(netip.AddrPortFrom(ipPeer, 80))
	if err != nil {
		t.Fatal(err)
	}
	p := &peerTCP{t: t, s: s, ep: ep, src: netip.AddrPortFrom(ipPeer, 80), dst: c.ID().Local}
	syn := p.recv()
	expectSeen(t, seen, "Connect", tcp.StateSynSent)
	if len(syn) != 1 || c.Established() {
		t.Fatalf("Connect sent %v, established %v; want one SYN, not established", syn, c.Established())
	}
	p.send(0, tcp.Segment{Seq: 7000, Ack: syn[0].Seq + 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535})
	expectSeen(t, seen, "the SYN-ACK", tcp.StateEstablished)
	if !c.Established() {
		t.Fatalf("not established after the SYN-ACK")
	}
	p.recv()

	p.send(0, tcp.Segment{Seq: 7001, Ack: syn[0].Seq + 1, Flags: tcp.FlagACK | tcp.FlagFIN, Window: 65535})
	expectSeen(t, seen, "the peer's FIN", tcp.StateCloseWait)
	p.recv()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fin := p.recv()
	expectSeen(t, seen, "Close", tcp.StateLastAck)
	p.send(0, tcp.Segment{Seq: 7002, Ack: fin[0].Seq + 1, Flags: tcp.FlagACK, Window: 65535})
	expectSeen(t, seen, "the ACK of our FIN", tcp.StateClosed)
}
