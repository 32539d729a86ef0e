package tcp

import "time"

// Input processes one received segment addressed to this connection,
// following RFC 9293 §3.10.7 with the RFC 5961 mitigations: an
// acceptability test in every state, exact-sequence RSTs, challenge ACKs for
// in-window RSTs and SYNs. Input never answers a live connection's segment
// with a RST: unacceptable and old segments get an ACK. Call Output after.
func (c *Conn) Input(now Time, seg *Segment) {
	c.lastNow = now
	c.stats.SegmentsIn++
	if seg.Flags&FlagRST != 0 {
		c.stats.RSTsReceived++
	}
	switch c.state {
	case StateSynSent:
		c.inputSynSent(now, seg)
		return
	case StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2,
		StateCloseWait, StateClosing, StateLastAck, StateTimeWait:
	default:
		return // CLOSED: the stack answers with ResetFor.
	}

	// A retransmitted SYN means our SYN-ACK was lost: send it again.
	if c.state == StateSynReceived && seg.Flags&(FlagSYN|FlagACK|FlagRST) == FlagSYN && seg.Seq == c.irs {
		c.sndNxt = c.iss
		return
	}

	// Simultaneous open (RFC 9293 Figure 8): the peer's SYN-ACK repeats its
	// SYN at irs, before rcv.nxt; its ACK completes our handshake.
	if c.state == StateSynReceived && seg.Flags&(FlagSYN|FlagACK|FlagRST) == FlagSYN|FlagACK &&
		seg.Seq == c.irs && seqGT(seg.Ack, c.sndUna) && seqLEQ(seg.Ack, c.sndMax) {
		c.establish(now, seg)
		c.sndWnd = uint32(seg.Window) // SYN windows are unscaled
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		c.ackNow = true
		return
	}

	if c.state != StateSynReceived && c.pawsReject(now, seg) {
		c.ackInvalid(now, seg) // RFC 7323 §5.3 R1: unacceptable, answered with an ACK
		// An old duplicate of data we have is reported in a D-SACK, as
		// Linux's tcp_send_dupack does: the sender's resend was spurious.
		if len(seg.Payload) > 0 && seqLT(seg.Seq, c.rcvNxt) {
			c.noteDuplicate(seg.Seq, seqMin(seg.Seq+uint32(len(seg.Payload)), c.rcvNxt))
		}
		return
	}
	if !c.acceptable(seg) {
		c.stats.Unacceptable++
		if end := seg.Seq + uint32(len(seg.Payload)); len(seg.Payload) > 0 && seqLEQ(end, c.rcvNxt) {
			c.noteDuplicate(seg.Seq, end)
		}
		if seg.Flags&FlagRST == 0 {
			c.ackInvalid(now, seg)
			if c.state == StateTimeWait && seg.Flags&FlagFIN != 0 {
				c.closeAt = now + c.cfg.TimeWait // re-ACK the FIN and restart 2MSL
			}
		}
		if c.zeroWindowACK(seg) {
			c.processACK(now, seg, false) // the ACK field only: text and FIN stay dropped
		}
		return
	}

	if seg.Flags&FlagRST != 0 {
		c.inputRST(now, seg)
		return
	}
	if seg.Flags&FlagSYN != 0 {
		// RFC 5961 §4: any SYN on a synchronized connection gets a challenge ACK.
		c.challengeACK(now, seg)
		return
	}
	if seg.Flags&FlagACK == 0 {
		return
	}
	if c.state == StateSynReceived {
		if !seqGT(seg.Ack, c.sndUna) || seqGT(seg.Ack, c.sndMax) {
			// An ACK for another incarnation (RFC 9293 §3.10.7.4, SYN-RECEIVED).
			c.reply = Segment{Seq: seg.Ack, Flags: FlagRST, WindowScale: -1}
			c.replyPending = true
			return
		}
		c.establish(now, seg)
	}
	if !c.processACK(now, seg, true) || c.state == StateClosed {
		return
	}
	// Only now, with the ACK field validated: a blind segment with a far
	// future TSval must not move TS.Recent and make PAWS drop the real
	// ones (Linux updates it from tcp_ack too).
	c.noteTS(now, seg)
	c.receive(now, seg)
}

