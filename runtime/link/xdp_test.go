package link

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

const testEtherType = 0x88b5

func openXDP(tb testing.TB, ns, ifname string, opts XDPOptions) *XDP {
	tb.Helper()
	var x *XDP
	var err error
	inNS(tb, ns, func() { x, err = OpenXDP(ifname, opts) })
	if err != nil {
		tb.Fatalf("OpenXDP(%s in %s, mode %q) = %v", ifname, ns, opts.Mode, err)
	}
	tb.Cleanup(func() { x.Close() })
	return x
}

func macOf(tb testing.TB, ns, ifname string) net.HardwareAddr {
	tb.Helper()
	var mac net.HardwareAddr
	inNS(tb, ns, func() {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			tb.Fatal(err)
		}
		mac = ifi.HardwareAddr
	})
	return mac
}

// seqFrame is a test frame carrying a 32-bit sequence number, padded to n.
func seqFrame(dst, src net.HardwareAddr, seq uint32, n int) []byte {
	f := make([]byte, max(n, 60))
	copy(f, dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], testEtherType)
	binary.BigEndian.PutUint32(f[14:], seq)
	for i := 18; i < len(f); i++ {
		f[i] = byte(seq) ^ byte(i)
	}
	return f
}

func isSeq(f []byte, seq uint32) bool {
	return len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == testEtherType && binary.BigEndian.Uint32(f[14:]) == seq
}

// receiveOne waits up to 1s for a frame that match accepts and returns a
// copy.
func receiveOne(tb testing.TB, x *XDP, match func([]byte) bool) []byte {
	tb.Helper()
	var got []byte
	deadline := time.Now().Add(time.Second)
	for got == nil && time.Now().Before(deadline) {
		if _, err := x.Receive(100*time.Millisecond, func(f []byte) {
			if got == nil && match(f) {
				got = append([]byte(nil), f...)
			}
		}); err != nil {
			tb.Fatalf("Receive: %v", err)
		}
	}
	return got
}

// Frames go both ways between AF_XDP and an AF_PACKET socket, three times
// as many as the UMEM holds, so a frame that failed to return to the fill
// ring or the transmit free list would stall the exchange.
func TestXDPRawFrames(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		mode  string
		yield bool
	}{{ModeNative, false}, {ModeGeneric, false}, {ModeNative, true}} {
		mode := tc.mode
		name := mode
		if tc.yield {
			name += "-spin-yield"
		}
		t.Run(name, func(t *testing.T) {
			ns := newNS(t, "capy-"+tag()+"-l")
			vethPair(t, ns, "xa", ns, "xb", true)
			const frames = 32
			x := openXDP(t, ns, "xa", XDPOptions{Mode: mode, Frames: frames, SpinYield: tc.yield})
			if x.Mode() != mode {
				t.Fatalf("Mode() = %q, want %q", x.Mode(), mode)
			}
			if x.Interface() != "xa" || x.MTU() != 1500 || !bytes.Equal(x.MAC(), macOf(t, ns, "xa")) {
				t.Fatalf("endpoint = %s mtu %d mac %v, want xa's", x.Interface(), x.MTU(), x.MAC())
			}
			p := openPacket(t, ns, "xb")
			peer := macOf(t, ns, "xb")

			const rounds = 3 * frames
			for i := range uint32(rounds) {
				size := 60 + int(i*37)%1454
				out := seqFrame(x.MAC(), peer, i, size)
				p.send(t, out)
				in := receiveOne(t, x, func(f []byte) bool { return isSeq(f, i) })
				if !bytes.Equal(in, out) {
					t.Fatalf("round %d: AF_XDP got %x, want %x", i, in, out)
				}
				back := seqFrame(peer, x.MAC(), i|1<<31, size)
				if err := x.Send(back); err != nil {
					t.Fatalf("round %d: Send = %v", i, err)
				}
				if got := p.recv(func(f []byte) bool { return isSeq(f, i|1<<31) }); !bytes.Equal(got, back) {
					t.Fatalf("round %d: peer got %x, want %x", i, got, back)
				}
			}
			s := x.Stats()
			if s.TxFrames != rounds || s.TxDropped != 0 || s.RxFrames < rounds {
				t.Errorf("Stats() = %+v, want %d sent, none dropped, >= %d received", s, rounds, rounds)
			}
		})
	}
}

