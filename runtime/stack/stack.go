// Package stack is capygen's userspace IPv4 stack: Ethernet, ARP, IPv4,
// ICMP echo, UDP and TCP demultiplexing over a link.Endpoint, with the
// connection logic in runtime/tcp.
//
// The core is deterministic. Input, Advance and NextDeadline take the
// current time from the caller and never read a clock or start a
// goroutine; frames leave through the endpoint's Send before they return
// (on a link.Batcher, through Queue and one Flush per Output burst, so a
// window of segments costs one kick of the link; Run flushes once per
// drain of the link). On a link that cuts TCP runs (link.TCPSegmenter:
// the kernel's GSO or a NIC's TSO) a window's segments of one connection
// are joined as they are emitted, one set of headers per run, and the
// link sends their payload from the send queue itself (join.go).
// The simulator (runtime/sim) drives a Stack only through those three
// methods with virtual time.
//
// For real links, Run is the event loop: one goroutine that receives
// frames, feeds Input and fires timers with a monotonic clock. Listen,
// Dial and the Conn methods are then safe from any goroutine, and *Conn
// and *Listener satisfy net.Conn and net.Listener, so net/http runs on the
// stack unmodified:
//
//	st, _ := stack.New(stack.Config{Addr: netip.MustParsePrefix("10.77.0.2/24")}, ep)
//	go st.Run(ctx)
//	ln, _ := st.Listen(80)
//	http.Serve(ln, handler)
//
// Hooks for the migration layer: HandleUDP claims a UDP port,
// SetTCPInterceptor sees every TCP segment (with its raw Ethernet frame)
// before demultiplexing, and AdoptConn/DetachConn move a tcp.Conn into or
// out of the stack; an adopted connection is handed out by its port's
// listener. SetTimerHook gives a layered protocol timers on the stack's
// clock (real under Run, virtual under the simulator). Hooks are called
// without the stack lock held, so they may call any Stack method,
// including Input to replay held frames; they run on the event loop and
// must not block. The goroutines a hook's calls wake (an Accept, a Read)
// are woken when it returns, so a handler's work is not a futex call's.
// RecycleDetached gives a detached connection's queue arrays to the
// stack's pool (Config.BufferPool), from which connections that arrive
// with data queued take theirs, and SendUDPSegments hands a train of
// datagrams to a link that cuts it (link.UDPSegmenter: the kernel's UDP
// GSO): the migration engine sends a connection's state so.
//
// Checksums are verified on every received IPv4 header, UDP datagram and
// TCP segment. A Linux peer on a veth pair sends with checksum offload,
// leaving TCP/UDP checksums partial; turn it off on the kernel side
// (ethtool -K <veth> tx off) or the stack counts them in
// Counters.TCPBadChecksum/UDPBadChecksum and drops them.
package stack

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/tcp"
)

// Errors returned by the stack. Wrapped errors name the input.
var (
	ErrConfig          = errors.New("stack: invalid config")
	ErrNoRoute         = errors.New("stack: no route to host")
	ErrHostUnreachable = errors.New("stack: host unreachable (no ARP reply)")
	ErrPortInUse       = errors.New("stack: port in use")
	ErrNoPorts         = errors.New("stack: no free ephemeral port")
	ErrTooBig          = errors.New("stack: packet larger than the MTU")
	ErrConnExists      = errors.New("stack: connection already exists")
	ErrNoConn          = errors.New("stack: no such connection")
	ErrNoListener      = errors.New("stack: no listener on port")
	ErrDetached        = errors.New("stack: connection detached from the stack")
	ErrBadAddr         = errors.New("stack: address not usable")
)

// Config configures a Stack. Zero durations and counts take defaults.
type Config struct {
	// Addr is our IPv4 address and the on-link prefix (required).
	Addr netip.Prefix
	// Gateway is the next hop for off-link destinations (optional; without
	// it off-link destinations fail with ErrNoRoute).
	Gateway netip.Addr
	// TCP configures every connection. MSS defaults to the link MTU - 40,
	// and Buffers to a pool of BufferPool bytes.
	TCP tcp.Config
	// BufferPool bounds the bytes of queue arrays that connections that
	// closed or migrated away leave for the next ones (16 MiB; negative
	// keeps none): a connection migrated in then restores its queued
	// bytes into memory the process has touched, not into fresh pages.
	// The pool is emptied when the stack hands memory back to the OS.
	BufferPool int
	// Seed keys the initial sequence numbers and ephemeral port choice
	// (RFC 6528/6056). Zero draws a random key; simulations set it so that
	// runs repeat exactly.
	Seed uint64
	// ARPTimeout is how long a resolved neighbour stays cached (60 s).
	ARPTimeout time.Duration
	// ARPRetry is the interval between ARP requests (1 s).
	ARPRetry time.Duration
	// ARPRetries is how many requests are sent before giving up (3).
	ARPRetries int
	// ARPQueue bounds the packets held per unresolved address (32).
	ARPQueue int
	// MaxNeighbors bounds the ARP cache (1024, Linux's gc_thresh3): past
	// it an idle entry makes room, or the packet that needs a new one is
	// dropped. Spoofed senders would otherwise grow it without end.
	MaxNeighbors int
	// Backlog bounds each listener's connections not yet accepted (128).
	Backlog int
	// KeepMemory leaves freed connection memory to the Go runtime instead
	// of handing it back to the OS after a burst of connections ends
	// (memory.go).
	KeepMemory bool
	// NoSYNCookies drops a SYN to a listener whose backlog is full, as
	// the stack did before SYN cookies (see cookie.go), instead of
	// answering it with a cookie.
	NoSYNCookies bool
	// TTL for sent packets (64).
	TTL uint8
	// PollInterval is the longest Run waits in the endpoint's Receive
	// before checking timers and its context (1 ms).
	PollInterval time.Duration
}

