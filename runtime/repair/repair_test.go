//go:build linux

package repair

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pattern is the byte at offset i of the stream in direction dir: every
// offset differs from its neighbours, so a lost, repeated or reordered
// byte shows as a mismatch at its offset.
func pattern(dir uint64, i int64) byte {
	x := uint64(i)*0x9E3779B97F4A7C15 ^ dir<<56
	x ^= x >> 29
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 32
	return byte(x)
}

// stream tracks one direction of a connection: how much was written and
// read, every byte checked against pattern.
type stream struct {
	dir         uint64
	wrote, read int64
}

// write writes up to n more bytes before the timeout and counts what
// went in; a timeout is how a test leaves bytes queued.
func (s *stream) write(c *net.TCPConn, n int, timeout time.Duration) error {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = pattern(s.dir, s.wrote+int64(i))
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	defer c.SetWriteDeadline(time.Time{})
	w, err := c.Write(buf)
	s.wrote += int64(w)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}

// readTo reads until read reaches total, checking every byte.
func (s *stream) readTo(c *net.TCPConn, total int64, timeout time.Duration) error {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 32<<10)
	for s.read < total {
		n, err := c.Read(buf[:min(int64(len(buf)), total-s.read)])
		for i := range n {
			if want := pattern(s.dir, s.read+int64(i)); buf[i] != want {
				return fmt.Errorf("stream %d: byte %d is %#x, want %#x", s.dir, s.read+int64(i), buf[i], want)
			}
		}
		s.read += int64(n)
		if err != nil {
			return fmt.Errorf("stream %d: read at %d of %d: %w", s.dir, s.read, total, err)
		}
	}
	return nil
}

// migrate moves the server end of a connection from one server namespace
// to the other: freeze the origin, dump, close silently, ship the dump
// through its encoding, move the client's route, restore.
func (tp *topo) migrate(tb testing.TB, from, to string, conn *net.TCPConn, opts ...Option) (*net.TCPConn, *Dump) {
	tb.Helper()
	tp.freeze(tb, from)
	d, err := DumpConn(conn)
	if err != nil {
		tb.Fatalf("dump: %v", err)
	}
	if err := CloseSilently(conn); err != nil {
		tb.Fatalf("close: %v", err)
	}
	enc, err := d.MarshalBinary()
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	var got Dump
	if err := got.UnmarshalBinary(enc); err != nil {
		tb.Fatalf("decode: %v", err)
	}
	tp.routeTo(tb, to)
	if tp.frozenAt == to {
		tp.up(tb, to)
	}
	var c *net.TCPConn
	inNS(tb, to, func() { c, err = Restore(&got, netip.AddrPort{}, opts...) })
	if err != nil {
		tb.Fatalf("restore: %v", err)
	}
	return c, &got
}

