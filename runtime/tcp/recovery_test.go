package tcp

import (
	"bytes"
	"testing"
	"time"
)

// dropAcksFrom drops the first copy of each pure ACK from B that
// acknowledges at least min bytes beyond base.
func dropAcksFrom(base *uint32, min uint32) func(bool, *Segment) bool {
	seen := map[uint32]bool{}
	return func(fromA bool, s *Segment) bool {
		if fromA || len(s.Payload) != 0 || s.Flags != FlagACK || seqLT(s.Ack, *base+min) || seen[s.Ack] {
			return false
		}
		seen[s.Ack] = true
		return true
	}
}

// A lost tail draws no duplicate ACKs; the tail loss probe (RFC 8985 §7)
// resends the last segment after about 2*SRTT instead of waiting for the
// RTO (200 ms here, 20 round trips).
func TestTailLossProbe(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop func(base *uint32) func(bool, *Segment) bool
	}{
		// The probe itself repairs the only loss.
		{"last segment lost", func(base *uint32) func(bool, *Segment) bool { return dropFirst(base, 29000) }},
		// The probe's duplicate ACK starts fast recovery; NewReno's partial
		// ACKs repair the rest.
		{"last three segments lost", func(base *uint32) func(bool, *Segment) bool { return dropFirst(base, 27000, 28000, 29000) }},
		// Every segment arrived but the ACKs of the tail did not: the
		// probe draws a fresh ACK.
		{"ACKs of the tail lost", func(base *uint32) func(bool, *Segment) bool { return dropAcksFrom(base, 24000) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t, 11)
			n.dial(classic(Config{MSS: 1000}), classic(Config{MSS: 1000, DelayedACK: -1}))
			base := uint32(1001)
			n.drop = tc.drop(&base)
			start := n.now
			exchange(t, n, payload(30000, 11), nil, time.Minute)
			// B may have read everything while A still waits for the ACKs.
			if !n.run(time.Minute, func() bool { return n.a.sndUna == n.a.sndMax }) {
				t.Fatalf("A's data never fully acknowledged: una %d max %d", n.a.sndUna, n.a.sndMax)
			}
			st := n.a.Stats()
			if st.Timeouts != 0 || st.TailLossProbes == 0 {
				t.Fatalf("Timeouts %d TailLossProbes %d, want 0 and >= 1 (%+v)", st.Timeouts, st.TailLossProbes, st)
			}
			if took := n.now - start; took > 150*time.Millisecond {
				t.Fatalf("the transfer took %v; a 10 ms RTT path with a 200 ms RTO should finish in well under 150 ms", took)
			}
		})
	}
}

// With the ACKs of a transfer flowing normally no probe is sent: the
// probe timer is always re-armed before it fires.
func TestNoProbeWithoutLoss(t *testing.T) {
	n := newNet(t, 12)
	n.dial(Config{MSS: 1000}, Config{MSS: 1000})
	exchange(t, n, payload(300000, 12), nil, time.Minute)
	if st := n.a.Stats(); st.TailLossProbes != 0 || st.Retransmits != 0 {
		t.Fatalf("clean path: TailLossProbes %d Retransmits %d, want 0 and 0", st.TailLossProbes, st.Retransmits)
	}
}

