package link

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	inet "github.com/capygen/capygen/runtime/internal/checksum"
)

// With Offload, a burst of full-size segments of one TCP stream reaches a
// Linux TCP socket on the veth's far side, which reads every byte in
// order; a segment that breaks the run (a gap in the sequence) goes
// separately and still arrives. With the veth's offloads on, the joined
// frame crosses whole (over the MTU, as from a kernel sender's TSO); with
// them off (the testbed's links), the kernel cuts it on our side, and no
// frame over the MTU crosses.
func TestXDPOffloadToKernelTCP(t *testing.T) {
	needRoot(t)
	for _, tso := range []bool{true, false} {
		name := "tso"
		if !tso {
			name = "software"
		}
		t.Run(name, func(t *testing.T) { testOffloadToKernelTCP(t, tso) })
	}
}

// offloadPair makes a namespace with a veth pair: xa, ours, with an
// Offload endpoint, and xb, the kernel's, at 10.77.9.1/24; with
// offloads false, both ends' segmentation and checksum offloads are off
// (the testbed's links), so the kernel cuts on our side.
func offloadPair(t *testing.T, suffix string, offloads bool) (ns string, x *XDP) {
	ns = newNS(t, "capy-"+tag()+"-"+suffix)
	vethPair(t, ns, "xa", ns, "xb", true)
	run(t, "ip", "-n", ns, "addr", "add", "10.77.9.1/24", "dev", "xb")
	if !offloads {
		for _, dev := range []string{"xa", "xb"} {
			run(t, "ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off")
		}
	}
	return ns, openXDP(t, ns, "xa", XDPOptions{Offload: true})
}