// acceptable is the segment acceptability test of RFC 9293 §3.10.7.4. A
// segment at rcv.nxt is let through even into a zero window so that its
// ACK and window are processed; its data is then trimmed away.
func (c *Conn) acceptable(seg *Segment) bool {
	wnd := c.rcvWindow()
	n := seg.SeqLen()
	switch {
	case n == 0 && wnd == 0:
		return seg.Seq == c.rcvNxt
	case n == 0:
		// Inclusive of the right edge: a peer whose window we filled
		// sends its ACKs at exactly rcv.nxt+rcv.wnd.
		return seqInWindow(seg.Seq, c.rcvNxt, wnd+1)
	case wnd == 0:
		return seg.Seq == c.rcvNxt
	}
	return seqInWindow(seg.Seq, c.rcvNxt, wnd) || seqInWindow(seg.Seq+n-1, c.rcvNxt, wnd)
}

// zeroWindowACK reports whether seg, which failed the acceptability test,
// still has its ACK field processed: RFC 9293 §3.10.7.4 asks for a
// "special allowance ... to accept valid ACKs" when RCV.WND is zero, and
// without one two ends can stall for good. With our window shut, the
// only acceptable segment sits exactly at rcv.nxt, but a peer in persist
// probes at its snd.una-1 (old), and a peer whose idea of our window ran
// past its right edge (the SND.WL1/WL2 rule alone allows that) sends its
// ACKs at its snd.nxt, beyond it. Such segments are let through when
// their sequence number lies within the largest window we can advertise
// of rcv.nxt, on either side: a blind attacker needs the sequence number
// no more precisely than when the window is open, and processACK still
// drops an ACK outside RFC 5961 §5.2's range. RSTs and SYNs get no
// allowance (a RST must hit rcv.nxt, which is acceptable anyway), nor do
// states where the peer has sent its FIN (no window is left to open).
func (c *Conn) zeroWindowACK(seg *Segment) bool {
	if seg.Flags&(FlagACK|FlagSYN|FlagRST) != FlagACK || !c.state.CanReceive() || c.rcvWindow() != 0 {
		return false
	}
	span := c.maxRcvWindow()
	return seqInWindow(seg.Seq, c.rcvNxt-span, 2*span+1)
}

// maxRcvWindow is the largest window we can advertise.
func (c *Conn) maxRcvWindow() uint32 {
	return min(uint32(c.rcvBuf.cap()), 0xffff<<c.rcvShift)
}

// rcvWindow is what remains of the window we last advertised.
func (c *Conn) rcvWindow() uint32 {
	if seqLEQ(c.rcvAdvRight, c.rcvNxt) {
		return 0
	}
	return c.rcvAdvRight - c.rcvNxt
}

func (c *Conn) challengeACK(now Time, seg *Segment) {
	if c.ackInvalid(now, seg) {
		c.stats.ChallengeACKs++
	}
}

// invalidACKInterval is how often a connection answers invalid segments
// that carry no data (challenge ACKs, out-of-window or PAWS-rejected
// segments, ACKs of unsent data): Linux's tcp_invalid_ratelimit.
const invalidACKInterval = 500 * time.Millisecond

// ackInvalid asks for the ACK that answers an invalid segment, and reports
// whether it did. One without data (or a SYN) is answered at most once per
// invalidACKInterval (RFC 5961 §7; Linux's tcp_oow_rate_limited): a
// spoofer, or two endpoints out of step, would otherwise draw an ACK per
// segment. A segment with data always is: a peer sending it needs to
// hear where we are.
func (c *Conn) ackInvalid(now Time, seg *Segment) bool {
	if (len(seg.Payload) > 0 || seg.Flags&FlagFIN != 0) && seg.Flags&FlagSYN == 0 {
		c.ackNow = true
		return true
	}
	if c.invalidACKed && now-c.lastInvalidACK < invalidACKInterval {
		c.stats.InvalidACKsLimited++
		return false
	}
	c.invalidACKed, c.lastInvalidACK = true, now
	c.ackNow = true
	return true
}

