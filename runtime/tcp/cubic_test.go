package tcp

import (
	"bytes"
	"math"
	"testing"
	"time"
)

// A loss cuts the window to 0.7 of the flight with CUBIC and to half with
// Reno (RFC 9438 §4.6, RFC 5681 §3.1).
func TestCongestionEventCut(t *testing.T) {
	for _, tc := range []struct {
		reno bool
		want uint32
	}{{false, 70000}, {true, 50000}} {
		a, _, _ := establish(t, Config{Reno: tc.reno}, Config{})
		a.cwnd = 100000
		if got := a.congestionEvent(100000); got != tc.want {
			t.Errorf("Reno %v: ssthresh %d after a loss with 100000 bytes in flight, want %d", tc.reno, got, tc.want)
		}
	}
}

// After a cut, CUBIC's window grows back to where it was about K seconds
// into the epoch (K = cbrt(wMax(1-beta)/C)), slowly near wMax and faster
// beyond it; on a long round trip, where the cubic curve leads, it gets
// there sooner than Reno's one segment per round trip.
func TestCubicWindowCurve(t *testing.T) {
	grow := func(reno bool) (segsAt func(Time) float64) {
		c, _, now := establish(t, Config{Reno: reno}, Config{})
		mss := float64(c.sndMSS)
		c.srtt = 100 * time.Millisecond
		c.cwnd = uint32(200 * mss)
		c.ssthresh = c.congestionEvent(c.cwnd)
		c.cwnd = c.ssthresh
		start := now
		var trace []float64
		for now < start+30*time.Second {
			// One window of ACKs per round trip.
			w := c.cwnd
			for acked := uint32(0); acked < w; acked += uint32(mss) {
				c.congestionAvoidance(now, uint32(mss))
			}
			trace = append(trace, float64(c.cwnd)/mss)
			now += c.srtt
		}
		return func(d Time) float64 { return trace[min(int(d/(100*time.Millisecond)), len(trace)-1)] }
	}
	cubic, reno := grow(false), grow(true)
	k := math.Cbrt(200 * (1 - cubicBeta) / cubicC) // seconds
	atK := cubic(Time(k * float64(time.Second)))
	if atK < 190 || atK > 215 {
		t.Fatalf("CUBIC window %.0f segments at K = %.2f s, want about the 200 it had", atK, k)
	}
	if half := cubic(Time(k / 2 * float64(time.Second))); half < 170 {
		t.Fatalf("CUBIC window %.0f segments halfway to K, want most of the way back (concave)", half)
	}
	if after := cubic(Time(2 * k * float64(time.Second))); after < 260 {
		t.Fatalf("CUBIC window %.0f segments at 2K, want well past 200 (convex)", after)
	}
	if r := reno(Time(k * float64(time.Second))); r >= atK {
		t.Fatalf("at K Reno has %.0f segments and CUBIC %.0f; CUBIC should lead on a 100 ms path", r, atK)
	}
}

// Under random loss the gentler cut finishes a transfer sooner (seeded,
// 1% loss each way, 100 µs round trips).
func TestCubicFasterThanRenoUnderLoss(t *testing.T) {
	took := func(reno bool) Time {
		var total Time
		for seed := uint64(1); seed <= 3; seed++ {
			n := newNet(t, seed)
			n.delay, n.gap, n.loss = 50*time.Microsecond, 3*time.Microsecond, 0.01
			n.dial(Config{Reno: reno}, Config{})
			up := payload(4<<20, seed)
			start := n.now
			_, pb := exchange(t, n, up, nil, time.Minute)
			if !bytes.Equal(pb.got.Bytes(), up) {
				t.Fatalf("B got %d bytes, want %d", pb.got.Len(), len(up))
			}
			total += n.now - start
		}
		return total
	}
	cubic, reno := took(false), took(true)
	t.Logf("3 x 4 MiB at 1%% loss: CUBIC %v, Reno %v", cubic, reno)
	if cubic >= reno {
		t.Fatalf("CUBIC took %v and Reno %v under loss; CUBIC should be faster", cubic, reno)
	}
}

