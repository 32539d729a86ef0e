package migrate

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/internal/prefault"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// stackHost is the Host of a runtime/stack Stack: connections are
// tcp.Conns, frozen by detaching them and serialized as tcp snapshots;
// held segments are copies of frames the stack's TCP interceptor takes.
type stackHost struct {
	st  *stack.Stack
	cfg *Config

	mu        sync.Mutex
	holds     map[tcp.ID]*heldFrames
	tombs     map[tcp.ID]tcp.Time
	restorers map[uint16]Restorer
	counters  HostCounters
	// intercepting counts holds and tombstones, so that the interceptor,
	// which sees every TCP segment, takes the lock only when one exists.
	intercepting atomic.Int32

	// Made beforehand (Reserve) or kept for reuse, so that the engine's
	// handlers allocate nothing (see spares.go). h.mu guards them.
	heldFree   []*heldFrames
	frozenFree []*stackFrozen
	// spareTCs are restores' tcp.Conns: made beforehand, or left by
	// connections that moved away (at most keptConns).
	spareTCs []*tcp.Conn
	// deliveries are kept for reuse: each hands one restored connection
	// to its restorer through a method value made once.
	deliveries []*delivery
	// recycle are connections that moved away, whose queue arrays Reserve
	// gives to the stack's pool; recycleSpare is the list it emptied last.
	recycle, recycleSpare []*tcp.Conn
}

// delivery is one restored connection on its way to its restorer: Restore
// returns its run, which the engine calls after its unlock.
type delivery struct {
	h   *stackHost
	r   Restorer
	c   *stack.Conn
	app []byte
	run func()
}

func (d *delivery) deliver() {
	r, c, app := d.r, d.c, d.app
	d.r, d.c, d.app = nil, nil, nil
	d.h.mu.Lock()
	if len(d.h.deliveries) < 4 {
		d.h.deliveries = append(d.h.deliveries, d)
	}
	d.h.mu.Unlock()
	r(c, app)
}

type heldFrames struct {
	frames   [][]byte
	bytes    int
	overflow int
}

func newStackHost(st *stack.Stack, cfg *Config) *stackHost {
	return &stackHost{st: st, cfg: cfg, holds: map[tcp.ID]*heldFrames{}, tombs: map[tcp.ID]tcp.Time{}, restorers: map[uint16]Restorer{}}
}

// Reserve implements Reserver: one of each object a migration takes.
func (h *stackHost) Reserve() {
	h.mu.Lock()
	if len(h.heldFree) == 0 {
		h.heldFree = append(h.heldFree, new(heldFrames))
	}
	if len(h.frozenFree) == 0 {
		h.frozenFree = append(h.frozenFree, &stackFrozen{h: h})
	}
	if len(h.deliveries) == 0 {
		d := &delivery{h: h}
		d.run = d.deliver
		h.deliveries = append(h.deliveries, d)
	}
	recycle := h.recycle
	h.recycle = h.recycleSpare[:0]
	h.recycleSpare = nil
	h.mu.Unlock()
	for i, tc := range recycle {
		h.st.RecycleDetached(tc)
		recycle[i] = nil
		// Nothing refers to tc now (DetachConn's handle let go of it, the
		// Frozen was done with it): the next restore's spare, so that
		// ping-ponging connections allocate none.
		h.keepSpare(tc)
	}
	h.mu.Lock()
	if h.recycleSpare == nil {
		h.recycleSpare = recycle[:0]
	}
	if len(h.spareTCs) == 0 {
		tc := new(tcp.Conn)
		prefault.Touch(tc)
		h.spareTCs = append(h.spareTCs, tc)
	}
	h.mu.Unlock()
	h.st.ReserveConn()
}

func (h *stackHost) Addr() netip.Addr { return h.st.Addr() }
func (h *stackHost) Now() tcp.Time    { return h.st.Now() }
func (h *stackHost) NumConns() int    { return h.st.NumConns() }
func (h *stackHost) Burst(fn func())  { h.st.Burst(fn) }
func (h *stackHost) Post(fn func())   { h.st.Post(fn) }

// notifiesEnds: Attach installs the engine as the stack's timer hook,
// which stack.ConnGoneHook tells of every connection that leaves.
func (h *stackHost) notifiesEnds() bool { return true }

var _ stack.ConnGoneHook = (*Engine)(nil)

func (h *stackHost) Attach(e *Engine) error {
	if err := h.st.HandleUDP(tcpmig.UDPPort, func(src, _ netip.AddrPort, payload []byte) { e.Datagram(src.Addr(), payload) }); err != nil {
		return fmt.Errorf("migrate: claiming TCPMig's UDP port %d: %w", tcpmig.UDPPort, err)
	}
	h.st.SetTCPInterceptor(h.intercept)
	h.st.SetTimerHook(e)
	return nil
}

