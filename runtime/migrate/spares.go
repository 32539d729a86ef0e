package migrate

import (
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/internal/prefault"
)

// The handlers that Work times allocate nothing. On this project's VMs an
// allocation that takes a fresh page costs a page fault of about 10 µs,
// and an allocation in a handler made one migration in ten slow (the
// host overhead's p99 was ten times its p50 while a fixed computation's
// was 1.01 times). So what a migration needs is made beforehand, after
// the call that used the last one (refill, at the unlock), with its pages
// mapped (prefault), and buffers are reused.

// maxKeptBuf bounds a buffer kept for reuse: a queued connection's large
// state is not held on to.
const maxKeptBuf = 256 << 10

// keptBufs bounds how many buffers are kept.
const keptBufs = 8

// refill makes the next migration's objects ready. e.mu is held.
func (e *Engine) refill() {
	if e.spareOut == nil {
		o := new(outgoing)
		prefault.Touch(o)
		o.steps = o.rec.step
		e.spareOut = o
	}
	if e.spareIn == nil {
		in := new(incoming)
		prefault.Touch(in)
		in.steps = in.rec.step
		e.spareIn = in
	}
	if len(e.reasms) == 0 {
		e.reasms = append(e.reasms, e.newReassembler())
	}
	if len(e.bufs) < 2 {
		b := new([1024]byte)
		prefault.Touch(b)
		e.bufs = append(e.bufs, b[:0])
	}
	if e.hostSpent {
		// A freeze, a hold or a restore took the host's spares: only then
		// (two locks) make new ones.
		e.hostSpent = false
		if r, ok := e.host.(Reserver); ok {
			r.Reserve()
		}
	}
}

// Reserver is a Host that makes a restore's objects ready beforehand; the
// engine calls Reserve (e.mu held) after each call that may have used them.
type Reserver interface {
	Reserve()
}

// newOutgoing is the spare outgoing migration, cleared but for its steps
// callback. e.mu is held.
func (e *Engine) newOutgoing() *outgoing {
	o := e.spareOut
	e.spareOut = nil
	if o == nil { // a second Start in one call
		o = new(outgoing)
		o.steps = o.rec.step
	}
	return o
}

// newIncoming is newOutgoing's twin.
func (e *Engine) newIncoming() *incoming {
	in := e.spareIn
	e.spareIn = nil
	if in == nil {
		in = new(incoming)
		in.steps = in.rec.step
	}
	return in
}

func (e *Engine) newReassembler() *tcpmig.ConnStateReassembler {
	r := tcpmig.NewConnStateReassembler()
	r.MaxPending = 1 // a migration's own: one message
	r.Alloc = e.allocBuf
	return r
}

// allocBuf is the reassemblers' Alloc: a kept buffer when one is large
// enough. e.mu is held (Add runs in onConnState).
func (e *Engine) allocBuf(n int) []byte {
	if k := len(e.bufs); k > 0 && cap(e.bufs[k-1]) >= n {
		b := e.bufs[k-1]
		e.bufs = e.bufs[:k-1]
		return b[:n]
	}
	return make([]byte, n)
}

// takeReassembler is an empty reassembler. e.mu is held.
func (e *Engine) takeReassembler() *tcpmig.ConnStateReassembler {
	if n := len(e.reasms); n > 0 {
		r := e.reasms[n-1]
		e.reasms = e.reasms[:n-1]
		return r
	}
	return e.newReassembler()
}

// putReassembler keeps r, which must hold no message, for reuse.
func (e *Engine) putReassembler(r *tcpmig.ConnStateReassembler) {
	if r.Pending() == 0 && len(e.reasms) < keptBufs {
		e.reasms = append(e.reasms, r)
	}
}

// takeBuf is an empty buffer. e.mu is held.
func (e *Engine) takeBuf() []byte {
	if n := len(e.bufs); n > 0 {
		b := e.bufs[n-1]
		e.bufs = e.bufs[:n-1]
		return b[:0]
	}
	return nil
}

// putBuf keeps b, which nothing refers to any more, for reuse.
func (e *Engine) putBuf(b []byte) {
	if b != nil && cap(b) <= maxKeptBuf && len(e.bufs) < keptBufs {
		e.bufs = append(e.bufs, b[:0])
	}
}