// A retransmission lost near the tail, with nothing sent after it: RACK
// has no later delivery to go by, so the probe that recovery allows with
// SACK (a deviation from RFC 8985 §7.2, which stops probes in recovery)
// finds it, instead of the 200 ms RTO.
func TestLostRetransmissionAtTheTail(t *testing.T) {
	n := newNet(t, 35)
	n.dial(Config{MSS: 1000}, Config{MSS: 1000})
	base := uint32(1001)
	mss := uint32(1000 - tsOptLen)
	n.drop = dropCopies(&base, 17*mss, 2)
	up := payload(int(20*mss), 35)
	start := n.now
	_, pb := exchange(t, n, up, nil, time.Minute)
	if !bytes.Equal(pb.got.Bytes(), up) {
		t.Fatalf("B got %d bytes, want %d", pb.got.Len(), len(up))
	}
	st := n.a.Stats()
	if st.Timeouts != 0 || st.TailLossProbes == 0 || st.Retransmits < 2 {
		t.Fatalf("Timeouts %d probes %d retransmits %d; want no RTO, a probe, the segment sent twice (%+v)", st.Timeouts, st.TailLossProbes, st.Retransmits, st)
	}
	if took := n.now - start; took > 150*time.Millisecond {
		t.Fatalf("the transfer took %v; without an RTO it takes a few 10 ms round trips", took)
	}
}

// roundTrip moves one round of a's data to b, which reads it all, and b's
// ACKs back to a, rtt later; it returns the time after the round.
func roundTrip(a, b *Conn, now, rtt Time) Time {
	segs := emitted(a, now)
	now += rtt / 2
	feed(b, now, segs)
	buf := make([]byte, 64<<10)
	for b.Readable() > 0 {
		b.Read(buf)
	}
	acks := emitted(b, now)
	now += rtt / 2
	feed(a, now, acks)
	return now
}

// An application that writes two segments per round trip never fills
// the window, so the window does not grow (Linux's tcp_is_cwnd_limited,
// RFC 7661's idea): without the check, slow start would have taken it
// to hundreds of segments the path never carried.
func TestAppLimitedCwndDoesNotGrow(t *testing.T) {
	for _, reno := range []bool{false, true} {
		a, b, now := establish(t, Config{MSS: 1000, Reno: reno}, Config{MSS: 1000, DelayedACK: -1})
		initial := a.cwnd
		for range 200 {
			if _, err := a.Write(payload(2*int(a.sndMSS), 50)); err != nil {
				t.Fatal(err)
			}
			now = roundTrip(a, b, now, time.Millisecond)
		}
		if a.cwnd > initial {
			t.Errorf("Reno %v: cwnd %d after 200 round trips of two segments, want it to stay at the initial %d", reno, a.cwnd, initial)
		}
		// A sender that fills the window grows it again at once.
		if _, err := a.Write(payload(64*int(a.sndMSS), 51)); err != nil {
			t.Fatal(err)
		}
		now = roundTrip(a, b, now, time.Millisecond)
		if a.cwnd <= initial {
			t.Errorf("Reno %v: cwnd %d after a full window was sent, want it grown past %d", reno, a.cwnd, initial)
		}
	}
}

// After an idle time CUBIC's window function resumes where it stopped
// (RFC 9438 §5.8): one round trip after 30 s of silence grows the window
// as little as one round trip without the silence. Without the epoch's
// shift, the curve's 30 s would clamp the target at 1.5 times the window.
func TestCubicIdleDoesNotJump(t *testing.T) {
	growth := func(idle Time) float64 {
		a, b, now := establish(t, Config{MSS: 1000}, Config{MSS: 1000, DelayedACK: -1})
		mss := a.sndMSS
		a.cwnd = 100 * uint32(mss)
		a.ssthresh = a.congestionEvent(a.cwnd) // wMax 100 segments, cwnd 70
		a.cwnd = a.ssthresh
		const rtt = 10 * time.Millisecond
		for range 5 { // in congestion avoidance, with an epoch, window full
			if _, err := a.Write(payload(int(a.cwnd), 52)); err != nil {
				t.Fatal(err)
			}
			now = roundTrip(a, b, now, rtt)
		}
		now += idle
		before := a.cwnd
		if _, err := a.Write(payload(int(a.cwnd), 53)); err != nil {
			t.Fatal(err)
		}
		roundTrip(a, b, now, rtt)
		return float64(a.cwnd) / float64(before)
	}
	busy, idle := growth(0), growth(30*time.Second)
	t.Logf("one round trip grows the window %.3fx, %.3fx after 30 s idle", busy, idle)
	if idle > busy+0.05 || idle > 1.1 {
		t.Fatalf("after 30 s idle one round trip grew the window %.3fx (%.3fx without the idle time); want about the same, under 1.1x", idle, busy)
	}
}