func testOffloadToKernelTCP(t *testing.T, tso bool) {
	ns, x := offloadPair(t, "g", tso)
	run(t, "ip", "-n", ns, "neigh", "add", "10.77.9.2", "lladdr", x.MAC().String(), "dev", "xb", "nud", "permanent")
	peer := macOf(t, ns, "xb")
	self, kernel := net.IP{10, 77, 9, 2}, net.IP{10, 77, 9, 1}
	tap := openPacket(t, ns, "xb")

	var ln net.Listener
	inNS(t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp4", "10.77.9.1:7000"); err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()

	const iss = 5000
	segment := func(seq, ack uint32, syn, psh bool, payload []byte) []byte {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 7000, Seq: seq, Ack: ack, ACK: !syn, SYN: syn, PSH: psh, Window: 65535}
		if syn {
			tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
		}
		ip := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: self, DstIP: kernel}
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: x.MAC(), DstMAC: peer, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(payload))
	}
	if err := x.Send(segment(iss, 0, true, false, nil)); err != nil {
		t.Fatal(err)
	}
	synack := receiveOne(t, x, func(f []byte) bool {
		tcp, ok := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		return ok && tcp.SYN && tcp.ACK
	})
	if synack == nil {
		t.Fatal("the kernel did not answer the SYN")
	}
	rcvNxt := gopacket.NewPacket(synack, layers.LayerTypeEthernet, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP).Seq + 1
	if err := x.Send(segment(iss+1, rcvNxt, false, false, nil)); err != nil {
		t.Fatal(err)
	}
	var conn net.Conn
	select {
	case conn = <-accepted:
	case <-time.After(2 * time.Second):
		t.Fatal("the kernel did not accept the connection")
	}
	if conn == nil {
		t.Fatal("accept failed")
	}
	defer conn.Close()

	// Five full segments and a short one in one burst: one joined frame.
	// Then, in a second burst, a segment, and one after a gap that the
	// first cannot join: two frames, the second held out of order until
	// the gap's segment fills it.
	const mss = 1400
	data := make([]byte, 7*mss+300)
	for i := range data {
		data[i] = byte(i*7 + i>>8)
	}
	seq := uint32(iss + 1)
	for i := 0; i < 5; i++ {
		if err := x.Queue(segment(seq, rcvNxt, false, false, data[i*mss:(i+1)*mss])); err != nil {
			t.Fatal(err)
		}
		seq += mss
	}
	if err := x.Queue(segment(seq, rcvNxt, false, true, data[5*mss:5*mss+300])); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	seq += 300
	gapSeq := seq
	if err := x.Queue(segment(gapSeq+mss, rcvNxt, false, false, data[5*mss+300+mss:])); err != nil {
		t.Fatal(err)
	}
	if err := x.Queue(segment(gapSeq, rcvNxt, false, false, data[5*mss+300:5*mss+300+mss])); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}

	// A third burst: a run the caller joined (TakeTCPSegments), PSH on
	// its last segment, after the gap's data.
	run := make([]byte, 3*mss+500)
	for i := range run {
		run[i] = byte(i*13 + i>>9)
	}
	if _, err := x.TakeTCPSegments(segment(gapSeq+uint32(len(data)-5*mss-300), rcvNxt, false, true, run), nil, mss); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	data = append(data, run...)

	// Runs built as the stack builds them: the headers and the first
	// segment in the array the link handed back, the rest of the payload
	// as slices of another array (a send queue's), two runs to a flush.
	// The second run of a flush is built in what the first's Take
	// returned, so the bytes the kernel reads show that no array came
	// back before its run had left; the counts say when each run ended.
	var spare []byte
	handedBack := 0
	for i := range 8 {
		part := make([]byte, 3*mss+200)
		for j := range part {
			part[j] = byte(i*31 + j*5 + j>>10)
		}
		if spare != nil {
			handedBack++
		}
		head := segment(gapSeq+uint32(len(data)-5*mss-300), rcvNxt, false, i == 7, part)
		head = append(spare, head[:len(head)-len(part)+mss]...) // headers, first segment
		views := [][]byte{part[mss : 2*mss+77], part[2*mss+77:]}
		var err error
		if spare, err = x.TakeTCPSegments(head, views, mss); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := x.Flush(); err != nil {
				t.Fatal(err)
			}
			if taken, ended := x.TCPRunsSent(); ended != taken {
				t.Errorf("after a flush, runs taken %d, ended %d: want all ended", taken, ended)
			}
		} else if taken, ended := x.TCPRunsSent(); ended >= taken {
			t.Errorf("with a run queued, runs taken %d, ended %d: want it not ended", taken, ended)
		}
		data = append(data, part...)
	}
	if handedBack < 6 {
		t.Errorf("the link handed back %d arrays in 7 Takes after the first flush, want 6 or more", handedBack)
	}

	big := tap.recv(func(f []byte) bool {
		return len(f) > 1514 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 6
	})
	switch {
	case tso && big == nil:
		t.Error("no TCP frame over the MTU reached the peer: the burst was not joined")
	case tso && len(big) != 14+20+20+5*mss+300:
		t.Errorf("joined frame is %d bytes, want %d (five segments and the short one)", len(big), 14+20+20+5*mss+300)
	case !tso && big != nil:
		t.Errorf("a %d-byte frame crossed a link without offloads", len(big))
	}

	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("kernel socket read %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the kernel socket read different bytes than were sent")
	}
	st := x.Stats()
	if st.TxDropped != 0 {
		t.Errorf("TxDropped = %d, want 0", st.TxDropped)
	}
}

// FuzzGSOJoin queues a run of TCP segments built from the input (sizes,
// sequence steps, flags, a header byte changed) and checks the burst as
// the kernel's tcp_gso_segment would cut it: every queued frame comes out
// once, in order, with its own sequence number, payload and flags, and a
// joined frame carries a valid IPv4 checksum and the pseudo-header sum.
func FuzzGSOJoin(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 9, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 5, 7, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		g := &gsoBatch{}
		var frames [][]byte
		seq := uint32(1000)
		const size = 1000
		for len(in) >= 3 && len(frames) < 200 {
			op, arg, mut := in[0], in[1], in[2]
			in = in[3:]
			n := size
			if op&3 == 1 {
				n = 1 + int(arg)%size // short
			}
			if op&3 == 2 {
				n = 0 // a pure ACK
			}
			fr := testSegment(seq, n, mut)
			if op&4 != 0 {
				fr[EthernetHeaderLen+ipv4HdrLen+13] |= tcpFlagPSH
			}
			if op&8 != 0 {
				seq += uint32(arg) // a gap
			}
			seq += uint32(n)
			frames = append(frames, fr)
			if !g.queue(fr) {
				t.Fatalf("a batch of %d frames is full", len(frames))
			}
		}
		var out [][]byte
		for i := range g.msgs {
			m := &g.msgs[i]
			g.seal(m)
			out = append(out, cutLikeGSO(t, g.arena[m.off:m.end])...)
		}
		if len(out) != len(frames) {
			t.Fatalf("%d frames queued, %d come out of the cut", len(frames), len(out))
		}
		for i := range frames {
			if a, b := maskSegment(frames[i]), maskSegment(out[i]); !bytes.Equal(a, b) {
				t.Fatalf("frame %d differs after the cut:\nqueued %x\ncut    %x", i, a, b)
			}
		}
	})
}

