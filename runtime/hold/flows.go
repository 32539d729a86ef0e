package hold

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Flow mode. A migration target holds the client's segments of one
// connection while others pass: the queue sees only the TCP segments a
// rule sends it (the kernel path sends those that find no established
// socket), copies their first copyRange bytes to read the flow, and asks
// decide what to do with each.

// copyRange covers an IPv4 header with the most options (60 bytes) and the
// TCP ports.
const copyRange = 64

// Flow is a TCP segment's addresses, as the receiving host sees them.
type Flow struct{ Src, Dst netip.AddrPort }

func (f Flow) String() string { return fmt.Sprintf("%v->%v", f.Src, f.Dst) }

// Verdict is what decide says of a segment.
type Verdict uint8

const (
	// Accept lets the segment on through the stack.
	Accept Verdict = iota
	// Drop discards it.
	Drop
	// Hold keeps it until ReleaseFlow or DropFlow.
	Hold
)

// FlowStats are a flow-mode queue's counters.
type FlowStats struct {
	Held, Overflow, Accepted, Dropped, Unparsed uint64
}

// OpenFlows binds queue num, as Open does, in flow mode: decide classifies
// every queued segment by its flow; at most maxPerFlow segments are held
// per flow, the rest dropped and counted. decide runs on the queue's
// receiving goroutine and must not block or call the queue.
func OpenFlows(num uint16, maxPerFlow int, decide func(Flow) Verdict) (*Queue, error) {
	if decide == nil {
		return nil, fmt.Errorf("hold: queue %d: OpenFlows needs a decide function", num)
	}
	return open(num, maxPerFlow, copyPacket, decide)
}

// parseFlow reads the addresses of an IPv4 TCP segment's first bytes.
func parseFlow(p []byte) (Flow, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != 6 {
		return Flow{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 || len(p) < ihl+4 {
		return Flow{}, false
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	return Flow{
		Src: netip.AddrPortFrom(src, binary.BigEndian.Uint16(p[ihl:])),
		Dst: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(p[ihl+2:])),
	}, true
}

// takeFlow settles or holds one packet in flow mode.
func (q *Queue) takeFlow(id uint32, payload []byte) {
	f, ok := parseFlow(payload)
	q.mu.Lock()
	defer q.mu.Unlock()
	if !ok {
		// Not IPv4 TCP: the rule should not have sent it; let it pass.
		q.stats.Unparsed++
		q.verdict(id, verdictAccept) //nolint:errcheck // the kernel drops it if the socket failed
		return
	}
	switch q.decide(f) {
	case Hold:
		h := q.flows[f]
		if h == nil {
			h = &flowHeld{}
			q.flows[f] = h
		}
		if len(h.ids) >= q.max {
			h.over++
			q.stats.Overflow++
			q.verdict(id, verdictDrop) //nolint:errcheck // dropped either way
			return
		}
		h.ids = append(h.ids, id)
		q.stats.Held++
	case Drop:
		q.stats.Dropped++
		q.verdict(id, verdictDrop) //nolint:errcheck // dropped either way
	default:
		q.stats.Accepted++
		q.verdict(id, verdictAccept) //nolint:errcheck // lost with the socket
	}
}

// ReleaseFlow lets f's held segments on, in arrival order, and forgets
// the flow; it returns how many it released and how many were dropped
// over the bound.
func (q *Queue) ReleaseFlow(f Flow) (held, overflow int, err error) {
	return q.settleFlow(f, verdictAccept)
}

// DropFlow discards f's held segments and forgets the flow.
func (q *Queue) DropFlow(f Flow) (held, overflow int, err error) {
	return q.settleFlow(f, verdictDrop)
}

func (q *Queue) settleFlow(f Flow, v uint32) (int, int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.flows[f]
	if h == nil {
		return 0, 0, nil
	}
	if q.err != nil {
		delete(q.flows, f)
		return 0, h.over, q.err
	}
	for i, id := range h.ids {
		if err := q.verdict(id, v); err != nil {
			// The rest stay filed, as settle keeps them: a later call
			// settles them, instead of leaving them to the kernel.
			h.ids = h.ids[i:]
			return i, h.over, fmt.Errorf("hold: queue %d: verdict for packet %d of %v: %w", q.num, id, f, err)
		}
	}
	delete(q.flows, f)
	return len(h.ids), h.over, nil
}

// FlowStats returns a flow-mode queue's counters.
func (q *Queue) FlowStats() FlowStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}
