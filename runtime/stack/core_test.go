package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// peerTCP is a hand-driven TCP peer for the deterministic core tests.
type peerTCP struct {
	t        testing.TB
	s        *Stack
	ep       *capture
	src, dst netip.AddrPort
}

func (p *peerTCP) send(now tcp.Time, seg tcp.Segment) {
	seg.SrcPort, seg.DstPort = p.src.Port(), p.dst.Port()
	if seg.WindowScale == 0 {
		seg.WindowScale = -1
	}
	p.s.Input(now, ipFrame(p.src.Addr(), p.dst.Addr(), protoTCP, nil, tcp.AppendSegment(nil, p.src.Addr(), p.dst.Addr(), &seg)))
}

// recv parses the TCP segments the stack sent since the last call.
func (p *peerTCP) recv() []tcp.Segment {
	var out []tcp.Segment
	for _, f := range p.ep.take() {
		e := ethernet(f)
		if e.etherType() != etherTypeIPv4 {
			continue
		}
		h := IPv4(e.payload())
		if h.Protocol() != protoTCP {
			continue
		}
		seg, err := tcp.ParseSegment(h.Payload(), h.Src(), h.Dst())
		if err != nil {
			p.t.Fatalf("stack sent a bad segment: %v", err)
		}
		seg.Payload = append([]byte(nil), seg.Payload...)
		out = append(out, seg)
	}
	return out
}

// handshake opens a connection from the peer to the stack's listener.
func (p *peerTCP) handshake(iss uint32) (serverISS uint32) {
	p.t.Helper()
	p.send(0, tcp.Segment{Seq: iss, Flags: tcp.FlagSYN, Window: 65535, MSS: 1460, WindowScale: 7})
	segs := p.recv()
	if len(segs) != 1 || segs[0].Flags != tcp.FlagSYN|tcp.FlagACK || segs[0].Ack != iss+1 {
		p.t.Fatalf("SYN answered with %v, want one SYN-ACK acking %d", segs, iss+1)
	}
	p.send(0, tcp.Segment{Seq: iss + 1, Ack: segs[0].Seq + 1, Flags: tcp.FlagACK, Window: 65535})
	return segs[0].Seq
}

func newPeer(t testing.TB, s *Stack, ep *capture, port uint16) *peerTCP {
	return &peerTCP{t: t, s: s, ep: ep, src: netip.AddrPortFrom(ipPeer, port), dst: netip.AddrPortFrom(ipUs, 80)}
}

func TestRSTForNoListener(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	p := newPeer(t, s, ep, 40000)
	p.send(0, tcp.Segment{Seq: 5000, Flags: tcp.FlagSYN, Window: 1000})
	segs := p.recv()
	if len(segs) != 1 || segs[0].Flags != tcp.FlagRST|tcp.FlagACK || segs[0].Ack != 5001 || segs[0].DstPort != 40000 || segs[0].SrcPort != 80 {
		t.Fatalf("SYN to a closed port answered with %v, want RST|ACK 80 > 40000 ack 5001", segs)
	}
	// A RST is never answered.
	p.send(0, tcp.Segment{Seq: 1, Flags: tcp.FlagRST})
	if segs := p.recv(); len(segs) != 0 {
		t.Errorf("RST answered with %v", segs)
	}
	if c := s.Counters(); c.RSTOut != 1 || c.RSTIn != 1 || c.TCPNoConn != 1 {
		t.Errorf("rst.out %d rst.in %d no_conn %d, want 1 1 1", c.RSTOut, c.RSTIn, c.TCPNoConn)
	}
}

func TestBacklogBound(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.Backlog = 2; c.NoSYNCookies = true })
	learnPeer(t, s, ep)
	ln, err := s.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	peers := []*peerTCP{newPeer(t, s, ep, 40000), newPeer(t, s, ep, 40001), newPeer(t, s, ep, 40002)}
	var synack []tcp.Segment
	for _, p := range peers {
		p.send(0, tcp.Segment{Seq: 100, Flags: tcp.FlagSYN, Window: 1000})
		synack = append(synack, p.recv()...)
	}
	if c := s.Counters(); len(synack) != 2 || c.Drops[DropBacklogFull] != 1 {
		t.Fatalf("3 SYNs at backlog 2: %d SYN-ACKs, %d backlog drops; want 2 and 1", len(synack), c.Drops[DropBacklogFull])
	}
	if ln.TryAccept() != nil {
		t.Fatal("TryAccept returned a connection that never completed its handshake")
	}
	// Completing and accepting one handshake makes room again.
	peers[0].send(0, tcp.Segment{Seq: 101, Ack: synack[0].Seq + 1, Flags: tcp.FlagACK, Window: 1000})
	if c := ln.TryAccept(); c == nil || c.ID().Remote != peers[0].src {
		t.Fatalf("after the handshake TryAccept = %v, want the connection from %v", c, peers[0].src)
	}
	peers[2].send(0, tcp.Segment{Seq: 100, Flags: tcp.FlagSYN, Window: 1000})
	if segs := peers[2].recv(); len(segs) != 1 || segs[0].Flags != tcp.FlagSYN|tcp.FlagACK {
		t.Errorf("retried SYN after an Accept answered with %v, want a SYN-ACK", segs)
	}
}

