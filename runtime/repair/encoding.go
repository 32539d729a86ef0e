package repair

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
)

// Dump encoding, version 1. Integers are big-endian.
//
//	magic "CPYR", version u8 = 1
//	local, remote          family u8 (4 or 6), address 4|16 bytes, port u16
//	state, options, snd_wscale, rcv_wscale   u8
//	mss                    u16
//	timestamp              u32
//	send_seq, recv_seq     u32
//	snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup   u32
//	sndbuf, rcvbuf         u32
//	unsent                 u32
//	send queue             u32 length + bytes
//	receive queue          u32 length + bytes
//	crc32c                 u32, Castagnoli, of every byte before it
//
// The checksum is what keeps a flipped byte in a queue from reaching the
// peer as data: nothing else in the format could notice it.
const (
	dumpMagic   = "CPYR"
	dumpVersion = 1
)

// MaxQueueLen bounds each queue in a Dump (64 MiB, far above the kernel's
// default buffer limits), and so a decoder's allocation.
const MaxQueueLen = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary encodes d.
func (d *Dump) MarshalBinary() ([]byte, error) { return d.AppendBinary(nil) }

// AppendBinary appends d's encoding to b. It refuses a Dump that Validate
// refuses, so every encoding decodes.
func (d *Dump) AppendBinary(b []byte) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return b, err
	}
	start := len(b)
	b = slices.Grow(b, d.encodedLen())
	b = append(b, dumpMagic...)
	b = append(b, dumpVersion)
	b = appendAddrPort(b, d.Local)
	b = appendAddrPort(b, d.Remote)
	b = append(b, byte(d.State), byte(d.Options), d.SndWscale, d.RcvWscale)
	b = binary.BigEndian.AppendUint16(b, d.MSS)
	w := d.Window
	for _, v := range [...]uint32{d.Timestamp, d.SendSeq, d.RecvSeq,
		w.SndWl1, w.SndWnd, w.MaxWindow, w.RcvWnd, w.RcvWup, d.SndBuf, d.RcvBuf, d.Unsent} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(d.SendQueue)))
	b = append(b, d.SendQueue...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(d.RecvQueue)))
	b = append(b, d.RecvQueue...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli)), nil
}

func (d *Dump) encodedLen() int {
	return len(dumpMagic) + 1 + addrPortLen(d.Local) + addrPortLen(d.Remote) + 4 + 2 + 11*4 +
		4 + len(d.SendQueue) + 4 + len(d.RecvQueue) + 4
}

