package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// Compile-time checks that the adapters fit net/http and friends.
var (
	_ net.Conn     = (*Conn)(nil)
	_ net.Listener = (*Listener)(nil)
)

// waker wakes goroutines blocked on a connection or listener. Every
// method is called with the stack lock held.
type waker struct{ ch chan struct{} }

// signal wakes everybody waiting now; it allocates only when someone waits.
func (w *waker) signal() {
	if w.ch != nil {
		close(w.ch)
		w.ch = nil
	}
}

// signal wakes w's waiters, or, while a hook runs (a UDP handler, the
// migration engine's, or the TCP interceptor, which Input calls without
// the lock), when it returns: a goroutine woken inside the handler (a
// futex call, often an IPI to an idle CPU: tens of microseconds on a VM)
// would make the handler wait for it, and would then wait for the lock
// the handler takes. Hooks run on the event loop and must not block, so
// the wake is late by one handler at most. s.mu is held.
func (s *Stack) signal(w *waker) {
	if w.ch == nil {
		return
	}
	s.woke = true
	if s.hooks == 0 {
		w.signal()
		return
	}
	s.wakeLater = append(s.wakeLater, w.ch)
	w.ch = nil
}

// releaseWakes wakes what signal put off, once the last hook returned.
// s.mu is held, and released while it wakes.
func (s *Stack) releaseWakes() {
	if s.hooks > 0 || len(s.wakeLater) == 0 {
		return
	}
	ws := s.wakeLater
	s.wakeLater = s.wakeSpare[:0] // no allocation in the next handler
	s.wakeSpare = nil
	s.mu.Unlock()
	for i, ch := range ws {
		close(ch)
		ws[i] = nil
	}
	s.mu.Lock()
	if s.wakeSpare == nil {
		s.wakeSpare = ws[:0]
	}
}

// wait releases the stack lock until a signal, the deadline or done, and
// retakes it. It returns os.ErrDeadlineExceeded or the context's error.
// What waits queued on the link leaves first (takeBeforeWait).
func (w *waker) wait(s *Stack, deadline time.Time, ctx context.Context) error {
	kick := s.takeBeforeWait()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	ch := w.ch
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			if kick {
				s.flushLocked()
			}
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	var done <-chan struct{}
	if ctx != nil {
		done = ctx.Done()
	}
	s.mu.Unlock()
	defer s.mu.Lock()
	if kick {
		s.flushOrCount()
	}
	select {
	case <-ch:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-done:
		return ctx.Err()
	}
}

func expired(deadline time.Time) bool {
	return !deadline.IsZero() && !time.Now().Before(deadline)
}

// Conn is a TCP connection of the stack, used as a net.Conn. Blocking
// methods need Run (or another driver of Input/Advance) to make progress.
type Conn struct {
	s   *Stack
	tc  *tcp.Conn
	id  tcp.ID
	idx int // position in s.connList, -1 once removed

	lis         *Listener      // set until accepted; nil for dialled conns
	queued      bool           // in lis.queue
	established bool           // reached ESTABLISHED at least once
	outPending  bool           // Input in Run's drain left Output owed (c is in s.outPending)
	detached    bool           // handed away by DetachConn, which sets tc to nil
	origin      netip.AddrPort // Origin, kept at DetachConn
	closed      bool           // Close called
	err         error          // overrides tc.Err (e.g. ARP failure)

	// Readers wait on rwake, writers (and Dial) on wwake: output wakes
	// each only with news for it, so that a bulk sender's ACKs do not
	// wake an idle reader (net/http keeps one blocked in Read on every
	// connection), nor received data a blocked writer.
	rwake, wwake                waker
	readDeadline, writeDeadline time.Time
}

// signalAll wakes every waiter of c: its state changed for both sides, or
// a deadline did. s.mu is held.
func (c *Conn) signalAll() {
	c.s.signal(&c.rwake)
	c.s.signal(&c.wwake)
}

// signalNews wakes the waiters that output's work concerns: readers when
// there is data, EOF or an error for them, writers when the send buffer
// has room for a third of its current size (as Linux's
// sk_stream_write_space waits for: a writer woken for a few bytes would
// only sleep again), or an error. s.mu is held.
func (c *Conn) signalNews() {
	if c.failure() != nil { // Close and Abort wake both sides themselves
		c.signalAll()
		return
	}
	st := c.tc.State()
	if c.rwake.ch != nil && (c.tc.Readable() > 0 || !st.CanReceive()) {
		c.s.signal(&c.rwake)
	}
	if c.wwake.ch != nil && (!st.CanSend() || c.established && c.tc.Writable() >= c.tc.SendBufferSize()/3) {
		c.s.signal(&c.wwake)
	}
}