func TestAcceptDeliversData(t *testing.T) {
	s, p, c, siss := established(t, nil)
	if c.ID().Remote != p.src || c.LocalAddr().String() != "10.77.0.1:80" {
		t.Errorf("accepted %v -> %v", c.ID().Local, c.ID().Remote)
	}
	p.send(time.Millisecond, tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("hello")})
	buf := make([]byte, 16)
	n, err := c.TryRead(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("TryRead = %q, %v; want hello", buf[:n], err)
	}
	if n, err := c.TryRead(buf); n != 0 || err != nil {
		t.Errorf("TryRead on empty = %d, %v; want 0, nil", n, err)
	}
	if _, err := c.TryWrite([]byte("world")); err != nil {
		t.Fatal(err)
	}
	segs := p.recv()
	if len(segs) == 0 || !bytes.Equal(segs[len(segs)-1].Payload, []byte("world")) {
		t.Fatalf("after TryWrite the stack sent %v, want the data", segs)
	}
	// The delayed ACK for "hello" (if not piggybacked) is a timer.
	if _, ok := s.NextDeadline(); !ok {
		t.Errorf("NextDeadline() has nothing while data is unacknowledged")
	}
}

func TestISSAndPorts(t *testing.T) {
	mk := func(seed uint64) *Stack {
		s, _ := newCaptureStack(t, func(c *Config) { c.Seed = seed })
		return s
	}
	id := tcp.ID{Local: netip.MustParseAddrPort("10.77.0.1:80"), Remote: netip.MustParseAddrPort("10.77.0.2:40000")}
	id2 := tcp.ID{Local: id.Local, Remote: netip.MustParseAddrPort("10.77.0.2:40001")}
	a, b, c := mk(5), mk(5), mk(6)
	if a.iss(id, 0) != b.iss(id, 0) {
		t.Errorf("same seed, same tuple: ISS %d and %d differ", a.iss(id, 0), b.iss(id, 0))
	}
	if a.iss(id, 0) == c.iss(id, 0) || a.iss(id, 0) == a.iss(id2, 0) {
		t.Errorf("ISS does not depend on the key and the tuple")
	}
	if d := a.iss(id, 4*time.Millisecond) - a.iss(id, 0); d != 1000 {
		t.Errorf("ISS advanced %d in 4ms, want 1000 (4 µs clock)", d)
	}
	raddr := netip.MustParseAddrPort("10.77.0.2:80")
	seen := map[uint16]bool{}
	for range 100 {
		conn, err := a.Connect(raddr)
		if err != nil {
			t.Fatal(err)
		}
		p := conn.ID().Local.Port()
		if p < ephemeralFirst || seen[p] {
			t.Fatalf("ephemeral port %d: out of range or reused while in use", p)
		}
		seen[p] = true
	}
	pa, _ := mk(9).Connect(raddr)
	pb, _ := mk(9).Connect(raddr)
	if pa.ID() != pb.ID() {
		t.Errorf("same seed chose ports %v and %v", pa.ID().Local, pb.ID().Local)
	}
}

func TestCloseStack(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	ln, _ := s.Listen(80)
	newPeer(t, s, ep, 40000).handshake(1)
	c := ln.TryAccept()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after stack Close = %v, want net.ErrClosed", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after stack Close = %v, want net.ErrClosed", err)
	}
	if _, err := s.Listen(81); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after stack Close = %v, want net.ErrClosed", err)
	}
	if n := len(s.Conns()); n != 0 {
		t.Errorf("%d connections left after Close", n)
	}
	ep.take()
	p := newPeer(t, s, ep, 40001)
	p.send(0, tcp.Segment{Seq: 9, Flags: tcp.FlagSYN, Window: 1000})
	if segs := p.recv(); len(segs) != 1 || segs[0].Flags&tcp.FlagRST == 0 || len(s.Conns()) != 0 {
		t.Errorf("SYN after Close answered with %v and %d conns, want a RST and none", segs, len(s.Conns()))
	}
}

