package tcp

import (
	"net/netip"
	"testing"
	"time"
)

// emitted runs c.Output at now and returns copies of what it emitted.
func emitted(c *Conn, now Time) []Segment {
	var segs []Segment
	c.Output(now, func(s *Segment) {
		cp := *s
		cp.Payload = append([]byte(nil), s.Payload...)
		segs = append(segs, cp)
	})
	return segs
}

// feed hands segs to c.
func feed(c *Conn, now Time, segs []Segment) {
	for i := range segs {
		c.Input(now, &segs[i])
	}
}

// establish opens a connection between A (dialer) and B (acceptor)
// directly, without a network, and returns both at time now.
func establish(t testing.TB, cfgA, cfgB Config) (a, b *Conn, now Time) {
	t.Helper()
	now = time.Second
	a = Dial(cfgA, ID{Local: addrA, Remote: addrB}, 1000, now)
	syn := emitted(a, now)
	if len(syn) != 1 {
		t.Fatalf("Dial's first Output emitted %d segments, want 1 SYN", len(syn))
	}
	b, err := Accept(cfgB, ID{Local: addrB, Remote: addrA}, &syn[0], 5000, now)
	if err != nil {
		t.Fatalf("Accept: %v", err)
	}
	now += time.Millisecond
	feed(a, now, emitted(b, now))
	feed(b, now, emitted(a, now))
	if a.State() != StateEstablished || b.State() != StateEstablished {
		t.Fatalf("after the handshake A is %v and B is %v, want both ESTABLISHED", a.State(), b.State())
	}
	return a, b, now
}

// only returns the single segment in segs or fails.
func only(t testing.TB, what string, segs []Segment) Segment {
	t.Helper()
	if len(segs) != 1 {
		t.Fatalf("%s: emitted %d segments %v, want exactly 1", what, len(segs), segs)
	}
	return segs[0]
}

// pingPong moves segments both ways at now until neither side emits.
func pingPong(a, b *Conn, now Time) {
	for range 1000 {
		sa := emitted(a, now)
		feed(b, now, sa)
		sb := emitted(b, now)
		feed(a, now, sb)
		if len(sa) == 0 && len(sb) == 0 {
			return
		}
	}
}

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
