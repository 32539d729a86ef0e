//go:build linux

package repair

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var restoreSteps = []Step{StepBind, StepQueueSeq, StepConnect, StepOptions, StepRefill, StepWindow, StepRepairOff, StepUnsent}

func stepRecorder(steps *[]Step) Option {
	return WithStepHook(func(s Step, d time.Duration) {
		if d < 0 {
			panic("negative step duration")
		}
		*steps = append(*steps, s)
	})
}

// A second restore of a connection that is already live on the target
// clashes with its four-tuple. Repair mode forces address reuse, so the
// kernel refuses at connect, not bind; the half-built socket goes away
// silently and the live connection never notices.
func TestRestoreAddressInUse(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	cs, sc := &stream{dir: 1}, &stream{dir: 2}
	must(t, cs.write(client, 64<<10, 500*time.Millisecond))
	must(t, sc.write(server, 64<<10, 500*time.Millisecond))
	before := tp.counters(t)

	var steps []Step
	restored, d := tp.migrate(t, tp.a, tp.b, server, stepRecorder(&steps))
	if !slices.Equal(steps, restoreSteps) {
		t.Errorf("restore steps %v, want %v", steps, restoreSteps)
	}
	clientAP := client.LocalAddr().(*net.TCPAddr).AddrPort()
	outBefore := snmp(t, tp.b)["Tcp.OutSegs"]

	steps = nil
	var err error
	var dup *net.TCPConn
	inNS(t, tp.b, func() { dup, err = Restore(d, netip.AddrPort{}, stepRecorder(&steps)) })
	if err == nil {
		dup.Close()
		t.Fatal("second restore of a live connection succeeded: two live sockets")
	}
	t.Logf("refused: %v", err)
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepConnect || !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Fatalf("error %v (%#v), want a connect step error wrapping EADDRNOTAVAIL", err, se)
	}
	if !strings.HasPrefix(err.Error(), "repair: restore: connect "+d.Remote.String()+": connect: ") {
		t.Errorf("error text %q does not name the step", err)
	}
	if !slices.Equal(steps, restoreSteps[:3]) {
		t.Errorf("failed restore reported steps %v, want %v", steps, restoreSteps[:3])
	}
	if n := sockets(t, tp.b, serverAP, clientAP); n != 1 {
		t.Errorf("%d sockets for the connection on the target, want the one live socket", n)
	}
	if out := snmp(t, tp.b)["Tcp.OutSegs"]; out != outBefore {
		t.Errorf("the refused restore sent %d segments", out-outBefore)
	}
	finish(t, client, restored, cs, sc, 16<<10)
	tp.noResets(t, before, tp.a)
}

// The kernel refuses the window (rcv_wup past rcv_nxt) after both queues
// were refilled: the socket is torn down with nothing sent, and a restore
// of the good dump then carries the connection on.
func TestRestoreWindowRefused(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	cs, sc := &stream{dir: 1}, &stream{dir: 2}
	must(t, cs.write(client, 64<<10, 500*time.Millisecond))
	tp.dropFromServer(t) // the server's bytes stay in its send queue
	must(t, sc.write(server, 64<<10, 500*time.Millisecond))
	time.Sleep(50 * time.Millisecond)
	before := tp.counters(t)

	tp.freeze(t, tp.a)
	var dsteps []Step
	d, err := DumpConn(server, stepRecorder(&dsteps))
	must(t, err)
	if want := []Step{StepRepairOn, StepDumpQueues}; !slices.Equal(dsteps, want) {
		t.Errorf("dump steps %v, want %v", dsteps, want)
	}
	var csteps []Step
	must(t, CloseSilently(server, stepRecorder(&csteps)))
	if want := []Step{StepClose}; !slices.Equal(csteps, want) {
		t.Errorf("close steps %v, want %v", csteps, want)
	}
	if len(d.RecvQueue) == 0 || len(d.SendQueue) == 0 {
		t.Fatalf("want both queues non-empty so the refusal comes after a refill: %v", d)
	}
	tp.routeTo(t, tp.b)
	clientAP := client.LocalAddr().(*net.TCPAddr).AddrPort()
	outBefore := snmp(t, tp.b)["Tcp.OutSegs"]

	bad := *d
	bad.Window.RcvWup = d.RecvSeq + 1000
	var c *net.TCPConn
	inNS(t, tp.b, func() { c, err = Restore(&bad, netip.AddrPort{}) })
	if err == nil {
		c.Close()
		t.Fatal("restore with rcv_wup past rcv_nxt succeeded")
	}
	const want = "repair: restore: TCP_REPAIR_WINDOW: setsockopt: invalid argument"
	var se *StepError
	if err.Error() != want || !errors.As(err, &se) || se.Step != StepWindow || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("error %q, want %q at step %s", err, want, StepWindow)
	}
	if n := sockets(t, tp.b, serverAP, clientAP); n != 0 {
		t.Errorf("refused restore left %d sockets", n)
	}
	if out := snmp(t, tp.b)["Tcp.OutSegs"]; out != outBefore {
		t.Errorf("the refused restore sent %d segments", out-outBefore)
	}

	inNS(t, tp.b, func() { c, err = Restore(d, netip.AddrPort{}) })
	must(t, err)
	finish(t, client, c, cs, sc, 16<<10)
	tp.noResets(t, before, tp.a, tp.b)
}

