package migrate

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/capygen/capygen/generated/migstate"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/tcp"
)

// Result is how an outgoing migration ended.
type Result uint8

const (
	// ResultMoved: the target acknowledged the state and serves the
	// connection; this server's copy is gone.
	ResultMoved Result = iota + 1
	// ResultStayed: no target took the connection (REJECTED, or no answer
	// to PREPARE_MIG); it goes on here, untouched.
	ResultStayed
	// ResultAborted: the state was lost in flight; the connection was
	// reset (RST) so the client never hangs and never hears two servers.
	// (Or the engine closed with the state in flight: this server's copy
	// was dropped silently, see Engine.Close.) Either way it is not
	// served here any more.
	ResultAborted
)

func (r Result) String() string {
	switch r {
	case ResultMoved:
		return "moved"
	case ResultStayed:
		return "stayed"
	case ResultAborted:
		return "aborted"
	}
	return "unknown"
}

// Outcome is what Start's done function receives.
type Outcome struct {
	Result Result
	// Target is the server that took the connection (ResultMoved), or the
	// one that acknowledged the PREPARE before the state was lost.
	Target netip.Addr
	// Err says why a migration did not move the connection, if known.
	Err error
	// Record is the migration's timing on this server.
	Record Record
}

// outgoing is one connection being moved out: the origin machine and what
// its actions need.
type outgoing struct {
	k      key
	id     tcp.ID // as this stack files it
	m      migstate.Origin
	app    func() ([]byte, error)
	done   func(Outcome)
	target netip.Addr
	ackBy  netip.Addr // the sender of the latest PREPARE_MIG_ACK
	frozen Frozen     // from the freeze to the release or abort
	snap   []byte
	sends  int   // CONN_STATE sends so far
	lost   error // the freeze could not take the state
	kept   bool  // the freeze found the connection not movable, and left it alone
	// stayErr says why, for the outcome: the host's ErrNotMovable, or the
	// application's state that could not be taken.
	stayErr error
	result  Result

	timerOn  bool
	timerAt  tcp.Time
	forgetAt tcp.Time
	rec      Record
	steps    func(string, time.Duration) // rec.step, made with the spare
	once     sync.Once
}

func (o *outgoing) deadline() tcp.Time {
	if o.timerOn {
		return o.timerAt
	}
	return o.forgetAt
}

// finish hands the outcome to done, once, without the engine's lock.
func (o *outgoing) finish(out Outcome) {
	o.once.Do(func() {
		if o.done != nil {
			o.done(out)
		}
	})
}

// Start begins moving the connection id (the ID its Conn reports) to
// the least-loaded server. app is called once, at the freeze, for the
// application's state, which travels with the TCP state; the caller keeps
// the application away from the connection from Start until done is called
// (Migratory TCP's quiescent point). done receives the outcome exactly once,
// without the engine's lock; it must not block. Start returns an error,
// and calls nothing, when the connection cannot be moved now. PREPARE_MIG
// leaves after Start returns, from the host's event loop (Host.Post).
func (e *Engine) Start(id tcp.ID, app func() ([]byte, error), done func(Outcome)) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	refuse := func(err error) error {
		e.stats.NotStarted++
		e.mu.Unlock()
		return err
	}
	e.sweepEpochs()
	c, ok := e.host.Lookup(id)
	if !ok {
		return refuse(fmt.Errorf("%w: %v-%v is not a connection of this server", ErrNoConn, id.Local, id.Remote))
	}
	if !c.Established || c.Done {
		return refuse(fmt.Errorf("%w: %v-%v has not finished its handshake, or has ended", ErrNotReady, id.Local, id.Remote))
	}
	origin := c.Origin
	t0, tx0 := e.cfg.Clock(), e.transmitted()
	if o := e.outByID[id]; o != nil && !o.m.State().IsFinal() {
		return refuse(fmt.Errorf("%w: %v", ErrBusy, o.k))
	}
	// Epochs follow each other per connection (the target remembers the
	// one that brought a connection in), so a connection's next migration
	// never reuses the last one's; the first is drawn at random.
	epoch, ok := e.epochs[id]
	if ok {
		epoch = epoch%255 + 1
	} else {
		epoch = uint8(1 + e.rng.IntN(255))
	}
	e.epochs[id] = epoch
	k := key{origin.Addr().As4(), origin.Port(), id.Remote.Addr().As4(), id.Remote.Port(), epoch}
	o := e.newOutgoing()
	o.k, o.id, o.m, o.app, o.done = k, id, migstate.NewOrigin(), app, done
	o.rec = newRecord(RoleOrigin, k, t0)
	e.out[k] = o
	e.outByID[id] = o
	e.stats.Started++
	o.rec.Work += e.workSince(t0, tx0)
	first := len(e.toBegin) == 0 // else a begin is posted and will see o
	e.toBegin = append(e.toBegin, o)
	e.refill()
	e.mu.Unlock()
	if first {
		e.host.Post(e.beginPosted)
	}
	return nil
}

