// Package checksum is the Internet checksum (RFC 1071) shared by the TCP
// state machine and the IP stack, so the one loop on the per-segment path
// is written and tuned once.
package checksum

import (
	"encoding/binary"
	"math/bits"
)

// Add returns sum plus the one's complement sum of b taken as big-endian
// 16-bit words (an odd last byte is padded with zero), unfolded. A uint64
// holds the carries of any packet, so Fold runs once at the end.
func Add(sum uint64, b []byte) uint64 {
	if n := len(b) &^ 7; n >= 64 {
		sum += uint64(bits.ReverseBytes16(sum64(b[:n])))
		b = b[n:]
	}
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// sum64 is the one's complement sum of b (a multiple of 8 bytes long)
// taken as little-endian 16-bit words, folded: what a payload's bytes
// cost. It adds 64-bit words with end-around carry, four to a turn, as
// Linux's csum_partial does; the sum of little-endian words is the
// byte-swapped sum of the big-endian ones (RFC 1071 §2(B)), which Add
// swaps back.
func sum64(b []byte) uint16 {
	var s, c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	s, c = bits.Add64(s, 0, c)
	s += c // a second carry leaves s 0: no third
	s = s&0xffffffff + s>>32
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}

// Fold folds an unfolded sum to 16 bits (not complemented).
func Fold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
