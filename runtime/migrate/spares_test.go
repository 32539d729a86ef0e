package migrate

import "testing"

// TestKeptBuffersFit: a state is serialized or reassembled into the
// smallest kept buffer that holds it (a new one's pages fault on first
// write), the largest when none does or the size is unknown, and the
// kept buffers stay within their bounds, the larger ones kept.
func TestKeptBuffersFit(t *testing.T) {
	e := &Engine{}
	for _, c := range []int{1 << 10, 64 << 10, 128 << 10, 512 << 10} {
		e.putBuf(make([]byte, 0, c))
	}
	for _, tc := range []struct{ n, want int }{
		{100, 1 << 10},
		{100 << 10, 128 << 10},
		{600 << 10, 512 << 10}, // none fits: the largest, for Serialize to grow
		{0, 512 << 10},         // unknown size: the largest
	} {
		b := e.takeBuf(tc.n)
		if cap(b) != tc.want || len(b) != 0 {
			t.Errorf("takeBuf(%d): len %d cap %d, want an empty buffer of cap %d", tc.n, len(b), cap(b), tc.want)
		}
		e.putBuf(b)
	}
	if b := e.allocBuf(200 << 10); len(b) != 200<<10 || cap(b) != 512<<10 {
		t.Errorf("allocBuf(200 KiB): len %d cap %d, want the 512 KiB kept buffer", len(b), cap(b))
	} else {
		e.putBuf(b)
	}
	if b := e.allocBuf(600 << 10); len(b) != 600<<10 {
		t.Errorf("allocBuf(600 KiB): len %d", len(b))
	} else if len(e.bufs) != 4 {
		t.Errorf("allocBuf that made a new buffer kept %d buffers, want the 4 it had", len(e.bufs))
	}

	// The bounds: count and bytes; a larger buffer replaces the smallest.
	e = &Engine{}
	for range keptBufs + 3 {
		e.putBuf(make([]byte, 0, 1<<10))
	}
	if len(e.bufs) != keptBufs {
		t.Errorf("%d buffers kept, want at most %d", len(e.bufs), keptBufs)
	}
	e.putBuf(make([]byte, 0, maxKeptBuf))
	if len(e.bufs) != keptBufs || e.bufBytes != (keptBufs-1)<<10+maxKeptBuf {
		t.Errorf("a large buffer did not replace a small one: %d kept, %d bytes", len(e.bufs), e.bufBytes)
	}
	e.putBuf(make([]byte, 0, maxKeptBuf+1))
	for range maxKeptBytes/maxKeptBuf + 2 {
		e.putBuf(make([]byte, 0, maxKeptBuf))
	}
	if e.bufBytes > maxKeptBytes {
		t.Errorf("%d bytes kept, over the %d bound", e.bufBytes, maxKeptBytes)
	}
	for _, b := range e.bufs {
		if cap(b) > maxKeptBuf {
			t.Errorf("kept a %d-byte buffer, over the %d bound", cap(b), maxKeptBuf)
		}
	}

	// A buffer that would not fit even with every smaller one gone evicts
	// none of them.
	e = &Engine{}
	for _, c := range []int{100 << 10, 900 << 10, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 1 << 20, 900 << 10} {
		e.putBuf(make([]byte, 0, c))
	}
	kept := e.bufBytes
	e.putBuf(make([]byte, 0, 850<<10))
	if e.bufBytes != kept || len(e.bufs) != 9 {
		t.Errorf("a buffer that could not be kept changed the kept ones: %d buffers, %d bytes, had 9 and %d", len(e.bufs), e.bufBytes, kept)
	}
}
