package tcpmig

// Hand-written tests for the default spec (spec/capybara.yaml): byte-literal
// vectors and every error path. The generated *_gen_test.go files hold the
// spec-independent round trips, fuzz targets and benchmarks.

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var (
	origin = [4]byte{10, 77, 0, 10}
	client = [4]byte{10, 77, 0, 100}
)

// prepareMigAckLoad is a PREPARE_MIG_ACK with LOAD set, as the target sends
// it through the switch.
var prepareMigAckLoad = []byte{
	0xca, 0xfe, 0xde, 0xad, // magic
	0x0a, 0x4d, 0x00, 0x0a, // origin_ip 10.77.0.10
	0x1f, 0x90, // origin_port 8080
	0x0a, 0x4d, 0x00, 0x64, // client_ip 10.77.0.100
	0xc7, 0x38, // client_port 51000
	0x00, 0x00, // fragment_index 0
	0x31, // stage 3 (prepare_mig_ack) << 4 | flags_reserved 0 | next_fragment 0 | load 1
	0x00, // reserved
}

// connStateFrag2 is fragment 2 of a 4096-byte CONN_STATE, more to follow,
// carrying "abc" (a length lie the reassembler must catch, not Decode).
var connStateFrag2 = []byte{
	0xca, 0xfe, 0xde, 0xad, // magic
	0x0a, 0x4d, 0x00, 0x0a, // origin_ip 10.77.0.10
	0x1f, 0x90, // origin_port 8080
	0x0a, 0x4d, 0x00, 0x64, // client_ip 10.77.0.100
	0xc7, 0x38, // client_port 51000
	0x00, 0x02, // fragment_index 2
	0x42,                   // stage 4 (conn_state) << 4 | next_fragment (bit 1)
	0x00,                   // reserved
	0x00, 0x00, 0x10, 0x00, // total_length 4096
	'a', 'b', 'c', // data
}

// connClosed is the release a server sends once the migrated connection
// 10.77.0.100:51000 -> 10.77.0.10:8080 has finished: the header alone.
var connClosed = []byte{
	0xca, 0xfe, 0xde, 0xad, // magic
	0x0a, 0x4d, 0x00, 0x0a, // origin_ip 10.77.0.10
	0x1f, 0x90, // origin_port 8080
	0x0a, 0x4d, 0x00, 0x64, // client_ip 10.77.0.100
	0xc7, 0x38, // client_port 51000
	0x00, 0x00, // fragment_index 0
	0x60, // stage 6 (conn_closed) << 4
	0x00, // reserved
}

// heartbeatUpdate reports workload 0x12345.
var heartbeatUpdate = []byte{
	0xca, 0xfe, 0xde, 0xad, // magic
	0x0a, 0x4d, 0x00, 0x0a, // origin_ip 10.77.0.10
	0x00, 0x00, // origin_port 0
	0x00, 0x00, 0x00, 0x00, // client_ip 0.0.0.0
	0x00, 0x00, // client_port 0
	0x00, 0x00, // fragment_index 0
	0xc0,                   // stage 12 (heartbeat_update) << 4
	0x00,                   // reserved
	0x00, 0x01, 0x23, 0x45, // workload
}

