package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// After a burst, memory goes back to the OS once, when most connections
// are gone; not during the burst, not for a few, not twice in 10 s, and
// never with KeepMemory.
func TestMemoryReleaseAfterBurst(t *testing.T) {
	for _, keep := range []bool{false, true} {
		s := &Stack{conns: map[tcp.ID]*Conn{}, cfg: Config{KeepMemory: keep}}
		id := func(i int) tcp.ID {
			return tcp.ID{Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80)}
		}
		add := func(from, to int) {
			for i := from; i < to; i++ {
				s.conns[id(i)] = nil
				s.noteConnAdded()
			}
		}
		remove := func(from, to int) {
			for i := from; i < to; i++ {
				delete(s.conns, id(i))
				s.noteConnRemoved()
			}
			s.maybeReleaseMemory(s.now)
		}
		s.now = time.Minute
		add(0, 3000)
		remove(0, 1400) // most are still there
		if s.ctr.MemoryReleases != 0 {
			t.Fatalf("released with %d of %d connections left", len(s.conns), s.mem.peak)
		}
		remove(1400, 1600) // now fewer than half
		want := uint64(1)
		if keep {
			want = 0
		}
		if s.ctr.MemoryReleases != want {
			t.Fatalf("KeepMemory %v: %d releases after the burst, want %d", keep, s.ctr.MemoryReleases, want)
		}
		for range 100 { // the release runs on its own goroutine
			s.mu.Lock()
			r := s.mem.running
			s.mu.Unlock()
			if !r {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		s.now += 5 * time.Second
		add(3000, 6000)
		remove(1600, 6000) // a second burst 5 s later: too soon
		if s.ctr.MemoryReleases != want {
			t.Fatalf("released again within %v", releaseEvery)
		}
		s.now += releaseEvery
		s.maybeReleaseMemory(s.now) // its turn comes
		if want++; keep {
			want = 0
		}
		if s.ctr.MemoryReleases != want {
			t.Fatalf("KeepMemory %v: %d releases %v after the second burst, want %d", keep, s.ctr.MemoryReleases, releaseEvery, want)
		}
	}
}
