package migrate

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/capygen/capygen/generated/migstate"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/tcp"
)

// incoming is one connection being moved in: the target machine and the
// client segments it holds.
type incoming struct {
	k    key
	id   tcp.ID // as this stack files it: our address, the origin's port
	m    migstate.Target
	from netip.Addr // the server that sent PREPARE_MIG (and the state)
	// reasm puts this migration's CONN_STATE together. It is the
	// migration's own, so that it goes with it: a retransmission that
	// arrives after the state was accepted cannot leave a partial message
	// behind to conflict with the connection's next migration.
	reasm *tcpmig.ConnStateReassembler

	timerOn  bool
	timerAt  tcp.Time
	forgetAt tcp.Time
	lastAck  tcp.Time
	rec      Record
	steps    func(string, time.Duration) // rec.step, made with the spare
}

func (in *incoming) deadline() tcp.Time {
	if in.timerOn {
		return in.timerAt
	}
	return in.forgetAt
}

// onPrepare starts (or repeats) an incoming migration. e.mu is held.
func (e *Engine) onPrepare(now tcp.Time, src netip.Addr, payload []byte, fx *effects) {
	t0, tx0 := e.cfg.Clock(), e.transmitted()
	var m tcpmig.PrepareMig
	if m.Decode(payload) != nil {
		e.stats.BadMessages++
		return
	}
	k := keyOf(&m.TCPMigFields)
	id := k.idAt(e.self)
	in := e.in[k]
	if in != nil && in.m.State().IsFinal() && !e.known(id) {
		// A migration with this epoch ended here and the connection is not
		// here: a new migration that drew the same epoch.
		delete(e.in, k)
		in = nil
	}
	if in == nil {
		if e.known(id) {
			// We serve this connection already: a stale PREPARE.
			e.stats.Ignored++
			return
		}
		in = e.newIncoming()
		in.k, in.id, in.m = k, id, migstate.NewTarget()
		in.rec = newRecord(RoleTarget, k, t0)
		in.rec.mark(PhasePrepareReceived, t0)
		e.in[k] = in
		if _, held := e.holds[id]; held {
			// An earlier migration of the connection still holds its
			// segments (its origin gave up and tried again): they are this
			// one's now; the old machine's timer ends it.
			e.holds[id] = in
		}
	}
	if in.m.State() == migstate.TargetStateIdle || in.m.State() == migstate.TargetStateBuffering {
		in.from = src
	}
	e.targetEvent(now, in, migstate.TargetEventPrepareMig, nil, fx)
	in.rec.Work += e.workSince(t0, tx0)
}

// onTargetRejected feeds a REJECTED to the incoming migration it answers:
// one in buffering whose PREPARE came from src. It reports whether it did.
// e.mu is held.
func (e *Engine) onTargetRejected(now tcp.Time, src netip.Addr, payload []byte, fx *effects) bool {
	var m tcpmig.Rejected
	if m.Decode(payload) != nil {
		return false
	}
	in := e.in[keyOf(&m.TCPMigFields)]
	if in == nil || in.m.State() != migstate.TargetStateBuffering || in.from != src {
		return false
	}
	e.targetEvent(now, in, migstate.TargetEventRejected, nil, fx)
	return true
}

// onConnState reassembles CONN_STATE; the whole state raises the target's
// conn_state event. e.mu is held.
func (e *Engine) onConnState(now tcp.Time, src netip.Addr, payload []byte, fx *effects) {
	t0, tx0 := e.cfg.Clock(), e.transmitted()
	var m tcpmig.ConnState
	if m.Decode(payload) != nil {
		e.stats.BadMessages++
		return
	}
	e.stats.FragmentsIn++
	k := keyOf(&m.TCPMigFields)
	in := e.in[k]
	if in != nil && src != in.from {
		// Only the server whose PREPARE started this migration sends its
		// state; anything else is stale or stray.
		in = nil
	}
	if _, no := e.refused[k]; no || in == nil {
		// No PREPARE came first (or its state was refused): reassembling
		// would let anyone make us buffer.
		e.stats.Unexpected++
		return
	}
	if in.m.State() == migstate.TargetStateAccepted {
		// Once accepted, the whole state is here already: any fragment of
		// a resend means the origin missed our ACK, and waiting to
		// reassemble the resend again (it loses fragments too) could
		// outlast the origin's retries. Answer at once, at most once a
		// millisecond.
		if now-in.lastAck >= time.Millisecond {
			in.lastAck = now
			e.targetEvent(now, in, migstate.TargetEventConnState, nil, fx)
		}
		in.rec.Work += e.workSince(t0, tx0)
		return
	}
	if in.reasm == nil {
		in.reasm = e.takeReassembler()
	}
	whole, err := in.reasm.Add(now, &m)

	if err != nil {
		e.stats.BadMessages++
		in.rec.Work += e.workSince(t0, tx0)
		return
	}
	if whole == nil {
		in.rec.Work += e.workSince(t0, tx0)
		return
	}
	in.rec.mark(PhaseStateReassembled, e.cfg.Clock())
	e.putReassembler(in.reasm) // it holds nothing once a message is whole
	in.reasm = nil
	in.lastAck = now
	e.targetEvent(now, in, migstate.TargetEventConnState, whole, fx)
	e.putBuf(whole) // the host copies what it keeps of the state
	in.rec.Work += e.workSince(t0, tx0)
}