func TestVectors(t *testing.T) {
	hdr := TCPMigFields{OriginIP: origin, OriginPort: 8080, ClientIP: client, ClientPort: 51000}
	tests := []struct {
		name  string
		msg   Message
		bytes []byte
	}{
		{"prepare_mig_ack", &PrepareMigAck{TCPMigFields: withLoad(hdr)}, prepareMigAckLoad},
		{"conn_state", &ConnState{TCPMigFields: withFrag(hdr, 2, true), TotalLength: 4096, Data: []byte("abc")}, connStateFrag2},
		{"heartbeat_update", &HeartbeatUpdate{TCPMigFields: TCPMigFields{OriginIP: origin}, Workload: 0x12345}, heartbeatUpdate},
		{"conn_closed", &ConnClosed{TCPMigFields: hdr}, connClosed},
	}
	for _, tt := range tests {
		got := make([]byte, tt.msg.EncodedLen())
		if _, err := tt.msg.Encode(got); err != nil || !bytes.Equal(got, tt.bytes) {
			t.Errorf("%s: Encode = %x, %v; want %x", tt.name, got, err, tt.bytes)
		}
		back := newMessage(tt.msg.Stage())
		if err := back.Decode(tt.bytes); err != nil {
			t.Fatalf("%s: Decode: %v", tt.name, err)
		}
		if again := encoded(t, back); !bytes.Equal(again, tt.bytes) {
			t.Errorf("%s: Encode(Decode(b)) = %x, want %x", tt.name, again, tt.bytes)
		}
	}
	// The view reads the same bytes in place.
	v := TCPMig(prepareMigAckLoad)
	if v.Stage() != StagePrepareMigAck || !v.Load() || v.NextFragment() || v.ClientPort() != 51000 || v.OriginIP() != origin || !v.Valid() {
		t.Errorf("view of prepare_mig_ack = stage %v load %v next %v port %d ip %v", v.Stage(), v.Load(), v.NextFragment(), v.ClientPort(), v.OriginIP())
	}
	if v[OffsetStage]&MaskStage>>ShiftStage != byte(StagePrepareMigAck) || v[OffsetLoad]&MaskLoad == 0 {
		t.Errorf("offset constants do not locate stage and load in %x", v[OffsetStage])
	}
}

func withLoad(h TCPMigFields) TCPMigFields { h.Load = true; return h }

func withFrag(h TCPMigFields, i uint16, more bool) TCPMigFields {
	h.FragmentIndex, h.NextFragment = i, more
	return h
}

func TestViewSetters(t *testing.T) {
	b := TCPMig(make([]byte, HeaderLen))
	b.SetMagic(MagicValue)
	b.SetStage(StageConnState)
	b.SetNextFragment(true)
	b.SetLoad(true)
	b.SetFragmentIndex(0xbeef)
	b.SetOriginIP(origin)
	b.SetOriginPort(1)
	b.SetClientIP(client)
	b.SetClientPort(2)
	b.SetLoad(false)
	want := TCPMigFields{OriginIP: origin, OriginPort: 1, ClientIP: client, ClientPort: 2, FragmentIndex: 0xbeef, NextFragment: true}
	if got := b.Fields(); got != want || b.Stage() != StageConnState || b[18] != 0x42 {
		t.Errorf("after setters: %+v stage %v byte18 %#x; want %+v conn_state 0x42", got, b.Stage(), b[18], want)
	}
	if string(b.Payload()) != "" {
		t.Errorf("Payload of a bare header = %x", b.Payload())
	}
}

func TestStageString(t *testing.T) {
	if got := StageHeartbeatResponse.String(); got != "heartbeat_response" {
		t.Errorf("String() = %q", got)
	}
	if got := Stage(9).String(); got != "Stage(9)" {
		t.Errorf("Stage(9).String() = %q", got)
	}
	if Stage(0).Valid() || !StageRejected.Valid() {
		t.Error("Valid: zero must be invalid, rejected valid")
	}
}

func TestReservedBitsIgnored(t *testing.T) {
	b := bytes.Clone(prepareMigAckLoad)
	b[18] |= MaskFlagsReserved
	var m PrepareMigAck
	if err := m.Decode(b); err != nil {
		t.Fatalf("Decode with reserved bits set: %v", err)
	}
	if got := encoded(t, &m); !bytes.Equal(got, prepareMigAckLoad) {
		t.Errorf("Encode cleared reserved bits to %x, want %x", got, prepareMigAckLoad)
	}
}

func TestEpochRoundTrips(t *testing.T) {
	b := bytes.Clone(prepareMigAckLoad)
	b[19] = 0xa7
	var m PrepareMigAck
	if err := m.Decode(b); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if m.Epoch != 0xa7 {
		t.Fatalf("Decode epoch = %#x, want 0xa7", m.Epoch)
	}
	if got := encoded(t, &m); !bytes.Equal(got, b) {
		t.Errorf("Encode = %x, want %x", got, b)
	}
}

