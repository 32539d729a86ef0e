package tcp

import (
	"testing"
	"time"
)

func TestPoolClass(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{1, 0}, {4096, 0}, {4097, 1}, {8192, 1}, {8193, 2}, {256 << 10, 6}, {256<<10 + 1, 7}, {1 << 30, 18},
	} {
		if got := poolClass(tc.n); got != tc.class {
			t.Errorf("poolClass(%d) = %d, want %d", tc.n, got, tc.class)
		}
	}
}

func TestBufferPoolReusesWithinItsBound(t *testing.T) {
	p := NewBufferPool(64 << 10)
	a := p.get(5000) // class 1: 8 KiB
	if len(a) != 5000 || cap(a) != 8192 {
		t.Fatalf("get(5000): len %d cap %d, want 5000 and 8192", len(a), cap(a))
	}
	p.put(a)
	if b := p.get(6000); &b[0] != &a[0] || len(b) != 6000 {
		t.Errorf("get(6000) after putting an 8 KiB array did not reuse it")
	}
	if st := p.Stats(); st.Hits != 1 || st.Misses != 1 || st.Held != 0 {
		t.Errorf("stats %+v, want 1 hit, 1 miss, nothing held", st)
	}
	// Over the bound, and not of a class's size: the collector's.
	for range 9 {
		p.put(make([]byte, 8192))
	}
	p.put(make([]byte, 5000))
	if st := p.Stats(); st.Held != 64<<10 {
		t.Errorf("held %d bytes, want the bound, %d", st.Held, 64<<10)
	}
	var zero *BufferPool
	if b := zero.get(100); len(b) != 100 {
		t.Errorf("a nil pool's get(100) has length %d", len(b))
	}
	zero.put(make([]byte, 4096)) // no panic
}

// With a fence, an array put while sends begun before it may still read
// it is handed out again only once those sends have all ended; with none
// in flight, it is free at once.
func TestBufferPoolFenceHoldsArraysBackUntilTheSendsEnd(t *testing.T) {
	var begun, ended uint64
	p := NewBufferPool(1 << 20)
	if !p.SetFence(func() (uint64, uint64) { return begun, ended }) {
		t.Fatal("a new pool refused a fence")
	}
	if p.SetFence(func() (uint64, uint64) { return 0, 0 }) {
		t.Error("a pool took a second fence")
	}
	defer func() {
		// Cleared, the fence lets go of what it held back (for the
		// collector, never handed out) and the pool takes a new one.
		held := p.get(4096)
		begun, ended = 5, 4
		p.put(held)
		p.ClearFence()
		if st := p.Stats(); st.Held != 0 {
			t.Errorf("after ClearFence the pool holds %d bytes, want none", st.Held)
		}
		if c := p.get(4096); &c[0] == &held[0] {
			t.Error("an array held back by a cleared fence was handed out")
		}
		if !p.SetFence(func() (uint64, uint64) { return 0, 0 }) {
			t.Error("a pool whose fence was cleared refused a new one")
		}
	}()
	a := p.get(8192)
	begun, ended = 3, 1
	p.put(a)
	if st := p.Stats(); st.Held != 8192 {
		t.Errorf("held %d bytes, want the 8 KiB held back", st.Held)
	}
	b := p.get(8192)
	if &b[0] == &a[0] {
		t.Fatal("an array that sends 2 and 3 may still read was handed out")
	}
	ended = 2
	if c := p.get(8192); &c[0] == &a[0] {
		t.Fatal("an array that send 3 may still read was handed out")
	}
	ended = 3
	if c := p.get(8192); &c[0] != &a[0] {
		t.Fatal("the array was not handed out once the sends before its put had ended")
	}
	p.put(b) // nothing in flight
	if c := p.get(8192); &c[0] != &b[0] {
		t.Fatal("an array put with no send in flight was held back")
	}
	// A run never taken lowers begun by one: the array put after it is
	// held back behind the one before, never handed out early.
	begun, ended = 6, 4
	first := p.get(16384)
	p.put(first)
	begun = 5
	second := p.get(16384)
	p.put(second)
	ended = 5
	if c := p.get(16384); &c[0] == &first[0] {
		t.Fatal("an array that send 6 may still read was handed out")
	}
	ended = 6
	if c, d := p.get(16384), p.get(16384); &c[0] != &second[0] && &d[0] != &second[0] {
		t.Fatal("the arrays held back were not handed out once every send before them had ended")
	}
	begun = 7
	p.put(a)
	p.Drain()
	if st := p.Stats(); st.Held != 0 {
		t.Errorf("held %d bytes after Drain, want 0", st.Held)
	}
}

