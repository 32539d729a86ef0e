package softswitch

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
)

func TestConfigErrors(t *testing.T) {
	ep := &recorder{mac: macClient}
	good := func() Config {
		return Config{
			Ports: []PortConfig{
				{ID: 1, Name: "c", Role: pipeline.RoleClient, Endpoint: ep},
				{ID: 2, Name: "s", Role: pipeline.RoleServer, Endpoint: ep},
			},
			Hosts: []Host{{Addr: ipS1, Port: 2, MAC: macS1}},
		}
	}
	cases := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"no ports", func(c *Config) { c.Ports, c.Hosts = nil, nil },
			"softswitch: config: no ports; give the switch at least one PortConfig"},
		{"port id range", func(c *Config) { c.Ports[1].ID = 512; c.Hosts = nil },
			`softswitch: config: ports[1] ("s"): id 512 is outside 0..511 (pipeline.MaxPorts); pick a smaller id`},
		{"duplicate id", func(c *Config) { c.Ports[1].ID = 1; c.Hosts = nil },
			`softswitch: config: ports[1] ("s"): id 1 is already ports[0] ("c"); give each port its own id`},
		{"duplicate name", func(c *Config) { c.Ports[1].Name = "c" },
			`softswitch: config: ports[1] ("c"): name "c" is already ports[0] ("c")'s; give each port its own name`},
		{"role", func(c *Config) { c.Ports[0].Role = 3 },
			`softswitch: config: ports[0] ("c"): role Role(3) is not client or server; set Role to pipeline.RoleClient or pipeline.RoleServer, or 0 to leave it to the control plane`},
		{"endpoint", func(c *Config) { c.Ports[0].Endpoint = nil },
			`softswitch: config: ports[0] ("c"): no Endpoint; give the port the link.Endpoint that carries its frames`},
		{"loss", func(c *Config) { c.Ports[1].Fault.Egress.Loss = 1.5 },
			`softswitch: config: ports[1] ("s"): Fault.Egress.Loss 1.5 is not a probability; use a value in [0, 1] (0.01 is 1%)`},
		{"delay without time", func(c *Config) { c.Ports[1].Fault.Ingress.Delay = 0.1 },
			`softswitch: config: ports[1] ("s"): Fault.Ingress: Delay 0.1 holds frames back for DelayMax 0; set DelayMax (and DelayMin) to how long`},
		{"delay order", func(c *Config) {
			c.Ports[1].Fault.Ingress = Rates{Delay: 0.1, DelayMin: 2 * time.Millisecond, DelayMax: time.Millisecond}
		}, `softswitch: config: ports[1] ("s"): Fault.Ingress: DelayMin 2ms is above DelayMax 1ms; swap them`},
		{"host port", func(c *Config) { c.Hosts[0].Port = 9 },
			`softswitch: config: hosts[0] (10.77.0.11): port 9 is not one of the switch's ports (1 c, 2 s); use a configured port id`},
		{"host addr", func(c *Config) { c.Hosts[0].Addr = netip.MustParseAddr("fd00::1") },
			`softswitch: config: hosts[0] (fd00::1): address fd00::1 is not a usable IPv4 address; write it like 10.77.0.11`},
		{"host twice", func(c *Config) { c.Hosts = append(c.Hosts, Host{Addr: ipS1, Port: 2, MAC: macS2}) },
			`softswitch: config: hosts[1] (10.77.0.11): address 10.77.0.11 is already hosts[0]'s; one entry per address`},
		{"host mac", func(c *Config) { c.Hosts[0].MAC = broadcast },
			`softswitch: config: hosts[0] (10.77.0.11): MAC ff:ff:ff:ff:ff:ff is a multicast address; give the host's interface address, like 02:00:00:00:00:0b`},
		{"mac on two ports", func(c *Config) { c.Hosts = append(c.Hosts, Host{Addr: ipS2, Port: 1, MAC: macS1}) },
			`softswitch: config: hosts[1] (10.77.0.12): MAC 02:00:00:00:00:11 is already hosts[0]'s on port 2; a MAC lives behind one port`},
		{"control is a host", func(c *Config) { c.Control.Addr = ipS1 },
			`softswitch: config: Control.Addr 10.77.0.11 is hosts[0]'s address too; give the switch an address no host has`},
		{"control IPv6 without MAC", func(c *Config) { c.Control.Addr = netip.MustParseAddr("fd00::fe") },
			`softswitch: config: Control.Addr fd00::fe is not a unicast IPv4 address; write it like 10.77.0.254`},
		{"control IPv4-mapped without MAC", func(c *Config) { c.Control.Addr = netip.MustParseAddr("::ffff:10.77.0.254") },
			`softswitch: config: Control.Addr ::ffff:10.77.0.254 is not a unicast IPv4 address; write it like 10.77.0.254`},
		{"control mac alone", func(c *Config) { c.Control.MAC = macS2 },
			`softswitch: config: Control.MAC 02:00:00:00:00:12 is set without Control.Addr; set the address too, or clear the MAC`},
		{"workload holder", func(c *Config) { c.MinWorkload = &Workload{Holder: netip.MustParseAddr("::1")} },
			`softswitch: config: MinWorkload.Holder ::1 is not an IPv4 address; use a server's address, or the zero Addr to empty the register`},
		{"poll interval", func(c *Config) { c.PollInterval = -time.Millisecond },
			`softswitch: config: PollInterval -1ms is negative; use 0 for the default (10ms)`},
		{"spin", func(c *Config) { c.Spin = -time.Microsecond },
			`softswitch: config: Spin -1µs is negative; use 0 to sleep in poll as soon as the rings are empty`},
		{"several at once", func(c *Config) { c.Ports[0].Endpoint = nil; c.Hosts[0].Port = 9 },
			"softswitch: config:\n" +
				`  ports[0] ("c"): no Endpoint; give the port the link.Endpoint that carries its frames` + "\n" +
				`  hosts[0] (10.77.0.11): port 9 is not one of the switch's ports (1 c, 2 s); use a configured port id`},
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("New(good config) = %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(&c)
			_, err := New(c)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, want an error wrapping ErrConfig", err)
			}
			if err.Error() != tc.want {
				t.Errorf("New =\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

// A table the pipeline refuses (more hosts than ipv4_host holds) is
// reported with the host that did not fit.
func TestConfigTableFull(t *testing.T) {
	ep := &recorder{mac: macClient}
	c := Config{Ports: []PortConfig{{ID: 1, Role: pipeline.RoleServer, Endpoint: ep}}}
	for i := range pipeline.HostTableSize + 1 {
		c.Hosts = append(c.Hosts, Host{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 1, MAC: macS1})
	}
	_, err := New(c)
	if !errors.Is(err, ErrConfig) || !errors.Is(err, pipeline.ErrTableFull) || !strings.Contains(err.Error(), fmt.Sprintf("hosts[%d]", pipeline.HostTableSize)) {
		t.Errorf("New with %d hosts = %v, want ErrConfig and pipeline.ErrTableFull naming hosts[%d]", len(c.Hosts), err, pipeline.HostTableSize)
	}
}

func TestForwardByHost(t *testing.T) {
	n := newTestNet(t, nil)
	// The client sends to the switch's MAC or any: ipv4_host decides, and
	// rewrites the destination MAC.
	f := tcpFrame(t, macClient, n.client.mac, netip.AddrPortFrom(ipClient, 40000), netip.AddrPortFrom(ipS1, 80), true, nil)
	n.sw.Deliver(0, pClient, f)
	got := n.s1.take()
	if len(got) != 1 || len(n.s2.sent) != 0 || len(n.client.sent) != 0 {
		t.Fatalf("client->s1 SYN reached s1 %d times, s2 %d, client %d; want s1 once", len(got), len(n.s2.sent), len(n.client.sent))
	}
	want := append([]byte(nil), f...)
	copy(want[0:6], macS1)
	if !bytes.Equal(got[0], want) {
		t.Errorf("forwarded frame\n%x\nwant (dst MAC rewritten only)\n%x", got[0], want)
	}
	r := n.sw.Report()
	if r.Verdicts.Forwarded != 1 || r.Verdicts.Processed != 1 {
		t.Errorf("verdicts = %+v, want 1 processed and forwarded", r.Verdicts)
	}
	c, _ := r.Port("client")
	s1, _ := r.Port("s1")
	if c.RxFrames != 1 || c.RxBytes != uint64(len(f)) || s1.TxFrames != 1 || s1.TxBytes != uint64(len(f)) {
		t.Errorf("port counters client %+v s1 %+v, want 1 frame of %d bytes in and out", c, s1, len(f))
	}
}

func TestARPFloodsAndControlAnswers(t *testing.T) {
	n := newTestNet(t, nil)
	// A request for a server is the pipeline's: flooded.
	n.sw.Deliver(0, pClient, arpRequest(t, macClient, ipClient, ipS1))
	if len(n.s1.take()) != 1 || len(n.s2.take()) != 1 || len(n.client.take()) != 0 {
		t.Fatal("an ARP request for a server was not flooded to the other ports only")
	}
	// A request for the control address is answered on its port only.
	n.sw.Deliver(0, pS1, arpRequest(t, macS1, ipS1, ipControl))
	got := n.s1.take()
	if len(got) != 1 || len(n.s2.take()) != 0 || len(n.client.take()) != 0 {
		t.Fatalf("ARP for the control address: %d replies on s1, want 1 and nothing elsewhere", len(got))
	}
	arp := decode(t, got[0]).Layer(layers.LayerTypeARP).(*layers.ARP)
	ctlMAC := n.sw.ControlMAC()
	if arp.Operation != layers.ARPReply || !bytes.Equal(arp.SourceHwAddress, ctlMAC) || !bytes.Equal(arp.SourceProtAddress, ipControl.AsSlice()) ||
		!bytes.Equal(arp.DstHwAddress, macS1) || !bytes.Equal(arp.DstProtAddress, ipS1.AsSlice()) {
		t.Errorf("ARP reply = %+v, want %v is-at %v to %v/%v", arp, ipControl, ctlMAC, ipS1, macS1)
	}
	if !bytes.Equal(got[0][0:6], macS1) || !bytes.Equal(got[0][6:12], ctlMAC) {
		t.Errorf("ARP reply Ethernet %x -> %x, want %v -> %v", got[0][6:12], got[0][0:6], ctlMAC, macS1)
	}
	if want := (net.HardwareAddr{0x02, 0xca, 0x70, 77, 0, 254}); !bytes.Equal(ctlMAC, want) {
		t.Errorf("default control MAC %v, want %v", ctlMAC, want)
	}

	// Ping of the control address.
	n.sw.Deliver(0, pS2, echoRequest(t, macS2, ctlMAC, ipS2, ipControl, 3))
	got = n.s2.take()
	if len(got) != 1 {
		t.Fatalf("echo request to the control address: %d replies, want 1", len(got))
	}
	pkt := decode(t, got[0])
	ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Seq != 3 || !ip.SrcIP.Equal(ipControl.AsSlice()) || !ip.DstIP.Equal(ipS2.AsSlice()) {
		t.Errorf("echo reply %v seq %d %v -> %v, want echo reply seq 3 %v -> %v", icmp.TypeCode, icmp.Seq, ip.SrcIP, ip.DstIP, ipControl, ipS2)
	}
	if inetChecksum(got[0][14:34]) != 0 || inetChecksum(got[0][34:]) != 0 {
		t.Errorf("echo reply checksums do not verify: %x", got[0])
	}
	// An ARP reply to the control MAC is taken off the wire.
	reply := arpRequest(t, macS2, ipS2, ipControl)
	copy(reply[0:6], ctlMAC)
	binary.BigEndian.PutUint16(reply[20:22], 2)
	n.sw.Deliver(0, pS2, reply)
	if len(n.s1.sent)+len(n.s2.sent)+len(n.client.sent) != 0 {
		t.Error("an ARP reply to the control MAC went somewhere")
	}

	r := n.sw.Report()
	if r.Control == nil || r.Control.ARPReplies != 1 || r.Control.EchoReplies != 1 || r.Control.Consumed != 1 || r.Control.Addr != "10.77.0.254" {
		t.Errorf("control report = %+v, want 1 ARP reply, 1 echo reply, 1 consumed at 10.77.0.254", r.Control)
	}
	if r.Verdicts.Flooded != 1 || r.Verdicts.Processed != 1 {
		t.Errorf("verdicts = %+v, want the one flood processed by the pipeline (control frames are not)", r.Verdicts)
	}
}

// heartbeat is a TCPMig HEARTBEAT_UPDATE from src with workload w.
func heartbeat(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, w uint32) []byte {
	t.Helper()
	m := tcpmig.HeartbeatUpdate{Workload: w}
	b := make([]byte, m.EncodedLen())
	if _, err := m.Encode(b); err != nil {
		t.Fatal(err)
	}
	return udpFrame(t, srcMAC, dstMAC, netip.AddrPortFrom(src, tcpmig.UDPPort), netip.AddrPortFrom(dst, tcpmig.UDPPort), b)
}

// A heartbeat addressed to the control address gets the pipeline's
// reply, and moves min_workload.
func TestHeartbeatToControlAddress(t *testing.T) {
	n := newTestNet(t, nil)
	n.sw.Deliver(0, pS1, heartbeat(t, macS1, n.sw.ControlMAC(), ipS1, ipControl, 42))
	got := n.s1.take()
	if len(got) != 1 {
		t.Fatalf("heartbeat: %d replies on s1, want 1", len(got))
	}
	udp := decode(t, got[0]).Layer(layers.LayerTypeUDP).(*layers.UDP)
	h := tcpmig.TCPMig(udp.Payload)
	if h.Stage() != tcpmig.StageHeartbeatResponse || binary.BigEndian.Uint32(h.Payload()) != 42 {
		t.Errorf("reply stage %v workload %d, want heartbeat_response 42", h.Stage(), binary.BigEndian.Uint32(h.Payload()))
	}
	if !bytes.Equal(got[0][6:12], n.sw.ControlMAC()) || !bytes.Equal(got[0][0:6], macS1) {
		t.Errorf("reply Ethernet %x -> %x, want from the control MAC to s1", got[0][6:12], got[0][0:6])
	}
	r := n.sw.Report()
	if r.MinWorkload.Holder != "10.77.0.11" || r.MinWorkload.Load != 42 || r.Pipeline.Heartbeats != 1 || r.Verdicts.Replied != 1 {
		t.Errorf("after the heartbeat: min_workload %+v heartbeats %d replied %d, want 10.77.0.11 42, 1, 1",
			r.MinWorkload, r.Pipeline.Heartbeats, r.Verdicts.Replied)
	}
}

func TestDropsAreCounted(t *testing.T) {
	n := newTestNet(t, nil)
	nowhere := netip.MustParseAddr("10.77.0.99")
	n.sw.Deliver(0, pClient, tcpFrame(t, macClient, macS1, netip.AddrPortFrom(ipClient, 1), netip.AddrPortFrom(nowhere, 80), true, nil))
	n.sw.Deliver(0, pClient, heartbeat(t, macClient, macS1, ipClient, ipS1, 1))
	n.sw.Deliver(0, pClient, []byte{1, 2, 3})
	n.sw.Deliver(0, 77, arpRequest(t, macClient, ipClient, ipS1))
	r := n.sw.Report()
	want := map[string]uint64{"no_route": 1, "spoofed_control": 1, "unknown_port": 0, "bad_tcpmig": 0, "malformed": 1}
	if !reflect.DeepEqual(r.Pipeline.Drops, want) {
		t.Errorf("drops = %v, want %v", r.Pipeline.Drops, want)
	}
	if r.Drops() != 3 || r.Verdicts.Dropped != 3 || r.Verdicts.UnknownIngress != 1 {
		t.Errorf("Drops() = %d, verdicts %+v, want 3 dropped and 1 unknown ingress", r.Drops(), r.Verdicts)
	}
}

// Frames for one endpoint are queued and flushed once per Deliver.
func TestBatchingEndpoints(t *testing.T) {
	n := newTestNet(t, nil)
	n.sw.Deliver(0, pClient, arpRequest(t, macClient, ipClient, ipS1))
	if n.s1B.flushes != 1 || n.s2B.flushes != 1 || n.clientB.flushes != 0 || len(n.s1B.queue) != 0 {
		t.Errorf("flushes client %d s1 %d s2 %d (queued %d), want 0 1 1 and nothing left queued",
			n.clientB.flushes, n.s1B.flushes, n.s2B.flushes, len(n.s1B.queue))
	}
	// A failed kick is one flush error, not a refused frame: its frame
	// was counted sent when queued.
	n.s1B.flushErr = errors.New("interface down")
	n.sw.Deliver(0, pClient, arpRequest(t, macClient, ipClient, ipS1))
	p, _ := n.sw.Report().Port("s1")
	if p.FlushErrors != 1 || p.TxErrors != 0 || p.TxFrames != 2 {
		t.Errorf("s1 after a failed flush: flush errors %d, tx errors %d, tx frames %d, want 1, 0, 2", p.FlushErrors, p.TxErrors, p.TxFrames)
	}
}

func TestReport(t *testing.T) {
	n := newTestNet(t, func(c *Config) { c.MinWorkload = &Workload{Holder: ipS2, Load: 5} })
	p := n.sw.Pipeline()
	for i, l := range []int{0, 0, 1} {
		e := pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 77, 0, byte(i + 1)}, ClientPort: 80, Origin: ipS1.As4(), Target: ipS2.As4()}
		if err := p.WriteDirectory(l, 100+i, e); err != nil {
			t.Fatal(err)
		}
	}
	n.sw.Deliver(0, pClient, tcpFrame(t, macClient, macS1, netip.AddrPortFrom(ipClient, 1), netip.AddrPortFrom(ipS1, 80), true, nil))
	n.sw.Advance(3 * time.Second)
	r := n.sw.Report()
	if len(r.Directory) != pipeline.Levels || r.Directory[0].Valid != 2 || r.Directory[1].Valid != 1 || r.Directory[0].Slots != pipeline.Slots {
		t.Errorf("directory = %+v, want 2 and 1 valid of %d", r.Directory, pipeline.Slots)
	}
	if r.MinWorkload != (WorkloadReport{Holder: "10.77.0.12", Load: 5}) {
		t.Errorf("min_workload = %+v, want holder 10.77.0.12 load 5", r.MinWorkload)
	}
	if r.Now != 3*time.Second {
		t.Errorf("Now = %v, want 3s", r.Now)
	}
	var back Report
	if err := json.Unmarshal(r.JSON(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, r.JSON())
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("JSON round trip\n%+v\nwant\n%+v", back, r)
	}
	text := r.String()
	for _, want := range []string{
		"switch report at 3s",
		"client   1   client          1           60          0            0 0/0          0/0/0",
		"verdicts: processed 1 forwarded 1 flooded 0 replied 0 dropped 0",
		"drops: no_route 0 spoofed_control 0 unknown_port 0 bad_tcpmig 0 malformed 0",
		"directory: level 0 2/65536 level 1 1/65536",
		"min_workload: holder 10.77.0.12 load 5",
		"control 10.77.0.254 (02:ca:70:4d:00:fe): arp replies 0",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report text lacks %q:\n%s", want, text)
		}
	}
	// A fresh switch reports min_workload empty.
	if r := newTestNet(t, nil).sw.Report(); !r.MinWorkload.Empty || r.MinWorkload.Load != pipeline.EmptyLoad || !strings.Contains(r.String(), "min_workload: empty (load 0xffffffff)") {
		t.Errorf("fresh min_workload = %+v, want empty with EmptyLoad", r.MinWorkload)
	}
}