// testSegment is an Ethernet+IPv4+TCP frame with timestamps and n bytes
// of payload; mut, if not 0, changes one header byte.
func testSegment(seq uint32, n int, mut byte) []byte {
	f := make([]byte, EthernetHeaderLen+ipv4HdrLen+32+n)
	copy(f, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0})
	ip := f[EthernetHeaderLen:]
	ip[0], ip[6], ip[8], ip[9] = 0x45, 0x40, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	tcp := ip[ipv4HdrLen:]
	binary.BigEndian.PutUint16(tcp[0:], 80)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], 777)
	tcp[12], tcp[13] = 8<<4, tcpFlagACK
	binary.BigEndian.PutUint16(tcp[14:], 512)
	copy(tcp[20:], []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6})
	for i := range n {
		tcp[32+i] = byte(seq) + byte(i)
	}
	if mut != 0 {
		// Any byte of the headers but the lengths and checksums the cut
		// rewrites anyway.
		switch j := EthernetHeaderLen + ipv4HdrLen + 32; int(mut) % j {
		case 16, 17, 24, 25, 38, 39, 50, 51:
		default:
			f[int(mut)%j] ^= 0x20
		}
	}
	return f
}

// cutLikeGSO cuts one queued message (vnet header and frame) the way
// tcp_gso_segment does: the first frame's headers on every piece, the
// sequence number advanced, FIN and PSH only on the last piece.
func cutLikeGSO(t *testing.T, msg []byte) [][]byte {
	h, frame := msg[:vnetHdrLen], msg[vnetHdrLen:]
	if h[1] == 0 {
		return [][]byte{frame}
	}
	ip := frame[EthernetHeaderLen:]
	if sum := inet.Fold(inet.Add(0, ip[:ipv4HdrLen])); sum != 0xffff {
		t.Fatalf("joined frame's IPv4 checksum does not verify (%#x)", sum)
	}
	thl := int(ip[ipv4HdrLen+12]>>4) * 4
	pseudo := inet.Fold(inet.Add(6+uint64(len(ip)-ipv4HdrLen), ip[12:20]))
	if got := binary.BigEndian.Uint16(ip[ipv4HdrLen+16:]); got != pseudo {
		t.Fatalf("joined frame's TCP checksum field %#x, want the pseudo-header sum %#x", got, pseudo)
	}
	size := int(binary.NativeEndian.Uint16(h[4:]))
	hdr := EthernetHeaderLen + ipv4HdrLen + thl
	payload := frame[hdr:]
	if len(payload) <= size {
		t.Fatalf("joined frame of %d payload bytes with segment size %d", len(payload), size)
	}
	var out [][]byte
	seq := binary.BigEndian.Uint32(frame[EthernetHeaderLen+ipv4HdrLen+4:])
	for off := 0; off < len(payload); off += size {
		p := payload[off:min(off+size, len(payload))]
		piece := append(append([]byte(nil), frame[:hdr]...), p...)
		binary.BigEndian.PutUint16(piece[EthernetHeaderLen+2:], uint16(len(piece)-EthernetHeaderLen))
		binary.BigEndian.PutUint32(piece[EthernetHeaderLen+ipv4HdrLen+4:], seq+uint32(off))
		if off+size < len(payload) {
			piece[EthernetHeaderLen+ipv4HdrLen+13] &^= tcpFlagPSH | 1
		}
		out = append(out, piece)
	}
	return out
}

// maskSegment zeroes what the kernel writes per piece: IPv4 ID and
// checksum, TCP checksum.
func maskSegment(f []byte) []byte {
	f = append([]byte(nil), f...)
	for _, i := range []int{18, 19, 24, 25, 50, 51} {
		if i < len(f) {
			f[i] = 0
		}
	}
	return f
}

