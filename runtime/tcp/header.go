package tcp

import (
	"encoding/binary"
	"strings"
)

// Flags is the set of TCP control bits, in wire order (FIN is bit 0).
type Flags uint8

// The TCP control bits.
const (
	FlagFIN Flags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

var flagNames = [...]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// Has reports whether every bit of want is set in f.
func (f Flags) Has(want Flags) bool { return f&want == want }

// String renders the set bits as "SYN|ACK"; the empty set is "0".
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var b strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(name)
		}
	}
	return b.String()
}

// Byte offsets of the fixed TCP header fields (RFC 9293 §3.1), for
// callers that patch headers in place.
const (
	SrcPortOffset       = 0
	DstPortOffset       = 2
	SeqOffset           = 4
	AckOffset           = 8
	DataOffsetOffset    = 12
	FlagsOffset         = 13
	WindowOffset        = 14
	ChecksumOffset      = 16
	UrgentPointerOffset = 18

	// HeaderMinLen is the size of a TCP header without options.
	HeaderMinLen = 20
	// HeaderMaxLen is the largest header the 4-bit data offset can describe.
	HeaderMaxLen = 60
)

// TCP option kinds understood by this package.
const (
	optEOL           = 0
	optNOP           = 1
	optMSS           = 2
	optWindowScale   = 3
	optSACKPermitted = 4
	optSACK          = 5
	optTimestamps    = 8
)

// Encoded option sizes, NOP-padded to 4 bytes as Linux lays them out.
const (
	tsOptLen       = 12 // NOP NOP kind len TSval TSecr
	sackOptBase    = 4  // NOP NOP kind len
	sackBlockLen   = 8
	maxOptionSpace = HeaderMaxLen - HeaderMinLen
)

// Header is a view of a TCP header in a byte slice, in the style of gVisor's
// header.TCP. Getters and setters do not check the length: callers check
// len(h) >= HeaderMinLen (ParseSegment does) before using a view.
type Header []byte

// SrcPort is the source port.
func (h Header) SrcPort() uint16 { return binary.BigEndian.Uint16(h[SrcPortOffset:]) }

// DstPort is the destination port.
func (h Header) DstPort() uint16 { return binary.BigEndian.Uint16(h[DstPortOffset:]) }

// Seq is the sequence number.
func (h Header) Seq() uint32 { return binary.BigEndian.Uint32(h[SeqOffset:]) }

// Ack is the acknowledgment number.
func (h Header) Ack() uint32 { return binary.BigEndian.Uint32(h[AckOffset:]) }

// DataOffset is the header length in bytes (the wire field times four).
func (h Header) DataOffset() int { return int(h[DataOffsetOffset]>>4) * 4 }

// Flags are the control bits.
func (h Header) Flags() Flags { return Flags(h[FlagsOffset]) }

// Window is the raw, unscaled receive window.
func (h Header) Window() uint16 { return binary.BigEndian.Uint16(h[WindowOffset:]) }

// Checksum is the checksum field as stored.
func (h Header) Checksum() uint16 { return binary.BigEndian.Uint16(h[ChecksumOffset:]) }

// UrgentPointer is the urgent pointer field.
func (h Header) UrgentPointer() uint16 { return binary.BigEndian.Uint16(h[UrgentPointerOffset:]) }

// Options are the option bytes between the fixed header and the payload.
// It is empty when DataOffset is out of range for h.
func (h Header) Options() []byte {
	off := h.DataOffset()
	if off < HeaderMinLen || off > len(h) {
		return nil
	}
	return h[HeaderMinLen:off]
}

// Payload is everything after the header, or nil when DataOffset is out of range.
func (h Header) Payload() []byte {
	off := h.DataOffset()
	if off < HeaderMinLen || off > len(h) {
		return nil
	}
	return h[off:]
}

// SetSrcPort sets the source port.
func (h Header) SetSrcPort(p uint16) { binary.BigEndian.PutUint16(h[SrcPortOffset:], p) }

// SetDstPort sets the destination port.
func (h Header) SetDstPort(p uint16) { binary.BigEndian.PutUint16(h[DstPortOffset:], p) }

// SetSeq sets the sequence number.
func (h Header) SetSeq(v uint32) { binary.BigEndian.PutUint32(h[SeqOffset:], v) }

// SetAck sets the acknowledgment number.
func (h Header) SetAck(v uint32) { binary.BigEndian.PutUint32(h[AckOffset:], v) }

// SetDataOffset sets the header length in bytes; n must be a multiple of 4 in [20,60].
func (h Header) SetDataOffset(n int) { h[DataOffsetOffset] = byte(n/4) << 4 }

// SetFlags sets the control bits.
func (h Header) SetFlags(f Flags) { h[FlagsOffset] = byte(f) }

// SetWindow sets the raw window field.
func (h Header) SetWindow(w uint16) { binary.BigEndian.PutUint16(h[WindowOffset:], w) }

// SetChecksum sets the checksum field.
func (h Header) SetChecksum(c uint16) { binary.BigEndian.PutUint16(h[ChecksumOffset:], c) }

// SetUrgentPointer sets the urgent pointer field.
func (h Header) SetUrgentPointer(p uint16) { binary.BigEndian.PutUint16(h[UrgentPointerOffset:], p) }
