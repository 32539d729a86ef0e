package stack

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/capygen/capygen/runtime/internal/prefault"
	"github.com/capygen/capygen/runtime/tcp"
)

// inputTCP parses a segment and hands it to the interceptor, its
// connection, a listener, or answers it with a RST.
func (s *Stack) inputTCP(now tcp.Time, frame []byte, src, dst netip.Addr, b []byte) {
	seg, err := tcp.ParseSegment(b, src, dst)
	if err != nil {
		if isChecksumErr(err) {
			s.ctr.TCPBadChecksum++
			s.drop(DropBadChecksum)
		} else {
			s.drop(DropTCPMalformed)
		}
		return
	}
	s.ctr.TCPIn++
	if seg.Flags&tcp.FlagRST != 0 {
		s.ctr.RSTIn++
	}
	id := tcp.ID{Local: netip.AddrPortFrom(dst, seg.DstPort), Remote: netip.AddrPortFrom(src, seg.SrcPort)}
	if ic := s.intercept; ic != nil {
		// A copy, so that only this path pays for seg escaping to the heap.
		hs := seg
		if s.callUnlocked(func() bool { return ic(now, id, &hs, frame) }) {
			s.ctr.TCPIntercepted++
			return
		}
		now = s.now // others may have moved the clock while unlocked
	}
	if c := s.conns[id]; c != nil {
		if c.tc.Reusable(&seg) { // a bare SYN only: the common path pays a flag test
			if l := s.listeners[seg.DstPort]; l != nil {
				// A new SYN on the address pair of a connection in
				// TIME-WAIT (beyond everything it received) or finished: a
				// new connection, as Linux takes it, not an ACK of the old
				// one that the client would answer with RST and retry.
				s.outputOwed(now, c) // what an earlier segment of the drain owes the old one
				s.removeConn(c)
				s.acceptSYN(now, l, id, &seg)
				return
			}
		}
		c.tc.Input(now, &seg)
		s.outputSoon(now, c)
		return
	}
	if seg.Flags&tcp.FlagRST != 0 {
		return // never answer a RST
	}
	if l := s.listeners[seg.DstPort]; l != nil {
		switch {
		case seg.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN:
			s.acceptSYN(now, l, id, &seg)
			return
		case seg.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagACK && !s.cfg.NoSYNCookies && s.acceptCookie(now, l, id, &seg):
			return
		case seg.Flags&tcp.FlagACK == 0:
			// RFC 9293 §3.10.7.2: in LISTEN, a segment with neither SYN
			// nor ACK (nor RST) is dropped, not reset: FIN, NULL and Xmas
			// probes learn nothing.
			s.drop(DropListenNoSYN)
			return
		}
	}
	s.ctr.TCPNoConn++
	s.reset(now, id, &seg)
}

// callUnlocked runs a hook without the stack lock, retaking it even if
// the hook panics.
func (s *Stack) callUnlocked(f func() bool) bool {
	s.unlockHook()
	defer s.relockHook()
	return f()
}

// unlockHook releases s.mu for a hook called from Input, and relockHook
// retakes it. A hook called from Run's drain stays in the drain (draining
// stays set while it runs unlocked): the Output its calls cause (a
// connection it attaches, the held frames it replays through Input) is
// put off to the drain's end like the drain's own, so the datagrams it
// sends leave first. The migration layer's CONN_STATE_ACK is such a
// datagram: it is on the migration's critical path, and the restored
// connection's segments, which would otherwise go ahead of it in the same
// kick, are not.
func (s *Stack) unlockHook() {
	s.hooks++
	s.mu.Unlock()
}

// relockHook retakes the lock after a hook, and wakes whom the hook's
// calls signalled (signal) before going on.
func (s *Stack) relockHook() {
	s.mu.Lock()
	s.hooks--
	s.releaseWakes()
}

// acceptSYN starts a passive open if the listener's backlog has room.
func (s *Stack) acceptSYN(now tcp.Time, l *Listener, id tcp.ID, seg *tcp.Segment) {
	if l.pending >= s.cfg.Backlog {
		if !s.cfg.NoSYNCookies {
			s.sendCookie(now, id, seg)
			return
		}
		s.drop(DropBacklogFull) // the client retransmits its SYN
		return
	}
	tc, err := tcp.Accept(s.cfg.TCP, id, seg, s.iss(id, now), now)
	if err != nil {
		s.drop(DropTCPMalformed)
		s.reset(now, id, seg)
		return
	}
	c := s.newConn(tc, id)
	c.lis = l
	l.pending++
	s.output(now, c)
}

