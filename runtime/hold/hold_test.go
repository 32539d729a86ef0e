package hold

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/internal/netnstest"
	"github.com/capygen/capygen/runtime/repair"
	"golang.org/x/sys/unix"
)

// A Linux client in namespace c talks to 10.79.0.2:80 in namespace s. The
// server's socket is dumped and closed silently, so s has no socket for
// the connection; the client then writes. Held in an NFQUEUE, its segment
// waits for the restore and goes on at once; dropped instead (the other
// way to keep s from answering RST), it waits for the client's
// retransmission timeout.
const (
	holdClient = "10.79.0.1"
	holdServer = "10.79.0.2"
	holdQueue  = 7
)

type holdBed struct{ c, s string }

func newHoldBed(t *testing.T) *holdBed {
	netnstest.NeedRoot(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (the NFQUEUE target; this kernel has no nft queue statement)")
	}
	tag := netnstest.Tag()
	b := &holdBed{c: "hqc" + tag, s: "hqs" + tag}
	netnstest.NewNS(t, b.c)
	netnstest.NewNS(t, b.s)
	netnstest.VethPair(t, b.c, "hqc"+tag, b.s, "hqs"+tag)
	netnstest.Run(t, "ip", "-n", b.c, "addr", "add", holdClient+"/24", "dev", "hqc"+tag)
	netnstest.Run(t, "ip", "-n", b.s, "addr", "add", holdServer+"/24", "dev", "hqs"+tag)
	return b
}

