package tcp

// Output emits every segment due at now: RSTs, the SYN or SYN-ACK, new data
// within the congestion and peer windows, retransmissions (timeout, fast
// retransmit, NewReno partial ACKs), zero-window probes, the FIN and ACKs,
// delayed ones once their timer has expired. The Segment and its Payload
// are valid only during emit; emit must not call back into c.
func (c *Conn) Output(now Time, emit func(seg *Segment)) {
	c.lastNow = now
	if c.replyPending {
		c.replyPending = false
		c.reply.SrcPort, c.reply.DstPort = c.id.Local.Port(), c.id.Remote.Port()
		c.out = c.reply
		c.stats.SegmentsOut++
		c.stats.RSTsSent++
		emit(&c.out)
	}
	if c.rstPending {
		c.rstPending = false
		c.emitCtl(emit, c.sndMax, FlagRST|FlagACK)
		c.stats.RSTsSent++
		return
	}
	switch c.state {
	case StateClosed, StateInvalid, StateListen:
		return
	}
	if c.closeOn && now >= c.closeAt {
		c.setClosed(nil) // 2MSL passed, or an orphan's FIN-WAIT-2 bound
		return
	}
	if c.retxOn && now >= c.retxAt {
		if c.persist {
			// A peer that answers none of MaxRetries probes is gone
			// (RFC 1122 4.2.2.17 lets the connection close; Linux gives up
			// after tcp_retries2): without this, a connection whose peer
			// vanished behind a zero window never ended.
			if c.retries++; c.retries > c.cfg.MaxRetries {
				c.setClosed(ErrTimeout)
				return
			}
			c.stats.WindowProbes++
			// Probe below snd.una: the peer finds it unacceptable and
			// answers with an ACK that carries its current window.
			c.emitCtl(emit, c.sndUna-1, FlagACK)
			if c.persistExp < maxPersistExp {
				c.persistExp++
			}
			c.retxAt = now + c.persistInterval()
		} else if !c.onTimeout() {
			return
		}
	}
	if c.ackTimer && now >= c.ackAt {
		c.ackNow = true
	}
	if c.rack.timerOn && now >= c.rack.timerAt {
		c.sackAfterACK(now, 0) // the reordering window ran out
	}
	sent := false
	if c.fastRetx {
		c.fastRetx = false
		c.tlpOn = false
		sent = c.retransmitFirst(now, emit)
	}
	if c.sackOK {
		sent = c.sendLost(now, emit) || sent
	}
	if c.tlpOn && now >= c.tlpAt {
		c.tlpOn = false
		sent = c.sendProbe(now, emit) || sent
	}
	if c.state.Synchronized() {
		c.restartAfterIdle(now)
	}
	sentNew := false
	for {
		n, fin, ok := c.nextSegment()
		if !ok {
			break
		}
		if c.dupAcks > 0 && !c.inRecovery && !c.sackOK && c.sndNxt-c.sndUna+uint32(n) > c.cwnd {
			c.stats.LimitedTransmit++
		}
		c.sendNext(now, emit, n, fin)
		sent, sentNew = true, true
	}
	if c.state.Synchronized() {
		c.validateCwnd(sentNew)
	}
	if c.state != StateSynSent {
		acks := c.dupOwed
		if sent {
			acks-- // the segments just sent carried the ACK
		}
		if c.ackNow || c.dsackOn {
			acks = max(acks, 1) // a D-SACK a full segment had no room for goes now
		}
		for range acks {
			// snd.max is RFC 9293's SND.NXT: after a go-back-N rewind
			// sndNxt may lie below what the peer has, and an ACK with that
			// sequence number would be unacceptable there.
			c.emitCtl(emit, c.sndMax, FlagACK)
		}
	}
	c.dupOwed = 0
	c.ackNow = false // nothing to acknowledge in SYN-SENT
	// Zero window with something to send and nothing outstanding: persist.
	if c.state.Synchronized() && !c.retxOn && c.sndNxt == c.sndUna && c.sndWnd == 0 && c.hasUnsent() {
		c.persist, c.retxOn = true, true
		c.retxAt = now + c.persistInterval()
	}
}

// maxPersistExp bounds the probe backoff's exponent, which a uint8 would
// wrap after 255 probes (back to one RTO); by then the interval has long
// reached MaxRTO.
const maxPersistExp = 30

