package kernel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/repair"
	"github.com/capygen/capygen/runtime/tcp"
)

// Conn is a kernel TCP connection the server can move: accepted here or
// migrated in. It is a net.Conn and a migrate.Conn.
type Conn struct {
	*net.TCPConn
	h       *host
	id      tcp.ID
	origin  netip.AddrPort
	closing atomic.Bool // Close was called; the socket drains
}

var _ migrate.Conn = (*Conn)(nil)

// ID is the connection's address pair as this server files it.
func (c *Conn) ID() tcp.ID { return c.id }

// Origin is the address the client knows the server by.
func (c *Conn) Origin() netip.AddrPort { return c.origin }

// LocalAddr is the address the client knows this end by (Origin).
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.origin) }

// Close closes the connection: a FIN follows the data already written.
// The server keeps the socket until the kernel has finished with it
// (the queued data sent and the FINs exchanged): until then the switch's
// directory entry, which its end releases, must stay, or the data still
// queued would leave under this server's own address.
func (c *Conn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if err := c.TCPConn.CloseWrite(); err != nil {
		c.h.forget(c)
		return c.TCPConn.Close()
	}
	c.TCPConn.SetReadDeadline(time.Now()) //nolint:errcheck // wakes a reader; the application is done with it
	go c.linger()
	return nil
}

// lingerPoll and lingerMax pace and bound the wait for a closed socket's
// end.
const (
	lingerPoll = 20 * time.Millisecond
	lingerMax  = 2 * time.Minute
)

// linger waits until the kernel is done with a closed socket (the peer
// acknowledged everything and closed too), then releases it.
func (c *Conn) linger() {
	deadline := time.Now().Add(lingerMax)
	for time.Now().Before(deadline) && !c.finished() {
		time.Sleep(lingerPoll)
	}
	c.h.forget(c)
	c.TCPConn.Close()
}

// finished reports whether the socket has no more to exchange.
func (c *Conn) finished() bool {
	st, err := repair.SocketState(c.TCPConn)
	if err != nil {
		return true
	}
	switch st {
	case repair.StateClose, repair.StateTimeWait, repair.StateFinWait2:
		// FIN_WAIT2: all our data and our FIN are acknowledged; what is
		// left is the peer's, which the application no longer reads.
		return true
	}
	return false
}

// Abort resets the connection (SO_LINGER 0).
func (c *Conn) Abort() {
	c.h.forget(c)
	c.TCPConn.SetLinger(0) //nolint:errcheck // closing anyway
	c.TCPConn.Close()
}

// established reports whether the socket is in ESTABLISHED and the
// application has not closed it.
func (c *Conn) established() bool {
	st, err := repair.SocketState(c.TCPConn)
	return err == nil && st == repair.StateEstablished && !c.closing.Load()
}

// setMark sets the socket's SO_MARK.
func (c *Conn) setMark(m int) error {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return err
	}
	return setsockopts(rc, sockopt{unix.SOL_SOCKET, unix.SO_MARK, m})
}

// waitingForRTO reports whether c has bytes in flight that are old and
// unacknowledged: no ACK for at least quiet (tcpi_last_ack_recv), and
// either nothing sent for as long (tcpi_last_data_sent, which
// retransmissions reset too) or the retransmission timer fired already
// (tcpi_retransmits, cleared by an ACK that moves snd_una). Its flight was
// lost, and only its retransmission timer will resend it. The time since
// the last ACK alone would also catch a reply just written after an idle
// spell, whose flight is fresh.
func (c *Conn) waitingForRTO(quiet time.Duration) (bool, error) {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return false, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.SOL_TCP, unix.TCP_INFO) }); err != nil {
		return false, err
	}
	if ierr != nil {
		return false, ierr
	}
	ms := func(v uint32) time.Duration { return time.Duration(v) * time.Millisecond }
	aged := ms(info.Last_data_sent) >= quiet || info.Retransmits > 0
	return info.Unacked > 0 && ms(info.Last_ack_recv) >= quiet && aged, nil
}

// queues returns the bytes in c's send queue (sent or not) and receive
// queue (SIOCOUTQ, SIOCINQ): the sizes a dump would carry.
func (c *Conn) queues() (send, recv int, err error) {
	rc, err := c.TCPConn.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		if send, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); ierr == nil {
			recv, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		}
	}); err != nil {
		return 0, 0, err
	}
	return send, recv, ierr
}

// sockopt is one integer socket option.
type sockopt struct{ level, opt, value int }

// setsockopts sets opts on rc's socket, in order, stopping at the first
// that fails.
func setsockopts(rc syscall.RawConn, opts ...sockopt) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		for _, o := range opts {
			if serr = unix.SetsockoptInt(int(fd), o.level, o.opt, o.value); serr != nil {
				return
			}
		}
	})
	return errors.Join(err, serr)
}

// ErrListenerClosed is returned by Accept after Close.
var ErrListenerClosed = errors.New("kernel: listener closed")