// targetEvent applies ev to in's machine and carries out the step; state is
// the reassembled CONN_STATE for conn_state. e.mu is held (and released
// around the replay).
func (e *Engine) targetEvent(now tcp.Time, in *incoming, ev migstate.TargetEvent, state []byte, fx *effects) {
	step, err := in.m.Handle(ev)
	if !admit(&e.stats, &step, err, &in.rec, &in.timerOn) {
		return
	}
	for _, a := range step.Actions() {
		if err := e.targetAction(now, in, a, state, fx); err != nil {
			e.refuse(now, in, err, fx)
			return
		}
	}
	if step.ArmTimer {
		in.timerOn, in.timerAt = true, now+step.TimerAfter
		e.schedule(timerEntry{at: in.timerAt, kind: timerIn, in: in})
	}
	if step.To.IsFinal() && !step.From.IsFinal() {
		in.forgetAt = now + e.cfg.Grace
		e.schedule(timerEntry{at: in.forgetAt, kind: timerIn, in: in})
		switch step.To {
		case migstate.TargetStateAccepted:
			e.stats.Accepted++
			in.rec.Result = "accepted"
		default:
			e.stats.Abandoned++
			in.rec.Result = step.To.String()
			in.rec.Err = fmt.Sprintf("migrate: %v: no state from %v before the timeout", in.k, in.from)
		}
		in.rec.Peer = in.from
		fx.ended.add(&in.rec)
	}
}

// refuse ends an incoming migration whose state cannot be restored: no
// CONN_STATE_ACK goes out, so the origin's machine gives up (and resets the
// connection), and retransmissions of the state are dropped for a while.
func (e *Engine) refuse(now tcp.Time, in *incoming, err error, fx *effects) {
	e.stats.RestoreFailures++
	e.discard(in)
	delete(e.in, in.k)
	e.refused[in.k] = now + e.cfg.Grace
	e.schedule(timerEntry{at: now + e.cfg.Grace, kind: timerRefused, k: in.k})
	in.rec.Result = "refused"
	in.rec.Err = err.Error()
	in.rec.Peer = in.from
	fx.ended.add(&in.rec)
}

