package stack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// After a burst, memory goes back to the OS once, when most connections
// are gone; not during the burst, not for a few, not twice in 10 s, and
// never with KeepMemory. The same holds for a clock that starts at 0, as
// the simulator's does: a release at time 0 counts as one.
func TestMemoryReleaseAfterBurst(t *testing.T) {
	for _, start := range []tcp.Time{0, tcp.Time(time.Minute)} {
		for _, keep := range []bool{false, true} {
			testMemoryRelease(t, start, keep)
		}
	}
}

func testMemoryRelease(t *testing.T, start tcp.Time, keep bool) {
	t.Helper()
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
	s.now = start
	add(0, 3000)
	remove(0, 1400) // most are still there
	if s.ctr.MemoryReleases != 0 {
		t.Fatalf("start %v: released with %d of %d connections left", start, len(s.conns), s.mem.peak)
	}
	remove(1400, 1600) // now fewer than half
	want := uint64(1)
	if keep {
		want = 0
	}
	if s.ctr.MemoryReleases != want {
		t.Fatalf("start %v, KeepMemory %v: %d releases after the burst, want %d", start, keep, s.ctr.MemoryReleases, want)
	}
	waitReleased(t, s)
	s.now += 5 * time.Second
	add(3000, 6000)
	remove(1600, 6000) // a second burst 5 s later: too soon
	if s.ctr.MemoryReleases != want {
		t.Fatalf("start %v: released again within %v", start, releaseEvery)
	}
	s.now += releaseEvery
	s.maybeReleaseMemory(s.now) // its turn comes
	if want++; keep {
		want = 0
	}
	if s.ctr.MemoryReleases != want {
		t.Fatalf("start %v, KeepMemory %v: %d releases %v after the second burst, want %d", start, keep, s.ctr.MemoryReleases, releaseEvery, want)
	}
	waitReleased(t, s)
}

// waitReleased waits for the release goroutine to finish: a collection
// of the whole heap, which on a loaded machine may take a while, so the
// bound is generous and the wait ends as soon as it is done.
func waitReleased(t *testing.T, s *Stack) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		r := s.mem.running
		s.mu.Unlock()
		if !r {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the memory release did not finish in 20 s")
		}
	}
}