// Listener hands out a port's connections, those accepted here and those
// migrated in, alike: Socket Launcher's accept. It listens on the wildcard
// address, so that the hold rules' socket match ignores it.
type Listener struct {
	h        *host
	port     uint16
	ln       *net.TCPListener
	migrated chan *Conn
	native   chan *Conn
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup

	mu     sync.Mutex
	err    error
	closed bool // Close began: offer refuses
}

// Listen listens on port, on every address of the namespace.
func (s *Server) Listen(port uint16) (*Listener, error) {
	h := s.h
	// Accepted sockets inherit the listener's buffers.
	var bufs []sockopt
	if n := h.cfg.SendBuffer; n > 0 {
		bufs = append(bufs, sockopt{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n / 2})
	}
	if n := h.cfg.RecvBuffer; n > 0 {
		bufs = append(bufs, sockopt{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n / 2})
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error { return setsockopts(rc, bufs...) }}
	nl, err := lc.Listen(context.Background(), "tcp4", fmt.Sprintf(":%d", port))
	if err != nil {
		return nil, fmt.Errorf("kernel: listening on port %d: %w", port, err)
	}
	ln := nl.(*net.TCPListener)
	l := &Listener{h: h, port: port, ln: ln, migrated: make(chan *Conn, h.cfg.Backlog), native: make(chan *Conn), done: make(chan struct{})}
	h.mu.Lock()
	if h.listeners[port] != nil {
		h.mu.Unlock()
		ln.Close()
		return nil, fmt.Errorf("kernel: port %d has a listener already", port)
	}
	h.listeners[port] = l
	h.mu.Unlock()
	l.wg.Add(1)
	go l.acceptNative()
	return l, nil
}

func (l *Listener) acceptNative() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		tc, err := l.ln.AcceptTCP()
		if err != nil && !errors.Is(err, net.ErrClosed) && backoff < maxAcceptBackoff {
			// Out of descriptors or buffers (EMFILE, ENFILE, ENOBUFS,
			// ECONNABORTED...): wait and accept again, as net/http does,
			// rather than close the port to new and migrated connections.
			backoff = max(2*backoff, 5*time.Millisecond)
			select {
			case <-l.done:
			case <-time.After(backoff):
			}
			continue
		}
		if err != nil {
			l.mu.Lock()
			if l.err == nil {
				l.err = err
			}
			l.mu.Unlock()
			l.Close()
			return
		}
		backoff = 0
		local, _ := netip.ParseAddrPort(tc.LocalAddr().String())
		remote, _ := netip.ParseAddrPort(tc.RemoteAddr().String())
		local, remote = netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
		c := &Conn{TCPConn: tc, h: l.h, id: tcp.ID{Local: local, Remote: remote}, origin: local}
		l.h.mu.Lock()
		l.h.conns[c.id] = c
		l.h.mu.Unlock()
		select {
		case l.native <- c:
		case <-l.done:
			c.Close()
			return
		}
	}
}

// maxAcceptBackoff bounds the waits between accepts that fail: an error
// that lasts through one that long (about 10 s in all) closes the
// listener, and AcceptConn returns it.
const maxAcceptBackoff = 5 * time.Second

// errBacklogFull is offer's refusal of a connection migrated in beyond
// Config.Backlog.
var errBacklogFull = errors.New("kernel: backlog full")

// admits tells whether offer would take a connection now: nil, or why not
// (ErrListenerClosed, errBacklogFull). Restore asks before it rebuilds
// the socket; offer still decides.
func (l *Listener) admits() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrListenerClosed
	}
	if len(l.migrated) == cap(l.migrated) {
		return errBacklogFull
	}
	return nil
}

// offer queues a connection migrated in, or says why not:
// ErrListenerClosed, errBacklogFull. Under l.mu, so that Close, which
// takes it too, either sees the connection in the queue and resets it, or
// is seen.
func (l *Listener) offer(c *Conn) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrListenerClosed
	}
	select {
	case l.migrated <- c:
		return nil
	default:
		return errBacklogFull
	}
}

// AcceptConn waits for the next connection, migrated in or new. A
// migrated one's application state is the engine's: Engine.Manage's
// Session.Restored returns it.
func (l *Listener) AcceptConn() (*Conn, error) {
	// Migrated connections first: their clients are mid-stream.
	select {
	case c := <-l.migrated:
		return c, nil
	default:
	}
	select {
	case c := <-l.migrated:
		return c, nil
	case c := <-l.native:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.err != nil && !errors.Is(l.err, net.ErrClosed) {
			return nil, fmt.Errorf("kernel: port %d: %w", l.port, l.err)
		}
		return nil, ErrListenerClosed
	}
}

// Accept is AcceptConn as a net.Listener's.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Addr is the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops the listener; connections migrated in and not accepted are
// reset.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
		l.ln.Close()
		l.h.mu.Lock()
		if l.h.listeners[l.port] == l {
			delete(l.h.listeners, l.port)
		}
		l.h.mu.Unlock()
		for {
			select {
			case c := <-l.migrated:
				c.Abort()
				continue
			default:
			}
			break
		}
	})
	return nil
}
