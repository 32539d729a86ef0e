package tcp

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var (
	addrA = netip.MustParseAddrPort("10.77.0.1:40000")
	addrB = netip.MustParseAddrPort("10.77.0.2:80")
)

// packet is a segment in flight: its encoded bytes and arrival time.
type packet struct {
	at    Time
	toB   bool
	bytes []byte
	order uint64
}

// net is a deterministic in-memory network between two endpoints, A and
// B, with a virtual clock and optional seeded loss, duplication and
// reordering. Segments travel encoded, so every test also exercises
// AppendSegment and ParseSegment.
type net struct {
	t      testing.TB
	now    Time
	delay  Time
	a, b   *Conn
	q      []packet
	rng    *rand.Rand
	loss   float64
	dup    float64
	jitter Time // extra random delay, which reorders
	gap    Time // serialization time per packet on each direction's link
	free   [2]Time
	seq    uint64
	// drop, when set, decides the fate of each segment before loss.
	drop func(fromA bool, s *Segment) bool
	// tap sees every segment sent (after drop decisions are made).
	tap  func(fromA bool, s *Segment)
	sent int
	cfgB Config
	issB uint32 // B's initial sequence number; 5000 when zero
	// app runs before every step: the applications on both ends.
	app func()
	// hook runs before app, for tests that replace a conn mid-run.
	hook func()
}

// classic turns SACK and timestamps off: for tests of the NewReno path
// and of exact segment sizes.
func classic(c Config) Config {
	c.NoSACK, c.NoTimestamps = true, true
	return c
}

func newNet(t testing.TB, seed uint64) *net {
	return &net{t: t, delay: 5 * time.Millisecond, gap: 10 * time.Microsecond, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// pair builds A dialing B through n: B is accepted when A's SYN arrives.
func (n *net) dial(cfgA, cfgB Config) {
	n.a = Dial(cfgA, ID{Local: addrA, Remote: addrB}, 1000, n.now)
	n.cfgB = cfgB
}

func (n *net) send(fromA bool, s *Segment) {
	n.sent++
	if n.tap != nil {
		n.tap(fromA, s)
	}
	if n.drop != nil && n.drop(fromA, s) {
		return
	}
	if n.loss > 0 && n.rng.Float64() < n.loss {
		return
	}
	src, dst := addrA.Addr(), addrB.Addr()
	if !fromA {
		src, dst = dst, src
	}
	b := AppendSegment(nil, src, dst, s)
	copies := 1
	if n.dup > 0 && n.rng.Float64() < n.dup {
		copies = 2
	}
	dir := 0
	if !fromA {
		dir = 1
	}
	n.free[dir] = max(n.free[dir], n.now) + n.gap
	for range copies {
		at := n.free[dir] + n.delay
		if n.jitter > 0 {
			at += Time(n.rng.Int64N(int64(n.jitter)))
		}
		n.seq++
		n.q = append(n.q, packet{at: at, toB: fromA, bytes: b, order: n.seq})
	}
}

// flush runs Output on both ends and checks that each then has nothing
// left to do at this instant: a Deadline at or before now after Output
// would make an event loop spin.
func (n *net) flush() {
	for i, c := range []*Conn{n.a, n.b} {
		if c == nil {
			continue
		}
		fromA := i == 0
		c.Output(n.now, func(s *Segment) { n.send(fromA, s) })
		if d, ok := c.Deadline(); ok && d <= n.now {
			n.t.Fatalf("conn %d in %v: Deadline %v not after the Output at %v", i, c.State(), d, n.now)
		}
	}
}

// deliver hands p to its receiver, accepting B on A's first SYN.
func (n *net) deliver(p packet) {
	src, dst := addrA.Addr(), addrB.Addr()
	if !p.toB {
		src, dst = dst, src
	}
	seg, err := ParseSegment(p.bytes, src, dst)
	if err != nil {
		n.t.Fatalf("ParseSegment of our own segment: %v", err)
	}
	// Like the stack: a segment for a connection that is gone gets a RST.
	if c := n.a; !p.toB && c.Done() || p.toB && n.b != nil && n.b.Done() && seg.Flags&(FlagSYN|FlagACK) != FlagSYN {
		if rst, ok := ResetFor(&seg); ok {
			n.send(!p.toB, &rst)
		}
		return
	}
	if !p.toB {
		n.a.Input(n.now, &seg)
		return
	}
	if n.b == nil || n.b.Reusable(&seg) {
		if seg.Flags&(FlagSYN|FlagACK|FlagRST) != FlagSYN {
			return
		}
		iss := n.issB
		if iss == 0 {
			iss = 5000
		}
		c, err := Accept(n.cfgB, ID{Local: addrB, Remote: addrA}, &seg, iss, n.now)
		if err != nil {
			n.t.Fatalf("Accept: %v", err)
		}
		n.b = c
		return
	}
	n.b.Input(n.now, &seg)
}

// step advances to the next event (a delivery or a deadline) and runs it.
// It reports false when nothing is left to happen.
func (n *net) step() bool {
	if n.hook != nil {
		n.hook()
	}
	if n.app != nil {
		n.app()
	}
	n.flush()
	next, ok := Time(0), false
	consider := func(t Time) {
		if !ok || t < next {
			next, ok = t, true
		}
	}
	for _, p := range n.q {
		consider(p.at)
	}
	for _, c := range []*Conn{n.a, n.b} {
		if c != nil {
			if t, has := c.Deadline(); has {
				consider(t)
			}
		}
	}
	if !ok {
		return false
	}
	if next > n.now {
		n.now = next
	}
	// Deliver every packet due now, in arrival then send order.
	for {
		best := -1
		for i, p := range n.q {
			if p.at <= n.now && (best < 0 || p.at < n.q[best].at || p.at == n.q[best].at && p.order < n.q[best].order) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		p := n.q[best]
		n.q = append(n.q[:best], n.q[best+1:]...)
		n.deliver(p)
	}
	return true
}

// run steps until cond holds or the virtual time limit passes.
func (n *net) run(limit Time, cond func() bool) bool {
	end := n.now + limit
	for i := 0; i < 10_000_000; i++ {
		if cond() {
			return true
		}
		if n.now > end || !n.step() {
			return cond()
		}
	}
	n.t.Fatalf("run: step budget exhausted at %v", n.now)
	return false
}

// transfer pushes want from src to dst, collecting everything dst reads.
type pump struct {
	c    *Conn
	data []byte
	off  int
	got  bytes.Buffer
	eof  bool
	err  error
	buf  [8192]byte
	done bool // close after writing all
}

func (p *pump) work() {
	if p.c == nil {
		return
	}
	if p.off < len(p.data) {
		n, err := p.c.Write(p.data[p.off:])
		if err == nil {
			p.off += n
		}
	}
	// An empty stream closes once connected: Close in SYN-SENT with nothing
	// queued would (rightly) abandon the connection attempt.
	if p.off == len(p.data) && p.done && (p.off > 0 || p.c.State().Connected()) {
		p.c.Close()
		p.done = false
	}
	for {
		n, err := p.c.Read(p.buf[:])
		p.got.Write(p.buf[:n])
		if err != nil {
			if err == io.EOF {
				p.eof = true
			} else {
				p.err = err
			}
			return
		}
		if n == 0 {
			return
		}
	}
}