// targetAction carries out one action of the target machine. e.mu is held.
func (e *Engine) targetAction(now tcp.Time, in *incoming, a migstate.TargetAction, state []byte, fx *effects) error {
	switch a {
	case migstate.TargetActionAllocateBuffer:
		if e.holds[in.id] != in {
			e.holds[in.id] = in
			e.spend(&in.rec)
			e.host.Hold(in.id)
		}
	case migstate.TargetActionSendPrepareMigAck:
		m := &e.msg.prepareAck
		*m = tcpmig.PrepareMigAck{TCPMigFields: in.k.fields()}
		m.Load = true      // the switch installs the entry as the ACK passes
		e.send(in.from, m) //nolint:errcheck // the origin resends PREPARE_MIG
		in.rec.mark(PhaseAckSent, e.cfg.Clock())
	case migstate.TargetActionRestoreConnection:
		return e.restore(now, in, state, fx)
	case migstate.TargetActionReplayBuffer:
		if e.holds[in.id] == in {
			delete(e.holds, in.id)
			// Replayed segments reach the connection, which may answer at
			// once and re-enter the engine: replay unlocked. The machine
			// is already in its new state, so nothing can interleave
			// badly.
			e.mu.Unlock()
			held, over := e.host.Replay(in.id)
			e.mu.Lock()
			e.stats.Replayed += uint64(held)
			in.rec.Held += held
			in.rec.HeldOverflow += over
		}
		in.rec.mark(PhaseReplayed, e.cfg.Clock())
	case migstate.TargetActionSendConnStateAck:
		m := &e.msg.stateAck
		*m = tcpmig.ConnStateAck{TCPMigFields: in.k.fields()}
		e.send(in.from, m) //nolint:errcheck // the origin resends the state
		in.rec.mark(PhaseStateAckSent, e.cfg.Clock())
	case migstate.TargetActionFreeBuffer:
		e.discard(in)
	case migstate.TargetActionSendAbandonNotice:
		e.sendAbandonNotice(in)
		for i := 1; i < abandonNotices; i++ {
			e.schedule(timerEntry{at: now + tcp.Time(i)*abandonNoticeEvery, kind: timerAbandonNotice, in: in})
		}
	}
	return nil
}

// abandonNotices is how many abandon notices go out, abandonNoticeEvery
// apart: each that arrives makes an origin that gave up reclaim the entry
// once more, so losing some of them, or some reclaims, costs nothing.
const (
	abandonNotices     = 3
	abandonNoticeEvery = 20 * time.Millisecond
)

// sendAbandonNotice sends in's origin a PREPARE_MIG_ACK without LOAD. e.mu
// is held.
func (e *Engine) sendAbandonNotice(in *incoming) {
	m := &e.msg.prepareAck
	*m = tcpmig.PrepareMigAck{TCPMigFields: in.k.fields()} // Load false: the switch forwards it
	if e.send(in.from, m) == nil {
		e.stats.AbandonNotices++
	}
}

// discard drops the segments in's hold kept, if it owns the hold. e.mu is
// held.
func (e *Engine) discard(in *incoming) {
	if e.holds[in.id] != in {
		return
	}
	delete(e.holds, in.id)
	held, over := e.host.Discard(in.id)
	in.rec.Held += held
	in.rec.HeldOverflow += over
}

// settleComeback ends this server's own migration of in's connection that
// still waits for its CONN_STATE_ACK, when the connection comes back first:
// the ACK was lost (or is late) and the server it went to has moved it on,
// which it can only have done after restoring it. The whole state of a
// later epoch, from the server that holds the connection now, is that ACK.
// Left waiting, the old migration would keep the frozen copy, which on the
// kernel host holds the connection's addresses (the restore fails with
// EADDRNOTAVAIL), and its give-up would reset the connection that lives
// here again. e.mu is held.
func (e *Engine) settleComeback(now tcp.Time, in *incoming, fx *effects) {
	o := e.outByID[in.id]
	if o == nil || o.m.State() != migstate.OriginStateTransferring {
		return
	}
	// Epochs grow by one per attempt along the connection's path (each
	// origin draws the one after the epoch that brought the connection
	// in): a state of an older epoch is a stray copy and proves nothing.
	if !epochAfter(in.k.epoch, o.k.epoch, 127) {
		return
	}
	e.stats.Comebacks++
	e.originEvent(now, o, migstate.OriginEventConnStateAck, fx)
}

// restore rebuilds the connection from the state and files it in the
// host, for the port's restorer or its listener. e.mu is held.
func (e *Engine) restore(now tcp.Time, in *incoming, state []byte, fx *effects) error {
	origin := netip.AddrPortFrom(netip.AddrFrom4(in.k.originIP), in.k.originPort)
	e.settleComeback(now, in, fx)
	e.spend(&in.rec)
	app, deliver, err := e.host.Restore(now, state, in.id, origin, e.cfg.MaxRestoreBuffer, in.steps)
	if err != nil {
		return fmt.Errorf("%w: %v from %v: %w", ErrRestore, in.k, in.from, err)
	}
	e.untomb(in.id) // it may be coming back
	e.epochs[in.id] = in.k.epoch
	if deliver != nil {
		fx.restore = deliver
	} else {
		e.restored[in.id] = app
	}
	in.rec.mark(PhaseRestored, e.cfg.Clock())
	e.watchHosted(now, in.id, in.k)
	return nil
}
