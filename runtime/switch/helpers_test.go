package softswitch

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/link"
)

// recorder is a link.Endpoint that keeps what the switch sends.
type recorder struct {
	mac  net.HardwareAddr
	sent [][]byte
}

var _ link.Endpoint = (*recorder)(nil)

func (r *recorder) MAC() net.HardwareAddr { return r.mac }
func (r *recorder) MTU() int              { return 1500 }
func (r *recorder) Send(f []byte) error {
	if len(f) > 1514 {
		return link.ErrFrameTooLarge
	}
	r.sent = append(r.sent, append([]byte(nil), f...))
	return nil
}
func (r *recorder) Receive(time.Duration, func([]byte)) (int, error) { return 0, link.ErrClosed }
func (r *recorder) Close() error                                     { return nil }

// take returns and forgets what was sent.
func (r *recorder) take() [][]byte {
	s := r.sent
	r.sent = nil
	return s
}

// batcher is a recorder that batches: frames are sent on Flush only.
type batcher struct {
	recorder
	queue    [][]byte
	flushes  int
	flushErr error // what Flush returns, after sending
}

var _ link.Batcher = (*batcher)(nil)

func (b *batcher) Queue(f []byte) error {
	b.queue = append(b.queue, append([]byte(nil), f...))
	return nil
}

func (b *batcher) Flush() error {
	b.flushes++
	b.sent = append(b.sent, b.queue...)
	b.queue = nil
	return b.flushErr
}

// The test network: a client port and two server ports, hosts behind
// each, and the switch's control address.
var (
	macClient = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macS1     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	macS2     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x12}
	ipClient  = netip.MustParseAddr("10.77.0.1")
	ipS1      = netip.MustParseAddr("10.77.0.11")
	ipS2      = netip.MustParseAddr("10.77.0.12")
	ipControl = netip.MustParseAddr("10.77.0.254")
	broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

const (
	pClient pipeline.Port = 1
	pS1     pipeline.Port = 2
	pS2     pipeline.Port = 3
)

// testbed is a switch on recorders.
type testNet struct {
	sw                *Switch
	client, s1, s2    *recorder
	clientB, s1B, s2B *batcher
}

func newTestNet(t testing.TB, mod func(*Config)) *testNet {
	t.Helper()
	n := &testNet{
		clientB: &batcher{recorder: recorder{mac: net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}}},
		s1B:     &batcher{recorder: recorder{mac: net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}}},
		s2B:     &batcher{recorder: recorder{mac: net.HardwareAddr{2, 0xaa, 0, 0, 0, 3}}},
	}
	n.client, n.s1, n.s2 = &n.clientB.recorder, &n.s1B.recorder, &n.s2B.recorder
	cfg := Config{
		Ports: []PortConfig{
			{ID: pClient, Name: "client", Role: pipeline.RoleClient, Endpoint: n.clientB},
			{ID: pS1, Name: "s1", Role: pipeline.RoleServer, Endpoint: n.s1B},
			{ID: pS2, Name: "s2", Role: pipeline.RoleServer, Endpoint: n.s2B},
		},
		Hosts: []Host{
			{Addr: ipClient, Port: pClient, MAC: macClient},
			{Addr: ipS1, Port: pS1, MAC: macS1},
			{Addr: ipS2, Port: pS2, MAC: macS2},
		},
		Control: Control{Addr: ipControl},
	}
	if mod != nil {
		mod(&cfg)
	}
	sw, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.sw = sw
	return n
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return buf.Bytes()
}

func arpRequest(t testing.TB, srcMAC net.HardwareAddr, src, target netip.Addr) []byte {
	s, d := src.As4(), target.As4()
	return serialize(t,
		&layers.Ethernet{SrcMAC: srcMAC, DstMAC: broadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: srcMAC, SourceProtAddress: s[:],
			DstHwAddress: make([]byte, 6), DstProtAddress: d[:]},
		gopacket.Payload(make([]byte, 18)), // pad to 60 bytes as a NIC would
	)
}

func ipv4(src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func echoRequest(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, seq uint16) []byte {
	return serialize(t,
		&layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4},
		ipv4(src, dst, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: seq},
		gopacket.Payload([]byte("capygen switch ping")),
	)
}

func udpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	ip := ipv4(src.Addr(), dst.Addr(), layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}, ip, udp, gopacket.Payload(payload))
}

func tcpFrame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, syn bool, payload []byte) []byte {
	ip := ipv4(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: 1000, SYN: syn, ACK: !syn, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}, ip, tcp, gopacket.Payload(payload))
}

// decode parses a frame, failing the test on a decoding error or a bad
// checksum.
func decode(t testing.TB, f []byte) gopacket.Packet {
	t.Helper()
	pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if e := pkt.ErrorLayer(); e != nil {
		t.Fatalf("decode %x: %v", f, e.Error())
	}
	return pkt
}
