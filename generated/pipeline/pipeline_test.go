package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

const (
	cport  = 40000 // the client's TCP port
	svport = 8080  // the service's TCP port (never rewritten)
)

// migrate installs client:cport -> target for origin, as the ACK with LOAD
// does, and checks it went through unchanged.
func (e *env) migrate(target, origin, client [4]byte, port uint16, in Port) {
	e.t.Helper()
	frame := e.ack(target, origin, client, port, true)
	r, out := e.run(frame, in)
	want := e.p.hostPort(origin)
	e.want(r, fwd(want))
	stage, _ := e.migOf(checkFrame(e.t, out))
	if stage != "prepare_mig_ack" {
		e.t.Fatalf("ACK with LOAD for %s:%d left as %s, want prepare_mig_ack", ipString(client), port, stage)
	}
}

// remigrate is a re-migration's ACK with LOAD: target answers the PREPARE
// of holder, which holds the connection the client knows at origin. It
// checks that the ACK went on to the holder unchanged.
func (e *env) remigrate(target, holder, origin, client [4]byte, port uint16, in Port) {
	e.t.Helper()
	r, out := e.run(e.ackTo(target, holder, origin, client, port, true), in)
	e.want(r, fwd(e.p.hostPort(holder)))
	stage, _ := e.migOf(checkFrame(e.t, out))
	if stage != "prepare_mig_ack" {
		e.t.Fatalf("re-migration ACK for %s:%d left as %s, want prepare_mig_ack", ipString(client), port, stage)
	}
}

// hostPort is the egress ipv4_host gives ip (test only).
func (p *Pipeline) hostPort(ip [4]byte) Port {
	p.mu.Lock()
	defer p.mu.Unlock()
	h, _ := p.hosts.Lookup(binaryU32(ip))
	return h.port
}

func binaryU32(ip [4]byte) uint32 { return uint32(ipU64(ip)) }

func TestRequestAndResponseRewrite(t *testing.T) {
	e := newEnv(t)
	// A migrates the client to B.
	e.migrate(ipB, ipA, ipClient, cport, portB)

	// Request: client -> A becomes client -> B, checksums valid.
	r, out := e.run(tcpFrame(t, ipClient, ipA, cport, svport, "PA", []byte("GET / HTTP/1.1\r\n\r\n")), portClient)
	e.want(r, fwd(portB))
	d := checkFrame(t, out)
	if got := addr(d.ip.DstIP); got != ipB {
		t.Errorf("request dst = %s, want %s", ipString(got), ipString(ipB))
	}
	if got := addr(d.ip.SrcIP); got != ipClient {
		t.Errorf("request src = %s, want the client %s", ipString(got), ipString(ipClient))
	}
	if d.tcp.DstPort != svport || d.tcp.SrcPort != cport {
		t.Errorf("request ports %d->%d, want %d->%d (never rewritten)", d.tcp.SrcPort, d.tcp.DstPort, cport, svport)
	}
	if m := macOf(portB); !bytes.Equal(d.eth.DstMAC, m[:]) {
		t.Errorf("request dst MAC %s, want B's %x", d.eth.DstMAC, m)
	}

	// Response: B -> client becomes A -> client.
	r, out = e.run(tcpFrame(t, ipB, ipClient, svport, cport, "PA", []byte("HTTP/1.1 200 OK\r\n\r\n!")), portB)
	e.want(r, fwd(portClient))
	d = checkFrame(t, out)
	if got := addr(d.ip.SrcIP); got != ipA {
		t.Errorf("response src = %s, want the origin %s", ipString(got), ipString(ipA))
	}
	if got := e.p.Counters().Hits; got != 2 {
		t.Errorf("Counters().Hits = %d, want 2", got)
	}

	// Another client port of the same host is not migrated.
	r, out = e.run(tcpFrame(t, ipClient, ipA, cport+1, svport, "A", nil), portClient)
	e.want(r, fwd(portA))
	if got := addr(checkFrame(t, out).ip.DstIP); got != ipA {
		t.Errorf("unmigrated request dst = %s, want %s", ipString(got), ipString(ipA))
	}
}

