package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/hold"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/repair"
	"github.com/capygen/capygen/runtime/tcp"
)

// rtoWait is how long a socket's flight may go unacknowledged before
// Freeze leaves it to its retransmission timer: Linux's minimum RTO.
const rtoWait = 200 * time.Millisecond

// frozenMark is the SO_MARK of frozen sockets, whose packets an OUTPUT
// rule drops.
const frozenMark = 0xca9e

// DefaultMaxRestoreBuffer is a kernel server's default restore cap per
// queue.
const DefaultMaxRestoreBuffer = 16 << 20

// Config configures a Server.
type Config struct {
	// Addr is the server's address in its namespace (required): the
	// local address of its connections and TCPMig's source.
	Addr netip.Addr
	// Queue is the NFQUEUE number of the hold rules (7). Servers that
	// share a namespace need different numbers.
	Queue uint16
	// Engine configures the TCPMig engine; Engine.Switch is required, and
	// Engine.MaxRestoreBuffer defaults to DefaultMaxRestoreBuffer.
	Engine migrate.Config
	// Backlog bounds the connections migrated in and not yet accepted on
	// a port (1024); a restore beyond it is refused.
	Backlog int
	// Iptables is the iptables command ("iptables").
	Iptables string
	// SendBuffer, if positive, is the send buffer of the listeners'
	// connections in bytes, as the kernel counts it (SO_SNDBUF's doubled
	// value, overhead included), instead of the kernel's autotuning. A
	// connection's queued bytes, and so its state, follow it: autotuned,
	// a busy download queues up to net.ipv4.tcp_wmem's 4 MiB.
	SendBuffer int
	// RecvBuffer, likewise, is their receive buffer (SO_RCVBUF): bytes
	// received and not yet read are state too, and autotuned a fast
	// sender fills megabytes.
	RecvBuffer int
	// LoopThread, if set, runs on the goroutine that carries out the
	// engine's handlers (TCPMig's receiver), locked to its OS thread,
	// before the first datagram: a deployment sets that thread's
	// scheduling there (capyrun's -loop-priority). Its error fails Start.
	LoopThread func() error
}

// Server is one kernel-mode server: its TCPMig engine and the host the
// engine drives.
type Server struct {
	Engine *migrate.Engine
	h      *host
}

