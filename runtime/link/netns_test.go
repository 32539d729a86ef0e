package link

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers that build throwaway network namespaces and veth pairs for the
// AF_XDP tests, always torn down by t.Cleanup (deleting a namespace
// deletes the veths in it).

func needRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces and attaches XDP programs")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs the ip command (iproute2)")
	}
}

func run(tb testing.TB, argv ...string) {
	tb.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// tag is unique per test process and call, so concurrent runs never
// collide on namespace or interface names (15-byte interface limit).
func tag() string { return fmt.Sprintf("%d%03d", os.Getpid()%100000, rand.IntN(1000)) }

// newNS creates a namespace with IPv6 off (no router solicitations or
// MLD reports in the way of the frames under test).
func newNS(tb testing.TB, name string) string {
	tb.Helper()
	run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	run(tb, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return name
}

// vethPair makes veth a in namespace nsA and its peer b in nsB, both up
// unless down is set.
func vethPair(tb testing.TB, nsA, a, nsB, b string, up bool) {
	tb.Helper()
	run(tb, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
	if up {
		run(tb, "ip", "-n", nsA, "link", "set", a, "up")
		run(tb, "ip", "-n", nsB, "link", "set", b, "up")
	}
}

// inNS runs fn on a thread switched into namespace ns. Sockets created
// by fn stay in ns after the thread switches back.
func inNS(tb testing.TB, ns string, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("open own netns: %v", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("open netns %s: %v", ns, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("enter netns %s: %v", ns, err)
	}
	defer func() {
		// A thread that cannot return stays locked, and Go retires it
		// when this goroutine ends instead of reusing it elsewhere.
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	fn()
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
