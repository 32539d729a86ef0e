package stack

import (
	"encoding/binary"

	"github.com/capygen/capygen/runtime/tcp"
)

// A window of segments that a connection's Output emits in one burst is
// joined, as it is emitted, into one frame that the link cuts again
// (link.TCPSegmenter: the kernel's GSO, or a NIC's TSO), as Linux's TCP
// builds TSO frames. The first segment takes the usual path (headers,
// checksum, MTU, neighbour), and resolveAndSend keeps it as the run's
// head instead of sending it; each segment that continues it adds only its
// payload: no headers, no checksum, no trip through the link's queue. The
// link's own joiner (which compares every queued frame's headers) saw the
// same frames too late to save that work.
//
// A run is joined only inside a burst (it must leave with the burst's
// Flush), toward a resolved neighbour, and only of plain data segments
// (ACK, PSH on the last) whose headers match but for the sequence number.
// It is handed to the link (sealed) before any other frame is queued, so
// frames leave in the order they were made, and whenever the burst count
// returns to 0 (leaveBurst).
//
// A joining segment's payload is not copied when it is a view of its send
// queue (tcp.Segment.PayloadQueued): the link sends it from there, as
// a kernel sender's skb points into its pages. Those bytes stay as they
// are until acknowledged, and no byte of a run is acknowledged before the
// run leaves unless it was sent before (a retransmission, which the peer
// then discards whatever it holds). The arrays stay too: the stack's
// BufferPool holds back every array a queue lets go of until the runs
// begun before have left (viewsFence). Only a payload that wraps the
// queue's end, copied into scratch, is copied into the run.
type tcpRun struct {
	frame []byte // Ethernet, IPv4, the first segment's TCP header, payloads copied
	conn  *Conn  // nil: no run
	first tcp.Segment
	next  uint32 // the sequence number a joining segment must have
	mss   int    // the first segment's payload: where the link cuts
	segs  int
	open  bool     // the last segment was mss bytes without PSH
	max   int      // segments the link takes in one frame
	size  int      // the run's frame length, payload views and all
	head  int      // frame[:head] is what precedes the first view (0: no view)
	views [][]byte // the payload after frame[:head], in order
}

// runFrameCap holds the longest run: an IPv4 packet of 64 KiB and its
// Ethernet header (continues keeps a run within it).
const runFrameCap = EthernetHeaderLen + 0xffff

// joinSegment appends seg, which s.txConn's Output emits, to the run
// being built if it continues it, and reports whether it did. Otherwise
// it notes, in s.runFrom, whether seg may start a run: resolveAndSend
// starts one with the frame emitSegment builds for it, once it has passed
// the MTU and found the neighbour resolved.
func (s *Stack) joinSegment(seg *tcp.Segment) bool {
	s.runFrom = nil
	if s.txDefer == 0 || s.runs == nil || !joinable(seg) {
		return false
	}
	r := &s.txRun
	if r.conn != nil && r.conn == s.txConn && r.continues(seg) {
		r.join(seg, s.runViews)
		if r.head > 0 {
			s.runOpen.Store(true)
		}
		r.next += uint32(len(seg.Payload))
		r.segs++
		r.open = len(seg.Payload) == r.mss && seg.Flags&tcp.FlagPSH == 0
		if seg.Flags&tcp.FlagPSH != 0 {
			r.frame[EthernetHeaderLen+IPv4MinHeaderLen+13] |= byte(tcp.FlagPSH)
		}
		s.ipID++ // the link numbers the segments after the first
		s.ctr.TCPOut++
		s.ctr.IPv4Out++
		return true
	}
	if s.runs.MaxTCPSegments() >= 2 && !s.broadcast(s.txConn.id.Remote.Addr()) {
		s.runFrom = seg
	}
	return false
}

// startRun keeps frame, seg's, ready for a resolved neighbour, as the
// head of a new run, in place of sending it; the run before it is sealed.
// s.mu is held.
func (s *Stack) startRun(seg *tcp.Segment, frame []byte) {
	s.runFrom = nil
	s.sealRun()
	r := &s.txRun
	if cap(r.frame) < runFrameCap {
		// Sized for the longest run at once: joins never grow it, and
		// the link hands back arrays of this size (TakeTCPSegments).
		r.frame = make([]byte, 0, runFrameCap)
	}
	r.frame = append(r.frame[:0], frame...)
	r.size, r.head = len(frame), 0
	r.conn, r.first, r.first.Payload = s.txConn, *seg, nil
	r.next = seg.Seq + uint32(len(seg.Payload))
	r.mss, r.segs, r.max = len(seg.Payload), 1, s.runs.MaxTCPSegments()
	r.open = seg.Flags&tcp.FlagPSH == 0
	s.txQueued = true // the burst's Flush must come: sealRun queues the run
}