// TestChecksumsAfterRewrite rewrites many random segments (odd lengths,
// random addresses and ports) and checks every checksum against gopacket.
func TestChecksumsAfterRewrite(t *testing.T) {
	e := newEnv(t)
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		ip, port := randomKey(r)
		var target, origin [4]byte
		r.Read(target[:])
		r.Read(origin[:])
		if err := e.p.SetHost(target, portB, macOf(portB)); err != nil {
			t.Fatal(err)
		}
		if err := e.p.SetHost(origin, portA, macOf(portA)); err != nil {
			t.Fatal(err)
		}
		e.p.ClearDirectory()
		if err := e.p.SetHost(ip, portClient, macOf(portClient)); err != nil && !errors.Is(err, ErrTableFull) {
			t.Fatal(err)
		}
		e.migrate(target, origin, ip, port, portB)
		payload := make([]byte, r.Intn(64))
		r.Read(payload)
		res, out := e.run(tcpFrame(t, ip, origin, port, svport, "PA", payload), portClient)
		e.want(res, fwd(portB))
		if got := addr(checkFrame(t, out).ip.DstIP); got != target {
			t.Fatalf("dst = %s, want %s", ipString(got), ipString(target))
		}
		res, out = e.run(tcpFrame(t, target, ip, svport, port, "PA", payload[:len(payload)/2]), portB)
		e.want(res, fwd(portClient))
		if got := addr(checkFrame(t, out).ip.SrcIP); got != origin {
			t.Fatalf("src = %s, want %s", ipString(got), ipString(origin))
		}
		_ = e.p.DeleteHost(ip)
		_ = e.p.DeleteHost(target)
		_ = e.p.DeleteHost(origin)
	}
}

func TestInsertNeedsLoad(t *testing.T) {
	e := newEnv(t)
	r, out := e.run(e.ack(ipB, ipA, ipClient, cport, false), portB)
	e.want(r, fwd(portA))
	if !bytes.Equal(out[14:], e.ack(ipB, ipA, ipClient, cport, false)[14:]) {
		t.Errorf("ACK without LOAD was changed past Ethernet")
	}
	if _, _, ok := e.p.Lookup(ipClient, cport); ok {
		t.Fatalf("ACK without LOAD inserted an entry")
	}
	if c := e.p.Counters(); c.Inserts != 0 {
		t.Errorf("Counters().Inserts = %d, want 0", c.Inserts)
	}
	e.migrate(ipB, ipA, ipClient, cport, portB)
	level, entry, ok := e.p.Lookup(ipClient, cport)
	if !ok || level != 0 || entry.Origin != ipA || entry.Target != ipB || entry.ClientIP != ipClient || entry.ClientPort != cport || !entry.Valid {
		t.Fatalf("Lookup after ACK with LOAD = %d, %+v, %v; want level 0, origin A, target B", level, entry, ok)
	}
	i, err := Index(0, ipClient, cport)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.p.ReadDirectory(0, int(i)); err != nil || got != entry {
		t.Errorf("ReadDirectory(0, %d) = %+v, %v; want %+v", i, got, err, entry)
	}
}

func TestRemigrationUpdatesTarget(t *testing.T) {
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	// B moves it on to C: C's ACK answers B's PREPARE, so it goes to B, the
	// holder; the origin the client knows stays A.
	e.remigrate(ipC, ipB, ipA, ipClient, cport, portC)
	level, entry, ok := e.p.Lookup(ipClient, cport)
	if !ok || level != 0 || entry.Target != ipC || entry.Origin != ipA {
		t.Fatalf("Lookup after re-migration = %d, %+v, %v; want level 0, target C, origin A", level, entry, ok)
	}
	r, out := e.run(tcpFrame(t, ipClient, ipA, cport, svport, "A", nil), portClient)
	e.want(r, fwd(portC))
	if got := addr(checkFrame(t, out).ip.DstIP); got != ipC {
		t.Errorf("request dst = %s, want %s", ipString(got), ipString(ipC))
	}
	if Levels > 1 {
		if got, _ := e.p.ReadDirectory(1, int(mustIndex(t, 1, ipClient, cport))); got.Valid {
			t.Errorf("re-migration also wrote level 1: %+v", got)
		}
	}
}