// Bind to an address the host does not hold fails at the bind, with
// nothing left; with WithFreeBind the same restore goes through.
func TestRestoreBindNeedsFreeBind(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	tp.freeze(t, tp.a)
	d, err := DumpConn(server)
	must(t, err)
	must(t, CloseSilently(server))
	clientAP := client.LocalAddr().(*net.TCPAddr).AddrPort()

	// D routes to the client over a veth pair of its own (what is sent
	// there comes back to D, which does not forward it) and does not
	// hold the server address.
	dns := newNS(t, "rpd"+tag())
	run(t, "ip", "-n", dns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	run(t, "ip", "-n", dns, "link", "set", "d0", "up")
	run(t, "ip", "-n", dns, "link", "set", "d1", "up")
	run(t, "ip", "-n", dns, "route", "add", clientAddr+"/32", "dev", "d0")

	var c *net.TCPConn
	inNS(t, dns, func() { c, err = Restore(d, netip.AddrPort{}) })
	if err == nil {
		c.Close()
		t.Fatal("restore bound an address the namespace does not hold")
	}
	var se *StepError
	if !errors.As(err, &se) || se.Step != StepBind || !errors.Is(err, unix.EADDRNOTAVAIL) ||
		err.Error() != "repair: restore: bind "+serverAP.String()+": bind: cannot assign requested address" {
		t.Fatalf("error %v, want a bind step error wrapping EADDRNOTAVAIL", err)
	}
	if n := sockets(t, dns, serverAP, clientAP); n != 0 {
		t.Errorf("refused restore left %d sockets", n)
	}

	inNS(t, dns, func() { c, err = Restore(d, netip.AddrPort{}, WithFreeBind()) })
	must(t, err)
	if n := sockets(t, dns, serverAP, clientAP); n != 1 {
		t.Errorf("%d sockets after a free-bind restore, want 1", n)
	}
	must(t, CloseSilently(c))
	if n := sockets(t, dns, serverAP, clientAP); n != 0 {
		t.Errorf("%d sockets after the silent close, want 0", n)
	}
}

// A dump that is called off: Resume turns repair off and the original
// socket carries on.
func TestResume(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	cs, sc := &stream{dir: 1}, &stream{dir: 2}
	must(t, cs.write(client, 32<<10, 500*time.Millisecond))
	must(t, sc.write(server, 32<<10, 500*time.Millisecond))
	before := tp.counters(t)
	d, err := DumpConn(server)
	must(t, err)
	t.Logf("dump: %v", d)
	must(t, Resume(server))
	finish(t, client, server, cs, sc, 16<<10)
	tp.noResets(t, before)
}

// A socket whose peer has sent its FIN (CLOSE_WAIT) is refused with the
// state named, and is left running.
func TestDumpRefusesCloseWait(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	must(t, client.CloseWrite())
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := server.Read(make([]byte, 1)); err == nil {
		t.Fatal("server read data, want EOF")
	}
	_, err := DumpConn(server)
	if !errors.Is(err, ErrUnsupportedState) || !strings.Contains(err.Error(), "CLOSE_WAIT") {
		t.Fatalf("dump of a CLOSE_WAIT socket: %v", err)
	}
	sc := &stream{dir: 2}
	must(t, sc.write(server, 8<<10, 5*time.Second))
	must(t, sc.readTo(client, sc.wrote, 5*time.Second))
	server.Close()
}

// A Dump that fails validation is refused before any socket exists.
func TestRestoreInvalidCreatesNoSocket(t *testing.T) {
	good := sampleDump(100, 10)
	for name, mut := range map[string]func(d *Dump){
		"state":        func(d *Dump) { d.State = 8 },
		"unsent":       func(d *Dump) { d.Unsent = 101 },
		"wscale":       func(d *Dump) { d.SndWscale = 15 },
		"mss":          func(d *Dump) { d.MSS = 0 },
		"remote":       func(d *Dump) { d.Remote = netip.AddrPort{} },
		"family":       func(d *Dump) { d.Remote = netip.MustParseAddrPort("[2001:db8::1]:80") },
		"options":      func(d *Dump) { d.Options |= 0x80 },
		"timestamp":    func(d *Dump) { d.Options &^= OptTimestamps },
		"huge queue":   func(d *Dump) { d.RecvQueue = make([]byte, MaxQueueLen+1) },
		"local family": nil,
	} {
		t.Run(name, func(t *testing.T) {
			d := good
			local := netip.AddrPort{}
			if mut != nil {
				mut(&d)
			} else {
				local = netip.MustParseAddrPort("[2001:db8::2]:80")
			}
			n := openSockets(t)
			c, err := Restore(&d, local)
			if err == nil {
				c.Close()
				t.Fatal("restored an invalid dump")
			}
			if !errors.Is(err, ErrBadDump) {
				t.Errorf("error %v is not ErrBadDump", err)
			}
			if m := openSockets(t); m != n {
				t.Errorf("sockets open: %d before, %d after", n, m)
			}
		})
	}
}

// openSockets counts this process's socket descriptors.
func openSockets(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// A socket in repair mode still takes the peer's segments. When some land
// while the dump reads the receive queue (between its size and its
// bytes), the dump reads the socket again: it succeeds, holds every byte
// the socket had then, and the connection goes on intact.
func TestDumpRereadsAQueueThatGrew(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	cs, sc := &stream{dir: 1}, &stream{dir: 2}
	must(t, cs.write(client, 4<<10, 500*time.Millisecond))
	waitInQueue(t, server, 4<<10)
	grew := false
	beforePeek = func(queue int) {
		if queue != tcpRecvQueue || grew {
			return
		}
		grew = true
		must(t, cs.write(client, 1000, 500*time.Millisecond))
		waitInQueue(t, server, 4<<10+1000)
	}
	defer func() { beforePeek = nil }()
	d, err := DumpConn(server)
	if !grew {
		t.Fatal("the test's hook never ran")
	}
	if err != nil {
		t.Fatalf("dump with bytes arriving during it: %v", err)
	}
	if len(d.RecvQueue) != 4<<10+1000 {
		t.Errorf("the dump's receive queue holds %d bytes, want %d", len(d.RecvQueue), 4<<10+1000)
	}
	must(t, Resume(server))
	finish(t, client, server, cs, sc, 8<<10)
}

// waitInQueue waits until c's receive queue holds n bytes (SIOCINQ).
func waitInQueue(t *testing.T, c *net.TCPConn, n int) {
	t.Helper()
	rc, err := c.SyscallConn()
	must(t, err)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		var inq int
		var ierr error
		must(t, rc.Control(func(fd uintptr) { inq, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }))
		must(t, ierr)
		if inq >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receive queue holds %d bytes after 2s, want %d", inq, n)
		}
	}
}

