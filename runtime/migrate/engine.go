package migrate

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capygen/capygen/generated/migstate"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/internal/timerq"
	"github.com/capygen/capygen/runtime/genrt/machine"
	"github.com/capygen/capygen/runtime/internal/prefault"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// Errors. Returned errors wrap them with the input they refer to.
var (
	ErrConfig   = errors.New("migrate: invalid config")
	ErrNoConn   = errors.New("migrate: no such connection")
	ErrBusy     = errors.New("migrate: connection already migrating")
	ErrNotReady = errors.New("migrate: connection not established")
	ErrClosed   = errors.New("migrate: engine closed")
	ErrMoved    = errors.New("migrate: connection moved to another server")
	// ErrAborted is wrapped by Checkpoint's error when the migration
	// ended aborted: the connection is not served here any more (reset,
	// or dropped as the engine closed, which the error wraps as
	// ErrClosed), and the application lets it go.
	ErrAborted = errors.New("migrate: migration aborted")
	// ErrInterrupted is returned by the Write of a Session that
	// InterruptWrites, when a migration was asked for while the write
	// waited for send-buffer space: the application accounts for the bytes
	// written and calls Checkpoint.
	ErrInterrupted = errors.New("migrate: write interrupted for a migration")
	ErrRestore     = errors.New("migrate: restore failed")
	ErrAppState    = errors.New("migrate: application state refused")
	ErrNoRestorer  = errors.New("migrate: no listener or restorer for the port")
	// ErrNotMovable is wrapped by a Host's Freeze error when the
	// connection cannot be taken as it is now but goes on untouched (a
	// kernel socket half-closed under the freeze): the origin machine's
	// freeze_failed, which keeps it here.
	ErrNotMovable = errors.New("migrate: connection cannot move in its present state")
)

// Config configures an Engine. Zero values take the defaults named.
type Config struct {
	// Switch is the address TCPMig control datagrams (PREPARE_MIG,
	// HEARTBEAT_UPDATE) are sent to: the switch's control address. The switch
	// handles them by port role, whatever their destination, but the stack
	// must be able to resolve the address (the software switch answers ARP
	// for it). Required.
	Switch netip.Addr
	// HeartbeatPeriod is how often HEARTBEAT_UPDATE reports the workload
	// (10 ms); a negative period sends none.
	HeartbeatPeriod time.Duration
	// HeartbeatJitter spreads heartbeats by up to this much either way, so
	// servers do not report in lockstep (a tenth of the period).
	HeartbeatJitter time.Duration
	// Workload is the figure heartbeats report (the stack's connection
	// count, which the stack keeps in O(1)).
	Workload func() uint32
	// MaxRestoreBuffer caps the send and receive buffers a snapshot may
	// declare; a larger one is refused and its migration fails (4 MiB,
	// the stack's default tcp.Config.SendBufferMax: a busy connection's
	// buffers grow that far, so a smaller cap refuses busy connections).
	MaxRestoreBuffer int
	// HoldFrames and HoldBytes bound the client segments held for one
	// incoming connection while its state is in flight
	// (DefaultHoldFrames, 8 MiB); more are dropped and counted (TCP
	// retransmits them).
	HoldFrames, HoldBytes int
	// Tombstone is how long segments still arriving for a connection that
	// left are dropped silently instead of answered with RST (2 s).
	Tombstone time.Duration
	// Grace keeps a finished migration's machine to absorb duplicates and
	// retransmissions (1 s).
	Grace time.Duration
	// Clock is the monotonic clock of the phase timestamps, in nanoseconds
	// (CLOCK_MONOTONIC, which every process and namespace of a machine
	// share).
	Clock func() int64
	// OnRecord, if set, receives each migration's record once it ends, on
	// the stack's event loop: it must not block.
	OnRecord func(Record)
	// Seed drives the heartbeat jitter (0: random).
	Seed uint64
	// InjectDelay, for experiments, adds a busy wait of this length to
	// each outgoing migration's freeze, with the connection frozen and
	// the engine's lock held: extra host overhead, as the paper's Figure 1
	// injects it. Zero (the default) in production.
	InjectDelay time.Duration
	// InjectCharge, if set, is told of each injected wait once it is
	// over: capyrun serve charges it to its -workers, so that the overhead
	// costs the server's request capacity too, as migration work does on
	// a single-core server. It must not block: the engine's lock is held.
	InjectCharge func(time.Duration)
}

// DefaultHoldFrames is Config.HoldFrames' default.
const DefaultHoldFrames = 4096

