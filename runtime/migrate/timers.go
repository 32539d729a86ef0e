package migrate

import (
	"github.com/capygen/capygen/generated/migstate"
	"github.com/capygen/capygen/runtime/tcp"
)

// The engine's deadlines (machine timers, forgetting finished machines,
// tombstones, refusals, hosted connections' checks) live in one timerq.Queue,
// so NextDeadline and Advance cost O(log n) per deadline instead of a scan
// of every migration and connection; a server with many connections must
// not pay per connection per tick. Entries are never removed: an entry whose
// object has since moved its deadline (or left) is stale and skipped.

type timerKind uint8

const (
	timerOut timerKind = iota + 1 // an outgoing migration's timer or forget time
	timerIn                       // an incoming migration's
	timerTomb
	timerRefused
	timerHosted
	timerNotice        // a conn_aborted to send again
	timerAbandonNotice // an abandoned target's notice to send again
)

type timerEntry struct {
	at   tcp.Time
	kind timerKind
	out  *outgoing
	in   *incoming
	id   tcp.ID // tombs, hosted
	k    key    // refused, notice
}

// schedule adds a deadline; ties fire in scheduling order, so a seed
// replays exactly. e.mu is held.
func (e *Engine) schedule(t timerEntry) { e.timers.Push(t.at, t) }

// live reports whether t still stands for its object's deadline. e.mu is
// held.
func (e *Engine) live(t timerEntry) bool {
	switch t.kind {
	case timerOut:
		return e.out[t.out.k] == t.out && t.out.deadline() == t.at
	case timerIn:
		return e.in[t.in.k] == t.in && t.in.deadline() == t.at
	case timerTomb:
		tb, ok := e.tombs[t.id]
		return ok && tb.until == t.at
	case timerRefused:
		until, ok := e.refused[t.k]
		return ok && until == t.at
	case timerHosted:
		h, ok := e.hosted[t.id]
		return ok && h.next == t.at
	case timerNotice:
		return true
	case timerAbandonNotice:
		return e.in[t.in.k] == t.in
	}
	return false
}

// nextTimer is the earliest live deadline, dropping stale entries on top.
// e.mu is held.
func (e *Engine) nextTimer() (tcp.Time, bool) {
	for {
		at, t, ok := e.timers.Peek()
		if !ok {
			return 0, false
		}
		if e.live(*t) {
			return at, true
		}
		e.timers.Pop()
	}
}

// fireTimers runs every live deadline due at now. e.mu is held.
func (e *Engine) fireTimers(now tcp.Time, fx *effects) {
	for at, _, ok := e.timers.Peek(); ok && at <= now; at, _, ok = e.timers.Peek() {
		_, t, _ := e.timers.Pop()
		if !e.live(t) {
			continue
		}
		switch t.kind {
		case timerOut:
			o := t.out
			if o.timerOn {
				// A timeout's resend is migration work like a handler's.
				o.timerOn = false
				t0, tx0 := e.cfg.Clock(), e.transmitted()
				e.originEvent(now, o, migstate.OriginEventTimeout, fx)
				o.rec.Work += e.workSince(t0, tx0)
				continue
			}
			delete(e.out, o.k)
			if e.outByID[o.id] == o {
				delete(e.outByID, o.id)
				if _, hosted := e.hosted[o.id]; !hosted && !e.known(o.id) {
					delete(e.epochs, o.id) // the connection ended here
				}
			}
			e.forgetOutgoing(o)
		case timerIn:
			in := t.in
			if in.timerOn {
				in.timerOn = false
				t0, tx0 := e.cfg.Clock(), e.transmitted()
				e.targetEvent(now, in, migstate.TargetEventTimeout, nil, fx)
				in.rec.Work += e.workSince(t0, tx0)
				continue
			}
			delete(e.in, in.k)
			e.forgetIncoming(in)
		case timerTomb:
			e.untomb(t.id)
		case timerRefused:
			delete(e.refused, t.k)
		case timerHosted:
			e.checkHosted(now, t.id)
		case timerNotice:
			e.sendAbortNotice(t.k)
		case timerAbandonNotice:
			e.sendAbandonNotice(t.in)
		}
	}
}
