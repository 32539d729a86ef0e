package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	inet "github.com/capygen/capygen/runtime/internal/checksum"
)

// gsoTx transmits through an AF_PACKET socket that takes a virtio_net_hdr
// before each frame (PACKET_VNET_HDR), the way gVisor's fdbased endpoint
// and QEMU's tap backend hand the kernel segmentation offload work. The
// frames of one burst that continue one TCP stream (same headers, next
// sequence number, equal full-size payloads) are joined into one frame of
// up to 64 KiB, sent once with GSO metadata: the kernel, or the NIC's TSO,
// cuts it into the original segments, or hands it whole to a peer that
// takes such frames (a veth's kernel peer, as a kernel TCP sender does).
// This is a stand-in for the NIC offload a DPDK stack has, and AF_XDP's
// copy mode lacks: one skb per 44 segments instead of one per frame.
//
// A veth whose peer runs a native XDP program (say, our software switch)
// loses its GSO features, so the kernel segments there before the peer
// sees the frame: joining is then still one system call per burst.
//
// Frames queue in one batch while another is being sent, so that a
// goroutine queueing a frame never waits for another's system call (in
// copy mode, the kernel's transmit and often the peer's softirq): the
// XDP endpoint guards fill and spare with txMu, and send, sent and the
// message headers with flushMu.
//
// A TCP run (TakeTCPSegments) is not copied: the batch keeps the caller's
// headers until they have left, then offers the array back for the
// caller's next run (spare), and sends the payload from where the caller
// keeps it (a TCP send queue), as iovecs behind the headers. A bulk
// sender's payload is then copied in user space only from the
// application into its send queue, as a kernel sender's is; copies into
// the run and into the batch came on top. The runs taken and ended
// (TCPRunsSent) tell the caller when the payload's arrays are free.
type gsoTx struct {
	fd     int
	ifname string
	wait   time.Duration
	ifidx  int32

	fill, send *gsoBatch
	sent       [][]byte // send's taken frames, once sent
	spare      [][]byte // taken frames that have left, for the next runs

	// runsTaken counts the runs taken; runsEnded, every run up to it has
	// left (or was dropped): the count taken when send was swapped in,
	// stored once its flush returns.
	runsTaken, runsEnded atomic.Uint64
	swapTaken            uint64

	mm    []mmsghdr
	iov   []unix.Iovec
	first []int // each message's first iovec
	to    []unix.RawSockaddrLinklayer
}

// gsoBatch is a burst of queued messages.
type gsoBatch struct {
	arena []byte   // queued messages back to back: vnet header, then frame
	msgs  []gsoMsg // one per message in arena
	taken int      // capacity of the frames taken (takeTCP), held against gsoArenaMax
	views [][]byte // the taken runs' payloads, in order
}

// gsoMsg is one queued message and what joining needs of its last segment.
type gsoMsg struct {
	off, end int    // arena[off:end] is the vnet header and, unless taken, the frame
	taken    []byte // the frame's headers, when the batch took it rather than a copy
	// views[v0:v1] are a taken run's payload, behind taken; viewLen bytes.
	v0, v1, viewLen int
	segs            int // TCP segments joined in it; 0 if not a joinable TCP frame
	size            int // payload bytes of its first segment: the GSO segment size
	thl             int // TCP header length
	open            bool
	udp             bool // a UDP train (queueUDP): size is its datagrams' payload size
}

// frames is how many frames m leaves as on the wire.
func (m *gsoMsg) frames() int {
	if m.udp {
		payload := m.frameLen() - EthernetHeaderLen - ipv4HdrLen - udpHdrLen
		return (payload + m.size - 1) / m.size
	}
	return max(m.segs, 1)
}

// frameLen is the length of m's frame, without the vnet header.
func (m *gsoMsg) frameLen() int {
	if m.taken != nil {
		return len(m.taken) + m.viewLen
	}
	return m.end - m.off - vnetHdrLen
}

// frame is m's frame, without the vnet header: the headers alone of a
// taken run.
func (b *gsoBatch) frame(m *gsoMsg) []byte {
	if m.taken != nil {
		return m.taken
	}
	return b.arena[m.off+vnetHdrLen : m.end]
}