// A socket whose receive queue holds an urgent byte (MSG_OOB) the
// application has not read past is refused: the kernel's queue size and
// the peek stop at the urgent mark while rcv_nxt is past it, and a restore
// would lose the bytes after it. The refused socket carries on untouched
// (urgent byte, the bytes around it, SO_OOBINLINE still off), and once the
// application has read past the mark it dumps again.
func TestDumpRefusesUrgentDataNotReadPast(t *testing.T) {
	for _, oobRead := range []bool{false, true} {
		name := "urgent byte unread"
		if oobRead {
			name = "urgent byte read with MSG_OOB"
		}
		t.Run(name, func(t *testing.T) {
			tp := newTopo(t)
			client, server := tp.connect(t, tp.a, 0)
			cs, sc := &stream{dir: 1}, &stream{dir: 2}
			must(t, cs.write(client, 1000, 500*time.Millisecond))
			sendOOB(t, client, '!')
			must(t, cs.write(client, 500, 500*time.Millisecond))
			waitReceived(t, server, 1501)
			if oobRead {
				if b := recvOOB(t, server); b != '!' {
					t.Fatalf("urgent byte %q, want '!'", b)
				}
			}
			before := tp.counters(t)
			d, err := DumpConn(server)
			if !errors.Is(err, ErrUnsupportedState) || !strings.Contains(err.Error(), "urgent") {
				t.Fatalf("dump with an urgent mark ahead: %v, %v; want ErrUnsupportedState naming the urgent data", d, err)
			}
			t.Logf("refused: %v", err)
			if v := sockoptInt(t, server, unix.SOL_SOCKET, unix.SO_OOBINLINE); v != 0 {
				t.Fatalf("SO_OOBINLINE is %d after the refused dump, want 0 as before", v)
			}
			if !oobRead {
				if b := recvOOB(t, server); b != '!' {
					t.Fatalf("urgent byte %q after the refused dump, want '!'", b)
				}
			}
			// The urgent byte is out of band: the stream reads on without it.
			must(t, cs.readTo(server, cs.wrote, 5*time.Second))
			d, err = DumpConn(server)
			if err != nil {
				t.Fatalf("dump once read past the urgent mark: %v", err)
			}
			if len(d.RecvQueue) != 0 {
				t.Errorf("the dump's receive queue holds %d bytes, want 0", len(d.RecvQueue))
			}
			must(t, Resume(server))
			finish(t, client, server, cs, sc, 16<<10)
			tp.noResets(t, before)
		})
	}
}