// persistInterval is the probe interval: the RTO backed off per probe, capped.
func (c *Conn) persistInterval() Time {
	d := max(c.rto, c.cfg.MinRTO)
	for i := uint8(0); i < c.persistExp && d < c.cfg.MaxRTO; i++ {
		d *= 2
	}
	return min(d, c.cfg.MaxRTO)
}

// onTimeout handles an RTO expiry (RFC 6298 §5, RFC 5681 §3.1): back off,
// collapse cwnd and go back to snd.una. It reports false when the retry
// budget is spent and the connection failed.
func (c *Conn) onTimeout() bool {
	c.retxOn = false
	c.retries++
	limit := c.cfg.MaxRetries
	if c.state.Handshaking() {
		limit = c.cfg.MaxSYNRetries
	}
	if c.retries > limit {
		c.setClosed(ErrTimeout)
		return false
	}
	c.stats.Timeouts++
	mss := uint32(c.sndMSS)
	if !c.state.Handshaking() && c.retries == 1 && !(c.inRecovery && seqLT(c.sndUna, c.recover)) {
		// Only the first RTO of a loss episode cuts: later ones would
		// shrink ssthresh and CUBIC's W_max from a one-segment window.
		// Nor does an RTO inside a fast recovery, whose ACKs reset
		// retries: the recovery cut this window already, and its undo
		// state must stay the one from before the episode (Linux's
		// tcp_enter_loss).
		if c.sackOK {
			c.beginUndo()
		}
		c.ssthresh = c.congestionEvent(c.sndMax - c.sndUna)
	}
	c.cwnd = mss
	c.inRecovery, c.dupAcks, c.fastRetx = false, 0, false
	c.tlpOn, c.tlpOut = false, false
	c.recover = c.sndMax
	switch {
	case c.state.Handshaking():
		c.sndNxt = c.iss
	case c.sackOK:
		c.sackTimeout() // resend what the peer lacks, not everything
	default:
		c.sndNxt = c.sndUna // go-back-N
	}
	c.stopTiming()
	c.rto = min(2*c.rto, c.cfg.MaxRTO)
	return true
}

// stopTiming is Karn's rule: no sample from an ACK that may answer a
// retransmission. Until new data is timed, an echoed timestamp, which
// names the transmission it answers, may give the sample instead.
func (c *Conn) stopTiming() { c.rttTiming, c.karn = false, true }

// hasUnsent reports whether data or a FIN waits at or after snd.nxt.
func (c *Conn) hasUnsent() bool {
	if c.state.Handshaking() {
		return false
	}
	off := int(c.sndNxt - c.sndUna)
	rem := c.sndBuf.len() - off
	return rem > 0 || (rem == 0 && c.state.finQueued())
}

// nextSegment decides the segment at snd.nxt: its payload length and
// whether it carries the FIN; ok is false when nothing may be sent now.
func (c *Conn) nextSegment() (n int, fin, ok bool) {
	switch c.state {
	case StateSynSent, StateSynReceived:
		return 0, false, c.sndNxt == c.iss
	case StateEstablished, StateCloseWait, StateFinWait1, StateClosing, StateLastAck:
	default:
		return 0, false, false
	}
	inflight := int64(c.sndNxt - c.sndUna)
	remaining := int64(c.sndBuf.len()) - inflight
	finPending := c.state.finQueued() && remaining >= 0
	if remaining < 0 || (remaining == 0 && !finPending) {
		return 0, false, false
	}
	cwnd := c.cwnd
	used := inflight
	if c.sackOK {
		used = int64(c.pipe()) // SACKed and lost bytes are not in the network
	} else if !c.inRecovery && c.dupAcks > 0 && c.dupAcks < 3 {
		// Limited transmit (RFC 3042): each of the first two duplicate
		// ACKs lets one new segment out, so that a small window still
		// draws the third duplicate ACK fast retransmit needs.
		cwnd += uint32(c.dupAcks) * uint32(c.sndMSS)
	}
	if c.sackOK && (c.txq.full() || c.lostBytes > 0) {
		// Let ACKs free scoreboard records first; and lost data goes
		// before new data (RFC 6675 §4 NextSeg), also when a lost record
		// waits for more room than a new segment would take.
		return 0, false, false
	}
	usable := min(int64(c.sndWnd)-inflight, int64(cwnd)-used)
	mss := int64(c.sndMSS) - int64(c.sackSpace()) // room for the ACK's SACK blocks
	n64 := max(min(remaining, mss, usable), 0)
	fin = finPending && n64 == remaining && int64(c.sndWnd)-inflight > n64
	if n64 == 0 && !fin {
		return 0, false, false
	}
	// Sender SWS avoidance (RFC 9293 §3.8.6.2.1): no runt segments while
	// data is outstanding, unless it is the tail of the queue.
	if n64 < remaining && n64 < mss && inflight > 0 && n64 < int64(c.maxSndWnd/2) {
		return 0, false, false
	}
	return int(n64), fin, true
}

