package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	inet "github.com/capygen/capygen/runtime/internal/checksum"
)

// Decode errors. ParseSegment wraps them with the detail of what was wrong.
var (
	ErrShort       = errors.New("tcp: segment too short")
	ErrBadChecksum = errors.New("tcp: bad checksum")
	ErrBadOffset   = errors.New("tcp: bad data offset")
)

// protoTCP is the IP protocol number of TCP, part of the pseudo header.
const protoTCP = 6

// Segment is a parsed TCP segment. Payload aliases the buffer it was decoded
// from (or, from Conn.Output, the connection's send buffer).
type Segment struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            Flags
	Window           uint16 // raw, unscaled
	MSS              uint16 // 0 when absent
	WindowScale      int8   // -1 when absent
	SACKPermitted    bool   // RFC 2018 SACK-permitted (SYNs)
	// Timestamps (RFC 7323 §3): HasTS says the option is present.
	HasTS        bool
	TSVal, TSEcr uint32
	// SACK blocks (RFC 2018 §3), the first NumSACK of them. Four fit
	// the option space without timestamps, three with them.
	NumSACK uint8
	SACK    [MaxSACKBlocks]SACKBlock
	Payload []byte
	// PayloadQueued, on a segment Output emits, says that Payload is a
	// view of the send queue's array, whose bytes stay as they are until
	// acknowledged, and the array itself until the Config's BufferPool
	// lets it go (BufferPool.SetFence); otherwise Payload is a copy that
	// the next segment may overwrite. Only a first transmission is a view:
	// the bytes of a resend may be acknowledged before it leaves.
	PayloadQueued bool
}

// MaxSACKBlocks is the most SACK blocks one segment carries.
const MaxSACKBlocks = 4

// SACKBlock is one SACK block: the peer holds [Start, End).
type SACKBlock struct{ Start, End uint32 }

// SACKBlocks is the segment's SACK blocks.
func (s *Segment) SACKBlocks() []SACKBlock { return s.SACK[:s.NumSACK] }

// SeqLen is the sequence space the segment occupies: payload plus SYN and FIN.
func (s *Segment) SeqLen() uint32 {
	n := uint32(len(s.Payload))
	if s.Flags&FlagSYN != 0 {
		n++
	}
	if s.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

// String is a tcpdump-like one-line summary, for test failures and logs.
func (s *Segment) String() string {
	str := fmt.Sprintf("%d > %d [%s] seq %d ack %d win %d len %d",
		s.SrcPort, s.DstPort, s.Flags, s.Seq, s.Ack, s.Window, len(s.Payload))
	if s.HasTS {
		str += fmt.Sprintf(" ts %d ecr %d", s.TSVal, s.TSEcr)
	}
	for _, b := range s.SACKBlocks() {
		str += fmt.Sprintf(" sack %d-%d", b.Start, b.End)
	}
	return str
}

// ParseSegment decodes b (TCP header plus payload) and verifies its checksum
// over the pseudo header of src and dst (IPv4 or IPv6). Unknown options are
// skipped; a malformed option list ends option parsing without failing the
// segment, as RFC 9293 §3.1 asks receivers to be liberal.
func ParseSegment(b []byte, src, dst netip.Addr) (Segment, error) {
	if len(b) < HeaderMinLen {
		return Segment{}, fmt.Errorf("%w: %d bytes, need at least %d", ErrShort, len(b), HeaderMinLen)
	}
	h := Header(b)
	off := h.DataOffset()
	if off < HeaderMinLen {
		return Segment{}, fmt.Errorf("%w: data offset %d bytes is below the %d-byte minimum", ErrBadOffset, off, HeaderMinLen)
	}
	if off > len(b) {
		return Segment{}, fmt.Errorf("%w: data offset %d bytes exceeds the %d-byte segment", ErrBadOffset, off, len(b))
	}
	if sum := checksum(b, src, dst); sum != 0 {
		return Segment{}, fmt.Errorf("%w: %#04x does not verify for %v > %v", ErrBadChecksum, h.Checksum(), src, dst)
	}
	s := Segment{
		SrcPort:     h.SrcPort(),
		DstPort:     h.DstPort(),
		Seq:         h.Seq(),
		Ack:         h.Ack(),
		Flags:       h.Flags(),
		Window:      h.Window(),
		WindowScale: -1,
		Payload:     b[off:],
	}
	parseOptions(b[HeaderMinLen:off], &s)
	return s, nil
}

func parseOptions(opts []byte, s *Segment) {
	for len(opts) > 0 {
		kind := opts[0]
		switch kind {
		case optEOL:
			return
		case optNOP:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return
		}
		n := int(opts[1])
		switch {
		case kind == optMSS && n == 4:
			s.MSS = binary.BigEndian.Uint16(opts[2:])
		case kind == optWindowScale && n == 3:
			ws := opts[2]
			if ws > maxWindowShift { // RFC 7323 §2.3: treat as 14.
				ws = maxWindowShift
			}
			s.WindowScale = int8(ws)
		case kind == optSACKPermitted && n == 2:
			s.SACKPermitted = true
		case kind == optTimestamps && n == 10:
			s.HasTS = true
			s.TSVal = binary.BigEndian.Uint32(opts[2:])
			s.TSEcr = binary.BigEndian.Uint32(opts[6:])
		case kind == optSACK && n >= 2+sackBlockLen && (n-2)%sackBlockLen == 0:
			// More blocks than fit a header cannot be sent; keep the first.
			s.NumSACK = 0
			for b := opts[2:n]; len(b) >= sackBlockLen && s.NumSACK < MaxSACKBlocks; b = b[sackBlockLen:] {
				s.SACK[s.NumSACK] = SACKBlock{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])}
				s.NumSACK++
			}
		}
		opts = opts[n:]
	}
}

