package repair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrDump marks a dump that does not decode or does not hold together; it
// is refused before any socket is made.
var ErrDump = errors.New("repair: bad dump")

// MaxQueue bounds each queue a dump may carry: a decoder must not be made
// to allocate what a corrupt length asks for. Linux's own buffers stay far
// below it (tcp_wmem/tcp_rmem maxima are a few MiB by default).
const MaxQueue = 64 << 20

const (
	dumpMagic   = "CPYR"
	dumpVersion = 1
)

// MarshalBinary encodes d: a versioned, length-prefixed form that carries
// every field, big-endian.
func (d *Dump) MarshalBinary() ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return d.AppendBinary(make([]byte, 0, 96+len(d.SendQueue)+len(d.RecvQueue)))
}

// AppendBinary appends MarshalBinary's encoding of d to b.
func (d *Dump) AppendBinary(b []byte) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	b = append(b, dumpMagic...)
	b = append(b, dumpVersion)
	b = appendAddrPort(b, d.Local)
	b = appendAddrPort(b, d.Remote)
	for _, v := range []uint32{d.SendSeq, d.RecvSeq, d.MSS} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, d.Options, d.SndWscale, d.RcvWscale)
	b = binary.BigEndian.AppendUint32(b, d.Timestamp)
	var hw byte
	if d.HasWindow {
		hw = 1
	}
	b = append(b, hw)
	for _, v := range []uint32{d.Window.SndWl1, d.Window.SndWnd, d.Window.MaxWindow, d.Window.RcvWnd, d.Window.RcvWup} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(d.Unsent))
	b = binary.BigEndian.AppendUint32(b, uint32(len(d.SendQueue)))
	b = append(b, d.SendQueue...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(d.RecvQueue)))
	return append(b, d.RecvQueue...), nil
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	if a := ap.Addr(); a.Is4() {
		v := a.As4()
		b = append(append(b, 4), v[:]...)
	} else {
		v := a.As16()
		b = append(append(b, 6), v[:]...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

// UnmarshalBinary decodes a dump, refusing one that is truncated, has
// trailing bytes, or does not hold together (check). Its queues alias b.
func (d *Dump) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	if string(r.take("magic", 4)) != dumpMagic {
		return r.fail("magic", "not a repair dump (want %q)", dumpMagic)
	}
	if v := r.u8("version"); r.err == nil && v != dumpVersion {
		return r.fail("version", "version %d; this build reads version %d", v, dumpVersion)
	}
	var n Dump
	n.Local = r.addrPort("local address")
	n.Remote = r.addrPort("remote address")
	n.SendSeq, n.RecvSeq, n.MSS = r.u32("send sequence"), r.u32("receive sequence"), r.u32("mss")
	n.Options, n.SndWscale, n.RcvWscale = r.u8("options"), r.u8("send window scale"), r.u8("receive window scale")
	n.Timestamp = r.u32("timestamp")
	switch r.u8("window flag") {
	case 0:
	case 1:
		n.HasWindow = true
	default:
		if r.err == nil {
			return r.fail("window flag", "must be 0 or 1")
		}
	}
	n.Window = Window{r.u32("snd_wl1"), r.u32("snd_wnd"), r.u32("max_window"), r.u32("rcv_wnd"), r.u32("rcv_wup")}
	n.Unsent = int(r.u32("unsent length"))
	n.SendQueue = r.bytes("send queue")
	n.RecvQueue = r.bytes("receive queue")
	if r.err != nil {
		return r.err
	}
	if len(r.b) != r.off {
		return r.fail("end", "%d bytes after the receive queue", len(r.b)-r.off)
	}
	if err := n.check(); err != nil {
		return err
	}
	*d = n
	return nil
}

// check refuses a dump whose fields contradict each other or the kernel's
// limits, before a restore touches a socket.
func (d *Dump) check() error {
	switch {
	case d == nil:
		return fmt.Errorf("%w: no dump", ErrDump)
	case !d.Local.IsValid() || !d.Remote.IsValid():
		return fmt.Errorf("%w: addresses %v and %v must both be set", ErrDump, d.Local, d.Remote)
	case d.Local.Addr().Is4() != d.Remote.Addr().Is4():
		return fmt.Errorf("%w: %v and %v are of different families", ErrDump, d.Local, d.Remote)
	case d.MSS == 0 || d.MSS > 65535:
		return fmt.Errorf("%w: mss %d is outside 1..65535", ErrDump, d.MSS)
	case d.Options&optWscale != 0 && (d.SndWscale > 14 || d.RcvWscale > 14):
		return fmt.Errorf("%w: window scales %d and %d; RFC 7323 allows 0..14", ErrDump, d.SndWscale, d.RcvWscale)
	case len(d.SendQueue) > MaxQueue || len(d.RecvQueue) > MaxQueue:
		return fmt.Errorf("%w: queues of %d and %d bytes; at most %d each", ErrDump, len(d.SendQueue), len(d.RecvQueue), MaxQueue)
	case d.Unsent < 0 || d.Unsent > len(d.SendQueue):
		return fmt.Errorf("%w: %d unsent bytes of a %d-byte send queue", ErrDump, d.Unsent, len(d.SendQueue))
	}
	return nil
}

// reader decodes a dump and keeps the first failure.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(field, format string, a ...any) error {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %s", ErrDump, field, r.off, fmt.Sprintf(format, a...))
	}
	return r.err
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(field, "truncated: needs %d bytes, %d left", n, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) addrPort(field string) netip.AddrPort {
	var a netip.Addr
	switch fam := r.u8(field); fam {
	case 4:
		if v := r.take(field, 4); v != nil {
			a = netip.AddrFrom4([4]byte(v))
		}
	case 6:
		if v := r.take(field, 16); v != nil {
			a = netip.AddrFrom16([16]byte(v))
		}
	default:
		if r.err == nil {
			r.fail(field, "family %d; want 4 or 6", fam)
		}
	}
	p := r.take(field, 2)
	if r.err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, binary.BigEndian.Uint16(p))
}

func (r *reader) bytes(field string) []byte {
	n := r.u32(field + " length")
	if r.err == nil && n > MaxQueue {
		r.fail(field, "%d bytes; at most %d", n, MaxQueue)
	}
	if n == 0 {
		return nil
	}
	return r.take(field, int(n))
}