// BenchmarkInputTCPData is the per-frame cost of in-order TCP data through
// the whole stack: Ethernet, IPv4 and TCP checks, demux, tcp.Conn.Input,
// the ACK it sends, and the application reading the data out (every 32
// frames). The frames are built once; between rounds only their sequence
// numbers move, with an incremental checksum update (RFC 1624).
func BenchmarkInputTCPData(b *testing.B) {
	s, p, c, siss := established(b, nil)
	p.ep.discard = true
	const batch = 128 // 128 * 1460 bytes fit the 256 KiB receive buffer
	payload := bytes.Repeat([]byte("x"), 1460)
	frames := make([][]byte, batch)
	for i := range frames {
		seg := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 1001 + uint32(i*len(payload)), Ack: siss + 1, Flags: tcp.FlagACK, Window: 65535, WindowScale: -1, Payload: payload}
		frames[i] = ipFrame(ipPeer, ipUs, protoTCP, nil, tcp.AppendSegment(nil, ipPeer, ipUs, &seg))
	}
	const tcpOff = EthernetHeaderLen + IPv4MinHeaderLen
	advance := func(f []byte) { // seq += batch*len(payload), checksum fixed up
		h := f[tcpOff:]
		old := binary.BigEndian.Uint32(h[4:8])
		nu := old + batch*uint32(len(payload))
		binary.BigEndian.PutUint32(h[4:8], nu)
		sum := uint32(^binary.BigEndian.Uint16(h[16:18]))
		sum += uint32(^uint16(old>>16)) + uint32(^uint16(old)) + nu>>16 + nu&0xffff
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(h[16:18], ^uint16(sum))
	}
	sink := make([]byte, 64<<10)
	now := tcp.Time(time.Millisecond)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := frames[i%batch]
		if i >= batch {
			advance(f)
		}
		now += time.Microsecond
		s.Input(now, f)
		if i%32 == 31 {
			for {
				if n, _ := c.TryRead(sink); n == 0 {
					break
				}
			}
		}
	}
	b.StopTimer()
	if got := s.Counters(); got.TCPIn < uint64(b.N) || got.TCPBadChecksum != 0 {
		b.Fatalf("stack took %d segments of %d, %d with bad checksums", got.TCPIn, b.N, got.TCPBadChecksum)
	}
	if st := c.TCP().Stats(); st.OutOfOrder != 0 || st.Unacceptable != 0 {
		b.Fatalf("segments were not in order: %+v", st)
	}
}

func TestDataAfterCloseIsDiscarded(t *testing.T) {
	_, p, c, siss := established(t, func(c *Config) { c.TCP.DelayedACK = -1 })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fin := p.recv()
	if len(fin) != 1 || fin[0].Flags&tcp.FlagFIN == 0 {
		t.Fatalf("Close sent %v, want a FIN", fin)
	}
	// The peer still sends (half-close); the data is ACKed and dropped.
	p.send(time.Millisecond, tcp.Segment{Seq: 1001, Ack: siss + 2, Flags: tcp.FlagACK, Window: 65535, Payload: []byte("late data")})
	acks := p.recv()
	if len(acks) == 0 || acks[len(acks)-1].Ack != 1001+9 {
		t.Fatalf("late data answered with %v, want an ACK of %d", acks, 1001+9)
	}
	if n := c.TCP().Readable(); n != 0 {
		t.Errorf("%d bytes left buffered after Close; nobody will read them", n)
	}
}

// retryHook is a timer hook that sends a datagram every second, as a
// TCPMig retransmission timer would.
type retryHook struct {
	s     *Stack
	next  tcp.Time
	fired []tcp.Time
}

func (h *retryHook) NextDeadline() (tcp.Time, bool) { return h.next, true }
func (h *retryHook) Advance(now tcp.Time) {
	h.fired = append(h.fired, now)
	h.next = now + time.Second
	_ = h.s.SendUDP(netip.AddrPort{}, netip.AddrPortFrom(ipPeer, 9), []byte("retry")) // may call the stack
}

func TestTimerHook(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	h := &retryHook{s: s, next: 5 * time.Second}
	s.SetTimerHook(h)
	if d, ok := s.NextDeadline(); !ok || d != 5*time.Second {
		t.Fatalf("NextDeadline() = %v, %v; want the hook's 5s", d, ok)
	}
	s.Advance(4 * time.Second)
	s.Advance(5 * time.Second)
	s.Advance(6 * time.Second)
	if len(h.fired) != 2 || h.fired[0] != 5*time.Second || h.fired[1] != 6*time.Second {
		t.Errorf("hook fired at %v, want [5s 6s]", h.fired)
	}
	if n := len(ep.take()); n != 2 {
		t.Errorf("hook sent %d datagrams, want 2", n)
	}
	s.SetTimerHook(nil)
	if d, ok := s.NextDeadline(); !ok || d != s.Config().ARPTimeout {
		t.Errorf("after removing the hook NextDeadline() = %v, %v; want only the ARP expiry %v", d, ok, s.Config().ARPTimeout)
	}
}