// Start sets up the hold rules, binds TCPMig's UDP port and starts the
// engine. Close undoes it all.
func Start(cfg Config) (*Server, error) {
	if !cfg.Addr.Is4() || cfg.Addr.IsUnspecified() {
		return nil, fmt.Errorf("kernel: Addr %v must be the server's IPv4 address", cfg.Addr)
	}
	if cfg.Queue == 0 {
		cfg.Queue = 7
	}
	if cfg.Backlog <= 0 {
		cfg.Backlog = 1024
	}
	if cfg.Iptables == "" {
		cfg.Iptables = "iptables"
	}
	if cfg.Engine.MaxRestoreBuffer == 0 {
		// A kernel socket's queues follow its autotuned buffers
		// (net.ipv4.tcp_wmem's 4 MiB at most by default), not an engine's
		// choice: room for them, and then some.
		cfg.Engine.MaxRestoreBuffer = DefaultMaxRestoreBuffer
	}
	hf := cfg.Engine.HoldFrames
	if hf <= 0 {
		hf = migrate.DefaultHoldFrames
	}
	// The rules belong to the namespace Start runs in, whichever thread
	// Close later runs on.
	netns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("kernel: the calling thread's network namespace: %w", err)
	}
	h := &host{
		netns:     netns,
		cfg:       cfg,
		conns:     map[tcp.ID]*Conn{},
		listeners: map[uint16]*Listener{},
		holds:     map[hold.Flow]bool{},
		tombs:     map[hold.Flow]tcp.Time{},
		done:      make(chan struct{}),
	}
	// undo takes back what Start set up, last first.
	var undo []func()
	fail := func(err error) (*Server, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		return nil, err
	}
	undo = append(undo, func() { netns.Close() })
	// The queue first: while it is bound here, no other live server of
	// this queue runs in the namespace, and rules may take the chain of
	// one that ended without Close for stale.
	if h.q, err = hold.OpenFlows(cfg.Queue, hf, h.decide); err != nil {
		if errors.Is(err, unix.EPERM) && h.chainExists(h.chain()) {
			return fail(h.chainInUse(err))
		}
		hint := "the kernel needs CONFIG_NETFILTER_NETLINK_QUEUE, and the process CAP_NET_ADMIN"
		if errors.Is(err, unix.EPERM) {
			hint = fmt.Sprintf("queue %d is bound by another program in this namespace (give each server its own Config.Queue), or the process lacks CAP_NET_ADMIN", cfg.Queue)
		}
		return fail(fmt.Errorf("kernel: %w (%s)", err, hint))
	}
	undo = append(undo, func() { h.q.Close() })
	if err := h.rules(true); err != nil {
		return fail(err) // rules took back its own part
	}
	undo = append(undo, func() { h.rules(false) }) //nolint:errcheck // undoing
	if h.udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Addr, tcpmig.UDPPort))); err != nil {
		return fail(fmt.Errorf("kernel: binding TCPMig's UDP port %v:%d: %w", cfg.Addr, tcpmig.UDPPort, err))
	}
	undo = append(undo, func() { h.udp.Close() })
	// A kernel connection's state is megabytes (its queues follow the
	// autotuned buffers): thousands of fragments in one burst, which the
	// default 208 KiB socket buffers would drop, and then again at each
	// resend.
	if err := udpBuffers(h.udp, udpBuffer); err != nil {
		return fail(err)
	}
	h.pace = newPacer(h.udp, h.done)
	if h.probes, err = newProber(); err != nil {
		return fail(err)
	}
	undo = append(undo, h.probes.close)
	e, err := migrate.NewHost(h, cfg.Engine)
	if err != nil {
		return fail(err)
	}
	return &Server{Engine: e, h: h}, nil
}

// Close stops the engine, closes the listeners and removes the rules.
// Connections already handed out stay open.
func (s *Server) Close() error {
	err := s.Engine.Close()
	s.h.mu.Lock()
	lns := make([]*Listener, 0, len(s.h.listeners))
	for _, l := range s.h.listeners {
		lns = append(lns, l)
	}
	s.h.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	s.h.udp.Close()
	s.h.probes.close()
	s.h.q.Close()
	if rerr := s.h.rules(false); rerr != nil && err == nil {
		err = rerr
	}
	s.h.netns.Close()
	return err
}

// Addr is the server's address.
func (s *Server) Addr() netip.Addr { return s.h.cfg.Addr }

// Transfer moves c to the least-loaded server, with the application state
// app, and waits for the outcome: Socket Launcher's transfer. The caller
// must not use c from the call on; after ResultMoved it is gone (do not
// close it), after ResultStayed it carries on here, after ResultAborted it
// was reset.
func (s *Server) Transfer(c *Conn, app []byte) (migrate.Outcome, error) {
	ch := make(chan migrate.Outcome, 1)
	err := s.Engine.Start(c.ID(), func() ([]byte, error) { return app, nil }, func(o migrate.Outcome) { ch <- o })
	if err != nil {
		return migrate.Outcome{}, err
	}
	return <-ch, nil
}

