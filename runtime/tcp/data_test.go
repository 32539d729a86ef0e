package tcp

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// dataSeg is a segment from A to B carrying p at seq.
func dataSeg(a, b *Conn, seq uint32, p []byte) Segment {
	return Segment{SrcPort: addrA.Port(), DstPort: addrB.Port(), Seq: seq, Ack: b.sndNxt, Flags: FlagACK, Window: 1000, Payload: p}
}

func readAll(t testing.TB, c *Conn) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil || n == 0 {
			return out
		}
	}
}

func TestDelayedACK(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: 40 * time.Millisecond})
	seq := a.sndNxt
	one := dataSeg(a, b, seq, make([]byte, 1000))
	b.Input(now, &one)
	if segs := emitted(b, now); len(segs) != 0 {
		t.Fatalf("one full segment was ACKed at once (%v); want a delayed ACK", segs)
	}
	if d, ok := b.Deadline(); !ok || d != now+40*time.Millisecond {
		t.Fatalf("Deadline = %v, %v; want the delayed-ACK time %v", d, ok, now+40*time.Millisecond)
	}
	if segs := emitted(b, now+39*time.Millisecond); len(segs) != 0 {
		t.Fatalf("ACK sent before the delayed-ACK timer: %v", segs)
	}
	ack := only(t, "delayed ACK", emitted(b, now+40*time.Millisecond))
	if ack.Ack != seq+1000 || ack.Flags != FlagACK {
		t.Fatalf("delayed ACK = %v, want ACK %d", ack.String(), seq+1000)
	}
	// Every second full segment is ACKed at once.
	now += 50 * time.Millisecond
	s2 := dataSeg(a, b, seq+1000, make([]byte, 1000))
	s3 := dataSeg(a, b, seq+2000, make([]byte, 1000))
	b.Input(now, &s2)
	b.Input(now, &s3)
	if ack := only(t, "ACK of two segments", emitted(b, now)); ack.Ack != seq+3000 {
		t.Fatalf("ACK = %v, want ack %d", ack.String(), seq+3000)
	}
	// Out-of-order data is ACKed at once with a duplicate ACK.
	s5 := dataSeg(a, b, seq+4000, make([]byte, 1000))
	b.Input(now, &s5)
	if ack := only(t, "duplicate ACK for a hole", emitted(b, now)); ack.Ack != seq+3000 {
		t.Fatalf("ACK for out-of-order data = %v, want ack %d", ack.String(), seq+3000)
	}
	// Filling the hole is ACKed at once too.
	s4 := dataSeg(a, b, seq+3000, make([]byte, 1000))
	b.Input(now, &s4)
	if ack := only(t, "ACK after the hole filled", emitted(b, now)); ack.Ack != seq+5000 {
		t.Fatalf("ACK after filling = %v, want ack %d", ack.String(), seq+5000)
	}
}

func TestDelayedACKDisabled(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	s := dataSeg(a, b, a.sndNxt, []byte("hi"))
	b.Input(now, &s)
	only(t, "immediate ACK", emitted(b, now))
}

func TestReassemblyOutOfOrder(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{RecvBuffer: 64 << 10})
	data := payload(20*1000, 3)
	seq := a.sndNxt
	// Deliver 20 segments in reverse order, with duplicates.
	for i := 19; i >= 0; i-- {
		s := dataSeg(a, b, seq+uint32(i*1000), data[i*1000:(i+1)*1000])
		b.Input(now, &s)
		if i%3 == 0 {
			b.Input(now, &s)
		}
		if i > 0 && b.Readable() != 0 {
			t.Fatalf("%d bytes readable before the first segment arrived", b.Readable())
		}
	}
	if got := readAll(t, b); !bytes.Equal(got, data) {
		t.Fatalf("reassembled %d bytes differ from the %d sent (first diff at %d)", len(got), len(data), firstDiff(got, data))
	}
	if b.Stats().OutOfOrder < 19 {
		t.Fatalf("OutOfOrder = %d, want >= 19", b.Stats().OutOfOrder)
	}
}