func (b *holdBed) connect(t *testing.T, port string) (client, server *net.TCPConn) {
	var ln net.Listener
	netnstest.InNS(t, b.s, func() {
		var err error
		if ln, err = net.Listen("tcp4", holdServer+":"+port); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	netnstest.InNS(t, b.c, func() {
		c, err := net.DialTimeout("tcp4", holdServer+":"+port, 5*time.Second)
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

// gap moves the server's socket out (dump, silent close), has the client
// write while s has no socket, then restores it; what happens to the
// client's segment meanwhile is hold's. It returns how long the restored
// socket waited for the bytes after the restore.
func (b *holdBed) gap(t *testing.T, port string, rule []string, release func() error) time.Duration {
	client, server := b.connect(t, port)
	d, err := repair.DumpConn(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := repair.CloseSilently(server); err != nil {
		t.Fatal(err)
	}
	netnstest.Run(t, append([]string{"ip", "netns", "exec", b.s, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", port}, rule...)...)
	rsts := netnstest.TCPCounter(t, b.s, "OutRsts")
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // the segment reaches s and is held or dropped
	var restored *net.TCPConn
	netnstest.InNS(t, b.s, func() { restored, err = repair.Restore(d, d.Local) })
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	start := time.Now()
	if err := release(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	restored.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(restored, got); err != nil || !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("restored socket read %q, %v; want hello", got, err)
	}
	waited := time.Since(start)
	if n := netnstest.TCPCounter(t, b.s, "OutRsts") - rsts; n != 0 {
		t.Errorf("s sent %d RSTs while it had no socket", n)
	}
	return waited
}

// TestHoldBeatsDrop: a held segment reaches the restored socket within
// milliseconds; a dropped one only after the client's retransmission
// timeout (200 ms at least on Linux).
func TestHoldBeatsDrop(t *testing.T) {
	b := newHoldBed(t)
	var q *Queue
	netnstest.InNS(t, b.s, func() {
		var err error
		if q, err = Open(holdQueue, 64); err != nil {
			t.Fatal(err)
		}
	})
	defer q.Close()
	held := b.gap(t, "80", []string{"-j", "NFQUEUE", "--queue-num", "7"}, func() error {
		if !q.Wait(1, 2*time.Second) {
			t.Fatal("nothing reached the queue")
		}
		n, err := q.Release()
		if n < 1 {
			t.Errorf("released %d packets, want the client's segment", n)
		}
		return err
	})
	netnstest.Run(t, "ip", "netns", "exec", b.s, "iptables", "-F", "INPUT")

	dropped := b.gap(t, "81", []string{"-j", "DROP"}, func() error {
		netnstest.Run(t, "ip", "netns", "exec", b.s, "iptables", "-F", "INPUT")
		return nil
	})
	t.Logf("after the restore the bytes arrived in %v held (NFQUEUE), %v dropped (client retransmission)", held, dropped)
	if held >= dropped || held > 100*time.Millisecond {
		t.Errorf("held %v, dropped %v: holding must deliver at once", held, dropped)
	}
}

// TestOverflowDrops: beyond max held packets, the rest are dropped and
// counted.
func TestOverflowDrops(t *testing.T) {
	b := newHoldBed(t)
	var q *Queue
	netnstest.InNS(t, b.s, func() {
		var err error
		if q, err = Open(holdQueue, 1); err != nil {
			t.Fatal(err)
		}
	})
	defer q.Close()
	netnstest.Run(t, "ip", "netns", "exec", b.s, "iptables", "-A", "INPUT", "-p", "icmp", "-j", "NFQUEUE", "--queue-num", "7")
	exec.Command("ip", "netns", "exec", b.c, "ping", "-c", "3", "-i", "0.2", "-W", "1", holdServer).Run()
	if held, over := q.Held(); held != 1 || over < 1 {
		t.Errorf("held %d, overflow %d; want 1 held and the rest dropped", held, over)
	}
	if n, err := q.Drop(); n != 1 || err != nil {
		t.Errorf("Drop = %d, %v", n, err)
	}
}

// FuzzPacketID: the attribute walker never panics or reads past its
// input, and finds the id of a well-formed NFQA_PACKET_HDR.
func FuzzPacketID(f *testing.F) {
	good := append(attr(5, []byte{1, 2, 3}), attr(attrPacketHdr, []byte{0, 0, 0x12, 0x34, 8, 0, 1})...)
	if id, ok := packetID(good); !ok || id != 0x1234 {
		f.Fatalf("packetID = %#x, %v; want 0x1234", id, ok)
	}
	f.Add(good)
	f.Add([]byte{3, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		packetID(b)
	})
}

func FuzzParseFlow(f *testing.F) {
	// 10.0.0.1:40000 -> 10.0.0.2:80, no IP options, then with 4 bytes of
	// options.
	seg := []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0, 80}
	fl, ok := parseFlow(seg)
	if want := (Flow{netip.MustParseAddrPort("10.0.0.1:40000"), netip.MustParseAddrPort("10.0.0.2:80")}); !ok || fl != want {
		f.Fatalf("parseFlow = %v, %v; want %v", fl, ok, want)
	}
	opt := append(append([]byte{0x46}, seg[1:20]...), 1, 1, 1, 0)
	opt = append(opt, seg[20:]...)
	if fl2, ok := parseFlow(opt); !ok || fl2 != fl {
		f.Fatalf("with options parseFlow = %v, %v; want %v", fl2, ok, fl)
	}
	if _, ok := parseFlow(opt[:25]); ok {
		f.Fatal("a segment cut inside its ports parsed")
	}
	f.Add(seg)
	f.Add(opt)
	f.Fuzz(func(t *testing.T, b []byte) {
		if fl, ok := parseFlow(b); ok && (!fl.Src.Addr().Is4() || !fl.Dst.Addr().Is4()) {
			t.Fatalf("parsed %v from %x", fl, b)
		}
	})
}

// userDropped is nfnetlink_queue's count of queue num's packets the
// kernel could not hand to its netlink socket (a full receive buffer), in
// namespace ns.
func userDropped(t *testing.T, ns string, num int) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/netfilter/nfnetlink_queue").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && f[0] == strconv.Itoa(num) {
			n, _ := strconv.Atoi(f[6])
			return n
		}
	}
	t.Fatalf("queue %d not in nfnetlink_queue:\n%s", num, out)
	return 0
}

// TestBurstIsHeldWhole: a burst of packets reaches the queue faster than
// its reader takes them; the netlink socket's buffer must hold them all,
// since each one it loses is a client segment dropped (the client's
// retransmission timeout) instead of held.
func TestBurstIsHeldWhole(t *testing.T) {
	b := newHoldBed(t)
	const burst = 2000
	var q *Queue
	netnstest.InNS(t, b.s, func() {
		var err error
		if q, err = Open(holdQueue, burst); err != nil {
			t.Fatal(err)
		}
	})
	defer q.Close()
	netnstest.Run(t, "ip", "netns", "exec", b.s, "iptables", "-A", "INPUT", "-p", "udp", "--dport", "9", "-j", "NFQUEUE", "--queue-num", strconv.Itoa(holdQueue))
	// The reader is busy (as on a loaded server): it cannot take a packet
	// until the burst is in.
	q.mu.Lock()
	netnstest.InNS(t, b.c, func() {
		defer q.mu.Unlock()
		c, err := net.Dial("udp4", holdServer+":9")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := make([]byte, 1400)
		for range burst {
			c.Write(msg) //nolint:errcheck // counted at the queue
		}
		time.Sleep(50 * time.Millisecond) // the last ones reach the queue
	})
	deadline := time.Now().Add(5 * time.Second)
	held, over := q.Held()
	for ; held+over < burst && time.Now().Before(deadline); held, over = q.Held() {
		time.Sleep(20 * time.Millisecond)
	}
	lost := userDropped(t, b.s, holdQueue)
	t.Logf("burst of %d: held %d, over the bound %d, lost before the reader %d", burst, held, over, lost)
	if lost != 0 || held != burst {
		t.Errorf("held %d of a burst of %d; %d never reached the queue's reader (its netlink socket's buffer was full)", held, burst, lost)
	}
	q.Drop() //nolint:errcheck
}

// A packet that the kernel queues between a config request and its ack is
// dispatched, and the ack is still recognized: a flow-mode verdict for
// the packet moved q.seq on, and request waited for an ack of the wrong
// sequence number until it gave up (OpenFlows then failed).
func TestRequestTakesAPacketBeforeItsAck(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no socketpair: %v", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	tv := unix.Timeval{Usec: 200000}
	unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv) //nolint:errcheck // a bound on a broken test
	q := &Queue{num: 1, fd: fds[0], max: 4, done: make(chan struct{}), flows: map[Flow]*flowHeld{},
		decide: func(Flow) Verdict { return Accept }}
	kernel := func() { // the other end: a packet message, then the ack
		buf := make([]byte, 4096)
		n, err := unix.Read(fds[1], buf)
		if err != nil || n < 16 {
			return
		}
		reqSeq := binary.NativeEndian.Uint32(buf[8:12])
		seg := []byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x9c, 0x40, 0, 80}
		attrs := append(attr(attrPacketHdr, []byte{0, 0, 0, 7, 8, 0, 1}), attr(attrPayload, seg)...)
		pkt := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+4+len(attrs)))
		pkt = binary.NativeEndian.AppendUint16(pkt, unix.NFNL_SUBSYS_QUEUE<<8|msgPacket)
		pkt = binary.NativeEndian.AppendUint16(pkt, 0)
		pkt = binary.NativeEndian.AppendUint32(pkt, 0)
		pkt = binary.NativeEndian.AppendUint32(pkt, 0)
		pkt = append(pkt, unix.AF_INET, unix.NFNETLINK_V0, 0, 1)
		pkt = append(pkt, attrs...)
		unix.Write(fds[1], pkt) //nolint:errcheck // the test fails below
		unix.Read(fds[1], buf)  //nolint:errcheck // the packet's verdict
		ack := binary.NativeEndian.AppendUint32(nil, uint32(unix.NLMSG_HDRLEN+4+16))
		ack = binary.NativeEndian.AppendUint16(ack, unix.NLMSG_ERROR)
		ack = binary.NativeEndian.AppendUint16(ack, 0)
		ack = binary.NativeEndian.AppendUint32(ack, reqSeq)
		ack = binary.NativeEndian.AppendUint32(ack, 0)
		ack = binary.NativeEndian.AppendUint32(ack, 0) // error 0
		ack = append(ack, make([]byte, 16)...)
		unix.Write(fds[1], ack) //nolint:errcheck // the test fails below
	}
	go kernel()
	if err := q.request(msgConfig, unix.AF_UNSPEC, attr(attrCfgCmd, []byte{cmdBind, 0, 0, 0})); err != nil {
		t.Fatalf("request = %v, want its ack found after the packet", err)
	}
	if st := q.FlowStats(); st.Accepted != 1 {
		t.Errorf("flow stats %+v, want the packet accepted", st)
	}
}
