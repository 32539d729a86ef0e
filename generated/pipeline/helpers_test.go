package pipeline

// Test helpers. These tests are hand-written and spec-driven: they read the
// spec the package was generated from ($CAPYGEN_PIPELINE_SPEC, or the
// default spec), so gen/pipeline runs the very same tests against models
// generated from other specs (3 levels x 14 bits, delete_on: [rst], ...).

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"os"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/capygen/capygen/spec"
)

// specEnv names the spec file the package under test was generated from.
const specEnv = "CAPYGEN_PIPELINE_SPEC"

func loadSpec(t testing.TB) *spec.Spec {
	t.Helper()
	var s *spec.Spec
	var err error
	if p := os.Getenv(specEnv); p != "" {
		s, err = spec.Load(p)
	} else {
		s, err = spec.Default()
	}
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	if s.Fingerprint != Fingerprint {
		t.Fatalf("spec fingerprint %s, package generated from %s: regenerate (go test ./gen/pipeline -update) or set %s", s.Fingerprint, Fingerprint, specEnv)
	}
	return s
}

// The test topology: one client port, three server ports, one port without
// a role.
const (
	portClient Port = 1
	portA      Port = 2
	portB      Port = 3
	portC      Port = 4
	portNoRole Port = 9
)

var (
	ipClient = [4]byte{10, 77, 0, 1}
	ipA      = [4]byte{10, 77, 1, 1}
	ipB      = [4]byte{10, 77, 1, 2}
	ipC      = [4]byte{10, 77, 1, 3}
	ipNowere = [4]byte{10, 77, 9, 9}
)

func macOf(p Port) [6]byte { return [6]byte{0x02, 0, 0, 0, 0, byte(p)} }

const switchMACByte = 0xee

type env struct {
	t testing.TB
	s *spec.Spec
	p *Pipeline
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, s: loadSpec(t), p: New()}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.p.SetPortRole(portClient, RoleClient))
	for _, h := range []struct {
		port Port
		ip   [4]byte
	}{{portA, ipA}, {portB, ipB}, {portC, ipC}} {
		must(e.p.SetPortRole(h.port, RoleServer))
		must(e.p.SetHost(h.ip, h.port, macOf(h.port)))
	}
	must(e.p.SetHost(ipClient, portClient, macOf(portClient)))
	return e
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ethIPv4() *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, switchMACByte}, DstMAC: []byte{2, 0, 0, 0, 0, switchMACByte}, EthernetType: layers.EthernetTypeIPv4}
}

func ip4(src, dst [4]byte, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src[:], DstIP: dst[:], Id: 0x1234}
}