// joinable reports whether seg is a plain data segment that GSO repeats
// the headers of: ACK (PSH allowed), payload, and no option but
// timestamps.
func joinable(seg *tcp.Segment) bool {
	return seg.Flags&^tcp.FlagPSH == tcp.FlagACK && len(seg.Payload) > 0 &&
		seg.MSS == 0 && seg.WindowScale < 0 && !seg.SACKPermitted && seg.NumSACK == 0
}

// continues reports whether seg, a joinable segment of the run's
// connection, is the run's next segment with the same headers.
func (r *tcpRun) continues(seg *tcp.Segment) bool {
	f := &r.first
	return r.open && r.segs < r.max && seg.Seq == r.next && len(seg.Payload) <= r.mss &&
		r.size-EthernetHeaderLen+len(seg.Payload) <= 0xffff &&
		seg.Ack == f.Ack && seg.Window == f.Window && seg.HasTS == f.HasTS &&
		seg.TSVal == f.TSVal && seg.TSEcr == f.TSEcr
}

// sealRun hands the run being built, if any, to the link: a run of one
// segment as the frame it is, a longer one for the link to cut. s.mu is
// held.
func (s *Stack) sealRun() {
	r := &s.txRun
	if r.conn == nil {
		return
	}
	r.conn = nil
	if r.segs == 1 {
		// Queued, never sent at once: a seal where the burst count has
		// just reached 0 must not kick the link under s.mu (Send would);
		// the burst's flush, after the unlock, does.
		s.txDefer++
		s.sendFrame(r.frame) //nolint:errcheck // TCP retransmits; sendFrame counts the failure
		s.txDefer--
		return
	}
	binary.BigEndian.PutUint16(r.frame[EthernetHeaderLen+2:], uint16(r.size-EthernetHeaderLen))
	head := r.frame
	if r.head > 0 {
		head = r.frame[:r.head]
	}
	// The link keeps the frame and the views, uncopied: the next run is
	// built in the array it hands back, or a new one.
	spare, err := s.runs.TakeTCPSegments(head, r.views, r.mss)
	r.frame = spare
	clear(r.views)
	r.views, r.head = r.views[:0], 0
	s.runOpen.Store(false)
	if err != nil {
		s.ctr.SendErrors++
		s.drop(DropSendError)
		return // TCP retransmits
	}
	s.txQueued = true
	s.ctr.FramesOut += uint64(r.segs)
}

// join adds seg's payload to the run: as a view of its send queue when
// views may be taken and the payload is one, else copied into r.frame
// (behind the head, once a view has been taken, to keep the order).
func (r *tcpRun) join(seg *tcp.Segment, views bool) {
	p := seg.Payload
	r.size += len(p)
	if !views || !seg.PayloadQueued {
		if r.head == 0 {
			r.frame = append(r.frame, p...)
			return
		}
		k := len(r.frame)
		r.frame = append(r.frame, p...) // within runFrameCap: no new array
		p = r.frame[k:]
	}
	if r.head == 0 {
		r.head = len(r.frame)
	}
	if n := len(r.views); n > 0 {
		// Consecutive segments of a queue are consecutive in its array:
		// one view, one iovec.
		last := r.views[n-1]
		if len(last) < cap(last) && &last[:len(last)+1][len(last)] == &p[0] {
			r.views[n-1] = last[:len(last)+len(p)]
			return
		}
	}
	r.views = append(r.views, p)
}

// viewsFence is the stack's BufferPool fence (tcp.BufferPool.SetFence):
// runs begun are those the link took and, if it has views, the one being
// joined, which will be the next the link takes.
func (s *Stack) viewsFence() (begun, ended uint64) {
	taken, ended := s.runs.TCPRunsSent()
	if s.runOpen.Load() {
		taken++
	}
	return taken, ended
}
