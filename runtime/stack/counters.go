package stack

import (
	"fmt"
	"strings"
)

// DropReason says why the stack discarded a frame or packet.
type DropReason uint8

// Drop reasons, indexes of Counters.Drops.
const (
	DropTruncated      DropReason = iota // shorter than its headers
	DropNotOurMAC                        // Ethernet destination neither ours nor broadcast
	DropEtherType                        // neither IPv4 nor ARP
	DropARPMalformed                     // not Ethernet/IPv4 ARP, or unknown op
	DropARPBadSender                     // sender multicast, off-link, or claims our address
	DropIPv4Malformed                    // bad version, header or total length
	DropBadChecksum                      // IPv4 header, UDP or TCP checksum
	DropFragment                         // IPv4 fragments are not reassembled
	DropNotOurAddr                       // IPv4 destination not ours nor broadcast
	DropBadSource                        // IPv4 source ours, or no single host's (broadcast, loopback, 0/8, 224/3)
	DropBroadcast                        // ICMP or TCP sent to a broadcast address
	DropProtocol                         // IP protocol other than ICMP, UDP, TCP
	DropICMPMalformed                    // short or bad checksum
	DropICMPType                         // ICMP other than echo request
	DropUDPMalformed                     // bad UDP length
	DropNoPort                           // UDP port without handler
	DropTCPMalformed                     // segment tcp.ParseSegment refused
	DropBacklogFull                      // SYN to a listener whose backlog is full
	DropARPQueueFull                     // too many packets waiting for one ARP reply
	DropARPFailed                        // queued packets of a resolution that gave up
	DropNoRoute                          // destination off-link without gateway
	DropTooBig                           // packet larger than the MTU
	DropSendError                        // the endpoint's Send failed
	DropUDPQueueFull                     // a UDPConn's unread queue is full
	DropListenNoSYN                      // neither SYN nor ACK to a listening port (a FIN, NULL or Xmas probe)
	DropARPConflict                      // another MAC claimed a live neighbour's address (verified, not believed)
	DropNeighborsFull                    // a packet to a new neighbour when the ARP cache is full of busy entries
	DropARPUnsolicited                   // an ARP reply from an address we never asked for (not learned, as Linux's arp_accept 0)
	DropICMPStale                        // a "fragmentation needed" for no connection, a sequence number not in flight, or an MTU we fit
	numDropReasons
)

var dropNames = [numDropReasons]string{
	"truncated", "not-our-mac", "ethertype", "arp-malformed", "arp-bad-sender",
	"ipv4-malformed", "bad-checksum", "fragment", "not-our-addr", "bad-source",
	"broadcast", "protocol", "icmp-malformed", "icmp-type", "udp-malformed",
	"no-port", "tcp-malformed", "backlog-full", "arp-queue-full", "arp-failed",
	"no-route", "too-big", "send-error", "udp-queue-full", "listen-no-syn",
	"arp-conflict", "neighbors-full", "arp-unsolicited", "icmp-stale",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("DropReason(%d)", r)
}

// Counters are the stack's cumulative statistics.
type Counters struct {
	FramesIn, FramesOut, SendErrors uint64

	ARPRequestsIn, ARPRepliesIn, ARPRequestsOut, ARPRepliesOut uint64
	ARPFailures                                                uint64 // resolutions given up

	IPv4In, IPv4Out, IPv4BadChecksum, IPv4Fragments, IPv4NotOurs uint64

	ICMPEchoIn, ICMPEchoOut                uint64 // requests answered
	ICMPEchoRequestsOut, ICMPEchoRepliesIn uint64 // our Pings
	ICMPErrorsOut, ICMPErrorsLimited       uint64 // port unreachables sent, and held back by the rate limit
	ICMPFragNeededIn                       uint64 // "fragmentation needed" that lowered a connection's MSS (RFC 1191)

	UDPIn, UDPOut, UDPNoPort, UDPBadChecksum uint64
	UDPTrains                                uint64 // frames of several datagrams the link cut (SendUDPSegments)

	TCPIn, TCPOut, TCPBadChecksum uint64
	TCPNoConn                     uint64 // segments without connection or listener
	TCPIntercepted                uint64 // segments claimed by the interceptor
	// Summed over live and finished connections: segments sent again,
	// retransmission timeouts, fast recoveries, tail loss probes, segments
	// RACK marked lost, and segments PAWS dropped.
	TCPRetransmits, TCPTimeouts, TCPRecoveries      uint64
	TCPTailLossProbes, TCPRACKLost, TCPPAWSRejected uint64
	RSTIn, RSTOut                                   uint64
	// SYN cookies: SYN-ACKs sent with one (backlog full), and the ACKs
	// that brought one back valid (a connection) or not (a RST).
	SYNCookiesSent, SYNCookiesAccepted, SYNCookiesRejected uint64
	// MemoryReleases counts the times memory went back to the OS after a
	// burst of connections ended (memory.go).
	MemoryReleases uint64

	Drops [numDropReasons]uint64
}