// host is the migrate.Host of kernel sockets.
type host struct {
	cfg   Config
	netns *os.File // the namespace of the rules
	udp   *net.UDPConn
	q     *hold.Queue
	// probes follow an abort's RST (probe.go).
	probes *prober
	done   chan struct{}
	wg     sync.WaitGroup
	// transmit is SendUDP's time in system calls, in nanoseconds.
	transmit atomic.Int64

	// The engine's lock guards burst, tail and tailDst.
	burst   int        // datagrams sent in the current Burst, plus one
	tail    *tail      // the current Burst's datagrams after its first paceEvery
	tailDst netip.Addr // where they go
	pace    *pacer

	mu        sync.Mutex
	conns     map[tcp.ID]*Conn
	listeners map[uint16]*Listener
	holds     map[hold.Flow]bool
	tombs     map[hold.Flow]tcp.Time
}

var (
	_ migrate.Host          = (*host)(nil)
	_ migrate.TransmitTimer = (*host)(nil)
)

// chain is the iptables chain of the hold rules.
func (h *host) chain() string { return "CAPYGEN-HOLD-" + strconv.Itoa(int(h.cfg.Queue)) }

// rules adds (or removes) the hold rules: TCP segments to the server's
// address that are not a SYN and find no established socket, or a socket
// still being restored, go to the queue (bypassed while no program
// listens on it); and the mute rule drops what frozen sockets send. The
// mute rule names the server's chain in a comment, so that each server
// removes its own.
func (h *host) rules(add bool) error {
	chain := h.chain()
	jump, mute := h.jumpRule(), h.muteRule()
	if !add {
		var errs []error
		errs = append(errs, h.iptables(append([]string{"-D"}, jump...)...), h.iptables(append([]string{"-D"}, mute...)...))
		errs = append(errs, h.iptables("-F", chain), h.iptables("-X", chain))
		return errors.Join(errs...)
	}
	if _, err := exec.LookPath(h.cfg.Iptables); err != nil {
		return fmt.Errorf("kernel: the hold rules need %q: %w (apt-get install iptables)", h.cfg.Iptables, err)
	}
	if err := h.newChain(chain); err != nil {
		return err
	}
	queue := []string{"-j", "NFQUEUE", "--queue-num", strconv.Itoa(int(h.cfg.Queue)), "--queue-bypass"}
	for i, args := range [][]string{
		// A socket being restored is transparent until whole (see
		// repair.WithTransparentRestore): its flow's segments wait.
		append([]string{"-A", chain, "-m", "socket", "--transparent"}, queue...),
		{"-A", chain, "-m", "socket", "-j", "RETURN"},
		append([]string{"-A", chain}, queue...),
		append([]string{"-I"}, jump...),
		append([]string{"-I"}, mute...),
	} {
		err := h.iptables(args...)
		if err == nil {
			continue
		}
		// Take back what this call added.
		if i > 3 {
			h.iptables(append([]string{"-D"}, jump...)...) //nolint:errcheck // undoing
		}
		h.iptables("-F", chain) //nolint:errcheck // undoing
		h.iptables("-X", chain) //nolint:errcheck // undoing
		return err
	}
	return nil
}

// jumpRule is the INPUT rule that sends the server's segments to its
// chain, and muteRule the OUTPUT rule that drops what its frozen sockets
// send; without -I or -D.
func (h *host) jumpRule() []string {
	return []string{"INPUT", "-p", "tcp", "-d", h.cfg.Addr.String(), "!", "--syn", "-j", h.chain()}
}

func (h *host) muteRule() []string {
	return []string{"OUTPUT", "-m", "mark", "--mark", strconv.Itoa(frozenMark), "-m", "comment", "--comment", h.chain(), "-j", "DROP"}
}

// newChain creates the server's chain. Start holds the queue (h.q) when it
// runs, so a chain of that queue that exists already is not a live
// server's, which would hold the queue: it was left by one that ended
// without Close, and its rules are removed first.
func (h *host) newChain(chain string) error {
	err := h.iptables("-N", chain)
	if err == nil || h.q == nil || !h.chainExists(chain) {
		return err
	}
	cmds, err := h.staleRules(chain)
	for _, c := range cmds {
		if err != nil {
			break
		}
		err = h.iptables(c...)
	}
	if err != nil {
		return fmt.Errorf("kernel: the chain %s was left by a server that ended without Close, and removing its rules failed (remove them by hand: %s): %w", chain, h.commands(chain, cmds), err)
	}
	return h.iptables("-N", chain)
}