// inputRST handles an acceptable RST (RFC 5961 §3.2): only one at exactly
// rcv.nxt resets; any other in-window RST gets a challenge ACK.
func (c *Conn) inputRST(now Time, seg *Segment) {
	if seg.Seq != c.rcvNxt {
		c.challengeACK(now, seg)
		return
	}
	switch c.state {
	case StateSynReceived:
		c.setClosed(ErrRefused)
	case StateClosing, StateLastAck, StateTimeWait:
		// We were closing anyway. In TIME-WAIT this follows RFC 9293 and
		// Linux's default rather than RFC 1337: a client reusing the port
		// answers our ACK with exactly this RST and must not wait 2MSL.
		c.setClosed(nil)
	default:
		c.setClosed(ErrReset)
	}
}

// inputSynSent is RFC 9293 §3.10.7.3.
func (c *Conn) inputSynSent(now Time, seg *Segment) {
	hasACK := seg.Flags&FlagACK != 0
	if hasACK && (seqLEQ(seg.Ack, c.iss) || seqGT(seg.Ack, c.sndMax)) {
		if seg.Flags&FlagRST == 0 {
			c.reply = Segment{Seq: seg.Ack, Flags: FlagRST, WindowScale: -1}
			c.replyPending = true
		}
		return
	}
	if seg.Flags&FlagRST != 0 {
		if hasACK {
			c.setClosed(ErrRefused)
		}
		return
	}
	if seg.Flags&FlagSYN == 0 {
		return
	}
	c.takeSYN(now, seg)
	c.rcvAdvRight = c.rcvNxt + min(uint32(c.rcvBuf.free()), 0xffff) // what our SYN offered
	if !hasACK {
		// Simultaneous open: answer with SYN-ACK from the same ISS.
		c.setState(StateSynReceived)
		c.sndNxt = c.iss
		c.sndWnd = uint32(seg.Window)
		c.maxSndWnd = c.sndWnd
		c.sndWl1 = seg.Seq
		return
	}
	c.establish(now, seg)
	c.sndWnd = uint32(seg.Window) // SYN windows are unscaled
	c.maxSndWnd = c.sndWnd
	c.ackNow = true
	if len(seg.Payload) > 0 || seg.Flags&FlagFIN != 0 {
		rest := *seg
		rest.Seq++
		rest.Flags &^= FlagSYN
		c.receive(now, &rest)
	}
}

// establish completes the handshake on an ACK of our SYN.
func (c *Conn) establish(now Time, seg *Segment) {
	c.setState(StateEstablished)
	if c.closeReq {
		c.closeReq = false
		c.setState(StateFinWait1)
	}
	c.sndUna = c.iss + 1
	if seqLT(c.sndNxt, c.sndUna) {
		c.sndNxt = c.sndUna
	}
	c.rack.dsackRound, c.rack.fack = c.sndUna, c.sndUna // sequence comparisons need a live base
	if c.rttTiming {
		c.rttSample(now - c.rttStart)
	}
	if !c.hasRTT && c.retries > 0 {
		// RFC 6298 §5.7 (Linux's TCP_TIMEOUT_FALLBACK): the SYN was resent
		// and the handshake gave no RTT sample, so the data starts with a
		// 3 s RTO, not the 1 s one that proved too short or its backoff.
		c.rto = min(max(synFallbackRTO, c.cfg.MinRTO), c.cfg.MaxRTO)
	}
	c.retxOn, c.retries = false, 0
	c.sndWnd = uint32(seg.Window) << c.sndShift
	c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
	c.sndWl1, c.sndWl2 = seg.Seq, seg.Ack
}

// rttSample folds one measurement into SRTT/RTTVAR (RFC 6298 §2).
func (c *Conn) rttSample(r time.Duration) {
	c.rttTiming, c.karn = false, false
	c.stats.RTTSamples++
	if r < 0 {
		r = 0
	}
	if !c.hasRTT {
		c.srtt, c.rttvar, c.hasRTT = r, r/2, true
	} else {
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4
		c.srtt = (7*c.srtt + r) / 8
	}
	c.rto = min(max(c.srtt+max(clockGranularity, 4*c.rttvar), c.cfg.MinRTO), c.cfg.MaxRTO)
}

