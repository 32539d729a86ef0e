package dissector

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/internal/tsharktest"
	"github.com/capygen/capygen/spec/spectest"
)

// putBits writes v into the bits bits of b that start at bit off, most
// significant bit first, as the codec lays fields out.
func putBits(b []byte, off, bits int, v uint64) {
	for i := range bits {
		bit := off + i
		if v>>(bits-1-i)&1 == 1 {
			b[bit/8] |= 0x80 >> (bit % 8)
		}
	}
}

// Fields of 5 to 8 bytes, aligned or masked, are shown and summed up
// with their values: Lua has uint64 fields only, read with :uint64() or
// a 64-bit bitfield. tshark decodes a hand-built frame of such a message.
func TestWideFieldsDecode(t *testing.T) {
	s := spectest.Edit(t,
		"      - {name: heartbeat_response, value: 13,", "      - {name: wide, value: 8}\n      - {name: heartbeat_response, value: 13,",
		"  - name: heartbeat_response\n", "  - name: wide\n    stage: wide\n    payload:\n      - {name: tag, bits: 4}\n      - {name: until, bits: 44}\n      - {name: big, bits: 64}\n  - name: heartbeat_response\n")
	files, err := Generate(s, genfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lua := filepath.Join(dir, "tcpmig.lua")
	if err := os.WriteFile(lua, files[Dir+"/tcpmig.lua"], 0o644); err != nil {
		t.Fatal(err)
	}

	const until, big = uint64(0xABC_DEF0_1234), uint64(0xFEDC_BA98_7654_3210)
	body := make([]byte, s.Header.Bytes+14)
	for _, f := range s.Header.Fields {
		switch {
		case f.HasConst:
			putBits(body, f.Offset, f.Bits, f.Const)
		case f.Name == s.Header.StageField:
			putBits(body, f.Offset, f.Bits, 8)
		}
	}
	p := s.Header.Bytes * 8
	putBits(body, p, 4, 5)
	putBits(body, p+4, 44, until)
	putBits(body, p+48, 64, big)

	pcap := filepath.Join(dir, "wide.pcap")
	f, err := os.Create(pcap)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{10, 77, 0, 11}, DstIP: []byte{10, 77, 0, 254}}
	udp := &layers.UDP{SrcPort: layers.UDPPort(s.Transport.UDPPort), DstPort: layers.UDPPort(s.Transport.UDPPort)}
	udp.SetNetworkLayerForChecksum(ip) //nolint:errcheck // an IPv4 layer
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(gopacket.CaptureInfo{CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	f.Close()

	frames := tsharktest.Decode(t, lua, pcap)
	if len(frames) != 1 {
		t.Fatalf("tshark decoded %d frames, want 1: %v", len(frames), frames)
	}
	for field, want := range map[string]string{
		"tcpmig.wide.tag":   "5",
		"tcpmig.wide.until": itoa(until),
		"tcpmig.wide.big":   itoa(big),
	} {
		if got := tsharktest.First(frames[0], field); got != want {
			t.Errorf("%s = %q, want %q (frame %v)", field, got, want, frames[0])
		}
	}
}