// Limited transmit (RFC 3042): with three segments in flight and the
// first lost, the two duplicate ACKs each release one new segment, whose
// ACKs make the third duplicate ACK: fast retransmit, not a timeout.
func TestLimitedTransmit(t *testing.T) {
	a, b, now := establish(t, classic(Config{MSS: 1000}), classic(Config{MSS: 1000, DelayedACK: -1}))
	// One exchange first, so that B's ACKs carry the window it keeps
	// (a changed window would not make a duplicate ACK).
	a.Write(make([]byte, 1000))
	pingPong(a, b, now)
	a.cwnd = 3000
	a.Write(make([]byte, 10000))
	segs := emitted(a, now)
	if len(segs) != 3 {
		t.Fatalf("flight = %d segments, want 3 (cwnd 3000)", len(segs))
	}
	now += time.Millisecond
	feed(b, now, segs[1:]) // the first is lost
	dups := emitted(b, now)
	if len(dups) != 2 {
		t.Fatalf("B sent %d ACKs for two out-of-order segments, want 2", len(dups))
	}
	now += time.Millisecond
	feed(a, now, dups)
	fresh := emitted(a, now)
	if len(fresh) != 2 || fresh[0].Seq != segs[2].Seq+1000 {
		t.Fatalf("after two duplicate ACKs A sent %d segments, want the next two new ones", len(fresh))
	}
	if st := a.Stats(); st.LimitedTransmit != 2 || a.cwnd != 3000 {
		t.Fatalf("LimitedTransmit %d cwnd %d, want 2 and an unchanged 3000", st.LimitedTransmit, a.cwnd)
	}
	now += time.Millisecond
	feed(b, now, fresh)
	feed(a, now, emitted(b, now))
	re := emitted(a, now)
	if len(re) == 0 || re[0].Seq != segs[0].Seq || a.Stats().FastRetransmits != 1 {
		t.Fatalf("after the third duplicate ACK A sent %d segments (FastRetransmits %d), want the lost segment at %d first", len(re), a.Stats().FastRetransmits, segs[0].Seq)
	}
}

// dropCopies drops the first n transmissions of the data segment at
// offset off from base.
func dropCopies(base *uint32, off uint32, n int) func(bool, *Segment) bool {
	dropped := 0
	return func(fromA bool, s *Segment) bool {
		if !fromA || len(s.Payload) == 0 || s.Seq-*base != off || dropped == n {
			return false
		}
		dropped++
		return true
	}
}

// When the fast retransmission is lost too, the duplicate ACKs keep
// coming for longer than the flight it was sent behind: it goes out again
// without waiting for the RTO.
func TestLostRetransmissionInRecovery(t *testing.T) {
	n := newNet(t, 13)
	n.dial(classic(Config{MSS: 1000}), classic(Config{MSS: 1000}))
	base := uint32(1001)
	n.drop = dropCopies(&base, 40000, 2)
	start := n.now
	exchange(t, n, payload(300000, 13), nil, time.Minute)
	if !n.run(time.Minute, func() bool { return n.a.sndUna == n.a.sndMax }) {
		t.Fatalf("A's data never fully acknowledged")
	}
	st := n.a.Stats()
	if st.Timeouts != 0 || st.LostRetransmits != 1 || st.FastRetransmits != 1 {
		t.Fatalf("Timeouts %d LostRetransmits %d FastRetransmits %d, want 0, 1, 1", st.Timeouts, st.LostRetransmits, st.FastRetransmits)
	}
	if took := n.now - start; took > 150*time.Millisecond {
		t.Fatalf("the transfer took %v; without waiting for the 200 ms RTO it takes well under 150 ms", took)
	}
}