// processACK is the ACK-field step of RFC 9293 §3.10.7.4 plus RFC 5681/6582
// congestion control. It reports false when the segment must be dropped.
// A segment that failed the acceptability test (acceptable false, see
// zeroWindowACK) may advance snd.una and update the window but never
// counts as a duplicate ACK: it says nothing about what the peer received.
func (c *Conn) processACK(now Time, seg *Segment, acceptable bool) bool {
	ack := seg.Ack
	if seqGT(ack, c.sndMax) || seqLT(ack, c.sndUna-c.maxSndWnd) {
		c.ackInvalid(now, seg) // RFC 5961 §5.2: ACK and drop
		return false
	}
	if c.persist {
		// The peer answers its window probes: alive, so the probes it
		// answers count against nothing (Linux clears icsk_probes_out on
		// any valid ACK). Only a silent peer times out.
		c.retries = 0
	}
	oldWnd := c.sndWnd
	mss := uint32(c.sndMSS)
	advanced := seqGT(ack, c.sndUna)
	sack := c.sackOK && c.state.Synchronized()
	var delivered uint32
	var probeDup bool
	if sack {
		delivered, probeDup = c.scoreboard(now, seg)
	}
	if c.tlpOut && seqGEQ(ack, c.tlpHigh) {
		pureDup := acceptable && !advanced && delivered == 0 && len(seg.Payload) == 0 && seg.Flags&(FlagSYN|FlagFIN) == 0 &&
			uint32(seg.Window)<<c.sndShift == oldWnd
		c.probeAnswered(ack, probeDup, pureDup)
	}
	switch {
	case seqGT(ack, c.sndUna):
		acked := ack - c.sndUna
		finSeq := c.sndUna + uint32(c.sndBuf.len())
		c.sndBuf.discard(min(int(acked), c.sndBuf.len()))
		c.sndBuf.rewind()
		finAcked := c.state.finQueued() && seqGT(ack, finSeq)
		switch {
		case c.rttTiming && seqGEQ(ack, c.rttSeq):
			c.rttSample(now - c.rttStart)
		case c.karn:
			// Karn's rule stopped our timing; an echoed timestamp
			// still names the transmission this ACK answers.
			if r, ok := c.tsRTT(now, seg); ok {
				c.rttSample(r)
			}
		}
		c.onNewAck(now, acked, ack)
		c.sndUna = ack
		if seqLT(c.sndNxt, ack) {
			c.sndNxt = ack
		}
		c.dupAcks, c.retries = 0, 0
		c.persist = false
		if c.sndUna == c.sndMax {
			c.retxOn = false
		} else {
			c.retxOn, c.retxAt = true, now+c.rto
		}
		c.armProbe(now)
		if finAcked {
			switch c.state {
			case StateFinWait1:
				c.setState(StateFinWait2)
				c.armFinWait2(now)
			case StateClosing:
				c.enterTimeWait(now)
			case StateLastAck:
				c.setClosed(nil)
				return false
			}
		}
	case acceptable && ack == c.sndUna && len(seg.Payload) == 0 && seg.Flags&(FlagSYN|FlagFIN) == 0 &&
		c.sndMax != c.sndUna && uint32(seg.Window)<<c.sndShift == oldWnd:
		c.dupAcks++
		c.stats.DupAcks++
		switch {
		case sack:
			// RACK, below, replaces duplicate-ACK counting (RFC 8985 §6).
		case (c.dupAcks == 3 || c.tlpOut && c.tlpRetx) && !c.inRecovery && seqGEQ(ack, c.recover):
			// A duplicate ACK answering a probe that resent the last
			// segment says the tail arrived and an earlier segment did
			// not: with no more data to draw dupthresh ACKs, recover now
			// (as RFC 8985's RACK would on the probe's SACK).
			c.ssthresh = c.congestionEvent(c.sndMax - c.sndUna)
			c.cwnd = c.ssthresh + 3*mss
			c.recover = c.sndMax
			c.inRecovery = true
			c.fastRetx = true
			c.tlpOn, c.tlpOut = false, false // recovery takes over, with its own cwnd cut
			c.stats.FastRetransmits++
		case c.inRecovery && c.dupAcks > 3:
			c.cwnd += mss // each dup ACK means a segment left the network
			c.retxDups++
			if c.retxDups > c.retxFlight+c.retxFlight/16+3 {
				c.fastRetx = true // the retransmission was lost as well
				c.stats.LostRetransmits++
			}
		}
	}
	// Window update (RFC 9293 §3.10.7.4). The window counts from the
	// segment's ACK, and we add it to snd.una: so only an ACK at snd.una
	// (after the update above) may set it, and every ACK that advanced
	// snd.una must, as in Linux's tcp_may_update_window; otherwise the
	// SND.WL1/SND.WL2 rule decides. A retransmission that fills a hole
	// carries a new ACK but an old sequence number and fails the WL1 test:
	// keeping the old window then would move our idea of the peer's right
	// edge past what it offered, and we would send data it must drop.
	if ack == c.sndUna && (advanced || seqLT(c.sndWl1, seg.Seq) || (c.sndWl1 == seg.Seq && seqLEQ(c.sndWl2, ack))) {
		c.sndWnd = uint32(seg.Window) << c.sndShift
		c.sndWl1, c.sndWl2 = seg.Seq, ack
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		if c.persist && c.sndWnd > 0 {
			c.persist, c.retxOn, c.persistExp = false, false, 0
		}
	}
	if sack {
		c.sackAfterACK(now, delivered)
	}
	return true
}