func (c Config) withDefaults() (Config, error) {
	if !c.Switch.Is4() || c.Switch.IsUnspecified() {
		return c, fmt.Errorf("%w: Switch %v must be the switch's IPv4 control address", ErrConfig, c.Switch)
	}
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = 10 * time.Millisecond
	}
	if c.HeartbeatJitter == 0 && c.HeartbeatPeriod > 0 {
		c.HeartbeatJitter = c.HeartbeatPeriod / 10
	}
	if c.HeartbeatJitter < 0 || (c.HeartbeatPeriod > 0 && c.HeartbeatJitter >= c.HeartbeatPeriod) {
		return c, fmt.Errorf("%w: HeartbeatJitter %v must be in [0, HeartbeatPeriod %v)", ErrConfig, c.HeartbeatJitter, c.HeartbeatPeriod)
	}
	if c.MaxRestoreBuffer == 0 {
		c.MaxRestoreBuffer = DefaultMaxRestoreBuffer
	}
	if c.HoldFrames == 0 {
		c.HoldFrames = DefaultHoldFrames
	}
	if c.HoldBytes == 0 {
		c.HoldBytes = 8 << 20
	}
	if c.Tombstone == 0 {
		c.Tombstone = 2 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = time.Second
	}
	if c.InjectDelay < 0 || c.InjectDelay > time.Second {
		return c, fmt.Errorf("%w: InjectDelay %v: want 0 to 1s", ErrConfig, c.InjectDelay)
	}
	if c.MaxRestoreBuffer < 0 || c.HoldFrames < 0 || c.HoldBytes < 0 || c.Tombstone < 0 || c.Grace < 0 {
		return c, fmt.Errorf("%w: MaxRestoreBuffer, HoldFrames, HoldBytes, Tombstone and Grace must not be negative", ErrConfig)
	}
	if c.Clock == nil {
		c.Clock = Monotonic
	}
	return c, nil
}

// Stats are an engine's cumulative counters.
type Stats struct {
	Started, Moved, Stayed, Aborted uint64 // outgoing migrations by outcome
	// NotStarted counts the Starts refused (no such connection, not
	// established or ended, already migrating). They leave no record, and
	// a Session's Checkpoint does not return them: a driver that asks
	// often and sees few moves finds them here.
	NotStarted                      uint64
	Accepted, Abandoned             uint64 // incoming migrations by outcome
	RestoreFailures                 uint64 // states refused (over the cap, corrupt, no listener)
	Retries                         uint64 // resends on timeout, both roles
	Held, HeldOverflow, Replayed    uint64 // client segments held, dropped over the bound, replayed
	TombstoneDrops                  uint64 // segments of a departed connection dropped silently
	Ignored                         uint64 // messages the machines ignore (duplicates, stale)
	Unexpected                      uint64 // messages no machine expects (no such migration)
	BadMessages                     uint64 // datagrams on the TCPMig port that do not decode
	FragmentsIn, FragmentsOut       uint64
	HeartbeatsOut, HeartbeatReplies uint64
	MinWorkload                     uint32 // the switch's minimum, from the last heartbeat reply
	Releases, ReleaseAcks           uint64 // conn_closed sent for finished migrated-in connections, and echoed
	Reclaims                        uint64 // entries pointed back here after a late PREPARE_MIG_ACK or an abandon notice
	AbandonNotices                  uint64 // PREPARE_MIG_ACKs without LOAD sent to the origin of an abandoned incoming migration
	AbortNotices                    uint64 // conn_aborted sent to the server a reset connection had moved from
	TombstonesEnded                 uint64 // tombstones ended early by a conn_aborted
	// Comebacks counts outgoing migrations ended as moved without their
	// CONN_STATE_ACK: the connection came back here in a later one first.
	Comebacks uint64
}

