// The generated dissector, run by tshark from Debian (apt-get install
// tshark) over a capture of every TCPMig message the codec writes.
package wireshark_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/internal/tsharktest"
)

// writePcap writes each message as an Ethernet/IPv4/UDP frame on the
// TCPMig port.
func writePcap(t *testing.T, path string, msgs []tcpmig.Message) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		body := make([]byte, m.EncodedLen())
		if _, err := m.Encode(body); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IP{10, 77, 0, 11}, DstIP: net.IP{10, 77, 0, 254}}
		udp := &layers.UDP{SrcPort: layers.UDPPort(tcpmig.UDPPort), DstPort: layers.UDPPort(tcpmig.UDPPort)}
		udp.SetNetworkLayerForChecksum(ip) //nolint:errcheck // an IPv4 layer
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload(body)); err != nil {
			t.Fatal(err)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(buf.Bytes()), Length: len(buf.Bytes())}
		if err := w.WritePacket(ci, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTsharkDecodesEveryMessage(t *testing.T) {
	key := tcpmig.TCPMigFields{OriginIP: netip.MustParseAddr("10.77.0.11").As4(), OriginPort: 80,
		ClientIP: netip.MustParseAddr("10.77.0.1").As4(), ClientPort: 40000, Epoch: 7}
	frag := key
	frag.FragmentIndex, frag.NextFragment = 2, true
	ack := key
	ack.Load = true
	msgs := []tcpmig.Message{
		&tcpmig.PrepareMig{TCPMigFields: key},
		&tcpmig.PrepareMigAck{TCPMigFields: ack},
		&tcpmig.ConnState{TCPMigFields: frag, TotalLength: 5000, Data: []byte("state bytes")},
		&tcpmig.ConnStateAck{TCPMigFields: key},
		&tcpmig.Rejected{TCPMigFields: key},
		&tcpmig.ConnClosed{TCPMigFields: key},
		&tcpmig.HeartbeatUpdate{TCPMigFields: key, Workload: 42},
		&tcpmig.HeartbeatResponse{TCPMigFields: key, Workload: 3},
	}
	pcap := filepath.Join(t.TempDir(), "tcpmig.pcap")
	writePcap(t, pcap, msgs)
	lua, err := filepath.Abs("tcpmig.lua")
	if err != nil {
		t.Fatal(err)
	}
	frames := tsharktest.Decode(t, lua, pcap)
	if len(frames) != len(msgs) {
		t.Fatalf("tshark decoded %d TCPMig frames, want %d: %v", len(frames), len(msgs), frames)
	}
	stages := []string{"2", "3", "4", "5", "1", "6", "12", "13"}
	for i, f := range frames {
		want := map[string]string{
			"tcpmig.magic": "0xcafedead", "tcpmig.origin_ip": "10.77.0.11", "tcpmig.origin_port": "80",
			"tcpmig.client_ip": "10.77.0.1", "tcpmig.client_port": "40000", "tcpmig.epoch": "7",
			"tcpmig.stage": stages[i],
		}
		for k, v := range want {
			if got := f[k]; len(got) != 1 || got[0] != v {
				t.Errorf("frame %d (%T): %s = %q, want %q", i, msgs[i], k, got, v)
			}
		}
	}
	for _, c := range []struct {
		frame       int
		field, want string
	}{
		{1, "tcpmig.load", "1"},
		{0, "tcpmig.load", "0"},
		{2, "tcpmig.next_fragment", "1"},
		{2, "tcpmig.fragment_index", "2"},
		{2, "tcpmig.conn_state.total_length", "5000"},
		{2, "tcpmig.conn_state.data", fmt.Sprintf("%x", "state bytes")},
		{6, "tcpmig.heartbeat_update.workload", "42"},
		{7, "tcpmig.heartbeat_response.workload", "3"},
	} {
		got := frames[c.frame][c.field]
		if len(got) != 1 || (got[0] != c.want && !colonHex(got[0], c.want)) {
			t.Errorf("frame %d: %s = %q, want %q", c.frame, c.field, got, c.want)
		}
	}
}

// colonHex reports whether a is b written with colons between bytes, as
// tshark writes byte strings.
func colonHex(a, b string) bool {
	s := ""
	for i := 0; i+1 < len(b); i += 2 {
		if i > 0 {
			s += ":"
		}
		s += b[i : i+2]
	}
	return a == s
}