// probeAnswered decides a tail loss probe episode on an ACK that covers
// everything sent up to the probe (RFC 8985 §7.4.2, as Linux's
// tcp_process_tlp_ack). A probe of new data lost nothing. A probe that
// resent data repaired a loss, and cwnd is cut as for a fast retransmit,
// unless the peer says it got the segment twice: a D-SACK for the probe,
// or a pure duplicate ACK at the probe's end. Until the ACK moves past
// the probe's end, that is not known yet and the episode stays open.
// Without SACK no D-SACK can come: the ACK that reaches the end (it moves
// snd.una, so it comes once) decides.
func (c *Conn) probeAnswered(ack uint32, probeDup, pureDup bool) {
	cut := false
	switch {
	case !c.tlpRetx:
	case !c.sackOK:
		cut = true
	case probeDup:
	case seqGT(ack, c.tlpHigh):
		cut = true
	case !pureDup:
		return
	}
	c.tlpOut = false
	if cut && !c.inRecovery {
		// From cwnd, as Linux's tcp_init_cwnd_reduction: the flight may
		// be gone by now (the ACK that reached the probe's end came first).
		c.ssthresh = c.congestionEvent(c.cwnd)
		c.cwnd = min(c.cwnd, c.ssthresh)
	}
}

// onNewAck grows cwnd for acked new bytes outside recovery, and in
// recovery either lets PRR set it (SACK; sackAfterACK) or deflates it as
// NewReno does.
func (c *Conn) onNewAck(now Time, acked, ack uint32) {
	mss := uint32(c.sndMSS)
	sack := c.sackOK && !c.state.Handshaking()
	switch {
	case c.inRecovery && seqGEQ(ack, c.recover) && sack:
		c.endSACKRecovery()
	case c.inRecovery && seqGEQ(ack, c.recover):
		// Full ACK (RFC 6582 §3.2 step 3): deflate to ssthresh.
		flight := c.sndMax - ack
		c.cwnd = min(c.ssthresh, max(flight, mss)+mss)
		c.inRecovery = false
	case c.inRecovery && sack:
	case c.inRecovery:
		// Partial ACK: resend the next hole, deflate by what left.
		c.fastRetx = true
		if c.cwnd > acked {
			c.cwnd -= acked
		} else {
			c.cwnd = 0
		}
		c.cwnd = max(c.cwnd+mss, mss)
	case !c.cwndUsed():
		// Application- or peer-limited: cwnd was not the limit.
	case c.cwnd < c.ssthresh:
		// Appropriate Byte Counting with L = 2 (RFC 3465 §2.2): an ACK
		// for two segments, as a delayed ACK is, grows cwnd by both, so
		// slow start doubles per round trip as Linux's does; L = 1 after
		// an RTO (§2.3), and never past ssthresh (tcp_slow_start).
		l := 2 * mss
		if c.rtoRecovery {
			l = mss
		}
		c.cwnd = min(c.cwnd+min(acked, l), c.ssthresh)
	default:
		c.congestionAvoidance(now, acked)
	}
	if c.rtoRecovery && seqGEQ(ack, c.recover) {
		c.rtoRecovery = false
		c.recoveryEnded()
	}
	c.cwnd = min(c.cwnd, maxCwnd)
	c.sndBufAdjust()
}

