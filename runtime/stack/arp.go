package stack

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/capygen/capygen/runtime/tcp"
)

// neighbor is one ARP cache entry: resolved (mac valid until expires) or
// being resolved (requests sent, packets queued).
type neighbor struct {
	addr      netip.Addr
	mac       [6]byte
	resolved  bool
	expires   tcp.Time // resolved: when the entry is forgotten
	nextRetry tcp.Time // unresolved: when the next request goes out
	tries     int      // requests sent so far (resolving or refreshing)
	used      bool     // resolved: sent through since the last reply
	// verifying: another MAC claimed this address while the entry was
	// live; requests go out, and only the known MAC's answer keeps it.
	verifying bool
	queue     [][]byte // complete frames waiting for mac
}

func (n *neighbor) deadline() tcp.Time {
	if n.resolved && n.tries == 0 {
		return n.expires
	}
	return n.nextRetry
}

// Neighbor is an ARP cache entry as reported by Neighbors.
type Neighbor struct {
	Addr     netip.Addr
	MAC      [6]byte
	Resolved bool
	Queued   int // packets waiting for resolution
}

// Neighbors lists the ARP cache in address order.
func (s *Stack) Neighbors() []Neighbor {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Neighbor, 0, len(s.neigh))
	for _, n := range s.neigh {
		out = append(out, Neighbor{Addr: n.addr, MAC: n.mac, Resolved: n.resolved, Queued: len(n.queue)})
	}
	slices.SortFunc(out, func(a, b Neighbor) int { return a.Addr.Compare(b.Addr) })
	return out
}

// resolveAndSend sends frame (Ethernet header's source and type already
// set) to hop's MAC, or queues a copy while hop is resolved.
func (s *Stack) resolveAndSend(now tcp.Time, hop netip.Addr, frame []byte) error {
	n := s.neigh[hop]
	if n != nil && n.resolved {
		// Past expiry too: a refresh is under way (advanceARP) and the
		// old MAC is the best guess until it fails.
		n.used = true
		putEthernet(frame, n.mac, s.mac, etherTypeIPv4)
		if seg := s.runFrom; seg != nil {
			s.startRun(seg, frame)
			return nil
		}
		return s.sendFrame(frame)
	}
	if n == nil {
		if n = s.newNeighbor(hop); n == nil {
			s.drop(DropNeighborsFull)
			return nil // as a full queue: the sender's retransmission recovers
		}
		s.sendARPRequest(now, n)
	}
	if len(n.queue) >= max(s.cfg.ARPQueue, s.trainQueue) {
		s.drop(DropARPQueueFull)
		return nil // like a full NIC queue: the sender's retransmission recovers
	}
	putEthernet(frame, broadcastMAC, s.mac, etherTypeIPv4)
	n.queue = append(n.queue, append([]byte(nil), frame...))
	return nil
}

// newNeighbor adds an entry for addr, making room by forgetting an idle
// resolved one when the cache is full; nil if every entry is busy.
func (s *Stack) newNeighbor(addr netip.Addr) *neighbor {
	if len(s.neighList) >= s.cfg.MaxNeighbors {
		i := slices.IndexFunc(s.neighList, func(n *neighbor) bool {
			return n.resolved && n.tries == 0 && !n.used && len(n.queue) == 0
		})
		if i < 0 {
			return nil
		}
		s.forgetNeighbor(i)
	}
	n := &neighbor{addr: addr}
	s.neigh[addr] = n
	s.neighList = append(s.neighList, n)
	return n
}

// forgetNeighbor removes neighList[i], moving the last entry into i.
func (s *Stack) forgetNeighbor(i int) {
	delete(s.neigh, s.neighList[i].addr)
	last := len(s.neighList) - 1
	s.neighList[i] = s.neighList[last]
	s.neighList[last] = nil
	s.neighList = s.neighList[:last]
}

// noteNeighbor lowers the cached earliest neighbour deadline to n's.
func (s *Stack) noteNeighbor(n *neighbor) {
	if d := n.deadline(); !s.neighNextOK || d < s.neighNext {
		s.neighNext, s.neighNextOK = d, true
	}
}

func (s *Stack) sendARPRequest(now tcp.Time, n *neighbor) {
	n.tries++
	n.nextRetry = now + s.cfg.ARPRetry
	s.noteNeighbor(n)
	var f [60]byte // minimum Ethernet frame; the tail is padding
	putEthernet(f[:], broadcastMAC, s.mac, etherTypeARP)
	putARP(f[EthernetHeaderLen:], arpOpRequest, s.mac, s.addr, [6]byte{}, n.addr)
	if s.sendFrame(f[:]) == nil {
		s.ctr.ARPRequestsOut++
	}
}

