package tcp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// goldenSYN is a SYN from 10.77.0.1:40000 to 10.77.0.2:80:
//
//	40000 > 80: Flags [S], seq 1000, win 65535,
//	options [mss 1460,nop,wscale 7,nop,nop,sackOK], length 0
var goldenSYN = []byte{
	0x9c, 0x40, 0x00, 0x50, // ports 40000 > 80
	0x00, 0x00, 0x03, 0xe8, // seq 1000
	0x00, 0x00, 0x00, 0x00, // ack 0
	0x80, 0x02, 0xff, 0xff, // data offset 32 bytes, SYN, window 65535
	0xb9, 0xfc, 0x00, 0x00, // checksum, urgent pointer
	0x02, 0x04, 0x05, 0xb4, // MSS 1460
	0x01, 0x03, 0x03, 0x07, // NOP, window scale 7
	0x01, 0x01, 0x04, 0x02, // NOP, NOP, SACK permitted
}

func goldenSYNSegment() Segment {
	return Segment{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: FlagSYN, Window: 65535, MSS: 1460, WindowScale: 7, SACKPermitted: true}
}

func TestAppendSegmentGoldenSYN(t *testing.T) {
	s := goldenSYNSegment()
	got := AppendSegment(nil, addrA.Addr(), addrB.Addr(), &s)
	if !bytes.Equal(got, goldenSYN) {
		t.Fatalf("AppendSegment(SYN) =\n% x\nwant\n% x", got, goldenSYN)
	}
	// An independent decoder agrees on every field and on the checksum.
	var tcp layers.TCP
	if err := tcp.DecodeFromBytes(goldenSYN, gopacket.NilDecodeFeedback); err != nil {
		t.Fatalf("gopacket decode: %v", err)
	}
	if tcp.SrcPort != 40000 || tcp.DstPort != 80 || tcp.Seq != 1000 || !tcp.SYN || tcp.ACK || tcp.Window != 65535 || tcp.DataOffset != 8 {
		t.Fatalf("gopacket sees %+v", tcp)
	}
	var kinds []layers.TCPOptionKind
	for _, o := range tcp.Options {
		kinds = append(kinds, o.OptionType)
	}
	wantKinds := []layers.TCPOptionKind{layers.TCPOptionKindMSS, layers.TCPOptionKindNop, layers.TCPOptionKindWindowScale, layers.TCPOptionKindNop, layers.TCPOptionKindNop, layers.TCPOptionKindSACKPermitted}
	if diff := cmp.Diff(wantKinds, kinds); diff != "" {
		t.Fatalf("gopacket option kinds (-want +got):\n%s", diff)
	}
	ip := &layers.IPv4{SrcIP: addrA.Addr().AsSlice(), DstIP: addrB.Addr().AsSlice(), Protocol: layers.IPProtocolTCP}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	// gopacket sums over the stored checksum too: zero means it verifies.
	sum, err := tcp.ComputeChecksum()
	if err != nil {
		t.Fatalf("gopacket ComputeChecksum: %v", err)
	}
	if sum != 0 {
		t.Fatalf("gopacket finds the checksum %#04x wrong (residue %#04x)", tcp.Checksum, sum)
	}

	parsed, err := ParseSegment(goldenSYN, addrA.Addr(), addrB.Addr())
	if err != nil {
		t.Fatalf("ParseSegment(golden SYN) error: %v", err)
	}
	parsed.Payload = nil
	if diff := cmp.Diff(s, parsed); diff != "" {
		t.Fatalf("ParseSegment(golden SYN) (-want +got):\n%s", diff)
	}
}

