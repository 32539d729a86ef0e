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