// inputARP answers requests for our address and learns senders (RFC 826:
// update an existing entry from any packet, create one when we are the
// target).
func (s *Stack) inputARP(now tcp.Time, srcMAC [6]byte, a arpPacket) {
	if !a.valid() {
		s.drop(DropARPMalformed)
		return
	}
	op := a.op()
	switch op {
	case arpOpRequest:
		s.ctr.ARPRequestsIn++
	case arpOpReply:
		s.ctr.ARPRepliesIn++
	default:
		s.drop(DropARPMalformed)
		return
	}
	sha, spa, tpa := a.senderMAC(), a.senderIP(), a.targetIP()
	if op == arpOpRequest && spa.IsUnspecified() && tpa == s.addr && sha[0]&1 == 0 {
		// A probe for our address (RFC 5227 2.1.1): answered, as Linux
		// does, so that the prober does not take it; nothing is learned.
		s.sendARPReply(srcMAC, sha, spa)
		return
	}
	if sha[0]&1 != 0 || spa == s.addr || !s.cfg.Addr.Contains(spa) || spa == s.bcast {
		s.drop(DropARPBadSender)
		return
	}
	n := s.neigh[spa]
	if n == nil && tpa == s.addr {
		if op == arpOpReply {
			// Nobody asked: a reply is learned only for an address we
			// resolve (Linux's arp_accept 0), so a host cannot plant an
			// entry, or take an address before its owner answers.
			s.drop(DropARPUnsolicited)
			return
		}
		n = s.newNeighbor(spa) // nil when full: answered, not learned
	}
	switch {
	case n == nil:
	case n.resolved && sha != n.mac:
		// Another MAC claims a live neighbour's address: unsolicited, an
		// answer to a refresh, or not the one we asked to confirm.
		// Believe it only if the known MAC stops answering: verify (a
		// spoofed reply must not steal a live client's traffic, not even
		// by answering a refresh first); if nobody confirms, the entry
		// is forgotten and the next packet resolves the address anew.
		s.drop(DropARPConflict)
		if !n.verifying {
			n.verifying = true
			n.tries = 0
			s.sendARPRequest(now, n)
		}
	default:
		s.learn(now, n, sha)
	}
	if op == arpOpRequest && tpa == s.addr {
		s.sendARPReply(srcMAC, sha, spa)
	}
}

// sendARPReply answers a request for our address.
func (s *Stack) sendARPReply(to, tha [6]byte, tpa netip.Addr) {
	var f [60]byte
	putEthernet(f[:], to, s.mac, etherTypeARP)
	putARP(f[EthernetHeaderLen:], arpOpReply, s.mac, s.addr, tha, tpa)
	if s.sendFrame(f[:]) == nil {
		s.ctr.ARPRepliesOut++
	}
}

// learn records n's MAC and releases its queued frames.
func (s *Stack) learn(now tcp.Time, n *neighbor, mac [6]byte) {
	n.mac, n.resolved, n.expires, n.tries, n.used, n.verifying = mac, true, now+s.cfg.ARPTimeout, 0, false, false
	s.noteNeighbor(n)
	q := n.queue
	n.queue = nil
	for _, f := range q {
		putEthernet(f, mac, s.mac, etherTypeIPv4)
		s.sendFrame(f) //nolint:errcheck // counted in sendFrame; TCP retransmits
	}
}

// advanceARP retries unresolved entries and gives up on silent ones. A
// resolved entry that reaches its expiry is refreshed if it was used
// since the last reply (still sending to the old MAC meanwhile), and
// forgotten if idle or if the refresh goes unanswered.
func (s *Stack) advanceARP(now tcp.Time) {
	if !s.neighNextOK || s.neighNext > now {
		return // nothing due
	}
	s.neighNextOK = false // recomputed from what stays, below
	for i := 0; i < len(s.neighList); {
		n := s.neighList[i]
		if n.deadline() > now {
			s.noteNeighbor(n)
			i++
			continue
		}
		switch {
		case n.resolved && n.tries == 0 && n.used:
			n.used = false
			s.sendARPRequest(now, n) // notes its retry
			i++
			continue
		case n.tries > 0 && n.tries < s.cfg.ARPRetries:
			s.sendARPRequest(now, n)
			i++
			continue
		case !n.resolved:
			s.ctr.ARPFailures++
			s.ctr.Drops[DropARPFailed] += uint64(len(n.queue))
			s.failDials(n.addr, fmt.Errorf("%w: %v did not answer %d ARP requests", ErrHostUnreachable, n.addr, n.tries))
		case n.tries > 0:
			s.ctr.ARPFailures++ // a neighbour that stopped answering
		}
		s.forgetNeighbor(i)
	}
}
