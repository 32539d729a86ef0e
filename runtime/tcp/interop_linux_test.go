//go:build linux

package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	stdnet "net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The interop test runs Linux's TCP against a Conn. The kernel side lives
// in an anonymous network namespace created by unshare on a locked thread:
// it has no name, touches no other interface, and disappears when that
// thread exits. A TUN device carries IPv4 packets between the two.
var (
	kernelAddr = netip.MustParseAddr("10.77.0.1")
	ourAddr    = netip.MustParseAddr("10.77.0.2")
)

// kernelNS owns the namespace thread. Sockets must be created on it.
type kernelNS struct {
	tid  int // the namespace thread, whose /proc/.../net/netstat is the namespace's
	tun  *os.File
	ln   stdnet.Listener
	dial chan string
	conn chan stdnet.Conn
	errc chan error
	quit chan struct{}
}

func startKernelNS(t *testing.T) *kernelNS {
	t.Helper()
	k := &kernelNS{dial: make(chan string), conn: make(chan stdnet.Conn), errc: make(chan error, 1), quit: make(chan struct{})}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread, and its namespace, die with this goroutine
		if err := k.setup(); err != nil {
			ready <- err
			return
		}
		ready <- nil
		for {
			select {
			case addr := <-k.dial:
				c, err := stdnet.DialTimeout("tcp4", addr, 5*time.Second)
				if err != nil {
					k.errc <- err
					continue
				}
				k.conn <- c
			case <-k.quit:
				return
			}
		}
	}()
	if err := <-ready; err != nil {
		t.Skipf("cannot build the kernel side (%v); needs root, unshare and /dev/net/tun", err)
	}
	t.Cleanup(func() {
		close(k.quit)
		k.ln.Close()
		k.tun.Close()
	})
	return k
}

func (k *kernelNS) setup() error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	k.tid = unix.Gettid()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("open tun: %w", err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], "capytun0")
	binary.NativeEndian.PutUint16(req[unix.IFNAMSIZ:], unix.IFF_TUN|unix.IFF_NO_PI)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); e != 0 {
		unix.Close(fd)
		return fmt.Errorf("TUNSETIFF: %w", e)
	}
	k.tun = os.NewFile(uintptr(fd), "capytun0")
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", kernelAddr.String() + "/24", "dev", "capytun0"},
		{"link", "set", "capytun0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
	}
	ln, err := stdnet.Listen("tcp4", kernelAddr.String()+":0")
	if err != nil {
		return err
	}
	k.ln = ln
	return nil
}

// tcpExt reads a TcpExt counter of the kernel's namespace (nstat's
// names without the prefix: PAWSEstab, TCPSACKRecovery, ...).
func (k *kernelNS) tcpExt(t *testing.T, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/net/netstat", os.Getpid(), k.tid))
	if err != nil {
		t.Fatalf("kernel counters: %v", err)
	}
	lines := bytes.Split(b, []byte("\n"))
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := bytes.Fields(lines[i]), bytes.Fields(lines[i+1])
		if len(names) == 0 || string(names[0]) != "TcpExt:" {
			continue
		}
		for j, n := range names {
			if string(n) == name && j < len(values) {
				var v uint64
				fmt.Sscan(string(values[j]), &v)
				return v
			}
		}
	}
	t.Fatalf("no TcpExt counter %s in the kernel's netstat", name)
	return 0
}

// ipv4Checksum is the RFC 1071 checksum of an IPv4 header.
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// tunLink moves segments of one Conn over the TUN device.
type tunLink struct {
	t      *testing.T
	tun    *os.File
	start  time.Time
	out    []byte
	in     []byte
	ipID   uint16
	counts [2]int
	// loss drops this fraction of segments in each direction (seeded).
	loss float64
	rng  *rand.Rand
	// clock is added to the real clock: a migration moves it on, to
	// play a target host whose clock reads an hour more.
	clock Time
}

func (l *tunLink) lose() bool { return l.loss > 0 && l.rng.Float64() < l.loss }

func (l *tunLink) now() Time { return Time(time.Since(l.start)) + l.clock }