// TestListenDropsProbesWithoutSYNOrACK: RFC 9293 §3.10.7.2. FIN, NULL and
// Xmas probes to a listening port get no answer; to a closed port they
// get RST (§3.10.7.1); an ACK to a listening port gets RST.
func TestListenDropsProbesWithoutSYNOrACK(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	if _, err := s.Listen(80); err != nil {
		t.Fatal(err)
	}
	probes := map[string]tcp.Flags{"FIN": tcp.FlagFIN, "NULL": 0, "Xmas": tcp.FlagFIN | tcp.FlagPSH | tcp.FlagURG}
	for name, flags := range probes {
		p := newPeer(t, s, ep, 41000)
		p.send(0, tcp.Segment{Seq: 7, Flags: flags, Window: 1000})
		if segs := p.recv(); len(segs) != 0 {
			t.Errorf("%s probe to a listening port answered with %v", name, segs)
		}
		closed := &peerTCP{t: t, s: s, ep: ep, src: netip.AddrPortFrom(ipPeer, 41001), dst: netip.AddrPortFrom(ipUs, 81)}
		closed.send(0, tcp.Segment{Seq: 7, Flags: flags, Window: 1000})
		if segs := closed.recv(); len(segs) != 1 || segs[0].Flags&tcp.FlagRST == 0 {
			t.Errorf("%s probe to a closed port answered with %v, want a RST", name, segs)
		}
	}
	if n := s.Counters().Drops[DropListenNoSYN]; n != uint64(len(probes)) {
		t.Errorf("%d listen-no-syn drops, want %d", n, len(probes))
	}
	p := newPeer(t, s, ep, 41002)
	p.send(0, tcp.Segment{Seq: 7, Ack: 99, Flags: tcp.FlagACK, Window: 1000})
	if segs := p.recv(); len(segs) != 1 || segs[0].Flags != tcp.FlagRST || segs[0].Seq != 99 {
		t.Errorf("a stray ACK to a listening port answered with %v, want RST seq 99", segs)
	}
}

// TestTimeWaitReuse: a SYN beyond what a TIME-WAIT connection received
// opens a new connection on the same address pair (a SYN-ACK), as Linux
// does; an old SYN still gets the TIME-WAIT's ACK.
func TestTimeWaitReuse(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	ln, _ := s.Listen(80)
	p := newPeer(t, s, ep, 40000)
	siss := p.handshake(1000)
	c := ln.TryAccept()
	if c == nil {
		t.Fatal("no connection")
	}
	// We close first: FIN out, the peer ACKs and sends its FIN, we ACK:
	// TIME-WAIT here.
	c.Close()
	fin := p.recv()
	if len(fin) != 1 || fin[0].Flags&tcp.FlagFIN == 0 {
		t.Fatalf("Close sent %v, want a FIN", fin)
	}
	p.send(0, tcp.Segment{Seq: 1001, Ack: siss + 2, Flags: tcp.FlagACK | tcp.FlagFIN, Window: 65535})
	if segs := p.recv(); len(segs) != 1 || segs[0].Flags != tcp.FlagACK {
		t.Fatalf("the peer's FIN answered with %v, want an ACK", segs)
	}
	if st := s.LookupConn(c.ID()).TCP().State(); st != tcp.StateTimeWait {
		t.Fatalf("state %v, want TIME-WAIT", st)
	}
	// An old SYN (not beyond rcv.nxt 1002) gets the TIME-WAIT's ACK.
	p.send(0, tcp.Segment{Seq: 900, Flags: tcp.FlagSYN, Window: 65535})
	if segs := p.recv(); len(segs) != 1 || segs[0].Flags != tcp.FlagACK {
		t.Errorf("an old SYN in TIME-WAIT answered with %v, want an ACK", segs)
	}
	// A new one opens a new connection.
	p.send(0, tcp.Segment{Seq: 50000, Flags: tcp.FlagSYN, Window: 65535, MSS: 1460})
	segs := p.recv()
	if len(segs) != 1 || segs[0].Flags != tcp.FlagSYN|tcp.FlagACK || segs[0].Ack != 50001 {
		t.Fatalf("a new SYN in TIME-WAIT answered with %v, want a SYN-ACK acking 50001", segs)
	}
	p.send(0, tcp.Segment{Seq: 50001, Ack: segs[0].Seq + 1, Flags: tcp.FlagACK, Window: 65535})
	if c2 := ln.TryAccept(); c2 == nil || c2.ID() != c.ID() || c2 == c {
		t.Errorf("after the new handshake TryAccept = %v, want a new connection on the same pair", c2)
	}
}

