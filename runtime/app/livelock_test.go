package app_test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// TestZeroWindowLivelock is a regression test for a runtime/tcp livelock,
// reproduced in the simulator without any migration. Both ends send bulk
// data; the server reads only once its own writes are done, as an HTTP
// server answering pipelined requests does; 1% loss makes the server
// retransmit. The client ended up with snd.nxt past the server's rcv.nxt
// while the server's window was zero: an ACK that advanced its snd.una
// without updating its window (a retransmission that filled a hole
// carried a new ACK with an old sequence number) let it send beyond the
// window, and the server dropped that data. From then on every segment the client sent was
// unacceptable to the server (pure ACKs at snd.nxt lay beyond a zero
// window, persist probes at snd.una-1 were old), so the server never
// processed their ACK fields (RFC 9293 §3.10.7.4 asks for a "special
// allowance ... to accept valid ACKs" when the window is zero): its send
// buffer never drained, its application stayed blocked writing and never
// read, the window stayed shut, and both sides backed off forever. With
// -v a failure lists the last segments each side received.
//
// The configurations come from a sweep of seeds, request sizes and read
// rates. The first stalled as above; the others still stalled once the
// server processed such ACKs, as long as the client's stale window let
// it send past the edge the server offered (the segments it then sent
// lay beyond that edge while the window was not quite zero).
// The lost segments make the server retransmit old data that carries its
// newest ACK.
func TestZeroWindowLivelock(t *testing.T) {
	for _, tc := range []struct {
		seed              uint64
		reqSize, readRate int
	}{
		{3, 150_001, 16 << 10},
		{10, 150_001, 16 << 10},
		{12, 150_001, 4 << 10},
		{16, 100_001, 16 << 10},
		{44, 50_001, 16 << 10},
	} {
		livelockRun(t, tc.seed, tc.reqSize, 1_000_000, tc.readRate, 20*time.Microsecond)
	}
}

// livelockRun runs the bulk exchange TestZeroWindowLivelock describes and
// fails t if it does not finish within 20 s of virtual time.
func livelockRun(t *testing.T, seed uint64, reqSize, respSize, readRate int, delay time.Duration) {
	t.Helper()
	s := sim.New(sim.Config{Seed: seed})
	ca, sa := netip.MustParseAddr("10.80.0.1"), netip.MustParseAddr("10.80.0.2")
	client, err := s.AddHost("client", net.HardwareAddr{2, 0, 0, 0, 0, 1}, 1500, stack.Config{Addr: netip.PrefixFrom(ca, 24), Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	server, err := s.AddHost("server", net.HardwareAddr{2, 0, 0, 0, 0, 2}, 1500, stack.Config{Addr: netip.PrefixFrom(sa, 24), Seed: seed + 100})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Connect(client.Port, server.Port, sim.LinkConfig{Delay: delay, Jitter: delay / 2, Reorder: 0.01, Loss: 0.01, Bandwidth: 1e9}); err != nil {
		t.Fatal(err)
	}
	// The segments each side received last, for the failure message.
	var recent []string
	note := func(who string) stack.TCPInterceptor {
		return func(now tcp.Time, _ tcp.ID, seg *tcp.Segment, _ []byte) bool {
			recent = append(recent, fmt.Sprintf("%v %s < seq=%d ack=%d win=%d len=%d", now, who, seg.Seq, seg.Ack, seg.Window, len(seg.Payload)))
			if len(recent) > 40 {
				recent = recent[1:]
			}
			return false
		}
	}
	client.Stack.SetTCPInterceptor(note("client"))
	server.Stack.SetTCPInterceptor(note("server"))
	ln, err := server.Stack.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Stack.Connect(netip.AddrPortFrom(sa, 80))
	if err != nil {
		t.Fatal(err)
	}
	// The server answers "requests" of reqSize bytes with "responses"
	// of respSize bytes; the client writes all its requests at once and
	// reads at most readRate bytes per millisecond.
	const rounds = 10
	total, answers := rounds*reqSize, rounds*respSize
	chunk := make([]byte, 64<<10)
	buf := make([]byte, 64<<10)
	var sc *stack.Conn
	var cSent, cGot, sSent, sGot int
	var quota int
	var lastMs time.Duration
	clientStep := func(now sim.Time) {
		if !c.Established() {
			return
		}
		for cSent < total {
			n, _ := c.TryWrite(chunk[:min(len(chunk), total-cSent)])
			if n == 0 {
				break
			}
			cSent += n
		}
		if ms := now.Truncate(time.Millisecond); ms != lastMs {
			lastMs, quota = ms, readRate
		}
		for quota > 0 {
			n, _ := c.TryRead(buf[:min(len(buf), quota)])
			if n == 0 {
				break
			}
			cGot += n
			quota -= n
		}
	}
	client.OnStep(clientStep)
	// The client's application runs on a clock too, not only when its
	// stack has an event: a ticker node steps it every 100µs.
	tick := &ticker{every: 100 * time.Microsecond, f: clientStep}
	s.AddNode("ticker").SetHandler(tick)
	server.OnStep(func(sim.Time) {
		if sc == nil {
			if sc = ln.TryAccept(); sc == nil {
				return
			}
		}
		for {
			// Read the next request whole, then write its response whole.
			round := sSent / respSize
			if round >= rounds {
				return
			}
			if sGot < (round+1)*reqSize {
				n, _ := sc.TryRead(buf[:min(len(buf), (round+1)*reqSize-sGot)])
				if n == 0 {
					return
				}
				sGot += n
				continue
			}
			n, _ := sc.TryWrite(chunk[:min(len(chunk), (round+1)*respSize-sSent)])
			if n == 0 {
				return // blocked writing the response
			}
			sSent += n
		}
	})
	s.RunWhile(func() bool { return cGot < answers || sGot < total }, 20*time.Second) //nolint:errcheck
	if cGot < answers || sGot < total {
		t.Errorf("seed %d req %d resp %d rate %d delay %v: after %v: the client sent %d of %d bytes and got %d of %d, the server got %d and sent %d\nclient %+v\nserver %+v",
			seed, reqSize, respSize, readRate, delay, s.Now(), cSent, total, cGot, answers, sGot, sSent, c.TCP().Stats(), sc.TCP().Stats())
		t.Logf("the last segments received:\n%s", strings.Join(recent, "\n"))
	}
}

// ticker is a simulator node that calls f every period.
type ticker struct {
	every time.Duration
	next  sim.Time
	f     func(now sim.Time)
}

func (*ticker) Deliver(sim.Time, *sim.Port, []byte) {}

func (k *ticker) Advance(now sim.Time) {
	if now >= k.next {
		k.f(now)
		k.next = now + k.every
	}
}

func (k *ticker) NextDeadline() (sim.Time, bool) { return k.next, true }