func (l *tunLink) send(s *Segment) {
	if l.lose() {
		return
	}
	l.out = l.out[:0]
	l.out = append(l.out, make([]byte, 20)...)
	l.out = AppendSegment(l.out, ourAddr, kernelAddr, s)
	h := l.out[:20]
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(len(l.out)))
	l.ipID++
	binary.BigEndian.PutUint16(h[4:], l.ipID)
	h[6] = 0x40 // DF
	h[8], h[9] = 64, protoTCP
	src, dst := ourAddr.As4(), kernelAddr.As4()
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	binary.BigEndian.PutUint16(h[10:], ipv4Checksum(h))
	if _, err := l.tun.Write(l.out); err != nil {
		l.t.Errorf("tun write: %v", err)
	}
	l.counts[0]++
}

// recv waits until d for one TCP segment addressed to us.
func (l *tunLink) recv(d time.Duration) (Segment, bool) {
	if l.in == nil {
		l.in = make([]byte, 65536)
	}
	l.tun.SetReadDeadline(time.Now().Add(d))
	n, err := l.tun.Read(l.in)
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			l.t.Errorf("tun read: %v", err)
		}
		return Segment{}, false
	}
	p := l.in[:n]
	if n < 20 || p[0]>>4 != 4 || p[9] != protoTCP {
		return Segment{}, false // IPv6 router solicitations and the like
	}
	ihl := int(p[0]&0xf) * 4
	total := int(binary.BigEndian.Uint16(p[2:]))
	src := netip.AddrFrom4([4]byte(p[12:16]))
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	if dst != ourAddr || total > n || ihl < 20 || ihl > total {
		return Segment{}, false
	}
	seg, err := ParseSegment(p[ihl:total], src, dst)
	if err != nil {
		l.t.Errorf("kernel segment does not parse: %v", err)
		return Segment{}, false
	}
	l.counts[1]++
	if l.lose() {
		return Segment{}, false
	}
	return seg, true
}

// drive runs c until done() holds or 20 s pass, reading and writing with
// app before every round.
func (l *tunLink) drive(c **Conn, accept func(*Segment) *Conn, app func(*Conn), done func() bool) {
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) && !done() {
		if *c != nil {
			app(*c)
			(*c).Output(l.now(), l.send)
		}
		wait := 5 * time.Millisecond
		if *c != nil {
			if d, ok := (*c).Deadline(); ok {
				wait = min(wait, max(d-l.now(), 50*time.Microsecond))
			}
		}
		seg, ok := l.recv(wait)
		if !ok {
			continue
		}
		if *c == nil {
			if seg.Flags&(FlagSYN|FlagACK) == FlagSYN {
				*c = accept(&seg)
			}
			continue
		}
		(*c).Input(l.now(), &seg)
	}
}

