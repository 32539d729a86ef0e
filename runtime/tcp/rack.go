package tcp

import "time"

// The sender's half of SACK: a scoreboard of the segments in flight (RFC
// 6675), RACK-TLP loss detection (RFC 8985 §6) and Proportional Rate
// Reduction (RFC 6937) in recovery. It runs only when SACK was agreed;
// without it the connection keeps NewReno's duplicate-ACK counting.
//
// Every segment sent is a record in sequence order, with the time of its
// last transmission. SACK blocks mark records delivered; RACK marks lost
// a record sent before the most recently delivered one by more than a
// reordering window; lost records are sent again, ahead of new data, as
// the congestion window allows. Nothing rewinds snd.nxt.

// txSeg is one segment sent and not yet cumulatively acknowledged.
type txSeg struct {
	start, end uint32 // sequence range; end counts the FIN
	sent       Time   // its latest transmission
	flags      uint8
	prev, next uint32 // neighbours on the send-time list, while txTimed
}

const (
	txSACKed = 1 << iota // the peer holds it (a SACK block covered it)
	txLost               // marked lost and not sent again since
	txRetx               // sent more than once
	txTimed              // on the send-time list: in flight, neither SACKed nor lost
)

func (s *txSeg) len() uint32 { return s.end - s.start }

// maxTxSegs bounds the records: past it a new segment joins the last
// record (sent again as several segments if lost), so a peer that makes
// us send tiny segments cannot grow the scoreboard without bound.
const maxTxSegs = 1 << 14

// txQueue is a ring of records in sequence order. It grows by doubling
// and never shrinks, so a connection's steady state allocates nothing.
// Each record has an id, its number among all records pushed, and lives
// in slot id&(len(s)-1) for as long as it is queued.
//
// The records in flight (neither SACKed nor lost) are also on a
// doubly-linked list in the order of their latest transmission, as Linux's
// tsorted_sent_queue: RACK walks it from the oldest and stops at the first
// sent after its reference segment, so what one ACK costs follows what is
// in flight and undecided, not the length of the scoreboard.
type txQueue struct {
	s     []txSeg
	first uint32 // id of the record at index 0
	n     int
	retx  int // records with txRetx: while 0, sequence order is send order

	oldest, newest uint32 // ends of the send-time list, while timed > 0
	timed          int

	// lostFrom is an id below which no record is lost: sendLost starts
	// there instead of at snd.una.
	lostFrom uint32

	// sacked holds the blocks of the latest ACK, all applied and apart
	// from one another: a block that repeats or grows is walked only
	// where it is new (Linux's recv_sack_cache).
	sacked  [MaxSACKBlocks]SACKBlock
	nsacked int
}

func (q *txQueue) rec(id uint32) *txSeg { return &q.s[id&uint32(len(q.s)-1)] }

func (q *txQueue) at(i int) *txSeg { return q.rec(q.first + uint32(i)) }

// index is the position of record id, or -1 below the first record.
func (q *txQueue) index(id uint32) int {
	if d := int32(id - q.first); d >= 0 {
		return int(d)
	}
	return -1
}

func (q *txQueue) push(s txSeg) {
	if q.n == len(q.s) {
		if q.n == maxTxSegs {
			last := q.first + uint32(q.n-1)
			r := q.rec(last)
			r.end, r.sent = s.end, s.sent
			if r.flags&txTimed != 0 {
				q.retime(last)
			}
			return
		}
		ns := make([]txSeg, max(16, 2*len(q.s)))
		for i := range q.n {
			id := q.first + uint32(i)
			ns[id&uint32(len(ns)-1)] = *q.rec(id)
		}
		q.s = ns
	}
	id := q.first + uint32(q.n)
	*q.rec(id) = s
	q.n++
	q.link(id)
}

// full reports whether push would have to merge into a last record that
// is SACKed, lost or resent, which the byte counters cannot follow: the
// sender then waits for ACKs instead of sending new data.
func (q *txQueue) full() bool {
	return q.n == maxTxSegs && (q.retx > 0 || q.at(q.n-1).flags&^txTimed != 0)
}