func TestReassemblyBoundedByWindow(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{RecvBuffer: 4000})
	seq := a.sndNxt
	// Beyond the 4000-byte window: dropped, answered with an ACK.
	far := dataSeg(a, b, seq+4000, make([]byte, 100))
	b.Input(now, &far)
	if ack := only(t, "ACK for data beyond the window", emitted(b, now)); ack.Ack != seq {
		t.Fatalf("ACK = %v, want ack %d", ack.String(), seq)
	}
	// Straddling the right edge: the part inside is kept.
	edge := dataSeg(a, b, seq+3900, bytes.Repeat([]byte{7}, 200))
	b.Input(now, &edge)
	if b.ooo.bytes() != 100 {
		t.Fatalf("parked %d out-of-order bytes, want the 100 inside the window", b.ooo.bytes())
	}
	// More holes than the tracker holds: the extra segment is dropped, not parked.
	for i := 0; i < maxHoles+4; i++ {
		s := dataSeg(a, b, seq+uint32(100+i*150), []byte{1})
		b.Input(now, &s)
	}
	if b.ooo.n > maxHoles {
		t.Fatalf("tracker holds %d ranges, limit %d", b.ooo.n, maxHoles)
	}
}

func TestOutOfOrderFIN(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{})
	seq := a.sndNxt
	finSeg := dataSeg(a, b, seq+5, []byte("world"))
	finSeg.Flags |= FlagFIN
	b.Input(now, &finSeg)
	if b.State() != StateEstablished {
		t.Fatalf("state %v after an out-of-order FIN, want ESTABLISHED", b.State())
	}
	first := dataSeg(a, b, seq, []byte("hello"))
	b.Input(now, &first)
	if b.State() != StateCloseWait {
		t.Fatalf("state %v once the gap before the FIN filled, want CLOSE-WAIT", b.State())
	}
	if got := readAll(t, b); string(got) != "helloworld" {
		t.Fatalf("read %q, want helloworld", got)
	}
	if _, err := b.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after the FIN = %v, want io.EOF", err)
	}
	if ack := only(t, "ACK of FIN", emitted(b, now)); ack.Ack != seq+11 {
		t.Fatalf("ACK = %v, want ack %d covering the FIN", ack.String(), seq+11)
	}
}

func TestWindowScaledNeverZeroAndNeverPastTheBuffer(t *testing.T) {
	// A 1 MiB buffer uses shift 5. The window must be computed in 32 bits:
	// a 16-bit intermediate would wrap 1 MiB>>0 to 0 (the authors' bug).
	// A held edge may retract by less than one scale unit (RFC 7323 §2.4)
	// but never by more, and never past the end of the buffer.
	a, b, now := establish(t, Config{}, Config{RecvBuffer: 1 << 20, DelayedACK: -1})
	_ = a
	seq := a.sndNxt
	var lastRight uint32
	for i, n := range []int{100, 37, 1, 999, 31, 1460, 3, 77, 1460, 5} {
		s := dataSeg(a, b, seq, make([]byte, n))
		b.Input(now, &s)
		seq += uint32(n)
		ack := only(t, "ACK", emitted(b, now))
		if ack.Window == 0 {
			t.Fatalf("ACK %d advertises a zero window with %d bytes buffered", i, b.Readable())
		}
		right := ack.Ack + uint32(ack.Window)<<5
		if i > 0 && seqLT(right, lastRight) && lastRight-right >= 1<<5 {
			t.Fatalf("ACK %d moves the right edge left by a scale unit or more: %d < %d", i, right, lastRight)
		}
		if end := b.rcvBufEnd(); seqGT(right, end) {
			t.Fatalf("ACK %d promises %d bytes past the buffer's end", i, right-end)
		}
		lastRight = right
	}
}

func TestWindowFieldRoundsUpRatherThanShrink(t *testing.T) {
	c := &Conn{rcvShift: 7, rcvBuf: newRing(1<<20, nil), rcvNxt: 1000}
	w0 := c.windowField(false)
	right0 := c.rcvNxt + uint32(w0)<<7
	// 100 bytes arrive (not a multiple of 128) and stay unread.
	c.rcvBuf.write(make([]byte, 100))
	c.rcvNxt += 100
	w1 := c.windowField(false)
	if right1 := c.rcvNxt + uint32(w1)<<7; seqLT(right1, right0) {
		t.Fatalf("right edge moved from %d to %d", right0, right1)
	}
}