// Bursts larger than the UMEM: transmit must wait for completions rather
// than fail or leak, and receive must count what the kernel dropped.
func TestXDPBursts(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	const frames = 32
	x := openXDP(t, ns, "xa", XDPOptions{Frames: frames})
	p := openPacket(t, ns, "xb")
	peer := macOf(t, ns, "xb")

	const burst = 5 * frames
	for i := range uint32(burst) {
		if err := x.Send(seqFrame(peer, x.MAC(), i, 128)); err != nil {
			t.Fatalf("Send(%d) = %v", i, err)
		}
	}
	for i := range uint32(burst) {
		if p.recv(func(f []byte) bool { return isSeq(f, i) }) == nil {
			t.Fatalf("peer never got burst frame %d of %d (stats %+v)", i, burst, x.Stats())
		}
	}

	var wg sync.WaitGroup
	var got []uint32
	wg.Add(1)
	go func() {
		defer wg.Done()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) && len(got) < burst {
			n, _ := x.Receive(50*time.Millisecond, func(f []byte) {
				if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == testEtherType {
					got = append(got, binary.BigEndian.Uint32(f[14:]))
				}
			})
			if n == 0 && len(got) > 0 {
				return // the burst is over; the rest was dropped
			}
		}
	}()
	for i := range uint32(burst) {
		p.send(t, seqFrame(x.MAC(), peer, 1000+i, 128))
	}
	wg.Wait()
	s := x.Stats()
	if len(got) == 0 || uint64(len(got))+s.RxDropped > burst {
		t.Fatalf("received %d, kernel dropped %d of a %d-frame burst", len(got), s.RxDropped, burst)
	}
	if !slices.IsSorted(got) {
		t.Errorf("burst arrived out of order: %v", got)
	}
	// Whatever was dropped, the frames are back in the fill ring: one
	// more exchange still works.
	p.send(t, seqFrame(x.MAC(), peer, 99999, 64))
	if receiveOne(t, x, func(f []byte) bool { return isSeq(f, 99999) }) == nil {
		t.Fatal("no frame received after the burst: receive frames leaked")
	}
}

// A wait shorter than the time it takes to reach ppoll used to hand the
// kernel a negative timeout (EINVAL), which stopped the stack's event loop
// when its next timer was a few microseconds away.
func TestXDPWaitTinyTimeout(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	x := openXDP(t, ns, "xa", XDPOptions{Frames: 32})
	for _, d := range []time.Duration{time.Nanosecond, 100 * time.Nanosecond, time.Microsecond} {
		for range 50 {
			if err := x.wait(d); err != nil {
				t.Fatalf("wait(%v) = %v", d, err)
			}
		}
		if _, err := x.Receive(x.opts.Spin+d, func([]byte) {}); err != nil {
			t.Fatalf("Receive(Spin+%v) = %v", d, err)
		}
	}
}