// Engine runs TCPMig on one Host. Its methods are safe for concurrent use.
type Engine struct {
	host Host
	cfg  Config
	self netip.Addr

	mu       sync.Mutex
	closed   bool
	out      map[key]*outgoing
	outByID  map[tcp.ID]*outgoing
	in       map[key]*incoming
	holds    map[tcp.ID]*incoming // which incoming migration owns the host's hold of a connection
	tombs    map[tcp.ID]tomb
	refused  map[key]tcp.Time
	restored map[tcp.ID][]byte // app state of restored connections not yet claimed
	sessions map[tcp.ID]*Session
	hosted   map[tcp.ID]hosted
	// txTimer is the host's, when it transmits inside SendUDP.
	txTimer TransmitTimer
	// endsNotified: the host reports connections' ends (ConnGone), which
	// wait in gone, under goneMu (a leaf lock: the host holds its own).
	endsNotified    bool
	goneMu          sync.Mutex
	gone, goneSpare []tcp.ID
	goneDue         atomic.Bool
	epochs          map[tcp.ID]uint8 // the last epoch of each connection here
	timers          timerq.Queue[tcp.Time, timerEntry]
	hbNext          tcp.Time
	rng             *rand.Rand
	stats           Stats
	buf             []byte
	// msg holds the messages the engine sends: passed as a
	// tcpmig.Message, a message on the stack would be copied to the heap
	// at every send. e.mu is held while one is in use.
	msg struct {
		prepare    tcpmig.PrepareMig
		prepareAck tcpmig.PrepareMigAck
		state      tcpmig.ConnState
		stateAck   tcpmig.ConnStateAck
		closed     tcpmig.ConnClosed
		aborted    tcpmig.ConnAborted
		heartbeat  tcpmig.HeartbeatUpdate
	}
	records []Record // the last recordKeep records, a ring
	recNext int

	// The handlers allocate nothing (see spares.go): what a migration
	// needs is made ready here before it starts.
	spareOut *outgoing
	spareIn  *incoming
	// freeOut and freeIn are forgotten migrations, for refill to reuse.
	freeOut   []*outgoing
	freeIn    []*incoming
	hostSpent bool     // a host spare was taken: Reserve at the unlock
	spentBy   *Record  // the migration that took it, charged Reserve's time
	bufs      [][]byte // snapshot and state buffers, for reuse (takeBuf)
	bufBytes  int      // their capacity
	reasms    []*tcpmig.ConnStateReassembler
	// burst is sendState's work for sendBurst, which runs inside
	// host.Burst: a method value made once, not a closure per send.
	burst struct {
		o                  *outgoing
		start, total, sent int
		err                error
	}
	sendBurst func()
	// train is sendRange's fragments being encoded for a TrainSender.
	train []byte
	// start is Start's machine step for startStep, which runs inside
	// host.Burst; its effects are copied out after, so that no pointer to
	// Start's own escapes (an allocation per migration).
	start struct {
		o   *outgoing
		t0  int64
		tx0 time.Duration
		fx  effects
	}
	startStep func()
	// toBegin are the migrations Start made whose first step waits for
	// beginPosted (e.begin, made once) on the host's loop.
	toBegin     []*outgoing
	beginPosted func()
}

// DefaultMaxRestoreBuffer is Config.MaxRestoreBuffer's default.
const DefaultMaxRestoreBuffer = 4 << 20

// recordKeep bounds the records an engine keeps for Records.
const recordKeep = 4096

// key names one migration: the connection as the client knows it, and the
// epoch its origin picked, so that late messages of an earlier migration of
// the same connection are told apart.
type key struct {
	originIP   [4]byte
	originPort uint16
	clientIP   [4]byte
	clientPort uint16
	epoch      uint8
}

func (k key) String() string {
	return fmt.Sprintf("%v:%d-%v:%d#%d", netip.AddrFrom4(k.originIP), k.originPort, netip.AddrFrom4(k.clientIP), k.clientPort, k.epoch)
}

// conn is the key of the connection, whatever the migration.
func (k key) conn() key { k.epoch = 0; return k }

// idAt is the connection's ID at the server with address self: a server
// holds a connection, its own or migrated in, under its own address.
func (k key) idAt(self netip.Addr) tcp.ID {
	return tcp.ID{
		Local:  netip.AddrPortFrom(self, k.originPort),
		Remote: netip.AddrPortFrom(netip.AddrFrom4(k.clientIP), k.clientPort),
	}
}