func TestSegmentRoundTripIPv6AndPayload(t *testing.T) {
	src, dst := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	for _, n := range []int{0, 1, 2, 7, 1460} {
		s := Segment{SrcPort: 1, DstPort: 2, Seq: 0xfffffff0, Ack: 77, Flags: FlagACK | FlagPSH, Window: 512, WindowScale: -1, Payload: payload(n, uint64(n))}
		b := AppendSegment([]byte("prefix"), src, dst, &s)
		if string(b[:6]) != "prefix" {
			t.Fatalf("AppendSegment clobbered dst's prefix")
		}
		got, err := ParseSegment(b[6:], src, dst)
		if err != nil {
			t.Fatalf("ParseSegment(%d-byte payload, IPv6): %v", n, err)
		}
		if diff := cmp.Diff(s, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
			t.Fatalf("round trip with %d bytes (-want +got):\n%s", n, diff)
		}
		// The IPv4 pseudo header gives a different sum: the checksum covers addresses.
		if _, err := ParseSegment(b[6:], addrA.Addr(), addrB.Addr()); !errors.Is(err, ErrBadChecksum) {
			t.Fatalf("ParseSegment with the wrong addresses = %v, want ErrBadChecksum", err)
		}
	}
}

func TestParseSegmentErrors(t *testing.T) {
	bad := func(mut func(b []byte) []byte) []byte {
		b := append([]byte(nil), goldenSYN...)
		return mut(b)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"19 bytes", goldenSYN[:19], ErrShort},
		{"offset below 20", bad(func(b []byte) []byte { b[12] = 0x40; return b }), ErrBadOffset},
		{"offset beyond segment", bad(func(b []byte) []byte { b[12] = 0xf0; return b }), ErrBadOffset},
		{"flipped bit", bad(func(b []byte) []byte { b[5] ^= 1; return b }), ErrBadChecksum},
		{"truncated options", goldenSYN[:28], ErrBadOffset},
	} {
		_, err := ParseSegment(tc.b, addrA.Addr(), addrB.Addr())
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseSegment(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseOptionsLiberal(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		mss  uint16
		ws   int8
		sack bool
	}{
		{"none", nil, 0, -1, false},
		{"EOL stops", []byte{0, 2, 4, 5, 0xb4, 0, 0, 0}, 0, -1, false},
		{"zero length option stops", []byte{2, 0, 0, 0}, 0, -1, false},
		{"overlong option stops", []byte{1, 1, 3, 9}, 0, -1, false},
		{"MSS with wrong length ignored", []byte{2, 3, 5, 1}, 0, -1, false},
		{"wscale above 14 is 14", []byte{3, 3, 20, 1}, 0, 14, false},
		{"unknown kind skipped", []byte{8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 1, 0}, 256, -1, false},
		{"all three", []byte{2, 4, 2, 0, 1, 3, 3, 2, 4, 2}, 512, 2, true},
	} {
		s := Segment{WindowScale: -1}
		parseOptions(tc.opts, &s)
		if s.MSS != tc.mss || s.WindowScale != tc.ws || s.SACKPermitted != tc.sack {
			t.Errorf("parseOptions(%s) = mss %d ws %d sack %v, want %d %d %v", tc.name, s.MSS, s.WindowScale, s.SACKPermitted, tc.mss, tc.ws, tc.sack)
		}
	}
}

func TestHeaderAccessors(t *testing.T) {
	h := Header(make([]byte, 24))
	h.SetSrcPort(1)
	h.SetDstPort(2)
	h.SetSeq(3)
	h.SetAck(4)
	h.SetDataOffset(24)
	h.SetFlags(FlagSYN | FlagACK)
	h.SetWindow(5)
	h.SetChecksum(6)
	h.SetUrgentPointer(7)
	if h.SrcPort() != 1 || h.DstPort() != 2 || h.Seq() != 3 || h.Ack() != 4 || h.DataOffset() != 24 ||
		h.Flags() != FlagSYN|FlagACK || h.Window() != 5 || h.Checksum() != 6 || h.UrgentPointer() != 7 ||
		len(h.Options()) != 4 || len(h.Payload()) != 0 {
		t.Fatalf("header accessors disagree with setters: % x", []byte(h))
	}
	h.SetDataOffset(60)
	if h.Options() != nil || h.Payload() != nil {
		t.Fatalf("Options/Payload with an offset beyond the slice should be nil")
	}
}

func TestFlagsString(t *testing.T) {
	for f, want := range map[Flags]string{
		0:                           "0",
		FlagSYN:                     "SYN",
		FlagSYN | FlagACK:           "SYN|ACK",
		FlagFIN | FlagPSH | FlagACK: "FIN|PSH|ACK",
		0xff:                        "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR",
	} {
		if got := f.String(); got != want {
			t.Errorf("Flags(%#x).String() = %q, want %q", uint8(f), got, want)
		}
	}
}

func TestSeqLen(t *testing.T) {
	s := Segment{Flags: FlagSYN | FlagFIN, Payload: make([]byte, 10)}
	if got := s.SeqLen(); got != 12 {
		t.Fatalf("SeqLen(SYN|FIN, 10 bytes) = %d, want 12", got)
	}
}

func TestResetFor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Segment
		want Segment
		ok   bool
	}{
		{"RST is never answered", Segment{Flags: FlagRST | FlagACK}, Segment{}, false},
		{"with ACK: seq from ack", Segment{SrcPort: 1, DstPort: 2, Seq: 10, Ack: 99, Flags: FlagACK, Payload: []byte("x")},
			Segment{SrcPort: 2, DstPort: 1, Seq: 99, Flags: FlagRST, WindowScale: -1}, true},
		{"SYN without ACK: ack covers SYN", Segment{SrcPort: 1, DstPort: 2, Seq: 10, Flags: FlagSYN},
			Segment{SrcPort: 2, DstPort: 1, Ack: 11, Flags: FlagRST | FlagACK, WindowScale: -1}, true},
		{"data+FIN without ACK", Segment{SrcPort: 1, DstPort: 2, Seq: 10, Flags: FlagFIN, Payload: []byte("abc")},
			Segment{SrcPort: 2, DstPort: 1, Ack: 14, Flags: FlagRST | FlagACK, WindowScale: -1}, true},
	} {
		got, ok := ResetFor(&tc.in)
		if ok != tc.ok || !cmp.Equal(got, tc.want) {
			t.Errorf("ResetFor(%s) = %v, %v; want %v, %v", tc.name, got.String(), ok, tc.want.String(), tc.ok)
		}
	}
}