// TestFinWait2IsBoundedForAClosedConn: a peer that ACKs our FIN and never
// sends its own cannot keep a connection the application closed: after
// tcp.Config.FinWait2 it is gone, and a late segment gets a RST. A
// connection only half closed (CloseWrite) waits on, as Linux's does.
func TestFinWait2IsBoundedForAClosedConn(t *testing.T) {
	for _, half := range []bool{false, true} {
		s, p, c, siss := established(t, func(c *Config) { c.TCP.FinWait2 = 10 * time.Second })
		if half {
			c.CloseWrite()
		} else {
			c.Close()
		}
		p.recv() // our FIN
		p.send(0, tcp.Segment{Seq: 1001, Ack: siss + 2, Flags: tcp.FlagACK, Window: 65535})
		if st := s.LookupConn(c.ID()).TCP().State(); st != tcp.StateFinWait2 {
			t.Fatalf("half=%v: state %v, want FIN-WAIT-2", half, st)
		}
		s.Advance(9 * time.Second)
		if s.LookupConn(c.ID()) == nil {
			t.Fatalf("half=%v: gone before the bound", half)
		}
		s.Advance(11 * time.Second)
		s.Advance(12 * time.Second) // reaped on the step after it closed
		gone := s.LookupConn(c.ID()) == nil
		if gone == half {
			t.Errorf("half=%v: after the bound the connection is gone=%v, want %v", half, gone, !half)
		}
		if !half {
			p.recv()
			p.send(12*time.Second, tcp.Segment{Seq: 1001, Ack: siss + 2, Flags: tcp.FlagACK | tcp.FlagFIN, Window: 65535})
			if segs := p.recv(); len(segs) != 1 || segs[0].Flags&tcp.FlagRST == 0 {
				t.Errorf("the peer's late FIN answered with %v, want a RST", segs)
			}
		}
	}
}

// TestSYNCookies: with the backlog full of half-open connections (a SYN
// flood whose SYN-ACKs go unanswered), a new SYN is answered with a
// cookie and nothing kept; the client's ACK brings it back and the
// connection is accepted and carries data. A forged or stale cookie gets
// a RST.
func TestSYNCookies(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.Backlog = 2 })
	learnPeer(t, s, ep)
	ln, _ := s.Listen(80)
	for port := uint16(30000); port < 30002; port++ { // the flood: never ACKed
		f := newPeer(t, s, ep, port)
		f.send(0, tcp.Segment{Seq: 9, Flags: tcp.FlagSYN, Window: 1000})
		f.recv()
	}
	conns := len(s.Conns())
	p := newPeer(t, s, ep, 40000)
	p.send(0, tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, MSS: 1460, WindowScale: 7})
	segs := p.recv()
	if len(segs) != 1 || segs[0].Flags != tcp.FlagSYN|tcp.FlagACK || segs[0].Ack != 1001 || segs[0].WindowScale >= 0 {
		t.Fatalf("a SYN at a full backlog answered with %v, want a SYN-ACK without window scaling", segs)
	}
	if len(s.Conns()) != conns {
		t.Fatal("the cookie SYN-ACK kept state")
	}
	cookie := segs[0].Seq
	p.send(time.Second, tcp.Segment{Seq: 1001, Ack: cookie + 1, Flags: tcp.FlagACK | tcp.FlagPSH, Window: 65535, Payload: []byte("hello")})
	c := ln.TryAccept()
	if c == nil {
		t.Fatal("the cookie's ACK made no connection")
	}
	buf := make([]byte, 16)
	if n, _ := c.TryRead(buf); string(buf[:n]) != "hello" {
		t.Errorf("read %q, want the data the ACK carried", buf[:n])
	}
	if st := c.TCP().State(); st != tcp.StateEstablished {
		t.Errorf("state %v, want ESTABLISHED", st)
	}
	p.recv() // its ACK of the data
	// A forged cookie, and a good one two periods later.
	q := newPeer(t, s, ep, 40001)
	q.send(time.Second, tcp.Segment{Seq: 5001, Ack: cookie + 1, Flags: tcp.FlagACK, Window: 65535})
	if segs := q.recv(); len(segs) != 1 || segs[0].Flags != tcp.FlagRST {
		t.Errorf("a forged cookie answered with %v, want a RST", segs)
	}
	r := newPeer(t, s, ep, 40002)
	r.send(time.Second, tcp.Segment{Seq: 7000, Flags: tcp.FlagSYN, Window: 65535})
	old := r.recv()[0].Seq
	r.send(time.Second+2*cookiePeriod, tcp.Segment{Seq: 7001, Ack: old + 1, Flags: tcp.FlagACK, Window: 65535})
	if segs := r.recv(); len(segs) != 1 || segs[0].Flags != tcp.FlagRST {
		t.Errorf("a stale cookie answered with %v, want a RST", segs)
	}
	if ct := s.Counters(); ct.SYNCookiesSent != 2 || ct.SYNCookiesAccepted != 1 || ct.SYNCookiesRejected != 2 {
		t.Errorf("cookies sent %d accepted %d rejected %d, want 2 1 2", ct.SYNCookiesSent, ct.SYNCookiesAccepted, ct.SYNCookiesRejected)
	}
}