// Dropped is the total of Drops.
func (c *Counters) Dropped() uint64 {
	var n uint64
	for _, d := range c.Drops {
		n += d
	}
	return n
}

// String renders the non-zero counters as an aligned two-column table.
func (c Counters) String() string {
	rows := []struct {
		name string
		v    uint64
	}{
		{"frames.in", c.FramesIn}, {"frames.out", c.FramesOut}, {"frames.send_errors", c.SendErrors},
		{"arp.requests.in", c.ARPRequestsIn}, {"arp.replies.in", c.ARPRepliesIn},
		{"arp.requests.out", c.ARPRequestsOut}, {"arp.replies.out", c.ARPRepliesOut},
		{"arp.failures", c.ARPFailures},
		{"ipv4.in", c.IPv4In}, {"ipv4.out", c.IPv4Out}, {"ipv4.bad_checksum", c.IPv4BadChecksum},
		{"ipv4.fragments", c.IPv4Fragments}, {"ipv4.not_ours", c.IPv4NotOurs},
		{"icmp.echo.in", c.ICMPEchoIn}, {"icmp.echo.out", c.ICMPEchoOut},
		{"icmp.ping.out", c.ICMPEchoRequestsOut}, {"icmp.ping.replies", c.ICMPEchoRepliesIn},
		{"icmp.errors.out", c.ICMPErrorsOut}, {"icmp.errors.limited", c.ICMPErrorsLimited},
		{"udp.in", c.UDPIn}, {"udp.out", c.UDPOut}, {"udp.no_port", c.UDPNoPort}, {"udp.bad_checksum", c.UDPBadChecksum},
		{"udp.trains", c.UDPTrains},
		{"tcp.in", c.TCPIn}, {"tcp.out", c.TCPOut}, {"tcp.bad_checksum", c.TCPBadChecksum},
		{"tcp.no_conn", c.TCPNoConn}, {"tcp.intercepted", c.TCPIntercepted},
		{"tcp.retransmits", c.TCPRetransmits}, {"tcp.timeouts", c.TCPTimeouts}, {"tcp.recoveries", c.TCPRecoveries},
		{"tcp.tail_loss_probes", c.TCPTailLossProbes}, {"tcp.rack_lost", c.TCPRACKLost}, {"tcp.paws_rejected", c.TCPPAWSRejected},
		{"tcp.rst.in", c.RSTIn}, {"tcp.rst.out", c.RSTOut},
		{"tcp.syncookies.sent", c.SYNCookiesSent}, {"tcp.syncookies.accepted", c.SYNCookiesAccepted},
		{"tcp.syncookies.rejected", c.SYNCookiesRejected},
		{"memory.releases", c.MemoryReleases},
	}
	for r, v := range c.Drops {
		rows = append(rows, struct {
			name string
			v    uint64
		}{"drop." + DropReason(r).String(), v})
	}
	var b strings.Builder
	for _, r := range rows {
		if r.v != 0 {
			fmt.Fprintf(&b, "%-22s %d\n", r.name, r.v)
		}
	}
	return b.String()
}