func addrPortLen(ap netip.AddrPort) int {
	if ap.Addr().Is4() {
		return 1 + 4 + 2
	}
	return 1 + 16 + 2
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if ap.Addr().Is4() {
		b = append(b, 4)
		a := ap.Addr().As4()
		b = append(b, a[:]...)
	} else {
		b = append(b, 6)
		a := ap.Addr().As16()
		b = append(b, a[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// UnmarshalBinary decodes an encoding made by AppendBinary into d. A
// truncated, corrupt or inconsistent encoding is refused with a
// *FormatError naming the field, and d is then left unchanged. d keeps no
// reference to b.
func (d *Dump) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	if string(r.take(len(dumpMagic), "magic")) != dumpMagic && r.err == nil {
		return badField("magic", "not a repair dump")
	}
	if v := r.u8("version"); r.err == nil && v != dumpVersion {
		return badField("version", "%d, this decoder reads version %d", v, dumpVersion)
	}
	var n Dump
	n.Local = r.addrPort("local address")
	n.Remote = r.addrPort("remote address")
	n.State = State(r.u8("state"))
	n.Options = Options(r.u8("options"))
	n.SndWscale = r.u8("snd_wscale")
	n.RcvWscale = r.u8("rcv_wscale")
	n.MSS = r.u16("mss")
	n.Timestamp = r.u32("timestamp")
	n.SendSeq = r.u32("send_seq")
	n.RecvSeq = r.u32("recv_seq")
	n.Window.SndWl1 = r.u32("snd_wl1")
	n.Window.SndWnd = r.u32("snd_wnd")
	n.Window.MaxWindow = r.u32("max_window")
	n.Window.RcvWnd = r.u32("rcv_wnd")
	n.Window.RcvWup = r.u32("rcv_wup")
	n.SndBuf = r.u32("sndbuf")
	n.RcvBuf = r.u32("rcvbuf")
	n.Unsent = r.u32("unsent")
	n.SendQueue = r.queue("send queue")
	n.RecvQueue = r.queue("receive queue")
	body := len(b) - len(r.b)
	sum := r.u32("crc32c")
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return badField("crc32c", "%d bytes after the end of the dump", len(r.b))
	}
	if want := crc32.Checksum(b[:body], castagnoli); sum != want {
		return badField("crc32c", "checksum %#08x, content sums to %#08x: corrupt", sum, want)
	}
	if err := n.Validate(); err != nil {
		return err
	}
	*d = n
	return nil
}

// Validate checks what Restore needs of d before it touches the kernel:
// addresses, a restorable state, known options in range, queues within
// MaxQueueLen and an unsent count within the send queue. The window's
// relations to the sequence numbers are left to the kernel, which checks
// them at TCP_REPAIR_WINDOW.
func (d *Dump) Validate() error {
	for _, a := range [...]struct {
		name string
		ap   netip.AddrPort
	}{{"local address", d.Local}, {"remote address", d.Remote}} {
		switch {
		case !a.ap.IsValid():
			return badField(a.name, "missing")
		case a.ap.Addr().IsUnspecified():
			return badField(a.name, "%v is unspecified", a.ap.Addr())
		case a.ap.Port() == 0:
			return badField(a.name, "port 0")
		case a.ap.Addr().Zone() != "":
			return badField(a.name, "%v has a zone, which a dump does not carry", a.ap)
		case a.ap.Addr().Is4In6():
			return badField(a.name, "%v is IPv4-mapped; give the IPv4 address", a.ap)
		}
	}
	if d.Local.Addr().Is4() != d.Remote.Addr().Is4() {
		return badField("remote address", "%v is not of the local address %v's family", d.Remote, d.Local)
	}
	if d.State != StateEstablished {
		return badField("state", "%v: only ESTABLISHED is restored", d.State)
	}
	if d.Options&^optsKnown != 0 {
		return badField("options", "unknown bits %#x", uint8(d.Options&^optsKnown))
	}
	if d.Options&OptWindowScale != 0 {
		if d.SndWscale > maxWscale || d.RcvWscale > maxWscale {
			return badField("window scale", "snd %d, rcv %d: above %d", d.SndWscale, d.RcvWscale, maxWscale)
		}
	} else if d.SndWscale != 0 || d.RcvWscale != 0 {
		return badField("window scale", "snd %d, rcv %d without the window scale option", d.SndWscale, d.RcvWscale)
	}
	if d.Options&OptTimestamps == 0 && d.Timestamp != 0 {
		return badField("timestamp", "%d without the timestamps option", d.Timestamp)
	}
	if d.MSS < minMSS {
		return badField("mss", "%d, below %d", d.MSS, minMSS)
	}
	if len(d.SendQueue) > MaxQueueLen {
		return badField("send queue", "%d bytes, above %d", len(d.SendQueue), MaxQueueLen)
	}
	if len(d.RecvQueue) > MaxQueueLen {
		return badField("receive queue", "%d bytes, above %d", len(d.RecvQueue), MaxQueueLen)
	}
	if int64(d.Unsent) > int64(len(d.SendQueue)) {
		return badField("unsent", "%d bytes of a %d-byte send queue", d.Unsent, len(d.SendQueue))
	}
	return nil
}

const (
	maxWscale = 14 // TCP_MAX_WSCALE, include/net/tcp.h
	minMSS    = 88 // TCP_MIN_MSS, include/net/tcp.h
	// maxUserMSS is the largest MSS TCP_MAXSEG takes (MAX_TCP_WINDOW,
	// include/net/tcp.h); TCP_REPAIR_OPTIONS sets any 16-bit one.
	maxUserMSS = 32767
)

// reader decodes fields in order; the first failure sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = badField(field, "truncated: need %d bytes, %d left", n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.take(2, field); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(4, field); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) addrPort(field string) netip.AddrPort {
	var a netip.Addr
	switch fam := r.u8(field); {
	case r.err != nil:
		return netip.AddrPort{}
	case fam == 4:
		if v := r.take(4, field); v != nil {
			a = netip.AddrFrom4([4]byte(v))
		}
	case fam == 6:
		if v := r.take(16, field); v != nil {
			a = netip.AddrFrom16([16]byte(v))
		}
	default:
		r.err = badField(field, "address family %d, want 4 or 6", fam)
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, r.u16(field))
}

func (r *reader) queue(field string) []byte {
	n := r.u32(field)
	if r.err != nil {
		return nil
	}
	if n > MaxQueueLen {
		r.err = badField(field, "%d bytes, above %d", n, MaxQueueLen)
		return nil
	}
	v := r.take(int(n), field)
	if v == nil || n == 0 {
		return nil
	}
	return slices.Clone(v)
}

// String summarises d for logs.
func (d *Dump) String() string {
	return fmt.Sprintf("%v->%v %v snd %d+%d (unsent %d) rcv %d+%d mss %d opts %#x",
		d.Local, d.Remote, d.State, d.SendSeq-uint32(len(d.SendQueue)), len(d.SendQueue), d.Unsent,
		d.RecvSeq-uint32(len(d.RecvQueue)), len(d.RecvQueue), d.MSS, uint8(d.Options))
}

// restoreWindow is the TCP_REPAIR_WINDOW a restore sets for d: d's, with
// snd_wl1 clamped to the right edge of the receive window (rcv_nxt +
// rcv_wnd). A socket whose receive window is closed can have taken a window
// update from a segment beyond rcv_nxt (data it dropped, or queued out of
// order, which a dump does not carry), and the kernel refuses such a
// snd_wl1 with EINVAL (tcp_repair_set_window), as seen restoring an echo
// server blocked writing to a client that stopped reading. snd_wl1 only
// orders window updates: at the edge, the peer's next segment updates the
// window, as on a fresh connection.
//
// With bytes in flight, the send window starts closed and takes the
// client's next segment (an ACK of that flight is due): snd_wnd 0, and
// snd_wl1 before rcv_nxt so that any segment at rcv_nxt updates it. The
// repair-mode connect turns on Linux's header prediction while snd_wnd is
// still 0, and TCP_REPAIR_WINDOW does not redo it (tcp_finish_connect,
// tcp_repair_set_window): a restored open window would survive the
// client's first zero-window ACK of new data, which takes the fast path,
// and the socket would send into the client's closed window, then wait
// for its first RTO (1 s, no RTT sample). At 0 the prediction is right,
// and the first segment with another window goes the slow path, which
// sets the window and redoes the prediction. (An echo server moved while
// blocked writing to a slow client livelocked so in about 1 run in 5; 26
// of 26 ran clean with this.) With nothing in flight no ACK is due, and a
// closed window would wait for the persist timer: the dumped one stays.
func restoreWindow(d *Dump) Window {
	w := d.Window
	if edge := d.RecvSeq + w.RcvWnd; int32(w.SndWl1-edge) > 0 {
		w.SndWl1 = edge
	}
	if inFlight := len(d.SendQueue) - int(d.Unsent); inFlight > 0 {
		w.SndWnd = 0
		if before := d.RecvSeq - 1; int32(w.SndWl1-before) > 0 {
			w.SndWl1 = before
		}
	}
	return w
}