// sendNext emits the segment nextSegment chose and advances snd.nxt.
func (c *Conn) sendNext(now Time, emit func(*Segment), n int, fin bool) {
	seq := c.sndNxt
	retx := seqLT(seq, c.sndMax)
	if c.state.Handshaking() {
		c.out = Segment{
			Seq:           c.iss,
			Flags:         FlagSYN,
			MSS:           c.cfg.MSS,
			WindowScale:   -1,
			SACKPermitted: c.sackOK,
		}
		if c.wsOK {
			c.out.WindowScale = int8(c.rcvShift)
		}
		if c.state == StateSynReceived {
			c.out.Flags |= FlagACK
			c.out.Ack = c.rcvNxt
		}
		c.fill(true)
		c.sndNxt = c.iss + 1
	} else {
		flags := FlagACK
		var payload []byte
		var queued bool
		if n > 0 {
			payload, queued = c.payloadAt(int(seq-c.sndUna), n, seqLT(seq, c.sndMax))
			if int(seq-c.sndUna)+n == c.sndBuf.len() {
				flags |= FlagPSH
			}
		}
		if fin {
			flags |= FlagFIN
		}
		c.out = Segment{Seq: seq, Ack: c.rcvNxt, Flags: flags, WindowScale: -1, Payload: payload, PayloadQueued: queued}
		c.fill(false)
		c.sndNxt = seq + uint32(n)
		if fin {
			c.sndNxt++
		}
		if !retx {
			c.startSending(now, seq == c.sndUna)
			c.recordSent(now, seq, c.sndNxt)
			if c.inRecovery && c.sackOK {
				c.prr.out += c.sndNxt - seq
			}
		}
	}
	c.afterSend(now, seq, retx)
	emit(&c.out)
}

// afterSend does the bookkeeping for a segment occupying [seq, sndNxt).
func (c *Conn) afterSend(now Time, seq uint32, retx bool) {
	if retx {
		c.stats.Retransmits++
		c.stopTiming()
	} else if !c.rttTiming {
		c.rttTiming, c.rttSeq, c.rttStart, c.karn = true, c.sndNxt, now, false
	}
	if seqGT(c.sndNxt, c.sndMax) {
		c.sndMax = c.sndNxt
	}
	if !c.retxOn || c.persist {
		c.persist = false
		c.retxOn, c.retxAt = true, now+c.rto
	}
	if !retx && !c.inRecovery {
		c.armProbe(now)
	}
}

// tlpSlack is added to 2*SRTT in the probe timeout: room for the peer to
// coalesce ACKs (Linux's TCP_TIMEOUT_MIN).
const tlpSlack = 2 * Time(1e6)

// armProbe schedules a tail loss probe (RFC 8985 §7.2) 2*SRTT plus slack
// after now, when it would come before the RTO: with new data sent or
// acknowledged, more than one segment in flight (a single one would wait
// for the peer's delayed ACK, about as long as the RTO), no recovery
// under way and no probe unanswered.
func (c *Conn) armProbe(now Time) {
	c.tlpOn = false
	if c.tlpOut || c.inRecovery && !c.sackOK || !c.hasRTT || !c.retxOn || c.persist ||
		!c.state.Synchronized() || c.sndNxt != c.sndMax || c.sndMax-c.sndUna <= uint32(c.sndMSS) {
		return
	}
	at := now + 2*c.srtt + tlpSlack
	if at < c.retxAt {
		c.tlpOn, c.tlpAt = true, at
	}
}

