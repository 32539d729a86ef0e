// Package sim is capygen's deterministic network simulator: a virtual
// clock, an event queue ordered by (time, sequence number) and seeded links
// with loss, duplication, reordering, delay, jitter and bandwidth.
//
// Nodes are anything with ports: a Host wraps a runtime/stack Stack, and
// any Handler (a switch model, a traffic generator) can own several
// ports. Nodes are driven only through Handler.Deliver, Advance and
// NextDeadline with virtual time; nothing here starts a goroutine or
// reads the wall clock, so a seed fixes the whole run. Every send,
// delivery, drop and duplicate is folded into a trace hash (TraceHash)
// and, with Config.KeepTrace, recorded (Trace).
//
//	s := sim.New(sim.Config{Seed: 42})
//	a, _ := s.AddHost("a", macA, 1500, stack.Config{Addr: pa, Seed: 1})
//	b, _ := s.AddHost("b", macB, 1500, stack.Config{Addr: pb, Seed: 2})
//	s.Connect(a.Port, b.Port, sim.LinkConfig{Delay: 50 * time.Microsecond, Loss: 0.05})
//	s.RunUntil(time.Second)
package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"time"

	"github.com/capygen/capygen/internal/timerq"
	"github.com/capygen/capygen/runtime/link"
)

// Time is virtual time since the simulation started.
type Time = time.Duration

// Errors.
var (
	ErrConfig       = errors.New("sim: invalid config")
	ErrNotConnected = errors.New("sim: port is not connected")
	ErrNotDriven    = errors.New("sim: ports are driven by the simulator, not Receive")
	ErrStuck        = errors.New("sim: simulation made no progress")
	ErrLimit        = errors.New("sim: time limit reached")
)

// Config configures a simulation.
type Config struct {
	// Seed drives every random choice of the links.
	Seed uint64
	// KeepTrace records every event for Trace; otherwise only the hash is
	// kept, which is what long runs want.
	KeepTrace bool
}

// Handler is a node's behaviour.
type Handler interface {
	// Deliver hands over a frame that arrived on port p at now. frame is
	// valid only during the call.
	Deliver(now Time, p *Port, frame []byte)
	// Advance runs whatever is due at now.
	Advance(now Time)
	// NextDeadline is when Advance next has work, if ever.
	NextDeadline() (Time, bool)
}

// Sim is one simulation. It is not safe for concurrent use; run
// independent simulations in parallel instead.
type Sim struct {
	cfg    Config
	now    Time
	events timerq.Queue[Time, event]
	rng    *rand.Rand
	nodes  []*Node
	links  []*Link
	trace  []Event
	th     hash.Hash
	nev    uint64
	// rec is record's scratch: a local array handed to th.Write would
	// escape, an allocation per event.
	rec [22]byte
	// free holds delivered frames' buffers for reuse (Handler.Deliver's
	// frame is valid only during the call), so a frame in flight costs no
	// allocation once the simulation is warm: the host overhead measured in
	// it then holds no allocator or GC work of the simulator's own.
	free [][]byte
}

// New starts an empty simulation at time zero.
func New(cfg Config) *Sim {
	return &Sim{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)),
		th:  sha256.New(),
	}
}

// Now is the virtual time.
func (s *Sim) Now() Time { return s.now }

// Rand is the simulation's seeded generator, for tests that want their
// own choices (sizes, timings) to follow the seed too.
func (s *Sim) Rand() *rand.Rand { return s.rng }

// Node is a participant with ports.
type Node struct {
	sim    *Sim
	name   string
	ports  []*Port
	h      Handler
	onStep []func(now Time)
}

// AddNode adds a node without behaviour; give it ports, then SetHandler.
func (s *Sim) AddNode(name string) *Node {
	n := &Node{sim: s, name: name}
	s.nodes = append(s.nodes, n)
	return n
}

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// Ports are the node's ports in creation order.
func (n *Node) Ports() []*Port { return n.ports }

// SetHandler sets the node's behaviour.
func (n *Node) SetHandler(h Handler) { n.h = h }

// OnStep registers f to run after every delivery to or timer of the node:
// where a simulated application reads, writes and checks.
func (n *Node) OnStep(f func(now Time)) { n.onStep = append(n.onStep, f) }

func (n *Node) stepped(now Time) {
	for _, f := range n.onStep {
		f(now)
	}
}

