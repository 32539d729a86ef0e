// Package checksum is the Internet checksum (RFC 1071) shared by the TCP
// state machine and the IP stack, so the one loop on the per-segment path
// is written and tuned once.
package checksum

import "encoding/binary"

// Add returns sum plus the one's complement sum of b taken as big-endian
// 16-bit words (an odd last byte is padded with zero), unfolded. A uint64
// holds the carries of any packet, so Fold runs once at the end.
func Add(sum uint64, b []byte) uint64 {
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

// Fold folds an unfolded sum to 16 bits (not complemented).
func Fold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
