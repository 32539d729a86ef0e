//go:build linux

package repair

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/internal/netnstest"
)

// The migration testbed: three namespaces on one host.
//
//	          ca ── a0   A: server 10.78.0.1 (the origin)
//	client C
//	          cb ── b0   B: server 10.78.0.1 (the target)
//
// A and B both hold the server address, as two hosts behind one service
// address do; the client reaches whichever one its route names. The
// client's own address sits on its loopback, so it answers ARP on either
// link. A migration freezes A (a0 down: nothing in or out, as a paused
// origin), dumps and silently closes the socket there, moves the client's
// route from ca to cb (the switch retargeting the flow), and restores the
// socket in B under the same address. The client's kernel is never told.
// The addresses exist only inside these namespaces.
const (
	serverAddr = "10.78.0.1"
	clientAddr = "10.78.0.2"
	serverPort = 7000
)

var (
	serverAP = netip.AddrPortFrom(netip.MustParseAddr(serverAddr), serverPort)
	clientIP = netip.MustParseAddr(clientAddr)
)

// The namespace helpers are internal/netnstest's.

func needRoot(tb testing.TB) { netnstest.NeedRoot(tb) }

func run(tb testing.TB, argv ...string) { tb.Helper(); netnstest.Run(tb, argv...) }

func tag() string { return netnstest.Tag() }

func newNS(tb testing.TB, name string) string { tb.Helper(); return netnstest.NewNS(tb, name) }

func inNS(tb testing.TB, ns string, fn func()) { tb.Helper(); netnstest.InNS(tb, ns, fn) }

type topo struct {
	c, a, b  string // namespaces
	ca, cb   string // the client's links to A and B
	a0, b0   string // A's and B's link to the client
	onB      bool   // the client's route names B
	frozenAt string // namespace whose link is down, "" if none
	dropping bool   // the client drops the server's segments (nftables)
}

func newTopo(tb testing.TB) *topo {
	tb.Helper()
	needRoot(tb)
	g := tag()
	tp := &topo{
		c: newNS(tb, "rpc"+g), a: newNS(tb, "rpa"+g), b: newNS(tb, "rpb"+g),
		ca: "ca" + g, cb: "cb" + g, a0: "a0" + g, b0: "b0" + g,
	}
	run(tb, "ip", "-n", tp.c, "addr", "add", clientAddr+"/32", "dev", "lo")
	for _, s := range []struct{ ns, cl, sv string }{{tp.a, tp.ca, tp.a0}, {tp.b, tp.cb, tp.b0}} {
		run(tb, "ip", "-n", tp.c, "link", "add", s.cl, "type", "veth", "peer", "name", s.sv, "netns", s.ns)
		run(tb, "ip", "-n", tp.c, "link", "set", s.cl, "up")
		run(tb, "ip", "-n", s.ns, "addr", "add", serverAddr+"/32", "dev", s.sv)
		tp.up(tb, s.ns)
	}
	run(tb, "ip", "-n", tp.c, "route", "add", serverAddr+"/32", "dev", tp.ca, "src", clientAddr)
	return tp
}

// setMTU sets every link's MTU, both ends.
func (tp *topo) setMTU(tb testing.TB, mtu int) {
	tb.Helper()
	for _, l := range []struct{ ns, dev string }{{tp.c, tp.ca}, {tp.c, tp.cb}, {tp.a, tp.a0}, {tp.b, tp.b0}} {
		run(tb, "ip", "-n", l.ns, "link", "set", "dev", l.dev, "mtu", strconv.Itoa(mtu))
	}
}

func (tp *topo) link(ns string) string {
	if ns == tp.a {
		return tp.a0
	}
	return tp.b0
}

// up brings a server namespace's link up with its route to the client
// (a link going down takes its routes with it).
func (tp *topo) up(tb testing.TB, ns string) {
	tb.Helper()
	run(tb, "ip", "-n", ns, "link", "set", tp.link(ns), "up")
	run(tb, "ip", "-n", ns, "route", "replace", clientAddr+"/32", "dev", tp.link(ns))
	if tp.frozenAt == ns {
		tp.frozenAt = ""
	}
}

// freeze cuts a server namespace off: no segment reaches its sockets and
// none leaves them, as with a paused origin.
func (tp *topo) freeze(tb testing.TB, ns string) {
	tb.Helper()
	run(tb, "ip", "-n", ns, "link", "set", tp.link(ns), "down")
	tp.frozenAt = ns
	if tp.dropping {
		run(tb, "ip", "netns", "exec", tp.c, "nft", "delete table ip repairtest")
		tp.dropping = false
	}
}

// routeTo points the client's route to the server address at ns.
func (tp *topo) routeTo(tb testing.TB, ns string) {
	tb.Helper()
	dev := tp.ca
	if ns == tp.b {
		dev = tp.cb
	}
	run(tb, "ip", "-n", tp.c, "route", "replace", serverAddr+"/32", "dev", dev, "src", clientAddr)
	tp.onB = ns == tp.b
}

// inNS runs fn on a thread switched into namespace ns. Sockets created
// by fn stay in ns after the thread switches back.

