package spec

import (
	"math/rand/v2"
	"testing"
)

func TestCRCTableMatchesSum(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	crcs := append([]*CRC{}, CRCFamily...)
	for _, l := range s.Directory.Levels {
		crcs = append(crcs, l.Hash)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range crcs {
		tb := newCRCTable(c)
		for i := 0; i < 500; i++ {
			data := make([]byte, rng.IntN(12))
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			if got, want := tb.sum(data), c.Sum(data); got != want {
				t.Fatalf("%s table sum(%x) = %#x, want CRC.Sum %#x", c.Name, data, got, want)
			}
		}
	}
}

func TestPermute48IsABijectionOnASample(t *testing.T) {
	seen := map[uint64]bool{}
	for n := uint64(0); n < 1<<16; n++ {
		k := permute48(n, 7)
		if k >= 1<<48 || seen[k] {
			t.Fatalf("permute48(%d) = %#x repeats or leaves 48 bits", n, k)
		}
		seen[k] = true
	}
}
