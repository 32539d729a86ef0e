package stack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/tcp"
)

// runPipe is a batchPipe that takes TCP runs and cuts them as the kernel's
// tcp_gso_segment does: each piece gets the run's headers with its own
// sequence number, IP length and ID and checksums, and PSH only on the
// last. The pieces wait for Flush with the other queued frames, so a run
// that is never flushed, or queued out of order, shows. It keeps each
// run's head and payload views until the flush, as the offload link
// does, and counts a run whose bytes changed meanwhile; then it hands the
// head's array back, and counts the run ended (TCPRunsSent).
type runPipe struct {
	batchPipe
	runs, segs int
	tcp        int    // TCP segments queued, runs cut
	next       uint32 // the end of the highest data segment queued
	backwards  int    // data segments queued below next: out of order or resent
	sends      int    // Send calls: a kick where the stack may hold its lock

	taken      []takenRun // runs kept until the flush
	spare      [][]byte   // heads flushed, to hand back
	touched    int        // taken runs changed before their flush
	handedBack int        // spares handed back
	viewed     int        // payload bytes taken as views
	runsTaken  uint64
	runsEnded  uint64
}

// takenRun is a run TakeTCPSegments kept: its head, its payload views,
// and a copy of the whole run as taken.
type takenRun struct {
	head  []byte
	views [][]byte
	copy  []byte
}

func (p *runPipe) TCPRunsSent() (taken, ended uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runsTaken, p.runsEnded
}

func (p *runPipe) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkTaken()
	return p.flushLocked()
}

// checkTaken counts the taken frames changed since they were taken, and
// makes them spares; p.mu is held.
func (p *runPipe) checkTaken() {
	for _, t := range p.taken {
		if !bytes.Equal(joinViews(t.head, t.views), t.copy) {
			p.touched++
		}
		p.spare = append(p.spare, t.head[:0])
	}
	p.taken = p.taken[:0]
	p.runsEnded = p.runsTaken
}

func (p *runPipe) Queue(frame []byte) error {
	p.mu.Lock()
	p.order(frame)
	p.mu.Unlock()
	return p.batchPipe.Queue(frame)
}

func (p *runPipe) Send(frame []byte) error {
	p.mu.Lock()
	p.order(frame)
	p.sends++
	p.checkTaken() // Send flushes
	p.mu.Unlock()
	return p.batchPipe.Send(frame)
}

// order notes a TCP segment leaving: on a clean pipe each starts where
// the one before ended, unless it is resent (a tail loss probe fires when
// the test's goroutines are slow to run).
func (p *runPipe) order(frame []byte) {
	if len(frame) < EthernetHeaderLen+IPv4MinHeaderLen+20 || frame[EthernetHeaderLen+9] != protoTCP {
		return
	}
	p.tcp++
	ip := frame[EthernetHeaderLen:]
	t := ip[IPv4MinHeaderLen:]
	seq := binary.BigEndian.Uint32(t[4:8])
	n := uint32(int(binary.BigEndian.Uint16(ip[2:4])) - IPv4MinHeaderLen - int(t[12]>>4)*4)
	if t[13]&byte(tcp.FlagFIN) != 0 {
		n++
	}
	if n == 0 {
		return
	}
	if p.next != 0 && int32(seq-p.next) < 0 {
		p.backwards++
	}
	if p.next == 0 || int32(seq+n-p.next) > 0 {
		p.next = seq + n
	}
}

func (p *runPipe) MaxTCPSegments() int { return 8 }

// joinViews is head followed by the views, in a new array.
func joinViews(head []byte, views [][]byte) []byte {
	f := bytes.Clone(head)
	for _, v := range views {
		f = append(f, v...)
	}
	return f
}

