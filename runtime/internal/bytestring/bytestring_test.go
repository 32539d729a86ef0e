package bytestring

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, c := range []struct {
		v    uint64
		want []byte
	}{{0, []byte{0}}, {99, []byte{0x63}}, {0x1f90, []byte{0x1f, 0x90}}, {1 << 63, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}}} {
		if got := Encode(c.v); !bytes.Equal(got, c.want) || Uint(got) != c.v {
			t.Errorf("Encode(%d) = %x (reads %d), want %x", c.v, got, Uint(got), c.want)
		}
	}
	if Uint([]byte{0, 0, 0x63}) != 99 {
		t.Error("leading zero bytes change the value")
	}
	m := [6]byte{2, 0, 0, 0, 0, 0x0b}
	if MAC(MACValue(m[:])) != m || IPv4(0x0a4d000b) != [4]byte{10, 77, 0, 11} {
		t.Error("MAC or IPv4 does not round-trip")
	}
}