// staleRules returns the iptables arguments that remove chain's rules: the
// INPUT rules that jump to it (whatever address they name), its mute
// rule, then the chain.
func (h *host) staleRules(chain string) ([][]string, error) {
	out, err := inNetns(h.netns, func() ([]byte, error) {
		return exec.Command(h.cfg.Iptables, "-w", "-S", "INPUT").CombinedOutput()
	})
	if err != nil {
		return nil, fmt.Errorf("kernel: %s -S INPUT: %w: %s", h.cfg.Iptables, err, strings.TrimSpace(string(out)))
	}
	var cmds [][]string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// Quoted arguments would need a shell's parsing: not a jump of ours.
		if len(f) > 3 && f[0] == "-A" && f[len(f)-2] == "-j" && f[len(f)-1] == chain && !strings.ContainsAny(line, `"'`) {
			cmds = append(cmds, append([]string{"-D"}, f[1:]...))
		}
	}
	if h.iptables(append([]string{"-C"}, h.muteRule()...)...) == nil {
		cmds = append(cmds, append([]string{"-D"}, h.muteRule()...))
	}
	return append(cmds, []string{"-F", chain}, []string{"-X", chain}), nil
}

// commands spells out cmds as command lines, or, without them, how to
// find chain's rules.
func (h *host) commands(chain string, cmds [][]string) string {
	if len(cmds) == 0 {
		return fmt.Sprintf("%[1]s -D each rule of %[1]s -S INPUT that jumps to %[2]s, %[1]s -D %[3]s, then %[1]s -F %[2]s; %[1]s -X %[2]s",
			h.cfg.Iptables, chain, strings.Join(h.muteRule(), " "))
	}
	lines := make([]string, len(cmds))
	for i, c := range cmds {
		lines[i] = h.cfg.Iptables + " " + strings.Join(c, " ")
	}
	return strings.Join(lines, "; ")
}

// chainInUse is Start's error when the queue is bound by another program
// and the server's chain exists: most likely another server with the same
// Config.Queue.
func (h *host) chainInUse(err error) error {
	chain := h.chain()
	cmds, _ := h.staleRules(chain) //nolint:errcheck // commands then says how to find them
	return fmt.Errorf("kernel: the chain %s exists already and queue %d is bound: another server uses Config.Queue %d in this network namespace (give each its own); if no server runs here, another program holds the queue, and the chain's rules go with: %s: %w",
		chain, h.cfg.Queue, h.cfg.Queue, h.commands(chain, cmds), err)
}

// chainExists reports whether the iptables chain exists in the server's
// namespace.
func (h *host) chainExists(chain string) bool {
	_, err := inNetns(h.netns, func() ([]byte, error) {
		return exec.Command(h.cfg.Iptables, "-w", "-S", chain).CombinedOutput()
	})
	return err == nil
}