func TestZeroWindowProbeAndUpdate(t *testing.T) {
	n := newNet(t, 5)
	n.dial(Config{InitialRTO: 200 * time.Millisecond}, Config{RecvBuffer: 4000})
	data := payload(20000, 5)
	pa := &pump{data: data}
	reading := false
	var got []byte
	n.app = func() {
		pa.c = n.a
		pa.work()
		if reading && n.b != nil {
			got = append(got, readAll(t, n.b)...)
		}
	}
	// B never reads: A fills B's window, then probes.
	n.run(10*time.Second, func() bool { return false })
	if n.a.sndWnd != 0 || n.a.Stats().WindowProbes < 3 {
		t.Fatalf("after 10 s of a full receiver: A's window %d, probes %d; want 0 and >= 3", n.a.sndWnd, n.a.Stats().WindowProbes)
	}
	if n.a.State() != StateEstablished || n.a.Err() != nil {
		t.Fatalf("zero-window probing failed the connection: %v %v", n.a.State(), n.a.Err())
	}
	// The persist interval backs off.
	if iv := n.a.persistInterval(); iv <= 200*time.Millisecond {
		t.Fatalf("persist interval %v did not back off", iv)
	}
	// Drop B's first window update; the next probe must recover the window.
	dropped := false
	n.drop = func(fromA bool, s *Segment) bool {
		if !fromA && !dropped && s.Window > 0 {
			dropped = true
			return true
		}
		return false
	}
	reading = true
	if !n.run(2*time.Minute, func() bool { return len(got) == len(data) }) {
		t.Fatalf("received %d of %d bytes after the reader woke up", len(got), len(data))
	}
	if !dropped || !bytes.Equal(got, data) {
		t.Fatalf("dropped=%v, data intact=%v", dropped, bytes.Equal(got, data))
	}
}

func TestRTTEstimator(t *testing.T) {
	c := newConn(Config{MinRTO: time.Millisecond}, ID{}, 0, 0)
	c.rttSample(100 * time.Millisecond)
	if c.srtt != 100*time.Millisecond || c.rttvar != 50*time.Millisecond || c.rto != 300*time.Millisecond {
		t.Fatalf("first sample: srtt %v rttvar %v rto %v; want 100ms 50ms 300ms", c.srtt, c.rttvar, c.rto)
	}
	c.rttSample(100 * time.Millisecond)
	if c.srtt != 100*time.Millisecond || c.rttvar != 37500*time.Microsecond || c.rto != 250*time.Millisecond {
		t.Fatalf("second sample: srtt %v rttvar %v rto %v; want 100ms 37.5ms 250ms", c.srtt, c.rttvar, c.rto)
	}
	c.rttSample(20 * time.Millisecond)
	if c.srtt != 90*time.Millisecond || c.rttvar != 48125*time.Microsecond {
		t.Fatalf("third sample: srtt %v rttvar %v; want 90ms 48.125ms", c.srtt, c.rttvar)
	}
	// MinRTO and MaxRTO clamp.
	d := newConn(Config{MinRTO: 200 * time.Millisecond, MaxRTO: time.Second}, ID{}, 0, 0)
	d.rttSample(time.Millisecond)
	if d.rto != 200*time.Millisecond {
		t.Fatalf("rto %v below MinRTO 200ms", d.rto)
	}
	d.rttSample(5 * time.Second)
	if d.rto != time.Second {
		t.Fatalf("rto %v above MaxRTO 1s", d.rto)
	}
}

func TestRetransmissionTimeoutBackoffAndFailure(t *testing.T) {
	a, _, now := establish(t, Config{InitialRTO: time.Second, MinRTO: time.Second, MaxRTO: 8 * time.Second, MaxRetries: 6}, Config{})
	a.Write([]byte("lost forever"))
	first := only(t, "data", emitted(a, now))
	var gaps []Time
	for a.State() == StateEstablished {
		d, ok := a.Deadline()
		if !ok {
			t.Fatalf("no deadline with data outstanding")
		}
		gaps = append(gaps, d-now)
		now = d
		segs := emitted(a, now)
		if a.State() != StateEstablished {
			break
		}
		re := only(t, "retransmission", segs)
		if re.Seq != first.Seq || !bytes.Equal(re.Payload, first.Payload) {
			t.Fatalf("retransmission %v differs from the original %v", re.String(), first.String())
		}
	}
	// The handshake sample set the RTO to MinRTO (1s); it doubles up to 8s.
	want := []Time{1, 2, 4, 8, 8, 8, 8}
	if len(gaps) != len(want) {
		t.Fatalf("timeout gaps %v, want %d of them", gaps, len(want))
	}
	for i := range want {
		if gaps[i] != want[i]*time.Second {
			t.Fatalf("timeout gaps %v, want %v seconds", gaps, want)
		}
	}
	if a.State() != StateClosed || a.Err() != ErrTimeout {
		t.Fatalf("after MaxRetries: %v %v, want CLOSED ErrTimeout", a.State(), a.Err())
	}
	if a.Stats().Timeouts != 6 {
		t.Fatalf("Timeouts = %d, want 6", a.Stats().Timeouts)
	}
}