func mustIndex(t testing.TB, level int, ip [4]byte, port uint16) uint32 {
	t.Helper()
	i, err := Index(level, ip, port)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// TestLevelTwoOnCollision: a key whose level-0 slot holds another key goes to
// level 1 (write-if-empty) and both keys keep working.
func TestLevelTwoOnCollision(t *testing.T) {
	e := newEnv(t)
	if Levels < 2 {
		t.Skip("one directory level: no second level to fall back to")
	}
	// Search with the reference hash for two keys that collide on level 0
	// but not on level 1.
	r := rand.New(rand.NewSource(2))
	seen := map[uint32][6]byte{}
	var k1ip, k2ip [4]byte
	var k1port, k2port uint16
	for tries, found := 0, false; !found; tries++ {
		if tries > 1<<22 {
			t.Fatalf("no two keys collide on level 0 and not on level 1 in %d random keys", tries)
		}
		ip, port := randomKey(r)
		i0 := e.s.Directory.Index(0, ip, port)
		if prev, ok := seen[i0]; ok {
			pip, pport := [4]byte(prev[:4]), uint16(prev[4])<<8|uint16(prev[5])
			if (pip != ip || pport != port) && e.s.Directory.Index(1, pip, pport) != e.s.Directory.Index(1, ip, port) {
				k1ip, k1port, k2ip, k2port, found = pip, pport, ip, port, true
			}
			continue
		}
		seen[i0] = [6]byte{ip[0], ip[1], ip[2], ip[3], byte(port >> 8), byte(port)}
	}
	for _, k := range []struct {
		ip   [4]byte
		port uint16
	}{{k1ip, k1port}, {k2ip, k2port}} {
		if err := e.p.SetHost(k.ip, portClient, macOf(portClient)); err != nil {
			t.Fatal(err)
		}
	}
	e.migrate(ipB, ipA, k1ip, k1port, portB)
	e.migrate(ipC, ipA, k2ip, k2port, portC)
	if l, en, ok := e.p.Lookup(k1ip, k1port); !ok || l != 0 || en.Target != ipB {
		t.Errorf("first key: level %d %+v %v, want level 0 target B", l, en, ok)
	}
	if l, en, ok := e.p.Lookup(k2ip, k2port); !ok || l != 1 || en.Target != ipC {
		t.Errorf("colliding key: level %d %+v %v, want level 1 target C", l, en, ok)
	}
	r1, _ := e.run(tcpFrame(t, k1ip, ipA, k1port, svport, "A", nil), portClient)
	r2, _ := e.run(tcpFrame(t, k2ip, ipA, k2port, svport, "A", nil), portClient)
	e.want(r1, fwd(portB))
	e.want(r2, fwd(portC))
}

// TestFullDirectoryRejects fills the slot of one key on every level with
// keys colliding on all levels; the next ACK becomes REJECTED, goes to the
// origin and overwrites nothing.
func TestFullDirectoryRejects(t *testing.T) {
	e := newEnv(t)
	keys := collidingKeys(e.s, allLevels(), 0x0a4d_0001_9c40, Levels+1)
	if keys == nil {
		t.Skipf("%d levels x %d bits leave no 48-bit keys colliding on every level", Levels, IndexBits)
	}
	targets := [][4]byte{ipB, ipC}
	for i, k := range keys[:Levels] {
		ip, port := keyOf(k)
		target := targets[i%2]
		e.migrate(target, ipA, ip, port, e.p.hostPort(target))
		if l, _, ok := e.p.Lookup(ip, port); !ok || l != i {
			t.Fatalf("key %d (%s:%d) on level %d (found %v), want level %d", i, ipString(ip), port, l, ok, i)
		}
	}
	ip, port := keyOf(keys[Levels])
	r, out := e.run(e.ack(ipB, ipA, ip, port, true), portB)
	e.want(r, fwd(portA)) // to the origin, not reflected to the target
	d := checkFrame(t, out)
	stage, fields := e.migOf(d)
	if stage != "rejected" {
		t.Fatalf("ACK into a full directory became %s, want rejected", stage)
	}
	if got := addr(d.ip.DstIP); got != ipA {
		t.Errorf("REJECTED goes to %s, want the origin %s", ipString(got), ipString(ipA))
	}
	if fields[e.s.Directory.Key[0]] != ipU64(ip) || fields[e.s.Directory.Key[1]] != uint64(port) {
		t.Errorf("REJECTED names %v, want the refused client %s:%d", fields, ipString(ip), port)
	}
	if _, _, ok := e.p.Lookup(ip, port); ok {
		t.Errorf("the refused key was inserted")
	}
	for i, k := range keys[:Levels] {
		kip, kport := keyOf(k)
		if l, en, ok := e.p.Lookup(kip, kport); !ok || l != i || en.Target != targets[i%2] {
			t.Errorf("key %d after the reject: level %d %+v %v; want untouched on level %d", i, l, en, ok, i)
		}
	}
	if c := e.p.Counters(); c.Rejects != 1 || c.Inserts != uint64(Levels) {
		t.Errorf("Counters() = %+v, want %d inserts and 1 reject", c, Levels)
	}
}

func TestDeleteOnRSTAndFIN(t *testing.T) {
	for _, tc := range []struct {
		flags   string
		in      Port
		deletes bool
	}{
		{"RA", portClient, DeleteOnRST},
		{"FA", portClient, DeleteOnFIN},
		{"R", portB, DeleteOnRST},
		{"FA", portB, DeleteOnFIN},
		{"PA", portClient, false},
		{"SA", portB, false},
	} {
		t.Run(tc.flags+"-"+map[Port]string{portClient: "client", portB: "server"}[tc.in], func(t *testing.T) {
			e := newEnv(t)
			e.migrate(ipB, ipA, ipClient, cport, portB)
			frame := tcpFrame(t, ipClient, ipA, cport, svport, tc.flags, nil)
			want := fwd(portB)
			if tc.in == portB {
				frame, want = tcpFrame(t, ipB, ipClient, svport, cport, tc.flags, nil), fwd(portClient)
			}
			r, out := e.run(frame, tc.in)
			e.want(r, want) // the segment itself is still rewritten
			d := checkFrame(t, out)
			if tc.in == portClient && addr(d.ip.DstIP) != ipB || tc.in == portB && addr(d.ip.SrcIP) != ipA {
				t.Errorf("segment with %s not rewritten: %s -> %s", tc.flags, d.ip.SrcIP, d.ip.DstIP)
			}
			_, _, ok := e.p.Lookup(ipClient, cport)
			if ok == tc.deletes {
				t.Errorf("entry present = %v after %s from %v, want %v (delete_on %v)", ok, tc.flags, tc.in, !tc.deletes, e.s.Directory.DeleteOn)
			}
			if got, want := e.p.Counters().Deletes, map[bool]uint64{true: 1}[tc.deletes]; got != want {
				t.Errorf("Counters().Deletes = %d, want %d", got, want)
			}
			if tc.deletes {
				if got, _ := e.p.ReadDirectory(0, int(mustIndex(t, 0, ipClient, cport))); got != (Entry{}) {
					t.Errorf("deleted slot reads %+v, want all zero", got)
				}
			}
		})
	}
}

func (e *env) heartbeatReply(src [4]byte, in Port, load uint64) uint64 {
	e.t.Helper()
	r, out := e.run(e.heartbeat(src, load), in)
	e.want(r, reply(in))
	d := checkFrame(e.t, out)
	stage, fields := e.migOf(d)
	if stage != "heartbeat_response" {
		e.t.Fatalf("heartbeat answered with %s, want heartbeat_response", stage)
	}
	if addr(d.ip.DstIP) != src || addr(d.ip.SrcIP) != ipNowere {
		e.t.Errorf("response %s -> %s, want addresses swapped (-> %s)", d.ip.SrcIP, d.ip.DstIP, ipString(src))
	}
	if d.udp.DstPort != 40001 || d.udp.SrcPort != layers.UDPPort(e.s.Transport.UDPPort) {
		e.t.Errorf("response ports %d -> %d, want swapped", d.udp.SrcPort, d.udp.DstPort)
	}
	if m := macOf(0); !bytes.Equal(d.eth.SrcMAC, []byte{2, 0, 0, 0, 0, switchMACByte}) || bytes.Equal(d.eth.DstMAC, m[:]) {
		e.t.Errorf("response MACs %s -> %s", d.eth.SrcMAC, d.eth.DstMAC)
	}
	return fields[e.s.Workload.MetricField]
}

func (e *env) holder() ([4]byte, uint32) {
	h, l := e.p.ReadMinWorkload()
	return h, l
}

func TestHeartbeat(t *testing.T) {
	e := newEnv(t)
	a := uint64(AgeStep) // what another server's report adds to the held load
	steps := []struct {
		name   string
		src    [4]byte
		in     Port
		load   uint64
		holder [4]byte
		min    uint64
	}{
		{"first heartbeat takes the empty register", ipA, portA, 50, ipA, 50},
		{"the holder's load rises", ipA, portA, 80, ipA, 80},
		{"the holder's load falls", ipA, portA, 30, ipA, 30},
		{"a larger load elsewhere does not take over, and ages the held load", ipB, portB, 40 + a, ipA, 30 + a},
		{"a load equal to the held one elsewhere does not take over", ipB, portB, 30 + a, ipA, 30 + 2*a},
		{"the holder's own report ends the aging", ipA, portA, 30, ipA, 30},
		{"a smaller load elsewhere takes over", ipC, portC, 10, ipC, 10},
		{"the old holder's report is now just another server's", ipA, portA, 20, ipC, 10 + a},
		{"the new holder rises above the others", ipC, portC, 90, ipC, 90},
		{"the load is truncated to the register width", ipB, portB, 1<<WorkloadBits | 5, ipB, 5},
	}
	for _, s := range steps {
		got := e.heartbeatReply(s.src, s.in, s.load)
		h, l := e.holder()
		if h != s.holder || uint64(l) != s.min || got != s.min {
			t.Fatalf("%s: register {%s, %d}, response %d; want {%s, %d}", s.name, ipString(h), l, got, ipString(s.holder), s.min)
		}
	}
	if c := e.p.Counters(); c.Heartbeats != uint64(len(steps)) {
		t.Errorf("Counters().Heartbeats = %d, want %d", c.Heartbeats, len(steps))
	}
}

// TestHeartbeatAgesOutASilentHolder: a holder that stops reporting (a dead
// server that last reported the smallest load) is replaced once the other
// servers' reports have aged its load past theirs; until then PREPAREs
// still go to it. The aging saturates instead of wrapping to a small load.
func TestHeartbeatAgesOutASilentHolder(t *testing.T) {
	if AgeStep == 0 {
		t.Skip("the spec's workload.age_step is 0: a silent holder is never aged out")
	}
	e := newEnv(t)
	const live = 100
	e.heartbeatReply(ipA, portA, 0) // A reports the least load, then dies
	reports := 0
	for ; reports < 2*live+2; reports++ {
		if h, _ := e.holder(); h != ipA {
			break
		}
		r, _ := e.run(e.prepare(ipB), portB)
		e.want(r, fwd(portA))
		src, in := ipB, portB
		if reports%2 == 1 {
			src, in = ipC, portC
		}
		e.heartbeatReply(src, in, live)
	}
	// A's load is n*AgeStep after n reports, and report n+1 takes the
	// register once that is above its load: n = live/AgeStep + 1.
	step := uint32(AgeStep) // a variable: a spec without aging skips, but still compiles
	if want := live/int(step) + 2; reports != want {
		t.Fatalf("the silent holder was replaced after %d reports of load %d, want %d (AgeStep %d)", reports, live, want, AgeStep)
	}
	if h, l := e.holder(); h == ipA || l != live {
		t.Fatalf("register {%s, %d} after the aging, want a live server with load %d", ipString(h), l, live)
	}

	// Saturation: a held load near the top stays at EmptyLoad, never wraps.
	if err := e.p.WriteMinWorkloadCell(ipA, EmptyLoad-AgeStep/2); err != nil {
		t.Fatal(err)
	}
	if got := e.heartbeatReply(ipB, portB, EmptyLoad); got != EmptyLoad {
		t.Fatalf("aging a held load of %#x answered %#x, want it saturated at EmptyLoad", EmptyLoad-AgeStep/2, got)
	}
	if h, _ := e.holder(); h != ipA {
		t.Fatalf("holder %s after a saturating age, want A kept", ipString(h))
	}
}

func (e *env) prepare(src [4]byte) []byte {
	return e.prepareFrom(src, src, ipClient, cport)
}

// prepareFrom is the PREPARE_MIG src sends for the connection the client
// knows at origin (src itself, or the origin of a connection src holds).
func (e *env) prepareFrom(src, origin, client [4]byte, port uint16) []byte {
	return e.migFrame(src, src, mig{msg: "prepare_mig", hdr: map[string]uint64{
		"origin_ip": ipU64(origin), e.s.Directory.Key[0]: ipU64(client), e.s.Directory.Key[1]: uint64(port),
	}})
}

func TestPrepareSteering(t *testing.T) {
	e := newEnv(t)
	// No heartbeat yet: nobody to steer to.
	r, out := e.run(e.prepare(ipA), portA)
	e.want(r, reply(portA))
	if stage, _ := e.migOf(checkFrame(t, out)); stage != "rejected" {
		t.Fatalf("PREPARE with an empty register answered %s, want rejected", stage)
	}

	e.heartbeatReply(ipB, portB, 5)
	e.heartbeatReply(ipA, portA, 50)
	r, out = e.run(e.prepare(ipA), portA)
	e.want(r, fwd(portB))
	d := checkFrame(t, out)
	if got := addr(d.ip.DstIP); got != ipB {
		t.Errorf("PREPARE steered to %s, want the least loaded %s", ipString(got), ipString(ipB))
	}
	if stage, f := e.migOf(d); stage != "prepare_mig" || f["origin_ip"] != ipU64(ipA) {
		t.Errorf("steered PREPARE is %s %v, want prepare_mig from origin A", stage, f)
	}

	// The least-loaded server itself: REJECTED, not a loop back to it.
	r, out = e.run(e.prepare(ipB), portB)
	e.want(r, reply(portB))
	d = checkFrame(t, out)
	if stage, _ := e.migOf(d); stage != "rejected" {
		t.Fatalf("PREPARE from the least-loaded server answered %s, want rejected", stage)
	}
	if addr(d.ip.DstIP) != ipB {
		t.Errorf("REJECTED goes to %s, want the sender %s", d.ip.DstIP, ipString(ipB))
	}
	if c := e.p.Counters(); c.PrepareRejects != 2 {
		t.Errorf("Counters().PrepareRejects = %d, want 2", c.PrepareRejects)
	}
}

func TestDrops(t *testing.T) {
	e := newEnv(t)
	e.heartbeatReply(ipB, portB, 5)
	short := e.migFrame(ipA, ipB, mig{msg: e.s.Workload.Heartbeat})
	shortLen := 14 + 20 + 8 + e.s.Header.Bytes // header only: no payload
	short = short[:shortLen]
	short[14+2], short[14+3] = byte((shortLen-14)>>8), byte(shortLen-14)
	short[14+20+4], short[14+20+5] = byte((shortLen-34)>>8), byte(shortLen-34)
	badStage := e.migFrame(ipA, ipB, mig{msg: "prepare_mig"})
	if f := e.s.HeaderField(e.s.Header.StageField); f != nil {
		unknown := uint64(1)<<f.Bits - 1
		for _, v := range e.s.StageEnum().Values {
			if v.Value == unknown {
				t.Fatalf("every stage value is used; cannot build an unknown stage")
			}
		}
		pack(badStage[42:], f.Offset, f.Bits, unknown)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		in    Port
		want  DropReason
	}{
		{"heartbeat from a client port", e.heartbeat(ipClient, 1), portClient, DropSpoofedControl},
		{"ACK from a client port", e.ack(ipClient, ipA, ipClient, cport, true), portClient, DropSpoofedControl},
		{"PREPARE from a client port", e.prepare(ipClient), portClient, DropSpoofedControl},
		{"TCP from a port without a role", tcpFrame(t, ipClient, ipA, cport, svport, "A", nil), portNoRole, DropUnknownPort},
		{"port beyond the target", tcpFrame(t, ipClient, ipA, cport, svport, "A", nil), MaxPorts, DropUnknownPort},
		{"no route", tcpFrame(t, ipA, ipNowere, svport, cport, "A", nil), portA, DropNoRoute},
		{"heartbeat without its payload", short, portA, DropBadTCPMig},
		{"unknown stage", badStage, portA, DropBadTCPMig},
	} {
		r, _ := e.run(tc.frame, tc.in)
		if r != dropped(tc.want) {
			t.Errorf("%s: Process = %+v, want drop %v", tc.name, r, tc.want)
		}
	}
	if h, l := e.holder(); h != ipB || l != 5 {
		t.Errorf("dropped heartbeats changed the register to {%s, %d}", ipString(h), l)
	}
	if _, _, ok := e.p.Lookup(ipClient, cport); ok {
		t.Errorf("a spoofed ACK inserted an entry")
	}
	c := e.p.Counters()
	for reason, n := range map[DropReason]uint64{DropSpoofedControl: 3, DropUnknownPort: 2, DropNoRoute: 1, DropBadTCPMig: 2} {
		if c.Drops[reason] != n {
			t.Errorf("Counters().Drops[%v] = %d, want %d", reason, c.Drops[reason], n)
		}
	}
}

func TestL2(t *testing.T) {
	e := newEnv(t)
	arp := serialize(t,
		&layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: []byte{2, 0, 0, 0, 0, 1}, SourceProtAddress: ipClient[:],
			DstHwAddress: make([]byte, 6), DstProtAddress: ipA[:]})
	r, out := e.run(arp, portClient)
	e.want(r, flood(portClient))
	if !bytes.Equal(out, arp) {
		t.Errorf("flooded ARP was changed")
	}
	// An ARP reply to a known MAC is forwarded; to an unknown one flooded.
	unicast := append([]byte(nil), arp...)
	copy(unicast[0:6], []byte{2, 0, 0, 0, 0, 1})
	e.want(mustRun(e, unicast, portA), flood(portA))
	if err := e.p.SetL2([6]byte{2, 0, 0, 0, 0, 1}, portClient); err != nil {
		t.Fatal(err)
	}
	e.want(mustRun(e, unicast, portA), fwd(portClient))
	// Broadcast floods even when the table knows ff:ff:ff:ff:ff:ff.
	if err := e.p.SetL2([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, portB); err != nil {
		t.Fatal(err)
	}
	e.want(mustRun(e, arp, portA), flood(portA))
	if err := e.p.DeleteL2([6]byte{2, 0, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	e.want(mustRun(e, unicast, portA), flood(portA))
}

func mustRun(e *env, frame []byte, in Port) Result {
	r, _ := e.run(frame, in)
	return r
}

// TestOptionsAndFragmentsNotRewritten: IPv4 with options or fragments is
// routed on its destination without the directory or TCPMig.
func TestOptionsAndFragmentsNotRewritten(t *testing.T) {
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	withOptions := func(frag func(*layers.IPv4)) []byte {
		ip := ip4(ipClient, ipA, layers.IPProtocolTCP)
		frag(ip)
		tcp := &layers.TCP{SrcPort: cport, DstPort: svport, Seq: 1, ACK: true, Window: 100}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, ethIPv4(), ip, tcp)
	}
	for name, frame := range map[string][]byte{
		"options": withOptions(func(ip *layers.IPv4) {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}),
		"more fragments":  withOptions(func(ip *layers.IPv4) { ip.Flags = layers.IPv4MoreFragments }),
		"fragment offset": withOptions(func(ip *layers.IPv4) { ip.FragOffset = 100 }),
	} {
		r, out := e.run(frame, portClient)
		e.want(r, fwd(portA))
		if m := macOf(portA); !bytes.Equal(out[6:], frame[6:]) || !bytes.Equal(out[:6], m[:]) {
			t.Errorf("%s: frame rewritten past the Ethernet destination", name)
		}
	}
	// A heartbeat inside a fragment is not a TCPMig message either.
	hb := e.heartbeat(ipA, 1)
	hb[14+6] |= 0x20 // MF
	hb[14+10], hb[14+11] = 0, 0
	r, _ := e.run(hb, portA)
	e.want(r, dropped(DropNoRoute)) // routed on its dst, which has no host
	if h, _ := e.holder(); h != ([4]byte{}) {
		t.Errorf("a fragmented heartbeat updated the register")
	}
}

func TestOtherTrafficRouted(t *testing.T) {
	e := newEnv(t)
	icmp := serialize(t, ethIPv4(), ip4(ipClient, ipA, layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})
	r, out := e.run(icmp, portClient)
	e.want(r, fwd(portA))
	if out[14+8] != icmp[14+8] {
		t.Errorf("TTL changed from %d to %d: the switch is a bump in the wire", icmp[14+8], out[14+8])
	}
	// UDP to the TCPMig port without the magic is plain UDP.
	ip := ip4(ipA, ipB, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: 1, DstPort: layers.UDPPort(e.s.Transport.UDPPort)}
	_ = udp.SetNetworkLayerForChecksum(ip)
	plain := serialize(t, ethIPv4(), ip, udp, gopacket.Payload(make([]byte, e.s.Header.Bytes+8)))
	e.want(mustRun(e, plain, portClient), fwd(portB))
	// Hairpin: a Forward back out of the ingress port is allowed.
	e.want(mustRun(e, tcpFrame(t, ipB, ipA, 1, 2, "A", nil), portA), fwd(portA))
}

// TestTruncatedFrames cuts real frames of every kind at every length.
func TestTruncatedFrames(t *testing.T) {
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	e.heartbeatReply(ipC, portC, 3)
	frames := map[string][]byte{
		"request":   tcpFrame(t, ipClient, ipA, cport, svport, "FA", []byte("x")),
		"response":  tcpFrame(t, ipB, ipClient, svport, cport, "RA", nil),
		"heartbeat": e.heartbeat(ipA, 7),
		"ack":       e.ack(ipB, ipA, ipClient, cport+1, true),
		"prepare":   e.prepare(ipA),
	}
	if Release != "" {
		frames["release"] = e.connClosed(ipB, ipA, ipClient, cport)
	}
	for name, f := range frames {
		for n := 0; n <= len(f); n++ {
			for _, in := range []Port{portClient, portA, portB} {
				cut := append([]byte(nil), f[:n]...)
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("%s cut to %d bytes from port %d: panic %v", name, n, in, p)
						}
					}()
					r := e.p.Process(cut, in)
					if n < 14 && r != dropped(DropMalformed) {
						t.Errorf("%s cut to %d bytes: %+v, want drop malformed", name, n, r)
					}
				}()
			}
		}
	}
}

