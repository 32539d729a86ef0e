package p4

import (
	mbits "math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/capygen/capygen/spec"
	"github.com/capygen/capygen/spec/spectest"
)

// bfHash is a CRC as bf-p4c computes a CRCPolynomial's hash (bf-utils'
// dynamic_hash, determine_crc_gfm): input bytes reflected when reversed,
// init xored into the first bits, the register xored with the xor
// argument, and only then the output reflected.
func bfHash(width int, poly uint64, reversed bool, init, xor uint64, data []byte) uint64 {
	w := uint(width)
	top := uint64(1) << (w - 1)
	mask := top<<1 - 1
	reg := init & mask
	for _, b := range data {
		if reversed {
			b = mbits.Reverse8(b)
		}
		reg ^= uint64(b) << (w - 8)
		for range 8 {
			if reg&top != 0 {
				reg = (reg<<1 ^ poly) & mask
			} else {
				reg = reg << 1 & mask
			}
		}
	}
	out := (reg ^ xor) & mask
	if reversed {
		out = mbits.Reverse64(out) >> (64 - w)
	}
	return out
}

// The P4's CRC arguments make bf-p4c's hash equal the spec's CRC (which
// the Go model computes): a reversed CRC whose xor_out is not its own bit
// reversal indexed other slots on the switch than in the model.
func TestP4CRCMatchesTheSpec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, h := range []spec.CRC{
		{Name: "arc", Width: 16, Poly: 0x8005, Reversed: true},
		{Name: "arc-odd", Width: 16, Poly: 0x8005, Reversed: true, Init: 0x1234, XorOut: 0x00FF},
		{Name: "kermit-odd", Width: 16, Poly: 0x1021, Reversed: true, Init: 0x1D0F, XorOut: 0x0001},
		{Name: "xmodem-odd", Width: 16, Poly: 0x1021, Init: 0x1D0F, XorOut: 0x0001},
		{Name: "crc32c", Width: 32, Poly: 0x1EDC6F41, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
		{Name: "crc32c-odd", Width: 32, Poly: 0x1EDC6F41, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0x0000FFFF},
	} {
		for range 1000 {
			var key [6]byte
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			want := h.Sum(key[:])
			if got := bfHash(h.Width, h.Poly, h.Reversed, h.Init, p4XorOut(&h), key[:]); got != want {
				t.Fatalf("%s: key %x hashes to %#x on the switch, %#x in the spec", h.Name, key, got, want)
			}
		}
	}
}

// A doc ending in a backslash does not splice the next line of the P4
// into its comment (the preprocessor joins lines before it strips
// comments): the constant after it survives.
func TestDocEndingInBackslash(t *testing.T) {
	s := spectest.Edit(t, `{name: heartbeat_response, value: 13, doc: "The switch answers with the current minimum."}`,
		`{name: heartbeat_response, value: 13, doc: "see C:\\"}`)
	files := generate(t, s)
	for name, b := range files {
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(name, ".p4") && strings.HasSuffix(line, `\`) {
				t.Errorf("%s:%d ends in a backslash: %q", name, i+1, line)
			}
		}
	}
}
