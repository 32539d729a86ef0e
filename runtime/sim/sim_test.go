package sim

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

var seedFlag = flag.Uint64("seed", 0, "run only this seed in TestBulk (replay a failure)")

var (
	macA = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	pfxA = netip.MustParsePrefix("10.77.0.1/24")
	pfxB = netip.MustParsePrefix("10.77.0.2/24")
)

// lossy is the bulk-test link: 5% loss with duplication, reordering,
// jitter and a 1 Gbit/s serializer.
var lossy = LinkConfig{
	Delay: 50 * time.Microsecond, Jitter: 20 * time.Microsecond,
	Bandwidth: 1e9, QueueLimit: 256 << 10,
	Loss: 0.05, Dup: 0.02, Reorder: 0.05,
}

// transfer is one simulated request/response exchange: the client on a
// sends data, half-closes, and reads the server's reply on b until EOF.
type transfer struct {
	sim     *Sim
	a, b    *Host
	failure error
	buf     []byte

	client      *stack.Conn
	data        []byte // client -> server
	sent        int
	halfClosed  bool
	reply       []byte // what the client received
	clientDone  bool
	server      *stack.Conn
	got         []byte // what the server received
	gotEOF      bool
	answer      []byte // server -> client
	answered    int
	serverClose bool
}

