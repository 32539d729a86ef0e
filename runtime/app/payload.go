package app

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Payload is testbed.Payload's byte stream made seekable: byte i of every
// body is byte i%8 (little-endian) of SplitMix64(i/8), so a server can
// resume a download at any offset without generating what came before.
// TestPayloadMatchesTestbed holds the two byte-identical.
type Payload struct {
	n, off int64
}

// NewPayload returns a reader of the first n bytes of the stream.
func NewPayload(n int64) *Payload { return &Payload{n: n} }

// Size is the body's length.
func (p *Payload) Size() int64 { return p.n }

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Read reads from the current offset.
func (p *Payload) Read(b []byte) (int, error) {
	n, err := p.ReadAt(b, p.off)
	p.off += int64(n)
	return n, err
}

// ReadAt fills b with the bytes at off; io.EOF at or past the end.
func (p *Payload) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("app: payload offset %d is negative", off)
	}
	if off >= p.n {
		return 0, io.EOF
	}
	if left := p.n - off; int64(len(b)) > left {
		b = b[:left]
	}
	fill(b, off)
	return len(b), nil
}

// fill writes the stream's bytes [off, off+len(b)) into b.
func fill(b []byte, off int64) {
	ctr := uint64(off) / 8
	n := 0
	if skip := int(off % 8); skip != 0 {
		var blk [8]byte
		binary.LittleEndian.PutUint64(blk[:], splitmix64(ctr))
		ctr++
		n = copy(b, blk[skip:])
	}
	for ; len(b)-n >= 8; n += 8 {
		binary.LittleEndian.PutUint64(b[n:], splitmix64(ctr))
		ctr++
	}
	if n < len(b) {
		var blk [8]byte
		binary.LittleEndian.PutUint64(blk[:], splitmix64(ctr))
		copy(b[n:], blk[:])
	}
}

// Seek sets the offset for the next Read (io.Seeker).
func (p *Payload) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = p.off + offset
	case io.SeekEnd:
		abs = p.n + offset
	default:
		return p.off, fmt.Errorf("app: payload seek whence %d: want io.SeekStart, SeekCurrent or SeekEnd", whence)
	}
	if abs < 0 {
		return p.off, errors.New("app: payload seek before the start")
	}
	p.off = abs
	return abs, nil
}
