package repair

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/internal/netnstest"
)

// The hosts: a Linux client in namespace c talks to server 10.77.0.2:80 in
// namespace a over one veth pair. To move the connection to another
// host, a dumps it and closes it silently, then the server's end of the
// veth moves to namespace b, which takes the same address and restores
// the socket: a second kernel with no trace of the connection rebuilds
// it, and the client, an ordinary socket, goes on.
const (
	clientIP = "10.77.0.1"
	serverIP = "10.77.0.2"
)

type bed struct {
	c, a, b, link string
}

func newBed(t testing.TB) *bed {
	netnstest.NeedRoot(t)
	tag := netnstest.Tag()
	e := &bed{c: "rpc" + tag, a: "rpa" + tag, b: "rpb" + tag, link: "rps" + tag}
	for _, ns := range []string{e.c, e.a, e.b} {
		netnstest.NewNS(t, ns)
	}
	netnstest.VethPair(t, e.c, "rpc"+tag, e.a, e.link)
	netnstest.Run(t, "ip", "-n", e.c, "addr", "add", clientIP+"/24", "dev", "rpc"+tag)
	netnstest.Run(t, "ip", "-n", e.a, "addr", "add", serverIP+"/24", "dev", e.link)
	return e
}

// move hands the server's link, and with it its address, from a to b.
func (e *bed) move(t testing.TB) {
	netnstest.Run(t, "ip", "-n", e.a, "link", "set", e.link, "netns", e.b)
	netnstest.Run(t, "ip", "-n", e.b, "addr", "add", serverIP+"/24", "dev", e.link)
	netnstest.Run(t, "ip", "-n", e.b, "link", "set", e.link, "up")
}

// connect opens client -> server and returns both ends; rcvbuf, when set,
// shrinks the client's receive buffer so the server's data stays unsent.
func (e *bed) connect(t testing.TB, rcvbuf int) (client, server *net.TCPConn) {
	var ln net.Listener
	netnstest.InNS(t, e.a, func() {
		var err error
		if ln, err = net.Listen("tcp4", serverIP+":80"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	netnstest.InNS(t, e.c, func() {
		d := net.Dialer{Timeout: 5 * time.Second}
		if rcvbuf > 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
				return serr
			}
		}
		c, err := d.Dial("tcp4", serverIP+":80")
		if err != nil {
			t.Fatal(err)
		}
		client = c.(*net.TCPConn)
	})
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client, s.(*net.TCPConn)
}

// fill writes pattern bytes until n are written or the peer stops taking
// them for a while; it returns what it wrote.
func fill(c net.Conn, seed byte, n int) []byte {
	var out []byte
	buf := pattern(seed, n)
	c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
	w, _ := c.Write(buf)
	c.SetWriteDeadline(time.Time{})
	out = append(out, buf[:w]...)
	return out
}

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*31+i/251)
	}
	return b
}

func readExactly(t testing.TB, what string, c net.Conn, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("%s: read %d bytes: %v", what, len(want), err)
	}
	c.SetReadDeadline(time.Time{})
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: the %d bytes differ from what was sent", what, len(want))
	}
}

func outRsts(t testing.TB, e *bed) int64 {
	return netnstest.TCPCounter(t, e.c, "OutRsts") + netnstest.TCPCounter(t, e.a, "OutRsts") + netnstest.TCPCounter(t, e.b, "OutRsts")
}

