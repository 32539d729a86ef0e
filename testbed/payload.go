package testbed

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
)

// Payload returns a reader of n deterministic pseudo-random bytes. The
// stream is the same on every machine and every run (a SplitMix64
// counter stream), so a client can check a download against
// PayloadSHA256(n) without the server telling it. Bodies of different
// lengths share their prefix.
func Payload(n int64) io.Reader { return &payload{left: n, off: 8} }

// PayloadSHA256 is the hex SHA-256 of Payload(n).
func PayloadSHA256(n int64) string {
	h := sha256.New()
	io.Copy(h, Payload(n))
	return hex.EncodeToString(h.Sum(nil))
}

type payload struct {
	left  int64
	ctr   uint64
	block [8]byte
	off   int // bytes of block already used; 8 means refill
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (p *payload) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := 0
	for n < len(b) {
		if p.off == 8 {
			// Whole blocks straight into b when aligned: the common case.
			for len(b)-n >= 8 {
				binary.LittleEndian.PutUint64(b[n:], splitmix64(p.ctr))
				p.ctr++
				n += 8
			}
			if n == len(b) {
				break
			}
			binary.LittleEndian.PutUint64(p.block[:], splitmix64(p.ctr))
			p.ctr++
			p.off = 0
		}
		c := copy(b[n:], p.block[p.off:])
		p.off += c
		n += c
	}
	p.left -= int64(n)
	return n, nil
}