// TCP returns the underlying connection state machine, or nil once
// DetachConn handed it away. Touch it only with the stack's lock held,
// i.e. from a hook or a single-threaded driver.
func (c *Conn) TCP() *tcp.Conn { return c.tc }

// ID is the connection's 4-tuple.
func (c *Conn) ID() tcp.ID { return c.id }

// LocalAddr is our address and port.
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.id.Local) }

// RemoteAddr is the peer's address and port.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.id.Remote) }

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// failure is why c cannot make progress, or nil. Called locked.
func (c *Conn) failure() error {
	switch {
	case c.detached:
		return ErrDetached
	case c.s.closed:
		return net.ErrClosed
	case c.err != nil:
		return c.err
	}
	return c.tc.Err()
}

// Read reads received data, blocking until some arrives, the peer closes
// (io.EOF), the connection fails or the read deadline passes.
func (c *Conn) Read(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if c.closed {
			return 0, c.opError("read", net.ErrClosed)
		}
		if expired(c.readDeadline) {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		if c.detached || s.closed {
			return 0, c.opError("read", c.failure())
		}
		if len(p) == 0 {
			return 0, nil
		}
		n, err := c.tc.Read(p)
		if n > 0 {
			s.output(s.nowLocked(), c) // the window may have opened
			return n, nil
		}
		if err == io.EOF {
			return 0, io.EOF
		}
		if err == nil && c.err != nil {
			err = c.err
		}
		if err != nil {
			return 0, c.opError("read", err)
		}
		if err := c.rwake.wait(s, c.readDeadline, nil); err != nil {
			return 0, c.opError("read", err)
		}
	}
}

// Write sends all of p, blocking while the send buffer is full, until the
// connection fails or the write deadline passes.
func (c *Conn) Write(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.unlockFlush()
	written := 0
	for {
		if c.closed {
			return written, c.opError("write", net.ErrClosed)
		}
		if expired(c.writeDeadline) {
			return written, c.opError("write", os.ErrDeadlineExceeded)
		}
		if err := c.failure(); err != nil {
			return written, c.opError("write", err)
		}
		n, err := c.tc.Write(p[written:])
		written += n
		if n > 0 {
			s.txLater = true // unlockFlush kicks the link outside the lock
			s.output(s.nowLocked(), c)
			s.txLater = false
		}
		if err != nil {
			return written, c.opError("write", err)
		}
		if written == len(p) {
			return written, nil
		}
		if n > 0 {
			continue // output may have freed space by sending
		}
		if err := c.wwake.wait(s, c.writeDeadline, nil); err != nil {
			return written, c.opError("write", err)
		}
	}
}

// Close starts a graceful close: data already written is delivered, then
// a FIN. Further Reads and Writes fail with net.ErrClosed.
func (c *Conn) Close() error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	c.signalAll() // a blocked Read or Write returns net.ErrClosed
	if c.detached {
		return nil
	}
	c.tc.Close()
	c.tc.Orphan() // nothing will read it: FIN-WAIT-2 is bounded
	s.output(s.nowLocked(), c)
	return nil
}

// CloseWrite sends a FIN after the data already written; reading goes on.
func (c *Conn) CloseWrite() error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	if c.detached {
		return c.opError("close", ErrDetached)
	}
	c.tc.Close()
	s.signal(&c.wwake) // a blocked Write fails now, even before the handshake ends
	s.output(s.nowLocked(), c)
	return nil
}

// Abort resets the connection (RST) and discards its buffers.
func (c *Conn) Abort() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	c.closed = true
	c.signalAll()
	if c.detached {
		return
	}
	c.tc.Abort()
	s.output(s.nowLocked(), c)
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.readDeadline, c.writeDeadline = t, t
	c.signalAll() // waiters re-arm with the new deadline
	return nil
}

// SetReadDeadline sets the deadline for Read; zero means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.readDeadline = t
	c.s.signal(&c.rwake)
	return nil
}

// SetWriteDeadline sets the deadline for Write; zero means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.writeDeadline = t
	c.s.signal(&c.wwake)
	return nil
}

// TryRead is Read that never blocks: (0, nil) when nothing is buffered.
// It is how single-threaded drivers such as the simulator read.
func (c *Conn) TryRead(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return 0, c.opError("read", net.ErrClosed)
	}
	if c.detached || s.closed {
		return 0, c.opError("read", c.failure())
	}
	n, err := c.tc.Read(p)
	if n > 0 {
		s.output(s.nowLocked(), c)
	}
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	if n == 0 && err == nil && c.err != nil {
		err = c.opError("read", c.err)
	}
	return n, err
}

// TryWrite is Write that never blocks: it queues what fits and returns
// how much that was.
func (c *Conn) TryWrite(p []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.closed {
		return 0, c.opError("write", net.ErrClosed)
	}
	if err := c.failure(); err != nil {
		return 0, c.opError("write", err)
	}
	n, err := c.tc.Write(p)
	if n > 0 {
		s.output(s.nowLocked(), c)
	}
	if err != nil {
		err = c.opError("write", err)
	}
	return n, err
}

