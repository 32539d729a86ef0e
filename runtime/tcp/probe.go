package tcp

// KeepAliveProbe returns the segment a keep-alive sends (RFC 9293 §3.8.4):
// an ACK with sequence number SND.NXT-1 and no data. The peer finds it old
// and answers with an ACK that carries its RCV.NXT, whatever it received
// from anyone since. The migration layer uses it after resetting a
// connection whose peer may have moved past the RST's sequence number: the
// answer reaches a stack that no longer knows the connection, and the RST
// that stack sends carries exactly the sequence number the peer accepts.
// Its timestamp is the clock's at now, not at the connection's last
// segment: another server may have sent newer ones since, and Linux (6.15
// on) drops a pure ACK that fails PAWS without a word (PAWSOldAck).
func (c *Conn) KeepAliveProbe(now Time) Segment {
	s := Segment{
		SrcPort: c.id.Local.Port(), DstPort: c.id.Remote.Port(),
		Seq: c.sndNxt - 1, Ack: c.rcvNxt, Flags: FlagACK,
		Window: c.windowField(false), WindowScale: -1,
	}
	if c.tsOK { // else the peer's PAWS may drop it (RFC 7323 §3.2)
		s.HasTS, s.TSVal, s.TSEcr = true, c.tsClock(now), c.tsRecent
	}
	return s
}

// KeepAliveProbeAgain returns probe, which KeepAliveProbe made at made, as
// sent again at now: its timestamp moved on with the connection's clock.
func KeepAliveProbeAgain(probe Segment, made, now Time) Segment {
	if probe.HasTS {
		probe.TSVal += uint32(now/tsTick) - uint32(made/tsTick)
	}
	return probe
}
