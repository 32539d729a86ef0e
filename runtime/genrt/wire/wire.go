// Package wire is the part of capygen's generated codecs that does not
// vary with the spec: reading and writing bit fields, and the checksums
// TCPMig datagrams carry. Generated code names each field's place with
// constants of its own package (OffsetX, ShiftX, MaskX) and calls these
// functions with them, as protoc-gen-go's output calls protoimpl.
//
// Everything here is small enough to inline and allocates nothing: the
// generated accessors cost what hand-written shifts and masks would.
package wire

import (
	"encoding/binary"

	"github.com/capygen/capygen/runtime/internal/checksum"
)

// Bits returns the field that mask covers in b, shifted down by shift.
func Bits(b, mask byte, shift uint) byte { return b & mask >> shift }

// SetBits writes v into the field that mask covers in *b, shifted up by
// shift, and keeps the other bits. Bits of v beyond the field are dropped.
func SetBits(b *byte, mask byte, shift uint, v byte) { *b = *b&^mask | v<<shift&mask }

// Flag reports whether the one-bit field mask of b is set.
func Flag(b, mask byte) bool { return b&mask != 0 }

// SetFlag sets or clears the one-bit field mask of *b.
func SetFlag(b *byte, mask byte, v bool) {
	if v {
		*b |= mask
	} else {
		*b &^= mask
	}
}

// Uint reads a field that straddles bytes: b holds exactly the bytes it
// touches (at most 8), mask covers it within their big-endian value, and
// shift moves it down.
func Uint(b []byte, mask uint64, shift uint) uint64 { return be(b) & mask >> shift }

// SetUint writes v into the field Uint reads, keeping the other bits of b.
func SetUint(b []byte, mask uint64, shift uint, v uint64) {
	x := be(b)&^mask | v<<shift&mask
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte(x)
		x >>= 8
	}
}

func be(b []byte) uint64 {
	var x uint64
	for _, c := range b {
		x = x<<8 | uint64(c)
	}
	return x
}

// Field reads the n-bit big-endian field at bit offset bit of b (bit 0 is
// the most significant bit of b[0]), for fields whose place is only known
// at run time. The field spans at most 8 bytes, and b holds them.
func Field(b []byte, bit, n int) uint64 {
	first, last := bit/8, (bit+n-1)/8
	return Uint(b[first:last+1], fieldMask(bit, n), fieldShift(bit, n))
}

// SetField writes v into the field Field reads, keeping the bits around it.
func SetField(b []byte, bit, n int, v uint64) {
	first, last := bit/8, (bit+n-1)/8
	SetUint(b[first:last+1], fieldMask(bit, n), fieldShift(bit, n), v)
}

func fieldShift(bit, n int) uint { return uint(((bit+n-1)/8+1)*8 - (bit + n)) }

func fieldMask(bit, n int) uint64 { return (uint64(1)<<uint(n) - 1) << fieldShift(bit, n) }

// UDPChecksum returns the value of the checksum field of udp, a whole UDP
// datagram from src to dst over IPv4: the standard checksum (RFC 768)
// over the pseudo header and the datagram, with the checksum field taken
// as zero. A computed zero is sent as 0xFFFF, as RFC 768 asks, so the
// field is never zero.
func UDPChecksum(src, dst [4]byte, udp []byte) uint16 {
	// Pseudo header: addresses, zero, protocol 17, UDP length.
	sum := uint64(binary.BigEndian.Uint32(src[:])) + uint64(binary.BigEndian.Uint32(dst[:])) + 17 + uint64(len(udp))
	sum = checksum.Add(sum, udp[:min(6, len(udp))])
	if len(udp) > 8 {
		sum = checksum.Add(sum, udp[8:])
	}
	if c := ^checksum.Fold(sum); c != 0 {
		return c
	}
	return 0xFFFF
}

// Wrapping16 is the 16-bit wrapping sum (no end-around carry) of b read as
// big-endian words, an odd last byte padded with zero: the checksum of the
// authors' implementation (spec checksum: wrapping16).
func Wrapping16(b []byte) uint16 {
	var s uint16
	for len(b) >= 2 {
		s += binary.BigEndian.Uint16(b)
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint16(b[0]) << 8
	}
	return s
}

// Adjust updates the Internet checksum sum for a 32-bit word of the summed
// data changing from old to v: HC' = ~(~HC + ~m + m') (RFC 1624 eqn. 3),
// on both 16-bit halves. A switch that rewrites an address or a field uses
// it instead of summing the packet again.
func Adjust(sum uint16, old, v uint32) uint16 {
	s := uint32(^sum) + uint32(^uint16(old>>16)) + uint32(^uint16(old)) + v>>16 + v&0xffff
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return ^uint16(s)
}