func (h *host) iptables(args ...string) error {
	out, err := inNetns(h.netns, func() ([]byte, error) {
		return exec.Command(h.cfg.Iptables, append([]string{"-w"}, args...)...).CombinedOutput()
	})
	if err != nil {
		return fmt.Errorf("kernel: %s %s: %w: %s (needs CAP_NET_ADMIN, and xt_socket and xt_NFQUEUE in the kernel)",
			h.cfg.Iptables, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// decide classifies a segment that found no socket; it runs on the
// queue's goroutine.
func (h *host) decide(f hold.Flow) hold.Verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holds[f] {
		return hold.Hold
	}
	if until, ok := h.tombs[f]; ok {
		if h.Now() < until {
			return hold.Drop
		}
		delete(h.tombs, f)
	}
	return hold.Accept // the kernel answers as it always does
}

func flowOf(id tcp.ID) hold.Flow { return hold.Flow{Src: id.Remote, Dst: id.Local} }

func (h *host) Addr() netip.Addr { return h.cfg.Addr }
func (h *host) Now() tcp.Time    { return tcp.Time(migrate.Monotonic()) }

// Burst runs fn, whose datagrams after the first paceEvery go to the
// pacer (pacer.go).
func (h *host) Burst(fn func()) {
	h.burst = 1
	fn()
	h.flushTail()
	h.burst = 0
}

// flushTail hands the burst's tail, if any, to the pacer. The engine's lock
// is held.
func (h *host) flushTail() {
	if h.tail != nil {
		h.pace.queue(h.tailDst, h.tail)
		h.tail = nil
	}
}

// Post runs fn at once: the kernel host has no event loop of its own to
// hand work to, and its Work keeps its system calls.
func (h *host) Post(fn func()) { fn() }

func (h *host) NumConns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *host) Attach(e *migrate.Engine) error {
	ready := make(chan error, 1)
	h.wg.Add(1)
	go h.receive(e, ready)
	if err := <-ready; err != nil {
		return err
	}
	h.wg.Add(2)
	go h.clock(e)
	go func() {
		defer h.wg.Done()
		h.pace.run()
	}()
	return nil
}

func (h *host) Detach() {
	select {
	case <-h.done:
		return
	default:
	}
	close(h.done)
	h.udp.SetReadDeadline(time.Unix(1, 0)) //nolint:errcheck // wakes the reader
	h.wg.Wait()
}

// receive hands TCPMig datagrams to the engine. ready gets LoopThread's
// error, or nil once receive goes on.
func (h *host) receive(e *migrate.Engine, ready chan<- error) {
	defer h.wg.Done()
	if h.cfg.LoopThread != nil {
		runtime.LockOSThread() // for good: the thread's scheduling was changed
		if err := h.cfg.LoopThread(); err != nil {
			ready <- fmt.Errorf("kernel: the TCPMig receiver's thread: %w", err)
			return
		}
	}
	ready <- nil
	buf := make([]byte, 1<<16)
	for {
		n, src, err := h.udp.ReadFromUDPAddrPort(buf)
		select {
		case <-h.done:
			return
		default:
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		e.Datagram(src.Addr().Unmap(), buf[:n])
	}
}

// clockTick bounds how late a timer fires: the engine's timers are
// milliseconds and more, and a deadline set by another goroutine (Start)
// is seen within a tick.
const clockTick = 500 * time.Microsecond

// clock runs the engine's timers.
func (h *host) clock(e *migrate.Engine) {
	defer h.wg.Done()
	t := time.NewTimer(clockTick)
	defer t.Stop()
	for {
		now := h.Now()
		if at, ok := e.NextDeadline(); ok && at <= now {
			e.Advance(now)
			continue
		}
		wait := clockTick
		if at, ok := e.NextDeadline(); ok && at-now < wait {
			wait = max(at-now, 0)
		}
		t.Reset(wait)
		select {
		case <-h.done:
			return
		case <-t.C:
		}
	}
}

func (h *host) SendUDP(dst netip.Addr, payload []byte) error {
	if h.burst > 0 {
		h.burst++
		if h.burst > paceEvery+1 {
			k := keyOf(payload)
			if h.tail != nil && (h.tailDst != dst || h.tail.key != k) {
				h.flushTail()
			}
			if h.tail == nil {
				h.tail, h.tailDst = &tail{key: k}, dst
			}
			h.tail.add(payload)
			return nil
		}
	}
	t0 := time.Now()
	_, err := h.udp.WriteToUDPAddrPort(payload, netip.AddrPortFrom(dst, tcpmig.UDPPort))
	h.transmit.Add(int64(time.Since(t0)))
	return err
}

// TransmitTime implements migrate.TransmitTimer: the time SendUDP spent in
// its send system calls (the pacer's sends are not in it).
func (h *host) TransmitTime() time.Duration { return time.Duration(h.transmit.Load()) }

func (h *host) Lookup(id tcp.ID) (migrate.ConnInfo, bool) {
	h.mu.Lock()
	c := h.conns[id]
	h.mu.Unlock() // the queue's goroutine takes h.mu for every packet it decides
	if c == nil {
		return migrate.ConnInfo{}, false
	}
	// TCP_REPAIR dumps only ESTABLISHED sockets: a half-closed one stays.
	return migrate.ConnInfo{Established: c.established(), Origin: c.origin}, true
}

func stepHook(steps func(string, time.Duration)) []repair.Option {
	if steps == nil {
		return nil
	}
	return []repair.Option{repair.WithStepHook(func(s repair.Step, d time.Duration) { steps(string(s), d) })}
}

// frozen is a socket in repair mode, dumped.
type frozen struct {
	c        *Conn
	d        *repair.Dump
	dumpedAt time.Time // when d's clocks were read
	steps    func(string, time.Duration)
}

func (h *host) Freeze(id tcp.ID, steps func(string, time.Duration)) (migrate.Frozen, error) {
	h.mu.Lock()
	c := h.conns[id]
	delete(h.conns, id)
	h.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("kernel: %v-%v is not a connection of this server", id.Local, id.Remote)
	}
	// A socket whose flight is rtoWait old and unacknowledged is waiting
	// for its retransmission timer. Moved, it would not resend: Linux
	// gives no way to carry the timer over, a restored socket starts its
	// RTO afresh at 1 s, and a connection moved more often than that
	// would never recover the loss. It stays, and resends here first.
	// (A failed read leaves it movable, as before.)
	if waiting, err := c.waitingForRTO(rtoWait); err == nil && waiting {
		h.keep(id, c)
		return nil, fmt.Errorf("%w: %v-%v has had bytes in flight for %v or more, unacknowledged: it waits for its retransmission timer", migrate.ErrNotMovable, id.Local, id.Remote, rtoWait)
	}
	// A state over the restore cap would be refused by a target with
	// this server's configuration after travelling whole, and the
	// origin's give-up would then reset the connection: it stays
	// instead. (Its application stops reading from Start on, so a fast
	// sender can fill a receive queue past the cap meanwhile.) Checked
	// here, before any work, and on the dump, which may have grown.
	if send, recv, err := c.queues(); err == nil && h.overCap(send, recv) {
		h.keep(id, c)
		return nil, h.overCapError(id, send, recv)
	}
	// Muted first: a socket in repair mode still transmits (new data
	// as ACKs or a loss probe open the window, retransmissions), and a
	// byte the client gets past the dump's snd_nxt leaves the restored
	// socket refusing the client's ACKs for good. What it sends from here
	// is dropped, and counts as sent in the dump: the target retransmits
	// it.
	t0 := time.Now()
	if err := c.setMark(frozenMark); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return nil, h.givenUp(c, err)
		}
		h.keep(id, c) // untouched
		return nil, fmt.Errorf("%w: kernel: muting %v-%v (SO_MARK): %w", migrate.ErrNotMovable, id.Local, id.Remote, err)
	}
	if steps != nil {
		steps("mute", time.Since(t0))
	}
	d, err := repair.DumpConn(c.TCPConn, stepHook(steps)...)
	dumpedAt := time.Now()
	if err != nil {
		c.setMark(0) //nolint:errcheck // a failed unmute fails its next send, which the application sees
		if errors.Is(err, net.ErrClosed) {
			return nil, h.givenUp(c, err)
		}
		// Half-closed between the start and now (TCP_REPAIR moves only
		// ESTABLISHED sockets), its queues kept changing under the dump,
		// or a call failed: DumpFD left repair mode without a word to the
		// client, and the socket goes on here untouched.
		h.keep(id, c)
		return nil, fmt.Errorf("%w: %w", migrate.ErrNotMovable, err)
	}
	if h.overCap(len(d.SendQueue), len(d.RecvQueue)) {
		repair.Resume(c.TCPConn) //nolint:errcheck // a socket left in repair mode fails its next call, which the application sees
		c.setMark(0)             //nolint:errcheck // as above
		h.keep(id, c)
		return nil, h.overCapError(id, len(d.SendQueue), len(d.RecvQueue))
	}
	// The state names the connection as the client knows it: a socket
	// migrated in is bound to this server's own address.
	d.Local = c.origin
	return &frozen{c, d, dumpedAt, steps}, nil
}