// begin takes Start's steps of the origin machine. Start posts it to the
// host's event loop: from the caller's goroutine the step's calls into
// the host (a datagram's send) took the stack's lock while the loop kept
// taking it, and its Work was mostly the wait. The time between Start and
// begin is the loop's queue, not Work. One call takes every migration
// started since the last. A connection that ended meanwhile stays, and
// nothing is sent for it.
func (e *Engine) begin() {
	for {
		e.mu.Lock()
		if e.closed || len(e.toBegin) == 0 {
			clear(e.toBegin)
			e.toBegin = e.toBegin[:0]
			e.mu.Unlock() // if closed, Close has told done
			return
		}
		o := e.toBegin[0]
		n := copy(e.toBegin, e.toBegin[1:]) // FIFO, keeping the array
		e.toBegin[n] = nil
		e.toBegin = e.toBegin[:n]
		if c, ok := e.host.Lookup(o.id); !ok || c.Done {
			var fx effects
			e.endUnbegun(o, fmt.Errorf("%w: %v-%v ended before its migration began", ErrNotReady, o.id.Local, o.id.Remote), &fx)
			e.unlockAndRun(&fx)
			continue
		}
		e.start.o, e.start.t0, e.start.tx0 = o, e.cfg.Clock(), e.transmitted()
		e.host.Burst(e.startStep)
		fx := e.start.fx
		e.start.fx, e.start.o = effects{}, nil
		e.unlockAndRun(&fx)
	}
}

// endUnbegun ends a migration whose machine never started: it stays, and
// its entry and record go as a final state's would. e.mu is held.
func (e *Engine) endUnbegun(o *outgoing, err error, fx *effects) {
	if e.out[o.k] == o {
		delete(e.out, o.k)
	}
	if e.outByID[o.id] == o {
		delete(e.outByID, o.id)
	}
	e.stats.Stayed++
	o.result = ResultStayed
	o.rec.Result, o.rec.Err = o.result.String(), err.Error()
	fx.ended.add(&o.rec)
	fx.finished.add(finished{o, Outcome{Result: ResultStayed, Err: err, Record: o.rec}})
}

// startMachine is Start's step of the origin machine, run inside
// host.Burst: the PREPARE_MIG it sends leaves at the burst's end, after
// its Work is counted, as the sends of the handlers on the host's event
// loop leave at the end of its drain. On the userspace stack that end is
// the link's kick (in the testbed, AF_XDP's copy into the kernel and the
// veth's transmit, a NIC's work); the kernel host sends inside fn, and
// its send system calls, which it times (TransmitTimer), are left out of
// Work the same way. e.mu is held.
func (e *Engine) startMachine() {
	o := e.start.o
	e.originEvent(e.host.Now(), o, migstate.OriginEventStart, &e.start.fx)
	o.rec.Work += e.workSince(e.start.t0, e.start.tx0)
}