// Queued frames leave only on Flush, and one Flush sends a burst larger
// than the kernel's 32-frame batch per sendto, in order.
func TestXDPQueueFlush(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	const frames = 256 // 128 transmit frames
	x := openXDP(t, ns, "xa", XDPOptions{Frames: frames})
	p := openPacket(t, ns, "xb")
	peer := macOf(t, ns, "xb")

	if err := x.Queue(seqFrame(peer, x.MAC(), 7, 128)); err != nil {
		t.Fatalf("Queue = %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	buf := make([]byte, 2048)
	for range 100 {
		n, _, err := unix.Recvfrom(p.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			break // nothing (more) arrived
		}
		if isSeq(buf[:n], 7) {
			t.Fatal("a queued frame left before Flush")
		}
	}
	const burst = 100
	for i := range uint32(burst) {
		if err := x.Queue(seqFrame(peer, x.MAC(), 100+i, 128)); err != nil {
			t.Fatalf("Queue(%d) = %v", i, err)
		}
	}
	if err := x.Flush(); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	if p.recv(func(f []byte) bool { return isSeq(f, 7) }) == nil {
		t.Fatal("peer never got the first queued frame")
	}
	for i := range uint32(burst) {
		if p.recv(func(f []byte) bool { return isSeq(f, 100+i) }) == nil {
			t.Fatalf("peer never got burst frame %d of %d after one Flush (stats %+v)", i, burst, x.Stats())
		}
	}
	x.Close()
	if err := x.Queue(make([]byte, 60)); !errors.Is(err, ErrClosed) {
		t.Errorf("Queue after Close = %v, want ErrClosed", err)
	}
	if err := x.Flush(); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
}

// The kernel on the peer answers ARP and ICMP echo sent through AF_XDP,
// which checks our frames are well-formed on the wire.
func TestXDPKernelPeer(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	run(t, "ip", "-n", ns, "addr", "add", "10.77.9.1/24", "dev", "xb")
	x := openXDP(t, ns, "xa", XDPOptions{})
	peer := macOf(t, ns, "xb")
	self, kernel := net.IP{10, 77, 9, 2}, net.IP{10, 77, 9, 1}

	arp := serialize(t,
		&layers.Ethernet{SrcMAC: x.MAC(), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: x.MAC(), SourceProtAddress: self,
			DstHwAddress: make([]byte, 6), DstProtAddress: kernel})
	if err := x.Send(arp); err != nil {
		t.Fatal(err)
	}
	reply := receiveOne(t, x, func(f []byte) bool {
		a, ok := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == layers.ARPReply
	})
	if reply == nil {
		t.Fatal("kernel did not answer the ARP request")
	}
	a := gopacket.NewPacket(reply, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeARP).(*layers.ARP)
	if !bytes.Equal(a.SourceHwAddress, peer) || !net.IP(a.SourceProtAddress).Equal(kernel) {
		t.Fatalf("ARP reply says %v is at %v, want %v at %v", net.IP(a.SourceProtAddress), net.HardwareAddr(a.SourceHwAddress), kernel, peer)
	}

	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: self, DstIP: kernel, Id: 7}
	echo := serialize(t,
		&layers.Ethernet{SrcMAC: x.MAC(), DstMAC: peer, EthernetType: layers.EthernetTypeIPv4}, ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 0x4321, Seq: 1},
		gopacket.Payload("capygen"))
	if err := x.Send(echo); err != nil {
		t.Fatal(err)
	}
	pong := receiveOne(t, x, func(f []byte) bool {
		ic, ok := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply && ic.Id == 0x4321
	})
	if pong == nil {
		t.Fatal("kernel did not answer the ICMP echo")
	}
	if got := gopacket.NewPacket(pong, layers.LayerTypeEthernet, gopacket.Default).ApplicationLayer(); got == nil || string(got.Payload()) != "capygen" {
		t.Fatalf("echo reply payload = %v, want %q", got, "capygen")
	}
}

func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	b := buf.Bytes()
	if len(b) < 60 {
		b = append(b, make([]byte, 60-len(b))...)
	}
	return b
}

func TestOpenXDPErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		_, err := OpenXDP("lo", XDPOptions{})
		if !errors.Is(err, ErrPermission) {
			t.Fatalf("OpenXDP as non-root = %v, want ErrPermission", err)
		}
		t.Skip("the remaining cases need root")
	}
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	vethPair(t, ns, "xdown", ns, "xdown2", false)
	vethPair(t, ns, "xbig", ns, "xbig2", true)
	run(t, "ip", "-n", ns, "link", "set", "xbig", "mtu", "3000")

	for _, tc := range []struct {
		name   string
		ifname string
		opts   XDPOptions
		want   error
	}{
		{"no such interface", "nosuch0", XDPOptions{}, ErrNoInterface},
		{"interface down", "xdown", XDPOptions{}, ErrInterfaceDown},
		{"mtu over frame", "xbig", XDPOptions{}, ErrMTUTooLarge},
		{"odd frames", "xa", XDPOptions{Frames: 100}, ErrBadConfig},
		{"odd frame size", "xa", XDPOptions{FrameSize: 1000}, ErrBadConfig},
		{"unknown mode", "xa", XDPOptions{Mode: "offload"}, ErrBadConfig},
	} {
		var err error
		inNS(t, ns, func() {
			var x *XDP
			if x, err = OpenXDP(tc.ifname, tc.opts); err == nil {
				x.Close()
			}
		})
		if !errors.Is(err, tc.want) {
			t.Errorf("OpenXDP(%s: %s) = %v, want %v", tc.name, tc.ifname, err, tc.want)
		}
	}

	// A bigger frame size takes the larger MTU.
	x := openXDP(t, ns, "xbig", XDPOptions{FrameSize: 4096, Frames: 16})
	x.Close()

	// A second socket on a held queue is refused (after a bounded retry),
	// and the queue is free again right after the first closes.
	first := openXDP(t, ns, "xa", XDPOptions{Frames: 16})
	var err error
	inNS(t, ns, func() {
		var x *XDP
		if x, err = OpenXDP("xa", XDPOptions{Frames: 16, BindRetry: 50 * time.Millisecond}); err == nil {
			x.Close()
		}
	})
	if !errors.Is(err, ErrXDPBusy) {
		t.Errorf("second OpenXDP on a held queue = %v, want ErrXDPBusy", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, err := first.Receive(0, func([]byte) {}); !errors.Is(err, ErrClosed) {
		t.Errorf("Receive after Close = %v, want ErrClosed", err)
	}
	if err := first.Send(make([]byte, 60)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	for range 5 {
		openXDP(t, ns, "xa", XDPOptions{Frames: 16}).Close()
	}
}

// Close wakes a Receive blocked in poll.
func TestXDPCloseWakesReceive(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	x := openXDP(t, ns, "xa", XDPOptions{Frames: 16})
	done := make(chan error, 1)
	go func() {
		_, err := x.Receive(30*time.Second, func([]byte) {})
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Receive after Close = %v, want ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not wake a blocked Receive")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v with a blocked Receive", d)
	}
}

// Wake ends a Receive sleeping in poll, and one wake ends one Receive:
// the next sleeps again (the eventfd was reset, or every poll would
// return at once).
func TestXDPWakeEndsReceive(t *testing.T) {
	for _, yield := range []bool{false, true} {
		t.Run(fmt.Sprintf("spin-yield=%v", yield), func(t *testing.T) { wakeEndsReceive(t, yield) })
	}
}

func wakeEndsReceive(t *testing.T, yield bool) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-w")
	vethPair(t, ns, "xa", ns, "xb", true)
	x := openXDP(t, ns, "xa", XDPOptions{Frames: 16, SpinYield: yield})
	for i := range 3 {
		done := make(chan error, 1)
		go func() {
			_, err := x.Receive(time.Hour, func([]byte) {})
			done <- err
		}()
		time.Sleep(20 * time.Millisecond) // into the poll
		x.Wake()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("woken Receive %d: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Wake %d did not end a sleeping Receive", i)
		}
	}
	start := time.Now()
	if _, err := x.Receive(100*time.Millisecond, func([]byte) {}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("a Receive after the wakes returned in %v: a wake stayed pending", d)
	}
}

// A Wake between two Receives ends the next one at once and no other: a
// Receive that sleeps after it sleeps its whole timeout.
func TestXDPWakeBetweenReceives(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-b")
	vethPair(t, ns, "xa", ns, "xb", true)
	x := openXDP(t, ns, "xa", XDPOptions{Frames: 16})
	for i := range 3 {
		x.Wake()
		start := time.Now()
		if _, err := x.Receive(time.Hour, func([]byte) {}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Receive %d after a Wake took %v", i, d)
		}
		start = time.Now()
		if _, err := x.Receive(100*time.Millisecond, func([]byte) {}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("Receive %d after the woken one returned in %v: the wake ended two", i, d)
		}
	}
}