func (h *stackHost) Detach() {
	h.st.HandleUDP(tcpmig.UDPPort, nil) //nolint:errcheck // releasing never fails
	h.st.SetTCPInterceptor(nil)
	h.st.SetTimerHook(nil)
}

func (h *stackHost) SendUDP(dst netip.Addr, payload []byte) error {
	port := tcpmig.UDPPort
	return h.st.SendUDP(netip.AddrPortFrom(h.st.Addr(), port), netip.AddrPortFrom(dst, port), payload)
}

func (h *stackHost) SendUDPTrain(dst netip.Addr, payloads []byte, segSize int) error {
	port := tcpmig.UDPPort
	return h.st.SendUDPSegments(netip.AddrPortFrom(h.st.Addr(), port), netip.AddrPortFrom(dst, port), payloads, segSize)
}

func (h *stackHost) Lookup(id tcp.ID) (ConnInfo, bool) {
	c := h.st.LookupConn(id)
	if c == nil {
		return ConnInfo{}, false
	}
	return ConnInfo{Established: c.Established(), Done: c.Done(), Origin: c.Origin()}, true
}

// stackFrozen is a connection detached from its stack.
type stackFrozen struct {
	h  *stackHost
	tc *tcp.Conn
}

func (h *stackHost) Freeze(id tcp.ID, _ func(string, time.Duration)) (Frozen, error) {
	tc, err := h.st.DetachConn(id)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	f := pop(&h.frozenFree)
	if f == nil {
		f = &stackFrozen{h: h}
	}
	h.mu.Unlock()
	f.tc = tc
	return f, nil
}

// done returns f, whose migration ended, for reuse: the engine drops its
// Frozen at Release and Abort.
func (f *stackFrozen) done() {
	f.tc = nil
	f.h.mu.Lock()
	if len(f.h.frozenFree) < 4 {
		f.h.frozenFree = append(f.h.frozenFree, f)
	}
	f.h.mu.Unlock()
}

func (f *stackFrozen) Serialize(dst, app []byte) ([]byte, error) {
	f.tc.SetAppState(app)
	// Now, not the freeze's time: the timer's time left is what the
	// target gets, so time spent frozen here counts against it.
	return f.tc.AppendSnapshot(dst, f.h.st.Now()), nil
}

func (f *stackFrozen) SerializedSize(app []byte) int { return f.tc.SnapshotSize(app) }

func (f *stackFrozen) Release() {
	if f.tc != nil {
		// The target has the state: the queues' arrays serve the next
		// connection that arrives here with data queued. Recycled at the
		// next Reserve, after the handler (the stack's lock, the pool's).
		f.h.mu.Lock()
		f.h.recycle = append(f.h.recycle, f.tc)
		f.h.mu.Unlock()
		f.done()
	}
}

func (f *stackFrozen) Abort(probeLater time.Duration) {
	if f.tc == nil {
		return
	}
	// The stack no longer knows the connection and answers the client's
	// segments (the engine ended their tombstone) with a RST the client
	// accepts; the probe AbortDetached sends provokes one.
	f.h.st.AbortDetached(f.tc, probeLater)
	f.done()
}

func (h *stackHost) Restore(now tcp.Time, state []byte, self tcp.ID, origin netip.AddrPort, maxBuffer int, _ func(string, time.Duration)) ([]byte, func(), error) {
	h.mu.Lock()
	spare := pop(&h.spareTCs)
	h.mu.Unlock()
	tc, err := tcp.RestoreInto(spare, h.st.Config().TCP, state, now, maxBuffer)
	if err != nil {
		h.keepSpare(spare) // a refused snapshot leaves it unused
		return nil, nil, err
	}
	if want := (tcp.ID{Local: origin, Remote: self.Remote}); tc.ID() != want {
		return nil, nil, fmt.Errorf("the state is of %v-%v", tc.ID().Local, tc.ID().Remote)
	}
	app := tc.AppState()
	h.mu.Lock()
	r := h.restorers[self.Local.Port()]
	h.mu.Unlock()
	if r != nil {
		c, err := h.st.AttachConn(tc)
		if err != nil {
			return nil, nil, err
		}
		h.mu.Lock()
		d := pop(&h.deliveries)
		if d == nil {
			d = &delivery{h: h}
			d.run = d.deliver
		}
		h.mu.Unlock()
		d.r, d.c, d.app = r, c, app
		return app, d.run, nil
	}
	if err := h.st.AdoptConn(tc); err != nil {
		return nil, nil, fmt.Errorf("%w: %w (listen on port %d, or register a restorer with HandleRestored)", ErrNoRestorer, err, self.Local.Port())
	}
	return app, nil, nil
}