// mmsghdr is struct mmsghdr, which golang.org/x/sys/unix does not define.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // Go pads the struct to the C size
}

const (
	vnetHdrLen  = 10 // struct virtio_net_hdr, without num_buffers
	gsoMaxIPLen = 65535
	// gsoMaxUDPSegs is the most datagrams a UDP train carries: the
	// kernel's UDP_MAX_SEGMENTS of older kernels (newer take 128).
	gsoMaxUDPSegs = 64
	// gsoMaxTCPSegs is the most segments a TCP run carries: 64 KiB of
	// 1,448-byte segments is 45; small segments stop here.
	gsoMaxTCPSegs = 64
	udpHdrLen     = 8
	// virtioNetHdrGSOUDPL4 is VIRTIO_NET_HDR_GSO_UDP_L4 (linux/virtio_net.h),
	// which golang.org/x/sys/unix does not define.
	virtioNetHdrGSOUDPL4 = 5
	gsoArenaMax          = 1 << 20 // flush a burst past this many bytes queued
	gsoMaxMsgs           = 256     // ... or this many messages
	// gsoMaxSpare bounds the frames kept for reuse (spare): a batch holds
	// at most gsoArenaMax bytes of taken frames' capacity, and every
	// frame in circulation is in fill, send, spare or its caller's hands.
	gsoMaxSpare  = 16
	ipv4HdrLen   = 20
	etherTypeIP4 = 0x0800
)

