package spec_test

import (
	"errors"
	"testing"

	"github.com/capygen/capygen/spec"
)

func TestCapacityGrowsWithLevels(t *testing.T) {
	const bits = 12
	var prev, prevAuthors int
	for l := 1; l <= 4; l++ {
		crcs, err := spec.LevelHashes(nil, l, bits)
		if err != nil {
			t.Fatal(err)
		}
		got, err := spec.MeasureCapacity(crcs, bits, 1)
		if err != nil {
			t.Fatal(err)
		}
		shared := make([]*spec.CRC, l)
		for i := range shared {
			shared[i] = crcs[0]
		}
		authors, err := spec.MeasureCapacity(shared, bits, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d levels x %d bits: capacity@1%% %d (%.1f%% full), authors' %d", l, bits, got, float64(got)*100/float64(l<<bits), authors)
		if got <= prev {
			t.Errorf("%d levels: capacity %d, not above %d levels' %d", l, got, l-1, prev)
		}
		if l == 1 && got != authors {
			t.Errorf("1 level: capacity %d != authors' %d; one level is the same scheme", got, authors)
		}
		if l >= 2 && float64(got) < 1.5*float64(authors) {
			t.Errorf("%d levels: capacity %d, want at least 1.5x the authors' %d", l, got, authors)
		}
		// Extra levels at the same index only widen one bucket: the
		// authors' capacity grows by less than the distinct hashes'.
		if l >= 2 && authors-prevAuthors >= got-prev {
			t.Errorf("%d levels: authors' gain %d >= distinct hashes' gain %d", l, authors-prevAuthors, got-prev)
		}
		prev, prevAuthors = got, authors
	}
}

func TestOneLevelCapacityIsOnePercentFull(t *testing.T) {
	// With one level a key is rejected exactly when its slot is taken, so
	// 1% of rejects is 1% of the slots filled.
	got, err := spec.MeasureCapacity(spec.CRCFamily[:1], 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got < 500 || got > 800 {
		t.Errorf("one 16-bit level: capacity %d, want about 655 (1%% of 65536)", got)
	}
}

func TestLevelHashes(t *testing.T) {
	s, err := spec.Default()
	if err != nil {
		t.Fatal(err)
	}
	d := *s.Directory
	// The spec's own distinct CRCs first, then the family.
	got, err := spec.LevelHashes(&d, 3, 16)
	if err != nil {
		t.Fatal(err)
	}
	if names := [3]string{got[0].Name, got[1].Name, got[2].Name}; names != [3]string{"crc16_arc", "crc16_xmodem", "crc32"} {
		t.Errorf("LevelHashes(default, 3, 16) = %v, want crc16_arc, crc16_xmodem, crc32", names)
	}
	// A repeated hash is replaced; a CRC narrower than the index too.
	d.Levels = []*spec.Level{d.Levels[0], d.Levels[0]}
	if got, err = spec.LevelHashes(&d, 2, 16); err != nil || got[0].Name != "crc16_arc" || got[1].Name != "crc32" {
		t.Errorf("LevelHashes(same hash twice) = %v, %v; want crc16_arc, crc32", got, err)
	}
	if got, err = spec.LevelHashes(&d, 1, 20); err != nil || got[0].Name != "crc32" {
		t.Errorf("LevelHashes(16-bit CRC, 20 bits) = %v, %v; want crc32", got, err)
	}
	if _, err := spec.LevelHashes(nil, len(spec.CRCFamily)+1, 16); !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("LevelHashes(more levels than CRCs) = %v, want ErrInvalid", err)
	}
}

func TestMeasureCapacityRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		crcs []*spec.CRC
		bits int
	}{
		{"no levels", nil, 12},
		{"narrow CRC", []*spec.CRC{{Name: "c8", Width: 8, Poly: 7}}, 12},
		{"nil CRC", []*spec.CRC{nil}, 12},
		{"zero bits", spec.CRCFamily[:1], 0},
		{"too many bits", spec.CRCFamily[:1], spec.MaxCapacityIndexBits + 1},
	} {
		if _, err := spec.MeasureCapacity(tc.crcs, tc.bits, 1); !errors.Is(err, spec.ErrInvalid) {
			t.Errorf("%s: MeasureCapacity = %v, want ErrInvalid", tc.name, err)
		}
	}
}

func BenchmarkMeasureCapacity2x20(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := spec.MeasureCapacity(spec.CRCFamily[:2], 20, 1); err != nil {
			b.Fatal(err)
		}
	}
}