// onOriginMessage feeds PREPARE_MIG_ACK, REJECTED and CONN_STATE_ACK to
// their outgoing migration. e.mu is held.
func (e *Engine) onOriginMessage(now tcp.Time, src netip.Addr, stage tcpmig.Stage, payload []byte, fx *effects) {
	t0, tx0 := e.cfg.Clock(), e.transmitted()
	var f tcpmig.TCPMigFields
	var err error
	var unloaded bool // an abandoned target's notice, never an acceptance
	switch stage {
	case tcpmig.StagePrepareMigAck:
		var m tcpmig.PrepareMigAck
		err, f = m.Decode(payload), m.TCPMigFields
		unloaded = err == nil && !m.Load
	case tcpmig.StageRejected:
		var m tcpmig.Rejected
		err, f = m.Decode(payload), m.TCPMigFields
	case tcpmig.StageConnStateAck:
		var m tcpmig.ConnStateAck
		err, f = m.Decode(payload), m.TCPMigFields
	}
	if err != nil {
		e.stats.BadMessages++
		return
	}
	o := e.out[keyOf(&f)]
	ev, ok := migstate.OriginEventForStage(stage)
	if o == nil && stage == tcpmig.StagePrepareMigAck {
		e.reclaimStale(now, src, keyOf(&f))
		return
	}
	if o == nil || !ok {
		e.stats.Unexpected++
		return
	}
	if unloaded && o.m.State() == migstate.OriginStatePreparing {
		// A target's acceptance carries LOAD; a notice is sent when a
		// hold that outlasts this state ends, so it is no answer here.
		e.stats.Ignored++
		return
	}
	if ev == migstate.OriginEventPrepareMigAck {
		o.ackBy = src
		if o.m.State() == migstate.OriginStatePreparing {
			o.target = src // the server that will hold the client's segments
		}
	}
	e.originEvent(now, o, ev, fx)
	o.rec.Work += e.workSince(t0, tx0)
}

// originEvent applies ev to o's machine and carries out the step. e.mu is
// held.
func (e *Engine) originEvent(now tcp.Time, o *outgoing, ev migstate.OriginEvent, fx *effects) {
	step, err := o.m.Handle(ev)
	if !admit(&e.stats, &step, err, &o.rec, &o.timerOn) {
		return
	}
	for _, a := range step.Actions() {
		e.originAction(now, o, a)
	}
	if step.ArmTimer {
		o.timerOn, o.timerAt = true, now+step.TimerAfter
		e.schedule(timerEntry{at: o.timerAt, kind: timerOut, out: o})
	}
	if step.To.IsFinal() && !step.From.IsFinal() {
		o.forgetAt = now + e.cfg.Grace
		e.schedule(timerEntry{at: o.forgetAt, kind: timerOut, out: o})
		switch o.result {
		case ResultMoved:
			e.stats.Moved++
		case ResultAborted:
			e.stats.Aborted++
		default:
			o.result = ResultStayed
			e.stats.Stayed++
		}
		o.rec.Result = o.result.String()
		o.rec.Peer = o.target
		out := Outcome{Result: o.result, Target: o.target, Err: o.lost, Record: o.rec}
		if out.Err == nil && o.result == ResultStayed {
			out.Err = o.stayErr
		}
		if o.result != ResultMoved && out.Err == nil {
			out.Err = endReason(o, step)
		}
		if out.Err != nil {
			o.rec.Err = out.Err.Error()
			out.Record.Err = o.rec.Err
		}
		fx.ended.add(&o.rec)
		fx.finished.add(finished{o, out})
		e.putBuf(o.snap) // no resend follows a final state
		o.snap = nil
	}
	if o.kept {
		// The freeze left the connection as it was: the machine's
		// freeze_failed keeps it here and takes the entry back.
		o.kept = false
		e.originEvent(now, o, migstate.OriginEventFreezeFailed, fx)
	}
}

// endReason says why o's migration ended without moving the connection,
// for its outcome and record: in words for the two common ends, else as
// the machine's step.
func endReason(o *outgoing, step migstate.OriginStep) error {
	switch {
	case step.To == migstate.OriginStateRejected && step.Event == migstate.OriginEventRejected:
		return fmt.Errorf("migrate: %v: REJECTED: no server is less loaded than this one, or the switch's directory has no room for the connection", o.k)
	case step.From == migstate.OriginStatePreparing && step.Event == migstate.OriginEventTimeout:
		return fmt.Errorf("migrate: %v: no PREPARE_MIG_ACK after %d tries; the connection stays here", o.k, o.rec.Retries+1)
	}
	return fmt.Errorf("migrate: %v ended in %v after %v", o.k, step.To, step.Event)
}

