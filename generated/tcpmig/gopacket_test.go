package tcpmig

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// frame builds Ethernet/IPv4/UDP around a TCPMig message with gopacket's
// own layers, which compute the lengths and the UDP checksum.
func frame(t *testing.T, tcpmig ...gopacket.SerializableLayer) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: testSrc.Addr().AsSlice(), DstIP: testDst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(testSrc.Port()), DstPort: layers.UDPPort(UDPPort)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	ls := append([]gopacket.SerializableLayer{eth, ip, udp}, tcpmig...)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGopacketNewPacket(t *testing.T) {
	f := frame(t, gopacket.Payload(heartbeatUpdate))
	p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("NewPacket: %v", el.Error())
	}
	l, ok := p.Layer(LayerTypeTCPMig).(*TCPMigLayer)
	if !ok {
		t.Fatalf("no %v layer in %v", LayerTypeTCPMig, p)
	}
	if l.Stage != StageHeartbeatUpdate || l.OriginIP != origin || !bytes.Equal(l.LayerContents(), heartbeatUpdate[:HeaderLen]) {
		t.Errorf("layer = stage %v origin %v contents %x", l.Stage, l.OriginIP, l.LayerContents())
	}
	var hb HeartbeatUpdate
	if err := hb.Decode(append(l.LayerContents(), l.LayerPayload()...)); err != nil || hb.Workload != 0x12345 {
		t.Errorf("Decode of the layer's bytes = %v, workload %#x", err, hb.Workload)
	}
	if app := p.ApplicationLayer(); app == nil || !bytes.Equal(app.Payload(), heartbeatUpdate[HeaderLen:]) {
		t.Errorf("application payload = %v, want the heartbeat body", app)
	}
	// Our checksum check agrees with gopacket's checksum.
	ipl := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	src, _ := netipFrom(ipl.SrcIP)
	dst, _ := netipFrom(ipl.DstIP)
	if _, err := DecodeUDP(src, dst, append(udp.LayerContents(), udp.LayerPayload()...)); err != nil {
		t.Errorf("DecodeUDP of gopacket's datagram: %v", err)
	}
}

func TestGopacketSerialize(t *testing.T) {
	l := &TCPMigLayer{TCPMigFields: withFrag(conn, 2, true), Stage: StageConnState}
	f := frame(t, l, gopacket.Payload(connStateFrag2[HeaderLen:]))
	if got := f[len(f)-len(connStateFrag2):]; !bytes.Equal(got, connStateFrag2) {
		t.Errorf("SerializeTo wrote %x, want %x", got, connStateFrag2)
	}
	// DecodingLayerParser: the allocation-free gopacket path.
	var (
		eth     layers.Ethernet
		ip      layers.IPv4
		udp     layers.UDP
		tm      TCPMigLayer
		payload gopacket.Payload
	)
	parser := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip, &udp, &tm, &payload)
	var decoded []gopacket.LayerType
	if err := parser.DecodeLayers(f, &decoded); err != nil {
		t.Fatalf("DecodeLayers: %v (decoded %v)", err, decoded)
	}
	if len(decoded) != 5 || decoded[3] != LayerTypeTCPMig || tm.FragmentIndex != 2 || !tm.NextFragment {
		t.Errorf("decoded %v, layer %+v", decoded, tm)
	}

	bad := &TCPMigLayer{Stage: StageHeartbeatUpdate}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, bad, gopacket.Payload{1}); !errors.Is(err, ErrBadLength) {
		t.Errorf("SerializeTo with a short body and FixLengths = %v, want ErrBadLength", err)
	}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, bad, gopacket.Payload{1}); err != nil {
		t.Errorf("SerializeTo with a short body without FixLengths = %v, want it written as asked", err)
	}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, &TCPMigLayer{Stage: 8}); !errors.Is(err, ErrUnknownStage) {
		t.Errorf("SerializeTo of stage 8 = %v, want ErrUnknownStage", err)
	}
}

func TestGopacketTruncated(t *testing.T) {
	for _, n := range []int{HeaderLen - 1, HeaderLen + 2} {
		f := frame(t, gopacket.Payload(heartbeatUpdate[:n]))
		p := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
		if p.ErrorLayer() == nil || !p.Metadata().Truncated {
			t.Errorf("%d TCPMig bytes: error layer %v, truncated %v; want an error and truncation", n, p.ErrorLayer(), p.Metadata().Truncated)
		}
		var tm TCPMigLayer
		if err := tm.DecodeFromBytes(heartbeatUpdate[:n], gopacket.NilDecodeFeedback); !errors.Is(err, ErrShortBuffer) {
			t.Errorf("DecodeFromBytes(%d bytes) = %v, want ErrShortBuffer", n, err)
		}
	}
	bad := bytes.Clone(heartbeatUpdate)
	bad[0] = 0
	p := gopacket.NewPacket(frame(t, gopacket.Payload(bad)), layers.LayerTypeEthernet, gopacket.Default)
	if p.ErrorLayer() == nil || !errors.Is(p.ErrorLayer().Error(), ErrBadMagic) {
		t.Errorf("bad magic: error layer %v", p.ErrorLayer())
	}
}

func TestLayerTypeRange(t *testing.T) {
	if LayerTypeNumber < 1000 || LayerTypeNumber > 1999 || int(LayerTypeTCPMig) != LayerTypeNumber || LayerTypeTCPMig.String() != "TCPMig" {
		t.Errorf("layer type %d %q; want %d in 1000-1999 named TCPMig", LayerTypeTCPMig, LayerTypeTCPMig, LayerTypeNumber)
	}
	if got := layers.UDPPort(UDPPort).LayerType(); got != LayerTypeTCPMig {
		t.Errorf("UDP port %d decodes as %v", UDPPort, got)
	}
}

func netipFrom(ip net.IP) (netip.Addr, bool) { return netip.AddrFromSlice(ip.To4()) }
