package tcp

import "time"

// Timestamps (RFC 7323 §3-5) and the receiver's half of SACK (RFC 2018).
//
// Our timestamp clock ticks every millisecond of the caller's clock, the
// finest RFC 7323 §5.4 allows for PAWS, plus a per-connection offset. The
// offset is the part of the ISS that is not clock (RFC 6528's keyed hash
// of the address pair when the caller uses NewISS), so one address pair's
// timestamps keep increasing across incarnations, while other peers learn
// nothing of our uptime. A restored connection takes the clock over from
// its snapshot, so the peer's echo of it never goes backwards.

// tsTick is the timestamp clock's period.
const tsTick = time.Millisecond

// pawsIdle is RFC 7323 §5.5's limit: a TS.Recent older than 24 days may
// have wrapped and no longer rejects anything.
const pawsIdle = 24 * 24 * time.Hour

// tsClock is our timestamp clock at now.
func (c *Conn) tsClock(now Time) uint32 { return uint32(now/tsTick) + c.tsOffset }

// tsOffsetFor is the offset that keeps an address pair's clock increasing
// across incarnations: the ISS less RFC 6528's 4 µs clock at now.
func tsOffsetFor(iss uint32, now Time) uint32 {
	return iss - uint32(now/(4*time.Microsecond))
}

// stampOut puts the timestamp option on c.out, which is not a RST (RFC
// 7323 §3.2: every other segment carries it once negotiated).
func (c *Conn) stampOut(now Time) {
	if !c.tsOK {
		return
	}
	c.out.HasTS = true
	c.out.TSVal = c.tsClock(now)
	if c.out.Flags&FlagACK != 0 {
		c.out.TSEcr = c.tsRecent
	}
}

// pawsReject is PAWS (RFC 7323 §5.3 R1): a non-RST segment whose TSval is
// older than TS.Recent is an old duplicate from an earlier wrap of the
// sequence space, and is dropped with an ACK. After 24 days of silence
// TS.Recent is stale and the segment's TSval is taken instead (R1's
// exception). Segments without the option are let through, as Linux
// does, rather than dropped as RFC 7323 §3.2 allows.
func (c *Conn) pawsReject(now Time, seg *Segment) bool {
	if !c.tsOK || !seg.HasTS || seg.Flags&FlagRST != 0 || !seqLT(seg.TSVal, c.tsRecent) {
		return false
	}
	if now-c.tsRecentAt > pawsIdle {
		c.tsRecent, c.tsRecentAt = seg.TSVal, now
		return false
	}
	c.stats.PAWSRejected++
	return true
}

// noteTS is RFC 7323 §4.3 and §5.3 R3: an acceptable segment's TSval
// becomes TS.Recent when it is not older and the segment starts at or
// before the last ACK we sent, so the echo follows the segment that the
// peer's next RTT sample must measure (not a later out-of-order one).
func (c *Conn) noteTS(now Time, seg *Segment) {
	if c.tsOK && seg.HasTS && seqGEQ(seg.TSVal, c.tsRecent) && seqLEQ(seg.Seq, c.lastAckSent) {
		c.tsRecent, c.tsRecentAt = seg.TSVal, now
	}
}

// tsRTT is an RTT sample from an echoed timestamp (RFC 7323 §4), taken
// when our own timing cannot give one: Karn's rule forbids timing a
// retransmitted segment, but the echo names the transmission it answers.
// ok is false when the echo is absent or not from this connection's clock.
func (c *Conn) tsRTT(now Time, seg *Segment) (time.Duration, bool) {
	if !c.tsOK || !seg.HasTS || seg.TSEcr == 0 {
		return 0, false
	}
	ticks := c.tsClock(now) - seg.TSEcr
	if int32(ticks) < 0 || Time(ticks) > c.cfg.MaxRTO/tsTick {
		return 0, false
	}
	return Time(ticks) * tsTick, true
}

// addSACKBlocks reports the out-of-order ranges (RFC 2018 §4): first a
// D-SACK block for a duplicate just received (RFC 2883), then the range
// holding the most recently received segment, then the others from the
// highest down. A data segment carries only the blocks its payload leaves
// room for within the segment size, and AppendSegment only what fits the
// option space.
func (c *Conn) addSACKBlocks() {
	if !c.sackOK || c.ooo.empty() && !c.dsackOn && !c.rcvFinOOO || c.out.Flags&(FlagACK|FlagSYN) != FlagACK {
		return
	}
	room := c.sackRoom()
	if n := len(c.out.Payload); n > 0 {
		room = min(room, (int(c.sndMSS)-n-sackOptBase)/sackBlockLen)
	}
	add := func(b SACKBlock) {
		if int(c.out.NumSACK) < room {
			c.out.SACK[c.out.NumSACK] = b
			c.out.NumSACK++
		}
	}
	if c.dsackOn && room > 0 {
		add(c.dsack)
		c.dsackOn = false // else the next segment with room carries it
	}
	first := -1
	for i := 0; i < c.ooo.n; i++ {
		if r := c.ooo.r[i]; seqLEQ(r.start, c.sackLast) && seqLT(c.sackLast, r.end) {
			first = i
			add(c.sackBlock(r))
			break
		}
	}
	for i := c.ooo.n - 1; i >= 0; i-- {
		if i != first {
			add(c.sackBlock(c.ooo.r[i]))
		}
	}
	if c.loneFIN() {
		add(SACKBlock{c.rcvFinSeq, c.rcvFinSeq + 1})
	}
}

// loneFIN reports an out-of-order FIN that needs a block of its own: it
// does not follow the highest range (sackBlock extends that one).
func (c *Conn) loneFIN() bool {
	return c.rcvFinOOO && (c.ooo.empty() || c.ooo.r[c.ooo.n-1].end != c.rcvFinSeq)
}

// sackBlock reports an out-of-order range, and the out-of-order FIN right
// after it: its sequence number is data to the sender's scoreboard, as
// Linux counts it, so the segment that carried it can be SACKed whole.
func (c *Conn) sackBlock(r seqRange) SACKBlock {
	if c.rcvFinOOO && r.end == c.rcvFinSeq {
		r.end++
	}
	return SACKBlock{r.start, r.end}
}

// noteDuplicate records data that arrived again, for the
// D-SACK block of the next ACK (RFC 2883 §4): it tells the sender that
// its retransmission was spurious, so RACK widens its reordering window.
func (c *Conn) noteDuplicate(seq, end uint32) {
	if c.sackOK && seqLT(seq, end) {
		c.dsack, c.dsackOn = SACKBlock{seq, end}, true
	}
}

// sackSpace is the option bytes the SACK blocks of an ACK take now, which
// a new data segment's payload leaves room for (Linux's tcp_current_mss).
func (c *Conn) sackSpace() int {
	if !c.sackOK || c.ooo.empty() && !c.dsackOn && !c.rcvFinOOO {
		return 0
	}
	n := c.ooo.n
	if c.dsackOn {
		n++
	}
	if c.loneFIN() {
		n++
	}
	return sackOptBase + sackBlockLen*min(n, c.sackRoom())
}

// sackRoom is how many SACK blocks fit the option space beside the
// timestamp: three with it, four without.
func (c *Conn) sackRoom() int {
	room := maxOptionSpace - sackOptBase
	if c.tsOK {
		room -= tsOptLen
	}
	return min(room/sackBlockLen, MaxSACKBlocks)
}