// finish runs both directions on to the end: each side writes extra more
// bytes while the other reads everything, then both half-close in turn
// and see EOF, so the connection ends with FINs, not resets.
func finish(t testing.TB, client, server *net.TCPConn, cs, sc *stream, extra int) {
	t.Helper()
	errs := make(chan error, 4)
	csEnd, scEnd := cs.wrote+int64(extra), sc.wrote+int64(extra)
	go func() { errs <- cs.readTo(server, csEnd, 20*time.Second) }()
	go func() { errs <- sc.readTo(client, scEnd, 20*time.Second) }()
	go func() { errs <- cs.write(client, extra, 20*time.Second) }()
	go func() { errs <- sc.write(server, extra, 20*time.Second) }()
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if cs.read != cs.wrote || sc.read != sc.wrote {
		t.Fatalf("short: client->server %d of %d, server->client %d of %d", cs.read, cs.wrote, sc.read, sc.wrote)
	}
	for _, p := range []struct{ w, r *net.TCPConn }{{client, server}, {server, client}} {
		if err := p.w.CloseWrite(); err != nil {
			t.Fatalf("half-close: %v", err)
		}
		p.r.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := p.r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("after the peer's FIN: read %d, %v; want EOF", n, err)
		}
	}
	server.Close()
	client.Close()
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name   string
		rcvBuf int // the client's SO_RCVBUF, 0 for the default
		mtu    int // every link's MTU, 0 for the default 1500
		before func(t *testing.T, client, server *net.TCPConn, cs, sc *stream)
		check  func(t *testing.T, d *Dump)
	}{{
		name: "idle",
		before: func(t *testing.T, client, server *net.TCPConn, cs, sc *stream) {
			must(t, cs.write(client, 1000, 5*time.Second))
			must(t, sc.write(server, 1000, 5*time.Second))
			must(t, cs.readTo(server, cs.wrote, 5*time.Second))
			must(t, sc.readTo(client, sc.wrote, 5*time.Second))
		},
		check: func(t *testing.T, d *Dump) {
			if len(d.SendQueue) != 0 || len(d.RecvQueue) != 0 {
				t.Errorf("idle connection dumped with queues: %v", d)
			}
		},
	}, {
		// Neither side reads: ~128 KB each way ends in the server's
		// receive queue, its send queue and the client's queues.
		name: "queued128k",
		before: func(t *testing.T, client, server *net.TCPConn, cs, sc *stream) {
			must(t, cs.write(client, 128<<10, 500*time.Millisecond))
			must(t, sc.write(server, 128<<10, 500*time.Millisecond))
			time.Sleep(100 * time.Millisecond) // let the ACKs land
		},
		check: func(t *testing.T, d *Dump) {
			// The client's receive buffer takes most of the server's
			// 128 KB; the server's receive queue holds the client's.
			if len(d.RecvQueue) < 64<<10 || len(d.SendQueue) < 8<<10 {
				t.Errorf("want a receive queue over 64 KiB and a send queue over 8 KiB: %v", d)
			}
		},
	}, {
		// The client's tiny receive buffer closes the server's send
		// window, so what the server writes after it is never sent.
		name:   "unsent_window_closed",
		rcvBuf: 4096,
		before: func(t *testing.T, client, server *net.TCPConn, cs, sc *stream) {
			must(t, sc.write(server, 256<<10, 500*time.Millisecond))
			must(t, cs.write(client, 4096, 500*time.Millisecond))
			time.Sleep(100 * time.Millisecond)
		},
		check: func(t *testing.T, d *Dump) {
			if d.Unsent < 16<<10 {
				t.Errorf("want over 16 KiB unsent: %v", d)
			}
		},
	}, {
		// Both windows closed, as an echo server writing to a client that
		// stopped reading leaves them: the server does not read (its
		// receive window is zero) and its send buffer is full.
		name:   "both_windows_closed",
		rcvBuf: 4096,
		before: func(t *testing.T, client, server *net.TCPConn, cs, sc *stream) {
			must(t, sc.write(server, 512<<10, 500*time.Millisecond))
			must(t, cs.write(client, 2<<20, 500*time.Millisecond))
			time.Sleep(100 * time.Millisecond)
		},
		check: func(t *testing.T, d *Dump) {
			if d.Window.RcvWnd != 0 || d.Unsent == 0 {
				t.Errorf("want a zero receive window and unsent bytes: %v", d)
			}
		},
	}, {
		// The client's kernel drops the server's segments (nftables, in
		// the client's namespace) before the server writes: the first
		// congestion window leaves the origin as sent and is never
		// acknowledged, the rest waits unsent. After the restore the sent
		// part comes back by retransmission, the unsent part as new data.
		name: "unsent_after_sent",
		before: func(t *testing.T, client, server *net.TCPConn, cs, sc *stream) {
			must(t, cs.write(client, 1000, 5*time.Second))
			must(t, cs.readTo(server, cs.wrote, 5*time.Second))
			curTopo.dropFromServer(t)
			must(t, sc.write(server, 128<<10, 500*time.Millisecond))
			time.Sleep(100 * time.Millisecond)
		},
		check: func(t *testing.T, d *Dump) {
			if d.Unsent == 0 || d.Unsent == uint32(len(d.SendQueue)) {
				t.Errorf("want a send queue with both sent and unsent bytes: %v", d)
			}
		},
	}, {
		// Links with a 64 KB MTU, as loopback's: an MSS over the 32767
		// that Linux takes as a user MSS (TCP_MAXSEG).
		name: "jumbo_mss",
		mtu:  65000,
		before: func(t *testing.T, client, server *net.TCPConn, cs, sc *stream) {
			must(t, cs.write(client, 256<<10, 500*time.Millisecond))
			must(t, sc.write(server, 256<<10, 500*time.Millisecond))
			time.Sleep(100 * time.Millisecond)
		},
		check: func(t *testing.T, d *Dump) {
			if d.MSS <= maxUserMSS {
				t.Errorf("want an MSS over %d: %v", maxUserMSS, d)
			}
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			curTopo = tp
			if tc.mtu != 0 {
				tp.setMTU(t, tc.mtu)
			}
			client, server := tp.connect(t, tp.a, tc.rcvBuf)
			cs, sc := &stream{dir: 1}, &stream{dir: 2}
			tc.before(t, client, server, cs, sc)
			before := tp.counters(t)

			restored, d := tp.migrate(t, tp.a, tp.b, server)
			t.Logf("dump: %v; client wrote %d, server wrote %d", d, cs.wrote, sc.wrote)
			tc.check(t, d)
			clientAP := client.LocalAddr().(*net.TCPAddr).AddrPort()
			if n := sockets(t, tp.a, serverAP, clientAP); n != 0 {
				t.Errorf("origin still has %d sockets for the connection", n)
			}
			if n := sockets(t, tp.b, serverAP, clientAP); n != 1 {
				t.Errorf("target has %d sockets for the connection, want 1", n)
			}
			finish(t, client, restored, cs, sc, 64<<10)
			tp.noResets(t, before, tp.a)
		})
	}
}