// originAction carries out one action of the origin machine. e.mu is held.
func (e *Engine) originAction(now tcp.Time, o *outgoing, a migstate.OriginAction) {
	switch a {
	case migstate.OriginActionSendPrepareMig:
		m := &e.msg.prepare
		*m = tcpmig.PrepareMig{TCPMigFields: o.k.fields()}
		e.send(e.cfg.Switch, m) //nolint:errcheck // the machine's timer resends
		o.rec.mark(PhasePrepareSent, e.cfg.Clock())
	case migstate.OriginActionFreezeConnection:
		o.rec.mark(PhaseAckReceived, e.cfg.Clock())
		e.freeze(now, o)
	case migstate.OriginActionSendConnState:
		e.sendState(o)
	case migstate.OriginActionReleaseConnection:
		o.rec.mark(PhaseStateAcked, e.cfg.Clock())
		o.result = ResultMoved
		if o.frozen != nil {
			o.frozen.Release()
			e.spend(&o.rec) // Reserve, at the unlock, recycles what Release left
		}
		o.frozen = nil
	case migstate.OriginActionResumeConnection:
		o.result = ResultStayed
	case migstate.OriginActionReclaimEntry:
		e.reclaim(now, o)
	case migstate.OriginActionAbortConnection:
		o.result = ResultAborted
		if o.frozen != nil {
			// The client's segments must reach the host again, which no
			// longer knows the connection and answers them with RST.
			e.untomb(o.id)
			e.noticeAbort(now, o)
			o.frozen.Abort(e.probeLater(o))
			o.frozen = nil
		}
		if o.lost == nil {
			o.lost = fmt.Errorf("migrate: %v: no CONN_STATE_ACK from %v after %d retries; the connection was reset",
				o.k, o.target, o.rec.Retries)
		}
	}
}

// probeLater is when, after an abort of o's connection, one more probe
// goes out (Frozen.Abort). The RST clears the switch's entry, so the
// client's answers to the probes go to the server it knows. When that is
// not this one, the connection moved here from it, maybe within its
// tombstone, which drops them silently until the conn_aborted sent before
// the RST and each probe (noticeAbort) ends it. If every notice is lost, or
// the connection moved too often (abortNoticeSpan), a probe after the
// tombstone (the same Config.Tombstone rack-wide, started before this
// abort) still draws an answer that server resets, where a client with
// nothing to send would otherwise wait for its own timeout.
func (e *Engine) probeLater(o *outgoing) time.Duration {
	if netip.AddrFrom4(o.k.originIP) == e.self {
		return 0
	}
	return e.cfg.Tombstone + tombstoneMargin
}

// tombstoneMargin covers the timers' lateness on the server that holds a
// tombstone.
const tombstoneMargin = 100 * time.Millisecond

// reclaim makes sure the switch does not point the client at a target that
// will never get the state. After a late ACK (o.ackBy answered after this
// server gave up preparing) and with the connection still here, a LOAD ACK
// to o.ackBy, the lease's holder, hands the entry back here, and the
// connection's end releases it. After giving up with no ACK at all, an ACK
// lost after the switch may still have installed the entry: at the
// connection's original server, conn_closed clears it (the client's
// address for it is this server's, so no entry is the right state); a
// server that holds a connection migrated in cannot tell where the entry
// points and leaves it: the target's abandon notices, PREPARE_MIG_ACKs
// without LOAD, later name the server to reclaim it from. If the connection
// is gone, conn_closed clears the entry, sent until the switch echoes it;
// but not if it left in a later migration, whose target the entry names.
func (e *Engine) reclaim(now tcp.Time, o *outgoing) {
	_, known := e.host.Lookup(o.id)
	here := o.frozen == nil && known
	switch {
	case here && o.ackBy.IsValid():
		e.reclaimFrom(now, o.ackBy, o.id, o.k)
	case here && netip.AddrFrom4(o.k.originIP) != e.self:
		// A connection migrated in: its entry is not ours to clear.
	case e.leftLater(o):
	default:
		e.releaseEntry(now, o.id, o.k)
	}
}