func TestKarnNoSampleFromRetransmission(t *testing.T) {
	a, b, now := establish(t, classic(Config{InitialRTO: time.Second, MinRTO: time.Second}), classic(Config{DelayedACK: -1}))
	samples := a.Stats().RTTSamples
	a.Write([]byte("x"))
	emitted(a, now) // lost
	now += 1500 * time.Millisecond
	re := only(t, "retransmission", emitted(a, now))
	b.Input(now, &re)
	now += 10 * time.Millisecond
	feed(a, now, emitted(b, now))
	if a.Stats().RTTSamples != samples {
		t.Fatalf("an RTT sample was taken from a retransmitted segment")
	}
	if a.sndUna != a.sndMax {
		t.Fatalf("retransmission not acknowledged")
	}
}

// dropFirst drops the first transmission of data segments whose sequence
// offset from base is in offs.
func dropFirst(base *uint32, offs ...uint32) func(bool, *Segment) bool {
	seen := map[uint32]bool{}
	return func(fromA bool, s *Segment) bool {
		if !fromA || len(s.Payload) == 0 {
			return false
		}
		off := s.Seq - *base
		for _, o := range offs {
			if off == o && !seen[o] {
				seen[o] = true
				return true
			}
		}
		return false
	}
}

func TestFastRetransmit(t *testing.T) {
	n := newNet(t, 6)
	n.dial(classic(Config{MSS: 1000}), classic(Config{MSS: 1000}))
	base := uint32(1001)
	n.drop = dropFirst(&base, 20000)
	exchange(t, n, payload(200000, 6), nil, time.Minute)
	st := n.a.Stats()
	if st.FastRetransmits != 1 || st.Timeouts != 0 {
		t.Fatalf("one loss: FastRetransmits %d Timeouts %d, want 1 and 0 (%+v)", st.FastRetransmits, st.Timeouts, st)
	}
	if st.DupAcks < 3 {
		t.Fatalf("DupAcks = %d, want >= 3", st.DupAcks)
	}
}

// TestResendsAreCopiesNotQueueViews: a resend's bytes may be acknowledged
// (its first copy arrived) and their room in the send queue reused by a
// write before the link sends it, so Output copies them; only first
// transmissions are views of the queue.
func TestResendsAreCopiesNotQueueViews(t *testing.T) {
	n := newNet(t, 11)
	n.dial(classic(Config{MSS: 1000}), classic(Config{MSS: 1000}))
	base := uint32(1001)
	// Three losses in a window (fast retransmit, partial ACKs) and the
	// last segment (a timeout).
	n.drop = dropFirst(&base, 30000, 33000, 36000, 199000)
	high := base
	var firsts, views, resends int
	n.tap = func(fromA bool, s *Segment) {
		if !fromA || len(s.Payload) == 0 {
			return
		}
		if seqLT(s.Seq, high) {
			resends++
			if s.PayloadQueued {
				t.Errorf("resend of %d bytes at offset %d is a view of the send queue", len(s.Payload), s.Seq-base)
			}
		} else {
			firsts++
			if s.PayloadQueued {
				views++
			}
		}
		if end := s.Seq + uint32(len(s.Payload)); seqLT(high, end) {
			high = end
		}
	}
	exchange(t, n, payload(200000, 11), nil, time.Minute)
	if st := n.a.Stats(); resends < 4 || st.Timeouts+st.TailLossProbes == 0 {
		t.Fatalf("%d resends, %d timeouts, %d tail-loss probes: want the four losses resent, the last by a timeout or probe", resends, st.Timeouts, st.TailLossProbes)
	}
	if views == 0 {
		t.Fatalf("none of %d first transmissions was a view of the send queue", firsts)
	}
}

func TestNewRenoPartialACK(t *testing.T) {
	// Three losses in one window: NewReno repairs one per round trip on
	// partial ACKs, without a timeout (Reno would need one).
	n := newNet(t, 7)
	n.dial(classic(Config{MSS: 1000}), classic(Config{MSS: 1000}))
	base := uint32(1001)
	n.drop = dropFirst(&base, 30000, 33000, 36000)
	exchange(t, n, payload(200000, 7), nil, time.Minute)
	st := n.a.Stats()
	if st.FastRetransmits != 1 || st.Timeouts != 0 || st.Retransmits < 3 {
		t.Fatalf("three losses in a window: FastRetransmits %d Timeouts %d Retransmits %d, want 1, 0, >= 3", st.FastRetransmits, st.Timeouts, st.Retransmits)
	}
}