// optionsLen is the encoded size of s's options, padded to 4 bytes, with
// the SACK blocks that fit (sackFit).
func (s *Segment) optionsLen() int {
	n := s.fixedOptionsLen()
	if k := s.sackFit(); k > 0 {
		n += sackOptBase + sackBlockLen*k
	}
	return n
}

// sackFit is how many of s's SACK blocks fit beside its other options.
func (s *Segment) sackFit() int {
	room := maxOptionSpace - s.fixedOptionsLen() - sackOptBase
	return max(min(int(s.NumSACK), room/sackBlockLen), 0)
}

// fixedOptionsLen is the size of every option but SACK blocks.
func (s *Segment) fixedOptionsLen() int {
	n := 0
	if s.MSS != 0 {
		n += 4
	}
	if s.WindowScale >= 0 {
		n += 4
	}
	if s.SACKPermitted {
		n += 4
	}
	if s.HasTS {
		n += tsOptLen
	}
	return n
}

// AppendSegment encodes s (header, options, payload) after dst and fills in
// the checksum for the pseudo header of src and dst2. Options are written
// when set: MSS when non-zero, window scale when >= 0, SACK-permitted when
// true, timestamps when HasTS, NumSACK SACK blocks; each is NOP-padded to
// a 4-byte boundary. Options that would overflow the 40-byte option space
// drop SACK blocks from the end, so the header stays encodable.
func AppendSegment(dst []byte, src, dst2 netip.Addr, s *Segment) []byte {
	hlen := HeaderMinLen + s.optionsLen()
	start := len(dst)
	dst = grow(dst, hlen)
	h := Header(dst[start:])
	h.SetSrcPort(s.SrcPort)
	h.SetDstPort(s.DstPort)
	h.SetSeq(s.Seq)
	h.SetAck(s.Ack)
	h.SetDataOffset(hlen)
	h.SetFlags(s.Flags)
	h.SetWindow(s.Window)
	h.SetChecksum(0)
	h.SetUrgentPointer(0)
	o := h[HeaderMinLen:hlen]
	if s.MSS != 0 {
		o[0], o[1] = optMSS, 4
		binary.BigEndian.PutUint16(o[2:], s.MSS)
		o = o[4:]
	}
	if s.WindowScale >= 0 {
		o[0], o[1], o[2], o[3] = optNOP, optWindowScale, 3, byte(s.WindowScale)
		o = o[4:]
	}
	if s.SACKPermitted {
		o[0], o[1], o[2], o[3] = optNOP, optNOP, optSACKPermitted, 2
		o = o[4:]
	}
	if s.HasTS {
		o[0], o[1], o[2], o[3] = optNOP, optNOP, optTimestamps, 10
		binary.BigEndian.PutUint32(o[4:], s.TSVal)
		binary.BigEndian.PutUint32(o[8:], s.TSEcr)
		o = o[tsOptLen:]
	}
	if k := s.sackFit(); k > 0 {
		o[0], o[1], o[2], o[3] = optNOP, optNOP, optSACK, byte(2+sackBlockLen*k)
		for i, b := range s.SACK[:k] {
			binary.BigEndian.PutUint32(o[4+8*i:], b.Start)
			binary.BigEndian.PutUint32(o[8+8*i:], b.End)
		}
	}
	dst = append(dst, s.Payload...)
	Header(dst[start:]).SetChecksum(^checksumFold(dst[start:], src, dst2))
	return dst
}

// grow extends b by n bytes, reusing capacity when it can.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// checksum returns the one's complement of the folded sum of b and its pseudo
// header: zero when b's checksum field is right.
func checksum(b []byte, src, dst netip.Addr) uint16 {
	return ^checksumFold(b, src, dst)
}

// checksumFold is the folded 16-bit one's complement sum (RFC 1071) of the
// pseudo header of src,dst and b.
func checksumFold(b []byte, src, dst netip.Addr) uint16 {
	var sum uint64
	if src.Is4() || src.Is4In6() {
		s4, d4 := src.Unmap().As4(), dst.Unmap().As4()
		sum += uint64(binary.BigEndian.Uint32(s4[:])) + uint64(binary.BigEndian.Uint32(d4[:]))
	} else {
		s16, d16 := src.As16(), dst.As16()
		for i := 0; i < 16; i += 8 {
			sum += uint64(binary.BigEndian.Uint32(s16[i:])) + uint64(binary.BigEndian.Uint32(s16[i+4:]))
			sum += uint64(binary.BigEndian.Uint32(d16[i:])) + uint64(binary.BigEndian.Uint32(d16[i+4:]))
		}
	}
	return inet.Fold(inet.Add(sum+protoTCP+uint64(len(b)), b))
}

// ResetFor builds the RST that answers seg when no connection exists
// (RFC 9293 §3.10.7.1). The ports are swapped; the caller swaps addresses.
// ok is false when seg is itself a RST, which is never answered.
func ResetFor(seg *Segment) (rst Segment, ok bool) {
	if seg.Flags&FlagRST != 0 {
		return Segment{}, false
	}
	rst = Segment{SrcPort: seg.DstPort, DstPort: seg.SrcPort, WindowScale: -1}
	if seg.Flags&FlagACK != 0 {
		rst.Seq = seg.Ack
		rst.Flags = FlagRST
	} else {
		rst.Ack = seg.Seq + seg.SeqLen()
		rst.Flags = FlagRST | FlagACK
	}
	return rst, true
}
