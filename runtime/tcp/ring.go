package tcp

// ring is a byte queue bounded by limit. Bytes [0,n) from head are queued;
// writeAt may also place bytes beyond n (the receive side parks
// out-of-order data there) that commit later makes part of the queue.
// The backing array grows on demand, by whole pool size classes, to hold
// at most limit bytes (its length may pass limit, by less than twice it),
// so an idle connection (or a hostile snapshot header) does not cost the
// full buffer size.
type ring struct {
	buf   []byte
	head  int // index of the first queued byte
	n     int // queued bytes
	limit int
	pool  *BufferPool // where buf comes from and goes back to; nil: make
}

// ringInitial is the first allocation of a ring that receives data.
const ringInitial = 4096

func newRing(limit int, pool *BufferPool) ring { return ring{limit: limit, pool: pool} }

func (r *ring) len() int  { return r.n }
func (r *ring) cap() int  { return r.limit }
func (r *ring) free() int { return r.limit - r.n }

// grow raises the limit to n; the backing array follows on demand.
func (r *ring) grow(n int) { r.limit = max(r.limit, n) }

// ensure grows the backing array to hold offsets [0,size) from head,
// keeping every byte's offset.
func (r *ring) ensure(size int) {
	if size <= len(r.buf) {
		return
	}
	nl := max(len(r.buf)*2, ringInitial, size)
	nl = min(nl, r.limit)
	// A whole size class, past the limit if need be (at most twice it):
	// a limit that creeps up, as the send queue's does behind the
	// congestion window, would otherwise regrow, and recopy, the array at
	// almost every step.
	nl = classSize(nl)
	nb := r.pool.get(nl)
	k := copy(nb, r.buf[r.head:])
	copy(nb[k:], r.buf[:r.head])
	r.pool.put(r.buf)
	r.buf, r.head = nb, 0
}

// release drops the backing array of an empty ring, so that a connection
// that has finished with its data (TIME-WAIT, CLOSED) does not hold it.
func (r *ring) release() {
	if r.n == 0 {
		r.drop()
	}
}

// drop gives the backing array back to the pool, queued bytes and all.
func (r *ring) drop() {
	r.pool.put(r.buf)
	r.buf, r.head, r.n = nil, 0, 0
}

// writeAt copies p to offset off from head, clipped to the limit, and
// returns how many bytes it stored. It does not change the queue length.
func (r *ring) writeAt(off int, p []byte) int {
	i, n := r.span(off, len(p))
	k := copy(r.buf[i:], p[:n])
	copy(r.buf, p[k:n])
	return n
}

// span clips n bytes at offset off from head to the limit, grows the
// backing array to hold them, and returns the index in buf where they
// start and how many there are. Copies from i wrap to buf's start.
func (r *ring) span(off, n int) (i, m int) {
	if off < 0 || off >= r.limit {
		return 0, 0
	}
	n = min(n, r.limit-off)
	r.ensure(off + n)
	if n == 0 {
		return 0, 0
	}
	return (r.head + off) % len(r.buf), n
}

// write appends as much of p as fits and returns the count.
func (r *ring) write(p []byte) int {
	if len(p) > r.free() {
		p = p[:r.free()]
	}
	r.writeAt(r.n, p)
	r.n += len(p)
	return len(p)
}

// commit makes n more bytes (already placed by writeAt) part of the queue.
func (r *ring) commit(n int) { r.n += n }

// read moves up to len(p) queued bytes into p.
func (r *ring) read(p []byte) int {
	if len(p) > r.n {
		p = p[:r.n]
	}
	n := r.peekInto(0, p)
	r.discard(n)
	return n
}

// peekInto copies bytes starting at offset off into p without consuming
// them; it stops at the limit, not at n.
func (r *ring) peekInto(off int, p []byte) int {
	i, n := r.span(off, len(p))
	k := copy(p[:n], r.buf[i:])
	copy(p[k:n], r.buf)
	return n
}

// view returns n bytes at offset off; it aliases the ring when they are
// contiguous (aliased) and is copied into scratch (len >= n) when they
// wrap.
func (r *ring) view(off, n int, scratch []byte) (b []byte, aliased bool) {
	r.ensure(off + n)
	i := (r.head + off) % len(r.buf)
	if i+n <= len(r.buf) {
		return r.buf[i : i+n], true
	}
	r.peekInto(off, scratch[:n])
	return scratch[:n], false
}

// discard drops n queued bytes from the front.
func (r *ring) discard(n int) {
	if n == 0 {
		return
	}
	r.head = (r.head + n) % len(r.buf)
	r.n -= n
}

// rewind moves an empty ring's head to index 0 so that the next segments
// are contiguous and Output can alias them without copying. Callers must not
// rewind while bytes are parked beyond n.
func (r *ring) rewind() {
	if r.n == 0 {
		r.head = 0
	}
}