// TestSYNCookieKeepsOptions: a cookie connection from a client that sends
// timestamps keeps its window scale and SACK, which ride in the low bits
// of the SYN-ACK's timestamp (as on Linux), and its timestamp clock goes
// on from the SYN-ACK's.
func TestSYNCookieKeepsOptions(t *testing.T) {
	s, ep := newCaptureStack(t, func(c *Config) { c.Backlog = 1 })
	learnPeer(t, s, ep)
	ln, _ := s.Listen(80)
	f := newPeer(t, s, ep, 30000) // the flood: never ACKed
	f.send(0, tcp.Segment{Seq: 9, Flags: tcp.FlagSYN, Window: 1000})
	f.recv()
	p := newPeer(t, s, ep, 40000)
	p.send(0, tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, MSS: 1460, WindowScale: 7, SACKPermitted: true, HasTS: true, TSVal: 100})
	segs := p.recv()
	if len(segs) != 1 || segs[0].Flags != tcp.FlagSYN|tcp.FlagACK {
		t.Fatalf("a SYN at a full backlog answered with %v, want a SYN-ACK", segs)
	}
	sa := segs[0]
	if s.Counters().SYNCookiesSent != 1 {
		t.Fatalf("%d cookies sent, want 1", s.Counters().SYNCookiesSent)
	}
	if sa.WindowScale < 0 || !sa.SACKPermitted || !sa.HasTS || sa.TSEcr != 100 || sa.TSVal&63 != 7|16 {
		t.Fatalf("cookie SYN-ACK %+v: want window scale, SACK-permitted, and a timestamp echoing 100 whose low bits hold 7|16", sa)
	}
	p.send(time.Second, tcp.Segment{Seq: 1001, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 1024, HasTS: true, TSVal: 101, TSEcr: sa.TSVal, Payload: []byte("hello")})
	c := ln.TryAccept()
	if c == nil {
		t.Fatal("the cookie's ACK made no connection")
	}
	p.recv() // the ACK of "hello"
	// Data beyond a hole: the ACK reports it in a SACK block, with a
	// window scaled past what 16 bits hold and a timestamp not older than
	// the SYN-ACK's, echoing the in-order segment's (RFC 7323 §4.3).
	p.send(time.Second, tcp.Segment{Seq: 1016, Ack: sa.Seq + 1, Flags: tcp.FlagACK, Window: 1024, HasTS: true, TSVal: 102, TSEcr: sa.TSVal, Payload: []byte("x")})
	segs = p.recv()
	if len(segs) != 1 {
		t.Fatalf("out-of-order data answered with %v, want one ACK", segs)
	}
	a := segs[0]
	if a.NumSACK == 0 || a.SACK[0] != (tcp.SACKBlock{Start: 1016, End: 1017}) {
		t.Errorf("ACK %+v: want the SACK block [1016,1017)", a)
	}
	if !a.HasTS || int32(a.TSVal-sa.TSVal) < 0 || a.TSEcr != 101 {
		t.Errorf("ACK timestamp %d echo %d: want at least the SYN-ACK's %d, echoing 101", a.TSVal, a.TSEcr, sa.TSVal)
	}
	if uint32(a.Window)<<sa.WindowScale <= 0xffff {
		t.Errorf("ACK window %d with scale %d: want a scaled window past 65535", a.Window, sa.WindowScale)
	}
}