func TestInteropLinux(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace and a TUN device")
	}
	if testing.Short() {
		t.Skip("interop with the kernel is skipped in -short mode")
	}
	k := startKernelNS(t)
	cfg := Config{RecvBuffer: 512 << 10, SendBuffer: 512 << 10}

	weDial := func(t *testing.T, localPort uint16, loss float64, migrate bool) {
		up, down := payload(1<<20, 21), payload(768<<10, 22)
		kerr := make(chan error, 1)
		var kgot []byte
		go func() {
			c, err := k.ln.Accept()
			if err != nil {
				kerr <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(down)
				if err == nil {
					err = c.(*stdnet.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			kgot, err = io.ReadAll(c)
			if err == nil {
				err = <-werr
			}
			kerr <- err
		}()
		l := &tunLink{t: t, tun: k.tun, start: time.Now(), loss: loss, rng: rand.New(rand.NewPCG(7, 7)), clock: 0}
		port := uint16(k.ln.Addr().(*stdnet.TCPAddr).Port)
		paws := k.tcpExt(t, "PAWSEstab")
		id := ID{Local: netip.AddrPortFrom(ourAddr, localPort), Remote: netip.AddrPortFrom(kernelAddr, port)}
		c := Dial(cfg, id, NewISS([16]byte{1}, id, l.now()), l.now())
		p := &pump{data: up, done: true}
		moved := false
		app := func(cur *Conn) {
			// Move our end mid-transfer, as Capybara does: the kernel peer
			// must not notice.
			// Prefer a moment with our data in flight; if the kernel
			// drained everything early, move anyway a little later.
			inFlight := cur.sndUna != cur.sndMax
			if migrate && !moved && (p.got.Len() > 300<<10 && inFlight || p.got.Len() > 500<<10) {
				moved = true
				snap := cur.AppendSnapshot(nil, l.now())
				l.clock = time.Hour // the target's clock is an hour ahead of the origin's
				r, err := Restore(cur.Config(), snap, l.now())
				if err != nil {
					t.Fatalf("Restore mid-transfer: %v", err)
				}
				c, cur = r, r
			}
			p.c = cur
			p.work()
		}
		l.drive(&c, nil, app, func() bool { return p.eof && (c.Done() || c.State() == StateTimeWait) || c.Err() != nil })
		if c.Err() != nil || !p.eof {
			t.Fatalf("our side: %v err %v eof %v, got %d/%d; stats %+v", c.State(), c.Err(), p.eof, p.got.Len(), len(down), c.Stats())
		}
		if err := <-kerr; err != nil {
			t.Fatalf("kernel side: %v", err)
		}
		if migrate && !moved {
			t.Fatalf("the transfer finished before the migration point")
		}
		if !c.sackOK || !c.tsOK {
			t.Fatalf("SACK %v timestamps %v with Linux, want both negotiated", c.sackOK, c.tsOK)
		}
		// The kernel drops segments whose timestamp went back (PAWS): a
		// move must carry our timestamp clock on.
		if n := k.tcpExt(t, "PAWSEstab") - paws; n != 0 {
			t.Fatalf("Linux dropped %d of our segments as PAWS old duplicates", n)
		}
		if !bytes.Equal(kgot, up) || !bytes.Equal(p.got.Bytes(), down) {
			t.Fatalf("data differs: kernel got %d/%d, we got %d/%d", len(kgot), len(up), p.got.Len(), len(down))
		}
		t.Logf("%d segments out, %d in; ends in %v; stats %+v", l.counts[0], l.counts[1], c.State(), c.Stats())
	}
	t.Run("we dial the kernel", func(t *testing.T) { weDial(t, 40001, 0, false) })
	t.Run("we dial the kernel, 3% loss both ways", func(t *testing.T) { weDial(t, 40002, 0.03, false) })
	t.Run("migrate our end mid-transfer", func(t *testing.T) { weDial(t, 40003, 0, true) })
	t.Run("migrate our end mid-transfer, 3% loss", func(t *testing.T) { weDial(t, 40004, 0.03, true) })

	t.Run("the kernel dials us", func(t *testing.T) {
		up := payload(512<<10, 23)
		k.dial <- netip.AddrPortFrom(ourAddr, 8080).String()
		kerr := make(chan error, 1)
		var kgot []byte
		go func() {
			var c stdnet.Conn
			select {
			case c = <-k.conn:
			case err := <-k.errc:
				kerr <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(up); err != nil {
				kerr <- err
				return
			}
			c.(*stdnet.TCPConn).CloseWrite()
			var err error
			kgot, err = io.ReadAll(c)
			kerr <- err
		}()
		l := &tunLink{t: t, tun: k.tun, start: time.Now()}
		var c *Conn
		accept := func(syn *Segment) *Conn {
			id := ID{Local: netip.AddrPortFrom(ourAddr, syn.DstPort), Remote: netip.AddrPortFrom(kernelAddr, syn.SrcPort)}
			conn, err := Accept(cfg, id, syn, NewISS([16]byte{2}, id, l.now()), l.now())
			if err != nil {
				t.Fatalf("Accept(kernel SYN mss %d ws %d sack %v): %v", syn.MSS, syn.WindowScale, syn.SACKPermitted, err)
			}
			if syn.MSS == 0 || syn.WindowScale < 0 {
				t.Errorf("kernel SYN without MSS or window scale: %v", syn.String())
			}
			return conn
		}
		// Echo: read everything, then send it back and close.
		var got []byte
		buf := make([]byte, 64<<10)
		sent := 0
		app := func(c *Conn) {
			for {
				n, err := c.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF && sent < len(got) {
					w, _ := c.Write(got[sent:])
					sent += w
					if sent == len(got) {
						c.Close()
					}
				}
				if n == 0 || err != nil {
					return
				}
			}
		}
		l.drive(&c, accept, app, func() bool { return c != nil && (c.Done() || c.Err() != nil) })
		if c == nil || c.Err() != nil || !c.Done() {
			t.Fatalf("our side did not close cleanly: %v", c)
		}
		if err := <-kerr; err != nil {
			t.Fatalf("kernel side: %v", err)
		}
		if !bytes.Equal(got, up) || !bytes.Equal(kgot, up) {
			t.Fatalf("echo differs: we got %d/%d, kernel got back %d", len(got), len(up), len(kgot))
		}
		t.Logf("%d segments out, %d in; stats %+v", l.counts[0], l.counts[1], c.Stats())
	})
}
