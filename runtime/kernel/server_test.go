package kernel

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/internal/netnstest"
	"github.com/capygen/capygen/runtime/migrate"
)

// pair is a kernel server (port 7000 listening) in a namespace of its
// own, and a Linux client in another, connected to it.
type pair struct {
	srv          *Server
	ln           *Listener
	cli          net.Conn
	srvNS, cliNS string
}

// newPair sets up a pair; the namespaces go with the test. It skips
// without root or iptables (the hold rules).
func newPair(t *testing.T) pair { t.Helper(); return newPairWith(t, nil) }

// newPairWith is newPair with edit, if not nil, applied to the server's
// Config.
func newPairWith(t *testing.T, edit func(*Config)) pair {
	t.Helper()
	netnstest.NeedRoot(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (the hold rules)")
	}
	tag := netnstest.Tag()
	p := pair{srvNS: netnstest.NewNS(t, "capyk-s-"+tag), cliNS: netnstest.NewNS(t, "capyk-c-"+tag)}
	netnstest.VethPair(t, p.srvNS, "k0", p.cliNS, "k1")
	netnstest.Run(t, "ip", "-n", p.srvNS, "addr", "add", "10.79.0.1/24", "dev", "k0")
	netnstest.Run(t, "ip", "-n", p.cliNS, "addr", "add", "10.79.0.2/24", "dev", "k1")
	netnstest.InNS(t, p.srvNS, func() {
		var err error
		cfg := Config{Addr: netip.MustParseAddr("10.79.0.1"), Queue: 9,
			Engine: migrate.Config{Switch: netip.MustParseAddr("10.79.0.254"), HeartbeatPeriod: -1}}
		if edit != nil {
			edit(&cfg)
		}
		p.srv, err = Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if p.ln, err = p.srv.Listen(7000); err != nil {
			p.srv.Close()
			t.Fatal(err)
		}
	})
	netnstest.InNS(t, p.cliNS, func() {
		var err error
		if p.cli, err = net.DialTimeout("tcp4", "10.79.0.1:7000", 5*time.Second); err != nil {
			p.srv.Close()
			t.Fatal(err)
		}
	})
	return p
}

// loopbackNS is a namespace of the test's whose loopback is up with
// addrs; it skips without root or iptables (the hold rules).
func loopbackNS(t *testing.T, prefix string, addrs ...string) string {
	t.Helper()
	netnstest.NeedRoot(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("needs iptables (the hold rules)")
	}
	ns := netnstest.NewNS(t, prefix+netnstest.Tag())
	netnstest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	for _, a := range addrs {
		netnstest.Run(t, "ip", "-n", ns, "addr", "add", a+"/32", "dev", "lo")
	}
	return ns
}