// dropFromServer makes the client's namespace drop every segment from
// the server port until the next freeze, or skips without nft.
func (tp *topo) dropFromServer(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft (nftables) to lose the server's segments on the way")
	}
	run(t, "ip", "netns", "exec", tp.c, "nft", "add table ip repairtest")
	run(t, "ip", "netns", "exec", tp.c, "nft", "add chain ip repairtest in { type filter hook input priority 0; }")
	run(t, "ip", "netns", "exec", tp.c, "nft", "add rule ip repairtest in tcp sport "+fmt.Sprint(serverPort)+" drop")
	tp.dropping = true
}

// curTopo is the running case's topology, for its before hook.
var curTopo *topo

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// memInfo is a socket's SO_MEMINFO: its receive memory, its receive
// buffer and the segments it dropped.
func memInfo(t *testing.T, c *net.TCPConn) (rmem, rcvbuf, drops uint32) {
	t.Helper()
	var mem [unix.SK_MEMINFO_VARS]uint32
	err := control(c, "test", "meminfo", func(fd int) error {
		l := uint32(unsafe.Sizeof(mem))
		if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
			return e
		}
		return nil
	})
	if err != nil {
		t.Fatalf("SO_MEMINFO: %v", err)
	}
	return mem[unix.SK_MEMINFO_RMEM_ALLOC], mem[unix.SK_MEMINFO_RCVBUF], mem[unix.SK_MEMINFO_DROPS]
}

// TestRestoreKeepsAFullReceiveBufferClosed: a server that stopped reading
// has a full receive queue and a closed window. Restore raises the
// buffer to refill the queue and lowers it to the origin's after. Were
// the window computed while the buffer was raised (at TCP_REPAIR off),
// the peer would be promised room the socket does not have: it took
// 65 KB over its buffer and dropped 48 segments of the client's for
// memory in this test, where the origin took none. The restored socket
// must stay within its buffer while its application does not read.
func TestRestoreKeepsAFullReceiveBufferClosed(t *testing.T) {
	tp := newTopo(t)
	curTopo = tp
	client, server := tp.connect(t, tp.a, 0)
	if err := server.SetReadBuffer(256 << 10); err != nil {
		t.Fatal(err)
	}
	cs, sc := &stream{dir: 1}, &stream{dir: 2}
	cs.write(client, 4<<20, 500*time.Millisecond) // fills the server's buffer, then times out
	time.Sleep(100 * time.Millisecond)
	restored, d := tp.migrate(t, tp.a, tp.b, server)
	if d.Window.RcvWnd != 0 || len(d.RecvQueue) < 128<<10 {
		t.Fatalf("want a closed receive window over a full queue: %v, window %+v", d, d.Window)
	}
	// The client's data still waits in its send queue; give it time to
	// try (its zero-window probes, and whatever the window admits).
	time.Sleep(time.Second)
	rmem, rcvbuf, drops := memInfo(t, restored)
	t.Logf("dump: %v; restored socket: rmem %d of rcvbuf %d, %d drops", d, rmem, rcvbuf, drops)
	if rmem > rcvbuf {
		t.Errorf("the restored socket holds %d bytes over its %d-byte receive buffer (%d drops): its window promised more than it has", rmem, rcvbuf, drops)
	}
	finish(t, client, restored, cs, sc, 1000)
}