// Full segments of one stream join into one message, the short one ends
// it, and whatever does not continue it starts a message of its own.
func TestGSOJoinsARun(t *testing.T) {
	g := &gsoBatch{}
	seq := uint32(1)
	for _, n := range []int{1000, 1000, 1000, 400, 1000} {
		if !g.queue(testSegment(seq, n, 0)) {
			t.Fatal("batch full")
		}
		seq += uint32(n)
	}
	if !g.queue(testSegment(seq+1, 1000, 0)) { // a gap
		t.Fatal("batch full")
	}
	var segs []int
	for _, m := range g.msgs {
		segs = append(segs, m.segs)
	}
	if want := []int{4, 1, 1}; !slices.Equal(segs, want) {
		t.Fatalf("segments per message %v, want %v", segs, want)
	}
}

// The stack queues under its lock and flushes after releasing it, so
// Queue and Flush run at once from two goroutines: with Offload every
// frame still leaves once, in the order queued.
func TestXDPOffloadQueueWhileFlushing(t *testing.T) {
	needRoot(t)
	ns := newNS(t, "capy-"+tag()+"-q")
	vethPair(t, ns, "xa", ns, "xb", true)
	x := openXDP(t, ns, "xa", XDPOptions{Offload: true})
	peer := openPacket(t, ns, "xb")
	dst := macOf(t, ns, "xb")
	const n = 3000
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
				x.Flush() //nolint:errcheck // the last Flush below checks
			}
		}
	}()
	for i := range n {
		if err := x.Queue(seqFrame(dst, x.MAC(), uint32(i), 200)); err != nil {
			t.Fatal(err)
		}
		if i%64 == 63 {
			time.Sleep(50 * time.Microsecond) // let the peer's socket drain
		}
	}
	close(stop)
	<-stopped
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	next := uint32(0)
	for next < n {
		f := peer.recv(func(f []byte) bool { return len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == testEtherType })
		if f == nil {
			break
		}
		if got := binary.BigEndian.Uint32(f[14:]); got != next {
			t.Fatalf("frame %d arrived where %d was due", got, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%d of %d frames arrived (link dropped %d)", next, n, x.Stats().TxDropped)
	}
}

// TestXDPOffloadUDPTrain: a UDP train queued as one frame reaches a
// kernel UDP socket as its datagrams, each with its payload and a valid
// checksum (the kernel drops one with a bad checksum), whether the kernel
// cuts it before the veth or hands it whole to the peer (which cuts it
// then); and a malformed train is refused with an error naming what is
// wrong.
func TestXDPOffloadUDPTrain(t *testing.T) {
	needRoot(t)
	for _, offload := range []bool{true, false} {
		name := "peer-offloads"
		if !offload {
			name = "software"
		}
		t.Run(name, func(t *testing.T) { testOffloadUDPTrain(t, offload) })
	}
}

func testOffloadUDPTrain(t *testing.T, offload bool) {
	ns, x := offloadPair(t, "u", offload)
	if x.MaxUDPSegments() < 2 {
		t.Fatalf("MaxUDPSegments %d with Offload", x.MaxUDPSegments())
	}
	peer := macOf(t, ns, "xb")
	var conn *net.UDPConn
	inNS(t, ns, func() {
		var err error
		if conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IP{10, 77, 9, 1}, Port: 7001}); err != nil {
			t.Fatal(err)
		}
	})
	defer conn.Close()

	const segSize, n = 1200, 9
	payload := make([]byte, (n-1)*segSize+345)
	for i := range payload {
		payload[i] = byte(i*13 + i>>9)
	}
	train := func(p []byte) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 77, 9, 2}, DstIP: net.IP{10, 77, 9, 1}}
		udp := &layers.UDP{SrcPort: 7002, DstPort: 7001}
		udp.SetNetworkLayerForChecksum(ip)
		return serialize(t, &layers.Ethernet{SrcMAC: x.MAC(), DstMAC: peer, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(p))
	}
	frame := train(payload)
	// The checksum serialize computed is not the partial one the link
	// writes: scribble on it to show the link sets it.
	frame[EthernetHeaderLen+ipv4HdrLen+6] ^= 0x5a
	if err := x.QueueUDPSegments(frame, segSize); err != nil {
		t.Fatal(err)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	for i := range n {
		k, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, n, err)
		}
		want := payload[i*segSize : min((i+1)*segSize, len(payload))]
		if !bytes.Equal(buf[:k], want) {
			t.Fatalf("datagram %d: %d bytes, want %d: %x...", i, k, len(want), buf[:min(k, 16)])
		}
	}
	if st := x.Stats(); st.TxFrames != n || st.TxDropped != 0 {
		t.Errorf("stats %+v: want %d frames sent, none dropped", st, n)
	}

	tcpIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 77, 9, 2}, DstIP: net.IP{10, 77, 9, 1}}
	tcp := &layers.TCP{SrcPort: 1, DstPort: 2}
	tcp.SetNetworkLayerForChecksum(tcpIP)
	notUDP := serialize(t, &layers.Ethernet{SrcMAC: x.MAC(), DstMAC: peer, EthernetType: layers.EthernetTypeIPv4}, tcpIP, tcp, gopacket.Payload(payload[:3000]))
	for _, c := range []struct {
		name    string
		frame   []byte
		segSize int
		want    string
	}{
		{"one datagram", train(payload[:segSize]), segSize, "2 to 64 datagrams"},
		{"too many", train(make([]byte, 65*100)), 100, "2 to 64 datagrams"},
		{"over the mtu", train(payload[:3*1600]), 1600, "mtu"},
		{"not UDP", notUDP, 1200, "UDP"},
		{"lengths", append(train(payload[:3000]), 0, 0), 1200, "lengths must cover"},
	} {
		if err := x.QueueUDPSegments(c.frame, c.segSize); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: QueueUDPSegments = %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

// TestSealUDPAsTheKernelCuts: a sealed UDP train, cut as __udp_gso_segment
// cuts it (each datagram's length into the partial checksum, then
// CHECKSUM_PARTIAL completed over the datagram), gives datagrams whose
// UDP and IPv4 checksums verify: the partial sum sealUDP writes is the
// one the kernel expects. No root needed.
func TestSealUDPAsTheKernelCuts(t *testing.T) {
	const segSize = 700
	payload := make([]byte, 4*segSize+123)
	for i := range payload {
		payload[i] = byte(i*29 + i>>7)
	}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 1, 2, 3}, DstIP: net.IP{10, 4, 5, 6}}
	udp := &layers.UDP{SrcPort: 7002, DstPort: 7001}
	udp.SetNetworkLayerForChecksum(ip)
	frame := serialize(t, &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
		EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(payload))
	n, err := udpTrain(frame, segSize, 1500)
	if err != nil || n != 5 {
		t.Fatalf("udpTrain: %d datagrams, %v; want 5", n, err)
	}
	var b gsoBatch
	if !b.queueUDP(frame, segSize) {
		t.Fatal("queueUDP refused an empty batch")
	}
	m := &b.msgs[0]
	b.seal(m)
	h, train := b.arena[m.off:m.off+vnetHdrLen], b.arena[m.off+vnetHdrLen:m.end]
	if h[0] != 1 || h[1] != virtioNetHdrGSOUDPL4 || binary.NativeEndian.Uint16(h[4:]) != segSize ||
		binary.NativeEndian.Uint16(h[6:]) != 34 || binary.NativeEndian.Uint16(h[8:]) != 6 {
		t.Fatalf("virtio_net_hdr % x", h)
	}
	add := func(a, b uint16) uint16 { s := uint32(a) + uint32(b); return uint16(s + s>>16) } // csum16_add
	hdr := EthernetHeaderLen + ipv4HdrLen + udpHdrLen
	tIP := train[EthernetHeaderLen:]
	totalUDPLen := binary.BigEndian.Uint16(tIP[ipv4HdrLen+4:])
	partial := binary.BigEndian.Uint16(tIP[ipv4HdrLen+6:])
	for i, off := 0, hdr; off < len(train); i, off = i+1, off+segSize {
		p := train[off:min(off+segSize, len(train))]
		d := append(append([]byte(nil), train[EthernetHeaderLen:hdr]...), p...)
		binary.BigEndian.PutUint16(d[2:], uint16(len(d)))
		d[10], d[11] = 0, 0
		binary.BigEndian.PutUint16(d[10:], ^inet.Fold(inet.Add(0, d[:ipv4HdrLen])))
		u := d[ipv4HdrLen:]
		newLen := uint16(udpHdrLen + len(p))
		binary.BigEndian.PutUint16(u[4:], newLen)
		binary.BigEndian.PutUint16(u[6:], add(add(partial, ^totalUDPLen), newLen)) // __udp_gso_segment
		binary.BigEndian.PutUint16(u[6:], ^inet.Fold(inet.Add(0, u)))              // CHECKSUM_PARTIAL completed
		pkt := gopacket.NewPacket(d, layers.LayerTypeIPv4, gopacket.Default)
		got, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok {
			t.Fatalf("datagram %d does not parse: %v", i, pkt.ErrorLayer())
		}
		if sum := inet.Add(inet.Add(uint64(17)+uint64(len(u)), d[12:20]), u); inet.Fold(sum) != 0xffff {
			t.Errorf("datagram %d: UDP checksum %#04x does not verify", i, got.Checksum)
		}
		if !bytes.Equal(got.Payload, p) {
			t.Errorf("datagram %d: payload differs", i)
		}
	}
}