// epochSweep is how many remembered epochs each Start checks. A
// connection whose migration stayed keeps its epoch after the machine is
// forgotten (its next migration follows on from it), and nothing tells the
// engine when such a connection ends here. Checking a few at random per
// Start bounds the dead ones to about a quarter of the map, with no pause:
// each Start adds at most one.
const epochSweep = 4

// sweepEpochs forgets the epochs of up to epochSweep connections, picked by
// the map's random iteration start, that ended here. e.mu is held.
func (e *Engine) sweepEpochs() {
	n := 0
	for id := range e.epochs {
		if n++; n > epochSweep {
			return
		}
		if _, hosted := e.hosted[id]; hosted || e.outByID[id] != nil {
			continue // their own ends forget them
		}
		if !e.known(id) {
			delete(e.epochs, id)
		}
	}
}

// reclaimStale answers a PREPARE_MIG_ACK of a migration this server no
// longer has (forgotten after its grace, or never started: a PREPARE's
// duplicate that the network kept, which the switch took for a
// re-migration). If the connection is here and not moving, the entry must
// name this server: a LOAD ACK to the sender hands it back if the sender
// holds it (otherwise the switch refuses it), and the connection's end
// releases it. e.mu is held.
func (e *Engine) reclaimStale(now tcp.Time, src netip.Addr, k key) {
	id := k.idAt(e.self)
	if cur := e.outByID[id]; !e.known(id) || cur != nil && !cur.m.State().IsFinal() {
		e.stats.Unexpected++
		return
	}
	e.reclaimFrom(now, src, id, k)
}

// reclaimFrom sends holder a LOAD PREPARE_MIG_ACK for k, which hands the
// entry to this server if holder holds it, and watches the connection
// (id), whose end releases the entry. e.mu is held.
func (e *Engine) reclaimFrom(now tcp.Time, holder netip.Addr, id tcp.ID, k key) {
	m := &e.msg.prepareAck
	*m = tcpmig.PrepareMigAck{TCPMigFields: k.fields()}
	m.Load = true
	e.send(holder, m) //nolint:errcheck // each abandon notice reclaims again
	e.watchHosted(now, id, k)
	e.stats.Reclaims++
}

// leftLater reports whether o's connection left here in a later migration
// than o. e.mu is held.
func (e *Engine) leftLater(o *outgoing) bool {
	if later := e.outByID[o.id]; later != nil && later != o {
		return true
	}
	_, gone := e.tombs[o.id]
	return gone
}

// releaseEntry sends conn_closed for k until the switch echoes it, as a
// finished migrated-in connection's (checkHosted). e.mu is held.
func (e *Engine) releaseEntry(now tcp.Time, id tcp.ID, k key) {
	if _, ok := e.hosted[id]; ok {
		return // already watched: its end releases the entry
	}
	e.hosted[id] = hosted{k: k.conn(), closing: true, next: now}
	e.checkHosted(now, id)
}

// freeze takes the connection out of the host (it sends nothing from now
// on), and serializes it with the application's state.
func (e *Engine) freeze(now tcp.Time, o *outgoing) {
	var state []byte
	if o.app != nil {
		s, err := o.app()
		if err != nil {
			// Nothing is frozen yet: the connection stays, untouched,
			// rather than be reset for a state that cannot travel.
			o.kept = true
			o.stayErr = fmt.Errorf("%w: %v: %v", ErrAppState, o.k, err)
			return
		}
		state = s
	}
	e.spend(&o.rec)
	fr, err := e.host.Freeze(o.id, o.steps)
	if err != nil {
		if errors.Is(err, ErrNotMovable) {
			o.kept = true
			o.stayErr = err
			return
		}
		o.lost = fmt.Errorf("migrate: %v: freezing: %w", o.k, err)
		return
	}
	o.frozen = fr
	if d := e.cfg.InjectDelay; d > 0 {
		// A busy wait, not a sleep: overhead takes the CPU.
		for t0 := time.Now(); time.Since(t0) < d; {
		}
		if e.cfg.InjectCharge != nil {
			e.cfg.InjectCharge(d)
		}
	}
	delete(e.hosted, o.id) // its entry now follows it: the next server releases it
	delete(e.restored, o.id)
	delete(e.epochs, o.id)
	// Segments still on their way here (sent before the switch turned the
	// client to the target) are dropped, not answered with RST.
	e.tomb(o.id, now+e.cfg.Tombstone, o.k.epoch)
	o.rec.mark(PhaseFrozen, e.cfg.Clock())
	if o.lost != nil {
		return
	}
	if o.snap == nil {
		size := 0
		if sz, ok := fr.(Sizer); ok {
			size = sz.SerializedSize(state)
		}
		o.snap = e.takeBuf(size)
	}
	if o.snap, err = fr.Serialize(o.snap[:0], state); err != nil {
		o.lost = fmt.Errorf("migrate: %v: serializing: %w", o.k, err)
		return
	}
	o.rec.StateBytes = len(o.snap)
	o.rec.mark(PhaseSerialized, e.cfg.Clock())
}

