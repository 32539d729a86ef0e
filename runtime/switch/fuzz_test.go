package softswitch

import (
	pipeline "github.com/capygen/capygen/generated/pipeline"

	"testing"
	"time"
)

// FuzzDeliver feeds arbitrary frames to every port of a switch with a
// control address and faults on: nothing panics, every frame is counted
// once on its port, and the switch only ever sends frames it may (no
// frame out of a port longer than what came in).
func FuzzDeliver(f *testing.F) {
	ctl := []byte{0x02, 0xca, 0x70, 77, 0, 254}
	for _, seed := range [][]byte{
		arpRequest(f, macS1, ipS1, ipControl),
		arpRequest(f, macClient, ipClient, ipS1),
		echoRequest(f, macS2, ctl, ipS2, ipControl, 1),
		heartbeat(f, macS1, ctl, ipS1, ipControl, 9),
		toS1(f, 1),
		append(append([]byte(nil), ctl...), 1, 2, 3, 4, 5, 6, 7, 8),
		append(append([]byte(nil), ctl...), 1, 2, 3, 4), // shorter than an Ethernet header
		{},
	} {
		f.Add(uint8(pClient), seed)
		f.Add(uint8(pS1), seed)
	}
	f.Fuzz(func(t *testing.T, port uint8, frame []byte) {
		n := newTestNet(t, func(c *Config) {
			c.Ports[1].Fault = Fault{
				Ingress: Rates{Dup: 0.5, Delay: 0.5, DelayMax: time.Millisecond},
				Egress:  Rates{Loss: 0.2, Dup: 0.5, Delay: 0.5, DelayMax: time.Millisecond},
			}
		})
		in := append([]byte(nil), frame...)
		n.sw.Deliver(0, pClient+pipeline.Port(port%4), frame)
		n.sw.Advance(time.Second)
		if string(in) != string(frame) {
			t.Fatal("Deliver changed the caller's frame")
		}
		for _, r := range []*recorder{n.client, n.s1, n.s2} {
			for _, out := range r.sent {
				if len(out) != len(frame) {
					t.Fatalf("a %d-byte frame left as %d bytes", len(frame), len(out))
				}
			}
		}
		// The counters Report shows, without its directory scan.
		n.sw.mu.Lock()
		rx, unknown := uint64(0), n.sw.ctr.unknownIngress
		for _, p := range n.sw.list {
			rx += p.c.rxFrames
		}
		n.sw.mu.Unlock()
		if rx+unknown != 1 {
			t.Fatalf("one frame counted %d times on ports, %d unknown", rx, unknown)
		}
	})
}