// A slow reader with a scaled window: the window edge B holds (SWS
// avoidance, never shrink) is rounded up to the scale, and whatever it
// promises must fit B's buffer. If it did not, B would trim a few bytes
// off the segment that fills the window and A would see a hole, then
// duplicate ACKs and a retransmission, on a clean path (seen with Linux
// uploading to the stack: a fast retransmit, or with cached reordering
// metrics an RTO, at every window-limited stall).
func TestScaledWindowPromiseFits(t *testing.T) {
	n := newNet(t, 14)
	n.dial(Config{MSS: 1460}, Config{MSS: 1460, RecvBuffer: 300000}) // window scale 3
	data := payload(1<<20, 14)
	off := 0
	var got []byte
	buf := make([]byte, 777) // odd reads keep the free space unaligned to the scale
	steps := 0
	n.app = func() {
		if n.a.State().Connected() && off < len(data) {
			w, _ := n.a.Write(data[off:])
			off += w
		}
		if steps++; n.b != nil && steps%16 == 0 { // slower than the sender: the window fills
			if r, _ := n.b.Read(buf); r > 0 {
				got = append(got, buf[:r]...)
			}
		}
	}
	// Every window B advertises must fit its buffer.
	n.tap = func(fromA bool, s *Segment) {
		b := n.b
		if fromA || b == nil || s.Flags&FlagSYN != 0 {
			return
		}
		right := s.Ack + uint32(s.Window)<<b.rcvShift
		if bufEnd := b.rcvNxt - uint32(b.rcvBuf.len()) + uint32(b.rcvBuf.cap()); seqGT(right, bufEnd) {
			t.Fatalf("B advertised a right edge %d bytes beyond its buffer", right-bufEnd)
		}
	}
	for range 1000 {
		n.run(time.Minute, func() bool { return len(got) == len(data) })
		// The network goes quiet when B's unread data closed the window
		// and a read too small to announce left it closed: drain B.
		for range len(data) {
			r, _ := n.b.Read(buf)
			if r == 0 {
				break
			}
			got = append(got, buf[:r]...)
		}
		if len(got) == len(data) {
			break
		}
	}
	if len(got) != len(data) {
		t.Fatalf("B read %d of %d bytes", len(got), len(data))
	}
	if !bytes.Equal(got, data) {
		t.Fatal("B read different bytes than A wrote")
	}
	if st := n.a.Stats(); st.Retransmits != 0 {
		t.Fatalf("clean path with a slow reader: Retransmits %d, want 0", st.Retransmits)
	}
}

// A tail loss probe that resent a segment the peer had after all is not
// a loss (RFC 8985 §7.4.2): the peer's D-SACK for the probe ends the
// episode without a cwnd cut. When the original was lost, the probe
// repaired it, and the first ACK past the probe's end cuts cwnd.
func TestSpuriousProbeKeepsCwnd(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(map[bool]string{false: "original delayed", true: "original lost"}[lost], func(t *testing.T) {
			a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
			if _, err := a.Write(payload(10*int(a.sndMSS), 40)); err != nil {
				t.Fatal(err)
			}
			segs := emitted(a, now)
			if len(segs) != 10 {
				t.Fatalf("A sent %d segments, want 10", len(segs))
			}
			now += 10 * time.Millisecond
			feed(b, now, segs[:8])
			feed(a, now, emitted(b, now))
			if !a.tlpOn {
				t.Fatal("no tail loss probe armed with two segments unacknowledged")
			}
			now = a.tlpAt
			probe := only(t, "the probe", emitted(a, now))
			if probe.Seq != segs[9].Seq || !a.tlpOut {
				t.Fatalf("the probe starts at %d, want the last segment's %d resent", probe.Seq, segs[9].Seq)
			}
			ssthresh, cwnd := a.ssthresh, a.cwnd
			now += 5 * time.Millisecond
			if lost {
				feed(b, now, segs[8:9])
			} else {
				feed(b, now, segs[8:])
			}
			feed(a, now, emitted(b, now))
			feed(b, now, []Segment{probe})
			answer := emitted(b, now)
			feed(a, now, answer)
			if !lost {
				if len(answer) != 1 || answer[0].NumSACK == 0 || !a.isDSACK(answer[0].SACKBlocks(), answer[0].Ack) {
					t.Fatalf("B answered the duplicate with %v, want one ACK with a D-SACK", answer)
				}
				if a.tlpOut || a.ssthresh != ssthresh || a.cwnd < cwnd {
					t.Fatalf("after the D-SACK for the probe: episode open %v, ssthresh %d cwnd %d (were %d and %d); want it closed and no cut",
						a.tlpOut, a.ssthresh, a.cwnd, ssthresh, cwnd)
				}
				return
			}
			// The probe filled the hole: its ACK reaches the probe's end
			// and cannot say more until later data is acknowledged.
			if a.sndUna != a.sndMax || !a.tlpOut || a.ssthresh != ssthresh {
				t.Fatalf("after the probe's ACK: una %d max %d, episode open %v, ssthresh %d; want all acknowledged, open, no cut yet", a.sndUna, a.sndMax, a.tlpOut, a.ssthresh)
			}
			if _, err := a.Write(payload(int(a.sndMSS), 41)); err != nil {
				t.Fatal(err)
			}
			now += 5 * time.Millisecond
			feed(b, now, emitted(a, now))
			feed(a, now, emitted(b, now))
			if a.tlpOut || a.ssthresh >= ssthresh {
				t.Fatalf("after an ACK past the probe: episode open %v, ssthresh %d (was %d); want it closed with a cut", a.tlpOut, a.ssthresh, ssthresh)
			}
		})
	}
}