// sndBufAdjust grows the send buffer to twice cwnd, up to
// Config.SendBufferMax, as Linux's tcp_sndbuf_expand does: half of it is
// in flight at most, and the other half waits, written, so that an ACK
// sends at once what the window opens instead of waiting for the
// application to write it. cwnd grows only while the network takes what
// is sent, so a peer cannot make the buffer grow by not reading. The
// buffer does not shrink.
func (c *Conn) sndBufAdjust() {
	if c.sndBuf.cap() < c.cfg.SendBufferMax {
		c.sndBuf.grow(int(min(2*uint64(c.cwnd), uint64(c.cfg.SendBufferMax))))
	}
}

// maxCwnd keeps cwnd arithmetic far from uint32 overflow.
const maxCwnd = 1 << 30

// receive handles segment text and FIN (RFC 9293 §3.10.7.4, steps 7 and 8).
func (c *Conn) receive(now Time, seg *Segment) {
	payload := seg.Payload
	fin := seg.Flags&FlagFIN != 0
	if len(payload) == 0 && !fin {
		return
	}
	if !c.state.CanReceive() {
		return // after the peer's FIN: nothing more can arrive
	}
	seq := seg.Seq
	finSeq := seq + uint32(len(payload))
	if seqLT(seq, c.rcvNxt) { // trim what we already have
		d := c.rcvNxt - seq
		if d > uint32(len(payload)) {
			d = uint32(len(payload))
		}
		c.noteDuplicate(seq, seq+d)
		payload = payload[d:]
		seq += d
	}
	readerNext := c.rcvNxt - uint32(c.rcvBuf.len())
	limit := c.rcvAdvRight
	if edge := readerNext + uint32(c.rcvBuf.cap()); seqLT(edge, limit) {
		limit = edge
	}
	if c.rcvFinOOO && seqLT(c.rcvFinSeq, limit) {
		limit = c.rcvFinSeq
	}
	if seqGEQ(seq, limit) {
		payload = nil
	} else if room := limit - seq; uint32(len(payload)) > room {
		payload = payload[:room]
	}
	if seq+uint32(len(payload)) != finSeq {
		fin = false // trimmed: the FIN lies beyond what we keep
	}
	inOrder := false
	if len(payload) > 0 {
		c.rcvBuf.writeAt(int(seq-readerNext), payload)
		if seq == c.rcvNxt {
			inOrder = true
			c.advanceRcv(uint32(len(payload)))
			if !c.ooo.empty() {
				if adv := c.ooo.advance(c.rcvNxt); adv > 0 {
					c.advanceRcv(adv)
				}
				c.ackNow = true // RFC 5681 §4.2: ACK at once when filling a gap
			}
		} else if end := seq + uint32(len(payload)); c.ooo.covers(seq, end) {
			// Held out of order already: a D-SACK, then the block that
			// holds it (RFC 2883 §4.2), tells the sender its resend was
			// spurious.
			c.noteDuplicate(seq, end)
			c.sackLast = seq
			c.ackNow = true
		} else if c.ooo.add(seq, end) {
			c.stats.OutOfOrder++
			c.sackLast = seq
			// One duplicate ACK per out-of-order segment, even when a batch
			// arrives between two Outputs, so the sender can count to three.
			c.dupOwed = min(c.dupOwed+1, maxDupOwed)
		} else {
			c.ackNow = true
		}
	} else if len(seg.Payload) > 0 {
		c.ackNow = true // all old or all beyond the window
	}
	if fin {
		if finSeq == c.rcvNxt {
			c.consumeFIN(now)
		} else if seqGT(finSeq, c.rcvNxt) && (c.ooo.empty() || seqLEQ(c.ooo.r[c.ooo.n-1].end, finSeq)) {
			// A FIN before data the peer already sent contradicts it; it
			// is ignored until the peer sends a consistent one.
			c.rcvFinOOO, c.rcvFinSeq = true, finSeq
			c.ackNow = true
		}
	}
	if c.rcvFinOOO && c.rcvNxt == c.rcvFinSeq && c.state.CanReceive() {
		c.consumeFIN(now)
	}
	if inOrder {
		c.rcvSpaceAdjust(now)
	}
	if inOrder && !c.ackNow {
		c.rcvUnacked += len(payload)
		switch {
		case c.cfg.DelayedACK < 0 || c.rcvUnacked >= 2*int(c.sndMSS):
			c.ackNow = true
		case !c.ackTimer:
			c.ackTimer, c.ackAt = true, now+c.cfg.DelayedACK
		}
	}
}