func newTransfer(t testing.TB, seed uint64, size int, link LinkConfig, keep bool) *transfer {
	s := New(Config{Seed: seed, KeepTrace: keep})
	if size <= 0 {
		size = 64<<10 + s.Rand().IntN(192<<10+1)
	}
	tcpCfg := stack.Config{}.TCP
	tcpCfg.InitialRTO = 200 * time.Millisecond
	// Lossy links lose ARP too; a few more tries than Linux's 3 keep a
	// 5%-loss run from giving up on the neighbour (about 1 in 1,000 would).
	a, err := s.AddHost("a", macA, 1500, stack.Config{Addr: pfxA, Seed: seed*2 + 1, TCP: tcpCfg, ARPRetries: 8})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.AddHost("b", macB, 1500, stack.Config{Addr: pfxB, Seed: seed*2 + 2, TCP: tcpCfg, ARPRetries: 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connect(a.Port, b.Port, link); err != nil {
		t.Fatal(err)
	}
	r := s.Rand()
	x := &transfer{sim: s, a: a, b: b, buf: make([]byte, 64<<10),
		data: make([]byte, size), answer: make([]byte, 1+r.IntN(64<<10))}
	for _, d := range [][]byte{x.data, x.answer} {
		for i := range d {
			d[i] = byte(r.Uint32())
		}
	}
	ln, err := b.Stack.Listen(5001)
	if err != nil {
		t.Fatal(err)
	}
	x.client, err = a.Stack.Connect(netip.AddrPortFrom(pfxB.Addr(), 5001))
	if err != nil {
		t.Fatal(err)
	}
	a.OnStep(func(Time) { x.clientStep() })
	b.OnStep(func(Time) { x.serverStep(ln) })
	return x
}

func (x *transfer) fail(format string, args ...any) {
	if x.failure == nil {
		x.failure = fmt.Errorf(format, args...)
	}
}

// writeSome queues as much of data[*off:] as fits.
func (x *transfer) writeSome(c *stack.Conn, data []byte, off *int, who string) bool {
	for *off < len(data) {
		n, err := c.TryWrite(data[*off:])
		if err != nil {
			x.fail("%s write at %d: %w", who, *off, err)
			return false
		}
		if n == 0 {
			return false
		}
		*off += n
	}
	return true
}

// readSome appends what is readable to *dst and reports EOF.
func (x *transfer) readSome(c *stack.Conn, dst *[]byte, who string) bool {
	for {
		n, err := c.TryRead(x.buf)
		*dst = append(*dst, x.buf[:n]...)
		if err == io.EOF {
			return true
		}
		if err != nil {
			x.fail("%s read at %d: %w", who, len(*dst), err)
			return false
		}
		if n == 0 {
			return false
		}
	}
}

func (x *transfer) clientStep() {
	if x.failure != nil || x.clientDone {
		return
	}
	if !x.client.Established() {
		if err := x.client.Err(); err != nil {
			x.fail("client: %w", err)
		}
		return
	}
	if !x.halfClosed && x.writeSome(x.client, x.data, &x.sent, "client") {
		x.halfClosed = true
		if err := x.client.CloseWrite(); err != nil {
			x.fail("client CloseWrite: %w", err)
		}
	}
	if x.readSome(x.client, &x.reply, "client") {
		x.clientDone = true
		x.client.Close()
	}
}

func (x *transfer) serverStep(ln *stack.Listener) {
	if x.failure != nil || x.serverClose {
		return
	}
	if x.server == nil {
		if x.server = ln.TryAccept(); x.server == nil {
			return
		}
	}
	if !x.gotEOF {
		x.gotEOF = x.readSome(x.server, &x.got, "server")
	}
	if x.gotEOF && x.writeSome(x.server, x.answer, &x.answered, "server") {
		x.serverClose = true
		x.server.Close()
	}
}

// run drives the exchange until both sides have closed and left their
// stacks, then checks every byte.
func (x *transfer) run() error {
	err := x.sim.RunWhile(func() bool {
		return x.failure == nil && !(x.clientDone && x.serverClose && x.client.Done() && x.server.Done())
	}, 10*time.Minute)
	if x.failure != nil {
		return x.failure
	}
	if err != nil {
		return fmt.Errorf("%w (client sent %d of %d, server got %d, server answered %d of %d, client got %d)",
			err, x.sent, len(x.data), len(x.got), x.answered, len(x.answer), len(x.reply))
	}
	if sha256.Sum256(x.got) != sha256.Sum256(x.data) {
		return fmt.Errorf("server received %d bytes whose sha256 differs from the %d sent", len(x.got), len(x.data))
	}
	if sha256.Sum256(x.reply) != sha256.Sum256(x.answer) {
		return fmt.Errorf("client received %d reply bytes whose sha256 differs from the %d sent", len(x.reply), len(x.answer))
	}
	return nil
}

func TestDeterministicTrace(t *testing.T) {
	hash := func(seed uint64) ([32]byte, uint64) {
		x := newTransfer(t, seed, 128<<10, lossy, false)
		if err := x.run(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		return x.sim.TraceHash(), x.sim.Events()
	}
	h1, n1 := hash(7)
	h2, n2 := hash(7)
	if h1 != h2 || n1 != n2 {
		t.Fatalf("seed 7 twice: trace %x (%d events) then %x (%d events), want identical", h1[:8], n1, h2[:8], n2)
	}
	h3, _ := hash(8)
	if h3 == h1 {
		t.Fatalf("seeds 7 and 8 gave the same trace %x", h1[:8])
	}
}

func TestTraceRecordsActions(t *testing.T) {
	x := newTransfer(t, 3, 64<<10, lossy, true)
	if err := x.run(); err != nil {
		t.Fatal(err)
	}
	seen := map[Action]int{}
	var last Time
	for _, e := range x.sim.Trace() {
		seen[e.Action]++
		if e.At < last {
			t.Fatalf("trace goes back in time: %v after %v", e, last)
		}
		last = e.At
	}
	for _, a := range []Action{ActionSend, ActionDeliver, ActionDropLoss, ActionDup} {
		if seen[a] == 0 {
			t.Errorf("no %v events in a lossy transfer: %v", a, seen)
		}
	}
	if uint64(len(x.sim.Trace())) != x.sim.Events() {
		t.Errorf("Trace has %d events, Events() = %d", len(x.sim.Trace()), x.sim.Events())
	}
}

// TestBulk runs 1,000 seeded transfers of 64–256 KiB (each answered with
// up to 64 KiB) over a lossy, duplicating, reordering link and checks
// every byte both ways.
func TestBulk(t *testing.T) {
	seeds := make([]uint64, 0, 1000)
	switch {
	case *seedFlag != 0:
		seeds = append(seeds, *seedFlag)
	default:
		for i := range uint64(1000) {
			seeds = append(seeds, 1000+i)
		}
	}
	work := make(chan uint64)
	var failed atomic.Int32
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range work {
				x := newTransfer(t, seed, 0, lossy, false)
				if err := x.run(); err != nil {
					if failed.Add(1) <= 10 {
						mu.Lock()
						t.Errorf("seed %d (%d bytes): %v\n\treplay: go test ./runtime/sim -run TestBulk -seed=%d -v", seed, len(x.data), err, seed)
						mu.Unlock()
					}
				}
			}
		}()
	}
	for _, s := range seeds {
		work <- s
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d seeds failed", n, len(seeds))
	}
}

// hub is a non-stack node: it floods every frame to its other ports, the
// shape a switch model plugs in with.
type hub struct{ n *Node }

func (h hub) Deliver(_ Time, in *Port, frame []byte) {
	for _, p := range h.n.Ports() {
		if p != in {
			p.Send(frame)
		}
	}
}
func (hub) Advance(Time)               {}
func (hub) NextDeadline() (Time, bool) { return 0, false }

func TestSwitchNode(t *testing.T) {
	s := New(Config{Seed: 1})
	a, _ := s.AddHost("a", macA, 1500, stack.Config{Addr: pfxA, Seed: 1})
	b, _ := s.AddHost("b", macB, 1500, stack.Config{Addr: pfxB, Seed: 2})
	c, _ := s.AddHost("c", net.HardwareAddr{2, 0, 0, 0, 0, 0xc}, 1500, stack.Config{Addr: netip.MustParsePrefix("10.77.0.3/24"), Seed: 3})
	sw := s.AddNode("switch")
	sw.SetHandler(hub{sw})
	for _, h := range []*Host{a, b, c} {
		p, err := sw.AddPort(net.HardwareAddr{2, 0, 0, 0, 1, byte(len(sw.Ports()))}, 1500)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Connect(h.Port, p, LinkConfig{Delay: 10 * time.Microsecond}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	b.Stack.HandleUDP(9, func(src, _ netip.AddrPort, p []byte) { got = append(got, src.String()+" "+string(p)) })
	if err := a.Stack.SendUDP(netip.AddrPortFrom(pfxA.Addr(), 1234), netip.AddrPortFrom(pfxB.Addr(), 9), []byte("via hub")); err != nil {
		t.Fatal(err)
	}
	if err := s.RunUntil(time.Second); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "10.77.0.1:1234 via hub" {
		t.Fatalf("b got %q, want one datagram from 10.77.0.1:1234", got)
	}
	// c saw the ARP broadcast and the flooded unicast frames but took none.
	if cc := c.Stack.Counters(); cc.Drops[stack.DropNotOurMAC] != 2 || cc.UDPIn != 0 {
		t.Errorf("c counters:\n%v", cc)
	}
}

func TestConfigErrors(t *testing.T) {
	s := New(Config{})
	n := s.AddNode("n")
	if _, err := n.AddPort(net.HardwareAddr{1, 2, 3}, 1500); !errors.Is(err, ErrConfig) {
		t.Errorf("AddPort(short MAC) = %v, want ErrConfig", err)
	}
	p1, _ := n.AddPort(macA, 1500)
	p2, _ := n.AddPort(macB, 1500)
	if _, err := s.Connect(p1, p2, LinkConfig{Loss: 1.5}); !errors.Is(err, ErrConfig) {
		t.Errorf("Connect(Loss 1.5) = %v, want ErrConfig", err)
	}
	if err := p1.Send(make([]byte, 60)); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Send on an unconnected port = %v, want ErrNotConnected", err)
	}
	if _, err := s.Connect(p1, p2, LinkConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connect(p1, p2, LinkConfig{}); !errors.Is(err, ErrConfig) {
		t.Errorf("second Connect = %v, want ErrConfig", err)
	}
	if _, err := p1.Receive(time.Millisecond, func([]byte) {}); !errors.Is(err, ErrNotDriven) {
		t.Errorf("Receive = %v, want ErrNotDriven", err)
	}
	if err := s.RunWhile(func() bool { return true }, time.Second); !errors.Is(err, ErrStuck) {
		t.Errorf("RunWhile on an idle sim = %v, want ErrStuck", err)
	}
}

func TestLinkShaping(t *testing.T) {
	s := New(Config{Seed: 1, KeepTrace: true})
	n := s.AddNode("n")
	var arrivals []Time
	n.SetHandler(handlerFunc(func(now Time, _ *Port, _ []byte) { arrivals = append(arrivals, now) }))
	p1, _ := n.AddPort(macA, 1500)
	p2, _ := n.AddPort(macB, 1500)
	// 1000-byte frames at 8 Mbit/s take 1 ms each; the queue holds 2.
	if _, err := s.Connect(p1, p2, LinkConfig{Delay: time.Millisecond, Bandwidth: 8e6, QueueLimit: 2000}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		p1.Send(make([]byte, 1000))
	}
	s.RunUntil(time.Second)
	want := []Time{2 * time.Millisecond, 3 * time.Millisecond}
	if len(arrivals) != 2 || arrivals[0] != want[0] || arrivals[1] != want[1] {
		t.Errorf("arrivals = %v, want %v (two serialized, two dropped at the queue)", arrivals, want)
	}
	drops := 0
	for _, e := range s.Trace() {
		if e.Action == ActionDropQueue {
			drops++
		}
	}
	if drops != 2 {
		t.Errorf("queue drops = %d, want 2", drops)
	}
}

type handlerFunc func(now Time, p *Port, frame []byte)

func (f handlerFunc) Deliver(now Time, p *Port, frame []byte) { f(now, p, frame) }
func (handlerFunc) Advance(Time)                              {}
func (handlerFunc) NextDeadline() (Time, bool)                { return 0, false }

// TestBulkBottleneck squeezes transfers through a 20 Mbit/s link with a
// 16 KiB queue, so losses come from congestion (queue drops) as well.
func TestBulkBottleneck(t *testing.T) {
	narrow := LinkConfig{Delay: 200 * time.Microsecond, Bandwidth: 20e6, QueueLimit: 16 << 10, Loss: 0.01, Reorder: 0.01}
	queueDrops := 0
	for seed := uint64(1); seed <= 50; seed++ {
		x := newTransfer(t, seed, 0, narrow, true)
		if err := x.run(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for _, e := range x.sim.Trace() {
			if e.Action == ActionDropQueue {
				queueDrops++
			}
		}
	}
	if queueDrops == 0 {
		t.Errorf("no queue drops at the bottleneck; the test does not test congestion")
	}
}

// BenchmarkTransfer is the wall-clock cost of simulating one 256 KiB
// request/response exchange on a clean 10 Gbit/s link, handshake to
// TIME-WAIT included.
func BenchmarkTransfer(b *testing.B) {
	clean := LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 10e9}
	b.ReportAllocs()
	b.SetBytes(256 << 10)
	for i := 0; i < b.N; i++ {
		x := newTransfer(b, uint64(i+1), 256<<10, clean, false)
		if err := x.run(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLinkCutTimesOut cuts the link mid-transfer: both ends must give up
// with tcp.ErrTimeout after their retries and leave their stacks.
func TestLinkCutTimesOut(t *testing.T) {
	s := New(Config{Seed: 5})
	cfg := stack.Config{}.TCP
	cfg.MaxRetries, cfg.InitialRTO, cfg.MaxRTO = 4, 100*time.Millisecond, time.Second
	a, _ := s.AddHost("a", macA, 1500, stack.Config{Addr: pfxA, Seed: 1, TCP: cfg})
	b, _ := s.AddHost("b", macB, 1500, stack.Config{Addr: pfxB, Seed: 2, TCP: cfg})
	l, _ := s.Connect(a.Port, b.Port, LinkConfig{Delay: 100 * time.Microsecond})
	ln, _ := b.Stack.Listen(80)
	c, err := a.Stack.Connect(netip.AddrPortFrom(pfxB.Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	var srv *stack.Conn
	if err := s.RunWhile(func() bool { srv = ln.TryAccept(); return srv == nil }, time.Second); err != nil {
		t.Fatal(err)
	}
	l.SetUp(false)
	if _, err := c.TryWrite(make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	if err := s.RunWhile(func() bool { return !c.Done() }, 10*time.Minute); err != nil {
		t.Fatalf("client never gave up: %v", err)
	}
	if err := c.Err(); !errors.Is(err, tcp.ErrTimeout) {
		t.Errorf("client Err() = %v, want tcp.ErrTimeout", err)
	}
	if _, err := c.TryWrite([]byte("x")); !errors.Is(err, tcp.ErrTimeout) {
		t.Errorf("TryWrite after the timeout = %v, want tcp.ErrTimeout", err)
	}
	if n := len(a.Stack.Conns()); n != 0 {
		t.Errorf("client stack still holds %d connections", n)
	}
	if got := a.Stack.Counters().TCPRetransmits; got < 4 {
		t.Errorf("client retransmitted %d times, want at least MaxRetries", got)
	}
}
