package stack

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
)

// batchPipe is a link.Batcher over a memory pipe end: queued frames reach
// the wire only on Flush (or the next Send), so a stack that forgets to
// flush stalls, and the counters show how many frames each Flush carried.
type batchPipe struct {
	*link.Memory
	mu      sync.Mutex
	pending [][]byte
	queued  int
	flushes int // Flush calls that sent something
}

func (p *batchPipe) Queue(frame []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, bytes.Clone(frame))
	p.queued++
	return nil
}

func (p *batchPipe) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *batchPipe) flushLocked() error {
	if len(p.pending) > 0 {
		p.flushes++
	}
	for _, f := range p.pending {
		if err := p.Memory.Send(f); err != nil {
			return err
		}
	}
	p.pending = p.pending[:0]
	return nil
}

func (p *batchPipe) Send(frame []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.flushLocked(); err != nil {
		return err
	}
	return p.Memory.Send(frame)
}

func (p *batchPipe) counts() (queued, flushes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queued, p.flushes
}

// On a Batcher the stack queues the segments of a window and flushes once
// per burst: a bulk transfer completes (nothing is left unflushed) with
// several frames per Flush.
func TestBatchedTransmit(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea, eb := &batchPipe{Memory: ma}, &batchPipe{Memory: mb}
	a, b := runPair(t, ea, eb, nil)
	data := randomBytes(3, 2<<20)
	got := acceptReadAll(t, b, 5001)
	c := dialB(t, a, 5001)
	writeAndClose(t, c, data, got)
	queued, flushes := ea.counts()
	if flushes == 0 || queued < 2*flushes {
		t.Errorf("sender queued %d frames in %d flushes, want at least 2 frames per flush", queued, flushes)
	}
	if ctr := a.Counters(); ctr.SendErrors != 0 {
		t.Errorf("sender counted %d send errors", ctr.SendErrors)
	}
}

// A Write or Read that blocks inside Burst sends what the burst queued
// before it waits: the bytes it waits on can only come once the peer has
// them, and the burst's own end would come only after the wait.
func TestBlockingCallsInsideBurst(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea := &batchPipe{Memory: ma}
	a, b := runPair(t, ea, mb, nil)
	data := randomBytes(9, 1<<20) // four times the first send buffer: the Write blocks
	got := acceptReadReply(t, b, 5003, len(data))
	c := dialB(t, a, 5003)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var reply string
	a.Burst(func() {
		if n, err := c.Write(data); n != len(data) || err != nil {
			t.Errorf("Write in a burst = %d, %v; want %d, nil", n, err, len(data))
			return
		}
		p := make([]byte, 16)
		n, err := c.Read(p)
		if err != nil {
			t.Errorf("Read in a burst: %v", err)
		}
		reply = string(p[:n])
	})
	if reply != "done" {
		t.Errorf("the reply read in the burst is %q, want \"done\"", reply)
	}
	select {
	case buf := <-got:
		if !bytes.Equal(buf, data) {
			t.Fatal("the receiver read other bytes than were written")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver did not get the data")
	}
}

// The event loop's own timer frames (a delayed ACK here) leave at once
// even while another goroutine holds a Burst open, which lasts as long as
// its f blocks: they must not wait for the burst's end or the loop's next
// poll.
func TestTimerFramesDoNotWaitForABurst(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea := &batchPipe{Memory: ma}
	a, b := runPair(t, ea, mb, func(c *Config) {
		c.PollInterval = time.Minute       // only a timer or a frame ends a poll
		c.TCP.InitialRTO = 2 * time.Second // B's resend would mask a late ACK
	})
	ln, err := b.Listen(5004)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := ln.AcceptConn(nil)
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- c
	}()
	c := dialB(t, a, 5004)
	defer c.Close()
	cb := <-accepted
	if cb == nil {
		return
	}
	defer cb.Close()
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Burst(func() { close(held); <-release })
	}()
	defer func() { close(release); <-done }()
	<-held
	if _, err := cb.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// A acknowledges one small segment only when its delayed-ACK timer
	// fires, in the loop's Advance, with A's burst still open.
	unacked := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return cb.tc.Queued()
	}
	for start := time.Now(); unacked() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("B's segment is still unacknowledged after 10 s")
		}
	}
	if r := b.Counters().TCPRetransmits; r != 0 {
		t.Errorf("B retransmitted %d times: A's delayed ACK waited for the burst", r)
	}
}
