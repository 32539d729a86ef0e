package softswitch

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// toS1 is a client->s1 TCP segment whose payload carries id.
func toS1(t testing.TB, id uint32) []byte {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], id)
	return tcpFrame(t, macClient, macS1, netip.AddrPortFrom(ipClient, 40000), netip.AddrPortFrom(ipS1, 80), false, p[:])
}

// idOf reads the id toS1 put in a frame.
func idOf(f []byte) uint32 { return binary.BigEndian.Uint32(f[54:58]) }

func TestFaultLossAndDup(t *testing.T) {
	cases := []struct {
		name    string
		fault   Fault
		want    int // frames s1 receives per frame sent
		counter func(PortReport) uint64
	}{
		{"egress loss", Fault{Egress: Rates{Loss: 1}}, 0, func(p PortReport) uint64 { return p.Egress.Dropped }},
		{"egress dup", Fault{Egress: Rates{Dup: 1}}, 2, func(p PortReport) uint64 { return p.Egress.Duplicated }},
		{"ingress loss", Fault{Ingress: Rates{Loss: 1}}, 0, func(p PortReport) uint64 { return p.Ingress.Dropped }},
		{"ingress dup", Fault{Ingress: Rates{Dup: 1}}, 2, func(p PortReport) uint64 { return p.Ingress.Duplicated }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Egress faults sit on s1's port, ingress ones on the client's.
			n := newTestNet(t, func(c *Config) {
				if tc.fault.Egress.Zero() {
					c.Ports[0].Fault = tc.fault
				} else {
					c.Ports[1].Fault = tc.fault
				}
			})
			for i := range 10 {
				n.sw.Deliver(0, pClient, toS1(t, uint32(i)))
			}
			if got := len(n.s1.take()); got != 10*tc.want {
				t.Errorf("s1 received %d frames of 10 sent, want %d", got, 10*tc.want)
			}
			r := n.sw.Report()
			name := "s1"
			if tc.fault.Egress.Zero() {
				name = "client"
			}
			p, _ := r.Port(name)
			if got := tc.counter(p); got != 10 {
				t.Errorf("%s fault counter = %d, want 10 (%+v)", name, got, p)
			}
			if (tc.name == "ingress dup") != (r.Verdicts.Processed == 20) {
				t.Errorf("processed %d frames", r.Verdicts.Processed)
			}
			if tc.name == "egress loss" && r.FaultDrops() != 10 {
				t.Errorf("FaultDrops() = %d, want 10", r.FaultDrops())
			}
		})
	}
}

func TestFaultDelayHoldsUntilAdvance(t *testing.T) {
	for _, dir := range []string{"egress", "ingress"} {
		t.Run(dir, func(t *testing.T) {
			r := Rates{Delay: 1, DelayMin: time.Millisecond, DelayMax: time.Millisecond}
			n := newTestNet(t, func(c *Config) {
				if dir == "egress" {
					c.Ports[1].Fault.Egress = r
				} else {
					c.Ports[0].Fault.Ingress = r
				}
			})
			if _, ok := n.sw.NextDeadline(); ok {
				t.Fatal("NextDeadline with nothing held says there is one")
			}
			n.sw.Deliver(10*time.Millisecond, pClient, toS1(t, 1))
			if len(n.s1.sent) != 0 {
				t.Fatal("a delayed frame went out at once")
			}
			if d, ok := n.sw.NextDeadline(); !ok || d != 11*time.Millisecond {
				t.Fatalf("NextDeadline = %v, %v, want 11ms", d, ok)
			}
			if rep := n.sw.Report(); rep.Held != 1 {
				t.Errorf("Held = %d, want 1", rep.Held)
			}
			n.sw.Advance(11*time.Millisecond - 1)
			if len(n.s1.sent) != 0 {
				t.Fatal("the delayed frame went out early")
			}
			n.sw.Advance(11 * time.Millisecond)
			if got := n.s1.take(); len(got) != 1 || idOf(got[0]) != 1 {
				t.Fatalf("after the delay s1 got %d frames, want frame 1", len(got))
			}
			if _, ok := n.sw.NextDeadline(); ok {
				t.Error("NextDeadline after the release says there is more")
			}
		})
	}
}

func TestFaultHeldOverflow(t *testing.T) {
	n := newTestNet(t, func(c *Config) {
		c.MaxHeld = 2
		c.Ports[1].Fault.Egress = Rates{Delay: 1, DelayMin: time.Second, DelayMax: time.Second}
	})
	for i := range 3 {
		n.sw.Deliver(0, pClient, toS1(t, uint32(i)))
	}
	n.sw.Advance(time.Second)
	if got := n.s1.take(); len(got) != 2 || idOf(got[0]) != 0 || idOf(got[1]) != 1 {
		t.Errorf("s1 got %d frames, want the first 2 (in order)", len(got))
	}
	p, _ := n.sw.Report().Port("s1")
	if p.Egress.Overflow != 1 || p.Egress.Delayed != 3 {
		t.Errorf("s1 egress faults = %+v, want 3 delayed of which 1 overflowed", p.Egress)
	}
}

// arrival is a frame id that reached s1, and when.
type arrival struct {
	at time.Duration
	id uint32
}

// faultRun sends 300 frames at 10µs intervals through a switch with every
// fault on, and returns what s1 received (ids, in order) with the time
// each one arrived.
func faultRun(t *testing.T, seed uint64) []arrival {
	r := Rates{Loss: 0.1, Dup: 0.1, Delay: 0.2, DelayMin: 5 * time.Microsecond, DelayMax: 100 * time.Microsecond}
	n := newTestNet(t, func(c *Config) {
		c.Seed = seed
		c.Ports[0].Fault.Ingress = r
		c.Ports[1].Fault.Egress = r
	})
	var out []arrival
	collect := func(now time.Duration) {
		for _, f := range n.s1.take() {
			out = append(out, arrival{now, idOf(f)})
		}
	}
	now := time.Duration(0)
	for i := range 300 {
		now = time.Duration(i) * 10 * time.Microsecond
		// Release whatever falls due before this frame, one deadline at a
		// time, as the simulator would.
		for {
			d, ok := n.sw.NextDeadline()
			if !ok || d > now {
				break
			}
			n.sw.Advance(d)
			collect(d)
		}
		n.sw.Deliver(now, pClient, toS1(t, uint32(i)))
		collect(now)
	}
	for {
		d, ok := n.sw.NextDeadline()
		if !ok {
			break
		}
		n.sw.Advance(d)
		collect(d)
	}
	return out
}

func TestFaultsAreDeterministic(t *testing.T) {
	a, b := faultRun(t, 7), faultRun(t, 7)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("two runs with seed 7 differ:\n%v\n%v", a, b)
	}
	if c := faultRun(t, 8); reflect.DeepEqual(a, c) {
		t.Error("seeds 7 and 8 gave the same faults")
	}
	// Loss, duplication and reordering all happened.
	seen := map[uint32]int{}
	reordered := false
	for i, x := range a {
		seen[x.id]++
		if i > 0 && x.id < a[i-1].id {
			reordered = true
		}
	}
	lost, dup := 0, 0
	for i := range 300 {
		switch seen[uint32(i)] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	if lost == 0 || dup == 0 || !reordered {
		t.Errorf("seed 7: %d lost, %d duplicated, reordered %v; want each fault to show", lost, dup, reordered)
	}
}