// A send queue's limit follows the congestion window up a segment at a
// time, and a bulk writer keeps the queue full; its array must grow by
// whole size classes, not by each step (a recopy of the whole queue at
// almost every write), and the bytes must come out as written.
func TestRingGrowsByClassesBehindACreepingLimit(t *testing.T) {
	r := newRing(4096, NewBufferPool(16<<20))
	arrays, in, out := 0, byte(0), byte(0)
	var last *byte
	chunk := make([]byte, 1448)
	for r.cap() < 4<<20 {
		r.grow(r.cap() + 1448)
		for i := range chunk {
			chunk[i] = in
			in++
		}
		if n := r.write(chunk); n != len(chunk) {
			t.Fatalf("write took %d of %d bytes with %d free", n, len(chunk), r.free()+n)
		}
		if &r.buf[0] != last {
			arrays++
			last = &r.buf[0]
		}
		if len(r.buf) > 2*r.cap() {
			t.Fatalf("a %d-byte array for a %d-byte limit", len(r.buf), r.cap())
		}
		if r.len() > 3<<20 { // the peer acknowledges some
			p := make([]byte, 1<<20)
			r.read(p)
			for i, b := range p {
				if b != out {
					t.Fatalf("byte %d read back as %d, want %d", i, b, out)
				}
				out++
			}
		}
	}
	if arrays > 12 {
		t.Errorf("the array was replaced %d times on the way to 4 MiB, want a dozen at most (4 KiB doubling)", arrays)
	}
}

// TestTransferWithPoisonedPool moves data both ways, under loss and
// reordering (out-of-order data parked beyond the queue), through queues
// whose arrays come from a pool full of junk: a queue must never send or
// deliver a byte it did not write, and a connection's arrays go back to
// the pool when it closes.
func TestTransferWithPoisonedPool(t *testing.T) {
	pool := NewBufferPool(64 << 20)
	for k := range 8 {
		for range 4 {
			b := make([]byte, 1<<(k+minPoolShift))
			for i := range b {
				b[i] = 0xA5
			}
			pool.put(b)
		}
	}
	cfg := Config{Buffers: pool, SendBuffer: 64 << 10, RecvBuffer: 48 << 10}
	n := newNet(t, 7)
	n.loss, n.jitter = 0.02, 2*time.Millisecond
	n.dial(cfg, cfg)
	exchange(t, n, payload(1<<20, 1), payload(256<<10, 2), 10*time.Minute)
	if st := pool.Stats(); st.Hits == 0 {
		t.Errorf("pool %+v: no array came from it", st)
	}
}

// TestRecycleGivesQueuesBack: Recycle hands a live connection's arrays,
// data queued and all, to the pool, and empties its queues.
func TestRecycleGivesQueuesBack(t *testing.T) {
	pool := NewBufferPool(64 << 20)
	cfg := Config{Buffers: pool}
	n := newNet(t, 9)
	n.dial(cfg, cfg)
	if !n.run(time.Second, func() bool { return n.b != nil && n.b.State() == StateEstablished }) {
		t.Fatal("no connection")
	}
	if _, err := n.a.Write(payload(20000, 1)); err != nil {
		t.Fatal(err)
	}
	n.run(time.Second, func() bool { return n.b.Queued() > 0 })
	snd, rcv := cap(n.a.sndBuf.buf), cap(n.b.rcvBuf.buf)
	if snd == 0 || rcv == 0 {
		t.Fatalf("queues not allocated: send %d receive %d", snd, rcv)
	}
	before := pool.Stats().Held
	n.a.Recycle()
	n.b.Recycle()
	if got := pool.Stats().Held - before; got < snd+rcv {
		t.Errorf("Recycle gave back %d bytes, want at least the %d+%d of the queues", got, snd, rcv)
	}
	if n.a.Queued() != 0 || n.b.Queued() != 0 || n.a.sndBuf.buf != nil {
		t.Errorf("after Recycle: queued %d and %d, want empty queues", n.a.Queued(), n.b.Queued())
	}
}
