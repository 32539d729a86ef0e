package stack

import (
	"net/netip"
	"testing"
	"time"
)

// Spoofed senders do not grow the ARP cache past MaxNeighbors: echo
// requests from thousands of on-link addresses each needed an entry (and
// held a queued reply), and NextDeadline walked them all every loop.
func TestNeighborCacheIsBounded(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.Addr = netip.MustParsePrefix("10.77.0.1/16"); c.MaxNeighbors = 64 })
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{10, 77, byte(1 + i/250), byte(1 + i%250)})
		s.Input(0, ipFrame(src, ipUs, protoICMP, nil, echoRequest(1, uint16(i), make([]byte, 100))))
		s.Input(0, arpFrame(arpOpRequest, broadcastMAC, [6]byte{2, 0xee, 0, 0, byte(i >> 8), byte(i)}, netip.AddrFrom4([4]byte{10, 77, 200, byte(i)}), [6]byte{}, ipUs))
	}
	ep.take()
	if n := len(s.Neighbors()); n > 64 {
		t.Errorf("%d neighbours after 2,000 spoofed senders, want at most MaxNeighbors 64", n)
	}
	if s.Counters().Drops[DropNeighborsFull] == 0 {
		t.Error("no packet was dropped for a full ARP cache")
	}
	// An idle resolved entry makes room for a new one.
	s2, ep2 := newCaptureStack(t, func(c *Config) { c.MaxNeighbors = 1 })
	learnPeer(t, s2, ep2)
	other := netip.MustParseAddr("10.77.0.3")
	if err := s2.SendUDP(netip.AddrPort{}, netip.AddrPortFrom(other, 9), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if n := s2.Neighbors(); len(n) != 1 || n[0].Addr != other {
		t.Errorf("Neighbors() = %+v, want the idle peer replaced by %v", n, other)
	}
}

// A spoofer that answers a refresh before the real neighbour does is not
// believed: the refresh's answer is verified like any other MAC change.
func TestARPRefreshIsNotWonByTheFirstAnswer(t *testing.T) {
	evil, us := [6]byte{0x02, 0xee, 0, 0, 0, 9}, [6]byte(macUs)
	s, ep := newCaptureStack(t, func(c *Config) { c.ARPTimeout = 10 * time.Second; c.ARPRetry = time.Second; c.ARPRetries = 3 })
	learnPeer(t, s, ep)
	if err := s.SendUDP(netip.AddrPort{}, netip.AddrPortFrom(ipPeer, 9), []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Advance(10 * time.Second) // the refresh goes out
	ep.take()
	at := 10 * time.Second
	for range 5 { // both answer every request, the spoofer first
		at += 100 * time.Millisecond
		s.Input(at, arpFrame(arpOpReply, us, evil, ipPeer, us, ipUs))
		s.Input(at, arpFrame(arpOpReply, us, macPeer, ipPeer, us, ipUs))
		s.Advance(at)
	}
	for _, n := range s.Neighbors() {
		if n.Addr == ipPeer && n.MAC != macPeer {
			t.Errorf("after a refresh both answered, the entry says %x, want the real %x", n.MAC, macPeer)
		}
	}
}

// A probe for our address (sender 0.0.0.0, RFC 5227) is answered, so the
// prober does not take the address; nothing is learned from it.
func TestARPProbeForUsIsAnswered(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	s.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, netip.IPv4Unspecified(), [6]byte{}, ipUs))
	out := ep.take()
	if len(out) != 1 {
		t.Fatalf("a probe for our address drew %d frames, want one reply", len(out))
	}
	e := ethernet(out[0])
	a := arpPacket(e.payload())
	if e.dst() != macPeer || a.op() != arpOpReply || a.senderIP() != ipUs || a.targetIP() != netip.IPv4Unspecified() {
		t.Errorf("reply = dst %x op %d spa %v tpa %v", e.dst(), a.op(), a.senderIP(), a.targetIP())
	}
	if n := s.Neighbors(); len(n) != 0 {
		t.Errorf("a probe was learned from: %+v", n)
	}
}

// A /31 is a point-to-point link with no broadcast address (RFC 3021):
// both addresses are hosts.
func TestSlash31HasNoBroadcast(t *testing.T) {
	for _, us := range []string{"10.77.0.0/31", "10.77.0.1/31"} {
		pfx := netip.MustParsePrefix(us)
		peer := netip.MustParseAddr("10.77.0.1")
		if pfx.Addr() == peer {
			peer = netip.MustParseAddr("10.77.0.0")
		}
		s, ep := newCaptureStack(t, func(c *Config) { c.Addr = pfx })
		if _, err := s.Listen(80); err != nil {
			t.Fatal(err)
		}
		s.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, peer, [6]byte{}, pfx.Addr()))
		if out := ep.take(); len(out) != 1 {
			t.Errorf("%s: the peer's ARP request drew %d frames, want a reply", us, len(out))
		}
		s.Input(0, ipFrame(peer, pfx.Addr(), protoTCP, nil, tcpSYN(netip.AddrPortFrom(peer, 40000), netip.AddrPortFrom(pfx.Addr(), 80))))
		if out := ep.take(); len(out) != 1 {
			t.Errorf("%s: the peer's SYN drew %d frames, want a SYN-ACK", us, len(out))
		}
	}
}
