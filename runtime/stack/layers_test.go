package stack

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// capture is a link.Endpoint that records what the stack sends, so the
// layer tests drive Input/Advance by hand with no goroutines.
type capture struct {
	mac     net.HardwareAddr
	mtu     int
	frames  [][]byte
	discard bool // drop instead of recording (benchmarks)
}

func (c *capture) MAC() net.HardwareAddr { return c.mac }
func (c *capture) MTU() int              { return c.mtu }
func (c *capture) Send(f []byte) error {
	if c.discard {
		return nil
	}
	c.frames = append(c.frames, append([]byte(nil), f...))
	return nil
}
func (c *capture) Receive(time.Duration, func([]byte)) (int, error) { return 0, nil }
func (c *capture) Close() error                                     { return nil }
func (c *capture) take() [][]byte {
	f := c.frames
	c.frames = nil
	return f
}

var (
	macUs   = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	macPeer = [6]byte{0x02, 0, 0, 0, 0, 2}
	ipUs    = netip.MustParseAddr("10.77.0.1")
	ipPeer  = netip.MustParseAddr("10.77.0.2")
)

func newCaptureStack(t testing.TB, mod func(*Config)) (*Stack, *capture) {
	t.Helper()
	ep := &capture{mac: macUs, mtu: 1500}
	cfg := Config{Addr: netip.MustParsePrefix("10.77.0.1/24"), Seed: 1}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, ep)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, ep
}

func arpFrame(op uint16, dstMAC, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr) []byte {
	f := make([]byte, EthernetHeaderLen+arpLen)
	putEthernet(f, dstMAC, sha, etherTypeARP)
	putARP(f[EthernetHeaderLen:], op, sha, spa, tha, tpa)
	return f
}

// ipFrame builds Ethernet+IPv4 around payload; opts are IP options.
func ipFrame(src, dst netip.Addr, proto uint8, opts, payload []byte) []byte {
	hl := IPv4MinHeaderLen + len(opts)
	f := make([]byte, EthernetHeaderLen+hl+len(payload))
	putEthernet(f, [6]byte(macUs), macPeer, etherTypeIPv4)
	h := IPv4(f[EthernetHeaderLen:])
	h.Encode(&IPv4Fields{TotalLen: uint16(hl + len(payload)), ID: 7, TTL: 64, Protocol: proto, Src: src, Dst: dst})
	h[0] = 0x40 | byte(hl/4)
	copy(h[IPv4MinHeaderLen:], opts)
	copy(h[hl:], payload)
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], checksum(h[:hl], 0))
	return f
}

func echoRequest(id, seq uint16, data []byte) []byte {
	m := make([]byte, icmpHeaderLen+len(data))
	m[0] = icmpEchoRequest
	binary.BigEndian.PutUint16(m[4:6], id)
	binary.BigEndian.PutUint16(m[6:8], seq)
	copy(m[8:], data)
	binary.BigEndian.PutUint16(m[2:4], checksum(m, 0))
	return m
}

func udpDatagram(src, dst netip.AddrPort, payload []byte) []byte {
	u := make([]byte, udpHeaderLen+len(payload))
	binary.BigEndian.PutUint16(u[0:2], src.Port())
	binary.BigEndian.PutUint16(u[2:4], dst.Port())
	binary.BigEndian.PutUint16(u[4:6], uint16(len(u)))
	copy(u[8:], payload)
	binary.BigEndian.PutUint16(u[6:8], checksum(u, pseudoSum(src.Addr(), dst.Addr(), protoUDP, len(u))))
	return u
}

// learnPeer teaches s the peer's MAC through an ARP request for us.
func learnPeer(t testing.TB, s *Stack, ep *capture) {
	t.Helper()
	s.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, ipPeer, [6]byte{}, ipUs))
	ep.take()
}