// A TCP run queued whole comes out of the kernel's cut as the segments it
// was joined from: their headers, sequence numbers and payloads, PSH on
// the last only.
func TestTCPRunCutsAsQueued(t *testing.T) {
	var segs [][]byte
	seq := uint32(9000)
	for i, n := range []int{1000, 1000, 1000, 300} {
		f := testSegment(seq, n, 0)
		if i == 3 {
			f[EthernetHeaderLen+ipv4HdrLen+13] |= tcpFlagPSH
		}
		segs = append(segs, f)
		seq += uint32(n)
	}
	const hdr = EthernetHeaderLen + ipv4HdrLen + 32
	run := append([]byte(nil), segs[0]...)
	for _, f := range segs[1:] {
		run = append(run, f[hdr:]...)
	}
	binary.BigEndian.PutUint16(run[EthernetHeaderLen+2:], uint16(len(run)-EthernetHeaderLen))
	run[EthernetHeaderLen+ipv4HdrLen+13] |= tcpFlagPSH
	thl, n, err := tcpRun(run, 0, 1000, 1500)
	if err != nil || thl != 32 || n != 4 {
		t.Fatalf("tcpRun = %d, %d, %v; want 32, 4, nil", thl, n, err)
	}
	var b gsoBatch
	if !b.takeTCP(run, nil, 0, 1000, thl, n) {
		t.Fatal("takeTCP refused an empty batch")
	}
	m := &b.msgs[0]
	b.seal(m)
	if h := b.arena[m.off : m.off+vnetHdrLen]; h[1] != 1 || binary.NativeEndian.Uint16(h[4:]) != 1000 { // VIRTIO_NET_HDR_GSO_TCPV4
		t.Fatalf("virtio_net_hdr % x", h)
	}
	out := cutLikeGSO(t, append(b.arena[m.off:m.end:m.end], b.frame(m)...))
	if len(out) != len(segs) {
		t.Fatalf("the cut gives %d segments, want %d", len(out), len(segs))
	}
	for i := range segs {
		if a, b := maskSegment(segs[i]), maskSegment(out[i]); !bytes.Equal(a, b) {
			t.Fatalf("segment %d differs after the cut:\njoined %x\ncut    %x", i, a, b)
		}
	}
}

