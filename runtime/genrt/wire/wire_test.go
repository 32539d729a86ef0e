package wire

import (
	"encoding/binary"
	"math/bits"
	"testing"
)

// naiveField reads bit by bit: the definition Field must agree with.
func naiveField(b []byte, bit, n int) uint64 {
	var v uint64
	for i := bit; i < bit+n; i++ {
		v = v<<1 | uint64(b[i/8]>>(7-i%8)&1)
	}
	return v
}

func naiveSetField(b []byte, bit, n int, v uint64) {
	for i := bit + n - 1; i >= bit; i-- {
		if v&1 != 0 {
			b[i/8] |= 1 << (7 - i%8)
		} else {
			b[i/8] &^= 1 << (7 - i%8)
		}
		v >>= 1
	}
}

func TestBitsAndFlags(t *testing.T) {
	for _, c := range []struct {
		b, mask byte
		shift   uint
		want    byte
	}{
		{0xA5, 0xF0, 4, 0xA}, {0xA5, 0x0F, 0, 0x5}, {0xA5, 0x0C, 2, 0x1}, {0xFF, 0x02, 1, 1}, {0x00, 0xFF, 0, 0},
	} {
		if got := Bits(c.b, c.mask, c.shift); got != c.want {
			t.Errorf("Bits(%#x, %#x, %d) = %#x, want %#x", c.b, c.mask, c.shift, got, c.want)
		}
		b := c.b
		SetBits(&b, c.mask, c.shift, c.want)
		if b != c.b {
			t.Errorf("SetBits of the value read changed %#x to %#x", c.b, b)
		}
		SetBits(&b, c.mask, c.shift, 0xFF)
		if b&^c.mask != c.b&^c.mask || b&c.mask != c.mask {
			t.Errorf("SetBits(%#x, mask %#x, 0xFF) = %#x: must fill the field and keep the rest", c.b, c.mask, b)
		}
	}
	b := byte(0x80)
	SetFlag(&b, 0x01, true)
	if b != 0x81 || !Flag(b, 0x01) || !Flag(b, 0x80) || Flag(b, 0x02) {
		t.Errorf("SetFlag/Flag: got %#x", b)
	}
	SetFlag(&b, 0x80, false)
	if b != 0x01 {
		t.Errorf("SetFlag clear: got %#x, want 0x01", b)
	}
}

func TestFieldAgainstBits(t *testing.T) {
	b := []byte{0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB}
	for bit := 0; bit < 16; bit++ {
		for n := 1; n <= 64 && (bit%8+n+7)/8 <= 8 && bit+n <= len(b)*8; n++ {
			if got, want := Field(b, bit, n), naiveField(b, bit, n); got != want {
				t.Fatalf("Field(bit %d, n %d) = %#x, want %#x", bit, n, got, want)
			}
		}
	}
}

// FuzzField checks Field and SetField against the bit-by-bit definition,
// and that SetField leaves every other bit alone.
func FuzzField(f *testing.F) {
	f.Add([]byte{0xCA, 0xFE, 0xDE, 0xAD, 0, 0, 0, 0, 0}, 3, 13, uint64(0x1234))
	f.Add([]byte{0xFF, 0xFF}, 0, 1, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, bit, n int, v uint64) {
		if bit < 0 || n < 1 || n > 64 || bit+n > len(b)*8 || (bit%8+n+7)/8 > 8 {
			return
		}
		if got, want := Field(b, bit, n), naiveField(b, bit, n); got != want {
			t.Fatalf("Field(%x, %d, %d) = %#x, want %#x", b, bit, n, got, want)
		}
		got, want := append([]byte(nil), b...), append([]byte(nil), b...)
		SetField(got, bit, n, v)
		naiveSetField(want, bit, n, v)
		if string(got) != string(want) {
			t.Fatalf("SetField(%x, %d, %d, %#x) = %x, want %x", b, bit, n, v, got, want)
		}
	})
}

// referenceUDP is RFC 768 word by word over an explicit pseudo header.
func referenceUDP(src, dst [4]byte, udp []byte) uint16 {
	var p []byte
	p = append(p, src[:]...)
	p = append(p, dst[:]...)
	p = append(p, 0, 17, byte(len(udp)>>8), byte(len(udp)))
	d := append([]byte(nil), udp...)
	d[6], d[7] = 0, 0
	p = append(p, d...)
	if len(p)%2 == 1 {
		p = append(p, 0)
	}
	var s uint32
	for i := 0; i < len(p); i += 2 {
		s += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	if c := ^uint16(s); c != 0 {
		return c
	}
	return 0xffff
}

func FuzzUDPChecksum(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, []byte{0x1b, 0x9f, 0x1b, 0x9f, 0, 13, 0xff, 0xff, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, s, d, udp []byte) {
		if len(s) < 4 || len(d) < 4 || len(udp) < 8 || len(udp) > 65535 {
			return
		}
		src, dst := [4]byte(s), [4]byte(d)
		if got, want := UDPChecksum(src, dst, udp), referenceUDP(src, dst, udp); got != want {
			t.Fatalf("UDPChecksum = %#x, want %#x", got, want)
		}
	})
}

func TestWrapping16(t *testing.T) {
	if got := Wrapping16([]byte{0xFF, 0xFF, 0x00, 0x02, 0x01}); got != 0x0101 {
		t.Errorf("Wrapping16 = %#x, want 0x0101 (wraps without carry, odd byte padded)", got)
	}
}

// FuzzAdjust checks RFC 1624's update against summing again.
func FuzzAdjust(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint32(0xC0A80001))
	f.Fuzz(func(t *testing.T, data []byte, v uint32) {
		if len(data) < 4 || len(data)%2 == 1 {
			return
		}
		sum := func(b []byte) uint16 {
			var s uint32
			for i := 0; i < len(b); i += 2 {
				s += uint32(binary.BigEndian.Uint16(b[i:]))
			}
			for s>>16 != 0 {
				s = s&0xffff + s>>16
			}
			return ^uint16(s)
		}
		before := sum(data)
		old := binary.BigEndian.Uint32(data)
		binary.BigEndian.PutUint32(data, v)
		got, want := Adjust(before, old, v), sum(data)
		// 0x0000 and 0xFFFF are the same number in ones' complement.
		if got != want && !(got|want == 0xFFFF && bits.OnesCount16(got^want) == 16) {
			t.Fatalf("Adjust = %#x, summing again gives %#x", got, want)
		}
	})
}

func BenchmarkBits(b *testing.B) {
	buf := []byte{0xA5, 0x5A}
	var sink byte
	for range b.N {
		SetBits(&buf[0], 0xF0, 4, sink)
		sink += Bits(buf[0], 0xF0, 4)
	}
	_ = sink
}