func (c Config) withDefaults(mtu int) Config {
	if c.ARPTimeout <= 0 {
		c.ARPTimeout = 60 * time.Second
	}
	if c.ARPRetry <= 0 {
		c.ARPRetry = time.Second
	}
	if c.ARPRetries <= 0 {
		c.ARPRetries = 3
	}
	if c.ARPQueue <= 0 {
		c.ARPQueue = 32
	}
	if c.MaxNeighbors <= 0 {
		c.MaxNeighbors = 1024
	}
	if c.Backlog <= 0 {
		c.Backlog = 128
	}
	if c.TTL == 0 {
		c.TTL = 64
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Millisecond
	}
	if max := mtu - IPv4MinHeaderLen - 20; c.TCP.MSS == 0 || int(c.TCP.MSS) > max {
		c.TCP.MSS = uint16(max)
	}
	if c.BufferPool == 0 {
		c.BufferPool = DefaultBufferPool
	}
	if c.TCP.Buffers == nil && c.BufferPool > 0 {
		c.TCP.Buffers = tcp.NewBufferPool(c.BufferPool)
	}
	c.TCP = c.TCP.WithDefaults()
	return c
}

// DefaultBufferPool is Config.BufferPool's default: the queues of a few
// dozen busy connections.
const DefaultBufferPool = 16 << 20

// UDPHandler receives the payload of a UDP datagram addressed to a claimed
// port. payload is valid only during the call.
type UDPHandler func(src, dst netip.AddrPort, payload []byte)

// TCPInterceptor sees each valid TCP segment addressed to us before
// demultiplexing. raw is the whole Ethernet frame, valid only during the
// call (copy it to keep it; Input replays it). Returning true consumes the
// segment: the stack neither delivers it nor answers it with a RST.
type TCPInterceptor func(now tcp.Time, id tcp.ID, seg *tcp.Segment, raw []byte) (handled bool)

// Stack is one IPv4 host on one link.Endpoint.
type Stack struct {
	mu         sync.Mutex
	cfg        Config
	spare      *Conn // ReserveConn's, for the next newConn
	icmpErrors tokenBucket
	ep         link.Endpoint
	mac        [6]byte
	addr       netip.Addr
	bcast      netip.Addr // directed broadcast of Addr's prefix
	mtu        int

	now    tcp.Time        // latest time given to the core
	clock  func() tcp.Time // set by Run; nil means "use now"
	closed bool

	neigh     map[netip.Addr]*neighbor
	neighList []*neighbor // iteration order for determinism
	// neighNext is a lower bound of the earliest neighbour deadline, so
	// that neither NextDeadline nor Advance walks the cache every loop.
	neighNext   tcp.Time
	neighNextOK bool
	// trainQueue, during SendUDPSegments, is how many frames the train's
	// neighbour may queue while it resolves (over Config.ARPQueue).
	trainQueue int
	conns      map[tcp.ID]*Conn
	connList   []*Conn // iteration order for determinism
	listeners  map[uint16]*Listener
	udp        map[uint16]UDPHandler
	udpConns   map[uint16]*UDPConn
	pings      map[uint16]*pingWait // outstanding Pings by sequence
	pingID     uint16
	pingSeq    uint16
	intercept  TCPInterceptor
	timers     TimerHook
	// traceStates, set by tests, sees every set of state transitions
	// output takes from a connection, before the stack reacts to it.
	traceStates func(c *Conn, entered tcp.StateSet)

	ipID     uint16
	key      [32]byte // RFC 6528 secret
	portNext uint32

	tx       []byte            // frame being built; ep.Send does not keep it
	txConn   *Conn             // connection whose Output is running
	batch    link.Batcher      // ep, when it can queue frames and kick once per burst
	txDefer  int               // >0: sendFrame queues on batch; the outermost burst flushes
	txQueued bool              // frames queued on batch since the last Flush
	txLater  bool              // the burst's owner flushes after unlocking (unlockFlush)
	txTrain  []byte            // a UDP train being built (SendUDPSegments)
	txRun    tcpRun            // a run of TCP segments being joined (join.go)
	runs     link.TCPSegmenter // batch, when it cuts TCP runs
	runFrom  *tcp.Segment      // the segment being sent may start a run (joinSegment)
	runViews bool              // runs may send payload from the send queues (join.go)
	fenced   bool              // the pool's fence is ours (viewsFence); Close clears it
	runOpen  atomic.Bool       // the run being joined has views (viewsFence)
	// hooks counts the hooks running (unlockHook); wakeLater are the
	// waiters signal put off meanwhile, and wakeSpare the slice they will
	// take next.
	hooks                int
	wakeLater, wakeSpare []chan struct{}
	// woke: a waiter was woken since the last flushTx.
	woke bool
	// Work posted to the event loop (Post): postMu guards posted and
	// running; postedSpare is the loop's own, the list it ran last.
	postMu      sync.Mutex
	posted      []func()
	postedSpare []func()
	running     bool
	waker       link.Waker
	// Run's receive drain: connections whose Output waits for its end,
	// so that a burst of segments draws one ACK and one wake-up (what
	// GRO gives the kernel) instead of one per pair of segments. draining
	// is set for the whole drain, the hooks it calls unlocked included,
	// whose Output is put off as well (unlockHook).
	draining   bool
	outPending []*Conn
	mem        memoryRelease
	// reprobes are the keep-alive probes AbortDetached repeats (tcp.go).
	reprobes []reprobe
	dl       tcp.Time // no connection has a deadline before dl (if dlOK)
	dlOK     bool
	discard  [4096]byte // sink for data arriving after Close
	emit     func(*tcp.Segment)
	ctr      Counters
	reaped   Counters // the per-connection sums of connections already removed
}

