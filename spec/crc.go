package spec

import "math/bits"

// Sum computes the CRC of data with c's parameters, bit by bit. It is the
// reference every generated hash (Go tables, Tofino CRCPolynomial) must
// match; see the parity tests in gen/.
func (c *CRC) Sum(data []byte) uint64 {
	w := uint(c.Width)
	top := uint64(1) << (w - 1)
	mask := top<<1 - 1
	crc := c.Init & mask
	for _, b := range data {
		if c.Reversed {
			b = bits.Reverse8(b)
		}
		crc ^= uint64(b) << (w - 8)
		for i := 0; i < 8; i++ {
			if crc&top != 0 {
				crc = (crc<<1 ^ c.Poly) & mask
			} else {
				crc = crc << 1 & mask
			}
		}
	}
	if c.Reversed {
		crc = bits.Reverse64(crc) >> (64 - w)
	}
	return (crc ^ c.XorOut) & mask
}

// KeyBytes is the byte string a directory hashes: the client's IPv4
// address then its port, big-endian (6 bytes).
func KeyBytes(ip [4]byte, port uint16) [6]byte {
	return [6]byte{ip[0], ip[1], ip[2], ip[3], byte(port >> 8), byte(port)}
}

// Index returns the slot of a client key on a directory level: the level's
// CRC of KeyBytes truncated to IndexBits.
func (d *Directory) Index(level int, ip [4]byte, port uint16) uint32 {
	k := KeyBytes(ip, port)
	return uint32(d.Levels[level].Hash.Sum(k[:]) & (uint64(1)<<d.IndexBits - 1))
}
