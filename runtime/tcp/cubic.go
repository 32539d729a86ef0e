package tcp

import "math"

// Congestion avoidance: CUBIC (RFC 9438), Linux's default, unless
// Config.Reno asks for RFC 5681's Reno. Both share slow start, the
// recoveries (NewReno, or SACK with PRR) and the RTO's one-segment
// window; they differ in how far a congestion event cuts the window
// (CUBIC to 0.7 of the flight, Reno to half) and in how it grows again.
// At datacenter round trips CUBIC's cubic curve, on a scale of seconds,
// stays below its Reno-friendly estimate, so what tells is mostly the
// gentler cut.

// RFC 9438 §4.1's constants: the window shrinks to beta of itself, and
// the cubic function grows with C segments per second cubed.
const (
	cubicBeta = 0.7
	cubicC    = 0.4
)

// cubicState is RFC 9438 §4's per-connection state, in segments.
type cubicState struct {
	wMax     float64 // the window before the last reduction
	wEst     float64 // the Reno-friendly estimate (§4.3)
	k        float64 // seconds from the epoch to wMax again
	epoch    Time    // start of the current congestion-avoidance epoch
	hasEpoch bool
}

// congestionEvent is ssthresh after a loss with flight bytes outstanding
// (fast retransmit, SACK recovery, a probe that repaired a loss, an RTO),
// and resets CUBIC's epoch (RFC 9438 §4.6, with fast convergence §4.7).
func (c *Conn) congestionEvent(flight uint32) uint32 {
	mss := uint32(c.sndMSS)
	c.renoAcked = 0 // a cut window starts its count afresh, as Linux's snd_cwnd_cnt
	if c.cfg.Reno {
		return max(flight/2, 2*mss)
	}
	cub := &c.cubic
	w := float64(c.cwnd) / float64(mss)
	if w < cub.wMax {
		cub.wMax = w * (1 + cubicBeta) / 2 // fast convergence: yield to newer flows
	} else {
		cub.wMax = w
	}
	cub.hasEpoch = false
	return max(uint32(float64(flight)*cubicBeta), 2*mss)
}

// congestionAvoidance grows cwnd for acked bytes once it is at or above
// ssthresh: Reno's one segment per window, or CUBIC's window function.
func (c *Conn) congestionAvoidance(now Time, acked uint32) {
	mss := uint32(c.sndMSS)
	if c.cfg.Reno {
		// One segment per window of bytes acknowledged (RFC 3465 §2.1,
		// Linux's tcp_cong_avoid_ai): counted per ACK, a receiver that
		// split its ACKs would grow cwnd at will.
		c.renoAcked += acked
		if c.renoAcked >= c.cwnd {
			c.renoAcked -= c.cwnd
			c.cwnd += mss
		}
		return
	}
	cub := &c.cubic
	segs := float64(c.cwnd) / float64(mss)
	if !cub.hasEpoch {
		cub.hasEpoch, cub.epoch = true, now
		cub.wEst = segs
		if cub.wMax <= segs {
			cub.wMax, cub.k = segs, 0
		} else {
			cub.k = math.Cbrt((cub.wMax - segs) / cubicC)
		}
	}
	// §4.3: the Reno-friendly estimate, alpha per window until it passes
	// wMax, then one segment.
	alpha := 3 * (1 - cubicBeta) / (1 + cubicBeta)
	if cub.wEst >= cub.wMax {
		alpha = 1
	}
	cub.wEst += alpha * float64(acked) / float64(c.cwnd)
	// §4.2: the target one RTT ahead, clamped to [cwnd, 1.5 cwnd].
	t := (now - cub.epoch + c.srtt).Seconds()
	d := t - cub.k
	target := cubicC*d*d*d + cub.wMax
	target = min(max(target, segs), 1.5*segs)
	next := segs
	if cub.wEst > target {
		next = cub.wEst // the Reno-friendly region
	} else {
		next += (target - segs) * float64(acked) / float64(c.cwnd)
	}
	grown := uint32(next * float64(mss))
	c.cwnd = max(grown, c.cwnd+1) // always some progress, as Reno's max(…, 1)
}

// validateCwnd ends an Output that sent new data or found cwnd full: it
// notes, per round trip, whether cwnd limited the sender and the largest
// flight, which cwndUsed consults.
func (c *Conn) validateCwnd(sentNew bool) {
	flight := c.sndNxt - c.sndUna
	if c.sackOK {
		flight = c.pipe()
	}
	limited := flight+uint32(c.sndMSS) > c.cwnd // no room for another segment
	if !sentNew && !limited {
		return
	}
	if seqGEQ(c.sndUna, c.usageSeq) || limited || !c.cwndLimited && flight > c.maxFlight {
		c.cwndLimited, c.maxFlight, c.usageSeq = limited, flight, c.sndNxt
	}
}

// cwndUsed reports whether cwnd may grow: the sender filled it this
// round, or, in slow start, cwnd is under twice the largest flight (as
// Linux's tcp_is_cwnd_limited).
func (c *Conn) cwndUsed() bool {
	return c.cwndLimited || c.cwnd < c.ssthresh && c.cwnd < 2*c.maxFlight
}

// startSending notes new data going out at now. When nothing was in
// flight (idle), CUBIC's epoch moves on by that time, so the window
// function resumes where it stopped instead of jumping (RFC 9438 §5.8,
// Linux's CA_EVENT_TX_START).
func (c *Conn) startSending(now Time, idle bool) {
	if idle && c.cubic.hasEpoch && now > c.lastSend {
		c.cubic.epoch = min(c.cubic.epoch+(now-c.lastSend), now)
	}
	c.lastSend, c.sentData, c.idleRestarted = now, true, false
}

// restartAfterIdle is RFC 5681 §4.1's restart window, as Linux's
// tcp_cwnd_restart applies it (tcp_slow_start_after_idle, on by
// default): a sender idle for over an RTO, with new data to send and
// nothing in flight, no longer knows the path's state, so it does not
// send a whole old window at once. ssthresh keeps three quarters of the
// window, and cwnd halves for every RTO of the idle time, down to the
// initial window. Once per idle period.
func (c *Conn) restartAfterIdle(now Time) {
	if !c.sentData || c.idleRestarted || c.sndMax != c.sndUna || now-c.lastSend <= c.rto || !c.hasUnsent() {
		return
	}
	c.idleRestarted = true
	restart := min(c.initialWindow(), c.cwnd)
	c.ssthresh = max(c.ssthresh, c.cwnd/2+c.cwnd/4)
	cwnd := c.cwnd
	for idle := now - c.lastSend - c.rto; idle > 0 && cwnd > restart; idle -= c.rto {
		cwnd /= 2
	}
	c.cwnd = max(cwnd, restart)
}
