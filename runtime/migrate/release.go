package migrate

import (
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/tcp"
)

// A connection that was ever migrated has a directory entry at the switch,
// which must go when the connection ends, or the directory fills up. RST
// clears it in the data plane; a graceful close cannot (the entry must
// outlive a half-close), so the server that holds the connection when it
// finishes tells the switch.
const (
	hostedPoll   = 50 * time.Millisecond // how often a hosted connection is checked
	releaseRetry = 20 * time.Millisecond // resend interval of an unechoed release
	releaseTries = 8
)

// A host that says when a connection leaves (the userspace stack, through
// stack.ConnGoneHook) needs no polling: its connections are checked when
// it does. Linux's sockets are polled.
type endNotifier interface{ notifiesEnds() bool }

// hosted is a connection migrated in and served here.
type hosted struct {
	k       key
	next    tcp.Time
	closing bool // finished; releasing its entry
	tries   int
}

// watchHosted starts watching a connection that has a directory entry (it was
// migrated in, or reclaimed) for its end. e.mu is held.
func (e *Engine) watchHosted(now tcp.Time, id tcp.ID, k key) {
	if e.endsNotified {
		e.hosted[id] = hosted{k: k.conn()}
		if !e.known(id) {
			e.checkHosted(now, id) // it ended before the watch began
		}
		return // ConnGone reports its end
	}
	h := hosted{k: k.conn(), next: now + hostedPoll}
	e.hosted[id] = h
	e.schedule(timerEntry{at: h.next, kind: timerHosted, id: id})
}

// ConnGone implements stack.ConnGoneHook: the stack calls it, with its
// lock held, when a connection leaves its table. It only notes the ID;
// Advance checks it.
func (e *Engine) ConnGone(id tcp.ID) {
	e.goneMu.Lock()
	e.gone = append(e.gone, id)
	e.goneMu.Unlock()
	e.goneDue.Store(true)
}

// checkGone checks the hosted connections whose end the host reported.
// e.mu is held.
func (e *Engine) checkGone(now tcp.Time) {
	if !e.goneDue.Swap(false) {
		return
	}
	e.goneMu.Lock()
	gone := e.gone
	e.gone, e.goneSpare = e.goneSpare[:0], nil
	e.goneMu.Unlock()
	for _, id := range gone {
		if h, ok := e.hosted[id]; ok && !h.closing {
			e.checkHosted(now, id)
		}
	}
	e.goneSpare = gone[:0]
}

// checkHosted releases the entry of a hosted connection that finished, or
// looks again later. e.mu is held.
func (e *Engine) checkHosted(now tcp.Time, id tcp.ID) {
	h := e.hosted[id] // a value: changes are written back
	if !h.closing {
		if c, ok := e.host.Lookup(id); ok && !c.Done {
			if e.endsNotified {
				return // still here (a stale report): the next one counts
			}
			h.next = now + hostedPoll
			e.hosted[id] = h
			e.schedule(timerEntry{at: h.next, kind: timerHosted, id: id})
			return
		}
		h.closing = true
		delete(e.restored, id)
		delete(e.epochs, id)
	}
	if h.tries >= releaseTries || !e.sendRelease(h.k) {
		delete(e.hosted, id)
		return
	}
	h.tries++
	e.stats.Releases++
	h.next = now + releaseRetry
	e.hosted[id] = h
	e.schedule(timerEntry{at: h.next, kind: timerHosted, id: id})
}

// onOtherStage handles stages outside the two machines. e.mu is held.
func (e *Engine) onOtherStage(_ tcp.Time, stage tcpmig.Stage, payload []byte) bool {
	return e.onReleaseEcho(stage, payload) || e.onAbortNotice(stage, payload)
}

// known reports whether the host has the connection. e.mu is held.
func (e *Engine) known(id tcp.ID) bool {
	_, ok := e.host.Lookup(id)
	return ok
}