// reset answers seg, which has no connection, with tcp.ResetFor's RST.
func (s *Stack) reset(now tcp.Time, id tcp.ID, seg *tcp.Segment) {
	if rst, ok := tcp.ResetFor(seg); ok {
		s.sendSegment(now, id, &rst)
	}
}

// sendSegment sends seg, of no connection filed here (a RST for a segment
// that has none, a cookie SYN-ACK, an aborted connection's), from
// id.Local, outside any run. id.Local need not be this stack's address:
// an aborted connection that had moved here leaves from its origin's.
func (s *Stack) sendSegment(now tcp.Time, id tcp.ID, seg *tcp.Segment) {
	s.startFrame()
	s.tx = tcp.AppendSegment(s.tx, id.Local.Addr(), id.Remote.Addr(), seg)
	s.ctr.TCPOut++
	if seg.Flags&tcp.FlagRST != 0 {
		s.ctr.RSTOut++
	}
	s.sendIPv4From(now, id.Local.Addr(), id.Remote.Addr(), protoTCP) //nolint:errcheck // counted as a drop; the peer or the probes' schedule sends again
}

// output runs c's Output, sending what it emits, reacts to the state
// transitions c made since the last output, and wakes c's waiters.
// Every call that changes c's state is followed by an output, so no
// transition goes unseen: at once after the Conn methods, Input,
// AdoptConn and AttachConn (Advance's timers fire inside output); after
// a segment of Run's receive drain, once per connection at the drain's
// end (flushTx), or before the connection leaves the table if that comes
// first (outputOwed). Only a connection failDials gives up on goes
// without.
func (s *Stack) output(now tcp.Time, c *Conn) {
	c.outPending = false // whatever a drain put off is done now
	if c.closed {
		// Nobody will read what still arrives after Close: discard it so
		// the window stays open and the peer can finish (like SHUT_RD).
		for c.tc.Readable() > 0 {
			if n, _ := c.tc.Read(s.discard[:]); n == 0 {
				break
			}
		}
	}
	s.txConn = c
	s.beginBurst()
	c.tc.Output(now, s.emit)
	s.endBurst()
	s.txConn = nil
	if entered := c.tc.Transitions(); entered != 0 {
		s.transitions(c, entered)
	}
	if c.tc.Done() {
		s.noteDeadline(now) // Advance reaps it
	} else if d, ok := c.tc.Deadline(); ok {
		s.noteDeadline(d)
	}
	c.signalNews()
}

// transitions reacts to the states c's connection entered: the first
// synchronized state completes the handshake (every path there passes
// through ESTABLISHED, except Restore, whose connections AdoptConn and
// AttachConn mark established themselves), and queues an accepted
// connection on its listener.
func (s *Stack) transitions(c *Conn, entered tcp.StateSet) {
	if s.traceStates != nil {
		s.traceStates(c, entered)
	}
	if !c.established && entered.Has(tcp.StateEstablished) {
		c.established = true
		if l := c.lis; l != nil && !c.queued {
			c.queued = true
			l.queue = append(l.queue, c)
			s.signal(&l.wake)
		}
	}
}

// emitSegment is the tcp.Conn Output callback; s.txConn is the emitter.
func (s *Stack) emitSegment(seg *tcp.Segment) {
	if s.joinSegment(seg) {
		return
	}
	c := s.txConn
	s.startFrame()
	s.tx = tcp.AppendSegment(s.tx, c.id.Local.Addr(), c.id.Remote.Addr(), seg)
	s.ctr.TCPOut++
	if seg.Flags&tcp.FlagRST != 0 {
		s.ctr.RSTOut++
	}
	s.sendIPv4(s.now, c.id.Remote.Addr(), protoTCP) //nolint:errcheck // TCP retransmits
	// Not taken if sendIPv4 stopped short of resolveAndSend (too big, no
	// route) or the frame waits for ARP: no later frame may start a run.
	s.runFrom = nil
}