func (k key) compare(o key) int {
	if c := bytes.Compare(k.originIP[:], o.originIP[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(k.clientIP[:], o.clientIP[:]); c != 0 {
		return c
	}
	if c := cmp.Compare(k.originPort, o.originPort); c != 0 {
		return c
	}
	if c := cmp.Compare(k.clientPort, o.clientPort); c != 0 {
		return c
	}
	return cmp.Compare(k.epoch, o.epoch)
}

func keyOf(h *tcpmig.TCPMigFields) key {
	return key{h.OriginIP, h.OriginPort, h.ClientIP, h.ClientPort, h.Epoch}
}

func (k key) fields() tcpmig.TCPMigFields {
	return tcpmig.TCPMigFields{OriginIP: k.originIP, OriginPort: k.originPort, ClientIP: k.clientIP, ClientPort: k.clientPort, Epoch: k.epoch}
}

// New attaches an engine to st: it claims the spec's UDP port and installs
// the stack's TCP interceptor and timer hook.
func New(st *stack.Stack, cfg Config) (*Engine, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: nil stack", ErrConfig)
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	// Targets refuse a snapshot whose buffers exceed MaxRestoreBuffer,
	// and the origin has already frozen the connection by then: its
	// migration ends in a reset. So this stack's connections must not be
	// able to grow past the cap (the same on every server).
	if t := st.Config().TCP; t.SendBufferMax > e.cfg.MaxRestoreBuffer || t.RecvBufferMax > e.cfg.MaxRestoreBuffer {
		return nil, fmt.Errorf("%w: the stack's TCP buffers grow to %d (send) and %d (receive) bytes, beyond MaxRestoreBuffer %d, so a target would refuse such a connection after its freeze and it would be reset; raise MaxRestoreBuffer or lower tcp.Config's SendBufferMax and RecvBufferMax",
			ErrConfig, t.SendBufferMax, t.RecvBufferMax, e.cfg.MaxRestoreBuffer)
	}
	return e, e.attach(newStackHost(st, &e.cfg))
}

// NewHost attaches an engine to another kind of host (runtime/kernel's).
func NewHost(h Host, cfg Config) (*Engine, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: nil host", ErrConfig)
	}
	e, err := newEngine(cfg)
	if err != nil {
		return nil, err
	}
	return e, e.attach(h)
}

func newEngine(cfg Config) (*Engine, error) {
	// A codec of one spec and machines of another would speak different
	// protocols.
	if tcpmig.Fingerprint != migstate.SpecFingerprint {
		return nil, fmt.Errorf("%w: generated/tcpmig (spec %s) and generated/migstate (spec %s) differ; run capygen generate",
			ErrConfig, tcpmig.Fingerprint, migstate.SpecFingerprint)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	e := &Engine{
		cfg:      cfg,
		out:      map[key]*outgoing{},
		outByID:  map[tcp.ID]*outgoing{},
		in:       map[key]*incoming{},
		holds:    map[tcp.ID]*incoming{},
		tombs:    map[tcp.ID]tomb{},
		refused:  map[key]tcp.Time{},
		restored: map[tcp.ID][]byte{},
		sessions: map[tcp.ID]*Session{},
		hosted:   map[tcp.ID]hosted{},
		epochs:   map[tcp.ID]uint8{},
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		buf:      make([]byte, 0, 2048),
	}
	e.sendBurst = e.sendFragments
	e.startStep = e.startMachine
	e.beginPosted = e.begin
	e.refill()
	return e, nil
}

func (e *Engine) attach(h Host) error {
	e.host, e.self = h, h.Addr()
	e.txTimer, _ = h.(TransmitTimer)
	if n, ok := h.(endNotifier); ok {
		e.endsNotified = n.notifiesEnds()
	}
	if _, ok := h.(TrainSender); ok {
		// A train's room, mapped now rather than by page faults in the
		// first queued migration's send.
		b := new([trainFragments * fragmentLen]byte)
		prefault.Touch(b)
		e.train = b[:0]
	}
	if r, ok := h.(Reserver); ok {
		r.Reserve()
	}
	if e.cfg.Workload == nil {
		e.cfg.Workload = func() uint32 { return uint32(h.NumConns()) }
	}
	if e.cfg.HeartbeatPeriod > 0 {
		e.hbNext = h.Now() // the first heartbeat makes this server a candidate at once
	}
	return h.Attach(e)
}

// Close detaches the engine from its stack. Migrations in flight are
// abandoned; their sessions see ErrClosed. One not yet frozen stayed; a
// frozen one cannot go on here (the switch steers its client to the
// target), and whether its state arrived is unknown: its copy here is
// dropped without a reset, which would end the connection at a target
// that has it, and it ends aborted.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	e.closed = true
	var wake []finished
	for _, o := range e.out {
		if o.m.State().IsFinal() {
			continue
		}
		out := Outcome{Result: ResultStayed, Err: ErrClosed}
		if o.frozen != nil {
			o.frozen.Release()
			o.frozen = nil
			out = Outcome{Result: ResultAborted, Err: fmt.Errorf("%w while the state of %v was in flight: its copy here is dropped", ErrClosed, o.k)}
		}
		wake = append(wake, finished{o, out})
	}
	e.mu.Unlock()
	e.host.Detach()
	for _, w := range wake {
		w.o.finish(w.out)
	}
	return nil
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stats
	c := e.host.Counters()
	st.Held, st.HeldOverflow, st.TombstoneDrops = c.Held, c.HeldOverflow, c.TombstoneDrops
	return st
}

// Records returns the records of the most recent migrations (up to 4096),
// oldest first.
func (e *Engine) Records() []Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.records) < recordKeep {
		return append([]Record(nil), e.records...)
	}
	out := make([]Record, 0, recordKeep)
	out = append(out, e.records[e.recNext:]...)
	return append(out, e.records[:e.recNext]...)
}