// accept hands out the pair's connection at the server; it, the client
// and the server close with the test.
func (p pair) accept(t *testing.T) *Conn {
	t.Helper()
	t.Cleanup(func() { p.srv.Close(); p.cli.Close() })
	c, err := p.ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestTransferWithoutSwitch runs a kernel server in a namespace of its
// own, with a Linux client in another, and no switch: the listener hands
// out the client's connection, Transfer's PREPARE_MIG goes unanswered,
// and the origin machine's give-up keeps the connection here, working.
// Close removes the hold rules.
func TestTransferWithoutSwitch(t *testing.T) {
	p := newPair(t)
	srv, ln, cli := p.srv, p.ln, p.cli
	closed := false
	defer func() {
		if !closed {
			srv.Close()
		}
	}()
	defer cli.Close()
	c, err := ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	if c.ID().Remote.String() != cli.LocalAddr().String() || c.Origin() != netip.MustParseAddrPort("10.79.0.1:7000") {
		t.Fatalf("accepted %v (origin %v), want the client %v on 10.79.0.1:7000", c.ID(), c.Origin(), cli.LocalAddr())
	}

	out, err := srv.Transfer(c, []byte("app state"))
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != migrate.ResultStayed {
		t.Fatalf("Transfer with no switch ended %v (%v), want stayed", out.Result, out.Err)
	}
	t.Logf("Transfer: %v after %d retries (%v)", out.Result, out.Record.Retries, out.Err)

	// Still ours, and still working both ways.
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cli, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	if _, err := io.WriteString(c, "pong"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(cli, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	c.Close()
	ln.Close()
	if _, err := ln.AcceptConn(); !errors.Is(err, ErrListenerClosed) {
		t.Errorf("AcceptConn after Close = %v, want ErrListenerClosed", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	closed = true
	if rules := netnstest.Run(t, "ip", "netns", "exec", p.srvNS, "iptables", "-S"); strings.Contains(rules, "CAPYGEN") {
		t.Errorf("rules left after Close:\n%s", rules)
	}
}

// TestLoopThreadRunsOrFailsStart: LoopThread runs once, on the thread
// that will carry out the engine's handlers; its error fails Start, which
// then leaves no rule behind.
func TestLoopThreadRunsOrFailsStart(t *testing.T) {
	ns := loopbackNS(t, "capyk-l-", "10.79.1.1")
	cfg := Config{Addr: netip.MustParseAddr("10.79.1.1"), Queue: 11,
		Engine: migrate.Config{Switch: netip.MustParseAddr("10.79.1.254"), HeartbeatPeriod: -1}}
	netnstest.InNS(t, ns, func() {
		calls := 0
		cfg.LoopThread = func() error { calls++; return nil }
		srv, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if calls != 1 {
			t.Errorf("LoopThread ran %d times, want once", calls)
		}

		cfg.LoopThread = func() error { return errors.New("no such priority") }
		if srv, err := Start(cfg); err == nil {
			srv.Close()
			t.Fatal("Start succeeded with a failing LoopThread")
		} else if !strings.Contains(err.Error(), "no such priority") || !strings.Contains(err.Error(), "receiver's thread") {
			t.Errorf("Start: %v, want the LoopThread's error, naming the thread", err)
		}
		out, err := exec.Command("iptables", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables -S: %v: %s", err, out)
		}
		if strings.Contains(string(out), "NFQUEUE") {
			t.Errorf("a failed Start left rules behind:\n%s", out)
		}
	})
}

// TestFreezeLeavesALostFlightToItsRTO: a connection whose bytes in flight
// went unacknowledged for rtoWait is not frozen (a restore would restart
// its RTO at 1 s, and frequent moves would never let it resend); it stays
// filed here, and its own retransmission delivers the bytes once the path
// heals.
func TestFreezeLeavesALostFlightToItsRTO(t *testing.T) {
	p := newPair(t)
	srv, cli, cliNS := p.srv, p.cli, p.cliNS
	c := p.accept(t)

	// The client's namespace drops what the server sends: the flight is
	// lost, and no ACK comes back.
	drop := []string{"INPUT", "-p", "tcp", "-s", "10.79.0.1", "--sport", "7000", "-j", "DROP"}
	netnstest.Run(t, append([]string{"ip", "netns", "exec", cliNS, "iptables", "-I"}, drop...)...)
	payload := make([]byte, 8000)
	for i := range payload {
		payload[i] = byte(i)
	}
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	time.Sleep(rtoWait + 100*time.Millisecond)

	_, err := srv.h.Freeze(c.ID(), nil)
	if !errors.Is(err, migrate.ErrNotMovable) || !strings.Contains(err.Error(), "retransmission timer") {
		t.Fatalf("Freeze of a connection with a lost flight = %v, want ErrNotMovable (waiting for its retransmission timer)", err)
	}
	if _, ok := srv.h.Lookup(c.ID()); !ok {
		t.Fatal("the connection is no longer filed after the refused Freeze")
	}

	// The path heals; the server's own RTO resends, and everything arrives.
	netnstest.Run(t, append([]string{"ip", "netns", "exec", cliNS, "iptables", "-D"}, drop...)...)
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(cli, got); err != nil {
		t.Fatalf("client read after the path healed: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the client read other bytes than the server wrote")
	}
}

// TestFreezeTakesAFreshFlightAfterAnIdleSpell: a connection idle for
// longer than rtoWait (no ACK for that long, nothing in flight) writes a
// reply; 5 ms later, its ACK still on the way (held back here by the
// client's firewall), its flight is fresh, far from any retransmission
// timer, and Freeze takes it.
func TestFreezeTakesAFreshFlightAfterAnIdleSpell(t *testing.T) {
	p := newPair(t)
	srv, cliNS := p.srv, p.cliNS
	c := p.accept(t)
	time.Sleep(rtoWait + 100*time.Millisecond)
	hold := []string{"OUTPUT", "-p", "tcp", "-d", "10.79.0.1", "--dport", "7000", "-j", "DROP"}
	netnstest.Run(t, append([]string{"ip", "netns", "exec", cliNS, "iptables", "-I"}, hold...)...)
	defer netnstest.Run(t, append([]string{"ip", "netns", "exec", cliNS, "iptables", "-D"}, hold...)...)
	if _, err := c.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if waiting, err := c.waitingForRTO(rtoWait); err != nil || waiting {
		t.Fatalf("waitingForRTO 5 ms after a write that followed an idle spell = %v, %v; want false", waiting, err)
	}
	fr, err := srv.h.Freeze(c.ID(), nil)
	if err != nil {
		t.Fatalf("Freeze 5 ms after a write that followed an idle spell: %v", err)
	}
	fr.Abort(0)
}

// TestFreezeKeepsAConnectionOverTheRestoreCap: a connection whose queues
// exceed the restore cap is not frozen (a target with this configuration
// would refuse its state after it travelled whole, and the origin's
// give-up would reset it); it stays filed here, untouched, and goes on.
func TestFreezeKeepsAConnectionOverTheRestoreCap(t *testing.T) {
	const limit = 32 << 10
	p := newPairWith(t, func(c *Config) { c.Engine.MaxRestoreBuffer = limit })
	srv, cli := p.srv, p.cli
	c := p.accept(t)

	// The server reads nothing yet: the client's bytes wait in its
	// receive queue, over the cap.
	payload := make([]byte, 256<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	wrote := make(chan error, 1)
	go func() {
		cli.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := cli.Write(payload)
		wrote <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, recv, err := c.queues(); err != nil {
			t.Fatal(err)
		} else if recv > limit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server's receive queue never passed the cap")
		}
	}

	_, err := srv.h.Freeze(c.ID(), nil)
	if !errors.Is(err, migrate.ErrNotMovable) || !strings.Contains(err.Error(), "restore cap") {
		t.Fatalf("Freeze over the restore cap = %v, want ErrNotMovable naming the restore cap", err)
	}
	if _, ok := srv.h.Lookup(c.ID()); !ok {
		t.Fatal("the connection is no longer filed after the refused Freeze")
	}

	// Untouched: every byte arrives, and the server's answer too.
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("server read after the refused Freeze: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the server read other bytes than the client wrote")
	}
	if err := <-wrote; err != nil {
		t.Fatalf("client write: %v", err)
	}
	if _, err := io.WriteString(c, "done"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(cli, buf); err != nil || string(buf) != "done" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

// TestStartLeavesAnotherServersRules: a second server started with the
// first one's queue in the same namespace fails, says why, and takes back
// none of the first one's rules (the hold chain, its jump and the mute
// rule) on its way out.
func TestStartLeavesAnotherServersRules(t *testing.T) {
	ns := loopbackNS(t, "capyk-r-", "10.79.2.1", "10.79.2.2")
	cfg := func(addr string) Config {
		return Config{Addr: netip.MustParseAddr(addr), Queue: 12,
			Engine: migrate.Config{Switch: netip.MustParseAddr("10.79.2.254"), HeartbeatPeriod: -1}}
	}
	rules := func() string { return netnstest.Run(t, "ip", "netns", "exec", ns, "iptables", "-S") }
	netnstest.InNS(t, ns, func() {
		first, err := Start(cfg("10.79.2.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		before := rules()
		second, err := Start(cfg("10.79.2.2"))
		if err == nil {
			second.Close()
			t.Fatal("a second server with the same queue started")
		}
		if !strings.Contains(err.Error(), "exists already") || !strings.Contains(err.Error(), "Config.Queue 12") {
			t.Errorf("Start of the second server: %v, want it to name the chain that exists and the queue", err)
		}
		if after := rules(); after != before {
			t.Fatalf("the failed Start changed the first server's rules:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		if left := rules(); strings.Contains(left, "CAPYGEN") || strings.Contains(left, "mark") {
			t.Errorf("rules left after Close:\n%s", left)
		}
	})
}

// stateReceiver is a UDP socket on the TCPMig port in p's client
// namespace, closed with the test, where a burst's datagrams arrive.
func stateReceiver(t *testing.T, p pair) *net.UDPConn {
	t.Helper()
	var rx *net.UDPConn
	netnstest.InNS(t, p.cliNS, func() {
		var err error
		if rx, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("10.79.0.2"), Port: 7071}); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { rx.Close() })
	rx.SetReadBuffer(8 << 20) //nolint:errcheck // the default may do
	return rx
}

// TestBurstPacesItsTailWithoutTheCaller: a state's burst sends its first
// paceEvery datagrams at once and leaves the rest to the pacer, which
// paces them without the engine's lock (the caller of Burst holds it);
// every datagram arrives, once, in order.
func TestBurstPacesItsTailWithoutTheCaller(t *testing.T) {
	p := newPair(t)
	defer p.srv.Close()
	defer p.cli.Close()
	rx := stateReceiver(t, p)

	const n = 3*paceEvery + 17
	dst := netip.MustParseAddr("10.79.0.2")
	queued := -1
	p.srv.h.Burst(func() {
		for i := range n {
			payload := bytes.Repeat([]byte{byte(i)}, 1000)
			payload[0], payload[1] = byte(i>>8), byte(i)
			if err := p.srv.h.SendUDP(dst, payload); err != nil {
				t.Errorf("datagram %d: %v", i, err)
			}
		}
		queued = len(p.srv.h.tail.ends)
	})
	if queued != n-paceEvery {
		t.Fatalf("%d datagrams left for the pacer, want %d", queued, n-paceEvery)
	}
	buf := make([]byte, 2000)
	for i := range n {
		rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := rx.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", i, err)
		}
		if got := int(buf[0])<<8 | int(buf[1]); m != 1000 || got != i {
			t.Fatalf("datagram %d: %d bytes, numbered %d", i, m, got)
		}
	}
}

// migDatagram is a 1000-byte datagram with a TCPMig header of the
// migration of client port cport, numbered i.
func migDatagram(cport, i uint16) []byte {
	b := make([]byte, 1000)
	h := tcpmig.TCPMig(b)
	h.SetMagic(tcpmig.MagicValue)
	h.SetOriginIP([4]byte{10, 79, 0, 1})
	h.SetOriginPort(7000)
	h.SetClientIP([4]byte{10, 79, 0, 2})
	h.SetClientPort(cport)
	h.SetFragmentIndex(i)
	return b
}

// TestBurstsOfTwoMigrationsToOneTargetAllLeave: two migrations' states
// to the same target, burst right after burst: every datagram of both
// leaves. (A later migration's tail replaced the earlier one's, which
// then never went past its first paceEvery datagrams.)
func TestBurstsOfTwoMigrationsToOneTargetAllLeave(t *testing.T) {
	p := newPair(t)
	defer p.srv.Close()
	defer p.cli.Close()
	rx := stateReceiver(t, p)

	const n = 3 * paceEvery
	dst := netip.MustParseAddr("10.79.0.2")
	for _, cport := range []uint16{40001, 40002} {
		p.srv.h.Burst(func() {
			for i := range uint16(n) {
				if err := p.srv.h.SendUDP(dst, migDatagram(cport, i)); err != nil {
					t.Errorf("migration %d, datagram %d: %v", cport, i, err)
				}
			}
		})
	}
	got := map[uint16]map[uint16]bool{40001: {}, 40002: {}}
	buf := make([]byte, 2000)
	for range 2 * n {
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, err := rx.Read(buf)
		if err != nil {
			break
		}
		h := tcpmig.TCPMig(buf[:m])
		if seen, ok := got[h.ClientPort()]; ok {
			seen[h.FragmentIndex()] = true
		}
	}
	for cport, seen := range got {
		if len(seen) != n {
			t.Errorf("migration of client port %d: %d of its %d datagrams arrived", cport, len(seen), n)
		}
	}
}

// TestPacerReplacesOnlyItsOwnMigrationsTail: a tail queued to a target
// takes the place of one of its own migration (a resend of the same
// state), and queues behind the others'; tails of datagrams that are not
// TCPMig queue behind every other.
func TestPacerReplacesOnlyItsOwnMigrationsTail(t *testing.T) {
	p := newPacer(nil, nil)
	dst := netip.MustParseAddr("10.79.0.2")
	mk := func(payload []byte) *tail {
		tl := &tail{key: keyOf(payload)}
		tl.add(payload)
		return tl
	}
	a1, b, a2 := mk(migDatagram(40001, 0)), mk(migDatagram(40002, 0)), mk(migDatagram(40001, 0))
	x, y := mk([]byte("not TCPMig")), mk([]byte("not TCPMig"))
	for _, tl := range []*tail{a1, b, x, a2, y} {
		p.queue(dst, tl)
	}
	if got, want := p.queues[dst], []*tail{a2, b, x, y}; !slices.Equal(got, want) {
		t.Fatalf("queued %v, want %v (the second tail of migration 40001 in place of its first, the rest in order)", got, want)
	}
	p.finish(dst, a2)
	if got, want := p.queues[dst], []*tail{b, x, y}; !slices.Equal(got, want) {
		t.Fatalf("after the first finished: %v, want %v", got, want)
	}
}

// TestRestoreSaysWhyTheListenerRefuses: a restore into a listener that
// cannot take the connection, its backlog full or the listener closed
// (Close running at the same time), is refused with the reason, before
// any socket is rebuilt; into the listener with room, it is handed out
// and carries on.
func TestRestoreSaysWhyTheListenerRefuses(t *testing.T) {
	p := newPairWith(t, func(c *Config) { c.Backlog = 1 })
	srv, ln, cli := p.srv, p.ln, p.cli
	c := p.accept(t)
	id, origin := c.ID(), c.Origin()
	fr, err := srv.h.Freeze(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := fr.Serialize(nil, []byte("app"))
	if err != nil {
		t.Fatal(err)
	}
	fr.Release() // the four-tuple is free again here
	// Restore makes its socket in the calling thread's namespace.
	restore := func() (app []byte, steps []string, err error) {
		netnstest.InNS(t, p.srvNS, func() {
			app, _, err = srv.h.Restore(0, state, id, origin, 1<<20, func(s string, _ time.Duration) { steps = append(steps, s) })
		})
		return app, steps, err
	}

	ln.migrated <- &Conn{} // the backlog's one place taken
	_, steps, err := restore()
	<-ln.migrated
	if err == nil || !strings.Contains(err.Error(), "backlog of port 7000 is full") || !strings.Contains(err.Error(), "Config.Backlog") {
		t.Errorf("Restore with the backlog full: %v; want it to say so, naming Config.Backlog", err)
	}
	if len(steps) > 0 {
		t.Errorf("Restore with the backlog full rebuilt the socket (steps %v)", steps)
	}

	ln.mu.Lock()
	ln.closed = true // Close's first step
	ln.mu.Unlock()
	_, steps, err = restore()
	ln.mu.Lock()
	ln.closed = false
	ln.mu.Unlock()
	if !errors.Is(err, ErrListenerClosed) || !errors.Is(err, migrate.ErrNoRestorer) || strings.Contains(err.Error(), "backlog") {
		t.Errorf("Restore into a closed listener: %v; want ErrListenerClosed and migrate.ErrNoRestorer, no word of the backlog", err)
	}
	if len(steps) > 0 {
		t.Errorf("Restore into a closed listener rebuilt the socket (steps %v)", steps)
	}

	app, steps, err := restore()
	if err != nil || string(app) != "app" || len(steps) == 0 {
		t.Fatalf("Restore with room: %q, %v (steps %v)", app, err, steps)
	}
	c2, err := ln.AcceptConn()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cli.SetDeadline(time.Now().Add(5 * time.Second))
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(cli, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("restored connection read %q, %v", buf, err)
	}
}

// TestStartClearsADeadServersRules: a server that ended without Close
// leaves its chain, the INPUT jump to it and its mute rule. The next
// server of that queue finds the queue free, so no server of it runs:
// Start removes those rules (the jump whatever address it names) and
// starts, and leaves another server's rules alone. A second server of the
// queue, while one runs, is refused with the commands that would clear the
// chain if no server ran.
func TestStartClearsADeadServersRules(t *testing.T) {
	ns := loopbackNS(t, "capyk-d-", "10.79.4.1", "10.79.4.3")
	cfg := func(addr string, queue uint16) Config {
		return Config{Addr: netip.MustParseAddr(addr), Queue: queue, Iptables: "iptables",
			Engine: migrate.Config{Switch: netip.MustParseAddr("10.79.4.254"), HeartbeatPeriod: -1}}
	}
	rules := func() string { return netnstest.Run(t, "ip", "netns", "exec", ns, "iptables", "-S") }
	count := func(rules, sub string) int { return strings.Count(rules, sub) }
	// queue14 is the other server's rules, in order.
	queue14 := func(rules string) string {
		var ls []string
		for _, l := range strings.Split(rules, "\n") {
			if strings.Contains(l, "CAPYGEN-HOLD-14") {
				ls = append(ls, l)
			}
		}
		return strings.Join(ls, "\n")
	}
	netnstest.InNS(t, ns, func() {
		other, err := Start(cfg("10.79.4.3", 14))
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		// What a server of queue 13 on another address left when killed.
		dead := &host{cfg: cfg("10.79.4.2", 13)}
		if dead.netns, err = os.Open("/proc/thread-self/ns/net"); err != nil {
			t.Fatal(err)
		}
		defer dead.netns.Close()
		if err := dead.rules(true); err != nil {
			t.Fatal(err)
		}
		before := rules()
		srv, err := Start(cfg("10.79.4.1", 13))
		if err != nil {
			t.Fatalf("Start over a dead server's rules: %v\nrules:\n%s", err, before)
		}
		after := rules()
		if count(after, "10.79.4.2") != 0 || count(after, "-j CAPYGEN-HOLD-13") != 1 || count(after, "--comment CAPYGEN-HOLD-13") != 1 {
			t.Errorf("rules after Start over a dead server's, want its jump gone and one jump and one mute rule of the new one:\n%s", after)
		}
		if queue14(after) != queue14(before) || count(before, "--comment CAPYGEN-HOLD-14") != 1 {
			t.Errorf("the other server's rules changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}

		second, err := Start(cfg("10.79.4.3", 13))
		if err == nil {
			second.Close()
			t.Fatal("a second server of queue 13 started while one runs")
		}
		t.Logf("refused: %v", err)
		for _, want := range []string{"exists already", "Config.Queue 13", "iptables -D INPUT -d 10.79.4.1/32", "iptables -D OUTPUT", "iptables -X CAPYGEN-HOLD-13"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Start of a second server of queue 13: %v; want it to say %q", err, want)
			}
		}
		if now := rules(); now != after {
			t.Errorf("the refused Start changed the rules:\nbefore:\n%s\nafter:\n%s", after, now)
		}

		if err := srv.Close(); err != nil {
			t.Fatal(err)
		}
		if left := rules(); count(left, "CAPYGEN-HOLD-13") != 0 || queue14(left) != queue14(before) {
			t.Errorf("rules after Close, want none of queue 13 and the other server's as they were:\n%s", left)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		if left := rules(); strings.Contains(left, "CAPYGEN") || strings.Contains(left, "mark") {
			t.Errorf("rules left after both Closes:\n%s", left)
		}
	})
}