// New builds a stack on ep. It validates cfg and does no I/O.
func New(cfg Config, ep link.Endpoint) (*Stack, error) {
	if ep == nil {
		return nil, fmt.Errorf("%w: nil link endpoint", ErrConfig)
	}
	if !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4() {
		return nil, fmt.Errorf("%w: Addr %v must be an IPv4 address with prefix, e.g. 10.77.0.2/24", ErrConfig, cfg.Addr)
	}
	if cfg.Addr.Bits() < 1 || cfg.Addr.Bits() > 31 {
		return nil, fmt.Errorf("%w: Addr %v: prefix length must be 1..31", ErrConfig, cfg.Addr)
	}
	if b := cfg.Addr.Addr().As4(); b[0] == 0 || b[0] == 127 || b[0] >= 224 {
		// The stack drops packets from such sources: it would hear no peer.
		return nil, fmt.Errorf("%w: Addr %v: not a host's address (0/8, 127/8, multicast and 240/4 are not); use a unicast address", ErrConfig, cfg.Addr)
	}
	if cfg.Gateway.IsValid() && (!cfg.Gateway.Is4() || !cfg.Addr.Contains(cfg.Gateway)) {
		return nil, fmt.Errorf("%w: Gateway %v must be an IPv4 address inside %v", ErrConfig, cfg.Gateway, cfg.Addr.Masked())
	}
	if cfg.Gateway.IsValid() && (cfg.Gateway == cfg.Addr.Addr() || cfg.Gateway == directedBroadcast(cfg.Addr)) {
		return nil, fmt.Errorf("%w: Gateway %v is this stack's own or broadcast address; give the router's", ErrConfig, cfg.Gateway)
	}
	mac := ep.MAC()
	if len(mac) != 6 {
		return nil, fmt.Errorf("%w: endpoint MAC %v is not 6 bytes", ErrConfig, mac)
	}
	mtu := ep.MTU()
	if mtu < 576 || mtu > 65535-EthernetHeaderLen {
		return nil, fmt.Errorf("%w: endpoint MTU %d outside 576..65521", ErrConfig, mtu)
	}
	if cfg.TCP.MSS != 0 && cfg.TCP.MSS < 64 {
		return nil, fmt.Errorf("%w: TCP.MSS %d below 64", ErrConfig, cfg.TCP.MSS)
	}
	s := &Stack{
		cfg:       cfg.withDefaults(mtu),
		ep:        ep,
		mac:       [6]byte(mac),
		addr:      cfg.Addr.Addr(),
		mtu:       mtu,
		neigh:     make(map[netip.Addr]*neighbor),
		conns:     make(map[tcp.ID]*Conn),
		listeners: make(map[uint16]*Listener),
		udp:       make(map[uint16]UDPHandler),
		udpConns:  make(map[uint16]*UDPConn),
		pings:     make(map[uint16]*pingWait),
		tx:        make([]byte, 0, EthernetHeaderLen+mtu),
	}
	s.bcast = directedBroadcast(cfg.Addr)
	if cfg.Seed != 0 {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], cfg.Seed)
		s.key = sha256.Sum256(append([]byte("capygen stack key"), b[:]...))
	} else if _, err := rand.Read(s.key[:]); err != nil {
		return nil, fmt.Errorf("stack: drawing the ISS key: %w", err)
	}
	s.portNext = binary.BigEndian.Uint32(s.key[28:32])
	s.pingID = binary.BigEndian.Uint16(s.key[26:28])
	s.emit = s.emitSegment
	s.batch, _ = ep.(link.Batcher)
	s.runs, _ = ep.(link.TCPSegmenter)
	if s.runs != nil && s.runs.MaxTCPSegments() >= 2 {
		// A link that cuts no runs needs no fence. Without a pool no array
		// is reused; a pool fenced already (shared with another stack)
		// cannot tell this one's runs: copy then.
		pool := s.cfg.TCP.Buffers
		s.fenced = pool != nil && pool.SetFence(s.viewsFence)
		s.runViews = pool == nil || s.fenced
	}
	s.waker, _ = ep.(link.Waker)
	return s, nil
}

// wakeRun makes Run's loop, if one runs, look at its deadlines again.
func (s *Stack) wakeRun() {
	s.postMu.Lock()
	running := s.running
	s.postMu.Unlock()
	if running {
		s.waker.Wake()
	}
}

// Post runs fn on Run's event loop, between two drains of the link:
// without s.mu, and inside the loop's transmit burst, so what it sends
// leaves with the drain's frames. A goroutine that would take s.mu
// several times while the loop keeps taking it (a migration's start, from
// the control goroutine) hands its work over this way and never waits for
// the lock. With no Run going, or on a link that cannot be woken, fn runs
// at once on the caller's goroutine. fn must not block.
func (s *Stack) Post(fn func()) {
	s.postMu.Lock()
	if !s.running {
		s.postMu.Unlock()
		fn()
		return
	}
	first := len(s.posted) == 0
	s.posted = append(s.posted, fn)
	s.postMu.Unlock()
	if first {
		s.waker.Wake()
	}
}

// runPosted runs the work posted since the last call, inside a burst that
// the caller's flushTx ends. Only Run's goroutine calls it.
func (s *Stack) runPosted() {
	s.postMu.Lock()
	fns := s.posted
	s.posted, s.postedSpare = s.postedSpare[:0], nil
	s.postMu.Unlock()
	if len(fns) == 0 {
		s.postedSpare = fns
		return
	}
	s.mu.Lock()
	s.beginBurst()
	s.mu.Unlock()
	defer func() {
		clear(fns)
		s.postedSpare = fns[:0]
		s.mu.Lock()
		s.leaveBurst() // flushTx, next, sends the burst
		s.mu.Unlock()
	}()
	for _, fn := range fns {
		fn()
	}
}

func directedBroadcast(p netip.Prefix) netip.Addr {
	if p.Bits() == 31 {
		return netip.Addr{} // a point-to-point /31 has none (RFC 3021)
	}
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// Addr is the stack's IPv4 address.
func (s *Stack) Addr() netip.Addr { return s.addr }

// MAC is the stack's Ethernet address.
func (s *Stack) MAC() net.HardwareAddr { return net.HardwareAddr(s.mac[:]) }

// Config returns the configuration with defaults filled in.
func (s *Stack) Config() Config { return s.cfg }

// Now is the stack's current time: the clock while Run runs, otherwise the
// latest time given to Input or Advance.
func (s *Stack) Now() tcp.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nowLocked()
}

func (s *Stack) nowLocked() tcp.Time {
	if s.clock != nil {
		if t := s.clock(); t > s.now {
			s.now = t
		}
	}
	return s.now
}

// setNow moves the core clock forward; time never runs backwards for tcp.
func (s *Stack) setNow(now tcp.Time) tcp.Time {
	if now > s.now {
		s.now = now
	}
	return s.now
}