// tcpFrame is a TCP segment; flags is a subset of "SAFRP".
func tcpFrame(t testing.TB, src, dst [4]byte, sport, dport uint16, flags string, payload []byte) []byte {
	t.Helper()
	ip := ip4(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 1000, Ack: 2000, Window: 65535, DataOffset: 5}
	for _, c := range flags {
		switch c {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		case 'P':
			tcp.PSH = true
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ethIPv4(), ip, tcp, gopacket.Payload(payload))
}

// pack writes v into the n bits at bit offset bit of b, most significant
// bit first, one bit at a time (independent of the generated putField).
func pack(b []byte, bit, n int, v uint64) {
	for i := 0; i < n; i++ {
		pos := bit + i
		m := byte(0x80 >> (pos % 8))
		if v>>(n-1-i)&1 != 0 {
			b[pos/8] |= m
		} else {
			b[pos/8] &^= m
		}
	}
}

func unpack(b []byte, bit, n int) uint64 {
	var v uint64
	for i := 0; i < n; i++ {
		pos := bit + i
		v = v<<1 | uint64(b[pos/8]>>(7-pos%8)&1)
	}
	return v
}

func ipU64(ip [4]byte) uint64 { return uint64(binary.BigEndian.Uint32(ip[:])) }

// mig is a TCPMig message of the spec: header fields by name (the stage and
// the constants are filled in), payload fields by name.
type mig struct {
	msg     string
	hdr     map[string]uint64
	payload map[string]uint64
}

func (e *env) migBytes(m mig) []byte {
	e.t.Helper()
	msg := e.s.MessageByName(m.msg)
	if msg == nil {
		e.t.Fatalf("spec has no message %q", m.msg)
	}
	b := make([]byte, e.s.Header.Bytes+msg.PayloadBytes)
	for _, f := range e.s.Header.Fields {
		switch {
		case f.HasConst:
			pack(b, f.Offset, f.Bits, f.Const)
		case f.Name == e.s.Header.StageField:
			pack(b, f.Offset, f.Bits, msg.Stage.Value)
		default:
			pack(b, f.Offset, f.Bits, m.hdr[f.Name])
		}
	}
	for _, f := range msg.Payload {
		if f.Type != spec.TypeBytes {
			pack(b[e.s.Header.Bytes:], f.Offset, f.Bits, m.payload[f.Name])
		}
	}
	return b
}

func (e *env) migFrame(src, dst [4]byte, m mig) []byte {
	e.t.Helper()
	ip := ip4(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 40001, DstPort: layers.UDPPort(e.s.Transport.UDPPort)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		e.t.Fatal(err)
	}
	return serialize(e.t, ethIPv4(), ip, udp, gopacket.Payload(e.migBytes(m)))
}

// ack is the PREPARE_MIG_ACK a target sends to the origin for a client.
func (e *env) ack(target, origin, client [4]byte, cport uint16, load bool) []byte {
	return e.ackTo(target, origin, origin, client, cport, load)
}

// ackTo is the PREPARE_MIG_ACK a target sends to dst, the server whose
// PREPARE it answers (the origin, or the holder that moves the connection
// on), for the connection the client knows at origin.
func (e *env) ackTo(target, dst, origin, client [4]byte, cport uint16, load bool) []byte {
	l := uint64(0)
	if load {
		l = 1
	}
	return e.migFrame(target, dst, mig{msg: "prepare_mig_ack", hdr: map[string]uint64{
		"origin_ip": ipU64(origin), e.s.Directory.Key[0]: ipU64(client), e.s.Directory.Key[1]: uint64(cport), "load": l,
	}})
}

// connClosed is the release message (directory.release) the server src
// sends when the connection of client:cport, which origin served first, has
// finished; the test fails when the spec has no release.
func (e *env) connClosed(src, origin, client [4]byte, cport uint16) []byte {
	e.t.Helper()
	if Release == "" {
		e.t.Fatalf("the spec has no directory.release")
	}
	return e.migFrame(src, origin, mig{msg: Release, hdr: map[string]uint64{
		"origin_ip": ipU64(origin), "origin_port": svport, e.s.Directory.Key[0]: ipU64(client), e.s.Directory.Key[1]: uint64(cport),
	}})
}

func (e *env) heartbeat(src [4]byte, load uint64) []byte {
	return e.migFrame(src, ipNowere, mig{msg: e.s.Workload.Heartbeat, payload: map[string]uint64{e.s.Workload.MetricField: load}})
}

// run processes a copy of frame and checks that the length is kept.
func (e *env) run(frame []byte, in Port) (Result, []byte) {
	e.t.Helper()
	out := append([]byte(nil), frame...)
	r := e.p.Process(out, in)
	if len(out) != len(frame) {
		e.t.Fatalf("Process changed the frame length from %d to %d", len(frame), len(out))
	}
	return r, out
}

func (e *env) want(r, want Result) {
	e.t.Helper()
	if r != want {
		e.t.Fatalf("Process = %+v, want %+v", r, want)
	}
}

func fwd(p Port) Result           { return Result{Verdict: Forward, Egress: p} }
func reply(p Port) Result         { return Result{Verdict: Reply, Egress: p} }
func dropped(d DropReason) Result { return Result{Verdict: Drop, Drop: d} }
func flood(ingress Port) Result   { return Result{Verdict: Flood, Egress: ingress} }
func addr(b []byte) (a [4]byte)   { copy(a[:], b); return a }
func ipString(a [4]byte) string   { return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3]) }
func keyOf(k uint64) ([4]byte, uint16) {
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], uint32(k>>16))
	return ip, uint16(k)
}

// decoded is a frame checked with gopacket: its layers, and every checksum
// equal to what gopacket computes from scratch.
type decoded struct {
	eth *layers.Ethernet
	ip  *layers.IPv4
	tcp *layers.TCP
	udp *layers.UDP
}

func checkFrame(t testing.TB, frame []byte) decoded {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	var d decoded
	var ok bool
	if d.eth, ok = pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); !ok {
		t.Fatalf("no Ethernet layer in % x", frame)
	}
	if d.ip, ok = pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); !ok {
		t.Fatalf("no IPv4 layer in % x", frame)
	}
	ip := *d.ip
	var l4 gopacket.SerializableLayer
	var payload []byte
	if d.tcp, ok = pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		c := *d.tcp
		_ = c.SetNetworkLayerForChecksum(&ip)
		l4, payload = &c, d.tcp.Payload
	} else if d.udp, ok = pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		c := *d.udp
		_ = c.SetNetworkLayerForChecksum(&ip)
		l4, payload = &c, d.udp.Payload
	} else {
		t.Fatalf("no TCP or UDP layer in % x", frame)
	}
	again := gopacket.NewPacket(serialize(t, d.eth, &ip, l4, gopacket.Payload(payload)), layers.LayerTypeEthernet, gopacket.Default)
	if got, want := d.ip.Checksum, again.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Checksum; got != want {
		t.Errorf("IPv4 checksum %#04x, recomputed %#04x", got, want)
	}
	if d.tcp != nil {
		if got, want := d.tcp.Checksum, again.Layer(layers.LayerTypeTCP).(*layers.TCP).Checksum; got != want {
			t.Errorf("TCP checksum %#04x, recomputed %#04x", got, want)
		}
	}
	if d.udp != nil {
		if got, want := d.udp.Checksum, again.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum; got != want {
			t.Errorf("UDP checksum %#04x, recomputed %#04x", got, want)
		}
	}
	return d
}