// sendFragments is sendState's burst: e.burst's fragments from start to
// the end, then from the beginning to start. e.mu is held.
func (e *Engine) sendFragments() {
	b := &e.burst
	b.err = e.sendRange(b.start, b.total)
	if b.err == nil && b.start > 0 {
		b.err = e.sendRange(0, b.start)
	}
}

// sendRange sends e.burst's fragments [from, to): one by one, or, to a
// TrainSender, encoded back to back in trains of trainFragments (each
// full fragment encodes to the same length; the last one, shorter, ends
// its range). e.mu is held.
func (e *Engine) sendRange(from, to int) error {
	b := &e.burst
	ts, trains := e.host.(TrainSender)
	trains = trains && to-from > 1
	e.train = e.train[:0]
	return tcpmig.FragmentConnState(&e.msg.state, b.o.snap, func(frag *tcpmig.ConnState) error {
		i := int(frag.FragmentIndex)
		if i < from || i >= to {
			return nil
		}
		b.sent++
		if !trains {
			return e.send(b.o.target, frag)
		}
		n := frag.EncodedLen()
		at := len(e.train)
		e.train = append(e.train, make([]byte, n)...)
		if _, err := frag.Encode(e.train[at:]); err != nil {
			return err
		}
		if k := i - from + 1; k%trainFragments == 0 || i == to-1 {
			err := ts.SendUDPTrain(b.o.target, e.train, fragmentLen)
			e.train = e.train[:0]
			return err
		}
		return nil
	})
}

// trainFragments is how many CONN_STATE fragments one SendUDPTrain
// carries at most, and fragmentLen a full fragment's encoded length.
const (
	trainFragments = 64
	fragmentLen    = tcpmig.ConnStateLen + tcpmig.ConnStateFragmentBytes
)

// sendState sends the whole snapshot as CONN_STATE fragments to the target.
// A resend sends every fragment again: the target's reassembler keeps what
// it has and ignores the copies.
func (e *Engine) sendState(o *outgoing) {
	if o.lost != nil || o.frozen == nil {
		return // nothing to send: the machine's timer ends in abort
	}
	e.msg.state = tcpmig.ConnState{TCPMigFields: o.k.fields()}
	// A burst of fragments overflows queues at its tail, the same tail
	// each time: each resend starts further in (the target reassembles in
	// any order), so the fragments a queue dropped go out first.
	total := tcpmig.ConnStateFragments(len(o.snap))
	start := (o.sends * total / 3) % total
	o.sends++
	b := &e.burst
	b.o, b.start, b.total, b.sent, b.err = o, start, total, 0, nil
	e.host.Burst(e.sendBurst) // one kick of the link for the whole state
	n, err := b.sent, b.err
	b.o, b.err = nil, nil
	if err != nil {
		// Over the spec's cap: no resend can help, and the machine's timer
		// ends in a reset. A refusal by the stack (say, ARP still
		// resolving) is left to the timer's resend.
		if errors.Is(err, tcpmig.ErrBadLength) {
			o.lost = fmt.Errorf("migrate: %v: %w", o.k, err)
		}
		o.rec.Err = err.Error()
	}
	e.stats.FragmentsOut += uint64(n)
	o.rec.Fragments = n
	o.rec.mark(PhaseStateSent, e.cfg.Clock())
}