// Input processes one received Ethernet frame. frame is not kept.
func (s *Stack) Input(now tcp.Time, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inputLocked(now, frame)
}

// inputQueued is Input for Run's drain of the link: what the frame makes
// the stack send stays queued on a Batcher, and the Output its segments
// owe their connections is put off (outputSoon), until Run's flushTx, so
// a drain of many segments draws one ACK per connection and kicks the
// link once.
func (s *Stack) inputQueued(now tcp.Time, frame []byte) {
	s.mu.Lock()
	s.txDefer++
	s.draining = true
	defer s.endQueued() // even if a hook panics: a stuck draining would defer Input's output
	s.inputLocked(now, frame)
}

func (s *Stack) endQueued() {
	s.draining = false
	s.leaveBurst() // flushTx, next, sends what the frame's input queued
	s.mu.Unlock()
}

// flushTx runs the Output that Run's drain put off and sends whatever the
// drain left queued. It sends also in the middle of another goroutine's
// Burst: that burst's frames leave at its end at the latest, and the
// loop's ACKs and segments never wait for it (its f may be waiting for
// them). It reports whether a waiter was woken since its last call
// (Run's loop then yields to it).
func (s *Stack) flushTx() (woke bool) {
	s.mu.Lock()
	woke, s.woke = s.woke, false
	s.beginBurst()
	for i, c := range s.outPending {
		s.outPending[i] = nil
		s.outputOwed(s.now, c) // nothing if output ran meanwhile or c left the table
	}
	s.outPending = s.outPending[:0]
	s.leaveBurst()
	s.sealRun() // leaveBurst seals only when the outermost burst ends
	flush := s.txQueued
	s.txQueued = false
	s.mu.Unlock()
	if flush {
		s.flushOrCount()
	}
	return woke
}

// outputSoon is output for a segment's Input, or for a connection just
// filed. In Run's drain, and in the hooks it calls, it is put off to the
// drain's end, once per connection; output sooner (a Conn method,
// DetachConn) settles it, and removal cancels it.
func (s *Stack) outputSoon(now tcp.Time, c *Conn) {
	if !s.draining {
		s.output(now, c)
		return
	}
	if !c.outPending {
		c.outPending = true
		s.outPending = append(s.outPending, c) // c may be listed twice; the flag rules
	}
}

// outputOwed runs the Output a drain put off for c, if still owed. Paths
// that remove a connection in the middle of a drain call it first, so
// that it sends and the stack sees what Input, frame by frame, would have.
func (s *Stack) outputOwed(now tcp.Time, c *Conn) {
	if c.outPending {
		s.output(now, c)
	}
}

func (s *Stack) inputLocked(now tcp.Time, frame []byte) {
	now = s.setNow(now)
	s.ctr.FramesIn++
	if len(frame) < EthernetHeaderLen {
		s.drop(DropTruncated)
		return
	}
	e := ethernet(frame)
	if dst := e.dst(); dst != s.mac && dst != broadcastMAC {
		s.drop(DropNotOurMAC)
		return
	}
	switch e.etherType() {
	case etherTypeARP:
		s.inputARP(now, e.src(), arpPacket(e.payload()))
	case etherTypeIPv4:
		s.inputIPv4(now, frame, e.payload(), e.dst() == broadcastMAC)
	default:
		s.drop(DropEtherType)
	}
}

// Advance runs everything due at now: TCP timers, ARP retries and expiry,
// and removal of finished connections.
func (s *Stack) Advance(now tcp.Time) {
	s.mu.Lock()
	now = s.setNow(now)
	s.beginBurst()
	s.advanceLocked(now)
	h := s.timers
	s.endBurstUnlock()
	if h != nil {
		if d, ok := h.NextDeadline(); ok && d <= now {
			h.Advance(now)
		}
	}
}

func (s *Stack) advanceLocked(now tcp.Time) {
	s.advanceARP(now)
	s.advanceReprobes(now)
	s.maybeReleaseMemory(now)
	if !s.dlOK || s.dl > now {
		return // no connection has anything due
	}
	// Rescan: run what is due and recompute the earliest deadline. Walk
	// connList, not the map, so that the order (and so the frames sent)
	// repeats exactly under simulation.
	s.dlOK = false
	for i := 0; i < len(s.connList); {
		c := s.connList[i]
		if d, ok := c.tc.Deadline(); ok && d <= now {
			s.output(now, c) // notes c's next deadline
		} else if ok {
			s.noteDeadline(d)
		}
		if c.tc.Done() {
			s.outputOwed(now, c) // reset earlier in a drain that this Advance interrupts
			s.removeConn(c)      // moves the last conn into i
			continue
		}
		i++
	}
}

// TimerHook is a protocol layered on the stack (the migration engine)
// that needs timers on the stack's clock: NextDeadline is merged into the
// stack's, and Advance is called when it is due. Both run without the
// stack lock, so they may call any Stack method.
type TimerHook interface {
	NextDeadline() (tcp.Time, bool)
	Advance(now tcp.Time)
}

// ConnGoneHook is a TimerHook told when a connection leaves the demux
// table (finished, reset, detached or replaced), so that it need not poll
// every connection it watches. ConnGone runs with the stack's lock held:
// it must only note the ID, and have its NextDeadline say the work is
// due; the stack then calls its Advance, and Run's loop is woken for a
// removal made outside it.
type ConnGoneHook interface {
	TimerHook
	ConnGone(id tcp.ID)
}

// SetTimerHook installs (or with nil removes) the timer hook.
func (s *Stack) SetTimerHook(h TimerHook) {
	s.mu.Lock()
	s.timers = h
	s.mu.Unlock()
}

// noteDeadline lowers the cached earliest connection deadline. The cache
// is a lower bound: every change to a tcp.Conn is followed by output,
// which notes the new deadline (for a segment of Run's drain, at the
// drain's end, before Run next asks NextDeadline), so Advance scans only
// when something may be due.
func (s *Stack) noteDeadline(t tcp.Time) {
	if !s.dlOK || t < s.dl {
		s.dl, s.dlOK = t, true
	}
}