// migOf returns the stage name and the named header and payload fields of
// the TCPMig message in a checked frame.
func (e *env) migOf(d decoded) (string, map[string]uint64) {
	e.t.Helper()
	b := d.udp.Payload
	if len(b) < e.s.Header.Bytes {
		e.t.Fatalf("TCPMig datagram of %d bytes", len(b))
	}
	fields := map[string]uint64{}
	for _, f := range e.s.Header.Fields {
		fields[f.Name] = unpack(b, f.Offset, f.Bits)
	}
	stage := ""
	for _, v := range e.s.StageEnum().Values {
		if v.Value == fields[e.s.Header.StageField] {
			stage = v.Name
		}
	}
	for _, m := range e.s.Messages {
		if m.Stage != nil && m.Stage.Name == stage {
			for _, f := range m.Payload {
				if f.Type != spec.TypeBytes && len(b)*8 >= e.s.Header.Bytes*8+f.Offset+f.Bits {
					fields[f.Name] = unpack(b[e.s.Header.Bytes:], f.Offset, f.Bits)
				}
			}
		}
	}
	return stage, fields
}

// linearMap is the GF(2)-linear part of "key -> the indexes of every
// level": a CRC with fixed-length input is affine, so keys k and k^d
// collide on every level exactly when d is in the kernel.
type linearMap struct {
	levels []int
	s      *spec.Spec
}

func (l linearMap) image(k uint64) []uint32 {
	ip, port := keyOf(k)
	out := make([]uint32, len(l.levels))
	for i, lv := range l.levels {
		out[i] = l.s.Directory.Index(lv, ip, port)
	}
	return out
}

// kernel returns a basis of the 48-bit key differences that keep every
// listed level's index, by Gaussian elimination over the images of the 48
// unit keys (with the reference hash).
func (l linearMap) kernel() []uint64 {
	zero := l.image(0)
	type row struct {
		img []uint32
		mix uint64
	}
	pivots := map[[2]int]row{} // (level, bit) -> row with that leading bit
	lead := func(img []uint32) ([2]int, bool) {
		for i, v := range img {
			for b := 31; b >= 0; b-- {
				if v>>b&1 != 0 {
					return [2]int{i, b}, true
				}
			}
		}
		return [2]int{}, false
	}
	var basis []uint64
	for j := 0; j < 48; j++ {
		r := row{img: l.image(1 << j), mix: 1 << j}
		for i := range r.img {
			r.img[i] ^= zero[i]
		}
		for {
			p, ok := lead(r.img)
			if !ok {
				basis = append(basis, r.mix)
				break
			}
			q, ok := pivots[p]
			if !ok {
				pivots[p] = r
				break
			}
			for i := range r.img {
				r.img[i] ^= q.img[i]
			}
			r.mix ^= q.mix
		}
	}
	return basis
}

// collidingKeys returns n distinct keys (ip<<16 | port) near base whose
// indexes are equal on the listed levels, or nil when the kernel is too
// small to hold n of them.
func collidingKeys(s *spec.Spec, levels []int, base uint64, n int) []uint64 {
	basis := linearMap{levels: levels, s: s}.kernel()
	if len(basis) < 62 && 1<<len(basis) < n {
		return nil
	}
	keys := []uint64{base}
	for c := uint64(1); len(keys) < n; c++ {
		k := base
		for i, v := range basis {
			if c>>i&1 != 0 {
				k ^= v
			}
		}
		keys = append(keys, k)
	}
	return keys
}

func allLevels() []int {
	l := make([]int, Levels)
	for i := range l {
		l[i] = i
	}
	return l
}

// randomKey is a random client key with a non-zero address.
func randomKey(r *rand.Rand) ([4]byte, uint16) {
	var ip [4]byte
	binary.BigEndian.PutUint32(ip[:], r.Uint32()|1)
	return ip, uint16(r.Uint32())
}