// Migrating reports whether id has an outgoing migration in flight.
func (e *Engine) Migrating(id tcp.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	o := e.outByID[id]
	return o != nil && !o.m.State().IsFinal()
}

// record keeps rec and hands it to OnRecord; e.mu is held, so OnRecord
// runs after the caller unlocks (see effects).
func (e *Engine) keepRecord(rec Record) {
	if len(e.records) < recordKeep {
		e.records = append(e.records, rec)
	} else {
		e.records[e.recNext] = rec
		e.recNext = (e.recNext + 1) % recordKeep
	}
}

// effects are what a locked handler leaves for after the unlock: calls that
// re-enter the engine (replaying held frames runs the interceptor) or user
// code (callbacks, restorers).
type effects struct {
	// ended are the records of migrations that ended in this call. They
	// are copied out at the unlock, not when the machine ends, so the
	// handler's own Work, counted after the machine's step, is in them.
	ended    few[*Record]
	records  few[Record]
	finished few[finished]
	restore  func()
}

// few is a short list kept inline: a call's effects are one or two items,
// and a slice would be an allocation inside the handlers that Work times.
type few[T any] struct {
	n    int
	a    [2]T
	more []T
}

func (f *few[T]) add(x T) {
	if f.n < len(f.a) {
		f.a[f.n] = x
	} else {
		f.more = append(f.more, x)
	}
	f.n++
}

func (f *few[T]) at(i int) *T {
	if i < len(f.a) {
		return &f.a[i]
	}
	return &f.more[i-len(f.a)]
}

type finished struct {
	o   *outgoing
	out Outcome
}

// unlockAndRun files the records of the migrations that ended, releases
// e.mu and carries out the effects.
func (e *Engine) unlockAndRun(fx *effects) {
	e.refill() // first: a record it charges is filed below with the charge
	for i := range fx.ended.n {
		r := *fx.ended.at(i)
		e.keepRecord(*r)
		fx.records.add(*r)
	}
	for i := range fx.finished.n {
		f := fx.finished.at(i)
		f.out.Record = f.o.rec
	}
	e.mu.Unlock()
	e.run(fx)
}

func (e *Engine) run(fx *effects) {
	for i := range fx.finished.n {
		f := fx.finished.at(i)
		f.o.finish(f.out)
	}
	if fx.restore != nil {
		fx.restore()
	}
	if e.cfg.OnRecord != nil {
		for i := range fx.records.n {
			e.cfg.OnRecord(*fx.records.at(i))
		}
	}
}

// Datagram takes a datagram that arrived on the TCPMig port from src; the
// host calls it.
func (e *Engine) Datagram(src netip.Addr, payload []byte) {
	h := tcpmig.TCPMig(payload)
	var fx effects
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if err := h.Validate(); err != nil {
		e.stats.BadMessages++
		e.mu.Unlock()
		return
	}
	now := e.host.Now()
	switch h.Stage() {
	case tcpmig.StagePrepareMig:
		e.onPrepare(now, src, payload, &fx)
	case tcpmig.StageConnState:
		e.onConnState(now, src, payload, &fx)
	case tcpmig.StageRejected:
		// The switch sends REJECTED to an origin (no target, or the
		// directory is full) and to a losing target (its ACK was stale:
		// another server holds the connection). A target's comes from the
		// server its PREPARE came from.
		if !e.onTargetRejected(now, src, payload, &fx) {
			e.onOriginMessage(now, src, h.Stage(), payload, &fx)
		}
	case tcpmig.StagePrepareMigAck, tcpmig.StageConnStateAck:
		e.onOriginMessage(now, src, h.Stage(), payload, &fx)
	case tcpmig.StageHeartbeatResponse:
		var m tcpmig.HeartbeatResponse
		if m.Decode(payload) != nil {
			e.stats.BadMessages++
			break
		}
		e.stats.HeartbeatReplies++
		e.stats.MinWorkload = m.Workload
	default:
		if !e.onOtherStage(now, h.Stage(), payload) {
			e.stats.Unexpected++
		}
	}
	e.unlockAndRun(&fx)
}