func FuzzParseSegment(f *testing.F) {
	f.Add(goldenSYN)
	s := Segment{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 2, Flags: FlagACK | FlagFIN, Window: 9, WindowScale: -1, Payload: []byte("hello")}
	f.Add(AppendSegment(nil, addrA.Addr(), addrB.Addr(), &s))
	opts := Segment{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 2, Flags: FlagACK, Window: 9, WindowScale: -1,
		HasTS: true, TSVal: 7, TSEcr: 9, NumSACK: 3, SACK: [MaxSACKBlocks]SACKBlock{{10, 20}, {30, 40}, {50, 60}}}
	f.Add(AppendSegment(nil, addrA.Addr(), addrB.Addr(), &opts))
	f.Add([]byte{})
	f.Add(make([]byte, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := ParseSegment(b, addrA.Addr(), addrB.Addr())
		if err != nil {
			return
		}
		// A peer may pack more options than our NOP-aligned layout holds:
		// the SACK blocks that do not fit are the ones re-encoding drops.
		seg.NumSACK = uint8(seg.sackFit())
		// What parses re-encodes to something that parses to the same segment.
		again := AppendSegment(nil, addrA.Addr(), addrB.Addr(), &seg)
		seg2, err := ParseSegment(again, addrA.Addr(), addrB.Addr())
		if err != nil {
			t.Fatalf("re-encoded segment does not parse: %v", err)
		}
		if !cmp.Equal(seg, seg2, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })) {
			t.Fatalf("round trip changed the segment:\n%v\n%v", seg.String(), seg2.String())
		}
	})
}

func BenchmarkParseSegment(b *testing.B) {
	s := Segment{SrcPort: 80, DstPort: 40000, Seq: 1, Ack: 2, Flags: FlagACK, Window: 9, WindowScale: -1, Payload: payload(1460, 1)}
	buf := AppendSegment(nil, addrA.Addr(), addrB.Addr(), &s)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSegment(buf, addrA.Addr(), addrB.Addr()); err != nil {
			b.Fatal(err)
		}
	}
}