// TestAbortDetachedReprobes: a detached connection's abort sends its RST
// and a keep-alive probe, and the probe again at each of
// tcp.AbortProbesAfter and at the probeLater asked for, then no more. Each probe's timestamp is the clock's when it leaves, not
// the connection's last segment's: another server served the peer since,
// with newer timestamps, and Linux drops a pure ACK that fails PAWS
// without an answer. A peer whose RCV.NXT moved on answers a probe with
// it, which draws a RST it accepts.
func TestAbortDetachedReprobes(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	ln, _ := s.Listen(80)
	p := newPeer(t, s, ep, 40000)
	p.send(0, tcp.Segment{Seq: 1000, Flags: tcp.FlagSYN, Window: 65535, MSS: 1460, WindowScale: 7, SACKPermitted: true, HasTS: true, TSVal: 7})
	synack := p.recv()
	if len(synack) != 1 || !synack[0].HasTS {
		t.Fatalf("SYN with timestamps answered with %+v, want a SYN-ACK with timestamps", synack)
	}
	siss, ts0 := synack[0].Seq, synack[0].TSVal
	p.send(0, tcp.Segment{Seq: 1001, Ack: siss + 1, Flags: tcp.FlagACK, Window: 65535, HasTS: true, TSVal: 8, TSEcr: ts0})
	c := ln.TryAccept()
	if c == nil {
		t.Fatal("no connection after the handshake")
	}
	abortAt := tcp.Time(time.Second)
	s.Advance(abortAt)
	tc, err := s.DetachConn(c.ID())
	if err != nil {
		t.Fatal(err)
	}
	p.recv()
	later := 1500 * time.Millisecond
	want := append(tcp.AbortProbesAfter[:], later)
	s.AbortDetached(tc, later)
	// isProbe: the keep-alive probe (SND.UNA-1, one octet), stamped at
	// "at" on the connection's clock (the SYN-ACK's at 0, in ms).
	isProbe := func(seg tcp.Segment, at tcp.Time) bool {
		return seg.Flags == tcp.FlagACK && seg.Seq == siss && len(seg.Payload) == 1 &&
			seg.HasTS && seg.TSVal == ts0+uint32(at/tcp.Time(time.Millisecond))
	}
	if segs := p.recv(); len(segs) != 2 || segs[0].Flags&tcp.FlagRST == 0 || !isProbe(segs[1], abortAt) {
		t.Fatalf("the abort sent %+v, want a RST and a keep-alive probe (seq %d, TSVal %d)", segs, siss, ts0+1000)
	}
	moved := siss + 1 + 5000
	p.send(abortAt, tcp.Segment{Seq: 1001, Ack: moved, Flags: tcp.FlagACK, Window: 65535})
	if segs := p.recv(); len(segs) != 1 || segs[0].Flags&tcp.FlagRST == 0 || segs[0].Seq != moved {
		t.Fatalf("the peer's answer to the probe drew %+v, want a RST with seq %d", segs, moved)
	}
	probes := 0
	for at := abortAt; at <= abortAt+tcp.Time(2*time.Second); at += tcp.Time(time.Millisecond) {
		s.Advance(at)
		for _, seg := range p.recv() {
			due := probes < len(want) && at == abortAt+tcp.Time(want[probes])
			if !due || !isProbe(seg, at) {
				t.Fatalf("%v after the abort the stack sent %+v, want only the probes at %v, stamped when sent", at-abortAt, seg, want)
			}
			probes++
		}
	}
	if probes != len(want) || len(s.reprobes) != 0 {
		t.Errorf("%d probes after the first, %d still due; want %d and none", probes, len(s.reprobes), len(want))
	}
}

