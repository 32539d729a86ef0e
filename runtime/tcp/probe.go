package tcp

import "time"

// KeepAliveProbe returns the segment a keep-alive sends (RFC 9293 §3.8.4):
// an ACK with sequence number SND.UNA-1 and one garbage octet (RFC 1122
// §4.2.3.6), which the peer has had for long. It finds it old and answers
// with an ACK that carries its RCV.NXT, whatever it received from anyone
// since. The migration layer uses it after resetting a connection whose
// peer may have moved past the RST's sequence number: the answer reaches
// a server that no longer knows the connection, and the RST that server
// sends carries exactly the sequence number the peer accepts.
//
// Two details make Linux answer. The octet: Linux answers at most one
// out-of-window segment without data per connection every 500 ms
// (net.ipv4.tcp_invalid_ratelimit), and another server may just have
// used that (a restored kernel socket's window probe); segments with data
// are exempt. The timestamp is the clock's at now, not at the connection's
// last segment: another server may have sent newer ones since, and recent
// Linux drops a pure ACK that fails PAWS without a word (6.18 does, and
// counts it in TcpExtPAWSOldAck; older kernels answered it).
func (c *Conn) KeepAliveProbe(now Time) Segment {
	s := KeepAliveSegment(c.id.Local.Port(), c.id.Remote.Port(), c.sndUna, c.rcvNxt, c.windowField(false))
	if c.tsOK { // else the peer's PAWS may drop it (RFC 7323 §3.2)
		s.HasTS, s.TSVal, s.TSEcr = true, c.tsClock(now), c.tsRecent
	}
	return s
}

// KeepAliveSegment is KeepAliveProbe's segment, without timestamps, for a
// host that keeps the connection's numbers but no Conn (the kernel host
// builds it from a TCP_REPAIR dump): SND.UNA-1, one garbage octet, an ACK
// of rcvNxt.
func KeepAliveSegment(srcPort, dstPort uint16, sndUna, rcvNxt uint32, window uint16) Segment {
	return Segment{
		SrcPort: srcPort, DstPort: dstPort,
		Seq: sndUna - 1, Ack: rcvNxt, Flags: FlagACK,
		Window: window, WindowScale: -1,
		Payload: probeOctet[:],
	}
}

// probeOctet is a keep-alive probe's garbage octet. Senders copy it.
var probeOctet = [1]byte{0}

// KeepAliveProbeAgain returns probe, which KeepAliveProbe made at made, as
// sent again at now: its timestamp moved on with the connection's clock.
func KeepAliveProbeAgain(probe Segment, made, now Time) Segment {
	if probe.HasTS {
		probe.TSVal += uint32(now/tsTick) - uint32(made/tsTick)
	}
	return probe
}

// AbortProbesAfter are the times after an abort at which its keep-alive
// probe is sent again (Stack.AbortDetached, the kernel host's Abort). One
// probe is not always enough: the peer's answer races the segments still
// in flight to it, which may move its RCV.NXT past the RST that answer
// draws, and a probe or its answer may be lost. The tries spread over
// most of a second, so that a peer that rate-limits its answers to
// out-of-window segments (Linux: one per 500 ms, for those without data)
// answers a later one. A peer that has taken a RST answers a probe with a
// RST of its own, which nobody answers.
var AbortProbesAfter = [...]time.Duration{5 * time.Millisecond, 50 * time.Millisecond, 600 * time.Millisecond}