func (q *txQueue) pop() {
	r := q.at(0)
	if r.flags&txRetx != 0 {
		q.retx--
	}
	q.unlink(q.first)
	q.first++
	q.n--
}

// link puts record id at the newest end of the send-time list.
func (q *txQueue) link(id uint32) {
	r := q.rec(id)
	r.flags |= txTimed
	if q.timed == 0 {
		q.oldest = id
	} else {
		q.rec(q.newest).next = id
		r.prev = q.newest
	}
	q.newest = id
	q.timed++
}

// unlink takes record id off the send-time list, if it is on it.
func (q *txQueue) unlink(id uint32) {
	r := q.rec(id)
	if r.flags&txTimed == 0 {
		return
	}
	r.flags &^= txTimed
	q.timed--
	switch {
	case q.timed == 0:
	case id == q.oldest:
		q.oldest = r.next
	case id == q.newest:
		q.newest = r.prev
	default:
		q.rec(r.prev).next = r.next
		q.rec(r.next).prev = r.prev
	}
}

// retime moves record id, just sent again, to the newest end.
func (q *txQueue) retime(id uint32) {
	q.unlink(id)
	q.link(id)
}

// find is the index of the first record that ends after seq.
func (q *txQueue) find(seq uint32) int {
	lo, hi := 0, q.n
	for lo < hi {
		m := (lo + hi) / 2
		if seqLEQ(q.at(m).end, seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (q *txQueue) reset() {
	q.first += uint32(q.n)
	q.n, q.retx, q.timed, q.nsacked = 0, 0, 0, 0
	q.lostFrom = q.first
}

// rackState is RACK's view (RFC 8985 §6.1): the most recently sent of
// the segments delivered so far, and the RTT it measured.
type rackState struct {
	seen       bool   // a record was delivered: xmit and end are set
	xmit       Time   // RACK.xmit_ts
	end        uint32 // RACK.end_seq
	rtt        time.Duration
	minRTT     winMin        // 0 before the first sample
	fack       uint32        // highest sequence SACKed or acked (RACK.fack)
	reordering bool          // a segment was delivered below fack without being resent, or a D-SACK came
	reoMult    time.Duration // RACK.reo_wnd_mult less one: the window is reoMult+1 quarters of min RTT
	reoPersist uint8         // RACK.reo_wnd_persist: recoveries left before reoMult goes back to 0
	dsackRound uint32        // snd.max at the last growth: grow once per round trip
	timerOn    bool          // the reordering timer (§6.2 step 5)
	timerAt    Time
}

// minRTTWindow is how long an RTT sample may stay the minimum: Linux's
// tcp_min_rtt_wlen, so a path that got longer for good is seen as such.
const minRTTWindow = 5 * time.Minute

// winMin is a running minimum over minRTTWindow, kept as the best three
// samples of the window's quarters (Kathleen Nichols' algorithm, as
// Linux's lib/win_minmax.c), so an old minimum expires without keeping
// every sample.
type winMin struct{ s [3]minSample }

type minSample struct {
	t Time
	v time.Duration
}

func (m *winMin) get() time.Duration { return m.s[0].v }

// update is minmax_running_min.
func (m *winMin) update(now Time, v time.Duration) {
	val := minSample{now, v}
	if m.s[0].v == 0 || v <= m.s[0].v || now-m.s[2].t > minRTTWindow {
		m.s = [3]minSample{val, val, val} // a new minimum, or the window emptied
		return
	}
	if v <= m.s[1].v {
		m.s[1], m.s[2] = val, val
	} else if v <= m.s[2].v {
		m.s[2] = val
	}
	switch dt := now - m.s[0].t; {
	case dt > minRTTWindow:
		// The best expired: the second and third move up, twice if the
		// second expired too (the third is inside the window).
		m.s = [3]minSample{m.s[1], m.s[2], val}
		if now-m.s[0].t > minRTTWindow {
			m.s = [3]minSample{m.s[1], m.s[2], val}
		}
	case m.s[1].t == m.s[0].t && dt > minRTTWindow/4:
		m.s[1], m.s[2] = val, val // a second choice from the second quarter
	case m.s[2].t == m.s[1].t && dt > minRTTWindow/2:
		m.s[2] = val // a third choice from the second half
	}
}

// prrState is RFC 6937's per-recovery accounting.
type prrState struct {
	delivered, out, recoverFS uint32
}

// sentAfter is RACK_sent_after: (t1, e1) was sent after (t2, e2).
func sentAfter(t1 Time, e1 uint32, t2 Time, e2 uint32) bool {
	return t1 > t2 || t1 == t2 && seqGT(e1, e2)
}

// pipe is RFC 6675's estimate of the bytes in the network: sent, not
// cumulatively acknowledged, not SACKed and not marked lost.
func (c *Conn) pipe() uint32 {
	return c.sndMax - c.sndUna - c.sackedBytes - c.lostBytes
}

// recordSent notes a new segment [seq, end) sent at now.
func (c *Conn) recordSent(now Time, seq, end uint32) {
	if c.sackOK && seqLT(seq, end) {
		c.txq.push(txSeg{start: seq, end: end, sent: now})
	}
}

// scoreboard applies an acceptable ACK's cumulative acknowledgment and
// SACK blocks to the records, feeds RACK every record newly delivered,
// and returns the bytes delivered (RFC 6937's DeliveredData) and whether
// a D-SACK reported the tail loss probe (RFC 8985 §7.4.2: it and the
// original both arrived, so nothing was lost).
func (c *Conn) scoreboard(now Time, seg *Segment) (delivered uint32, probeDup bool) {
	ack := seg.Ack
	q := &c.txq
	priorFack := c.rack.fack // reordering is judged against what was known before this ACK
	for q.n > 0 && seqLEQ(q.at(0).end, ack) {
		r := q.at(0)
		c.forget(r)
		if r.flags&txSACKed == 0 {
			delivered += r.len()
			c.rackDelivered(now, seg, r, priorFack)
		}
		q.pop()
	}
	if q.n > 0 && seqGT(ack, q.at(0).start) {
		// A partial ACK of a record (restored or coalesced ones are
		// larger than a segment).
		r := q.at(0)
		d := ack - r.start
		if r.flags&txLost != 0 {
			c.lostBytes -= d
		}
		if r.flags&txSACKed != 0 {
			c.sackedBytes -= d
		} else {
			delivered += d
		}
		r.start = ack
	}
	if seqGT(ack, c.rack.fack) {
		c.rack.fack = ack
	}
	blocks := seg.SACKBlocks()
	if c.isDSACK(blocks, ack) {
		// As Linux's tcp_dsack_seen: one segment's worth ending where
		// the probe ended.
		d := blocks[0]
		probeDup = c.tlpOut && c.tlpRetx && d.End == c.tlpHigh && d.End-d.Start <= uint32(c.sndMSS)
		c.sawDSACK(ack)
		c.dsackUndo(d)
		blocks = blocks[1:]
	}
	var applied [MaxSACKBlocks]SACKBlock
	napplied := 0
	for _, b := range blocks {
		// Blocks at or below the cumulative ACK or beyond what we sent
		// say nothing we can use.
		if !seqLT(b.Start, b.End) || seqLEQ(b.End, ack) || seqGT(b.End, c.sndMax) {
			continue
		}
		// Only the parts of b that no block of the last ACK covered can
		// hold records not yet SACKed.
		from := b.Start
		for from != b.End {
			to, skip := q.uncovered(from, b.End)
			if from != to {
				delivered += c.sackRange(now, seg, b, from, to, priorFack)
			}
			from = skip
		}
		if seqGT(b.End, c.rack.fack) {
			c.rack.fack = b.End
		}
		applied[napplied] = b
		napplied++
	}
	// Blocks that overlap or touch one another leave a record across
	// their junction that neither holds whole, and that uncovered would
	// skip: only blocks apart from all the others are kept.
	q.nsacked = 0
	for i, b := range applied[:napplied] {
		apart := true
		for j, o := range applied[:napplied] {
			if i != j && seqLEQ(o.Start, b.End) && seqLEQ(b.Start, o.End) {
				apart = false
				break
			}
		}
		if apart {
			q.sacked[q.nsacked] = b
			q.nsacked++
		}
	}
	return delivered, probeDup
}

// uncovered splits [from, end) at the blocks of the last ACK: [from, to)
// is covered by none of them, and [to, skip) by one, so the caller goes
// on from skip (skip == end when nothing is left).
func (q *txQueue) uncovered(from, end uint32) (to, skip uint32) {
	to, skip = end, end
	for _, k := range q.sacked[:q.nsacked] {
		switch {
		case seqLEQ(k.Start, from) && seqGT(k.End, from):
			// from lies inside k: nothing new up to k's end.
			return from, seqMin(k.End, end)
		case seqGT(k.Start, from) && seqLT(k.Start, to):
			to, skip = k.Start, seqMin(k.End, end)
		}
	}
	return to, skip
}

// sackRange marks SACKed every record that lies inside block b and
// starts before to, from the first that ends after from; it returns the
// bytes newly delivered.
func (c *Conn) sackRange(now Time, seg *Segment, b SACKBlock, from, to, priorFack uint32) uint32 {
	q := &c.txq
	var delivered uint32
	for i := q.find(from); i < q.n; i++ {
		id := q.first + uint32(i)
		r := q.rec(id)
		if !seqLT(r.start, to) || seqGT(r.end, b.End) {
			break
		}
		if r.flags&txSACKed != 0 || seqLT(r.start, b.Start) {
			continue
		}
		if r.flags&txLost != 0 {
			r.flags &^= txLost
			c.lostBytes -= r.len()
		}
		q.unlink(id)
		r.flags |= txSACKed
		c.sackedBytes += r.len()
		delivered += r.len()
		c.rackDelivered(now, seg, r, priorFack)
	}
	return delivered
}

// isDSACK reports whether the first block is a D-SACK (RFC 2883 §4): it
// lies below the cumulative ACK or within the second block.
func (c *Conn) isDSACK(blocks []SACKBlock, ack uint32) bool {
	if len(blocks) == 0 || !seqLT(blocks[0].Start, blocks[0].End) {
		return false
	}
	b := blocks[0]
	return seqLEQ(b.End, ack) ||
		len(blocks) > 1 && seqGEQ(b.Start, blocks[1].Start) && seqLEQ(b.End, blocks[1].End)
}

// sawDSACK is RFC 8985 §6.2 step 4's response to a D-SACK: the peer got
// something twice, so a retransmission was spurious and the path
// reorders; the reordering window grows by a quarter of the minimum RTT,
// once per round trip, up to maxReoMult quarters.
func (c *Conn) sawDSACK(ack uint32) {
	c.stats.DSACKs++
	c.rack.reordering = true
	if seqGEQ(ack, c.rack.dsackRound) {
		c.rack.reoMult = min(c.rack.reoMult+1, maxReoMult)
		c.rack.reoPersist = reoPersistRecoveries
		c.rack.dsackRound = c.sndMax
	}
}

// reoPersistRecoveries is RFC 8985 §6.2 step 4's reo_wnd_persist: after
// this many recoveries without a D-SACK the reordering window shrinks
// back, so one burst of reordering does not slow loss detection for the
// rest of the connection.
const reoPersistRecoveries = 16

// recoveryEnded counts a fast or RTO recovery towards shrinking the
// reordering window back (RFC 8985 §6.2 step 4).
func (c *Conn) recoveryEnded() {
	if c.rack.reoPersist == 0 {
		return
	}
	if c.rack.reoPersist--; c.rack.reoPersist == 0 {
		c.rack.reoMult = 0
	}
}

// maxUndoRanges bounds the resent ranges an episode remembers: one that
// resends more gives up its undo (a long recovery lost data anyway).
const maxUndoRanges = 16

// beginUndo starts an episode that may be undone: the cut about to be made
// is remembered, and the ranges resent from here on.
func (c *Conn) beginUndo() {
	c.undoOn, c.undoN = true, 0
	c.priorCwnd, c.priorSsthresh = c.cwnd, c.ssthresh
}

// noteResent remembers a range the episode resent.
func (c *Conn) noteResent(start, end uint32) {
	if !c.undoOn {
		return
	}
	if c.undoN == maxUndoRanges {
		c.undoOn = false
		return
	}
	c.undoResent[c.undoN] = seqRange{start, end}
	c.undoN++
}

// dsackUndo takes a D-SACK as the peer's report that one of the episode's
// resent ranges arrived twice (Linux's tcp_sacktag_one counts only
// D-SACKs of resent data: a duplicate the network made says nothing).
// Once every range is reported, the peer had the data all along, and cwnd
// and ssthresh go back to what they were before the cut
// (tcp_try_undo_dsack), ending the recovery.
func (c *Conn) dsackUndo(d SACKBlock) {
	if !c.undoOn || c.undoN == 0 {
		return
	}
	i := 0
	for i < c.undoN && !(seqLEQ(c.undoResent[i].start, d.Start) && seqLT(d.Start, c.undoResent[i].end)) {
		i++
	}
	if i == c.undoN {
		return
	}
	c.undoN--
	c.undoResent[i] = c.undoResent[c.undoN]
	if c.undoN > 0 {
		return
	}
	c.undoOn = false
	c.cwnd = max(c.cwnd, c.priorCwnd)
	c.ssthresh = max(c.ssthresh, c.priorSsthresh)
	c.inRecovery, c.rtoRecovery = false, false
	c.stats.Undos++
}

// maxReoMult bounds the reordering window at twice the minimum RTT
// (reoMult+1 quarters).
const maxReoMult = 7

// forget takes a record's bytes out of the counters before it leaves.
func (c *Conn) forget(r *txSeg) {
	if r.flags&txSACKed != 0 {
		c.sackedBytes -= r.len()
	}
	if r.flags&txLost != 0 {
		c.lostBytes -= r.len()
	}
}

// rackDelivered is RFC 8985 §6.2 steps 1-3 for one delivered record.
func (c *Conn) rackDelivered(now Time, seg *Segment, r *txSeg, priorFack uint32) {
	rtt := now - r.sent
	if r.flags&txRetx != 0 {
		// The ACK may answer the first transmission: trust it only when
		// the echoed timestamp or the RTT says it answers the latest.
		if c.tsOK && seg.HasTS && seqLT(seg.TSEcr, c.tsClock(r.sent)) || rtt < c.rack.minRTT.get() {
			return
		}
	} else if seqLT(r.end, priorFack) {
		c.rack.reordering = true // delivered below a later segment: reordered, not lost
	}
	c.rack.minRTT.update(now, max(rtt, 1))
	if !c.rack.seen || sentAfter(r.sent, r.end, c.rack.xmit, c.rack.end) {
		// RACK.rtt is the RTT of the most recently sent delivered
		// segment, as Linux's tcp_rack_advance keeps it.
		c.rack.seen, c.rack.xmit, c.rack.end, c.rack.rtt = true, r.sent, r.end, rtt
	}
}

// reoWnd is RFC 8985 §6.2 step 4's reordering window: none while no
// reordering was seen and recovery is under way or DupThresh segments
// were SACKed (classic fast retransmit), else a quarter of the minimum
// RTT, at most SRTT.
func (c *Conn) reoWnd() time.Duration {
	if !c.rack.reordering && (c.inRecovery || c.rtoRecovery || c.sackedBytes >= 3*uint32(c.sndMSS)) {
		return 0
	}
	return min((c.rack.reoMult+1)*c.rack.minRTT.get()/4, c.srtt)
}

// rackDetect is RFC 8985 §6.2 step 5: every record sent before RACK's
// segment and not delivered within its RTT plus the reordering window is
// lost; the ones still inside it arm the reordering timer. It reports
// whether it marked any.
func (c *Conn) rackDetect(now Time) bool {
	c.rack.timerOn = false
	if !c.rack.seen {
		return false
	}
	reo := c.reoWnd()
	var wait Time
	marked := false
	q := &c.txq
	// The send-time list holds exactly the records neither SACKed nor
	// lost, oldest transmission first: the first one sent after RACK's
	// segment ends the walk. Records sent at the same time keep their
	// list order (a retransmission after new data), where RFC 8985's
	// tie-break would order them by end sequence; Linux's list does the
	// same as this walk.
	for id, k := q.oldest, q.timed; k > 0; k-- {
		r := q.rec(id)
		next := r.next
		if !sentAfter(c.rack.xmit, c.rack.end, r.sent, r.end) {
			break
		}
		if left := r.sent + c.rack.rtt + reo - now; left > 0 {
			wait = max(wait, left)
		} else {
			c.markLost(id)
			c.stats.RACKLost++
			marked = true
		}
		id = next
	}
	if wait > 0 {
		c.rack.timerOn, c.rack.timerAt = true, now+wait
	}
	return marked
}

// markLost marks record id lost: it leaves the send-time list and waits
// in sendLost's range to go again.
func (c *Conn) markLost(id uint32) {
	q := &c.txq
	r := q.rec(id)
	if r.flags&(txLost|txSACKed) != 0 {
		return
	}
	q.unlink(id)
	r.flags |= txLost
	c.lostBytes += r.len()
	if int32(id-q.lostFrom) < 0 {
		q.lostFrom = id
	}
}

// sackAfterACK runs after an acceptable ACK updated the scoreboard:
// loss detection, the start of fast recovery, and PRR's window.
func (c *Conn) sackAfterACK(now Time, delivered uint32) {
	lost := c.rackDetect(now)
	if lost && !c.inRecovery && !c.rtoRecovery {
		c.startSACKRecovery()
	}
	if c.inRecovery {
		c.prr.delivered += delivered
		c.prrWindow(delivered)
	}
}

// startSACKRecovery enters fast recovery (RFC 6675 §5, RFC 6937): ssthresh
// is the congestion controller's cut of the flight, and PRR paces what goes out until snd.una passes
// recover.
func (c *Conn) startSACKRecovery() {
	c.beginUndo()
	flight := c.sndMax - c.sndUna
	c.ssthresh = c.congestionEvent(flight)
	c.recover = c.sndMax
	c.inRecovery = true
	c.prr = prrState{recoverFS: max(flight, 1)}
	c.tlpOn, c.tlpOut = false, false
	c.stats.FastRetransmits++
}

// prrWindow sets cwnd so that what may go out follows RFC 6937 §3:
// proportional to what was delivered while pipe exceeds ssthresh, then
// slow start back up to it (PRR-SSRB).
func (c *Conn) prrWindow(delivered uint32) {
	mss := uint32(c.sndMSS)
	pipe := c.pipe()
	var sndcnt uint32
	if pipe > c.ssthresh {
		want := (uint64(c.prr.delivered)*uint64(c.ssthresh) + uint64(c.prr.recoverFS) - 1) / uint64(c.prr.recoverFS)
		if want > uint64(c.prr.out) {
			sndcnt = uint32(want - uint64(c.prr.out))
		}
	} else {
		limit := max(c.prr.delivered-min(c.prr.out, c.prr.delivered), delivered) + mss
		sndcnt = min(c.ssthresh-pipe, limit)
	}
	if c.prr.out == 0 && c.lostBytes > 0 {
		sndcnt = max(sndcnt, mss) // the first retransmission goes at once
	}
	c.cwnd = min(pipe+sndcnt, maxCwnd)
}

// endSACKRecovery leaves fast recovery once snd.una reaches recover.
func (c *Conn) endSACKRecovery() {
	c.inRecovery = false
	c.recoveryEnded()
	c.cwnd = max(c.ssthresh, uint32(c.sndMSS))
	// A probe sent in recovery (the deviation armProbe documents) ends
	// with it: recovery made the cut, and the probe's episode must not
	// make a second one after it.
	c.tlpOut = false
}

// sackTimeout is RFC 8985 §6.3 on an RTO: every record not SACKed is
// lost and is sent again, in order, from a one-segment window. SACKed
// records are kept, as Linux keeps them, unless the peer reneged on them
// (RFC 2018 §8 lets a receiver drop SACKed data; Linux does under memory
// pressure): the record at snd.una is SACKed, which a receiver holding it
// would have acknowledged, or a second RTO came with nothing acknowledged.
// Then they are lost too.
func (c *Conn) sackTimeout() {
	q := &c.txq
	reneged := c.retries > 1 || q.n > 0 && q.at(0).flags&txSACKed != 0
	if reneged {
		q.nsacked = 0 // the blocks no longer describe the records
	}
	for i := 0; i < q.n; i++ {
		id := q.first + uint32(i)
		r := q.rec(id)
		if reneged && r.flags&txSACKed != 0 {
			r.flags &^= txSACKed
			c.sackedBytes -= r.len()
		}
		c.markLost(id)
	}
	c.rtoRecovery = true
	c.rack.timerOn = false
}

// sendLost retransmits lost records, lowest first, while the congestion
// window has room (the first at least, when nothing is in flight). It
// reports whether it sent anything.
func (c *Conn) sendLost(now Time, emit func(*Segment)) bool {
	if c.lostBytes == 0 || !c.state.Synchronized() {
		return false
	}
	sent := false
	q := &c.txq
	i := max(q.index(q.lostFrom), 0)
	for ; i < q.n && c.lostBytes > 0; i++ {
		id := q.first + uint32(i)
		r := q.rec(id)
		if r.flags&txLost == 0 {
			continue
		}
		if n := r.len(); c.pipe()+n > c.cwnd && (sent || c.pipe() > 0) {
			break
		}
		c.retransmitRecord(now, emit, id)
		sent = true
	}
	q.lostFrom = q.first + uint32(i) // none lost below: resume here
	return sent
}

// retransmitRecord sends record id again (as several segments when it
// grew past one) and marks it in flight again.
func (c *Conn) retransmitRecord(now Time, emit func(*Segment), id uint32) {
	r := c.txq.rec(id)
	dataEnd := c.sndUna + uint32(c.sndBuf.len())
	for seq := r.start; seqLT(seq, r.end); {
		data := r.end - seq
		if seqGT(r.end, dataEnd) {
			data = dataEnd - seq // the record ends with the FIN
		}
		n := min(data, uint32(c.sndMSS))
		fin := seqGT(r.end, dataEnd) && seq+n == dataEnd // rides with the last data
		c.retransmitRange(now, emit, int(seq-c.sndUna), int(n), fin)
		seq += n
		if fin {
			seq++
		}
	}
	c.lostBytes -= r.len()
	c.noteResent(r.start, r.end)
	if r.flags&txRetx == 0 {
		c.txq.retx++
	}
	r.flags = r.flags&^txLost | txRetx
	r.sent = now
	c.txq.retime(id)
	if c.inRecovery {
		c.prr.out += r.len()
	}
	c.armProbe(now)
}

// lastUnsacked is the id of the highest record the peer does not hold,
// for a tail loss probe to send again; false when there is none.
func (c *Conn) lastUnsacked() (uint32, bool) {
	for i := c.txq.n - 1; i >= 0; i-- {
		if r := c.txq.at(i); r.flags&txSACKed == 0 {
			return c.txq.first + uint32(i), true
		}
	}
	return 0, false
}

// rebuildRecords makes records for what a restored connection has in
// flight: one per segment, sent at now, none SACKed (the scoreboard does
// not move; the peer repeats its SACK blocks on its next ACKs).
func (c *Conn) rebuildRecords(now Time) {
	c.txq.reset()
	c.sackedBytes, c.lostBytes = 0, 0
	if !c.sackOK || !c.state.Synchronized() {
		return
	}
	for seq := c.sndUna; seqLT(seq, c.sndMax); {
		end := seq + min(c.sndMax-seq, uint32(c.sndMSS))
		c.txq.push(txSeg{start: seq, end: end, sent: now})
		seq = end
	}
}