// openGSOTx opens the transmit socket on ifindex. protocol 0 binds it for
// sending only: it receives nothing, so it takes no frame from AF_XDP.
func openGSOTx(ifname string, ifindex int, wait time.Duration) (*gsoTx, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("open af_packet socket for %s: %w", ifname, ErrPermission)
		}
		return nil, fmt.Errorf("open af_packet socket for %s: %w", ifname, err)
	}
	g := &gsoTx{fd: fd, ifname: ifname, wait: wait, ifidx: int32(ifindex), fill: new(gsoBatch), send: new(gsoBatch)}
	fail := func(what string, err error) (*gsoTx, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("segmentation offload on %s: %s: %w (turn Offload off to send through AF_XDP)", ifname, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	// Not PACKET_QDISC_BYPASS: its direct transmit drops any frame that
	// needs segmenting in software (dev_direct_xmit takes no list).
	// A window of 64 KiB frames in flight must fit the send buffer, or the
	// socket answers EAGAIN where a NIC ring would still have room.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20); err != nil {
		return fail("SO_SNDBUFFORCE", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	return g, nil
}

func (g *gsoTx) close() {
	if g.fd >= 0 {
		unix.Close(g.fd)
		g.fd = -1
	}
}

// queue copies frame into the batch, joining it to the previous message
// when it continues that message's TCP stream. frame has passed
// checkFrame. It returns false, and queues nothing, when the batch is
// full: the caller flushes and queues again.
func (b *gsoBatch) queue(frame []byte) bool {
	thl, payload, isTCP := tcpSegment(frame)
	if n := len(b.msgs); n > 0 && b.msgs[n-1].open && isTCP && b.join(&b.msgs[n-1], frame, thl, payload) {
		return true
	}
	m := b.push(frame)
	if m != nil && isTCP && payload > 0 && frame[EthernetHeaderLen+ipv4HdrLen+13] == tcpFlagACK {
		m.segs, m.size, m.thl, m.open = 1, payload, thl, true
	}
	return m != nil
}

// queueUDP copies a UDP train (QueueUDPSegments's frame, checked by
// udpTrain) into the batch as a message of its own. It returns false, and
// queues nothing, when the batch is full.
func (b *gsoBatch) queueUDP(frame []byte, segSize int) bool {
	m := b.push(frame)
	if m != nil {
		m.size, m.udp = segSize, true
	}
	return m != nil
}

// takeTCP queues a TCP run (TakeTCPSegments's head and payload, checked
// by tcpRun: segs segments of mss payload bytes, TCP header thl bytes) as
// a message of its own, closed to joining, keeping head and the payload
// slices rather than copies until the batch is sent. It returns false,
// and takes nothing, when the batch is full. The capacity of head counts
// against the batch's bound: that bounds the memory taken arrays hold,
// however short the runs. The payload lives in the caller's queues, not
// in the batch, and does not count.
func (b *gsoBatch) takeTCP(head []byte, payload [][]byte, viewLen, mss, thl, segs int) bool {
	if b.full(cap(head)) {
		return false
	}
	off := len(b.arena)
	b.arena = append(b.arena, make([]byte, vnetHdrLen)...)
	v0 := len(b.views)
	for _, p := range payload {
		if len(p) > 0 {
			b.views = append(b.views, p)
		}
	}
	b.msgs = append(b.msgs, gsoMsg{off: off, end: len(b.arena), taken: head, v0: v0, v1: len(b.views), viewLen: viewLen,
		segs: segs, size: mss, thl: thl})
	b.taken += cap(head)
	return true
}

// full reports whether a message of n more bytes would overfill the
// batch; an empty batch takes any message.
func (b *gsoBatch) full(n int) bool {
	return len(b.msgs) > 0 && (len(b.arena)+b.taken+vnetHdrLen+n > gsoArenaMax || len(b.msgs) == gsoMaxMsgs)
}

// push copies frame into the batch as a new message, behind a zero
// virtio_net_hdr (no offload, until seal), and returns it; nil, queueing
// nothing, when the batch is full.
func (b *gsoBatch) push(frame []byte) *gsoMsg {
	if b.full(len(frame)) {
		return nil
	}
	off := len(b.arena)
	b.arena = append(b.arena, make([]byte, vnetHdrLen)...)
	b.arena = append(b.arena, frame...)
	b.msgs = append(b.msgs, gsoMsg{off: off, end: len(b.arena)})
	return &b.msgs[len(b.msgs)-1]
}

// udpTrain checks a QueueUDPSegments frame and returns its datagram
// count; an error says which rule the frame breaks.
func udpTrain(frame []byte, segSize, mtu int) (int, error) {
	if len(frame) < EthernetHeaderLen+ipv4HdrLen+udpHdrLen {
		return 0, fmt.Errorf("%w: a %d-byte UDP train has no room for its headers", ErrFrameTooShort, len(frame))
	}
	if et := binary.BigEndian.Uint16(frame[12:14]); et != etherTypeIP4 {
		return 0, fmt.Errorf("link: a UDP train must be IPv4 (EtherType 0x0800), not EtherType %#04x", et)
	}
	ip := frame[EthernetHeaderLen:]
	total := len(ip)
	payload := total - ipv4HdrLen - udpHdrLen
	switch {
	case ip[0] != 0x45:
		return 0, fmt.Errorf("link: a UDP train's IPv4 header must have no options (first byte 0x45, not %#02x)", ip[0])
	case ip[9] != unix.IPPROTO_UDP:
		return 0, fmt.Errorf("link: a UDP train must carry UDP (protocol 17), not protocol %d", ip[9])
	case binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0:
		return 0, errors.New("link: a UDP train must not be an IPv4 fragment (MF set or an offset)")
	case total > gsoMaxIPLen || int(binary.BigEndian.Uint16(ip[2:4])) != total ||
		int(binary.BigEndian.Uint16(ip[ipv4HdrLen+4:])) != total-ipv4HdrLen:
		return 0, fmt.Errorf("link: a UDP train's IPv4 and UDP lengths must cover its %d bytes, at most %d", total, gsoMaxIPLen)
	case segSize <= 0 || ipv4HdrLen+udpHdrLen+segSize > mtu:
		return 0, fmt.Errorf("%w: %d-byte datagrams in a UDP train, mtu %d allows 1 to %d", ErrFrameTooLarge, segSize, mtu, mtu-ipv4HdrLen-udpHdrLen)
	case payload <= segSize || payload > gsoMaxUDPSegs*segSize:
		return 0, fmt.Errorf("link: a UDP train carries 2 to %d datagrams, not %d bytes of %d-byte ones", gsoMaxUDPSegs, payload, segSize)
	}
	return (payload + segSize - 1) / segSize, nil
}

// tcpRun checks a TakeTCPSegments frame, whose payload goes on for
// extra bytes beyond it, and returns its TCP header length and segment
// count; an error says which rule the frame breaks.
func tcpRun(frame []byte, extra, mss, mtu int) (thl, segs int, err error) {
	thl, payload, ok := tcpSegmentWith(frame, extra)
	switch {
	case !ok:
		return 0, 0, errors.New("link: a TCP run must be an IPv4 TCP segment without IP options, not a fragment, with its IPv4 total length covering the frame")
	case frame[EthernetHeaderLen+ipv4HdrLen+13]&^tcpFlagPSH != tcpFlagACK:
		return 0, 0, fmt.Errorf("link: a TCP run's flags must be ACK, and PSH, not %#02x", frame[EthernetHeaderLen+ipv4HdrLen+13])
	case mss <= 0 || ipv4HdrLen+thl+mss > mtu:
		return 0, 0, fmt.Errorf("%w: %d-byte segments in a TCP run with a %d-byte header, mtu %d allows 1 to %d", ErrFrameTooLarge, mss, thl, mtu, mtu-ipv4HdrLen-thl)
	case payload <= mss || payload > gsoMaxTCPSegs*mss:
		return 0, 0, fmt.Errorf("link: a TCP run carries 2 to %d segments, not %d bytes of %d-byte ones", gsoMaxTCPSegs, payload, mss)
	}
	return thl, (payload + mss - 1) / mss, nil
}

const (
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
)

// tcpSegment reports whether frame is an IPv4 TCP segment that GSO can
// repeat the headers of (no IP options, not a fragment), with its TCP
// header length and payload size.
func tcpSegment(frame []byte) (thl, payload int, ok bool) {
	return tcpSegmentWith(frame, 0)
}

// tcpSegmentWith is tcpSegment for a frame whose payload goes on for
// extra bytes beyond it.
func tcpSegmentWith(frame []byte, extra int) (thl, payload int, ok bool) {
	if len(frame) < EthernetHeaderLen+ipv4HdrLen+20 || binary.BigEndian.Uint16(frame[12:14]) != etherTypeIP4 {
		return 0, 0, false
	}
	ip := frame[EthernetHeaderLen:]
	if ip[0] != 0x45 || ip[9] != unix.IPPROTO_TCP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return 0, 0, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	thl = int(ip[ipv4HdrLen+12]>>4) * 4
	if total != len(ip)+extra || thl < 20 || ipv4HdrLen+thl > len(ip) {
		return 0, 0, false
	}
	return thl, total - ipv4HdrLen - thl, true
}

// join appends frame's payload to m if frame, a TCP segment (tcpSegment
// gave thl and payload), is m's stream's next segment: every header byte
// equal but the sequence number, the checksums, the IP length and ID, and
// PSH. GSO gives each segment the first one's headers
// with the sequence number advanced and PSH only on the last, so only
// such frames come out as they went in.
func (b *gsoBatch) join(m *gsoMsg, frame []byte, thl, payload int) bool {
	if payload == 0 || payload > m.size || thl != m.thl {
		return false
	}
	head := b.arena[m.off+vnetHdrLen : m.end]
	hIP, fIP := head[EthernetHeaderLen:], frame[EthernetHeaderLen:]
	if int(binary.BigEndian.Uint16(hIP[2:4]))+payload > gsoMaxIPLen {
		return false
	}
	if string(head[:EthernetHeaderLen]) != string(frame[:EthernetHeaderLen]) ||
		hIP[1] != fIP[1] || string(hIP[6:10]) != string(fIP[6:10]) || string(hIP[12:20]) != string(fIP[12:20]) {
		return false // addresses, TOS, DF, TTL or protocol differ
	}
	hT, fT := hIP[ipv4HdrLen:], fIP[ipv4HdrLen:]
	if fT[13]&^tcpFlagPSH != tcpFlagACK || string(hT[0:4]) != string(fT[0:4]) ||
		string(hT[8:13]) != string(fT[8:13]) || string(hT[14:16]) != string(fT[14:16]) ||
		string(hT[18:thl]) != string(fT[18:thl]) {
		return false // ports, ACK, window, urgent pointer or options differ
	}
	joined := len(head) - EthernetHeaderLen - ipv4HdrLen - thl
	if binary.BigEndian.Uint32(fT[4:8]) != binary.BigEndian.Uint32(hT[4:8])+uint32(joined) {
		return false
	}
	b.arena = append(b.arena, frame[EthernetHeaderLen+ipv4HdrLen+thl:]...)
	m.end = len(b.arena)
	m.segs++
	head = b.arena[m.off+vnetHdrLen : m.end]
	binary.BigEndian.PutUint16(head[EthernetHeaderLen+2:], uint16(len(head)-EthernetHeaderLen))
	head[EthernetHeaderLen+ipv4HdrLen+13] = fT[13] // PSH, if any, stays on the last segment
	// Only full-size segments may be followed: GSO cuts at m.size.
	m.open = payload == m.size && fT[13]&tcpFlagPSH == 0
	return true
}

// seal writes a message's GSO metadata, if it is to be cut: a joined TCP
// run (every m.size payload bytes, the TCP headers repeated) or a UDP
// train (every m.size bytes, each datagram's length worked into the
// partial checksum by the kernel).
func (b *gsoBatch) seal(m *gsoMsg) {
	switch {
	case m.udp:
		b.sealGSO(m, virtioNetHdrGSOUDPL4, unix.IPPROTO_UDP, udpHdrLen, 6)
	case m.segs >= 2:
		b.sealGSO(m, unix.VIRTIO_NET_HDR_GSO_TCPV4, unix.IPPROTO_TCP, m.thl, 16)
	}
	// else sent as it came, with its own checksums
}

// sealGSO fills m's virtio_net_hdr for gsoType, the IPv4 header checksum,
// and the transport checksum (at csumOff in a header of l4Len bytes) as
// the pseudo-header sum over the whole message, which the kernel
// completes per segment (CHECKSUM_PARTIAL).
func (b *gsoBatch) sealGSO(m *gsoMsg, gsoType, proto uint8, l4Len, csumOff int) {
	h := b.arena[m.off : m.off+vnetHdrLen]
	ip := b.frame(m)[EthernetHeaderLen:]
	ipLen := m.frameLen() - EthernetHeaderLen
	h[0] = unix.VIRTIO_NET_HDR_F_NEEDS_CSUM
	h[1] = gsoType
	binary.NativeEndian.PutUint16(h[2:], uint16(EthernetHeaderLen+ipv4HdrLen+l4Len))
	binary.NativeEndian.PutUint16(h[4:], uint16(m.size))
	binary.NativeEndian.PutUint16(h[6:], uint16(EthernetHeaderLen+ipv4HdrLen))
	binary.NativeEndian.PutUint16(h[8:], uint16(csumOff))
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^inet.Fold(inet.Add(0, ip[:ipv4HdrLen])))
	pseudo := inet.Add(uint64(proto)+uint64(ipLen-ipv4HdrLen), ip[12:20])
	binary.BigEndian.PutUint16(ip[ipv4HdrLen+csumOff:], inet.Fold(pseudo))
}

// flush sends every message of b with sendmmsg, and empties b, moving
// its taken frames to g.sent. A full socket buffer (the peer is not
// draining) is waited out for up to g.wait, then what remains is dropped,
// as a NIC with a full ring drops; TCP resends it. It returns how many
// frames (segments) were dropped so.
func (g *gsoTx) flush(b *gsoBatch) (dropped int, err error) {
	if len(b.msgs) == 0 {
		return 0, nil
	}
	defer func() {
		for i := range b.msgs {
			if t := b.msgs[i].taken; t != nil {
				g.sent = append(g.sent, t[:0])
			}
		}
		clear(b.msgs) // no stale reference to a frame handed back
		clear(b.views)
		clear(g.iov) // nor to a send queue's array, until the next flush
		b.arena, b.msgs, b.taken, b.views = b.arena[:0], b.msgs[:0], 0, b.views[:0]
	}()
	g.mm, g.iov, g.to = g.mm[:0], g.iov[:0], g.to[:0]
	g.first = g.first[:0] // each message's first iovec
	for i := range b.msgs {
		m := &b.msgs[i]
		b.seal(m)
		g.first = append(g.first, len(g.iov))
		// A taken frame is a second iovec behind its header in the arena:
		// the kernel reads the vnet header from the message's start.
		g.iov = append(g.iov, unix.Iovec{Base: &b.arena[m.off]})
		g.iov[len(g.iov)-1].SetLen(m.end - m.off)
		if m.taken != nil {
			g.iov = append(g.iov, unix.Iovec{Base: &m.taken[0]})
			g.iov[len(g.iov)-1].SetLen(len(m.taken))
			for _, v := range b.views[m.v0:m.v1] {
				g.iov = append(g.iov, unix.Iovec{Base: &v[0]})
				g.iov[len(g.iov)-1].SetLen(len(v))
			}
		}
		// The socket is bound to no protocol (it receives nothing), so
		// each frame names its EtherType: GSO looks it up by
		// skb->protocol, and drops a frame with none.
		et := b.frame(m)[12:14]
		g.to = append(g.to, unix.RawSockaddrLinklayer{
			Family: unix.AF_PACKET, Protocol: binary.NativeEndian.Uint16(et), Ifindex: g.ifidx, // network order in memory
		})
	}
	for i := range b.msgs {
		var h mmsghdr
		h.hdr.Iov = &g.iov[g.first[i]]
		end := len(g.iov)
		if i+1 < len(b.msgs) {
			end = g.first[i+1]
		}
		h.hdr.SetIovlen(end - g.first[i])
		h.hdr.Name = (*byte)(unsafe.Pointer(&g.to[i]))
		h.hdr.Namelen = unix.SizeofSockaddrLinklayer
		g.mm = append(g.mm, h)
	}
	var deadline time.Time
	var errs []error
	for sent := 0; sent < len(g.mm); {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.mm[sent])),
			uintptr(len(g.mm)-sent), unix.MSG_DONTWAIT, 0, 0)
		runtime.KeepAlive(b.arena)
		runtime.KeepAlive(b.msgs) // and the taken frames
		switch e {
		case 0:
			sent += int(n)
			deadline = time.Time{} // progress: a slow drain is not a stuck one
		case unix.EINTR:
		case unix.EAGAIN, unix.ENOBUFS:
			if deadline.IsZero() {
				deadline = time.Now().Add(g.wait)
			} else if time.Now().After(deadline) {
				for ; sent < len(g.mm); sent++ {
					dropped += b.msgs[sent].frames()
				}
				continue
			}
			runtime.Gosched()
		case unix.ENETDOWN, unix.ENXIO, unix.ENODEV:
			// The rest of the batch is cleared with it: count its frames
			// as dropped, which TxFrames already counted as queued.
			for ; sent < len(g.mm); sent++ {
				dropped += b.msgs[sent].frames()
			}
			if e == unix.ENETDOWN {
				return dropped, fmt.Errorf("send on %s: %w", g.ifname, ErrInterfaceDown)
			}
			return dropped, fmt.Errorf("send on %s: %w: %v", g.ifname, ErrNoInterface, e)
		default:
			// The kernel refused this message's headers: skip it so the
			// rest still go, and say which it was.
			m := &b.msgs[sent]
			dropped += m.frames()
			errs = append(errs, fmt.Errorf("send on %s: message %d of %d (%d-byte frame, %d segments): %w",
				g.ifname, sent, len(g.mm), m.frameLen(), m.frames(), e))
			sent++
		}
	}
	return dropped, errors.Join(errs...)
}

// keepSent moves the frames the last flush sent to spare, up to
// gsoMaxSpare; the rest are left to the collector. txMu and flushMu are
// held.
func (g *gsoTx) keepSent() {
	for _, f := range g.sent {
		if len(g.spare) < gsoMaxSpare {
			g.spare = append(g.spare, f)
		}
	}
	clear(g.sent)
	g.sent = g.sent[:0]
}

// takeSpare returns a frame that has left, for the caller's next run, or
// nil. txMu is held.
func (g *gsoTx) takeSpare() []byte {
	n := len(g.spare)
	if n == 0 {
		return nil
	}
	f := g.spare[n-1]
	g.spare[n-1] = nil
	g.spare = g.spare[:n-1]
	return f
}