// Queued is the bytes c's send and receive buffers hold.
func (c *Conn) Queued() int {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.detached {
		return 0 // the bytes left with the state
	}
	return c.tc.Queued()
}

// Origin is the address the peer knows this end by: the connection's own
// local address, which for a connection migrated in is the server it was
// opened with (the switch rewrites between the two), not this stack's.
func (c *Conn) Origin() netip.AddrPort {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.detached {
		return c.origin
	}
	return c.tc.ID().Local
}

// Established reports whether the handshake has completed.
func (c *Conn) Established() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.established
}

// Err is the connection's terminal error, if it has one.
func (c *Conn) Err() error {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.failure()
}

// Done reports whether the connection has fully finished (or was
// detached) and left the stack.
func (c *Conn) Done() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.idx < 0
}

// Listener accepts TCP connections on one port; it is a net.Listener.
type Listener struct {
	s       *Stack
	port    uint16
	queue   []*Conn // established, not yet accepted
	pending int     // handshaking + queued, bounded by Config.Backlog
	closed  bool
	wake    waker
}

// Listen opens a listener on port of the stack's address.
func (s *Stack) Listen(port uint16) (*Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("stack: listen on port %d: %w", port, net.ErrClosed)
	}
	if port == 0 {
		return nil, fmt.Errorf("%w: listen needs a port, got 0", ErrBadAddr)
	}
	if s.listeners[port] != nil {
		return nil, fmt.Errorf("%w: TCP port %d already has a listener", ErrPortInUse, port)
	}
	l := &Listener{s: s, port: port}
	s.listeners[port] = l
	return l, nil
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn(nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn waits for the next connection or for ctx (nil: no limit).
func (l *Listener) AcceptConn(ctx context.Context) (*Conn, error) {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if c := l.pop(); c != nil {
			return c, nil
		}
		if l.closed || s.closed {
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
		}
		if err := l.wake.wait(s, time.Time{}, ctx); err != nil {
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
		}
	}
}

// TryAccept returns the next established connection, or nil if none is
// waiting. It never blocks.
func (l *Listener) TryAccept() *Conn {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.pop()
}

func (l *Listener) pop() *Conn {
	if len(l.queue) == 0 {
		return nil
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.pending--
	c.lis = nil
	return c
}

// Close stops listening and resets connections not yet accepted.
func (l *Listener) Close() error {
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.closed {
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.closed = true
	if s.listeners[l.port] == l {
		delete(s.listeners, l.port)
	}
	now := s.nowLocked()
	for _, c := range append([]*Conn(nil), s.connList...) {
		if c.lis == l {
			c.lis = nil
			c.closed = true
			c.tc.Abort()
			s.output(now, c)
		}
	}
	l.queue, l.pending = nil, 0
	l.wake.signal()
	return nil
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.s.addr, l.port))
}

// Dial opens a connection to raddr and waits for the handshake, ctx's end,
// a RST (connection refused) or the SYN retries to run out.
func (s *Stack) Dial(ctx context.Context, raddr netip.AddrPort) (*Conn, error) {
	c, err := s.Connect(raddr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if c.established {
			return c, nil
		}
		if err := c.failure(); err != nil {
			s.abortLocked(c)
			return nil, c.opError("dial", err)
		}
		if c.idx < 0 {
			return nil, c.opError("dial", fmt.Errorf("%w: connection to %v ended during the handshake", ErrNoConn, raddr))
		}
		if err := c.wwake.wait(s, time.Time{}, ctx); err != nil {
			s.abortLocked(c)
			return nil, c.opError("dial", err)
		}
	}
}

func (s *Stack) abortLocked(c *Conn) {
	c.closed = true
	if c.idx >= 0 {
		c.tc.Abort()
		s.output(s.nowLocked(), c)
		s.removeConn(c)
	}
}

// Connect starts opening a connection to raddr and returns at once with
// the SYN sent (or queued for ARP). Dial is Connect plus waiting;
// single-threaded drivers poll Established instead.
func (s *Stack) Connect(raddr netip.AddrPort) (*Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("stack: dial %v: %w", raddr, net.ErrClosed)
	}
	if !raddr.Addr().Is4() || raddr.Port() == 0 || s.martian(raddr.Addr()) {
		return nil, fmt.Errorf("%w: dial %v: need a unicast IPv4 address and a port", ErrBadAddr, raddr)
	}
	if _, err := s.nextHop(raddr.Addr()); err != nil {
		return nil, fmt.Errorf("stack: dial %v: %w", raddr, err)
	}
	port, err := s.ephemeralPort(raddr)
	if err != nil {
		return nil, err
	}
	now := s.nowLocked()
	id := tcp.ID{Local: netip.AddrPortFrom(s.addr, port), Remote: raddr}
	c := s.newConn(tcp.Dial(s.cfg.TCP, id, s.iss(id, now), now), id)
	s.output(now, c)
	return c, nil
}