// NextDeadline is the earliest time Advance has work to do, if any.
func (s *Stack) NextDeadline() (tcp.Time, bool) {
	s.mu.Lock()
	var best tcp.Time
	found := false
	take := func(t tcp.Time, ok bool) {
		if ok && (!found || t < best) {
			best, found = t, true
		}
	}
	take(s.neighNext, s.neighNextOK)
	for i := range s.reprobes {
		take(s.reprobes[i].at, true)
	}
	take(s.dl, s.dlOK)
	h := s.timers
	s.mu.Unlock()
	if h != nil {
		take(h.NextDeadline())
	}
	return best, found
}

// Counters returns a snapshot of the stack's counters.
func (s *Stack) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.ctr
	c.TCPRetransmits, c.TCPTimeouts, c.TCPRecoveries = s.reaped.TCPRetransmits, s.reaped.TCPTimeouts, s.reaped.TCPRecoveries
	c.TCPTailLossProbes, c.TCPRACKLost, c.TCPPAWSRejected = s.reaped.TCPTailLossProbes, s.reaped.TCPRACKLost, s.reaped.TCPPAWSRejected
	for _, cn := range s.conns {
		c.addConn(cn.tc.Stats())
	}
	return c
}

func (s *Stack) drop(r DropReason) { s.ctr.Drops[r]++ }

// inputIPv4 validates an IPv4 packet and dispatches its payload.
// inputIPv4 takes an IPv4 packet; l2bcast says it came in a link-layer
// broadcast frame, which, like an IP broadcast, draws no ICMP error and
// carries no TCP (RFC 1122 3.2.2, Linux's PACKET_HOST checks). An echo
// request to our own address is answered in one, as Linux does.
func (s *Stack) inputIPv4(now tcp.Time, frame, b []byte, l2bcast bool) {
	if len(b) < IPv4MinHeaderLen {
		s.drop(DropTruncated)
		return
	}
	h := IPv4(b)
	hl := h.HeaderLen()
	if h.Version() != 4 || hl < IPv4MinHeaderLen || h.TotalLen() < hl || h.TotalLen() > len(b) {
		s.drop(DropIPv4Malformed)
		return
	}
	s.ctr.IPv4In++
	if !h.ChecksumValid() {
		s.ctr.IPv4BadChecksum++
		s.drop(DropBadChecksum)
		return
	}
	if h.MoreFragments() || h.FragmentOffset() != 0 {
		// Nothing we speak is fragmented; TCP uses the MSS and DF.
		s.ctr.IPv4Fragments++
		s.drop(DropFragment)
		return
	}
	dst := h.Dst()
	bcast := s.broadcast(dst)
	if dst != s.addr && !bcast {
		s.ctr.IPv4NotOurs++
		s.drop(DropNotOurAddr)
		return
	}
	src := h.Src()
	if src == s.addr || s.martian(src) && !(src.IsUnspecified() && h.Protocol() == protoUDP) {
		// No host sends from these (RFC 1122 3.2.1.3): answering one would
		// reach every host on the link, or a loopback that is not there.
		s.drop(DropBadSource)
		return
	}
	payload := h.Payload()
	switch h.Protocol() {
	case protoICMP:
		if !bcast {
			s.inputICMP(now, src, payload)
		} else {
			s.drop(DropBroadcast)
		}
	case protoUDP:
		s.inputUDP(now, src, dst, payload, h, bcast || l2bcast)
	case protoTCP:
		if bcast || l2bcast {
			s.drop(DropBroadcast)
			return
		}
		s.inputTCP(now, frame, src, dst, payload)
	default:
		s.drop(DropProtocol)
	}
}

// sendIPv4 finishes the IPv4 and Ethernet headers of s.tx, which holds
// room for both followed by the IP payload, and sends it toward dst.
func (s *Stack) sendIPv4(now tcp.Time, dst netip.Addr, proto uint8) error {
	return s.sendIPv4From(now, s.addr, dst, proto)
}

// sendIPv4From is sendIPv4 from src, which need not be this stack's
// address: an aborted connection that had moved here leaves from its
// origin's (sendSegment).
func (s *Stack) sendIPv4From(now tcp.Time, src, dst netip.Addr, proto uint8) error {
	ipLen := len(s.tx) - EthernetHeaderLen
	if ipLen > s.mtu {
		s.drop(DropTooBig)
		return fmt.Errorf("%w: %d-byte IPv4 packet to %v, MTU %d", ErrTooBig, ipLen, dst, s.mtu)
	}
	s.ipID++
	IPv4(s.tx[EthernetHeaderLen:]).Encode(&IPv4Fields{
		TotalLen: uint16(ipLen), ID: s.ipID, TTL: s.cfg.TTL, Protocol: proto, Src: src, Dst: dst,
	})
	s.ctr.IPv4Out++
	if s.broadcast(dst) {
		putEthernet(s.tx, broadcastMAC, s.mac, etherTypeIPv4)
		return s.sendFrame(s.tx)
	}
	hop, err := s.nextHop(dst)
	if err != nil {
		s.drop(DropNoRoute)
		return err
	}
	return s.resolveAndSend(now, hop, s.tx)
}

// broadcast reports whether dst is our subnet's or the limited broadcast.
// martian reports whether a is no single host's address, so never a
// packet's source nor a peer: unspecified (0/8), loopback (127/8),
// multicast and reserved (224/3, 255.255.255.255 included) and this
// subnet's broadcast.
func (s *Stack) martian(a netip.Addr) bool {
	b := a.As4()
	return b[0] == 0 || b[0] == 127 || b[0] >= 224 || a == s.bcast
}

