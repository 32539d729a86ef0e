package softswitch

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/link"
	"golang.org/x/sys/unix"
)

// memNet is a switch on in-memory links, driven by Run: hostX is the far
// end of the cable plugged into the switch's port X.
type memNet struct {
	sw                 *Switch
	hostClient, hostS1 *memHost
	portClient, portS1 *memPort
	cancel             context.CancelFunc
	done               chan error
}

// runModes are Run's two ways to serve its ports: a goroutine per port,
// or one loop polling every port's descriptor (what AF_XDP ports get).
var runModes = []struct {
	name string
	poll bool
}{{"goroutine per port", false}, {"one poll loop", true}}

// memPort is the switch's end of an in-memory cable. With poll set it is
// a PollEndpoint: an eventfd counts the frames its host sent, and
// Receive resets it before draining, so it polls readable whenever
// frames wait, as an AF_XDP socket does.
type memPort struct {
	*link.Memory
	fd int
}

func (p *memPort) Receive(timeout time.Duration, fn func([]byte)) (int, error) {
	if p.fd >= 0 {
		var b [8]byte
		unix.Read(p.fd, b[:]) // before the drain: a later Send makes it readable again
	}
	return p.Memory.Receive(timeout, fn)
}

// pollPort is a memPort that Run sees as a PollEndpoint.
type pollPort struct{ *memPort }

func (p pollPort) PollFD() int { return p.fd }

// memHost is the host's end; its Send signals the port's eventfd.
type memHost struct {
	*link.Memory
	port *memPort
}

func (h *memHost) Send(f []byte) error {
	if err := h.Memory.Send(f); err != nil {
		return err
	}
	if h.port.fd >= 0 {
		one := [8]byte{1}
		unix.Write(h.port.fd, one[:])
	}
	return nil
}

func newCable(t *testing.T, hostMAC, portMAC net.HardwareAddr, poll bool) (*memHost, *memPort, link.Endpoint) {
	t.Helper()
	h, p := link.NewPipe(hostMAC, portMAC, 1500)
	port := &memPort{Memory: p, fd: -1}
	var ep link.Endpoint = port
	if poll {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		port.fd = fd
		ep = pollPort{port}
	}
	return &memHost{Memory: h, port: port}, port, ep
}

// newMemNet starts Run; interval is its PollInterval. An hour shows that
// frames, not the interval, wake the switch.
func newMemNet(t *testing.T, fault Fault, poll bool, interval time.Duration) *memNet {
	t.Helper()
	n := &memNet{}
	var epClient, epS1 link.Endpoint
	n.hostClient, n.portClient, epClient = newCable(t, macClient, net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, poll)
	n.hostS1, n.portS1, epS1 = newCable(t, macS1, net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}, poll)
	sw, err := New(Config{
		Ports: []PortConfig{
			{ID: pClient, Name: "client", Role: pipeline.RoleClient, Endpoint: epClient},
			{ID: pS1, Name: "s1", Role: pipeline.RoleServer, Endpoint: epS1, Fault: fault},
		},
		Hosts:        []Host{{Addr: ipClient, Port: pClient, MAC: macClient}, {Addr: ipS1, Port: pS1, MAC: macS1}},
		Control:      Control{Addr: ipControl},
		PollInterval: interval,
		Spin:         20 * time.Microsecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sw.pollFDs(); ok != poll {
		t.Fatalf("Run serves the ports from one poll loop: %v, want %v", ok, poll)
	}
	n.sw = sw
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- sw.Run(ctx) }()
	t.Cleanup(func() {
		n.stop(t)
		for _, m := range []*link.Memory{n.hostClient.Memory, n.portClient.Memory, n.hostS1.Memory, n.portS1.Memory} {
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
func receive(m *memHost, want int, timeout time.Duration) [][]byte {
	var got [][]byte
	deadline := time.Now().Add(timeout)
	for len(got) < want && time.Now().Before(deadline) {
		m.Receive(10*time.Millisecond, func(f []byte) { got = append(got, append([]byte(nil), f...)) })
	}
	return got
}

func TestRunForwardsOnRealLinks(t *testing.T) {
	for _, m := range runModes {
		t.Run(m.name, func(t *testing.T) { testRunForwards(t, m.poll) })
	}
}

func testRunForwards(t *testing.T, poll bool) {
	n := newMemNet(t, Fault{}, poll, time.Hour)
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
	for _, m := range runModes {
		t.Run(m.name, func(t *testing.T) { testRunReleasesDelayed(t, m.poll) })
	}
}

func testRunReleasesDelayed(t *testing.T, poll bool) {
	n := newMemNet(t, Fault{Egress: Rates{Delay: 1, DelayMin: 20 * time.Millisecond, DelayMax: 20 * time.Millisecond}}, poll, time.Hour)
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
	for _, m := range runModes {
		t.Run(m.name, func(t *testing.T) { testRunStopsOnFailure(t, m.poll) })
	}
}

func testRunStopsOnFailure(t *testing.T, poll bool) {
	// A closed endpoint is noticed at the next drain, which a port's
	// own goroutine starts at once, and one poll loop at the interval.
	n := newMemNet(t, Fault{}, poll, time.Millisecond)
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

// Run's one poll loop wakes at its context's end, not at PollInterval's.
func TestRunEndsWithoutWaitingOutThePoll(t *testing.T) {
	_, _, epClient := newCable(t, macClient, net.HardwareAddr{2, 0xaa, 0, 0, 0, 1}, true)
	_, _, epS1 := newCable(t, macS1, net.HardwareAddr{2, 0xaa, 0, 0, 0, 2}, true)
	sw, err := New(Config{
		Ports: []PortConfig{
			{ID: pClient, Name: "client", Role: pipeline.RoleClient, Endpoint: epClient},
			{ID: pS1, Name: "s1", Role: pipeline.RoleServer, Endpoint: epS1},
		},
		PollInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sw.Run(ctx) }()
	time.Sleep(20 * time.Millisecond) // let it sleep in poll
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after its context ended", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("Run returned %v after its context ended", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still sleeps in poll 5s after its context ended (PollInterval 1h)")
	}
}
