// Package bytestring is P4Runtime's integer encoding (specification 8.3):
// big-endian byte strings, canonical when shortest. The server
// (runtime/p4rt) and the client (runtime/control) share it.
package bytestring

import "encoding/binary"

// Encode is v's canonical bytestring: the shortest that holds it, one
// zero byte for zero.
func Encode(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	i := 0
	for i < 7 && b[i] == 0 {
		i++
	}
	return append([]byte(nil), b[i:]...)
}

// Uint reads a bytestring of at most 8 significant bytes; leading zero
// bytes are allowed. Checking the width is the caller's.
func Uint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// IPv4 is v's low 32 bits as an address.
func IPv4(v uint64) [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return b
}

// MAC is v's low 48 bits as an Ethernet address.
func MAC(v uint64) [6]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return [6]byte(b[2:])
}

// MACValue is an Ethernet address as a 48-bit value.
func MACValue(m []byte) uint64 {
	var b [8]byte
	copy(b[2:], m)
	return binary.BigEndian.Uint64(b[:])
}
