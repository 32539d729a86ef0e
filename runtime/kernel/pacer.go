package kernel

import (
	"net"
	"net/netip"
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

// pacer sends bursts' tails. A newer tail to a destination replaces the
// rest of an older one: it is a resend of the same state (the target keeps
// the fragments it has) or a later migration's.
type pacer struct {
	udp  *net.UDPConn
	done <-chan struct{}
	wake chan struct{}

	mu    sync.Mutex
	tails map[netip.Addr]*tail // waiting or being sent
}

// tail is a burst's datagrams after its first paceEvery, back to back.
type tail struct {
	buf  []byte
	ends []int // each datagram's end in buf
}

func newPacer(udp *net.UDPConn, done <-chan struct{}) *pacer {
	return &pacer{udp: udp, done: done, wake: make(chan struct{}, 1), tails: map[netip.Addr]*tail{}}
}

// add queues payload, a copy of it, to the tail being built for dst.
func (t *tail) add(payload []byte) {
	t.buf = append(t.buf, payload...)
	t.ends = append(t.ends, len(t.buf))
}

// queue hands t, complete, to the pacer.
func (p *pacer) queue(dst netip.Addr, t *tail) {
	p.mu.Lock()
	p.tails[dst] = t
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

// next picks a queued tail.
func (p *pacer) next() (netip.Addr, *tail) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for dst, t := range p.tails {
		return dst, t
	}
	return netip.Addr{}, nil
}

// send sends t to dst, pausing after every paceEvery datagrams; it stops
// early if a newer tail replaced t, and returns false once done closes.
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
			p.mu.Lock()
			replaced := p.tails[dst] != t
			p.mu.Unlock()
			if replaced {
				return true
			}
		}
		p.udp.WriteToUDPAddrPort(t.buf[start:end], to) //nolint:errcheck // a lost fragment is resent with the state
		start = end
	}
	p.mu.Lock()
	if p.tails[dst] == t {
		delete(p.tails, dst)
	}
	p.mu.Unlock()
	return true
}
