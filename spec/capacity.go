package spec

import (
	"fmt"
	"math/bits"
)

// This file is the one measurement of a directory's capacity: `capygen
// vet` (the same-hash warning) and `capygen plan` (the capacity@1% and
// authors@1% columns) both call MeasureCapacity, so they quote the same
// figures for the same shape and seed.

// CapacitySeed is the seed Vet measures with and `capygen plan` uses by
// default, so their figures agree.
const CapacitySeed = 1

// CapacityProbes is the number of would-be inserts MeasureCapacity tests
// at each checkpoint; 1% of them is 164 keys, so the figure is good to
// about 8%.
const CapacityProbes = 16384

// MaxCapacityIndexBits bounds MeasureCapacity's index width: 2^26 slots a
// level is already far beyond any Tofino register.
const MaxCapacityIndexBits = 26

// CRCFamily is the deterministic list of CRCs that levels beyond a spec's
// own (and spec levels whose CRC is narrower than the index, or repeats an
// earlier level's) are measured with: the 32-bit polynomials of the CRC
// catalogue in a fixed order (Koopman & Chakravarty's and the
// ISO/Castagnoli ones), all reflected with the usual init and final XOR so
// none is a linear shift of another.
var CRCFamily = []*CRC{
	{Name: "crc32", Width: 32, Poly: 0x04C11DB7, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
	{Name: "crc32c", Width: 32, Poly: 0x1EDC6F41, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
	{Name: "crc32k", Width: 32, Poly: 0x741B8CD7, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
	{Name: "crc32q", Width: 32, Poly: 0x814141AB, Reversed: false, Init: 0x00000000, XorOut: 0x00000000},
	{Name: "crc32k2", Width: 32, Poly: 0x32583499, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
	{Name: "crc32d", Width: 32, Poly: 0xA833982B, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
	{Name: "crc32_bzip2", Width: 32, Poly: 0x04C11DB7, Reversed: false, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
	{Name: "crc32c_msb", Width: 32, Poly: 0x1EDC6F41, Reversed: false, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
}

// LevelHashes returns a distinct CRC for each of n levels of an index of
// indexBits: d's level CRC where it exists, is at least indexBits wide and
// differs from the earlier levels' CRCs, else the first CRCFamily member
// not already in use. d may be nil (every level from CRCFamily).
func LevelHashes(d *Directory, n, indexBits int) ([]*CRC, error) {
	out := make([]*CRC, 0, n)
	used := func(c *CRC) bool {
		for _, o := range out {
			if SameCRC(o, c) {
				return true
			}
		}
		return false
	}
	own := 0
	if d != nil {
		own = len(d.Levels)
	}
	next := 0
	for i := 0; i < n; i++ {
		if i < own && d.Levels[i].Hash != nil && d.Levels[i].Hash.Width >= indexBits && !used(d.Levels[i].Hash) {
			out = append(out, d.Levels[i].Hash)
			continue
		}
		for next < len(CRCFamily) && used(CRCFamily[next]) {
			next++
		}
		if next == len(CRCFamily) {
			return nil, fmt.Errorf("%d levels of %d bits need more distinct CRCs than the spec's %d and the %d of spec.CRCFamily; use fewer levels: %w",
				n, indexBits, own, len(CRCFamily), ErrInvalid)
		}
		out = append(out, CRCFamily[next])
		next++
	}
	return out, nil
}

// SameCRC reports whether a and b compute the same function (names aside).
func SameCRC(a, b *CRC) bool {
	return a.Width == b.Width && a.Poly == b.Poly && a.Reversed == b.Reversed && a.Init == b.Init && a.XorOut == b.XorOut
}

// MeasureCapacity simulates the write-if-empty directory of gen/SWITCH.md
// with one level per CRC, each of 2^indexBits slots, and returns how many
// entries it holds when 1% of inserts are rejected.
//
// Precisely: distinct client keys (IPv4 address and port) are inserted one
// by one. A key goes to the first level whose slot (the level's CRC of the
// key's 6 bytes, low indexBits bits) is empty, and is rejected when every
// level's slot is taken. Every ceil(slots/1024) inserts, a fixed set of
// CapacityProbes other keys is tested without inserting them; at the first
// checkpoint where 1% or more of the probes would be rejected, the number
// of stored entries is the capacity. Inserts are capped at 4 x slots;
// reaching the cap returns the stored count.
//
// Why probes and not the running reject rate of the inserts: at 1% of
// rejects a one-level directory is only 1% full, so a window of recent
// inserts long enough to see 1% reliably spans most of the fill and blurs
// the point; the probes' reject rate is exactly the chance that the next
// insert is rejected, and it only rises as the directory fills. And why
// stored entries, not attempts: the entries are what the switch holds.
//
// The keys are a seeded pseudo-random permutation of the 48-bit key space
// (a counter through a keyed Feistel network), so they are distinct
// without a set, and the same seed gives the same keys. Giving the same CRC
// for every level measures the authors' scheme (one index shared by all
// levels).
func MeasureCapacity(crcs []*CRC, indexBits int, seed uint64) (int, error) {
	if len(crcs) == 0 {
		return 0, fmt.Errorf("measure capacity: no levels to measure; give at least one CRC: %w", ErrInvalid)
	}
	if indexBits < 1 || indexBits > MaxCapacityIndexBits {
		return 0, fmt.Errorf("measure capacity: index bits %d is outside 1..%d: %w", indexBits, MaxCapacityIndexBits, ErrInvalid)
	}
	tables := make([]*crcTable, len(crcs))
	for i, c := range crcs {
		if c == nil || c.Width < indexBits || c.Width > 64 || c.Width < 8 {
			return 0, fmt.Errorf("measure capacity: level %d's CRC cannot give a %d-bit index (it needs a width of 8..64 and at least the index); use a wider CRC: %w", i, indexBits, ErrInvalid)
		}
		tables[i] = newCRCTable(c)
	}
	levels := len(crcs)
	slotsPerLevel := 1 << indexBits
	slots := levels * slotsPerLevel
	mask := uint64(slotsPerLevel - 1)
	seed = mix64(seed)
	index := func(t *crcTable, n uint64) uint32 {
		k := permute48(n, seed)
		key := [6]byte{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
		return uint32(t.sum(key[:]) & mask)
	}
	// Probe keys come from the top half of the counter range, inserted
	// keys from the bottom, so the two sets never meet.
	probes := make([][]uint32, levels)
	for l, t := range tables {
		probes[l] = make([]uint32, CapacityProbes)
		for p := range probes[l] {
			probes[l][p] = index(t, 1<<47+uint64(p))
		}
	}
	used := make([][]uint64, levels)
	for i := range used {
		used[i] = make([]uint64, (slotsPerLevel+63)/64)
	}
	isUsed := func(l int, idx uint32) bool { return used[l][idx/64]&(1<<(idx%64)) != 0 }
	threshold := (CapacityProbes + 99) / 100
	rejectedProbes := func() bool {
		n := 0
	probe:
		for p := 0; p < CapacityProbes; p++ {
			for l := range used {
				if !isUsed(l, probes[l][p]) {
					continue probe
				}
			}
			if n++; n >= threshold {
				return true
			}
		}
		return false
	}
	every := max(1, slots/1024)
	stored := 0
	for n := 0; n < 4*slots; n++ {
		for l, t := range tables {
			if idx := index(t, uint64(n)); !isUsed(l, idx) {
				used[l][idx/64] |= 1 << (idx % 64)
				stored++
				break
			}
		}
		if (n+1)%every == 0 && rejectedProbes() {
			return stored, nil
		}
	}
	return stored, nil
}

// permute48 is a bijection on 48-bit values: a four-round Feistel network
// on 24-bit halves whose round function is a strong 64-bit mixer keyed by
// the seed. Any round function gives a bijection; a strong one makes the
// keys look random to the (linear) CRCs, which a counter would not.
func permute48(x, seed uint64) uint64 {
	const half = 1<<24 - 1
	l, r := x>>24&half, x&half
	for round := uint64(0); round < 4; round++ {
		l, r = r, l^mix64(r^seed<<8^round)&half
	}
	return l<<24 | r
}

func mix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// crcTable is a byte-at-a-time version of CRC.Sum (the reference);
// TestCRCTableMatchesSum keeps them equal.
type crcTable struct {
	width    uint
	reversed bool
	init     uint64
	xorOut   uint64
	mask     uint64
	table    [256]uint64
}

func newCRCTable(c *CRC) *crcTable {
	w := uint(c.Width)
	mask := uint64(1)<<w - 1
	if w == 64 {
		mask = ^uint64(0)
	}
	t := &crcTable{width: w, reversed: c.Reversed, xorOut: c.XorOut & mask, mask: mask}
	if c.Reversed {
		rp := bits.Reverse64(c.Poly&mask) >> (64 - w)
		for i := range t.table {
			crc := uint64(i)
			for j := 0; j < 8; j++ {
				if crc&1 != 0 {
					crc = crc>>1 ^ rp
				} else {
					crc >>= 1
				}
			}
			t.table[i] = crc
		}
		t.init = bits.Reverse64(c.Init&mask) >> (64 - w)
		return t
	}
	top := uint64(1) << (w - 1)
	for i := range t.table {
		crc := uint64(i) << (w - 8)
		for j := 0; j < 8; j++ {
			if crc&top != 0 {
				crc = (crc<<1 ^ c.Poly) & mask
			} else {
				crc = crc << 1 & mask
			}
		}
		t.table[i] = crc
	}
	t.init = c.Init & mask
	return t
}

func (t *crcTable) sum(data []byte) uint64 {
	crc := t.init
	if t.reversed {
		for _, b := range data {
			crc = crc>>8 ^ t.table[byte(crc)^b]
		}
	} else {
		for _, b := range data {
			crc = (crc<<8 ^ t.table[byte(crc>>(t.width-8))^b]) & t.mask
		}
	}
	return (crc ^ t.xorOut) & t.mask
}
