package link

import (
	"fmt"
	"net"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/internal/netnstest"
)

// The namespace helpers are internal/netnstest's; these names keep the
// AF_XDP tests short.

func needRoot(tb testing.TB) { netnstest.NeedRoot(tb) }

func run(tb testing.TB, argv ...string) { tb.Helper(); netnstest.Run(tb, argv...) }

func tag() string { return netnstest.Tag() }

func newNS(tb testing.TB, name string) string { tb.Helper(); return netnstest.NewNS(tb, name) }

func inNS(tb testing.TB, ns string, fn func()) { tb.Helper(); netnstest.InNS(tb, ns, fn) }

// vethPair makes veth a in namespace nsA and its peer b in nsB, both up
// unless down is wanted (up false).
func vethPair(tb testing.TB, nsA, a, nsB, b string, up bool) {
	tb.Helper()
	if up {
		netnstest.VethPair(tb, nsA, a, nsB, b)
		return
	}
	run(tb, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
}

// packetSock is a raw AF_PACKET socket on one interface, the "other
// end" that is not AF_XDP.
type packetSock struct {
	fd      int
	ifindex int
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openPacket(tb testing.TB, ns, ifname string) *packetSock {
	tb.Helper()
	var p *packetSock
	inNS(tb, ns, func() {
		ifi, err := netInterface(ifname)
		if err != nil {
			tb.Fatal(err)
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			tb.Fatalf("packet socket: %v", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi}); err != nil {
			unix.Close(fd)
			tb.Fatalf("bind packet socket to %s: %v", ifname, err)
		}
		tv := unix.Timeval{Sec: 1}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		p = &packetSock{fd: fd, ifindex: ifi}
	})
	tb.Cleanup(func() { unix.Close(p.fd) })
	return p
}

func (p *packetSock) send(tb testing.TB, f []byte) {
	tb.Helper()
	if err := unix.Sendto(p.fd, f, 0, &unix.SockaddrLinklayer{Ifindex: p.ifindex, Halen: 6}); err != nil {
		tb.Fatalf("packet send: %v", err)
	}
}

// recv returns the next inbound frame that match accepts, or nil after
// the socket's 1s timeout. Outgoing copies are skipped.
func (p *packetSock) recv(match func([]byte) bool) []byte {
	buf := make([]byte, 9000)
	for range 1000 {
		n, from, err := unix.Recvfrom(p.fd, buf, 0)
		if err != nil {
			return nil
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...)
		}
	}
	return nil
}

func netInterface(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %v", name, err)
	}
	return ifi.Index, nil
}
