package tcp

import (
	"math/bits"
	"sync"
)

// BufferPool keeps the backing arrays of connections' send and receive
// queues for reuse. A queue grows on demand (ring), so without a pool a
// connection that arrives with data queued, a migrated one, allocates
// its queues at once: a fresh 128 KiB array is 32 page faults and a clear
// (hundreds of microseconds on a VM, and garbage for the collector), in
// the middle of the restore. With one, the arrays of connections that
// closed or moved away serve the next ones. One pool may serve many
// connections and goroutines.
//
// Arrays come back with their old bytes: a queue only reads bytes it has
// written. The zero BufferPool keeps nothing; NewBufferPool sets a bound.
type BufferPool struct {
	mu   sync.Mutex
	free [poolClasses][][]byte // by size class: cap 1<<(k+minPoolShift)
	held int                   // bytes in free
	max  int
	// hits and misses count get's arrays from free and from make.
	hits, misses uint64

	fence   func() (begun, ended uint64) // SetFence's; nil: none
	fenced  []fencedArray                // put, not yet past the fence
	fencedN int                          // bytes in fenced
}

// fencedArray is an array put while transmissions begun before it
// (up to begun) may still read it.
type fencedArray struct {
	b     []byte
	begun uint64
}

// SetFence makes the pool hold back every array put until the
// transmissions begun before the put have ended: fence reports how many
// have begun and how many have ended, counting in order (every one up to
// ended has ended). A link that sends TCP runs straight from the send
// queues' arrays (Segment.PayloadQueued) may still be reading an array
// that a queue has outgrown or a connection has let go; handed to another
// queue, it would be overwritten under the send. Arrays held back count
// against the pool's bound. fence may be called with the pool's lock
// held, so it must not call into the pool.
//
// A pool takes one fence: SetFence reports false, and changes nothing, if
// it has one already (a pool shared by two stacks whose links both send
// from the queues).
func (p *BufferPool) SetFence(fence func() (begun, ended uint64)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fence != nil {
		return false
	}
	p.fence = fence
	return true
}

// ClearFence removes the pool's fence, so that another may be set (a
// stack built on the pool after the fenced one closed), and lets go of
// the fence, and of what it refers to. The arrays it held back go to the
// collector, which frees none while a send still refers to it; arrays put
// from now on are free at once, so it is for when no send that read the
// queues is left to come.
func (p *BufferPool) ClearFence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fence = nil
	clear(p.fenced)
	p.fenced, p.fencedN = nil, 0
}

// releaseFenced moves the held-back arrays whose transmissions have all
// ended to free. Arrays are held back in the order of their puts, whose
// begun counts never fall but when a run is never taken (by one), so the
// scan stops at the first array still held: that can keep a later one
// back a little longer, never hand it out early, and a get or put with
// nothing to release costs one comparison. p.mu is held.
func (p *BufferPool) releaseFenced(ended uint64) {
	i := 0
	for ; i < len(p.fenced) && p.fenced[i].begun <= ended; i++ {
		b := p.fenced[i].b
		c := cap(b)
		p.fencedN -= c
		p.free[poolClass(c)] = append(p.free[poolClass(c)], b)
		p.held += c
	}
	if i == 0 {
		return
	}
	n := copy(p.fenced, p.fenced[i:])
	clear(p.fenced[n:])
	p.fenced = p.fenced[:n]
}

const (
	minPoolShift = 12 // ringInitial, 4 KiB: the smallest array a ring makes
	poolClasses  = 31 - minPoolShift
)

// NewBufferPool returns a pool that keeps at most maxBytes of arrays.
func NewBufferPool(maxBytes int) *BufferPool { return &BufferPool{max: maxBytes} }

// poolClass is the smallest class whose arrays hold n bytes.
func poolClass(n int) int {
	if n <= 1<<minPoolShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minPoolShift
}

// classSize is the capacity of n's class, the size the pool keeps
// arrays of n bytes in; n itself past the largest class.
func classSize(n int) int {
	if k := poolClass(n); k < poolClasses {
		return 1 << (k + minPoolShift)
	}
	return n
}

// get returns an array of length n, from the pool when it has one of n's
// class. A nil pool makes one, as the ring did before pools.
func (p *BufferPool) get(n int) []byte {
	if p == nil {
		return make([]byte, n)
	}
	k := poolClass(n)
	if k >= poolClasses {
		return make([]byte, n)
	}
	p.mu.Lock()
	if p.fence != nil {
		_, ended := p.fence()
		p.releaseFenced(ended)
	}
	if l := p.free[k]; len(l) > 0 {
		b := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[k] = l[:len(l)-1]
		p.held -= cap(b)
		p.hits++
		p.mu.Unlock()
		return b[:n]
	}
	p.misses++
	p.mu.Unlock()
	return make([]byte, n, 1<<(k+minPoolShift))
}

// put keeps b, which nothing refers to any more, unless the pool is full
// or b is not of a class's size (not the pool's: the collector takes it).
func (p *BufferPool) put(b []byte) {
	c := cap(b)
	if p == nil || c == 0 {
		return
	}
	k := poolClass(c)
	if k >= poolClasses || c != 1<<(k+minPoolShift) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fence != nil {
		begun, ended := p.fence()
		p.releaseFenced(ended)
		if begun > ended {
			if p.held+p.fencedN+c <= p.max {
				p.fenced = append(p.fenced, fencedArray{b[:0], begun})
				p.fencedN += c
			}
			return // else the collector's, once the send lets go of it
		}
	}
	if p.held+p.fencedN+c <= p.max {
		p.free[k] = append(p.free[k], b[:0])
		p.held += c
	}
}

// Drain lets go of every array kept, for the collector to free.
func (p *BufferPool) Drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.free {
		clear(p.free[k])
		p.free[k] = nil
	}
	p.held = 0
	clear(p.fenced) // the collector's once the sends let go of them
	p.fenced, p.fencedN = nil, 0
}

// BufferPoolStats is a BufferPool's state.
type BufferPoolStats struct {
	Held   int    // bytes of arrays kept, held back by the fence or not
	Hits   uint64 // arrays handed out from the pool
	Misses uint64 // arrays made because the pool had none of the size
}

// Stats returns the pool's state.
func (p *BufferPool) Stats() BufferPoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return BufferPoolStats{Held: p.held + p.fencedN, Hits: p.hits, Misses: p.misses}
}