func (s *Stack) broadcast(dst netip.Addr) bool {
	return dst == s.bcast || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func (s *Stack) nextHop(dst netip.Addr) (netip.Addr, error) {
	switch {
	case dst == s.addr:
		return netip.Addr{}, fmt.Errorf("%w: %v is this stack's own address (no loopback)", ErrNoRoute, dst)
	case !dst.Is4():
		return netip.Addr{}, fmt.Errorf("%w: %v is not IPv4", ErrNoRoute, dst)
	case s.cfg.Addr.Contains(dst):
		return dst, nil
	case s.cfg.Gateway.IsValid():
		return s.cfg.Gateway, nil
	}
	return netip.Addr{}, fmt.Errorf("%w: %v is outside %v and no Gateway is configured", ErrNoRoute, dst, s.cfg.Addr.Masked())
}

func (s *Stack) sendFrame(frame []byte) error {
	s.sealRun() // frames leave in the order they were made
	send := s.ep.Send
	if s.txDefer > 0 && s.batch != nil {
		send = s.batch.Queue
		s.txQueued = true
	}
	if err := send(frame); err != nil {
		s.ctr.SendErrors++
		s.drop(DropSendError)
		return fmt.Errorf("stack: sending a %d-byte frame: %w", len(frame), err)
	}
	s.ctr.FramesOut++
	return nil
}

// beginBurst makes sendFrame queue frames until the matching endBurst,
// which transmits them with one Flush: a window of segments costs one
// kick of the link instead of one per frame. Bursts nest; s.mu is held.
func (s *Stack) beginBurst() { s.txDefer++ }

// leaveBurst closes a burst without flushing. The outermost one seals the
// TCP run being joined, so that it leaves with the flush that follows.
func (s *Stack) leaveBurst() {
	s.txDefer--
	if s.txDefer == 0 {
		s.sealRun()
	}
}

// endBurst closes a burst; the outermost one flushes.
func (s *Stack) endBurst() {
	s.leaveBurst()
	if s.txDefer > 0 || !s.txQueued || s.txLater {
		return
	}
	s.flushLocked()
}

// flushLocked kicks the link with s.mu held and counts a failure.
func (s *Stack) flushLocked() {
	s.txQueued = false
	if err := s.batch.Flush(); err != nil {
		s.ctr.SendErrors++
		s.drop(DropSendError)
	}
}

// takeBeforeWait seals what is queued on the link before a caller
// blocks, also in the middle of a burst (Burst's f may Write or Read
// until the peer answers, and the peer answers only what it got), and
// reports whether a kick is owed; the waiter kicks after releasing s.mu,
// as unlockFlush does, so the event loop can process ACKs meanwhile. The
// burst goes on; its end sends what comes after. s.mu is held.
func (s *Stack) takeBeforeWait() bool {
	if s.batch == nil {
		return false
	}
	s.sealRun()
	kick := s.txQueued
	s.txQueued = false
	return kick
}

// endBurstUnlock closes a burst and releases s.mu; the outermost burst's
// flush comes after the unlock (unlockFlush). In copy mode a kick is the
// kernel's transmit, often with the receiving veth's softirq, which can
// run for hundreds of microseconds: under s.mu it would hold up every
// goroutine that needs the stack, a migration handler in the middle of
// its work among them.
func (s *Stack) endBurstUnlock() {
	s.leaveBurst()
	s.unlockFlush()
}

// unlockFlush releases s.mu and then flushes what a txLater burst left
// queued, so that the kick (most of a bulk sender's time, in the kernel)
// runs while the event loop can take the lock and process ACKs.
func (s *Stack) unlockFlush() {
	flush := s.txQueued && s.txDefer == 0
	if flush {
		s.txQueued = false
	}
	s.mu.Unlock()
	if flush {
		s.flushOrCount()
	}
}

// flushOrCount kicks the link, without s.mu, and counts a failure.
func (s *Stack) flushOrCount() {
	if err := s.batch.Flush(); err != nil {
		s.mu.Lock()
		s.ctr.SendErrors++
		s.drop(DropSendError)
		s.mu.Unlock()
	}
}

// startFrame resets s.tx to the Ethernet and IPv4 headers' room.
func (s *Stack) startFrame() {
	s.tx = s.tx[:EthernetHeaderLen+IPv4MinHeaderLen]
}

// inputICMP answers echo requests with the same id, sequence and data.
func (s *Stack) inputICMP(now tcp.Time, src netip.Addr, b []byte) {
	if len(b) < icmpHeaderLen || checksum(b, 0) != 0 {
		s.drop(DropICMPMalformed)
		return
	}
	if b[0] == icmpEchoReply && b[1] == 0 {
		s.inputEchoReply(now, src, b)
		return
	}
	if b[0] == icmpDestUnreachable && b[1] == icmpFragNeeded {
		s.inputFragNeeded(now, b)
		return
	}
	if b[0] != icmpEchoRequest || b[1] != 0 {
		s.drop(DropICMPType)
		return
	}
	s.ctr.ICMPEchoIn++
	s.startFrame()
	s.tx = append(s.tx, b...)
	m := s.tx[EthernetHeaderLen+IPv4MinHeaderLen:]
	m[0], m[1], m[2], m[3] = icmpEchoReply, 0, 0, 0
	binary.BigEndian.PutUint16(m[2:4], checksum(m, 0))
	if s.sendIPv4(now, src, protoICMP) == nil {
		s.ctr.ICMPEchoOut++
	}
}

// inputFragNeeded is path MTU discovery (RFC 1191): a router dropped a
// segment of ours, sent with DF, that was over its next hop's MTU. The
// ICMP quotes the segment's IPv4 header and first 8 bytes (ports and
// sequence number); the connection lowers its MSS if the sequence number
// is in flight, and resends what no longer fits.
func (s *Stack) inputFragNeeded(now tcp.Time, b []byte) {
	inner := IPv4(b[icmpHeaderLen:])
	if len(inner) < IPv4MinHeaderLen || inner[0]>>4 != 4 {
		s.drop(DropICMPMalformed)
		return
	}
	hl := int(inner[0]&0xf) * 4
	if hl < IPv4MinHeaderLen || len(inner) < hl+8 || inner.Protocol() != protoTCP || inner.Src() != s.addr {
		s.drop(DropICMPMalformed)
		return
	}
	l4 := inner[hl:]
	id := tcp.ID{Local: netip.AddrPortFrom(s.addr, binary.BigEndian.Uint16(l4[0:2])),
		Remote: netip.AddrPortFrom(inner.Dst(), binary.BigEndian.Uint16(l4[2:4]))}
	mtu := int(binary.BigEndian.Uint16(b[6:8]))
	if mtu == 0 {
		// A router older than RFC 1191 leaves the MTU out: guess the
		// plateau below the datagram it dropped (RFC 1191 §7, Linux's
		// guess_mtu).
		mtu = mtuPlateau(int(inner.TotalLen()))
	}
	c := s.conns[id]
	if c == nil || mtu >= s.mtu || !c.tc.PathMTU(mtu, binary.BigEndian.Uint32(l4[4:8])) {
		s.drop(DropICMPStale)
		return
	}
	s.ctr.ICMPFragNeededIn++
	s.outputSoon(now, c)
}

// mtuPlateau is the largest of RFC 1191 §7's common MTUs below size.
func mtuPlateau(size int) int {
	for _, p := range [...]int{32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296} {
		if p < size {
			return p
		}
	}
	return 68
}

// ICMP errors are rate limited as Linux's are by default
// (net.ipv4.icmp_msgs_per_sec, icmp_msgs_burst): a flood to closed ports
// cannot make the stack flood back (RFC 1812 §4.3.2.8).
const (
	icmpErrorsPerSecond = 1000
	icmpErrorBurst      = 50
)

// portUnreachable answers a datagram to a port nothing bound with ICMP
// destination unreachable, code port unreachable, quoting its IP header
// and first 8 bytes (RFC 1122 §3.2.2.1, RFC 792), within the rate limit.
func (s *Stack) portUnreachable(now tcp.Time, src netip.Addr, ip IPv4, udp []byte) {
	if !s.icmpErrors.allow(now) {
		s.ctr.ICMPErrorsLimited++
		return
	}
	s.startFrame()
	s.tx = append(s.tx, icmpDestUnreachable, icmpPortUnreachable, 0, 0, 0, 0, 0, 0)
	s.tx = append(s.tx, ip[:ip.HeaderLen()]...)
	s.tx = append(s.tx, udp[:min(8, len(udp))]...)
	m := s.tx[EthernetHeaderLen+IPv4MinHeaderLen:]
	binary.BigEndian.PutUint16(m[2:4], checksum(m, 0))
	if s.sendIPv4(now, src, protoICMP) == nil {
		s.ctr.ICMPErrorsOut++
	}
}

// tokenBucket allows rate events a second, burst at once.
type tokenBucket struct {
	tokens float64
	last   tcp.Time
	primed bool
}

func (b *tokenBucket) allow(now tcp.Time) bool {
	if !b.primed {
		b.tokens, b.last, b.primed = icmpErrorBurst, now, true
	}
	if now > b.last {
		b.tokens = min(icmpErrorBurst, b.tokens+float64(now-b.last)*icmpErrorsPerSecond/float64(time.Second))
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// inputUDP verifies a datagram and hands it to its port's handler; ip is
// its IPv4 header, which a port-unreachable error quotes.
func (s *Stack) inputUDP(now tcp.Time, src, dst netip.Addr, b []byte, ip IPv4, bcast bool) {
	if len(b) < udpHeaderLen {
		s.drop(DropUDPMalformed)
		return
	}
	ulen := int(binary.BigEndian.Uint16(b[4:6]))
	if ulen < udpHeaderLen || ulen > len(b) {
		s.drop(DropUDPMalformed)
		return
	}
	b = b[:ulen]
	if binary.BigEndian.Uint16(b[6:8]) != 0 && checksum(b, pseudoSum(src, dst, protoUDP, ulen)) != 0 {
		s.ctr.UDPBadChecksum++
		s.drop(DropBadChecksum)
		return
	}
	s.ctr.UDPIn++
	sport, dport := binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4])
	src4, dst4 := netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	if u := s.udpConns[dport]; u != nil {
		u.deliver(src4, b[udpHeaderLen:])
		return
	}
	h := s.udp[dport]
	if h == nil {
		s.ctr.UDPNoPort++
		s.drop(DropNoPort)
		if !bcast && !src.IsUnspecified() {
			s.portUnreachable(now, src, ip, b)
		}
		return
	}
	// The handler runs unlocked so that it may call SendUDP, AdoptConn or
	// any other Stack method.
	s.unlockHook()
	defer s.relockHook()
	h(src4, dst4, b[udpHeaderLen:])
}

// HandleUDP claims port for h; a nil h releases the port. Claiming a port
// that is already claimed fails with ErrPortInUse.
func (s *Stack) HandleUDP(port uint16, h UDPHandler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.udp, port)
		return nil
	}
	if port == 0 {
		return fmt.Errorf("%w: UDP port 0", ErrBadAddr)
	}
	if s.udp[port] != nil || s.udpConns[port] != nil {
		return fmt.Errorf("%w: UDP port %d already has an owner", ErrPortInUse, port)
	}
	s.udp[port] = h
	return nil
}