// BenchmarkXDPRoundTrip ping-pongs one frame between AF_XDP sockets in two
// namespaces joined by a veth pair, reporting p50/p99 round trips.
func BenchmarkXDPRoundTrip(b *testing.B) {
	needRoot(b)
	for _, mode := range []string{ModeNative, ModeGeneric} {
		b.Run(mode, func(b *testing.B) {
			t := tag()
			nsA, nsB := newNS(b, "capy-"+t+"-a"), newNS(b, "capy-"+t+"-b")
			vethPair(b, nsA, "xa", nsB, "xb", true)
			xa := openXDP(b, nsA, "xa", XDPOptions{Mode: mode, Frames: 256})
			xb := openXDP(b, nsB, "xb", XDPOptions{Mode: mode, Frames: 256})
			stop := make(chan struct{})
			echoed := make(chan struct{})
			go func() {
				defer close(echoed)
				for {
					select {
					case <-stop:
						return
					default:
					}
					xb.Receive(10*time.Millisecond, func(f []byte) {
						if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == testEtherType {
							copy(f[0:6], f[6:12])
							copy(f[6:12], xb.MAC())
							xb.Send(f)
						}
					})
				}
			}()
			rtts := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			var seq uint32
			for b.Loop() {
				seq++
				start := time.Now()
				xa.Send(seqFrame(xb.MAC(), xa.MAC(), seq, 64))
				if receiveOne(b, xa, func(f []byte) bool { return isSeq(f, seq) }) == nil {
					b.Fatalf("frame %d not echoed", seq)
				}
				if len(rtts) < cap(rtts) {
					rtts = append(rtts, time.Since(start))
				}
			}
			close(stop)
			<-echoed
			slices.Sort(rtts)
			if len(rtts) > 0 {
				b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-µs")
				b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-µs")
			}
		})
	}
}

// Without CAP_NET_ADMIN and CAP_BPF, OpenXDP says so before touching
// anything. The capabilities are dropped from this thread's effective set
// only (capset is per thread), and restored from the permitted set.
func TestOpenXDPWithoutCapabilities(t *testing.T) {
	needRoot(t)
	runtime.LockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var saved [2]unix.CapUserData
	if err := unix.Capget(&hdr, &saved[0]); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	dropped := saved
	for _, c := range []uint{unix.CAP_NET_ADMIN, unix.CAP_BPF, unix.CAP_SYS_ADMIN} {
		dropped[c/32].Effective &^= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &dropped[0]); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	_, err := OpenXDP("lo", XDPOptions{})
	if unix.Capset(&hdr, &saved[0]) == nil {
		// A thread left without its capabilities stays locked and dies
		// with this goroutine.
		runtime.UnlockOSThread()
	}
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_NET_ADMIN") || !strings.Contains(err.Error(), "CAP_BPF") {
		t.Fatalf("OpenXDP without capabilities = %v, want ErrPermission naming CAP_NET_ADMIN and CAP_BPF", err)
	}
}

// TestHelperHoldXDP is not a test: TestXDPReplaceAfterCrash runs the test
// binary with CAPYGEN_HOLD_XDP set to open AF_XDP and wait to be killed.
func TestHelperHoldXDP(t *testing.T) {
	ifname := os.Getenv("CAPYGEN_HOLD_XDP")
	if ifname == "" {
		t.Skip("helper process only")
	}
	if _, err := OpenXDP(ifname, XDPOptions{Frames: 16}); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("held\n")
	time.Sleep(time.Minute)
}

// A process killed with SIGKILL cannot detach its program. The next
// OpenXDP refuses the interface, unless told to Replace it.
func TestXDPReplaceAfterCrash(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperHoldXDP$")
	cmd.Env = append(os.Environ(), "CAPYGEN_HOLD_XDP=xa")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 5)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "held\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper did not open AF_XDP: %q, %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()

	var x *XDP
	inNS(t, ns, func() { x, err = OpenXDP("xa", XDPOptions{Frames: 16}) })
	if err == nil {
		x.Close()
		t.Fatal("OpenXDP over a dead process's program succeeded without Replace")
	}
	if !errors.Is(err, ErrXDPBusy) {
		t.Fatalf("OpenXDP over a dead process's program = %v, want ErrXDPBusy", err)
	}
	x = openXDP(t, ns, "xa", XDPOptions{Frames: 16, Replace: true})
	p := openPacket(t, ns, "xb")
	peer := macOf(t, ns, "xb")
	p.send(t, seqFrame(x.MAC(), peer, 7, 64))
	if receiveOne(t, x, func(f []byte) bool { return isSeq(f, 7) }) == nil {
		t.Fatal("no frame received after replacing the leftover program")
	}
}