// tcpRun refuses what GSO cannot cut into the segments meant, naming the
// rule broken.
func TestTCPRunRefuses(t *testing.T) {
	run := func(segs int, last int, edit func(f []byte)) []byte {
		f := testSegment(1, 100*(segs-1)+last, 0)
		if edit != nil {
			edit(f)
		}
		return f
	}
	for _, c := range []struct {
		name  string
		frame []byte
		mss   int
		want  string
	}{
		{"one segment", run(1, 100, nil), 100, "2 to 64 segments"},
		{"too many segments", run(65, 100, nil), 100, "2 to 64 segments"},
		{"SYN", run(3, 100, func(f []byte) { f[EthernetHeaderLen+ipv4HdrLen+13] |= 0x02 }), 100, "flags must be ACK"},
		{"FIN", run(3, 100, func(f []byte) { f[EthernetHeaderLen+ipv4HdrLen+13] |= 0x01 }), 100, "flags must be ACK"},
		{"UDP", run(3, 100, func(f []byte) { f[EthernetHeaderLen+9] = 17 }), 100, "IPv4 TCP segment"},
		{"short IPv4 length", run(3, 100, func(f []byte) { f[EthernetHeaderLen+3]-- }), 100, "total length covering"},
		{"segments over the MTU", run(3, 100, nil), 1500, "mtu 1500 allows 1 to 1448"},
		{"zero mss", run(3, 100, nil), 0, "mtu 1500 allows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := tcpRun(c.frame, 0, c.mss, 1500)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("tcpRun: %v; want an error with %q", err, c.want)
			}
		})
	}
}