// Burst runs f, which may send with any Stack method, and kicks the link
// once at its end instead of once per frame (on a link.Batcher; otherwise
// frames leave as they are sent). The migration layer sends a connection's
// state, hundreds of datagrams, this way. f may block (a Write waiting for
// room, a Read for the answer): what it queued leaves before it waits, and
// the event loop's own frames never wait for a burst to end.
func (s *Stack) Burst(f func()) {
	s.mu.Lock()
	s.beginBurst()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.endBurstUnlock()
	}()
	f()
}

// SendUDP sends one datagram from src (whose address must be ours or
// unspecified) to dst. A datagram waiting for ARP is queued and counts as
// sent; one that does not fit the MTU fails with ErrTooBig.
func (s *Stack) SendUDP(src, dst netip.AddrPort, payload []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkUDP(src, dst, len(payload)); err != nil {
		return err
	}
	return s.sendUDP(src, dst, payload)
}

// checkUDP checks SendUDP's addresses, and that a size-byte payload fits.
func (s *Stack) checkUDP(src, dst netip.AddrPort, size int) error {
	if a := src.Addr(); a.IsValid() && !a.IsUnspecified() && a != s.addr {
		return fmt.Errorf("%w: UDP source %v is not this stack's address %v", ErrBadAddr, src, s.addr)
	}
	if !dst.Addr().Is4() || dst.Port() == 0 {
		return fmt.Errorf("%w: UDP destination %v must be IPv4 with a port", ErrBadAddr, dst)
	}
	if IPv4MinHeaderLen+udpHeaderLen+size > s.mtu {
		return fmt.Errorf("%w: %d-byte UDP payload to %v, at most %d fit", ErrTooBig, size, dst, s.mtu-IPv4MinHeaderLen-udpHeaderLen)
	}
	return nil
}