func TestSlowStartThenCongestionAvoidance(t *testing.T) {
	a, b, now := establish(t, classic(Config{MSS: 1000, SendBuffer: 1 << 20}), classic(Config{MSS: 1000, RecvBuffer: 1 << 20, DelayedACK: -1}))
	if a.cwnd != 10000 {
		t.Fatalf("initial cwnd = %d, want 10000 (RFC 6928 for MSS 1000)", a.cwnd)
	}
	a.Write(make([]byte, 1<<20))
	// One round: 10 segments out, 10 ACKs in → cwnd doubles.
	segs := emitted(a, now)
	if len(segs) != 10 {
		t.Fatalf("first flight = %d segments, want 10 (initial window)", len(segs))
	}
	for i := range segs {
		b.Input(now, &segs[i])
		feed(a, now, emitted(b, now))
	}
	if a.cwnd != 20000 {
		t.Fatalf("cwnd after one slow-start round = %d, want 20000", a.cwnd)
	}
	// With a large MSS the initial window is two segments (RFC 6928).
	big := Dial(classic(Config{MSS: 9000}), ID{Local: addrA, Remote: addrB}, 1, 0)
	big.sndMSS = 9000
	big.resetCwnd()
	if big.cwnd != 18000 {
		t.Fatalf("initial cwnd for MSS 9000 = %d, want 18000", big.cwnd)
	}
	// In congestion avoidance a full window of ACKs adds about one MSS.
	a.ssthresh = a.cwnd
	before := a.cwnd
	segs = emitted(a, now)
	for i := range segs {
		b.Input(now, &segs[i])
		feed(a, now, emitted(b, now))
	}
	if grew := a.cwnd - before; grew < 900 || grew > 1100 {
		t.Fatalf("congestion avoidance grew cwnd by %d over one window, want about one MSS", grew)
	}
}

func TestWindowUpdateOnRead(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{RecvBuffer: 4000, MSS: 1000, DelayedACK: -1})
	a.Write(make([]byte, 4000))
	pingPong(a, b, now)
	if a.sndWnd != 0 || b.Readable() != 4000 {
		t.Fatalf("setup: A sees window %d, B holds %d; want 0 and 4000", a.sndWnd, b.Readable())
	}
	// A tiny read does not announce a tiny window (receiver SWS avoidance).
	b.Read(make([]byte, 10))
	if segs := emitted(b, now); len(segs) != 0 {
		t.Fatalf("10-byte read announced a window: %v", segs)
	}
	// Reading an MSS worth does.
	b.Read(make([]byte, 1000))
	upd := only(t, "window update", emitted(b, now))
	if upd.Window < 1000 || upd.Flags != FlagACK {
		t.Fatalf("window update = %v, want an ACK opening >= 1000 bytes", upd.String())
	}
	a.Input(now, &upd)
	if a.sndWnd < 1000 {
		t.Fatalf("A's window after the update = %d", a.sndWnd)
	}
}

func TestDuplicateACKPerOutOfOrderSegment(t *testing.T) {
	// Three out-of-order segments handled in one batch still produce three
	// duplicate ACKs, or the sender could not count to three.
	a, b, now := establish(t, Config{}, Config{})
	seq := a.sndNxt
	for i := 1; i <= 3; i++ {
		s := dataSeg(a, b, seq+uint32(i*100), make([]byte, 100))
		b.Input(now, &s)
	}
	acks := emitted(b, now)
	if len(acks) != 3 {
		t.Fatalf("emitted %d ACKs for 3 out-of-order segments, want 3", len(acks))
	}
	for _, ack := range acks {
		if ack.Ack != seq || len(ack.Payload) != 0 {
			t.Fatalf("duplicate ACK = %v, want ack %d", ack.String(), seq)
		}
	}
}

// A reader that keeps up never holds the sender back, so reading sends no
// window updates of its own (Linux's tcp_cleanup_rbuf): the receiver's
// ACKs stay about one per two segments (RFC 5681's delayed ACK) instead
// of one per read.
func TestReadsAddNoACKsWhileTheWindowIsOpen(t *testing.T) {
	n := newNet(t, 70)
	n.dial(Config{MSS: 1000}, Config{MSS: 1000})
	data := payload(300000, 70)
	exchange(t, n, data, nil, time.Minute)
	segs, acks := n.a.Stats().SegmentsOut, n.b.Stats().SegmentsOut
	t.Logf("%d segments, %d ACKs", segs, acks)
	if acks > segs*6/10 {
		t.Fatalf("the receiver sent %d segments for %d data segments, want about half as many", acks, segs)
	}
}