func TestDecodeErrors(t *testing.T) {
	withByte := func(b []byte, i int, v byte) []byte { b = bytes.Clone(b); b[i] = v; return b }
	tests := []struct {
		name string
		msg  Message
		in   []byte
		want error
		text string
	}{
		{"empty", &PrepareMigAck{}, nil, ErrShortBuffer, "needs 20 bytes, have 0"},
		{"short header", &PrepareMigAck{}, prepareMigAckLoad[:19], ErrShortBuffer, "needs 20 bytes, have 19"},
		{"bad magic", &PrepareMigAck{}, withByte(prepareMigAckLoad, 0, 0xcb), ErrBadMagic, "0xcbfedead"},
		{"stage 0", &PrepareMigAck{}, withByte(prepareMigAckLoad, 18, 0x01), ErrUnknownStage, "stage 0"},
		{"stage 8", &PrepareMigAck{}, withByte(prepareMigAckLoad, 18, 0x81), ErrUnknownStage, "stage 8"},
		{"stage 15", &PrepareMigAck{}, withByte(prepareMigAckLoad, 18, 0xf1), ErrUnknownStage, "stage 15"},
		{"wrong stage", &PrepareMig{}, prepareMigAckLoad, ErrWrongStage, "got prepare_mig_ack, want prepare_mig"},
		{"trailing byte", &PrepareMigAck{}, append(bytes.Clone(prepareMigAckLoad), 0), ErrBadLength, "21 bytes, want 20"},
		{"conn_closed with a trailing byte", &ConnClosed{}, append(bytes.Clone(connClosed), 0), ErrBadLength, "21 bytes, want 20"},
		{"conn_closed as conn_state_ack", &ConnStateAck{}, connClosed, ErrWrongStage, "got conn_closed, want conn_state_ack"},
		{"short payload", &HeartbeatUpdate{}, heartbeatUpdate[:22], ErrShortBuffer, "heartbeat_update needs 24 bytes, have 22"},
		{"conn_state without total", &ConnState{}, connStateFrag2[:21], ErrShortBuffer, "conn_state needs 24 bytes"},
		{"oversized fragment", &ConnState{}, append(bytes.Clone(connStateFrag2[:24]), make([]byte, ConnStateFragmentBytes+1)...), ErrBadLength, "carries 1449 bytes, at most 1448"},
	}
	for _, tt := range tests {
		err := tt.msg.Decode(tt.in)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: Decode = %v, want %v containing %q", tt.name, err, tt.want, tt.text)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	m := &HeartbeatUpdate{Workload: 1}
	if _, err := m.Encode(make([]byte, 23)); !errors.Is(err, ErrShortBuffer) || !strings.Contains(err.Error(), "needs 24 bytes, have 23") {
		t.Errorf("Encode into 23 bytes = %v", err)
	}
	if _, err := m.EncodeUDP(make([]byte, 31), testSrc, testDst); !errors.Is(err, ErrShortBuffer) || !strings.Contains(err.Error(), "needs 32 bytes") {
		t.Errorf("EncodeUDP into 31 bytes = %v", err)
	}
	big := &ConnState{Data: make([]byte, ConnStateFragmentBytes+1)}
	if _, err := big.Encode(make([]byte, 2000)); !errors.Is(err, ErrBadLength) {
		t.Errorf("Encode of an oversized fragment = %v, want ErrBadLength", err)
	}
	v6 := netip.MustParseAddrPort("[fd00::1]:7071")
	if _, err := m.EncodeUDP(make([]byte, 64), v6, testDst); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("EncodeUDP from IPv6 = %v, want ErrNotIPv4", err)
	}
	if _, err := FinishUDP(make([]byte, 3), testSrc, testDst); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("FinishUDP(3 bytes) = %v", err)
	}
	if _, err := FinishUDP(make([]byte, 70000), testSrc, testDst); !errors.Is(err, ErrBadLength) {
		t.Errorf("FinishUDP(70000 bytes) = %v", err)
	}
}