// AddPort adds a network port. The port is a link.Endpoint whose Send
// puts frames on the simulated link.
func (n *Node) AddPort(mac net.HardwareAddr, mtu int) (*Port, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("%w: node %s: MAC %v is not 6 bytes", ErrConfig, n.name, mac)
	}
	if mtu < 68 || mtu > 65535 {
		return nil, fmt.Errorf("%w: node %s: MTU %d outside 68..65535", ErrConfig, n.name, mtu)
	}
	p := &Port{node: n, index: len(n.ports), mac: append(net.HardwareAddr(nil), mac...), mtu: mtu}
	n.ports = append(n.ports, p)
	return p, nil
}

// Port is one network attachment of a node.
type Port struct {
	node   *Node
	index  int
	mac    net.HardwareAddr
	mtu    int
	link   *Link
	side   int // which end of link
	closed bool
}

var _ link.Endpoint = (*Port)(nil)

// Node is the port's owner.
func (p *Port) Node() *Node { return p.node }

// Index is the port's position in its node's Ports.
func (p *Port) Index() int { return p.index }

// MAC is the port's Ethernet address.
func (p *Port) MAC() net.HardwareAddr { return p.mac }

// MTU is the port's MTU.
func (p *Port) MTU() int { return p.mtu }

// Send puts a copy of frame on the port's link at the current virtual
// time. Delivery is always a later event, never a nested call.
func (p *Port) Send(frame []byte) error {
	if p.closed {
		return link.ErrClosed
	}
	if len(frame) < link.EthernetHeaderLen {
		return fmt.Errorf("%w: %d bytes", link.ErrFrameTooShort, len(frame))
	}
	if len(frame) > p.mtu+link.EthernetHeaderLen {
		return fmt.Errorf("%w: %d bytes on MTU %d", link.ErrFrameTooLarge, len(frame), p.mtu)
	}
	if p.link == nil {
		return fmt.Errorf("%w: %s port %d", ErrNotConnected, p.node.name, p.index)
	}
	p.link.transmit(p.side, frame)
	return nil
}

// Receive is not how simulated ports get frames: the simulator delivers
// them to the node's Handler.
func (p *Port) Receive(time.Duration, func([]byte)) (int, error) {
	return 0, ErrNotDriven
}

// Close makes further Sends fail with link.ErrClosed.
func (p *Port) Close() error {
	p.closed = true
	return nil
}

// LinkConfig shapes one direction of a link.
type LinkConfig struct {
	Delay  time.Duration // propagation delay
	Jitter time.Duration // extra delay drawn uniformly from [0, Jitter]
	// Bandwidth in bits per second; 0 means frames take no time to send.
	Bandwidth int64
	// QueueLimit bounds the bytes waiting to be serialized (with
	// Bandwidth); more are dropped. 0 means 1 MiB.
	QueueLimit int
	Loss       float64 // probability a frame is dropped
	Dup        float64 // probability a frame is delivered twice
	Reorder    float64 // probability a frame is held back by ReorderDelay
	// ReorderDelay is the hold-back of a reordered frame; 0 means
	// 2*Delay + 10 µs, enough for the next frames to overtake it.
	ReorderDelay time.Duration
}

func (c LinkConfig) check() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", c.Loss}, {"Dup", c.Dup}, {"Reorder", c.Reorder}} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("%w: %s %v must be a probability in [0, 1]", ErrConfig, p.name, p.v)
		}
	}
	if c.Delay < 0 || c.Jitter < 0 || c.ReorderDelay < 0 || c.Bandwidth < 0 || c.QueueLimit < 0 {
		return fmt.Errorf("%w: negative delay, jitter, bandwidth or queue limit in %+v", ErrConfig, c)
	}
	return nil
}

// Link joins two ports; each direction has its own shape and queue.
type Link struct {
	sim   *Sim
	index int
	ends  [2]*Port
	cfg   [2]LinkConfig // cfg[i] shapes frames sent by ends[i]
	busy  [2]Time       // when ends[i]'s serializer is free
	up    bool
}

// Connect joins a and b with a link shaped by cfg in both directions.
func (s *Sim) Connect(a, b *Port, cfg LinkConfig) (*Link, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if a == nil || b == nil || a == b {
		return nil, fmt.Errorf("%w: connect needs two distinct ports", ErrConfig)
	}
	for _, p := range []*Port{a, b} {
		if p.node.sim != s {
			return nil, fmt.Errorf("%w: %s port %d belongs to another simulation", ErrConfig, p.node.name, p.index)
		}
		if p.link != nil {
			return nil, fmt.Errorf("%w: %s port %d is already connected", ErrConfig, p.node.name, p.index)
		}
	}
	l := &Link{sim: s, index: len(s.links), ends: [2]*Port{a, b}, cfg: [2]LinkConfig{cfg, cfg}, up: true}
	a.link, a.side = l, 0
	b.link, b.side = l, 1
	s.links = append(s.links, l)
	return l, nil
}