// A peer's FIN that lands during a dump, after the queue sizes and before
// the receive queue's TCP_QUEUE_SEQ (the kernel keeps processing input in
// repair mode), would be counted in RecvSeq and never reach the restored
// socket's application. The dump is refused, naming the state, and the
// socket carries on: its application reads every byte, then EOF.
func TestDumpRefusesAFinThatLandsDuringIt(t *testing.T) {
	tp := newTopo(t)
	client, server := tp.connect(t, tp.a, 0)
	cs, sc := &stream{dir: 1}, &stream{dir: 2}
	must(t, cs.write(client, 4<<10, 500*time.Millisecond))
	waitInQueue(t, server, 4<<10)
	fired := false
	beforeQueueSeq = func(fd, queue int) {
		if queue != tcpRecvQueue || fired {
			return
		}
		fired = true
		must(t, client.CloseWrite())
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
			if h, err := getTCPInfoHead(fd); err == nil && State(h.state) != StateEstablished {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the client's FIN never reached the socket")
			}
		}
	}
	defer func() { beforeQueueSeq = nil }()
	d, err := DumpConn(server)
	if !fired {
		t.Fatal("the test's hook never ran")
	}
	if !errors.Is(err, ErrUnsupportedState) || !strings.Contains(err.Error(), "CLOSE_WAIT") {
		t.Fatalf("dump with a FIN landing during it: %v, %v; want ErrUnsupportedState naming CLOSE_WAIT", d, err)
	}
	t.Logf("refused: %v", err)
	must(t, cs.readTo(server, cs.wrote, 5*time.Second))
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the client's FIN: read %d, %v; want EOF", n, err)
	}
	must(t, sc.write(server, 8<<10, 5*time.Second))
	must(t, sc.readTo(client, sc.wrote, 5*time.Second))
	server.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the server's close: read %d, %v; want EOF", n, err)
	}
}

// sendOOB sends b as urgent data (MSG_OOB).
func sendOOB(t *testing.T, c *net.TCPConn, b byte) {
	t.Helper()
	rc, err := c.SyscallConn()
	must(t, err)
	var serr error
	must(t, rc.Control(func(fd uintptr) { serr = unix.Sendto(int(fd), []byte{b}, unix.MSG_OOB, nil) }))
	must(t, serr)
}

// recvOOB reads the urgent byte (MSG_OOB).
func recvOOB(t *testing.T, c *net.TCPConn) byte {
	t.Helper()
	rc, err := c.SyscallConn()
	must(t, err)
	buf := make([]byte, 1)
	var n int
	var rerr error
	must(t, rc.Control(func(fd uintptr) { n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_OOB) }))
	if rerr != nil || n != 1 {
		t.Fatalf("recv MSG_OOB: %d bytes, %v", n, rerr)
	}
	return buf[0]
}

// waitReceived waits until c has received n bytes (tcpi_bytes_received).
func waitReceived(t *testing.T, c *net.TCPConn, n uint64) {
	t.Helper()
	rc, err := c.SyscallConn()
	must(t, err)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		var info *unix.TCPInfo
		var ierr error
		must(t, rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO) }))
		must(t, ierr)
		if info.Bytes_received >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes received after 2s, want %d", info.Bytes_received, n)
		}
	}
}

// sockoptInt reads an integer socket option of c.
func sockoptInt(t *testing.T, c *net.TCPConn, level, opt int) int {
	t.Helper()
	rc, err := c.SyscallConn()
	must(t, err)
	var v int
	var gerr error
	must(t, rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), level, opt) }))
	must(t, gerr)
	return v
}
