package testbed

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// TestHostileProbesAgainstOurStack probes a migration server (capygen's
// stack) from the Linux client as a scanner would:
//   - FIN, NULL and Xmas probes to its listening port get no answer
//     (RFC 9293 §3.10.7.2), and a FIN to a closed port gets a RST;
//   - UDP to a port nothing bound gets ICMP port unreachable, which the
//     kernel client reports as ECONNREFUSED.
func TestHostileProbesAgainstOurStack(t *testing.T) {
	needNetns(t)
	bed := upMigration(t, Options{})
	const client, server = "10.77.0.1", originIP

	// A raw TCP socket in the client's namespace: it sends the probes and
	// sees every TCP segment that comes back.
	var fd int
	if err := bed.InNamespace("client", func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	probe := func(dport uint16, set func(*layers.TCP)) (answers []layers.TCP) {
		t.Helper()
		sport := uint16(40000 + rand.IntN(20000))
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: rand.Uint32(), Window: 1024}
		set(tcp)
		ip := &layers.IPv4{SrcIP: net.ParseIP(client).To4(), DstIP: net.ParseIP(server).To4(), Protocol: layers.IPProtocolTCP}
		tcp.SetNetworkLayerForChecksum(ip) //nolint:errcheck // an IPv4 layer
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, tcp); err != nil {
			t.Fatal(err)
		}
		dst := &unix.SockaddrInet4{Addr: [4]byte(net.ParseIP(server).To4())}
		if err := unix.Sendto(fd, buf.Bytes(), 0, dst); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(400 * time.Millisecond)
		b := make([]byte, 2048)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(fd, b, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			p := gopacket.NewPacket(b[:n], layers.LayerTypeIPv4, gopacket.Default)
			ipl, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			got, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if ipl == nil || got == nil || ipl.SrcIP.String() != server || uint16(got.SrcPort) != dport || uint16(got.DstPort) != sport {
				continue
			}
			answers = append(answers, *got)
		}
		return answers
	}
	for name, set := range map[string]func(*layers.TCP){
		"FIN":  func(h *layers.TCP) { h.FIN = true },
		"NULL": func(*layers.TCP) {},
		"Xmas": func(h *layers.TCP) { h.FIN, h.PSH, h.URG = true, true, true },
	} {
		if got := probe(80, set); len(got) != 0 {
			t.Errorf("%s probe to the listening port 80 answered: %+v", name, got[0])
		}
	}
	if got := probe(81, func(h *layers.TCP) { h.FIN = true }); len(got) != 1 || !got[0].RST {
		t.Errorf("a FIN to the closed port 81 answered with %d segments, want one RST", len(got))
	}

	// UDP to a port nothing bound.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := bed.DialContext("client")(ctx, "udp4", server+":9")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refused bool
	for i := 0; i < 20 && !refused; i++ { // the first may wait for ARP
		c.Write([]byte("probe")) //nolint:errcheck // the error comes on Read
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err := c.Read(make([]byte, 16))
		refused = errors.Is(err, syscall.ECONNREFUSED)
	}
	if !refused {
		t.Error("UDP to the unbound port 9 was never refused (no ICMP port unreachable)")
	}
}