// Index is the link's number in traces.
func (l *Link) Index() int { return l.index }

// SetConfig reshapes the direction that from sends on.
func (l *Link) SetConfig(from *Port, cfg LinkConfig) error {
	if err := cfg.check(); err != nil {
		return err
	}
	if from.link != l {
		return fmt.Errorf("%w: %s port %d is not on link %d", ErrConfig, from.node.name, from.index, l.index)
	}
	l.cfg[from.side] = cfg
	return nil
}

// SetUp raises or cuts the link; a cut link drops everything sent on it
// (frames already in flight still arrive).
func (l *Link) SetUp(up bool) { l.up = up }

func (l *Link) transmit(side int, frame []byte) {
	s := l.sim
	cfg := &l.cfg[side]
	h := crc32.Checksum(frame, crcTable)
	s.record(ActionSend, l, side, h, len(frame))
	if !l.up {
		s.record(ActionDropDown, l, side, h, len(frame))
		return
	}
	if cfg.Loss > 0 && s.rng.Float64() < cfg.Loss {
		s.record(ActionDropLoss, l, side, h, len(frame))
		return
	}
	depart := s.now
	if cfg.Bandwidth > 0 {
		start := max(s.now, l.busy[side])
		limit := cfg.QueueLimit
		if limit == 0 {
			limit = 1 << 20
		}
		if backlog := int64(start-s.now) * cfg.Bandwidth / 8 / int64(time.Second); backlog+int64(len(frame)) > int64(limit) {
			s.record(ActionDropQueue, l, side, h, len(frame))
			return
		}
		l.busy[side] = start + Time(int64(len(frame))*8*int64(time.Second)/cfg.Bandwidth)
		depart = l.busy[side]
	}
	at := depart + cfg.Delay
	if cfg.Jitter > 0 {
		at += Time(s.rng.Int64N(int64(cfg.Jitter) + 1))
	}
	if cfg.Reorder > 0 && s.rng.Float64() < cfg.Reorder {
		hold := cfg.ReorderDelay
		if hold == 0 {
			hold = 2*cfg.Delay + 10*time.Microsecond
		}
		at += hold
	}
	to := l.ends[1-side]
	cp := append(s.buffer(len(frame)), frame...)
	s.schedule(event{at: at, to: to, frame: cp, link: l, side: side, hash: h})
	if cfg.Dup > 0 && s.rng.Float64() < cfg.Dup {
		s.record(ActionDup, l, side, h, len(frame))
		extra := Time(s.rng.Int64N(int64(cfg.Delay/2) + int64(time.Microsecond)))
		// Its own copy: each delivered buffer returns to the free list.
		dup := append(s.buffer(len(frame)), frame...)
		s.schedule(event{at: at + extra, to: to, frame: dup, link: l, side: side, hash: h})
	}
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Action is what happened to a frame.
type Action uint8

// Trace actions.
const (
	ActionSend      Action = iota + 1 // a port sent the frame
	ActionDeliver                     // the frame reached the far port
	ActionDropLoss                    // random loss
	ActionDropQueue                   // the serializer queue was full
	ActionDropDown                    // the link was cut
	ActionDup                         // a second copy was scheduled
)

func (a Action) String() string {
	switch a {
	case ActionSend:
		return "send"
	case ActionDeliver:
		return "deliver"
	case ActionDropLoss:
		return "drop-loss"
	case ActionDropQueue:
		return "drop-queue"
	case ActionDropDown:
		return "drop-down"
	case ActionDup:
		return "dup"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Event is one trace entry.
type Event struct {
	At     Time
	Link   int    // Link.Index
	From   int    // 0 or 1: which end of the link sent the frame
	Hash   uint32 // CRC-32C of the frame
	Len    int
	Action Action
}

func (e Event) String() string {
	return fmt.Sprintf("%12v link%d/%d %-10s %08x %d", e.At, e.Link, e.From, e.Action, e.Hash, e.Len)
}

func (s *Sim) record(a Action, l *Link, side int, h uint32, n int) {
	b := &s.rec
	binary.BigEndian.PutUint64(b[0:8], uint64(s.now))
	binary.BigEndian.PutUint32(b[8:12], uint32(l.index))
	b[12] = byte(side)
	b[13] = byte(a)
	binary.BigEndian.PutUint32(b[14:18], h)
	binary.BigEndian.PutUint32(b[18:22], uint32(n))
	s.th.Write(b[:])
	s.nev++
	if s.cfg.KeepTrace {
		s.trace = append(s.trace, Event{At: s.now, Link: l.index, From: side, Hash: h, Len: n, Action: a})
	}
}

// TraceHash is a SHA-256 over every event so far: equal seeds and equal
// programs give equal hashes.
func (s *Sim) TraceHash() [32]byte {
	var out [32]byte
	copy(out[:], s.th.Sum(nil))
	return out
}

// Events is how many trace events have happened.
func (s *Sim) Events() uint64 { return s.nev }

// Trace is the recorded events (Config.KeepTrace), oldest first.
func (s *Sim) Trace() []Event { return s.trace }

// event is a frame in flight.
type event struct {
	at    Time
	to    *Port
	frame []byte
	link  *Link
	side  int
	hash  uint32
}

func (s *Sim) schedule(e event) { s.events.Push(e.at, e) }

// buffer is an empty buffer for an n-byte frame, from the free list when
// one there is large enough.
func (s *Sim) buffer(n int) []byte {
	if k := len(s.free); k > 0 && cap(s.free[k-1]) >= n {
		b := s.free[k-1]
		s.free = s.free[:k-1]
		return b
	}
	return make([]byte, 0, max(n, 2048))
}

// maxStepsPerInstant bounds the work at one virtual instant, which only a
// node whose deadline never clears (a bug) exceeds.
const maxStepsPerInstant = 1 << 20

// Step processes the next frame delivery or node timer, whichever is
// earlier (deliveries first on ties), and reports whether there was one.
func (s *Sim) Step() bool {
	node, dl, haveDL := s.nextTimer()
	if at, _, ok := s.events.Peek(); ok && (!haveDL || at <= dl) {
		_, e, _ := s.events.Pop()
		s.now = max(s.now, e.at)
		s.record(ActionDeliver, e.link, e.side, e.hash, len(e.frame))
		n := e.to.node
		if n.h != nil && !e.to.closed {
			n.h.Deliver(s.now, e.to, e.frame)
		}
		s.free = append(s.free, e.frame[:0])
		n.stepped(s.now)
		return true
	}
	if !haveDL {
		return false
	}
	s.now = max(s.now, dl)
	node.h.Advance(s.now)
	node.stepped(s.now)
	return true
}

func (s *Sim) nextTimer() (*Node, Time, bool) {
	var best *Node
	var at Time
	for _, n := range s.nodes {
		if n.h == nil {
			continue
		}
		if d, ok := n.h.NextDeadline(); ok && (best == nil || d < at) {
			best, at = n, d
		}
	}
	return best, at, best != nil
}

// RunUntil processes everything due up to t and leaves the clock at t.
func (s *Sim) RunUntil(t Time) error {
	return s.run(t, nil)
}

// RunWhile steps while cond holds. It fails with ErrLimit if cond still
// holds at virtual time limit, and ErrStuck if nothing is left to do.
func (s *Sim) RunWhile(cond func() bool, limit Time) error {
	return s.run(limit, cond)
}

func (s *Sim) run(limit Time, cond func() bool) error {
	var last Time = -1
	steps := 0
	for cond == nil || cond() {
		if next, ok := s.peek(); !ok || next > limit {
			if cond == nil {
				s.now = max(s.now, limit)
				return nil
			}
			if !ok {
				return fmt.Errorf("%w at %v: no frames in flight and no timers, yet the condition still holds", ErrStuck, s.now)
			}
			s.now = max(s.now, limit)
			return fmt.Errorf("%w: %v passed and the condition still holds", ErrLimit, limit)
		}
		if s.now == last {
			steps++
			if steps > maxStepsPerInstant {
				return fmt.Errorf("%w: over %d steps at %v; a node's deadline does not move", ErrStuck, maxStepsPerInstant, s.now)
			}
		} else {
			last, steps = s.now, 0
		}
		s.Step()
	}
	return nil
}

// peek is the time of the next step.
func (s *Sim) peek() (Time, bool) {
	_, dl, ok := s.nextTimer()
	if at, _, have := s.events.Peek(); have && (!ok || at < dl) {
		return at, true
	}
	return dl, ok
}
