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
	h := hosted{k: k.conn(), next: now + hostedPoll}
	e.hosted[id] = h
	e.schedule(timerEntry{at: h.next, kind: timerHosted, id: id})
}

// checkHosted releases the entry of a hosted connection that finished, or
// looks again later. e.mu is held.
func (e *Engine) checkHosted(now tcp.Time, id tcp.ID) {
	h := e.hosted[id] // a value: changes are written back
	if !h.closing {
		if c, ok := e.host.Lookup(id); ok && !c.Done {
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
