package stack

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
)

// busyLink is a link that always has a frame: each Receive delivers what
// the link under it has (without waiting) and then one frame nobody wants,
// as a server's link does under a flood. It counts its Receives, and
// notes the last one that delivered a real frame.
type busyLink struct {
	link.Endpoint
	calls, lastReal atomic.Uint64
}

func (l *busyLink) Receive(_ time.Duration, fn func(frame []byte)) (int, error) {
	n := l.calls.Add(1)
	got, err := l.Endpoint.Receive(0, fn)
	if err != nil {
		return got, err
	}
	if got > 0 {
		l.lastReal.Store(n)
	}
	junk := make([]byte, 60)
	junk[12], junk[13] = 0x88, 0xb5 // a local experimental EtherType: dropped
	fn(junk)
	return got + 1, nil
}

// TestRunYieldsToWokenGoroutinesOnOneP: with one P, the goroutines Run's
// loop wakes have no other processor, and a link that always has frames
// never lets the loop sleep or spin. The loop yields after a drain that
// woke someone: a reader woken by data runs within a few receives, not
// at the runtime's preemption (10 ms, thousands of receives here).
func TestRunYieldsToWokenGoroutinesOnOneP(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ea, eb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	busy := &busyLink{Endpoint: eb}
	a, b := runPair(t, ea, busy, nil)
	ln, err := b.Listen(7)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c.(*Conn)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	for round := range 5 {
		ran := make(chan [2]uint64, 1)
		go func() {
			buf := make([]byte, 1)
			if _, err := srv.Read(buf); err != nil {
				t.Error(err)
			}
			ran <- [2]uint64{busy.calls.Load(), busy.lastReal.Load()}
		}()
		// The reader must be blocked when the data comes. A reader that
		// is only runnable is nobody's wake: the loop has no reason to
		// yield, and the reader runs at preemption (seen in CI, when the
		// scheduler's fairness tick ran this goroutine before it).
		deadline := time.Now().Add(5 * time.Second)
		for !readerWaits(b, srv) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the reader did not block in Read within 5s", round)
			}
			runtime.Gosched()
		}
		if _, err := c.Write([]byte{byte(round)}); err != nil {
			t.Fatal(err)
		}
		got := <-ran
		if late := got[0] - got[1]; late > 20 {
			t.Errorf("round %d: the reader ran %d receives after its data arrived, want a few", round, late)
		}
	}
}

// readerWaits reports whether a goroutine is blocked reading c.
func readerWaits(s *Stack, c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return c.rwake.ch != nil
}