// connect opens a connection from the client to a listener in ns and
// returns both ends. rcvBuf > 0 sets the client's SO_RCVBUF before the
// handshake (a small one closes the server's send window early).
func (tp *topo) connect(tb testing.TB, ns string, rcvBuf int) (client, server *net.TCPConn) {
	tb.Helper()
	var ln *net.TCPListener
	// No keep-alive on either end (Go's default is 15 s): a probe that
	// reaches the next namespace after the route moved and before the
	// restore draws a RST, and the connection dies under a benchmark that
	// runs for minutes of `ip` commands.
	inNS(tb, ns, func() {
		l, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp4", serverAP.String())
		if err != nil {
			tb.Fatalf("listen in %s: %v", ns, err)
		}
		ln = l.(*net.TCPListener)
	})
	defer ln.Close()
	inNS(tb, tp.c, func() {
		d := net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientAddr)},
			Timeout:   5 * time.Second,
			KeepAlive: -1,
			Control: func(_, _ string, rc syscall.RawConn) error {
				if rcvBuf <= 0 {
					return nil
				}
				var serr error
				rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf) })
				return serr
			},
		}
		c, err := d.Dial("tcp4", serverAP.String())
		if err != nil {
			tb.Fatalf("dial from %s: %v", tp.c, err)
		}
		client = c.(*net.TCPConn)
	})
	tb.Cleanup(func() { client.Close() })
	ln.SetDeadline(time.Now().Add(5 * time.Second))
	s, err := ln.AcceptTCP()
	if err != nil {
		tb.Fatalf("accept in %s: %v", ns, err)
	}
	return client, s
}

// snmp reads a namespace's TCP counters: the Tcp line of
// /proc/net/snmp and the TcpExt line of /proc/net/netstat, as
// "Tcp.OutRsts", "TcpExt.TCPAbortOnData", ...
func snmp(tb testing.TB, ns string) map[string]int64 {
	tb.Helper()
	m := map[string]int64{}
	inNS(tb, ns, func() {
		for _, f := range []string{"/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"} {
			fh, err := os.Open(f)
			if err != nil {
				tb.Fatalf("%s: %v", f, err)
			}
			sc := bufio.NewScanner(fh)
			var names []string
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) == 0 || (fields[0] != "Tcp:" && fields[0] != "TcpExt:") {
					continue
				}
				if names == nil || names[0] != fields[0] {
					names = fields
					continue
				}
				for i := 1; i < len(fields) && i < len(names); i++ {
					v, _ := strconv.ParseInt(fields[i], 10, 64)
					m[strings.TrimSuffix(names[0], ":")+"."+names[i]] = v
				}
				names = nil
			}
			fh.Close()
		}
	})
	return m
}

// resetCounters are the counters that move when any RST is sent or a
// connection is aborted.
var resetCounters = []string{"Tcp.OutRsts", "Tcp.EstabResets", "TcpExt.TCPAbortOnData",
	"TcpExt.TCPAbortOnClose", "TcpExt.TCPAbortOnTimeout", "TcpExt.TCPAbortOnLinger", "TcpExt.TCPAbortFailed"}

type counterSnap map[string]map[string]int64

func (tp *topo) counters(tb testing.TB) counterSnap {
	return counterSnap{tp.c: snmp(tb, tp.c), tp.a: snmp(tb, tp.a), tp.b: snmp(tb, tp.b)}
}

// noResets fails if any namespace sent an RST or aborted a connection
// since before: with only these three stacks on the wires, no RST can
// have been seen on them. The namespaces in closedIn are exempt from
// Tcp.EstabResets, which counts every move from ESTABLISHED to CLOSE and
// so every silent close too (a dumped origin, a torn-down restore).
func (tp *topo) noResets(tb testing.TB, before counterSnap, closedIn ...string) {
	tb.Helper()
	after := tp.counters(tb)
	for ns, m := range after {
		if ns == tp.c && m["Tcp.OutSegs"] == 0 {
			tb.Fatalf("namespace %s: Tcp.OutSegs reads 0; the counter check would prove nothing", ns)
		}
		for _, k := range resetCounters {
			if _, ok := m[k]; !ok {
				tb.Fatalf("namespace %s: no %s counter", ns, k)
			}
			if k == "Tcp.EstabResets" && slices.Contains(closedIn, ns) {
				continue
			}
			if d := m[k] - before[ns][k]; d != 0 {
				tb.Errorf("namespace %s: %s went up by %d", ns, k, d)
			}
		}
	}
}

// sockets counts the TCP sockets in ns whose four-tuple is local->remote,
// in any state (repair-mode and half-built ones included).
func sockets(tb testing.TB, ns string, local, remote netip.AddrPort) int {
	tb.Helper()
	n := 0
	inNS(tb, ns, func() {
		b, err := os.ReadFile("/proc/thread-self/net/tcp")
		if err != nil {
			tb.Fatalf("read /proc/net/tcp in %s: %v", ns, err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			l, ok1 := procAddr(f[1])
			r, ok2 := procAddr(f[2])
			if ok1 && ok2 && l == local && r == remote {
				n++
			}
		}
	})
	return n
}

// procAddr parses /proc/net/tcp's "0100A8C0:1F40": the address as the
// kernel's in-memory u32 in hex, the port in host order.
func procAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(a)
	port, err2 := strconv.ParseUint(p, 16, 16)
	if err != nil || err2 != nil {
		return netip.AddrPort{}, false
	}
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], binary.BigEndian.Uint32(raw))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port)), true
}