// sendProbe sends the tail loss probe (RFC 8985 §7.3): up to two new
// segments if the peer's window allows it (cwnd does not count), else the
// last segment sent again. The RTO restarts from now.
func (c *Conn) sendProbe(now Time, emit func(*Segment)) bool {
	if !c.state.Synchronized() || c.sndUna == c.sndMax || c.sndNxt != c.sndMax {
		return false
	}
	inflight := int(c.sndNxt - c.sndUna)
	unsent := c.sndBuf.len() - inflight
	if room := int(c.sndWnd) - inflight; unsent > 0 && room > 0 && !(c.sackOK && c.txq.full()) {
		// Two segments where RFC 8985 sends one: a receiver that lost
		// only our ACK would delay its ACK for one segment (40 ms on
		// Linux) but answers two full ones at once (RFC 5681 §4.2).
		for range 2 {
			n := min(unsent, int(c.sndMSS), room)
			if n <= 0 {
				break
			}
			c.sendNext(now, emit, n, false)
			unsent, room = unsent-n, room-n
		}
		c.tlpRetx = false
	} else if c.sackOK {
		id, ok := c.lastUnsacked()
		if !ok {
			return false
		}
		c.markLost(id) // retransmitRecord resends records marked lost
		c.retransmitRecord(now, emit, id)
		c.tlpRetx = true
	} else {
		dataOut := min(inflight, c.sndBuf.len()) // the FIN, if sent, is not data
		n := min(dataOut, int(c.sndMSS))
		fin := c.state.finQueued() && inflight > c.sndBuf.len()
		if n == 0 && !fin {
			return false
		}
		c.retransmitRange(now, emit, dataOut-n, n, fin)
		c.tlpRetx = true
	}
	c.stats.TailLossProbes++
	c.tlpOn, c.tlpOut, c.tlpHigh = false, true, c.sndMax
	c.retxOn, c.retxAt = true, now+c.rto
	return true
}

// payloadAt is a segment's n bytes at offset off from snd.una: a view of
// the send queue when they are contiguous in its array (the link sends
// them from there), else a copy in scratch. A resend is always a copy: an
// ACK of the earlier copy can release its bytes, and a write reuse their
// room, before the link sends the segment, which would then carry newer
// bytes under old sequence numbers.
func (c *Conn) payloadAt(off, n int, resend bool) (payload []byte, queued bool) {
	if !resend {
		return c.sndBuf.view(off, n, c.scratchFor(n))
	}
	p := c.scratchFor(n)[:n]
	c.sndBuf.peekInto(off, p)
	return p, false
}

// retransmitFirst resends the segment at snd.una without moving snd.nxt
// (fast retransmit and NewReno partial ACKs).
func (c *Conn) retransmitFirst(now Time, emit func(*Segment)) bool {
	if !c.state.Synchronized() || c.sndUna == c.sndMax {
		return false
	}
	out := int(c.sndMax - c.sndUna)
	n := min(out, int(c.sndMSS), c.sndBuf.len())
	fin := c.state.finQueued() && n == c.sndBuf.len() && out > n
	c.retransmitRange(now, emit, 0, n, fin)
	c.retxDups, c.retxFlight = 0, out/int(c.sndMSS)+1
	return true
}

// retransmitRange resends n bytes at offset off from snd.una, and the FIN
// after them if fin, without moving snd.nxt; the RTO restarts from now.
func (c *Conn) retransmitRange(now Time, emit func(*Segment), off, n int, fin bool) {
	flags := FlagACK
	if fin {
		flags |= FlagFIN
	}
	var payload []byte
	var queued bool
	if n > 0 {
		payload, queued = c.payloadAt(off, n, true)
	}
	c.out = Segment{Seq: c.sndUna + uint32(off), Ack: c.rcvNxt, Flags: flags, WindowScale: -1, Payload: payload, PayloadQueued: queued}
	c.fill(false)
	c.stats.Retransmits++
	c.stopTiming()
	c.retxOn, c.retxAt, c.persist = true, now+c.rto, false
	emit(&c.out)
}

// emitCtl sends a bare control segment (ACK, RST, probe).
func (c *Conn) emitCtl(emit func(*Segment), seq uint32, flags Flags) {
	c.out = Segment{Seq: seq, Flags: flags, WindowScale: -1}
	if flags&FlagACK != 0 {
		c.out.Ack = c.rcvNxt
	}
	c.fill(false)
	emit(&c.out)
}

// fill sets the ports, window and options of c.out and counts it. Any
// segment that carries an ACK satisfies pending and delayed ACKs.
func (c *Conn) fill(syn bool) {
	c.out.SrcPort, c.out.DstPort = c.id.Local.Port(), c.id.Remote.Port()
	c.out.Window = c.windowField(syn)
	c.stats.SegmentsOut++
	if c.out.Flags&FlagRST == 0 {
		c.stampOut(c.lastNow)
		c.addSACKBlocks()
	}
	if c.out.Flags&FlagACK != 0 {
		c.ackNow, c.ackTimer, c.rcvUnacked = false, false, 0
		c.lastAckSent = c.out.Ack
	}
}

// rcvSlack is the buffer space a scaled window keeps back (windowField).
func (c *Conn) rcvSlack() uint32 { return 1<<c.rcvShift - 1 }