// A probe sent during SACK recovery ends with the recovery: the ACK that
// ends both must not leave an episode open for a second cut later.
func TestProbeInRecoveryDoesNotCutAgain(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.cwnd = 40 * uint32(a.sndMSS)
	a.Write(payload(30*int(a.sndMSS), 40))
	segs := emitted(a, now)
	now += 10 * time.Millisecond
	feed(b, now, segs[:2])
	feed(b, now, segs[3:]) // segs[2] lost
	feed(a, now, emitted(b, now))
	if !a.inRecovery {
		t.Fatal("not in recovery after the SACKs")
	}
	if retx := emitted(a, now); len(retx) == 0 || retx[0].Seq != segs[2].Seq {
		t.Fatalf("A sent %v, want segs[2] again", retx) // and that is lost too
	}
	now = a.tlpAt
	probe := emitted(a, now)
	if len(probe) != 1 || probe[0].Seq != segs[2].Seq || !a.tlpOut {
		t.Fatalf("the probe: %v, want segs[2] once more", probe)
	}
	ssthresh := a.ssthresh
	now += 5 * time.Millisecond
	feed(b, now, probe)
	feed(a, now, emitted(b, now)) // reaches the probe's end and ends recovery
	a.Write(payload(4*int(a.sndMSS), 41))
	now += 5 * time.Millisecond
	feed(b, now, emitted(a, now))
	feed(a, now, emitted(b, now))
	if a.ssthresh < ssthresh {
		t.Fatalf("cut again after the recovery: ssthresh %d -> %d, cwnd %d", ssthresh, a.ssthresh, a.cwnd)
	}
}

// A probe that repaired a loss cuts cwnd as a fast retransmit would, from
// cwnd: not from the flight, gone by the time the cut is decided. The
// peer's FIN in between does not count as a duplicate ACK.
func TestProbeRepairCutsFromCwnd(t *testing.T) {
	a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
	a.cwnd = 60 * uint32(a.sndMSS)
	a.Write(payload(50*int(a.sndMSS), 40))
	segs := emitted(a, now)
	now += 10 * time.Millisecond
	feed(b, now, segs[:48])
	feed(a, now, emitted(b, now))
	now = a.tlpAt
	probe := only(t, "the probe", emitted(a, now))
	before := a.cwnd
	now += 5 * time.Millisecond
	feed(b, now, segs[48:49]) // segs[49] lost: the probe repairs it
	feed(a, now, emitted(b, now))
	feed(b, now, []Segment{probe})
	feed(a, now, emitted(b, now))
	if !a.tlpOut || a.sndUna != a.tlpHigh {
		t.Fatalf("after the probe's ACK: episode open %v, una %d, probe end %d", a.tlpOut, a.sndUna, a.tlpHigh)
	}
	b.Close()
	feed(a, now, emitted(b, now)) // a FIN is data to the episode, not a duplicate ACK
	if !a.tlpOut {
		t.Fatal("the peer's FIN at the probe's end closed the episode as a duplicate ACK would")
	}
	a.Write(payload(int(a.sndMSS), 41))
	now += 5 * time.Millisecond
	feed(b, now, emitted(a, now))
	feed(a, now, emitted(b, now))
	if a.tlpOut || a.cwnd < before/2 {
		t.Fatalf("after an ACK past the probe: episode open %v, cwnd %d -> %d (ssthresh %d); want the episode closed with cwnd cut to about 0.7 of it",
			a.tlpOut, before, a.cwnd, a.ssthresh)
	}
}