// rcvSpacePeriod is the shortest period rcvSpaceAdjust measures over.
// Linux times the receiver's RTT with millisecond timestamps, so never
// below 1 ms either; on a veth, whose RTT is tens of microseconds, the
// data a sender keeps in flight must also cover the receiver's
// scheduling delays, which are of that order.
const rcvSpacePeriod = time.Millisecond

// rcvSpaceAdjust grows the receive buffer while the application keeps up
// with the data, as Linux's tcp_rcv_space_adjust does (dynamic right-
// sizing): once per period (the smoothed RTT, at least rcvSpacePeriod), if
// the application read more than in any period before, the buffer
// becomes twice that, plus room for 16 segments and for a sender still
// doubling its rate, up to Config.RecvBufferMax and what the window scale
// can announce. A connection whose application does not read never
// grows, so a peer cannot make the stack hold more for it than
// RecvBuffer. The buffer does not shrink: the window's right edge never
// moves left.
func (c *Conn) rcvSpaceAdjust(now Time) {
	limit := min(c.cfg.RecvBufferMax, 0xffff<<c.rcvShift)
	if c.rcvBuf.cap() >= limit || c.orphan { // an orphan's discards are not reads
		return
	}
	read := c.rcvNxt - uint32(c.rcvBuf.len()) // the application's next byte
	if !c.rcvSpaceOn {
		c.rcvSpaceOn = true
		c.rcvSpace = uint32(min(c.rcvBuf.cap(), 10*int(c.cfg.MSS)))
		c.rcvSpaceSeq, c.rcvSpaceAt = read, now
		return
	}
	if now-c.rcvSpaceAt < max(c.srtt, rcvSpacePeriod) {
		return
	}
	if copied := read - c.rcvSpaceSeq; copied > c.rcvSpace {
		win := 2*uint64(copied) + 16*uint64(c.cfg.MSS)
		win += 2 * win * uint64(copied-c.rcvSpace) / uint64(c.rcvSpace)
		c.rcvBuf.grow(int(min(win, uint64(limit))))
		c.rcvSpace = copied
	}
	c.rcvSpaceSeq, c.rcvSpaceAt = read, now
}

// maxDupOwed bounds the duplicate ACKs one Output emits. Three trigger fast
// retransmit; the rest let NewReno inflate cwnd for segments that left the
// network even when a whole batch arrived out of order.
const maxDupOwed = 16

// advanceRcv makes n bytes after rcvNxt readable.
func (c *Conn) advanceRcv(n uint32) {
	c.rcvBuf.commit(int(n))
	c.rcvNxt += n
}

// consumeFIN takes the peer's FIN at rcvNxt.
func (c *Conn) consumeFIN(now Time) {
	c.rcvNxt++
	c.rcvFinOOO, c.rcvFinSeq = false, 0 // zero keeps snapshots canonical
	c.ooo = assembler{}                 // nothing follows the FIN
	c.finRcvd = true
	c.ackNow = true
	switch c.state {
	case StateEstablished:
		c.setState(StateCloseWait)
	case StateFinWait1:
		c.setState(StateClosing) // simultaneous close: our FIN is not yet acked
	case StateFinWait2:
		c.enterTimeWait(now)
	}
}
