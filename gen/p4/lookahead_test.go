package p4

import (
	"errors"
	"testing"
)

// TestLookaheadOf: the parser's lookahead covers the header up to the end
// of its last magic field, with a mask when other bits lie in between.
func TestLookaheadOf(t *testing.T) {
	for _, c := range []struct {
		name  string
		magic []field
		want  magicLook
	}{
		{"none", nil, magicLook{}},
		{"one field at the start", []field{{Const: "M", Bits: 32, constVal: 0xCAFEDEAD}},
			magicLook{Bits: 32, Value: "M", Mask: "32w0xFFFFFFFF", Full: true}},
		{"a byte after a gap", []field{{Const: "V", off: 8, Bits: 8, constVal: 0x2A}},
			magicLook{Bits: 16, Value: "16w0x002A", Mask: "16w0x00FF"}},
		{"two fields", []field{{Const: "A", Bits: 16, constVal: 0xCAFE}, {Const: "B", off: 24, Bits: 8, constVal: 1}},
			magicLook{Bits: 32, Value: "32w0xCAFE0001", Mask: "32w0xFFFF00FF"}},
		{"64 bits", []field{{Const: "A", Bits: 32, constVal: 1}, {Const: "B", off: 32, Bits: 32, constVal: 2}},
			magicLook{Bits: 64, Value: "64w0x0000000100000002", Mask: "64w0xFFFFFFFFFFFFFFFF", Full: true}},
	} {
		got, err := lookaheadOf(c.magic)
		if err != nil || got != c.want {
			t.Errorf("%s: lookaheadOf = %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := lookaheadOf([]field{{Name: "late", Const: "L", off: 60, Bits: 8}}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("a magic past bit 64: %v, want ErrUnsupported", err)
	}
}
