package pipeline

import (
	"math/rand"
	"testing"
)

// TestCRCParity checks every level's table-driven CRC against the bit-wise
// reference (spec.CRC.Sum) and Index against (*spec.Directory).Index.
func TestCRCParity(t *testing.T) {
	s := loadSpec(t)
	if len(s.Directory.Levels) != Levels || s.Directory.IndexBits != IndexBits {
		t.Fatalf("spec has %d levels x %d bits, package %d x %d", len(s.Directory.Levels), s.Directory.IndexBits, Levels, IndexBits)
	}
	r := rand.New(rand.NewSource(3))
	keys := [][6]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {10, 77, 0, 1, 0x9c, 0x40}}
	for i := 0; i < 20000; i++ {
		var k [6]byte
		r.Read(k[:])
		keys = append(keys, k)
	}
	for _, k := range keys {
		ip, port := [4]byte(k[:4]), uint16(k[4])<<8|uint16(k[5])
		got := levelIndexes(&k)
		for l := 0; l < Levels; l++ {
			mask := uint64(1)<<s.Directory.Levels[l].Hash.Width - 1
			if s.Directory.Levels[l].Hash.Width == 64 {
				mask = ^uint64(0)
			}
			if c, want := levelCRC(l, &k), s.Directory.Levels[l].Hash.Sum(k[:]); c&mask != want {
				t.Fatalf("level %d CRC of % x = %#x, reference %#x", l, k, c, want)
			}
			want := s.Directory.Index(l, ip, port)
			if got[l] != want {
				t.Fatalf("levelIndexes(% x)[%d] = %d, reference %d", k, l, got[l], want)
			}
			if i, err := Index(l, ip, port); err != nil || i != want {
				t.Fatalf("Index(%d, % x) = %d, %v; want %d", l, k, i, err, want)
			}
		}
	}
}