// ReserveConn makes the next connection's Conn beforehand, so that
// attaching or adopting one (a migration's restore) does not allocate it.
func (s *Stack) ReserveConn() {
	s.mu.Lock()
	if s.spare == nil {
		s.spare = new(Conn)
		prefault.Touch(s.spare) // its first write is then no page fault
	}
	s.mu.Unlock()
}

// newConn wraps tc and enters it in the demux table.
func (s *Stack) newConn(tc *tcp.Conn, id tcp.ID) *Conn {
	c := s.spare
	s.spare = nil
	if c == nil {
		c = new(Conn)
	}
	*c = Conn{s: s, tc: tc, id: id}
	s.conns[id] = c
	s.noteConnAdded()
	c.idx = len(s.connList)
	s.connList = append(s.connList, c)
	return c
}

// removeConn takes c out of the demux table, keeping its statistics.
func (s *Stack) removeConn(c *Conn) {
	if s.conns[c.id] != c {
		return
	}
	if s.txRun.conn == c {
		s.sealRun() // its Conn may be reused before the burst ends
	}
	delete(s.conns, c.id)
	last := len(s.connList) - 1
	s.connList[c.idx] = s.connList[last]
	s.connList[c.idx].idx = c.idx
	s.connList[last] = nil
	s.connList = s.connList[:last]
	c.idx = -1
	c.outPending = false // a drain's deferred Output no longer concerns c: flushTx skips it
	s.reaped.addConn(c.tc.Stats())
	if l := c.lis; l != nil && !c.queued {
		l.pending-- // died during the handshake
		c.lis = nil
	}
	c.signalAll()
	if c.tc.Done() { // finished, not detached to move elsewhere
		s.noteConnRemoved()
	}
	if g, ok := s.timers.(ConnGoneHook); ok {
		g.ConnGone(c.id)
		s.wakeRun()
	}
}

// failDials aborts connections still opening toward hosts reached via
// hop, so Dial reports why instead of timing out.
func (s *Stack) failDials(hop netip.Addr, err error) {
	for i := 0; i < len(s.connList); {
		c := s.connList[i]
		if !c.established {
			if h, e := s.nextHop(c.id.Remote.Addr()); e == nil && h == hop {
				c.err = err
				c.tc.Abort()
				s.removeConn(c) // swaps another conn into i
				continue
			}
		}
		i++
	}
}

// iss is the RFC 6528 initial sequence number: a keyed hash of the
// 4-tuple plus a 4 µs clock.
func (s *Stack) iss(id tcp.ID, now tcp.Time) uint32 {
	var b [32 + 12]byte
	copy(b[:32], s.key[:])
	l, r := id.Local.Addr().As4(), id.Remote.Addr().As4()
	copy(b[32:36], l[:])
	copy(b[36:40], r[:])
	binary.BigEndian.PutUint16(b[40:42], id.Local.Port())
	binary.BigEndian.PutUint16(b[42:44], id.Remote.Port())
	h := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(h[:4]) + uint32(now/4000)
}

// Ephemeral port range (RFC 6335 dynamic ports).
const (
	ephemeralFirst = 49152
	ephemeralCount = 65536 - ephemeralFirst
)

// ephemeralPort picks a local port not used toward raddr nor listened on.
func (s *Stack) ephemeralPort(raddr netip.AddrPort) (uint16, error) {
	for i := uint32(0); i < ephemeralCount; i++ {
		p := uint16(ephemeralFirst + (s.portNext+i)%ephemeralCount)
		if s.listeners[p] != nil {
			continue
		}
		if s.conns[tcp.ID{Local: netip.AddrPortFrom(s.addr, p), Remote: raddr}] != nil {
			continue
		}
		s.portNext += i + 1
		return p, nil
	}
	return 0, fmt.Errorf("%w: all %d ports toward %v are taken", ErrNoPorts, ephemeralCount, raddr)
}

// SetTCPInterceptor installs (or with nil removes) the hook that sees
// every TCP segment before demultiplexing. The migration layer uses it to
// hold the segments of a connection being migrated in.
func (s *Stack) SetTCPInterceptor(f TCPInterceptor) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