func TestControlPlaneLimits(t *testing.T) {
	p := New()
	for i := 0; i < PortTableSize; i++ {
		if err := p.SetPortRole(Port(i), RoleServer); err != nil {
			t.Fatalf("SetPortRole(%d) = %v", i, err)
		}
	}
	if err := p.SetPortRole(Port(PortTableSize)%MaxPorts, RoleClient); PortTableSize < MaxPorts && !errors.Is(err, ErrTableFull) {
		t.Errorf("SetPortRole beyond tables.ports = %v, want ErrTableFull", err)
	}
	if err := p.SetPortRole(0, RoleClient); err != nil {
		t.Errorf("changing an existing role = %v, want nil", err)
	}
	if err := p.SetPortRole(MaxPorts, RoleClient); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("SetPortRole(MaxPorts) = %v, want ErrOutOfRange", err)
	}
	if err := p.SetPortRole(1, 0); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("SetPortRole(1, 0) = %v, want ErrOutOfRange", err)
	}
	if err := p.DeletePortRole(0); err != nil {
		t.Errorf("DeletePortRole(0) = %v", err)
	}
	if err := p.DeletePortRole(0); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeletePortRole twice = %v, want ErrNotFound", err)
	}
	for i := 0; i < HostTableSize; i++ {
		if err := p.SetHost([4]byte{10, 1, byte(i >> 8), byte(i)}, 1, [6]byte{}); err != nil {
			t.Fatalf("SetHost #%d = %v", i, err)
		}
	}
	err := p.SetHost([4]byte{10, 2, 0, 0}, 1, [6]byte{})
	if want := fmt.Sprintf("set host 10.2.0.0: table full: ipv4_host holds %d entries; raise tables.hosts in the spec", HostTableSize); !errors.Is(err, ErrTableFull) || err.Error() != want {
		t.Errorf("SetHost beyond tables.hosts = %v, want ErrTableFull: %q", err, want)
	}
	if err := p.SetHost([4]byte{10, 1, 0, 0}, 2, [6]byte{}); err != nil {
		t.Errorf("updating a host in a full table = %v, want nil", err)
	}
	if err := p.DeleteHost([4]byte{10, 2, 0, 0}); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteHost(absent) = %v, want ErrNotFound", err)
	}
	for i := 0; i < L2TableSize; i++ {
		if err := p.SetL2([6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)}, 1); err != nil {
			t.Fatalf("SetL2 #%d = %v", i, err)
		}
	}
	err = p.SetL2([6]byte{2, 1}, 1)
	if want := fmt.Sprintf("set l2 02:01:00:00:00:00: table full: l2_forward holds %d entries; raise tables.l2 in the spec", L2TableSize); !errors.Is(err, ErrTableFull) || err.Error() != want {
		t.Errorf("SetL2 beyond tables.l2 = %v, want ErrTableFull: %q", err, want)
	}
	if err := p.DeleteL2([6]byte{2, 1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteL2(absent) = %v, want ErrNotFound", err)
	}

	e := Entry{Valid: true, ClientIP: ipClient, ClientPort: 0, Origin: ipA, Target: ipB}
	for _, bad := range [][2]int{{-1, 0}, {Levels, 0}, {0, -1}, {0, Slots}} {
		if _, err := p.ReadDirectory(bad[0], bad[1]); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("ReadDirectory%v = %v, want ErrOutOfRange", bad, err)
		}
		if err := p.WriteDirectory(bad[0], bad[1], e); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("WriteDirectory%v = %v, want ErrOutOfRange", bad, err)
		}
	}
	// Port 0 is a legal key: the valid bit, not the port, marks a used slot.
	i := int(mustIndex(t, Levels-1, ipClient, 0))
	if err := p.WriteDirectory(Levels-1, i, e); err != nil {
		t.Fatal(err)
	}
	if l, got, ok := p.Lookup(ipClient, 0); !ok || l != Levels-1 || got != e {
		t.Errorf("Lookup of a written port-0 key = %d, %+v, %v", l, got, ok)
	}
	p.ClearDirectory()
	if got, _ := p.ReadDirectory(Levels-1, i); got != (Entry{}) {
		t.Errorf("slot after ClearDirectory = %+v", got)
	}
	if err := p.WriteMinWorkload(ipA, 7); err != nil {
		t.Fatal(err)
	}
	if h, l := p.ReadMinWorkload(); h != ipA || l != 7 {
		t.Errorf("ReadMinWorkload = %v, %d", h, l)
	}
	if WorkloadBits < 32 {
		wide := uint64(1) << WorkloadBits
		if err := p.WriteMinWorkload(ipA, uint32(wide)); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("WriteMinWorkload too wide = %v, want ErrOutOfRange", err)
		}
	}
	if _, err := Index(Levels, ipA, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Index(Levels) = %v, want ErrOutOfRange", err)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Forward.String(), "forward"}, {Flood.String(), "flood"}, {Reply.String(), "reply"}, {Drop.String(), "drop"},
		{Verdict(0).String(), "Verdict(0)"}, {RoleServer.String(), "server"}, {DropNoRoute.String(), "no_route"},
		{DropSpoofedControl.String(), "spoofed_control"}, {DropBadTCPMig.String(), "bad_tcpmig"}, {DropUnknownPort.String(), "unknown_port"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q, want %q", c.got, c.want)
		}
	}
}

// TestUDPWithoutChecksum: a datagram sent without a UDP checksum (zero)
// keeps none when the switch rewrites it; one with a checksum keeps a valid
// one (checked by checkFrame everywhere else).
func TestUDPWithoutChecksum(t *testing.T) {
	e := newEnv(t)
	e.heartbeatReply(ipB, portB, 5)
	for name, frame := range map[string][]byte{
		"heartbeat": e.heartbeat(ipA, 9),
		"prepare":   e.prepare(ipA),
		"ack":       e.ack(ipB, ipA, ipClient, cport, true),
	} {
		frame[40], frame[41] = 0, 0
		r, out := e.run(frame, portA)
		if r.Verdict == Drop {
			t.Fatalf("%s: dropped: %+v", name, r)
		}
		if out[40] != 0 || out[41] != 0 {
			t.Errorf("%s: UDP checksum %#02x%02x after the rewrite, want 0 (none)", name, out[40], out[41])
		}
	}
}