// overCap reports whether queues of these sizes exceed the restore cap.
func (h *host) overCap(send, recv int) bool {
	max := h.cfg.Engine.MaxRestoreBuffer
	return send > max || recv > max
}

func (h *host) overCapError(id tcp.ID, send, recv int) error {
	return fmt.Errorf("%w: %v-%v: queues of %d (send) and %d (receive) bytes exceed the restore cap of %d (Config.Engine.MaxRestoreBuffer: raise it on every server to move such connections)",
		migrate.ErrNotMovable, id.Local, id.Remote, send, recv, h.cfg.Engine.MaxRestoreBuffer)
}

// givenUp is Freeze's end for a connection its application closed
// meanwhile: reset, as the engine's give-up reports.
func (h *host) givenUp(c *Conn, err error) error {
	c.Abort()
	return fmt.Errorf("kernel: %v-%v was closed by its application: %w", c.id.Local, c.id.Remote, err)
}

func (f *frozen) Serialize(dst, app []byte) ([]byte, error) { return appendState(dst, f.d, app) }

func (f *frozen) Release() {
	repair.CloseSilently(f.c.TCPConn, stepHook(f.steps)...) //nolint:errcheck // the socket is gone either way
}

func (f *frozen) Abort(probeLater time.Duration) {
	// Out of repair mode while still muted: leaving it sends a window
	// probe, whose answer would go through the switch's entry to the
	// target, and would spend the client's one answer per 500 ms to
	// out-of-window segments without data.
	repair.Resume(f.c.TCPConn) //nolint:errcheck // the reset below ends it either way
	f.c.setMark(0)             //nolint:errcheck // the RST must go out
	f.c.Abort()
	// The client drops that RST if the target served it meanwhile: the
	// probes make it answer, and the answer draws a RST it takes.
	f.c.h.probes.probe(f.d, f.dumpedAt, probeLater)
}