func TestARPAnswersRequestsForUs(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	s.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, ipPeer, [6]byte{}, ipUs))
	out := ep.take()
	if len(out) != 1 {
		t.Fatalf("ARP request for us: sent %d frames, want 1 reply", len(out))
	}
	e := ethernet(out[0])
	a := arpPacket(e.payload())
	if e.dst() != macPeer || e.etherType() != etherTypeARP || a.op() != arpOpReply ||
		a.senderMAC() != [6]byte(macUs) || a.senderIP() != ipUs || a.targetIP() != ipPeer {
		t.Errorf("reply = dst %x op %d sha %x spa %v tpa %v, want dst %x op 2 sha %x spa %v tpa %v",
			e.dst(), a.op(), a.senderMAC(), a.senderIP(), a.targetIP(), macPeer, macUs, ipUs, ipPeer)
	}
	if n := s.Neighbors(); len(n) != 1 || n[0].Addr != ipPeer || n[0].MAC != macPeer || !n[0].Resolved {
		t.Errorf("Neighbors() = %+v, want the requester learned", n)
	}
	// A request for someone else is neither answered nor learned from.
	s2, ep2 := newCaptureStack(t, nil)
	s2.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, ipPeer, [6]byte{}, netip.MustParseAddr("10.77.0.9")))
	if out := ep2.take(); len(out) != 0 || len(s2.Neighbors()) != 0 {
		t.Errorf("request for another host: sent %d frames, cache %v; want none", len(out), s2.Neighbors())
	}
	c := s.Counters()
	if c.ARPRequestsIn != 1 || c.ARPRepliesOut != 1 {
		t.Errorf("counters = %+v, want 1 request in and 1 reply out", c)
	}
}

func TestARPResolveQueueRetryGiveUp(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.ARPQueue = 4; c.ARPRetries = 3; c.ARPRetry = time.Second })
	dst := netip.AddrPortFrom(netip.MustParseAddr("10.77.0.9"), 9)
	for i := range 6 {
		if err := s.SendUDP(netip.AddrPortFrom(ipUs, 1000), dst, []byte{byte(i)}); err != nil {
			t.Fatalf("SendUDP while resolving: %v", err)
		}
	}
	out := ep.take()
	if len(out) != 1 || arpPacket(ethernet(out[0]).payload()).op() != arpOpRequest {
		t.Fatalf("first send: %d frames, want exactly 1 ARP request", len(out))
	}
	if c := s.Counters(); c.Drops[DropARPQueueFull] != 2 {
		t.Errorf("drops[arp-queue-full] = %d, want 2 (queue of 4, 6 sent)", c.Drops[DropARPQueueFull])
	}
	if d, ok := s.NextDeadline(); !ok || d != time.Second {
		t.Errorf("NextDeadline() = %v, %v; want 1s, true (ARP retry)", d, ok)
	}
	s.Advance(time.Second)
	s.Advance(2 * time.Second)
	if out := ep.take(); len(out) != 2 {
		t.Fatalf("retries: %d frames, want 2 more requests", len(out))
	}
	s.Advance(3 * time.Second)
	c := s.Counters()
	if c.ARPFailures != 1 || c.Drops[DropARPFailed] != 4 || c.ARPRequestsOut != 3 {
		t.Errorf("after giving up: failures %d, dropped %d, requests %d; want 1, 4, 3", c.ARPFailures, c.Drops[DropARPFailed], c.ARPRequestsOut)
	}
	if _, ok := s.NextDeadline(); ok || len(s.Neighbors()) != 0 {
		t.Errorf("after giving up the entry should be gone: %v", s.Neighbors())
	}
}