// Slow start counts up to two segments per ACK (RFC 3465 L=2), one after
// an RTO (§2.3), and stops at ssthresh (Linux's tcp_slow_start).
func TestSlowStartByteCounting(t *testing.T) {
	a, _, now := establish(t, Config{MSS: 1000}, Config{})
	mss := uint32(a.sndMSS)
	a.cwndLimited = true
	a.cwnd, a.ssthresh = 10*mss, 100*mss
	a.onNewAck(now, 4*mss, a.sndUna+4*mss)
	if a.cwnd != 12*mss {
		t.Errorf("an ACK of 4 segments grew cwnd to %d segments, want 12 (two per ACK)", a.cwnd/mss)
	}
	a.rtoRecovery, a.recover = true, a.sndUna+100*mss
	a.onNewAck(now, 4*mss, a.sndUna+4*mss)
	if a.cwnd != 13*mss {
		t.Errorf("after an RTO an ACK of 4 segments grew cwnd to %d segments, want 13 (one per ACK)", a.cwnd/mss)
	}
	a.rtoRecovery = false
	a.cwnd = a.ssthresh - mss/2
	a.onNewAck(now, 2*mss, a.sndUna+2*mss)
	if a.cwnd != a.ssthresh {
		t.Errorf("slow start took cwnd to %d past ssthresh %d", a.cwnd, a.ssthresh)
	}
}

// Reno grows one segment per window of bytes acknowledged, however the
// receiver splits its ACKs (RFC 3465 §2.1): counted per ACK, 200 ACKs of
// one window grew cwnd by eight segments.
func TestRenoCountsBytesNotACKs(t *testing.T) {
	for _, acks := range []int{10, 20, 200} {
		c, _, now := establish(t, Config{Reno: true}, Config{})
		mss := uint32(c.sndMSS)
		c.cwnd, c.ssthresh = 20*mss, 20*mss
		start := c.cwnd
		for range acks {
			c.congestionAvoidance(now, 20*mss/uint32(acks))
		}
		if grew := c.cwnd - start; grew > mss {
			t.Errorf("one window acknowledged in %d ACKs grew cwnd by %d bytes, want at most one segment (%d)", acks, grew, mss)
		}
	}
}

// An RTO bound near the top of time.Duration is clamped: doubling the RTO
// there wrapped negative and put the retransmission deadline in the past.
func TestHugeMaxRTOIsClamped(t *testing.T) {
	c := Config{MinRTO: 1 << 62, MaxRTO: math.MaxInt64}.WithDefaults()
	if c.MaxRTO > maxRTOCap || c.MinRTO > c.MaxRTO || 2*c.MaxRTO < c.MaxRTO {
		t.Errorf("WithDefaults kept MinRTO %v MaxRTO %v", c.MinRTO, c.MaxRTO)
	}
}

// After an idle period longer than the RTO, the window restarts (RFC 5681
// §4.1, Linux's tcp_slow_start_after_idle): a sender with a big old
// window sent all of it back to back into a path it no longer knew.
func TestIdleSenderRestartsItsWindow(t *testing.T) {
	a, b, now := establish(t, Config{}, Config{DelayedACK: -1})
	a.Write(payload(int(a.sndMSS), 7))
	feed(b, now, emitted(a, now))
	feed(a, now, emitted(b, now))
	mss := uint32(a.sndMSS)
	a.cwnd, a.ssthresh = 400*mss, 100*mss
	now += 10 * time.Second // 50 RTOs: the window halves down to the initial one
	a.Write(payload(300*int(mss), 8))
	segs := emitted(a, now)
	if n := len(segs); n > 10 {
		t.Errorf("after 10 s idle the sender emitted %d segments at once, want the restart window (10)", n)
	}
	if a.ssthresh != 300*mss {
		t.Errorf("ssthresh after the restart %d, want three quarters of the old window (%d)", a.ssthresh, 300*mss)
	}
	// A sender that was not idle keeps its window.
	c, d, now2 := establish(t, Config{}, Config{DelayedACK: -1})
	c.Write(payload(int(mss), 9))
	feed(d, now2, emitted(c, now2))
	feed(c, now2, emitted(d, now2))
	c.cwnd = 400 * mss
	c.Write(payload(300*int(mss), 10))
	if n := len(emitted(c, now2)); n < 100 {
		t.Errorf("a busy sender emitted %d segments, want its window", n)
	}
}