func (p *runPipe) TakeTCPSegments(head []byte, views [][]byte, mss int) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	frame := joinViews(head, views)
	ip := frame[EthernetHeaderLen:]
	thl := int(ip[IPv4MinHeaderLen+12]>>4) * 4
	hdr := EthernetHeaderLen + IPv4MinHeaderLen + thl
	if binary.BigEndian.Uint16(ip[2:4]) != uint16(len(ip)) || len(frame)-hdr <= mss || (len(frame)-hdr+mss-1)/mss > 8 {
		return head[:0], errors.New("runPipe: not a run of 2 to 8 segments with its IPv4 length covering it")
	}
	p.runs++
	id := binary.BigEndian.Uint16(ip[4:6])
	seq := binary.BigEndian.Uint32(ip[IPv4MinHeaderLen+4:])
	src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	for off := hdr; off < len(frame); off += mss {
		end := min(off+mss, len(frame))
		d := append(append([]byte(nil), frame[:hdr]...), frame[off:end]...)
		dip := d[EthernetHeaderLen:]
		binary.BigEndian.PutUint16(dip[2:4], uint16(len(dip)))
		binary.BigEndian.PutUint16(dip[4:6], id)
		id++
		dip[10], dip[11] = 0, 0
		binary.BigEndian.PutUint16(dip[10:12], checksum(dip[:IPv4MinHeaderLen], 0))
		t := dip[IPv4MinHeaderLen:]
		binary.BigEndian.PutUint32(t[4:8], seq+uint32(off-hdr))
		if end < len(frame) {
			t[13] &^= byte(tcp.FlagPSH)
		}
		t[16], t[17] = 0, 0
		binary.BigEndian.PutUint16(t[16:18], checksum(t, pseudoSum(src, dst, protoTCP, len(t))))
		p.order(d)
		p.pending = append(p.pending, d)
		p.segs++
		p.queued++
	}
	p.taken = append(p.taken, takenRun{head, append([][]byte(nil), views...), frame})
	for _, v := range views {
		p.viewed += len(v)
	}
	p.runsTaken++
	if n := len(p.spare); n > 0 {
		spare := p.spare[n-1]
		p.spare = p.spare[:n-1]
		p.handedBack++
		return spare, nil
	}
	return nil, nil
}

// On a link that cuts TCP runs, the segments of a write leave as one run
// with the write's burst: the receiver reads them at once, with no
// retransmission timeout. A bulk transfer's windows leave as runs of
// several segments, and the receiver reads every byte from segments whose
// checksums verify, in the order sent: a segment leaves behind a later
// one only when it is resent.
func TestJoinedTCPRuns(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea := &runPipe{batchPipe: batchPipe{Memory: ma}}
	a, b := runPair(t, ea, mb, nil)
	first, data := randomBytes(4, 6000), randomBytes(5, 2<<20)
	got := acceptServe(t, b, 5001, func(c *Conn, got chan<- []byte) {
		head := make([]byte, len(first))
		c.SetReadDeadline(time.Now().Add(150 * time.Millisecond)) // before the 200ms RTO
		if _, err := io.ReadFull(c, head); err != nil {
			t.Errorf("reading the first write: %v", err)
		}
		got <- head
		c.SetReadDeadline(time.Time{})
		all, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("ReadAll: %v", err)
		}
		got <- all
	})
	c := dialB(t, a, 5001)
	if n, err := c.Write(first); n != len(first) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(first))
	}
	// Outside a burst (this test runs no hook) no run waits for a seal.
	a.mu.Lock()
	pending := a.txRun.conn != nil
	a.mu.Unlock()
	if pending {
		t.Error("a run is still pending after the write's burst ended")
	}
	select {
	case r := <-got:
		if !bytes.Equal(r, first) {
			t.Fatalf("the first write: received %d bytes, not the %d sent", len(r), len(first))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first write did not arrive: its run was never flushed?")
	}
	writeAndClose(t, c, data, got)
	// Under the sender's lock nothing new is queued: the pipe has seen
	// every segment the stack counted.
	a.mu.Lock()
	ea.mu.Lock()
	runs, segs, backwards, tcpFrames, tcpOut := ea.runs, ea.segs, ea.backwards, ea.tcp, a.ctr.TCPOut
	ea.mu.Unlock()
	a.mu.Unlock()
	if runs == 0 || segs < 4*runs {
		t.Errorf("%d runs of %d segments in all, want runs of 4 or more on average", runs, segs)
	}
	if uint64(tcpFrames) != tcpOut {
		t.Errorf("sender counted tcp.out %d, the link took %d TCP segments: a run's segments are counted one by one", tcpOut, tcpFrames)
	}
	ea.mu.Lock()
	touched, handedBack, viewed := ea.touched, ea.handedBack, ea.viewed
	ea.mu.Unlock()
	if touched != 0 || handedBack == 0 {
		t.Errorf("the bytes of %d runs the link had taken changed before their flush; the link handed back %d arrays to build in, want some", touched, handedBack)
	}
	if viewed < len(data)/2 {
		t.Errorf("%d of the %d bytes sent went as views of the send queue, want most", viewed, len(data))
	}
	ca, cb := a.Counters(), b.Counters()
	if uint64(backwards) > ca.TCPRetransmits || ca.SendErrors != 0 {
		t.Errorf("%d segments left behind one made after them, %d retransmitted; %d send errors", backwards, ca.TCPRetransmits, ca.SendErrors)
	}
	if cb.TCPBadChecksum != 0 || cb.IPv4BadChecksum != 0 {
		t.Errorf("receiver dropped %d TCP and %d IPv4 bad checksums", cb.TCPBadChecksum, cb.IPv4BadChecksum)
	}
}