func TestARPReplyReleasesQueue(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	dst := netip.AddrPortFrom(ipPeer, 9)
	for i := range 3 {
		if err := s.SendUDP(netip.AddrPort{}, dst, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ep.take()
	s.Input(time.Millisecond, arpFrame(arpOpReply, [6]byte(macUs), macPeer, ipPeer, [6]byte(macUs), ipUs))
	out := ep.take()
	if len(out) != 3 {
		t.Fatalf("after the reply: %d frames, want the 3 queued datagrams", len(out))
	}
	for i, f := range out {
		e := ethernet(f)
		p := IPv4(e.payload()).Payload()
		if e.dst() != macPeer || p[len(p)-1] != byte(i) {
			t.Errorf("frame %d: dst %x last byte %d; want %x, %d (in order)", i, e.dst(), p[len(p)-1], macPeer, i)
		}
	}
	// Expiry: after ARPTimeout the entry is forgotten.
	s.Advance(time.Millisecond + s.Config().ARPTimeout)
	if n := s.Neighbors(); len(n) != 0 {
		t.Errorf("after ARPTimeout Neighbors() = %v, want empty", n)
	}
}

func TestPing(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	data := []byte("capybara ping payload")
	// One plain request and one with IP options (a NOP and an end marker).
	for _, opts := range [][]byte{nil, {1, 1, 1, 0}} {
		s.Input(0, ipFrame(ipPeer, ipUs, protoICMP, opts, echoRequest(0x1234, 7, data)))
		out := ep.take()
		if len(out) != 1 {
			t.Fatalf("echo request (opts %v): %d frames, want 1 reply", opts, len(out))
		}
		e := ethernet(out[0])
		h := IPv4(e.payload())
		m := h.Payload()
		if e.dst() != macPeer || h.Src() != ipUs || h.Dst() != ipPeer || !h.ChecksumValid() || h.Protocol() != protoICMP {
			t.Fatalf("reply header: dst %x %v > %v proto %d checksum ok %v", e.dst(), h.Src(), h.Dst(), h.Protocol(), h.ChecksumValid())
		}
		if m[0] != icmpEchoReply || checksum(m, 0) != 0 || binary.BigEndian.Uint16(m[4:6]) != 0x1234 ||
			binary.BigEndian.Uint16(m[6:8]) != 7 || !bytes.Equal(m[8:], data) {
			t.Errorf("reply = type %d id %#x seq %d data %q, checksum ok %v; want type 0, same id/seq/data", m[0],
				binary.BigEndian.Uint16(m[4:6]), binary.BigEndian.Uint16(m[6:8]), m[8:], checksum(m, 0) == 0)
		}
	}
	if c := s.Counters(); c.ICMPEchoIn != 2 || c.ICMPEchoOut != 2 {
		t.Errorf("ICMP counters in %d out %d, want 2 and 2", c.ICMPEchoIn, c.ICMPEchoOut)
	}
}

func TestIPv4Rejects(t *testing.T) {
	ping := echoRequest(1, 1, []byte("x"))
	cases := []struct {
		name  string
		frame func() []byte
		why   DropReason
	}{
		{"bad header checksum", func() []byte {
			f := ipFrame(ipPeer, ipUs, protoICMP, nil, ping)
			f[EthernetHeaderLen+10] ^= 0xff
			return f
		}, DropBadChecksum},
		{"fragment", func() []byte {
			f := ipFrame(ipPeer, ipUs, protoICMP, nil, ping)
			h := IPv4(f[EthernetHeaderLen:])
			h[6] |= 0x20 // MF
			h[10], h[11] = 0, 0
			binary.BigEndian.PutUint16(h[10:12], checksum(h[:20], 0))
			return f
		}, DropFragment},
		{"not our address", func() []byte { return ipFrame(ipPeer, netip.MustParseAddr("10.77.0.50"), protoICMP, nil, ping) }, DropNotOurAddr},
		{"total length beyond frame", func() []byte {
			f := ipFrame(ipPeer, ipUs, protoICMP, nil, ping)
			return f[:len(f)-1]
		}, DropIPv4Malformed},
		{"unknown protocol", func() []byte { return ipFrame(ipPeer, ipUs, 99, nil, ping) }, DropProtocol},
		{"other MAC", func() []byte {
			f := ipFrame(ipPeer, ipUs, protoICMP, nil, ping)
			f[5] = 0x77
			return f
		}, DropNotOurMAC},
		{"short frame", func() []byte { return make([]byte, 10) }, DropTruncated},
		{"ipv6 ethertype", func() []byte {
			f := ipFrame(ipPeer, ipUs, protoICMP, nil, ping)
			f[12], f[13] = 0x86, 0xdd
			return f
		}, DropEtherType},
		{"bad icmp checksum", func() []byte {
			p := append([]byte(nil), ping...)
			p[8] ^= 1
			return ipFrame(ipPeer, ipUs, protoICMP, nil, p)
		}, DropICMPMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ep := newCaptureStack(t, nil)
			learnPeer(t, s, ep)
			s.Input(0, tc.frame())
			if out := ep.take(); len(out) != 0 {
				t.Errorf("sent %d frames, want none", len(out))
			}
			if c := s.Counters(); c.Drops[tc.why] != 1 || c.Dropped() != 1 {
				t.Errorf("drops = %v, want exactly one %v", c.String(), tc.why)
			}
		})
	}
}

func TestUDP(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	src, dst := netip.AddrPortFrom(ipPeer, 5000), netip.AddrPortFrom(ipUs, 7)
	// An echo handler that answers from inside the hook: the stack lock
	// is not held there.
	var got []string
	err := s.HandleUDP(7, func(from, to netip.AddrPort, p []byte) {
		got = append(got, string(p))
		if err := s.SendUDP(to, from, p); err != nil {
			t.Errorf("SendUDP from the handler: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.HandleUDP(7, func(netip.AddrPort, netip.AddrPort, []byte) {}); !errors.Is(err, ErrPortInUse) {
		t.Errorf("second HandleUDP(7) = %v, want ErrPortInUse", err)
	}
	s.Input(0, ipFrame(ipPeer, ipUs, protoUDP, nil, udpDatagram(src, dst, []byte("hello"))))
	out := ep.take()
	if len(got) != 1 || got[0] != "hello" || len(out) != 1 {
		t.Fatalf("handler got %q and %d frames went out, want [hello] and 1 echo", got, len(out))
	}
	h := IPv4(ethernet(out[0]).payload())
	u := h.Payload()
	if checksum(u, pseudoSum(h.Src(), h.Dst(), protoUDP, len(u))) != 0 || string(u[8:]) != "hello" ||
		binary.BigEndian.Uint16(u[2:4]) != 5000 {
		t.Errorf("echo = %x, want a valid datagram to port 5000 carrying hello", u)
	}
	// Bad checksum, then no handler.
	bad := udpDatagram(src, dst, []byte("hello"))
	bad[8] ^= 1
	s.Input(0, ipFrame(ipPeer, ipUs, protoUDP, nil, bad))
	s.Input(0, ipFrame(ipPeer, ipUs, protoUDP, nil, udpDatagram(src, netip.AddrPortFrom(ipUs, 8), nil)))
	c := s.Counters()
	if c.UDPBadChecksum != 1 || c.UDPNoPort != 1 || c.UDPIn != 2 || c.UDPOut != 1 || len(got) != 1 {
		t.Errorf("counters: bad %d noport %d in %d out %d, handler calls %d; want 1 1 2 1 1", c.UDPBadChecksum, c.UDPNoPort, c.UDPIn, c.UDPOut, len(got))
	}
	// Releasing the port.
	if err := s.HandleUDP(7, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.HandleUDP(7, func(netip.AddrPort, netip.AddrPort, []byte) {}); err != nil {
		t.Errorf("HandleUDP after release: %v", err)
	}
}

func TestSendUDPErrors(t *testing.T) {
	s, _ := newCaptureStack(t, func(c *Config) { c.Gateway = netip.Addr{} })
	cases := []struct {
		src, dst string
		n        int
		want     error
	}{
		{"10.77.0.1:1", "10.77.0.2:2", 1500, ErrTooBig},
		{"10.77.0.3:1", "10.77.0.2:2", 1, ErrBadAddr},
		{"10.77.0.1:1", "10.77.0.2:0", 1, ErrBadAddr},
		{"10.77.0.1:1", "192.0.2.1:2", 1, ErrNoRoute},
		{"10.77.0.1:1", "10.77.0.1:2", 1, ErrNoRoute},
	}
	for _, tc := range cases {
		err := s.SendUDP(netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst), make([]byte, tc.n))
		if !errors.Is(err, tc.want) {
			t.Errorf("SendUDP(%s, %s, %d bytes) = %v, want %v", tc.src, tc.dst, tc.n, err, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	good := &capture{mac: macUs, mtu: 1500}
	cases := []struct {
		name string
		cfg  Config
		ep   *capture
	}{
		{"no address", Config{}, good},
		{"ipv6", Config{Addr: netip.MustParsePrefix("fd00::1/64")}, good},
		{"gateway off-link", Config{Addr: netip.MustParsePrefix("10.77.0.1/24"), Gateway: netip.MustParseAddr("10.78.0.1")}, good},
		{"short mac", Config{Addr: netip.MustParsePrefix("10.77.0.1/24")}, &capture{mac: macUs[:4], mtu: 1500}},
		{"tiny mtu", Config{Addr: netip.MustParsePrefix("10.77.0.1/24")}, &capture{mac: macUs, mtu: 100}},
	}
	for _, tc := range cases {
		if _, err := New(tc.cfg, tc.ep); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%s) = %v, want ErrConfig", tc.name, err)
		}
	}
	if _, err := New(Config{Addr: netip.MustParsePrefix("10.77.0.1/24")}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New(nil endpoint) = %v, want ErrConfig", err)
	}
}

func TestCountersString(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	s.Input(0, make([]byte, 3))
	out := s.Counters().String()
	for _, want := range []string{"frames.in", "arp.requests.in", "drop.truncated"} {
		if !bytes.Contains([]byte(out), []byte(want)) {
			t.Errorf("Counters().String() = %q, missing %q", out, want)
		}
	}
}

// FuzzInput feeds arbitrary frames to a stack with a listener, a UDP
// echo handler and one established connection: nothing may panic and
// nothing sent may exceed the MTU.
func FuzzInput(f *testing.F) {
	ping := echoRequest(1, 1, []byte("abc"))
	peer, us := netip.AddrPortFrom(ipPeer, 40000), netip.AddrPortFrom(ipUs, 80)
	data := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1001, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 512, WindowScale: -1, Payload: []byte("GET / HTTP/1.0\r\n\r\n")}
	fin := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1001, Flags: tcp.FlagACK | tcp.FlagFIN, Window: 512, WindowScale: -1}
	rst := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1001, Flags: tcp.FlagRST, WindowScale: -1}
	f.Add(arpFrame(arpOpRequest, broadcastMAC, macPeer, ipPeer, [6]byte{}, ipUs))
	f.Add(arpFrame(arpOpReply, [6]byte(macUs), macPeer, ipPeer, [6]byte(macUs), ipUs))
	f.Add(ipFrame(ipPeer, ipUs, protoICMP, nil, ping))
	f.Add(ipFrame(ipPeer, ipUs, protoICMP, []byte{1, 1, 1, 0}, ping))
	f.Add(ipFrame(ipPeer, ipUs, protoUDP, nil, udpDatagram(netip.AddrPortFrom(ipPeer, 1), netip.AddrPortFrom(ipUs, 7), []byte("x"))))
	f.Add(ipFrame(ipPeer, ipUs, protoTCP, nil, tcpSYN(netip.AddrPortFrom(ipPeer, 40001), us)))
	f.Add(ipFrame(ipPeer, ipUs, protoTCP, nil, tcpSYN(netip.AddrPortFrom(ipPeer, 40001), netip.AddrPortFrom(ipUs, 81))))
	for _, seg := range []*tcp.Segment{&data, &fin, &rst} {
		f.Add(ipFrame(ipPeer, ipUs, protoTCP, nil, tcp.AppendSegment(nil, peer.Addr(), us.Addr(), seg)))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		s, ep := newCaptureStack(t, nil)
		if _, err := s.Listen(80); err != nil {
			t.Fatal(err)
		}
		if err := s.HandleUDP(7, func(src, dst netip.AddrPort, p []byte) { _ = s.SendUDP(dst, src, p) }); err != nil {
			t.Fatal(err)
		}
		learnPeer(t, s, ep)
		newPeer(t, s, ep, 40000).handshake(1000)
		s.Input(time.Millisecond, frame)
		s.Advance(time.Second)
		s.Advance(time.Minute)
		for _, out := range ep.take() {
			if len(out) < EthernetHeaderLen || len(out) > EthernetHeaderLen+1500 {
				t.Fatalf("sent a %d-byte frame", len(out))
			}
		}
	})
}

func tcpSYN(src, dst netip.AddrPort) []byte {
	seg := tcp.Segment{SrcPort: src.Port(), DstPort: dst.Port(), Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, MSS: 1460, WindowScale: -1}
	return tcp.AppendSegment(nil, src.Addr(), dst.Addr(), &seg)
}

func TestARPRefreshesEntriesInUse(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.ARPTimeout = 10 * time.Second; c.ARPRetry = time.Second; c.ARPRetries = 2 })
	learnPeer(t, s, ep) // resolved at 0, expires at 10s
	send := func(now time.Duration) {
		s.Advance(now)
		if err := s.SendUDP(netip.AddrPort{}, netip.AddrPortFrom(ipPeer, 9), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	send(5 * time.Second)
	s.Advance(10 * time.Second) // used since the reply: refresh, keep the entry
	out := ep.take()
	if len(out) != 2 || ethernet(out[0]).dst() != macPeer || ethernet(out[1]).etherType() != etherTypeARP {
		t.Fatalf("sent %d frames, want the datagram to the cached MAC then an ARP refresh", len(out))
	}
	send(10*time.Second + time.Millisecond) // still goes straight out during the refresh
	if out := ep.take(); len(out) != 1 || ethernet(out[0]).dst() != macPeer {
		t.Fatalf("during the refresh: %d frames, want the datagram to the cached MAC", len(out))
	}
	// The peer answers: the entry lives on.
	s.Input(10*time.Second+2*time.Millisecond, arpFrame(arpOpReply, [6]byte(macUs), macPeer, ipPeer, [6]byte(macUs), ipUs))
	if n := s.Neighbors(); len(n) != 1 || !n[0].Resolved {
		t.Fatalf("after the refresh reply Neighbors() = %v", n)
	}
	// Used again, then silence: two unanswered refreshes forget it.
	send(15 * time.Second)
	s.Advance(20*time.Second + 2*time.Millisecond)
	s.Advance(21*time.Second + 2*time.Millisecond)
	s.Advance(22*time.Second + 2*time.Millisecond)
	if n := s.Neighbors(); len(n) != 0 {
		t.Errorf("after unanswered refreshes Neighbors() = %v, want empty", n)
	}
	if c := s.Counters(); c.ARPFailures != 1 || c.ARPRequestsOut != 3 {
		t.Errorf("arp failures %d requests %d, want 1 and 3", c.ARPFailures, c.ARPRequestsOut)
	}
}

// TestUDPPortUnreachable: a datagram to a port nothing bound gets ICMP
// destination unreachable, port unreachable, quoting its IP header and
// first 8 bytes; a flood gets at most the burst at once, then the rate.
func TestUDPPortUnreachable(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	src, dst := netip.AddrPortFrom(ipPeer, 5000), netip.AddrPortFrom(ipUs, 9)
	d := ipFrame(ipPeer, ipUs, protoUDP, nil, udpDatagram(src, dst, []byte("probe")))
	s.Input(0, d)
	out := ep.take()
	if len(out) != 1 {
		t.Fatalf("%d frames out, want one ICMP error", len(out))
	}
	h := IPv4(ethernet(out[0]).payload())
	m := h.Payload()
	sent := IPv4(ethernet(d).payload())
	if h.Protocol() != protoICMP || h.Dst() != ipPeer || m[0] != 3 || m[1] != 3 || checksum(m, 0) != 0 {
		t.Fatalf("answer %x, want ICMP type 3 code 3 to the sender with a valid checksum", m)
	}
	if quoted := m[8:]; string(quoted) != string(sent[:sent.HeaderLen()+8]) {
		t.Errorf("quoted %x, want the datagram's IP header and first 8 bytes %x", quoted, sent[:sent.HeaderLen()+8])
	}
	// A flood at one instant: the burst, then nothing until time passes.
	for range 200 {
		s.Input(0, d)
	}
	if n := len(ep.take()); n != icmpErrorBurst-1 {
		t.Errorf("a flood of 200 got %d errors at once, want the burst's remaining %d", n, icmpErrorBurst-1)
	}
	s.Input(10*time.Millisecond, d) // 10 ms refill 10 tokens at 1,000/s
	if n := len(ep.take()); n != 1 {
		t.Errorf("%d errors after the refill, want 1", n)
	}
	if c := s.Counters(); c.ICMPErrorsOut != icmpErrorBurst+1 || c.ICMPErrorsLimited != 200-(icmpErrorBurst-1) {
		t.Errorf("icmp errors out %d limited %d", c.ICMPErrorsOut, c.ICMPErrorsLimited)
	}
}

// TestARPSpoofedReplyDoesNotStealALiveNeighbour: an unsolicited reply
// that gives a live neighbour's address another MAC is not believed; the
// stack asks, the known MAC answers, and traffic never leaves it. A
// neighbour that really moved is learned once the old MAC stays silent.
func TestARPSpoofedReplyDoesNotStealALiveNeighbour(t *testing.T) {
	evil, us := [6]byte{0x02, 0xee, 0, 0, 0, 9}, [6]byte(macUs)
	s, ep := newCaptureStack(t, func(c *Config) { c.ARPRetries, c.ARPRetry = 3, 100*time.Millisecond })
	learnPeer(t, s, ep)
	macOf := func() [6]byte {
		for _, n := range s.Neighbors() {
			if n.Addr == ipPeer {
				return [6]byte(n.MAC)
			}
		}
		return [6]byte{}
	}
	s.Input(0, arpFrame(arpOpReply, us, evil, ipPeer, us, ipUs))
	if got := macOf(); got != macPeer {
		t.Fatalf("after a spoofed reply the entry says %x, want the live %x", got, macPeer)
	}
	out := ep.take()
	if len(out) != 1 || arpPacket(ethernet(out[0]).payload()).op() != arpOpRequest {
		t.Fatalf("sent %d frames, want one ARP request to verify", len(out))
	}
	// The attacker answers the verification too; the real peer as well.
	s.Input(1, arpFrame(arpOpReply, us, evil, ipPeer, us, ipUs))
	s.Input(2, arpFrame(arpOpReply, us, macPeer, ipPeer, us, ipUs))
	if got := macOf(); got != macPeer {
		t.Fatalf("after the verification the entry says %x, want %x", got, macPeer)
	}
	if n := s.Counters().Drops[DropARPConflict]; n != 2 {
		t.Errorf("%d arp-conflict drops, want 2", n)
	}
	// A host that really changed its MAC: the old one never confirms, the
	// entry is forgotten, and the next resolution learns the new one.
	s.Input(3, arpFrame(arpOpReply, us, evil, ipPeer, us, ipUs))
	for at := time.Duration(4); at < time.Second; at += 50 * time.Millisecond {
		s.Advance(at)
	}
	ep.take()
	if got := macOf(); got != ([6]byte{}) {
		t.Fatalf("an unconfirmed entry is still %x after the retries", got)
	}
	// With no live entry left, a reply nobody asked for is still not
	// learned (Linux's arp_accept 0: any host could plant one), but the
	// moved host's own request for us is (RFC 826): it is reachable again.
	s.Input(time.Second, arpFrame(arpOpReply, us, evil, ipPeer, us, ipUs))
	if got := macOf(); got != ([6]byte{}) {
		t.Fatalf("an unsolicited reply was learned: %x", got)
	}
	if n := s.Counters().Drops[DropARPUnsolicited]; n != 1 {
		t.Errorf("%d arp-unsolicited drops, want 1", n)
	}
	s.Input(time.Second, arpFrame(arpOpRequest, broadcastMAC, evil, ipPeer, [6]byte{}, ipUs))
	if got := macOf(); got != evil {
		t.Errorf("after the old entry was forgotten the moved host's request was not learned: %x", got)
	}
}

// chanLink is a capture whose sent frames come out of a channel, for
// tests that run a blocking call (Ping) in another goroutine.
type chanLink struct {
	capture
	sent chan []byte
}

func (c *chanLink) Send(f []byte) error {
	c.sent <- append([]byte(nil), f...)
	return nil
}

// Ping completes on the echo reply from the address pinged, and only on
// it: a reply with the right id and sequence from another source (both
// are easy to guess) is dropped.
func TestPingTakesTheReplyFromItsDestination(t *testing.T) {
	ep := &chanLink{capture: capture{mac: macUs, mtu: 1500}, sent: make(chan []byte, 16)}
	s, err := New(Config{Addr: netip.MustParsePrefix("10.77.0.1/24"), Seed: 1}, ep)
	if err != nil {
		t.Fatal(err)
	}
	s.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, ipPeer, [6]byte{}, ipUs))
	<-ep.sent // the ARP reply
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.Ping(ctx, ipPeer, []byte("hello"))
		done <- err
	}()
	var req []byte
	select {
	case req = <-ep.sent:
	case <-ctx.Done():
		t.Fatal("Ping sent no echo request")
	}
	m := IPv4(ethernet(req).payload()).Payload()
	if m[0] != icmpEchoRequest {
		t.Fatalf("Ping sent ICMP type %d, want an echo request", m[0])
	}
	reply := append([]byte(nil), m...)
	reply[0], reply[2], reply[3] = icmpEchoReply, 0, 0
	binary.BigEndian.PutUint16(reply[2:4], checksum(reply, 0))

	before := s.Counters().Drops[DropICMPType]
	s.Input(0, ipFrame(netip.MustParseAddr("10.77.0.9"), ipUs, protoICMP, nil, reply))
	if got := s.Counters().Drops[DropICMPType]; got != before+1 {
		t.Fatalf("a reply from another source: drops %d, want %d", got, before+1)
	}
	select {
	case err := <-done:
		t.Fatalf("Ping completed (%v) on a reply from another source", err)
	default:
	}
	s.Input(0, ipFrame(ipPeer, ipUs, protoICMP, nil, reply))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Ping = %v after its reply", err)
		}
	case <-ctx.Done():
		t.Fatal("Ping did not complete on the reply from its destination")
	}
}