func (h *host) Restore(_ tcp.Time, state []byte, self tcp.ID, origin netip.AddrPort, maxBuffer int, steps func(string, time.Duration)) ([]byte, func(), error) {
	d, app, err := decodeState(state)
	app = bytes.Clone(app) // state is the engine's, valid only during the call
	if err != nil {
		return nil, nil, err
	}
	if d.Local != origin || d.Remote != self.Remote {
		return nil, nil, fmt.Errorf("%w: the state is of %v-%v, and the TCPMig header names %v-%v", ErrState, d.Local, d.Remote, origin, self.Remote)
	}
	if len(d.SendQueue) > maxBuffer || len(d.RecvQueue) > maxBuffer {
		return nil, nil, fmt.Errorf("queues of %d (send) and %d (receive) bytes exceed this server's restore cap of %d (Config.Engine.MaxRestoreBuffer: raise it to take such connections)", len(d.SendQueue), len(d.RecvQueue), maxBuffer)
	}
	port := self.Local.Port()
	h.mu.Lock()
	l := h.listeners[port]
	h.mu.Unlock()
	if l == nil {
		return nil, nil, fmt.Errorf("%w: no kernel listener on port %d (Server.Listen)", migrate.ErrNoRestorer, port)
	}
	// A listener that cannot take the connection refuses it before the
	// socket is rebuilt, which would only be torn down again.
	if err := l.admits(); err != nil {
		return nil, nil, h.refusedBy(port, err)
	}
	tc, err := repair.Restore(d, self.Local, append(stepHook(steps), repair.WithTransparentRestore())...)
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EADDRINUSE) {
		return nil, nil, fmt.Errorf("%w (a socket of %v-%v is still here: a frozen copy waiting for its CONN_STATE_ACK, or one in TIME-WAIT)", err, self.Local, self.Remote)
	}
	if err != nil {
		return nil, nil, err
	}
	c := &Conn{TCPConn: tc, h: h, id: self, origin: origin}
	h.mu.Lock()
	h.conns[self] = c
	h.mu.Unlock()
	if err := l.offer(c); err != nil {
		h.forget(c)
		repair.CloseSilently(tc) //nolint:errcheck // never handed out
		return nil, nil, h.refusedBy(port, err)
	}
	return app, nil, nil
}