// TestRoundTrip moves a connection between two namespaces idle, with
// about 128 KiB queued each way, and with data the server never sent; the
// client's byte stream is intact both ways and no RST leaves any host.
func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name       string
		toClient   int // bytes the server writes, the client not reading
		toServer   int // bytes the client writes, the server not reading
		rcvbuf     int
		wantUnsent bool
		wantQueued bool
		// unacked drops the client's packets while the server writes, so
		// its data is sent and never acknowledged: the part of the send
		// queue restored in repair mode.
		unacked bool
	}{
		{name: "idle"},
		{name: "queued-128KiB", toClient: 128 << 10, toServer: 128 << 10, rcvbuf: 4096, wantQueued: true},
		{name: "unsent", toClient: 64 << 10, rcvbuf: 4096, wantUnsent: true},
		{name: "unacked", toClient: 8 << 10, unacked: true},
		// Sent and unacknowledged up to the client's small window, the
		// rest never sent: both halves of the send queue at once.
		{name: "unacked-and-unsent", toClient: 64 << 10, rcvbuf: 4096, unacked: true, wantUnsent: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newBed(t)
			client, server := e.connect(t, c.rcvbuf)
			if c.unacked {
				if _, err := exec.LookPath("nft"); err != nil {
					t.Skip("needs nft (nftables) to hold back the client's ACKs")
				}
				netnstest.Run(t, "ip", "netns", "exec", e.c, "nft", "add table inet rp; add chain inet rp out { type filter hook output priority 0; }; add rule inet rp out ip daddr "+serverIP+" drop")
			}
			var toClient, toServer []byte
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); toClient = fill(server, 1, c.toClient) }()
			go func() { defer wg.Done(); toServer = fill(client, 2, c.toServer) }()
			wg.Wait()
			time.Sleep(100 * time.Millisecond) // let in-flight segments land and be ACKed
			rsts := outRsts(t, e)

			var steps []Step
			d, err := DumpConn(server, func(s Step, _ time.Duration) { steps = append(steps, s) })
			if err != nil {
				t.Fatal(err)
			}
			if err := CloseSilently(server); err != nil {
				t.Fatal(err)
			}
			if c.wantUnsent && d.Unsent == 0 {
				t.Fatalf("no unsent data in a %d-byte send queue; the case tests nothing", len(d.SendQueue))
			}
			if c.wantQueued && (len(d.SendQueue) == 0 || len(d.RecvQueue) == 0) {
				t.Fatalf("queues of %d and %d bytes; want both non-empty", len(d.SendQueue), len(d.RecvQueue))
			}
			if c.unacked {
				if len(d.SendQueue) == 0 || d.Unsent == len(d.SendQueue) {
					t.Fatalf("send queue %d bytes, %d unsent: want sent, unacknowledged bytes", len(d.SendQueue), d.Unsent)
				}
				netnstest.Run(t, "ip", "netns", "exec", e.c, "nft", "delete table inet rp")
			}
			wire, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var moved Dump
			if err := moved.UnmarshalBinary(wire); err != nil {
				t.Fatal(err)
			}
			e.move(t)
			var restored *net.TCPConn
			netnstest.InNS(t, e.b, func() {
				restored, err = Restore(&moved, moved.Local, func(s Step, _ time.Duration) { steps = append(steps, s) })
			})
			if err != nil {
				t.Fatal(err)
			}
			defer restored.Close()
			t.Logf("%s: send queue %d (unsent %d), receive queue %d; steps %v", c.name, len(d.SendQueue), d.Unsent, len(d.RecvQueue), steps)

			// Every byte either side wrote arrives, then the connection
			// carries new data both ways.
			var werr error
			wg.Add(1)
			go func() { defer wg.Done(); readExactly(t, "server reads", restored, toServer) }()
			readExactly(t, "client reads", client, toClient)
			wg.Wait()
			if _, werr = restored.Write([]byte("after")); werr != nil {
				t.Fatal(werr)
			}
			readExactly(t, "client reads after", client, []byte("after"))
			if _, werr = client.Write([]byte("again")); werr != nil {
				t.Fatal(werr)
			}
			readExactly(t, "server reads after", restored, []byte("again"))
			if got := outRsts(t, e); got != rsts {
				t.Errorf("%d RSTs left the hosts during the move", got-rsts)
			}
		})
	}
}

// TestRestoreRefusedLeavesNoSocket restores one dump twice on the new
// host. Repair mode forces address reuse, so the bind passes; the kernel
// refuses the second connect, since the connection exists: the error
// names the step and the errno, and one socket of the connection stays,
// never two.
func TestRestoreRefusedLeavesNoSocket(t *testing.T) {
	e := newBed(t)
	_, server := e.connect(t, 0)
	d, err := DumpConn(server, nil)
	if err != nil {
		t.Fatal(err)
	}
	CloseSilently(server)
	e.move(t)
	var first *net.TCPConn
	netnstest.InNS(t, e.b, func() {
		if first, err = Restore(d, d.Local, nil); err != nil {
			t.Fatal(err)
		}
		_, err = Restore(d, d.Local, nil)
	})
	defer first.Close()
	if err == nil || !strings.Contains(err.Error(), "repair: connect: connect "+d.Remote.String()) {
		t.Fatalf("second Restore = %v, want the connect step refused", err)
	}
	out, _ := exec.Command("ip", "netns", "exec", e.b, "cat", "/proc/net/tcp").CombinedOutput()
	n := 0
	for _, l := range strings.Split(string(out), "\n")[1:] {
		if f := strings.Fields(l); len(f) > 3 {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d sockets in %s after a refused second restore, want the first one only:\n%s", n, e.b, out)
	}
}

// TestDumpRefusesOtherStates: a half-closed connection is refused, and
// the socket leaves repair mode: it still works.
func TestDumpRefusesOtherStates(t *testing.T) {
	e := newBed(t)
	client, server := e.connect(t, 0)
	client.CloseWrite()
	time.Sleep(50 * time.Millisecond)
	if _, err := DumpConn(server, nil); !errors.Is(err, ErrState) {
		t.Fatalf("DumpConn of CLOSE_WAIT = %v, want ErrState", err)
	}
	if _, err := server.Write([]byte("still")); err != nil {
		t.Fatalf("the refused socket no longer writes: %v", err)
	}
	readExactly(t, "client", client, []byte("still"))
}

// BenchmarkDumpRestore is the kernel side of a migration's host work:
// dump, silent close, encode, decode and restore of one idle connection,
// over and over in the same namespace (each restored socket is the next
// one dumped; setns into the namespace is part of each restore).
func BenchmarkDumpRestore(b *testing.B) {
	e := newBed(b)
	client, cur := e.connect(b, 0)
	b.ResetTimer()
	for range b.N {
		d, err := DumpConn(cur, nil)
		if err != nil {
			b.Fatal(err)
		}
		CloseSilently(cur)
		wire, _ := d.MarshalBinary()
		var m Dump
		if err := m.UnmarshalBinary(wire); err != nil {
			b.Fatal(err)
		}
		netnstest.InNS(b, e.a, func() { cur, err = Restore(&m, m.Local, nil) })
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cur.Write([]byte("x"))
	readExactly(b, "client after the restores", client, []byte("x"))
	cur.Close()
}