// send encodes m and sends it to dst on the TCPMig port. e.mu is held.
// transmitted is the host's transmit time so far (TransmitTimer); 0 for a
// host whose datagrams leave after the handlers. e.mu is held.
func (e *Engine) transmitted() time.Duration {
	if e.txTimer == nil {
		return 0
	}
	return e.txTimer.TransmitTime()
}

// workSince is the migration work since t0 (Config.Clock) and tx0
// (transmitted): the time less the host's transmits in it, which on both
// paths are not the migration's work but the link's (on a veth, the
// peer's receive path too). e.mu is held.
func (e *Engine) workSince(t0 int64, tx0 time.Duration) time.Duration {
	return time.Duration(e.cfg.Clock()-t0) - (e.transmitted() - tx0)
}

func (e *Engine) send(dst netip.Addr, m tcpmig.Message) error {
	n := m.EncodedLen()
	if cap(e.buf) < n {
		e.buf = make([]byte, n)
	}
	b := e.buf[:n]
	if _, err := m.Encode(b); err != nil {
		return err
	}
	return e.host.SendUDP(dst, b)
}

// tomb is a connection that left by a migration of the given epoch; its
// segments are dropped until until. The epoch tells which conn_aborted
// may end it early (abort.go).
type tomb struct {
	until tcp.Time
	epoch uint8
}

// tomb drops the segments of a connection that left by the migration of
// the given epoch, until until. e.mu is held.
func (e *Engine) tomb(id tcp.ID, until tcp.Time, epoch uint8) {
	e.tombs[id] = tomb{until: until, epoch: epoch}
	e.host.Tomb(id, until)
	e.schedule(timerEntry{at: until, kind: timerTomb, id: id})
}

func (e *Engine) untomb(id tcp.ID) {
	if _, ok := e.tombs[id]; ok {
		delete(e.tombs, id)
		e.host.Untomb(id)
	}
}

// NextDeadline is the timer hook's (the host calls it): the earliest machine timer,
// heartbeat or expiry.
func (e *Engine) NextDeadline() (tcp.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, false
	}
	if e.goneDue.Load() {
		// Due at once: 0 is before any now the host passes to Advance.
		// (The host's Now was not: read later than the now of the
		// Advance it was compared with, it was never due, and the
		// stack's loop spun without advancing the engine.)
		return 0, true
	}
	at, ok := e.nextTimer()
	if e.cfg.HeartbeatPeriod > 0 && (!ok || e.hbNext < at) {
		at, ok = e.hbNext, true
	}
	return at, ok
}

// Advance is the timer hook's (the host calls it): it fires due machine timers, sends
// heartbeats and forgets expired state.
func (e *Engine) Advance(now tcp.Time) {
	var fx effects
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if e.cfg.HeartbeatPeriod > 0 && now >= e.hbNext {
		e.heartbeat()
		next := e.cfg.HeartbeatPeriod
		if j := e.cfg.HeartbeatJitter; j > 0 {
			next += time.Duration(e.rng.Int64N(int64(2*j)+1)) - j
		}
		e.hbNext = now + next
	}
	e.checkGone(now)
	e.fireTimers(now, &fx)
	e.unlockAndRun(&fx)
}

func (e *Engine) heartbeat() {
	m := &e.msg.heartbeat
	*m = tcpmig.HeartbeatUpdate{Workload: e.cfg.Workload()}
	m.OriginIP = e.self.As4()
	if e.send(e.cfg.Switch, m) == nil {
		e.stats.HeartbeatsOut++
	}
}

// admit counts what a machine's step did and says whether its actions are
// to run: an unexpected event (err) or an ignored one stops here. It stops
// the timer when the step left a timed state. Both machines go through it,
// so the statistics mean the same on either side. e.mu is held.
func admit[S, E, A machine.Enum](st *Stats, step *machine.Step[S, E, A], err error, rec *Record, timerOn *bool) bool {
	if err != nil {
		st.Unexpected++
		return false
	}
	if step.Ignored {
		st.Ignored++
		return false
	}
	if step.Retry > 0 {
		st.Retries++
		rec.Retries++
	}
	if step.StopTimer {
		*timerOn = false
	}
	return true
}
