package testbed

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// TestHostileProbesAgainstOurStack probes a migration server (capygen's
// stack) from the Linux client as a scanner or a flooder would:
//   - FIN, NULL and Xmas probes to its listening port get no answer
//     (RFC 9293 §3.10.7.2), and a FIN to a closed port gets a RST;
//   - after a SYN flood that fills the backlog with half-open entries, a
//     legitimate client connects and is served (SYN cookies);
//   - UDP to a port nothing bound gets ICMP port unreachable, which the
//     kernel client reports as ECONNREFUSED.
func TestHostileProbesAgainstOurStack(t *testing.T) {
	needNetns(t)
	bed := upMigration(t, Options{})
	const client, server = "10.77.0.1", originIP

	// A raw TCP socket in the client's namespace: it sends the probes and
	// sees every TCP segment that comes back.
	fd := rawTCPSocket(t, bed, 50*time.Millisecond)
	probe := func(dport uint16, set func(*layers.TCP)) (answers []layers.TCP) {
		t.Helper()
		sport := uint16(40000 + rand.IntN(20000))
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: rand.Uint32(), Window: 1024}
		set(tcp)
		sendTCP(t, fd, client, server, tcp)
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

	// A SYN flood whose SYN-ACKs go unanswered (the client's kernel would
	// answer them with RST: dropped here, so that every half-open entry
	// stays): 300 SYNs, more than the backlog of 128; a legitimate client
	// still connects and is served (SYN cookies).
	if out, err := bed.Exec("client", "iptables", "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP"); err != nil {
		t.Fatalf("iptables in the client namespace: %v\n%s", err, out)
	}
	for range 300 {
		sport := uint16(20000 + rand.IntN(20000))
		sendTCP(t, fd, client, server, &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: 80, Seq: rand.Uint32(), SYN: true, Window: 1024})
	}
	time.Sleep(100 * time.Millisecond)
	if out, err := bed.Exec("client", "iptables", "-D", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST", "-j", "DROP"); err != nil {
		t.Fatalf("iptables in the client namespace: %v\n%s", err, out)
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	hc, err := bed.DialContext("client")(fctx, "tcp4", server+":80")
	if err != nil {
		t.Fatalf("a legitimate client could not connect after the SYN flood: %v", err)
	}
	// The cookie kept what Linux negotiates: window scaling and SACK ride
	// in the low bits of the SYN-ACK's timestamp.
	if opts, err := tcpOptions(hc); err != nil {
		t.Fatal(err)
	} else if want := uint8(tcpiOptTimestamps | tcpiOptSACK | tcpiOptWScale); opts&want != want {
		t.Errorf("the connection made through a SYN cookie has TCP options %#x, want timestamps, SACK and window scaling (%#x)", opts, want)
	}
	hc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := hc.Write([]byte("GET /ping HTTP/1.1\r\nHost: s1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(io.LimitReader(hc, 17)); err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
		t.Errorf("GET /ping after the SYN flood: %q, %v", b, err)
	}
	hc.Close()

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

// TestFinWait2EndsForAClientThatNeverCloses: a Linux client that reads the
// server's FIN but never closes its own socket leaves the server's side in
// FIN-WAIT-2. After -fin-wait2 the server forgets it: the client's next
// segment is answered with a RST. Before, it is still accepted.
func TestFinWait2EndsForAClientThatNeverCloses(t *testing.T) {
	needNetns(t)
	bed := upMigration(t, Options{Args: map[string][]string{"server": {"-fin-wait2", "2s"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := bed.DialContext("client")(ctx, "tcp4", originIP+":80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	// HTTP/1.0 without keep-alive: the server answers and closes.
	if _, err := c.Write([]byte("GET /ping HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(c); err != nil || !strings.Contains(string(b), " 200 OK") {
		t.Fatalf("GET /ping: %q, %v", b, err)
	}
	// Our side is in FIN-WAIT-2 now, and still takes the client's data.
	if _, err := c.Write([]byte("still here")); err != nil {
		t.Fatalf("a write in FIN-WAIT-2: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Write([]byte("still here")); err != nil {
		t.Fatalf("a second write in FIN-WAIT-2 failed (was the first answered with a RST?): %v", err)
	}
	// After the bound, the next segment finds nothing and gets a RST.
	time.Sleep(2500 * time.Millisecond)
	c.Write([]byte("gone?")) //nolint:errcheck // the RST shows on the next call
	var reset bool
	for i := 0; i < 20 && !reset; i++ {
		time.Sleep(50 * time.Millisecond)
		_, err := c.Write([]byte("x"))
		reset = errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
	}
	if !reset {
		t.Error("the client was never reset after -fin-wait2: the server still holds the connection")
	}
}

// TestTimeWaitReuseByALinuxClient: the server closes first (HTTP/1.0), so
// its side of the address pair is in TIME-WAIT; the Linux client connects
// again from the same port at once. The new SYN takes the pair over: the
// server's first answer is a SYN-ACK, not TIME-WAIT's ACK, which the
// client would answer with a RST and a retried SYN.
func TestTimeWaitReuseByALinuxClient(t *testing.T) {
	needNetns(t)
	bed := upMigration(t, Options{})
	const port = 45555
	// A raw socket sees what the server sends to the client.
	fd := rawTCPSocket(t, bed, 20*time.Millisecond)
	// answers drains what the server sent to our port: its flags, in order.
	answers := func() []string {
		var out []string
		b := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(fd, b, 0)
			if err != nil {
				return out
			}
			p := gopacket.NewPacket(b[:n], layers.LayerTypeIPv4, gopacket.Default)
			h, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if h == nil || h.DstPort != port || h.SrcPort != 80 {
				continue
			}
			switch {
			case h.SYN && h.ACK:
				out = append(out, "SYN-ACK")
			case h.RST:
				out = append(out, "RST")
			case h.ACK && len(h.Payload) == 0 && !h.FIN:
				out = append(out, "ACK")
			default:
				out = append(out, "other")
			}
		}
	}
	dial := func() net.Conn {
		t.Helper()
		var c net.Conn
		err := bed.InNamespace("client", func() (err error) {
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{Port: port},
				Control: func(_, _ string, rc syscall.RawConn) error {
					var serr error
					if err := rc.Control(func(fd uintptr) {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
					}); err != nil {
						return err
					}
					return serr
				}}
			c, err = d.Dial("tcp4", originIP+":80")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for i := range 3 {
		answers() // what came before this connection
		c := dial()
		if first := answers(); i > 0 && (len(first) == 0 || first[0] != "SYN-ACK") {
			t.Errorf("connection %d from the port the server holds in TIME-WAIT: the server's answers began %v, want a SYN-ACK first", i, first)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET /ping HTTP/1.0\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || !strings.Contains(string(b), " 200 OK") {
			t.Fatalf("connection %d from port %d: %q, %v", i, port, b, err)
		}
		// The client's side leaves LAST-ACK once our ACK of its FIN is in.
		time.Sleep(100 * time.Millisecond)
	}
}

// rawTCPSocket is a raw TCP socket in the client's namespace, closed with
// the test: it sends hand-made segments and receives every TCP segment
// that reaches the namespace, waiting at most timeout for one.
func rawTCPSocket(t *testing.T, bed *Testbed, timeout time.Duration) int {
	t.Helper()
	var fd int
	if err := bed.InNamespace("client", func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(timeout))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

// sendTCP sends tcp from src to dst on the raw socket fd (the kernel
// writes the IP header).
func sendTCP(t *testing.T, fd int, src, dst string, tcp *layers.TCP) {
	t.Helper()
	ip := &layers.IPv4{SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4(), Protocol: layers.IPProtocolTCP}
	tcp.SetNetworkLayerForChecksum(ip) //nolint:errcheck // an IPv4 layer
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, tcp); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(fd, buf.Bytes(), 0, &unix.SockaddrInet4{Addr: [4]byte(net.ParseIP(dst).To4())}); err != nil {
		t.Fatal(err)
	}
}

// TestSpoofedARPReplyDoesNotBreakALiveClient: an unsolicited ARP reply,
// sent from the client's wire with another MAC, claims the client's
// address. The stack checks the claim with the MAC it knows instead of
// believing it, so the live client's next request is answered at once
// (it used to fail until the stack ARPed again, about 6 s later).
func TestSpoofedARPReplyDoesNotBreakALiveClient(t *testing.T) {
	needNetns(t, "curl")
	bed := up(t, Default())
	addr, _, _ := serverAddr(t, bed)
	srv := startServe(t, bed)
	url := "http://" + addr + "/ping"
	if out, err := bed.Exec("client", "curl", "-sS", "-m", "5", url); err != nil {
		t.Fatalf("warm-up: %v\n%s", err, out)
	}
	clientIP := net.ParseIP(clientAddr(t, bed))
	serverMAC := ifaceMAC(t, bed, "server", "veth0")
	fake := net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}
	var fd int
	if err := bed.InNamespace("client", func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifi := ifaceIndex(t, bed, "client", "veth0")
	eth := &layers.Ethernet{SrcMAC: fake, DstMAC: serverMAC, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPReply, SourceHwAddress: fake, SourceProtAddress: clientIP.To4(),
		DstHwAddress: serverMAC, DstProtAddress: net.ParseIP(addr).To4()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(fd, buf.Bytes(), 0, &unix.SockaddrLinklayer{Ifindex: ifi, Halen: 6, Addr: [8]byte(append(serverMAC[:6:6], 0, 0))}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out, err := bed.Exec("client", "curl", "-sS", "-m", "3", url)
	took := time.Since(start)
	if err != nil || strings.TrimSpace(string(out)) != "pong" {
		t.Fatalf("after the spoofed ARP reply the client's request failed after %v: %v\n%s", took, err, out)
	}
	if took > time.Second {
		t.Errorf("after the spoofed ARP reply the client's request took %v, want it answered at once", took)
	}
	report := srv.proc.Stop(5 * time.Second)
	if !strings.Contains(report, "drop.arp-conflict") {
		t.Errorf("the stack did not count the spoofed reply as an ARP conflict:\n%s", report)
	}
	t.Logf("request after the spoofed reply: %v", took.Round(time.Millisecond))
}

// ifaceMAC reads iface's MAC in host's namespace.
func ifaceMAC(t *testing.T, bed *Testbed, host, iface string) net.HardwareAddr {
	t.Helper()
	out, err := bed.Exec(host, "cat", "/sys/class/net/"+iface+"/address")
	if err != nil {
		t.Fatal(err)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// ifaceIndex is iface's index in host's namespace.
func ifaceIndex(t *testing.T, bed *Testbed, host, iface string) int {
	t.Helper()
	var idx int
	if err := bed.InNamespace(host, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err == nil {
			idx = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// tcpi_options bits (linux/tcp.h).
const (
	tcpiOptTimestamps = 1
	tcpiOptSACK       = 2
	tcpiOptWScale     = 4
)

// tcpOptions is the Linux socket's tcpi_options: the options its
// handshake agreed to.
func tcpOptions(c net.Conn) (uint8, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, errors.New("not a kernel TCP socket")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var serr error
	if err := rc.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return info.Options, nil
}