// TestChecksumMatchesGopacket checks DatagramChecksum against gopacket's own
// UDP checksum for datagrams of odd and even lengths.
func TestChecksumMatchesGopacket(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 100, 1447, 1448} {
		m := &ConnState{TCPMigFields: TCPMigFields{OriginIP: origin, ClientIP: client}, TotalLength: 9999, Data: pattern(n, byte(n))}
		d := make([]byte, UDPHeaderLen+m.EncodedLen())
		if _, err := m.EncodeUDP(d, testSrc, testDst); err != nil {
			t.Fatal(err)
		}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: testSrc.Addr().AsSlice(), DstIP: testDst.Addr().AsSlice()}
		udp := &layers.UDP{SrcPort: layers.UDPPort(testSrc.Port()), DstPort: layers.UDPPort(testDst.Port())}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			t.Fatal(err)
		}
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, udp, gopacket.Payload(d[UDPHeaderLen:])); err != nil {
			t.Fatal(err)
		}
		if got, want := d[:UDPHeaderLen], buf.Bytes()[:UDPHeaderLen]; !bytes.Equal(got, want) {
			t.Errorf("%d data bytes: UDP header %x, gopacket writes %x", n, got, want)
		}
	}
}

func TestDecodeUDPErrors(t *testing.T) {
	m := &HeartbeatUpdate{TCPMigFields: TCPMigFields{OriginIP: origin}, Workload: 7}
	good := make([]byte, UDPHeaderLen+m.EncodedLen())
	if _, err := m.EncodeUDP(good, testSrc, testDst); err != nil {
		t.Fatal(err)
	}
	src, dst := testSrc.Addr(), testDst.Addr()
	mod := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	tests := []struct {
		name string
		src  netip.Addr
		in   []byte
		want error
		text string
	}{
		{"ipv6", netip.MustParseAddr("fd00::1"), good, ErrNotIPv4, "fd00::1"},
		{"short", src, good[:7], ErrShortBuffer, "udp header needs 8 bytes, have 7"},
		{"length over buffer", src, good[:30], ErrBadLength, "length field says 32, the datagram has 30"},
		{"length under header", src, mod(func(b []byte) { b[4], b[5] = 0, 7 }), ErrBadLength, "says 7"},
		{"zero checksum", src, mod(func(b []byte) { b[6], b[7] = 0, 0 }), ErrBadChecksum, "zero"},
		{"bad checksum", src, mod(func(b []byte) { b[7]++ }), ErrBadChecksum, "want"},
		{"other source", netip.MustParseAddr("10.77.0.3"), good, ErrBadChecksum, "want"},
		{"truncated message", src, truncatedDatagram(t), ErrShortBuffer, "heartbeat_update needs 24 bytes, have 22"},
	}
	for _, tt := range tests {
		_, err := DecodeUDP(tt.src, dst, tt.in)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: DecodeUDP = %v, want %v containing %q", tt.name, err, tt.want, tt.text)
		}
	}
	// Ethernet padding after the datagram is trimmed by the length field.
	h, err := DecodeUDP(src, dst, append(bytes.Clone(good), 0, 0, 0, 0))
	var got HeartbeatUpdate
	if err != nil || got.Decode(h) != nil || got.Workload != 7 {
		t.Errorf("DecodeUDP of a padded datagram = %v, workload %d", err, got.Workload)
	}
}

// truncatedDatagram is a valid UDP datagram whose heartbeat_update lost
// its last two bytes (the checksum covers what is there).
func truncatedDatagram(t *testing.T) []byte {
	t.Helper()
	d := make([]byte, UDPHeaderLen+22)
	copy(d[UDPHeaderLen:], heartbeatUpdate[:22])
	if _, err := FinishUDP(d, testSrc, testDst); err != nil {
		t.Fatal(err)
	}
	return d
}