// rcvBufEnd is the sequence number just past the receive buffer: the
// farthest any advertised window may reach.
func (c *Conn) rcvBufEnd() uint32 {
	return c.rcvNxt - uint32(c.rcvBuf.len()) + uint32(c.rcvBuf.cap())
}

// windowField computes the window to advertise in 32-bit arithmetic, so no
// scale shift can overflow into a zero window. The right edge opens in
// steps of swsThreshold (RFC 9293 §3.8.6.2.2), a held edge creeps right
// by less than a scale unit per ACK from rounding, and no edge is placed
// past the receive buffer's end, so every byte it promised fits. Holding
// an edge while rcv.nxt moves by amounts that are not multiples of the
// scale cannot meet both wishes at once: it rounds up (as Linux does) when
// that still fits the buffer and down otherwise, retracting the edge by
// less than one scale unit, which RFC 7323 §2.4 allows and requires
// senders to accept. Data up to the farthest edge ever advertised is
// still accepted (rcvAdvRight).
func (c *Conn) windowField(syn bool) uint16 {
	space := uint32(c.rcvBuf.free())
	if syn {
		w := min(space, 0xffff)
		c.rcvAdvRight = seqMax(c.rcvAdvRight, c.rcvNxt+w)
		return uint16(w)
	}
	shift := c.rcvShift
	end := c.rcvBufEnd()
	// Keep back one scale unit, so that the first rounding up of a held
	// edge still fits.
	space -= min(space, c.rcvSlack())
	w := min(space>>shift, 0xffff)
	right := c.rcvNxt + w<<shift
	target := right
	if seqGT(right, c.rcvAdvRight) && right-c.rcvAdvRight < c.swsThreshold() {
		target = c.rcvAdvRight // receiver SWS avoidance: hold the edge
	}
	if seqLT(target, c.rcvAdvRight) {
		target = c.rcvAdvRight // do not shrink
	}
	if target != right && seqGEQ(target, c.rcvNxt) {
		w = min((target-c.rcvNxt+(1<<shift)-1)>>shift, 0xffff) // round up
		if seqGT(c.rcvNxt+w<<shift, end) {
			// Round down to the buffer's end instead: this retracts the
			// edge by less than a unit (RFC 7323 §2.4) when it was within
			// the buffer, and pulls it back into the buffer when it was
			// not (a snapshot from an older build).
			w = (end - c.rcvNxt) >> shift
		}
		right = c.rcvNxt + w<<shift
	}
	c.rcvAdvRight = seqMax(c.rcvAdvRight, right)
	return uint16(w)
}

// MinPathMTU is the smallest path MTU PathMTU believes: Linux's
// ip_rt_min_pmtu, so a forged ICMP cannot shrink segments to a few bytes.
const MinPathMTU = 552

// ipv4MinHeaderLen is the IPv4 header our segments ride in (the stack
// sends no IP options).
const ipv4MinHeaderLen = 20

// PathMTU handles an ICMP "fragmentation needed" (RFC 1191) that a router
// sent for one of our segments: seq is the sequence number the ICMP
// quotes, mtu the next hop's MTU (at least MinPathMTU is believed). When
// seq is in flight (RFC 5927 §4.1: an attacker must guess it) and the MTU
// is below what our segments take, the MSS drops to fit, and the segments
// in flight that no longer fit are resent, without a congestion cut:
// nothing was congested (Linux's tcp_simple_retransmit). It reports
// whether the MSS changed; Output then sends.
func (c *Conn) PathMTU(mtu int, seq uint32) bool {
	if !c.state.Synchronized() || !seqLEQ(c.sndUna, seq) || !seqLT(seq, c.sndMax) {
		return false
	}
	mss := max(mtu, MinPathMTU) - ipv4MinHeaderLen - HeaderMinLen
	if c.tsOK {
		mss -= tsOptLen
	}
	if mss >= int(c.sndMSS) {
		return false
	}
	c.sndMSS = uint16(max(mss, minPeerMSS))
	c.stats.PathMTUDrops++
	if !c.sackOK {
		c.sndNxt = c.sndUna // go-back-N, in segments of the new size
		c.stopTiming()
		return true
	}
	q := &c.txq
	for i := 0; i < q.n; i++ {
		id := q.first + uint32(i)
		if q.rec(id).len() > uint32(c.sndMSS) {
			c.markLost(id) // SACKed or lost already: left alone
		}
	}
	return true
}
