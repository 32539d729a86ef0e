package softswitch

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/link"
)

// memNet is a switch on in-memory links, driven by Run: hostX is the far
// end of the cable plugged into the switch's port X.
type memNet struct {
	sw                 *Switch
	hostClient, hostS1 *link.Memory
	portClient, portS1 *link.Memory
	cancel             context.CancelFunc
	done               chan error
}

func newMemNet(t *testing.T, fault Fault) *memNet {
	t.Helper()
	n := &memNet{}
	n.hostClient, n.portClient = link.NewPipe(macClient, net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, 1500)
	n.hostS1, n.portS1 = link.NewPipe(macS1, net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}, 1500)
	sw, err := New(Config{
		Ports: []PortConfig{
			{ID: pClient, Name: "client", Role: pipeline.RoleClient, Endpoint: n.portClient},
			{ID: pS1, Name: "s1", Role: pipeline.RoleServer, Endpoint: n.portS1, Fault: fault},
		},
		Hosts:        []Host{{Addr: ipClient, Port: pClient, MAC: macClient}, {Addr: ipS1, Port: pS1, MAC: macS1}},
		Control:      Control{Addr: ipControl},
		PollInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.sw = sw
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- sw.Run(ctx) }()
	t.Cleanup(func() {
		n.stop(t)
		for _, m := range []*link.Memory{n.hostClient, n.portClient, n.hostS1, n.portS1} {
			m.Close()
		}
	})
	return n
}

// stop ends Run and checks it returned nil.
func (n *memNet) stop(t *testing.T) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("Run = %v, want nil after its context ended", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Run did not return within 5s of its context ending")
	}
}

// receive collects up to want frames arriving at m within timeout.
func receive(m *link.Memory, want int, timeout time.Duration) [][]byte {
	var got [][]byte
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		m.Receive(10*time.Millisecond, func(f []byte) { got = append(got, append([]byte(nil), f...)) })
	}
	return got
}

func TestRunForwardsOnRealLinks(t *testing.T) {
	n := newMemNet(t, Fault{})
	for i := range 100 {
		if err := n.hostClient.Send(toS1(t, uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := receive(n.hostS1, 100, 5*time.Second)
	if len(got) != 100 {
		t.Fatalf("s1 received %d of 100 frames", len(got))
	}
	for i, f := range got {
		if idOf(f) != uint32(i) {
			t.Fatalf("frame %d carries id %d: Run reordered a single port's frames", i, idOf(f))
		}
	}
	// The control address answers over Run too.
	n.hostS1.Send(arpRequest(t, macS1, ipS1, ipControl))
	if got := receive(n.hostS1, 1, 5*time.Second); len(got) != 1 {
		t.Fatal("no ARP reply for the control address under Run")
	}
	if err := n.sw.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("a second Run = %v, want ErrRunning", err)
	}
	n.stop(t)
	r := n.sw.Report()
	c, _ := r.Port("client")
	if c.RxFrames != 100 || c.Link == nil || c.Link.RxFrames != 100 {
		t.Errorf("client port %+v (link %+v), want 100 frames received by switch and link", c, c.Link)
	}
	if r.Now <= 0 {
		t.Errorf("Now = %v, want the monotonic time Run gave", r.Now)
	}
}

// Delayed frames are released by Run's timer, within a bounded lateness.
func TestRunReleasesDelayedFrames(t *testing.T) {
	n := newMemNet(t, Fault{Egress: Rates{Delay: 1, DelayMin: 20 * time.Millisecond, DelayMax: 20 * time.Millisecond}})
	start := time.Now()
	n.hostClient.Send(toS1(t, 9))
	got := receive(n.hostS1, 1, 5*time.Second)
	took := time.Since(start)
	if len(got) != 1 || idOf(got[0]) != 9 {
		t.Fatalf("the delayed frame never arrived")
	}
	if took < 20*time.Millisecond || took > 2*time.Second {
		t.Errorf("the 20ms-delayed frame arrived after %v", took)
	}
}

// A port whose endpoint fails ends Run with an error naming the port.
func TestRunStopsOnEndpointFailure(t *testing.T) {
	n := newMemNet(t, Fault{})
	n.portS1.Close()
	select {
	case err := <-n.done:
		n.cancel = nil
		if !errors.Is(err, link.ErrClosed) || err.Error() != "softswitch: port s1: receive: link: endpoint closed" {
			t.Errorf("Run = %v, want the closed endpoint of port s1", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept running with a closed port")
	}
}