// BenchmarkXDPTransmitFloor is the copy-mode floor under a bulk download:
// full-size frames (1514 bytes, what a 1448-byte TCP segment with
// timestamps makes) queued in bursts of 32 and kicked out of one AF_XDP
// socket into a veth whose far end's kernel drops them at once (an
// unknown ethertype). No TCP runs on either side, so frames/s here bounds
// what any userspace stack on this link can send; testbed's
// BenchmarkTestbed/download measures the stack against the kernel's.
func BenchmarkXDPTransmitFloor(b *testing.B) {
	needRoot(b)
	t := tag()
	nsA, nsB := newNS(b, "capy-"+t+"-a"), newNS(b, "capy-"+t+"-b")
	vethPair(b, nsA, "xa", nsB, "xb", true)
	for _, ns := range []struct{ ns, ifc string }{{nsA, "xa"}, {nsB, "xb"}} {
		inNS(b, ns.ns, func() {
			// As on the testbed: no offloads, so nothing batches for us.
			exec.Command("ethtool", "-K", ns.ifc, "tx", "off", "tso", "off", "gso", "off", "gro", "off").Run()
		})
	}
	xa := openXDP(b, nsA, "xa", XDPOptions{Mode: ModeNative, Frames: 1024})
	frame := seqFrame(net.HardwareAddr{2, 0, 0, 0, 0, 2}, xa.MAC(), 1, 1514)
	const burst = 32
	b.SetBytes(int64(len(frame)) * burst)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for range burst {
			if err := xa.Queue(frame); err != nil {
				b.Fatal(err)
			}
		}
		if err := xa.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*burst)/time.Since(start).Seconds(), "frames/s")
}

// A receive callback that panics loses the rest of its batch; those
// frames are counted as dropped rather than vanishing from every count.
func TestXDPPanickingCallbackCountsTheRest(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-l")
	vethPair(t, ns, "xa", ns, "xb", true)
	x := openXDP(t, ns, "xa", XDPOptions{})
	p := openPacket(t, ns, "xb")
	peer := macOf(t, ns, "xb")
	const sent = 5
	for i := range uint32(sent) {
		p.send(t, seqFrame(x.MAC(), peer, 500+i, 64))
	}
	for deadline := time.Now().Add(2 * time.Second); x.rxReady() < sent && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if r := x.rxReady(); r < sent {
		t.Fatalf("%d frames in the rx ring after 2 s, want the %d sent", r, sent)
	}
	before := x.Stats()
	func() {
		defer func() { recover() }()  //nolint:errcheck // the panic is the test
		x.Receive(0, func(f []byte) { //nolint:errcheck // it panics
			if isSeq(f, 500) {
				panic("callback fails")
			}
		})
	}()
	seen := 0
	for range 20 {
		n, err := x.Receive(10*time.Millisecond, func(f []byte) {
			if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == testEtherType {
				seen++
			}
		})
		if err != nil || n == 0 {
			break
		}
	}
	after := x.Stats()
	if lost := after.RxDropped - before.RxDropped; seen < sent-1 && lost < uint64(sent-1-seen) {
		t.Errorf("after a panic on the first of %d frames, %d came later and %d were counted dropped, want the other %d accounted for",
			sent, seen, lost, sent-1-seen)
	}
	// The ring still works.
	p.send(t, seqFrame(x.MAC(), peer, 99999, 64))
	if receiveOne(t, x, func(f []byte) bool { return isSeq(f, 99999) }) == nil {
		t.Fatal("no frame received after the panic: receive frames leaked")
	}
}