// keptConns bounds the spare tcp.Conns a host keeps (about 2 KiB each):
// a server that sends connections away as fast as it takes them in
// reuses every one.
const keptConns = 4

// keepSpare keeps tc, which nothing refers to, for the next Restore.
func (h *stackHost) keepSpare(tc *tcp.Conn) {
	if tc == nil {
		return
	}
	h.mu.Lock()
	if len(h.spareTCs) < keptConns {
		h.spareTCs = append(h.spareTCs, tc)
	}
	h.mu.Unlock()
}

func (h *stackHost) Hold(id tcp.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holds[id] == nil {
		hf := pop(&h.heldFree)
		if hf == nil {
			hf = new(heldFrames)
		}
		h.holds[id] = hf
		h.intercepting.Add(1)
	}
}

// unhold ends id's hold and returns its frames (nil: none). h.mu is held.
func (h *stackHost) unhold(id tcp.ID) *heldFrames {
	hf := h.holds[id]
	if hf == nil {
		return nil
	}
	delete(h.holds, id)
	h.intercepting.Add(-1)
	return hf
}

func (h *stackHost) Replay(id tcp.ID) (int, int) {
	h.mu.Lock()
	hf := h.unhold(id)
	h.mu.Unlock()
	if hf == nil {
		return 0, 0
	}
	// Unlocked: Input runs the interceptor, which takes h.mu.
	for _, f := range hf.frames {
		h.st.Input(h.st.Now(), f)
	}
	held, over := len(hf.frames), hf.overflow
	h.mu.Lock()
	h.freeHeld(hf)
	h.mu.Unlock()
	return held, over
}

func (h *stackHost) Discard(id tcp.ID) (int, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hf := h.unhold(id)
	if hf == nil {
		return 0, 0
	}
	held, over := len(hf.frames), hf.overflow
	h.freeHeld(hf)
	return held, over
}

// freeHeld keeps hf, emptied, for the next Hold. h.mu is held.
func (h *stackHost) freeHeld(hf *heldFrames) {
	if len(h.heldFree) >= 4 {
		return
	}
	clear(hf.frames) // the frames' copies go to the collector
	*hf = heldFrames{frames: hf.frames[:0]}
	h.heldFree = append(h.heldFree, hf)
}

func (h *stackHost) Tomb(id tcp.ID, until tcp.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.tombs[id]; !ok {
		h.intercepting.Add(1)
	}
	h.tombs[id] = until
}

func (h *stackHost) Untomb(id tcp.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.tombs[id]; ok {
		delete(h.tombs, id)
		h.intercepting.Add(-1)
	}
}

func (h *stackHost) Counters() HostCounters {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counters
}

// intercept is the stack's TCP interceptor: it holds the client's segments
// of connections being migrated in and silently drops those of connections
// that left.
func (h *stackHost) intercept(now tcp.Time, id tcp.ID, seg *tcp.Segment, raw []byte) bool {
	if h.intercepting.Load() == 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hf := h.holds[id]; hf != nil {
		if len(hf.frames) >= h.cfg.HoldFrames || hf.bytes+len(raw) > h.cfg.HoldBytes {
			hf.overflow++
			h.counters.HeldOverflow++
			return true
		}
		hf.frames = append(hf.frames, append([]byte(nil), raw...))
		hf.bytes += len(raw)
		h.counters.Held++
		return true
	}
	if until, ok := h.tombs[id]; ok {
		if now >= until {
			delete(h.tombs, id)
			h.intercepting.Add(-1)
			return false
		}
		if seg.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN {
			return false // a new connection on the same address pair
		}
		h.counters.TombstoneDrops++
		return true
	}
	return false
}

// Restorer takes a connection migrated in, with the application state that
// came with it. It runs on the stack's event loop and must not block: start
// a goroutine to serve the connection.
type Restorer func(c *stack.Conn, appState []byte)

// HandleRestored makes r take the connections migrated in on port, instead
// of the port's listener; a nil r removes it. Only an engine on a
// runtime/stack Stack (New) has restorers: another host hands connections
// out its own way, and gets an error.
func (e *Engine) HandleRestored(port uint16, r Restorer) error {
	h, ok := e.host.(*stackHost)
	if !ok {
		return fmt.Errorf("%w: HandleRestored needs an engine made by New on a runtime/stack Stack; this one runs on %T", ErrConfig, e.host)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r == nil {
		delete(h.restorers, port)
		return nil
	}
	h.restorers[port] = r
	return nil
}
