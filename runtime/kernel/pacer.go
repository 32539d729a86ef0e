package kernel

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
)

// A kernel state's thousands of fragments, written back to back, overflow
// the software switch's AF_XDP rings, and a state with one fragment lost
// waits for a resend that loses others. So a burst (a state's fragments)
// sends its first paceEvery datagrams at once, and the pacer the rest,
// paceEvery at a time, pacePause apart. The pacer runs without the
// engine's lock: sleeping under it stalled every other migration's
// messages and the heartbeats for the whole burst (about 18 ms of pauses
// for a 16 MiB state, again at each resend). The tail's sends are not the
// migration's Work.
const (
	paceEvery = 128
	pacePause = 200 * time.Microsecond
)

// pacer sends bursts' tails, one destination's in the order queued. A
// newer tail of the same migration (the TCPMig header's origin and client
// address pair) replaces the rest of an older one: it is a resend of the
// same state, and the target keeps the fragments it has. Another
// migration's tail to the same target waits its turn: replacing it would
// leave that state short of its tail until a resend, which the same
// replacement could cut short again.
type pacer struct {
	udp  *net.UDPConn
	done <-chan struct{}
	wake chan struct{}

	mu     sync.Mutex
	queues map[netip.Addr][]*tail // per destination, oldest first; the first is being sent
}

// tail is a burst's datagrams after its first paceEvery, back to back.
type tail struct {
	key  tailKey
	buf  []byte
	ends []int // each datagram's end in buf
}

// tailKey names the migration a tail's datagrams belong to: the TCPMig
// header's origin and client addresses. A tail of datagrams that are not
// TCPMig has none, and replaces nothing.
type tailKey struct {
	addrs [tcpmig.OffsetFragmentIndex - tcpmig.OffsetOriginIP]byte
	ok    bool
}

// keyOf reads payload's migration key.
func keyOf(payload []byte) tailKey {
	var k tailKey
	if len(payload) < tcpmig.HeaderLen || tcpmig.TCPMig(payload).Magic() != tcpmig.MagicValue {
		return k
	}
	copy(k.addrs[:], payload[tcpmig.OffsetOriginIP:tcpmig.OffsetFragmentIndex])
	k.ok = true
	return k
}

func newPacer(udp *net.UDPConn, done <-chan struct{}) *pacer {
	return &pacer{udp: udp, done: done, wake: make(chan struct{}, 1), queues: map[netip.Addr][]*tail{}}
}

// add queues payload, a copy of it, to the tail being built.
func (t *tail) add(payload []byte) {
	t.buf = append(t.buf, payload...)
	t.ends = append(t.ends, len(t.buf))
}

// queue hands t, complete, to the pacer: in place of a tail of the same
// migration to dst, or after dst's others.
func (p *pacer) queue(dst netip.Addr, t *tail) {
	p.mu.Lock()
	q := p.queues[dst]
	if i := slices.IndexFunc(q, func(o *tail) bool { return t.key.ok && o.key == t.key }); i >= 0 {
		q[i] = t
	} else {
		p.queues[dst] = append(q, t)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// run sends the queued tails until done closes.
func (p *pacer) run() {
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		for {
			dst, t := p.next()
			if t == nil {
				break
			}
			if !p.send(dst, t) {
				return
			}
		}
	}
}

// next picks a destination's oldest tail.
func (p *pacer) next() (netip.Addr, *tail) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for dst, q := range p.queues {
		return dst, q[0]
	}
	return netip.Addr{}, nil
}

// queued reports whether t is still queued for dst.
func (p *pacer) queued(dst netip.Addr, t *tail) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.queues[dst], t)
}

// finish removes t from dst's queue.
func (p *pacer) finish(dst netip.Addr, t *tail) {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queues[dst]
	if i := slices.Index(q, t); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) == 0 {
		delete(p.queues, dst)
	} else {
		p.queues[dst] = q
	}
}

// send sends t to dst, pausing after every paceEvery datagrams; it stops
// early if a newer tail of its migration replaced t, and returns false
// once done closes.
func (p *pacer) send(dst netip.Addr, t *tail) bool {
	to := netip.AddrPortFrom(dst, tcpmig.UDPPort)
	start := 0
	for i, end := range t.ends {
		if i%paceEvery == 0 { // the burst's first paceEvery went just before
			select {
			case <-p.done:
				return false
			case <-time.After(pacePause):
			}
			if !p.queued(dst, t) {
				return true
			}
		}
		p.udp.WriteToUDPAddrPort(t.buf[start:end], to) //nolint:errcheck // a lost fragment is resent with the state
		start = end
	}
	p.finish(dst, t)
	return true
}