// refusedBy is Restore's error for a listener's refusal (Listener.offer's
// error).
func (h *host) refusedBy(port uint16, err error) error {
	if errors.Is(err, ErrListenerClosed) {
		return fmt.Errorf("%w: the listener of port %d closed (%w)", migrate.ErrNoRestorer, port, err)
	}
	return fmt.Errorf("the backlog of port %d is full: %d connections migrated in and not accepted yet (Config.Backlog: raise it, or accept faster)", port, h.cfg.Backlog)
}

func (h *host) Hold(id tcp.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.holds[flowOf(id)] = true
}

func (h *host) Replay(id tcp.ID) (int, int) { return h.settle(id, (*hold.Queue).ReleaseFlow) }

func (h *host) Discard(id tcp.ID) (int, int) { return h.settle(id, (*hold.Queue).DropFlow) }

func (h *host) settle(id tcp.ID, fn func(*hold.Queue, hold.Flow) (int, int, error)) (int, int) {
	f := flowOf(id)
	h.mu.Lock()
	delete(h.holds, f)
	h.mu.Unlock()
	held, over, _ := fn(h.q, f) //nolint:errcheck // a failed verdict leaves the segment to the client's retransmission
	return held, over
}

func (h *host) Tomb(id tcp.ID, until tcp.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tombs[flowOf(id)] = until
}

func (h *host) Untomb(id tcp.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.tombs, flowOf(id))
}

func (h *host) Counters() migrate.HostCounters {
	st := h.q.FlowStats()
	return migrate.HostCounters{Held: st.Held, HeldOverflow: st.Overflow, TombstoneDrops: st.Dropped}
}

// keep files c again after a Freeze that left it as it was.
func (h *host) keep(id tcp.ID, c *Conn) {
	h.mu.Lock()
	h.conns[id] = c
	h.mu.Unlock()
}

func (h *host) forget(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[c.id] == c {
		delete(h.conns, c.id)
	}
}

// udpBuffer is the TCPMig socket's send and receive buffer: room for a
// whole state of DefaultMaxRestoreBuffer and more.
const udpBuffer = 64 << 20

// udpBuffers sets c's buffers past net.core's limits (CAP_NET_ADMIN).
func udpBuffers(c *net.UDPConn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	if err := setsockopts(rc, sockopt{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n / 2}, sockopt{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n / 2}); err != nil {
		return fmt.Errorf("kernel: TCPMig socket buffers of %d bytes: %w (needs CAP_NET_ADMIN)", n, err)
	}
	return nil
}

// inNetns runs fn on a thread in the network namespace ns, so that what
// it starts (an iptables) acts there.
func inNetns(ns *os.File, fn func() ([]byte, error)) ([]byte, error) {
	type result struct {
		out []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("entering the server's network namespace: %w", err)}
			return
		}
		out, err := fn()
		// A thread that cannot go back stays locked, and Go retires it
		// with this goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{out, err}
	}()
	r := <-ch
	return r.out, r.err
}
