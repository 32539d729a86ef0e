package stack

import (
	"errors"
	"net/netip"
	"testing"
)

// Packets from no single host's address (RFC 1122 3.2.1.3) draw no
// answer: one from 255.255.255.255 used to be answered to every host on
// the link, a SYN to a listener opened a connection whose SYN-ACKs were
// broadcast, and one from 127/8 went out through the gateway.
func TestMartianSourcesAreDropped(t *testing.T) {
	for _, src := range []string{"255.255.255.255", "127.0.0.1", "0.1.2.3", "240.0.0.1", "10.77.0.255"} {
		s, ep := newCaptureStack(t, func(c *Config) { c.Gateway = ipPeer })
		if _, err := s.Listen(80); err != nil {
			t.Fatal(err)
		}
		learnPeer(t, s, ep)
		from := netip.MustParseAddr(src)
		for name, f := range map[string][]byte{
			"UDP to a closed port": ipFrame(from, ipUs, protoUDP, nil, udpDatagram(netip.AddrPortFrom(from, 5), netip.AddrPortFrom(ipUs, 9), []byte("x"))),
			"echo request":         ipFrame(from, ipUs, protoICMP, nil, echoRequest(1, 1, []byte("x"))),
			"SYN to a closed port": ipFrame(from, ipUs, protoTCP, nil, tcpSYN(netip.AddrPortFrom(from, 40000), netip.AddrPortFrom(ipUs, 81))),
			"SYN to a listener":    ipFrame(from, ipUs, protoTCP, nil, tcpSYN(netip.AddrPortFrom(from, 40000), netip.AddrPortFrom(ipUs, 80))),
		} {
			s.Input(0, f)
			if out := ep.take(); len(out) != 0 || len(s.conns) != 0 {
				t.Errorf("%s from %s: sent %d frames, %d connections; want nothing", name, src, len(out), len(s.conns))
			}
		}
		if n := s.Counters().Drops[DropBadSource]; n != 4 {
			t.Errorf("from %s: %d bad-source drops, want 4", src, n)
		}
	}
}

// A datagram in a link-layer broadcast frame draws no ICMP error, and a
// SYN in one opens nothing (RFC 1122 3.2.2; Linux's PACKET_HOST checks).
func TestLinkBroadcastDrawsNoError(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	if _, err := s.Listen(80); err != nil {
		t.Fatal(err)
	}
	learnPeer(t, s, ep)
	for _, f := range [][]byte{
		ipFrame(ipPeer, ipUs, protoUDP, nil, udpDatagram(netip.AddrPortFrom(ipPeer, 5), netip.AddrPortFrom(ipUs, 9), []byte("x"))),
		ipFrame(ipPeer, ipUs, protoTCP, nil, tcpSYN(netip.AddrPortFrom(ipPeer, 40000), netip.AddrPortFrom(ipUs, 80))),
	} {
		copy(f[0:6], broadcastMAC[:])
		s.Input(0, f)
		if out := ep.take(); len(out) != 0 || len(s.conns) != 0 {
			t.Errorf("a link broadcast frame drew %d frames and %d connections, want none", len(out), len(s.conns))
		}
	}
}

// Connect refuses addresses no single host has.
func TestConnectRefusesMartians(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.Gateway = ipPeer })
	for _, a := range []string{"255.255.255.255", "0.0.0.0", "127.0.0.1", "240.0.0.1", "224.0.0.1", "10.77.0.255"} {
		if _, err := s.Connect(netip.AddrPortFrom(netip.MustParseAddr(a), 80)); !errors.Is(err, ErrBadAddr) {
			t.Errorf("Connect(%s:80) = %v, want ErrBadAddr", a, err)
		}
	}
	if out := ep.take(); len(out) != 0 {
		t.Errorf("the refused Connects sent %d frames", len(out))
	}
}

// A stack on no host's address would drop every peer as a martian: New
// refuses it.
func TestNewRefusesMartianAddresses(t *testing.T) {
	for _, a := range []string{"127.0.0.2/8", "0.1.2.3/8", "240.0.0.1/8", "224.0.0.5/4"} {
		if _, err := New(Config{Addr: netip.MustParsePrefix(a)}, &capture{mac: macUs, mtu: 1500}); !errors.Is(err, ErrConfig) {
			t.Errorf("New with Addr %s = %v, want ErrConfig", a, err)
		}
	}
}

// An echo request to our address in a link broadcast frame is answered,
// as Linux answers it (its broadcast check is on the IP destination).
func TestLinkBroadcastEchoIsAnswered(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	f := ipFrame(ipPeer, ipUs, protoICMP, nil, echoRequest(1, 1, []byte("x")))
	copy(f[0:6], broadcastMAC[:])
	s.Input(0, f)
	if out := ep.take(); len(out) != 1 {
		t.Errorf("an echo request in a broadcast frame drew %d frames, want the reply", len(out))
	}
}

// A gateway that is the stack's own address (or the subnet's broadcast)
// is refused: off-link packets would go nowhere.
func TestNewRefusesOwnAddressAsGateway(t *testing.T) {
	for _, gw := range []string{"10.77.0.1", "10.77.0.255"} {
		_, err := New(Config{Addr: netip.MustParsePrefix("10.77.0.1/24"), Gateway: netip.MustParseAddr(gw)}, &capture{mac: macUs, mtu: 1500})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("New with Gateway %s = %v, want ErrConfig", gw, err)
		}
	}
}
