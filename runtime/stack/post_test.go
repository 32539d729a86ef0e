package stack

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
)

// Post's work runs on the event loop, woken out of its wait for frames
// (the poll interval here is far longer than the test waits), and never
// on the caller's goroutine while Run goes; without Run it runs inline,
// and what was posted when Run ends still runs.
func TestPostRunsOnTheEventLoop(t *testing.T) {
	ea, _ := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	s, err := New(Config{Addr: addrA, Seed: 1, PollInterval: time.Hour}, ea)
	if err != nil {
		t.Fatal(err)
	}
	inline := false
	s.Post(func() { inline = true })
	if !inline {
		t.Fatal("Post without Run did not run its work at once")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for { // Run has started when Post stops running inline
		var ran atomic.Bool // the loop may set it later
		s.Post(func() { ran.Store(true) })
		if !ran.Load() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 3 {
		got := make(chan bool, 1)
		caller := make(chan struct{})
		s.Post(func() {
			select {
			case <-caller:
				got <- true // the caller had returned: not its goroutine
			case <-time.After(5 * time.Second):
				got <- false
			}
		})
		close(caller)
		select {
		case ok := <-got:
			if !ok {
				t.Fatalf("post %d ran before Post returned", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("post %d did not run: the event loop was not woken", i)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := false
	s.Post(func() { after = true })
	if !after {
		t.Fatal("Post after Run ended did not run its work at once")
	}
}

// After Linger, a connection the application closed has finished its
// close handshake, and the stack's Close resets nothing.
func TestLingerLetsClosesFinish(t *testing.T) {
	a, b := newRunningPair(t, nil)
	ln, err := b.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 16)
		for {
			if _, err := c.Read(buf); err != nil {
				c.Close() // the peer's FIN: close our side too
				return
			}
		}
	}()
	c, err := a.Dial(context.Background(), netip.AddrPortFrom(addrB.Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Linger(ctx); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if n := a.Counters().RSTOut; n != 0 {
		t.Fatalf("Close after Linger sent %d RSTs", n)
	}
}
