package checksum

import (
	"encoding/binary"
	"strconv"
	"testing"
)

// reference is RFC 1071's word-at-a-time loop.
func reference(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

func TestMatchesRFC1071(t *testing.T) {
	// RFC 1071 §3's example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
	if got := Fold(Add(0, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7})); got != 0xddf2 {
		t.Errorf("Fold(Add(RFC 1071 example)) = %#x, want 0xddf2", got)
	}
	b := make([]byte, 1501)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	for n := 0; n <= len(b); n++ {
		if got, want := Fold(Add(0, b[:n])), reference(b[:n]); got != want {
			t.Fatalf("Fold(Add(%d bytes)) = %#x, want %#x", n, got, want)
		}
	}
}

func FuzzAdd(f *testing.F) {
	f.Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Fold(Add(0, b)), reference(b); got != want {
			t.Fatalf("Fold(Add(%x)) = %#x, want %#x", b, got, want)
		}
	})
}

// Words that carry out of every lane: all ones, and one below.
func TestCarriesAcrossWords(t *testing.T) {
	for _, fill := range []byte{0xff, 0xfe, 0x80, 0x01} {
		for n := 0; n <= 200; n++ {
			b := make([]byte, n)
			for i := range b {
				b[i] = fill
			}
			if n > 3 {
				b[3] = 0x00
			}
			if got, want := Fold(Add(0xffff_ffff, b)), Fold(0xffff_ffff+uint64(reference(b))); got != want {
				t.Fatalf("Fold(Add(%d bytes of %#x)) = %#x, want %#x", n, fill, got, want)
			}
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{40, 1448, 65536} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			var s uint64
			for range b.N {
				s = Add(s, buf)
			}
			sink = s
		})
	}
}

var sink uint64