// A run leaves before the frames made after it in the same burst: a
// write and a close in one burst put the data, as one run, before the
// FIN, which no run can carry.
func TestRunLeavesBeforeLaterFrames(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea := &runPipe{batchPipe: batchPipe{Memory: ma}}
	a, b := runPair(t, ea, mb, nil)
	data := randomBytes(6, 6000)
	got := acceptReadAll(t, b, 5001)
	c := dialB(t, a, 5001)
	var werr, cerr error
	a.Burst(func() {
		_, werr = c.Write(data)
		cerr = c.Close()
	})
	if werr != nil || cerr != nil {
		t.Fatalf("Write: %v, Close: %v", werr, cerr)
	}
	select {
	case all := <-got:
		if !bytes.Equal(all, data) {
			t.Fatalf("received %d bytes, not the %d sent", len(all), len(data))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the data and FIN did not arrive")
	}
	retx := a.Counters().TCPRetransmits // before ea.mu: the stack queues under its lock
	ea.mu.Lock()
	defer ea.mu.Unlock()
	if ea.runs != 1 || uint64(ea.backwards) > retx {
		t.Errorf("%d runs, %d segments left behind one made after them (%d resent); want 1 run, in order", ea.runs, ea.backwards, retx)
	}
}

// A write of less than a segment is a run of one: it is queued with its
// burst and leaves with the burst's flush, after the stack's lock is
// released, never by Send, which would kick the link under the lock.
func TestLoneSegmentQueued(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea := &runPipe{batchPipe: batchPipe{Memory: ma}}
	a, b := runPair(t, ea, mb, nil)
	data := randomBytes(8, 20*100)
	got := acceptReadAll(t, b, 5001)
	c := dialB(t, a, 5001)
	for i := 0; i < len(data); i += 100 {
		if _, err := c.Write(data[i : i+100]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if all := <-got; !bytes.Equal(all, data) {
		t.Fatalf("received %d bytes, not the %d written", len(all), len(data))
	}
	ea.mu.Lock()
	defer ea.mu.Unlock()
	if ea.sends != 0 {
		t.Errorf("%d frames went out by Send, a kick under the stack's lock; want all queued", ea.sends)
	}
}

// An array that a connection's queue lets go of while a run still sends
// from it (views of the queue, in a run not yet flushed) is not handed to
// another connection's queue before the run has left: that queue's
// writes would be sent in the first one's place (viewsFence).
func TestRunViewsOutliveTheirQueue(t *testing.T) {
	ma, mb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	ea := &runPipe{batchPipe: batchPipe{Memory: ma}}
	a, b := runPair(t, ea, mb, nil)
	got1, got2 := acceptReadAll(t, b, 5001), acceptReadAll(t, b, 5002)
	c1, c2 := dialB(t, a, 5001), dialB(t, a, 5002)
	d1, d2 := randomBytes(9, 30000), randomBytes(10, 8000)
	var errs [3]error
	a.Burst(func() {
		_, errs[0] = c1.Write(d1[:6000]) // a run of views of c1's queue's 8 KiB array
		_, errs[1] = c1.Write(d1[6000:]) // which the queue outgrows
		_, errs[2] = c2.Write(d2)        // c2's queue wants an 8 KiB array
	})
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*Conn{c1, c2} {
		if err := c.Close(); err != nil {
			t.Fatalf("close %d: %v", i+1, err)
		}
	}
	for i, w := range []struct {
		got  <-chan []byte
		want []byte
	}{{got1, d1}, {got2, d2}} {
		select {
		case all := <-w.got:
			if !bytes.Equal(all, w.want) {
				t.Errorf("connection %d delivered %d bytes, not the %d written", i+1, len(all), len(w.want))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d's data did not arrive", i+1)
		}
	}
	ea.mu.Lock()
	defer ea.mu.Unlock()
	if ea.viewed == 0 {
		t.Fatal("no run sent from a queue's array: the test tests nothing")
	}
	if ea.touched != 0 {
		t.Errorf("%d runs changed between their Take and their flush: an array they sent from was reused", ea.touched)
	}
}

// A stack built on the pool of one that closed sends from its own queues:
// the closed stack cleared the pool's fence, so the pool takes the new
// stack's and no longer keeps the closed one. While both are open, the
// second copies (a pool has one fence).
func TestClosedStackClearsItsPoolsFence(t *testing.T) {
	pool := tcp.NewBufferPool(1 << 20)
	open := func() *Stack {
		m, peer := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
		t.Cleanup(func() { m.Close(); peer.Close() })
		s, err := New(Config{Addr: addrA, Seed: 11, TCP: tcp.Config{Buffers: pool}}, &runPipe{batchPipe: batchPipe{Memory: m}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := open()
	if !first.runViews {
		t.Fatal("the first stack on a pool copies its runs")
	}
	second := open()
	if second.runViews {
		t.Error("two open stacks send from their queues under one fence")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if third := open(); !third.runViews {
		t.Error("a stack built after the fenced one closed copies its runs: the pool kept the closed stack's fence")
	}
}