// sendUDP is SendUDP once checked; s.mu is held.
func (s *Stack) sendUDP(src, dst netip.AddrPort, payload []byte) error {
	n := udpHeaderLen + len(payload)
	s.startFrame()
	off := len(s.tx)
	s.tx = append(s.tx, 0, 0, 0, 0, 0, 0, 0, 0)
	s.tx = append(s.tx, payload...)
	u := s.tx[off:]
	binary.BigEndian.PutUint16(u[0:2], src.Port())
	binary.BigEndian.PutUint16(u[2:4], dst.Port())
	binary.BigEndian.PutUint16(u[4:6], uint16(n))
	sum := checksum(u, pseudoSum(s.addr, dst.Addr(), protoUDP, n))
	if sum == 0 {
		sum = 0xffff // zero means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(u[6:8], sum)
	if err := s.sendIPv4(s.nowLocked(), dst.Addr(), protoUDP); err != nil {
		return err
	}
	s.ctr.UDPOut++
	return nil
}

// SendUDPSegments sends datagrams from src to dst whose payloads lie back
// to back in payloads, segSize bytes each but the last, as SendUDP would
// one by one. When the link cuts UDP trains (link.UDPSegmenter: the
// kernel's or the NIC's UDP GSO) and dst's hardware address is known, it
// hands them over in as few frames as the link takes, and the link, not
// the stack, writes each datagram's headers and checksum. The migration
// engine sends a connection's state this way.
// maxTrainQueue bounds the datagrams of one train that wait for an ARP
// resolution (SendUDPSegments): a state of about 1.4 MB.
const maxTrainQueue = 1024

func (s *Stack) SendUDPSegments(src, dst netip.AddrPort, payloads []byte, segSize int) error {
	s.mu.Lock()
	s.beginBurst() // one kick for them all, after the unlock
	defer s.endBurstUnlock()
	if segSize <= 0 {
		return fmt.Errorf("%w: UDP segments of %d bytes to %v: want 1 to %d (the MTU less the IPv4 and UDP headers)",
			ErrTooBig, segSize, dst, s.mtu-IPv4MinHeaderLen-udpHeaderLen)
	}
	if err := s.checkUDP(src, dst, segSize); err != nil {
		return err
	}
	perFrame := 0
	seg, ok := s.batch.(link.UDPSegmenter)
	if ok {
		perFrame = min(seg.MaxUDPSegments(), (0xffff-IPv4MinHeaderLen-udpHeaderLen)/segSize)
	}
	// A train goes to a resolved neighbour; otherwise sendUDP queues each
	// datagram behind the ARP resolution, or fails as it would.
	var mac [6]byte
	if perFrame >= 2 {
		hop, err := s.nextHop(dst.Addr())
		n := s.neigh[hop]
		if err == nil && !s.broadcast(dst.Addr()) && n != nil && n.resolved {
			mac, n.used = n.mac, true
		} else {
			perFrame = 0
		}
	}
	perCall := segSize // one datagram at a time
	if perFrame >= 2 {
		perCall = perFrame * segSize
	} else {
		// Behind an ARP resolution the whole train waits, not the first
		// ARPQueue datagrams of it: the rest would be dropped, and the
		// engine's resend timer would run out before it went again.
		s.trainQueue = min((len(payloads)+segSize-1)/segSize, maxTrainQueue)
		defer func() { s.trainQueue = 0 }()
	}
	for len(payloads) > 0 {
		k := min(len(payloads), perCall)
		var err error
		if k <= segSize {
			err = s.sendUDP(src, dst, payloads[:k])
		} else {
			err = s.sendUDPTrain(seg, mac, src, dst, payloads[:k], segSize)
		}
		if err != nil {
			return err
		}
		payloads = payloads[k:]
	}
	return nil
}

// sendUDPTrain queues payloads, two or more segSize-byte datagrams, as one
// frame on seg; the burst SendUDPSegments opened sends it. s.mu is held.
func (s *Stack) sendUDPTrain(seg link.UDPSegmenter, mac [6]byte, src, dst netip.AddrPort, payloads []byte, segSize int) error {
	s.sealRun()
	n := (len(payloads) + segSize - 1) / segSize
	ipLen := IPv4MinHeaderLen + udpHeaderLen + len(payloads)
	s.txTrain = append(s.txTrain[:0], make([]byte, EthernetHeaderLen+IPv4MinHeaderLen+udpHeaderLen)...)
	s.txTrain = append(s.txTrain, payloads...)
	f := s.txTrain
	putEthernet(f, mac, s.mac, etherTypeIPv4)
	s.ipID++
	IPv4(f[EthernetHeaderLen:]).Encode(&IPv4Fields{
		TotalLen: uint16(ipLen), ID: s.ipID, TTL: s.cfg.TTL, Protocol: protoUDP, Src: s.addr, Dst: dst.Addr(),
	})
	s.ipID += uint16(n - 1) // the link numbers the datagrams after the first
	u := f[EthernetHeaderLen+IPv4MinHeaderLen:]
	binary.BigEndian.PutUint16(u[0:2], src.Port())
	binary.BigEndian.PutUint16(u[2:4], dst.Port())
	binary.BigEndian.PutUint16(u[4:6], uint16(ipLen-IPv4MinHeaderLen))
	if err := seg.QueueUDPSegments(f, segSize); err != nil {
		s.ctr.SendErrors++
		s.drop(DropSendError)
		return fmt.Errorf("stack: sending %d UDP datagrams to %v in one frame: %w", n, dst, err)
	}
	s.txQueued = true
	s.ctr.FramesOut += uint64(n)
	s.ctr.IPv4Out += uint64(n)
	s.ctr.UDPOut += uint64(n)
	s.ctr.UDPTrains++
	return nil
}