// AdoptConn inserts a restored connection. A listener must be open on
// its local port: the connection is queued there and returned by Accept
// as if it had just been established. Its local address may be another
// server's (a connection migrated in keeps the origin's address, and the
// switch rewrites the client's packets to this stack and this stack's
// replies back to the origin): the stack files it under its own address
// with the same port, which is the ID its Conn reports and DetachConn
// takes.
func (s *Stack) AdoptConn(tc *tcp.Conn) error {
	if tc == nil {
		return fmt.Errorf("%w: nil connection", ErrNoConn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orig := tc.ID()
	if !orig.Remote.Addr().Is4() || orig.Remote.Port() == 0 || orig.Local.Port() == 0 {
		return fmt.Errorf("%w: adopted connection %v-%v needs IPv4 endpoints with ports", ErrBadAddr, orig.Local, orig.Remote)
	}
	id := tcp.ID{Local: netip.AddrPortFrom(s.addr, orig.Local.Port()), Remote: orig.Remote}
	if s.conns[id] != nil {
		return fmt.Errorf("%w: %v-%v", ErrConnExists, id.Local, id.Remote)
	}
	l := s.listeners[id.Local.Port()]
	if l == nil {
		return fmt.Errorf("%w: adopting %v-%v needs a listener on port %d", ErrNoListener, id.Local, id.Remote, id.Local.Port())
	}
	if s.closed {
		return fmt.Errorf("stack: adopting %v-%v: %w", id.Local, id.Remote, net.ErrClosed)
	}
	c := s.newConn(tc, id)
	c.lis, c.established, c.queued = l, true, true
	l.pending++
	l.queue = append(l.queue, c)
	s.signal(&l.wake)
	s.outputSoon(s.nowLocked(), c)
	return nil
}

// DetachConn removes a connection from the stack and returns it, for
// migration away. Its Conn then fails with ErrDetached. Segments that
// still arrive for it are answered with RST unless the interceptor claims
// them. Called from a hook in the middle of Run's drain, it first sends
// what the drain's segments owe the connection, so the result is the
// same as with frames given to Input one by one.
func (s *Stack) DetachConn(id tcp.ID) (*tcp.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[id]
	if c == nil {
		return nil, fmt.Errorf("%w: %v-%v", ErrNoConn, id.Local, id.Remote)
	}
	// Output that segments earlier in this drain owe c (an ACK for data
	// just received) goes out now, as after Input: the snapshot then
	// holds the state after it. Once detached, c's state belongs to its
	// snapshot, and this stack never outputs it again.
	s.outputOwed(s.nowLocked(), c)
	s.removeConn(c)
	c.detached = true
	// The handle lets go of the state: its new owner may reuse the
	// tcp.Conn for another connection (the migration layer restores the
	// next arrival into it), which a stale handle must never reach.
	tc := c.tc
	c.origin, c.tc = tc.ID().Local, nil
	if l := c.lis; l != nil { // queued but never accepted
		for i, q := range l.queue {
			if q == c {
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				l.pending--
				break
			}
		}
		c.lis = nil
	}
	return tc, nil
}

// AttachConn files a restored connection like AdoptConn but hands its
// Conn straight to the caller instead of queueing it on a listener: the
// migration layer's restorers take connections this way, with no
// listener on the port.
func (s *Stack) AttachConn(tc *tcp.Conn) (*Conn, error) {
	if tc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrNoConn)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orig := tc.ID()
	if !orig.Remote.Addr().Is4() || orig.Remote.Port() == 0 || orig.Local.Port() == 0 {
		return nil, fmt.Errorf("%w: attached connection %v-%v needs IPv4 endpoints with ports", ErrBadAddr, orig.Local, orig.Remote)
	}
	id := tcp.ID{Local: netip.AddrPortFrom(s.addr, orig.Local.Port()), Remote: orig.Remote}
	if s.conns[id] != nil {
		return nil, fmt.Errorf("%w: %v-%v", ErrConnExists, id.Local, id.Remote)
	}
	if s.closed {
		return nil, fmt.Errorf("stack: attaching %v-%v: %w", id.Local, id.Remote, net.ErrClosed)
	}
	c := s.newConn(tc, id)
	c.established = true
	s.outputSoon(s.nowLocked(), c)
	return c, nil
}

// RecycleDetached gives the queue arrays of tc, a connection DetachConn
// took out of the stack and that is done with (its migration's target has
// the state), to the stack's pool (tcp.Conn.Recycle). It takes the
// stack's lock: the application's Conn still points at tc, and may ask it
// (Queued) until it learns that the connection moved.
func (s *Stack) RecycleDetached(tc *tcp.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tc.Recycle()
}

// AbortDetached resets a connection that DetachConn took out of the
// stack: it sends the RST tc.Abort makes, then a keep-alive probe (see
// tcp.Conn.KeepAliveProbe), both from the address the peer knows, and
// repeats the probe after each of tcp.AbortProbesAfter, and once more
// probeLater after the abort if that is not 0. The migration layer uses it
// when a connection's state was lost in flight and the peer must not hang.
func (s *Stack) AbortDetached(tc *tcp.Conn, probeLater time.Duration) {
	if tc == nil {
		return
	}
	s.mu.Lock()
	defer s.unlockFlush()
	filed := tcp.ID{Local: netip.AddrPortFrom(s.addr, tc.ID().Local.Port()), Remote: tc.ID().Remote}
	if s.conns[filed] != nil && s.conns[filed].tc == tc {
		return // not detached: Conn.Abort is the way
	}
	// The peer may have moved past the sequence numbers tc knows (another
	// server served it meanwhile), and would then drop the RST as out of
	// window: a keep-alive probe after it makes the peer answer with its
	// RCV.NXT, and the server it knows, which no longer has the
	// connection, answers that with a RST the peer accepts. All of them
	// leave from that server's address, tc's own (the origin, for a
	// connection migrated in): the RST clears the switch's entry, so a
	// probe from this stack's address would reach the peer unrewritten,
	// from a server it does not know, and draw only a RST of its own.
	id := tc.ID()
	now := s.nowLocked()
	probe := tc.KeepAliveProbe(now)
	tc.Abort()
	s.beginBurst()
	tc.Output(now, func(seg *tcp.Segment) { s.sendSegment(now, id, seg) })
	s.sendSegment(now, id, &probe)
	s.endBurst()
	after := tcp.AbortProbesAfter[:]
	if probeLater > 0 {
		after = append(after[:len(after):len(after)], probeLater)
		slices.Sort(after)
	}
	s.reprobes = append(s.reprobes, reprobe{id: id, seg: probe, from: now, after: after, at: now + after[0]})
}

// reprobe is a keep-alive probe of a connection AbortDetached reset.
type reprobe struct {
	id    tcp.ID // the addresses it leaves with
	seg   tcp.Segment
	from  tcp.Time        // the abort
	after []time.Duration // the sends after the first, from the abort
	at    tcp.Time        // the next send
	sent  int             // sends after the first so far
}

// advanceReprobes sends the probes due at now and drops those done. s.mu
// is held, in a burst.
func (s *Stack) advanceReprobes(now tcp.Time) {
	kept := s.reprobes[:0]
	for _, r := range s.reprobes {
		if r.at <= now {
			seg := tcp.KeepAliveProbeAgain(r.seg, r.from, now)
			s.sendSegment(now, r.id, &seg)
			if r.sent++; r.sent == len(r.after) {
				continue
			}
			r.at = r.from + r.after[r.sent]
		}
		kept = append(kept, r)
	}
	clear(s.reprobes[len(kept):])
	s.reprobes = kept
}

// LookupConn returns the connection filed under id, or nil.
func (s *Stack) LookupConn(id tcp.ID) *Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns[id]
}

// NumConns is how many connections the demux table holds, in O(1): the
// workload a server reports to the switch.
func (s *Stack) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.connList)
}

// Conns lists the IDs of the connections in the demux table, in table
// order.
func (s *Stack) Conns() []tcp.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]tcp.ID, len(s.connList))
	for i, c := range s.connList {
		ids[i] = c.id
	}
	return ids
}

func isChecksumErr(err error) bool { return errors.Is(err, tcp.ErrBadChecksum) }

// addConn adds a connection's loss-recovery statistics to the sums.
func (c *Counters) addConn(st tcp.Stats) {
	c.TCPRetransmits += st.Retransmits
	c.TCPTimeouts += st.Timeouts
	c.TCPRecoveries += st.FastRetransmits
	c.TCPTailLossProbes += st.TailLossProbes
	c.TCPRACKLost += st.RACKLost
	c.TCPPAWSRejected += st.PAWSRejected
}