// DialContext is a net.Dialer-style DialContext for http.Transport: network
// must be "tcp" or "tcp4" and address a literal IPv4 "host:port".
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("%w: dial network %q, only tcp/tcp4", ErrBadAddr, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: dial address %q must be a literal IPv4 host:port: %v", ErrBadAddr, address, err)
	}
	c, err := s.Dial(ctx, ap)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Linger waits, until ctx ends, for the connections the application has
// closed to finish closing (FIN-WAIT-1 and -2, CLOSING, LAST-ACK: our FIN
// unacknowledged or the peer's still to come), so that a Close after it
// resets none of them. It returns ctx's error if some were still closing.
func (s *Stack) Linger(ctx context.Context) error {
	for {
		if s.closing() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack: %d connections still closing: %w", s.closing(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

func (s *Stack) closing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.connList {
		switch c.tc.State() {
		case tcp.StateFinWait1, tcp.StateFinWait2, tcp.StateClosing, tcp.StateLastAck:
			n++
		}
	}
	return n
}

// Close resets every connection, closes every listener and makes blocked
// calls return net.ErrClosed. It does not close the endpoint.
func (s *Stack) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("stack: close: %w", net.ErrClosed)
	}
	now := s.nowLocked()
	for _, c := range append([]*Conn(nil), s.connList...) {
		c.tc.Abort()
		s.output(now, c)
		s.removeConn(c)
	}
	for port, l := range s.listeners {
		l.closed = true
		l.wake.signal()
		delete(s.listeners, port) // later SYNs are refused with RST
	}
	for port, u := range s.udpConns {
		u.closed = true
		u.wake.signal()
		delete(s.udpConns, port)
	}
	for _, w := range s.pings {
		w.wake.signal()
	}
	if s.fenced {
		// The connections' arrays are in the pool (or held back): a stack
		// built on it next fences its own runs, and the pool no longer
		// keeps this one.
		s.cfg.TCP.Buffers.ClearFence()
		s.fenced = false
	}
	s.closed = true
	return nil
}

// Run is the event loop for a real link: it receives frames (waiting at
// most Config.PollInterval, less when a timer is due), feeds Input and
// fires timers on a monotonic clock until ctx ends (then it returns nil)
// or the endpoint fails. Only one Run may be active. Before it returns it
// sends what the last drain of the link owed, so Input and Advance
// callers, or a later Run, find nothing left pending.
func (s *Stack) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.clock != nil {
		s.mu.Unlock()
		return errors.New("stack: Run is already running")
	}
	start, base := time.Now(), s.now
	s.clock = func() tcp.Time { return base + time.Since(start) }
	s.mu.Unlock()
	s.postMu.Lock()
	s.running = s.waker != nil // Post runs its work inline otherwise
	s.postMu.Unlock()
	if s.waker != nil {
		// ctx's end wakes the loop rather than waiting out a poll.
		defer context.AfterFunc(ctx, s.waker.Wake)()
	}
	defer func() {
		// Posted work is not lost: what came before the loop ended runs
		// here, and later Posts run inline.
		s.postMu.Lock()
		s.running = false
		s.postMu.Unlock()
		s.runPosted()
		// A failing Receive (or ctx's end during it) skips the loop's
		// flushTx: the drain's ACKs are owed all the same.
		s.flushTx()
		s.mu.Lock()
		s.clock = nil
		s.mu.Unlock()
	}()
	input := func(frame []byte) { s.inputQueued(base+time.Since(start), frame) }
	onlyP := runtime.GOMAXPROCS(0) == 1
	for ctx.Err() == nil {
		wait := s.cfg.PollInterval
		if d, ok := s.NextDeadline(); ok {
			if until := d - (base + time.Since(start)); until < wait {
				wait = max(until, 0)
			}
		}
		if _, err := s.ep.Receive(wait, input); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("stack: receiving from the link: %w", err)
		}
		s.runPosted()
		s.Advance(base + time.Since(start))
		// After Advance: its timers' frames, like the drain's, must not
		// wait for another goroutine's Burst to end.
		if s.flushTx() && onlyP {
			// The goroutines the drain woke run before the next one. With
			// one P they have no other: a link that always has frames
			// waiting never makes Receive sleep or spin, and they would
			// wait for the runtime's preemption, 10 ms. Twice: Gosched
			// puts the loop on the global queue, which the scheduler
			// serves first on every 61st tick, so one call in 61 would
			// run the loop again at once; the second call cannot land on
			// that tick too.
			runtime.Gosched()
			runtime.Gosched()
		}
	}
	return nil
}