// TestAbortDetachedLeavesFromTheOrigin: a connection migrated in (filed
// under this stack's address, known to the peer by the origin's) is reset
// and probed from the origin's address. The RST clears the switch's entry,
// so a probe from this stack's own address would reach the peer from a
// server it does not know.
func TestAbortDetachedLeavesFromTheOrigin(t *testing.T) {
	s, p, c, _ := established(t, nil)
	tc, err := s.DetachConn(c.ID())
	if err != nil {
		t.Fatal(err)
	}
	state := tc.AppendSnapshot(nil, 0)

	self := netip.MustParseAddr("10.77.0.3")
	s2, ep2 := newCaptureStack(t, func(c *Config) { c.Addr = netip.PrefixFrom(self, 24) })
	s2.Input(0, arpFrame(arpOpRequest, broadcastMAC, macPeer, ipPeer, [6]byte{}, self))
	ep2.take()
	ln, _ := s2.Listen(80)
	moved, err := tcp.Restore(s2.Config().TCP, state, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.AdoptConn(moved); err != nil {
		t.Fatal(err)
	}
	in := ln.TryAccept()
	if in == nil || in.ID().Local.Addr() != self || in.Origin() != p.dst {
		t.Fatalf("adopted %v (origin %v), want it filed under %v with origin %v", in.ID(), in.Origin(), self, p.dst)
	}
	ep2.take()
	back, err := s2.DetachConn(in.ID())
	if err != nil {
		t.Fatal(err)
	}
	s2.AbortDetached(back, 0)
	s2.Advance(tcp.Time(tcp.AbortProbesAfter[0]))
	var flags []tcp.Flags
	for _, f := range ep2.take() {
		h := IPv4(ethernet(f).payload())
		seg, err := tcp.ParseSegment(h.Payload(), h.Src(), h.Dst())
		if err != nil {
			t.Fatal(err)
		}
		if h.Src() != p.dst.Addr() || seg.SrcPort != p.dst.Port() || h.Dst() != ipPeer {
			t.Errorf("%v segment from %v:%d to %v, want from the origin %v to %v", seg.Flags, h.Src(), seg.SrcPort, h.Dst(), p.dst, ipPeer)
		}
		flags = append(flags, seg.Flags)
	}
	if len(flags) != 3 || flags[0]&tcp.FlagRST == 0 || flags[1] != tcp.FlagACK || flags[2] != tcp.FlagACK {
		t.Errorf("the abort and the first re-probe sent %v, want a RST and two probes", flags)
	}
}

// fragNeeded is a router's ICMP "fragmentation needed" for the frame f
// the stack sent: it quotes f's IPv4 header and first 8 bytes.
func fragNeeded(router netip.Addr, mtu uint16, f []byte) []byte {
	h := IPv4(ethernet(f).payload())
	quote := h[:IPv4MinHeaderLen+8]
	m := make([]byte, icmpHeaderLen+len(quote))
	m[0], m[1] = icmpDestUnreachable, icmpFragNeeded
	binary.BigEndian.PutUint16(m[6:8], mtu)
	copy(m[icmpHeaderLen:], quote)
	binary.BigEndian.PutUint16(m[2:4], checksum(m, 0))
	return ipFrame(router, ipUs, protoICMP, nil, m)
}

// Path MTU discovery (RFC 1191): a router's "fragmentation needed" for a
// segment in flight makes the connection resend it in pieces the path
// carries. One for a sequence number not in flight, or for no
// connection, changes nothing and is counted as icmp-stale.
func TestFragmentationNeededLowersTheMSS(t *testing.T) {
	s, ep := newCaptureStack(t, nil)
	learnPeer(t, s, ep)
	l, err := s.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t, s, ep, 40000)
	p.handshake(1000)
	c := l.TryAccept()
	if c == nil {
		t.Fatal("no connection accepted")
	}
	data := bytes.Repeat([]byte{7}, 4000)
	if n, err := c.TryWrite(data); n != len(data) || err != nil {
		t.Fatalf("TryWrite = %d, %v", n, err)
	}
	sent := ep.frames
	ep.take()
	if len(sent) < 2 {
		t.Fatalf("sent %d frames, want several full segments", len(sent))
	}
	router := netip.MustParseAddr("10.77.0.254")

	// Stale: a sequence number below the flight (the segment rewritten),
	// and a connection that does not exist.
	stale := fragNeeded(router, 1280, sent[0])
	tcpOf := IPv4(ethernet(stale).payload()).Payload()[icmpHeaderLen+IPv4MinHeaderLen:]
	binary.BigEndian.PutUint32(tcpOf[4:8], binary.BigEndian.Uint32(tcpOf[4:8])-100000)
	icmp := IPv4(ethernet(stale).payload()).Payload()
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp, 0))
	s.Input(0, stale)
	other := fragNeeded(router, 1280, sent[0])
	icmp = IPv4(ethernet(other).payload()).Payload()
	binary.BigEndian.PutUint16(icmp[icmpHeaderLen+IPv4MinHeaderLen+2:], 81) // another remote port
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp, 0))
	s.Input(0, other)
	if d := s.Counters().Drops[DropICMPStale]; d != 2 || len(ep.take()) != 0 {
		t.Fatalf("stale ICMPs: %d icmp-stale drops, want 2, and nothing sent", d)
	}

	s.Input(0, fragNeeded(router, 1280, sent[0]))
	resent := p.recv()
	if len(resent) == 0 {
		t.Fatal("nothing resent after fragmentation needed")
	}
	got := 0
	for _, seg := range resent {
		if len(seg.Payload) > 1280-40 {
			t.Fatalf("resent a %d-byte payload, over the path's 1240", len(seg.Payload))
		}
		got += len(seg.Payload)
	}
	if got < len(data)-len(data)%1460 { // every full-size segment again
		t.Errorf("resent %d bytes, want at least the full-size segments' %d", got, len(data)-len(data)%1460)
	}
	if ctr := s.Counters(); ctr.ICMPFragNeededIn != 1 {
		t.Errorf("icmp frag needed counted %d, want 1", ctr.ICMPFragNeededIn)
	}
}

func TestMTUPlateau(t *testing.T) {
	for _, tc := range []struct{ size, want int }{{1500, 1492}, {1492, 1006}, {9000, 8166}, {600, 508}, {100, 68}, {40000, 32000}} {
		if got := mtuPlateau(tc.size); got != tc.want {
			t.Errorf("mtuPlateau(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}
