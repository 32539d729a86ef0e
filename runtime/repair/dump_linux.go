//go:build linux

package repair

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// ErrUnsupportedState is wrapped by the error DumpFD returns for a socket
// that is not ESTABLISHED (or stops being so during the dump), or whose
// receive queue holds urgent data (MSG_OOB) not read past.
var ErrUnsupportedState = errors.New("unsupported TCP state")

// DumpConn dumps c; see DumpFD.
func DumpConn(c *net.TCPConn, opts ...Option) (*Dump, error) {
	var d *Dump
	err := control(c, "dump", StepRepairOn, func(fd int) error {
		var err error
		d, err = DumpFD(fd, opts...)
		return err
	})
	return d, err
}

// DumpFD puts the TCP socket fd in repair mode and reads everything
// Restore needs. On success the socket stays in repair mode: it sends
// nothing by itself from then on, and is to be closed with CloseSilently
// (or resumed with Resume if the migration is called off). On failure
// repair mode is turned off again without a window probe, so the socket
// carries on as if nothing had happened.
func DumpFD(fd int, opts ...Option) (*Dump, error) {
	cfg := newConfig(opts)
	t := cfg.timer()
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		t.done(StepRepairOn)
		return nil, &StepError{Op: "dump", Step: StepRepairOn, What: "TCP_REPAIR on", Call: "setsockopt", Err: err}
	}
	t.done(StepRepairOn)
	// A socket in repair mode still takes the peer's segments: one that
	// lands between a queue's size and its bytes (under load, a client's
	// zero-window probe: "277641 bytes, want 277640") makes the dump
	// inconsistent, and it is read again. Nothing is dropped for it.
	var d *Dump
	var err error
	for try := 0; try < dumpTries; try++ {
		if d, err = dumpRepaired(fd); !errors.Is(err, ErrQueueChanged) {
			break
		}
	}
	t.done(StepDumpQueues)
	if err != nil {
		unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP)
		return nil, err
	}
	return d, nil
}

func dumpRepaired(fd int) (*Dump, error) {
	fail := func(what, call string, err error) error {
		return &StepError{Op: "dump", Step: StepDumpQueues, What: what, Call: call, Err: err}
	}
	info, err := getTCPInfoHead(fd)
	if err != nil {
		return nil, fail("TCP_INFO", "getsockopt", err)
	}
	d := &Dump{State: State(info.state)}
	if d.State != StateEstablished {
		return nil, fail("state", "", fmt.Errorf("%w: %v (only ESTABLISHED)", ErrUnsupportedState, d.State))
	}

	// Queue sizes: SIOCOUTQ counts write_seq-snd_una, SIOCOUTQNSD the
	// part past snd_nxt, SIOCINQ rcv_nxt-copied_seq.
	outq, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return nil, fail("SIOCOUTQ", "ioctl", err)
	}
	unsent, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD)
	if err != nil {
		return nil, fail("SIOCOUTQNSD", "ioctl", err)
	}
	// Urgent data (MSG_OOB) not read past: tcp_inq counts only up to its
	// mark, and the peek stops there, but TCP_QUEUE_SEQ is rcv_nxt past it
	// all, so the restored socket would lose the urgent byte and every
	// byte after it. With SO_OOBINLINE on, tcp_inq counts up to rcv_nxt.
	// That size is read first: bytes arriving between the two reads only
	// make the second larger, so a smaller second one means a mark.
	oobInline, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_OOBINLINE)
	if err != nil {
		return nil, fail("SO_OOBINLINE", "getsockopt", err)
	}
	inqAll := -1
	if oobInline == 0 {
		if inqAll, err = inqInline(fd); err != nil {
			return nil, fail("receive queue size with SO_OOBINLINE", "", err)
		}
	}
	inq, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return nil, fail("SIOCINQ", "ioctl", err)
	}
	if inqAll > inq {
		return nil, fail("receive queue", "", fmt.Errorf("%w: urgent data (MSG_OOB) not read past: the receive queue holds %d bytes, the urgent mark after %d of them; the application must read past the mark (or set SO_OOBINLINE) before the connection can move",
			ErrUnsupportedState, inqAll, inq))
	}
	if outq < 0 || outq > MaxQueueLen || inq < 0 || inq > MaxQueueLen || unsent < 0 || unsent > outq {
		return nil, fail("queue sizes", "", fmt.Errorf("send %d (unsent %d), receive %d: beyond %d bytes or inconsistent", outq, unsent, inq, MaxQueueLen))
	}
	d.Unsent = uint32(unsent)

	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fail("local address", "getsockname", err)
	}
	pa, err := unix.Getpeername(fd)
	if err != nil {
		return nil, fail("peer address", "getpeername", err)
	}
	var ok1, ok2 bool
	d.Local, ok1 = addrPort(sa)
	d.Remote, ok2 = addrPort(pa)
	if !ok1 || !ok2 {
		return nil, fail("addresses", "", fmt.Errorf("not an IP socket"))
	}

	mss, err := unix.GetsockoptInt(fd, unix.SOL_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return nil, fail("TCP_MAXSEG", "getsockopt", err)
	}
	d.MSS = uint16(mss)
	d.Options = Options(info.options) & optsKnown
	if d.Options&OptWindowScale != 0 {
		d.SndWscale, d.RcvWscale = info.sndWscale, info.rcvWscale
	}
	if d.Options&OptTimestamps != 0 {
		ts, err := unix.GetsockoptInt(fd, unix.SOL_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return nil, fail("TCP_TIMESTAMP", "getsockopt", err)
		}
		d.Timestamp = uint32(ts)
	}
	if d.Window, err = getWindow(fd); err != nil {
		return nil, fail("TCP_REPAIR_WINDOW", "getsockopt", err)
	}
	snd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return nil, fail("SO_SNDBUF", "getsockopt", err)
	}
	rcv, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return nil, fail("SO_RCVBUF", "getsockopt", err)
	}
	d.SndBuf, d.RcvBuf = uint32(snd), uint32(rcv)

	if d.RecvSeq, d.RecvQueue, err = dumpQueue(fd, tcpRecvQueue, inq); err != nil {
		return nil, fail("receive queue", "", err)
	}
	// A FIN that landed after the state was read and before TCP_QUEUE_SEQ
	// is counted in RecvSeq, and the restored socket, ESTABLISHED, would
	// never report EOF. SIOCINQ takes the socket lock, so the segment whose
	// rcv_nxt TCP_QUEUE_SEQ saw has been processed whole (tcp_fin
	// included) when it returns; TCP_INFO reads the state after it.
	if _, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err != nil {
		return nil, fail("SIOCINQ", "ioctl", err)
	}
	if info, err = getTCPInfoHead(fd); err != nil {
		return nil, fail("TCP_INFO", "getsockopt", err)
	}
	if st := State(info.state); st != StateEstablished {
		return nil, fail("state", "", fmt.Errorf("%w: %v once the receive queue was read (the peer closed during the dump; only ESTABLISHED)", ErrUnsupportedState, st))
	}
	if d.SendSeq, d.SendQueue, err = dumpQueue(fd, tcpSendQueue, outq); err != nil {
		return nil, fail("send queue", "", err)
	}
	return d, nil
}

// dumpTries bounds how often DumpFD reads a socket whose queues changed
// under the dump.
const dumpTries = 8

// ErrQueueChanged is wrapped by DumpFD's error when a queue did not hold
// the bytes its size said in any of dumpTries reads: the peer's segments
// kept arriving. The socket is out of repair mode again and unharmed.
var ErrQueueChanged = errors.New("the queue changed during the dump (the peer's segments still reach the socket)")

// beforePeek, when set (tests), runs in dumpQueue before the peek.
var beforePeek func(queue int)

// beforeQueueSeq, when set (tests), runs in dumpQueue before
// TCP_QUEUE_SEQ: after the queue sizes were read.
var beforeQueueSeq func(fd, queue int)

// inqInline reads SIOCINQ with SO_OOBINLINE on, then turns it off again.
// Meanwhile the flag steers only reads (none runs in repair mode but the
// dump's) and a new urgent pointer over an unread old one
// (tcp_check_urg), which the dump refuses anyway.
func inqInline(fd int) (int, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_OOBINLINE, 1); err != nil {
		return 0, fmt.Errorf("SO_OOBINLINE on: setsockopt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if oerr := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_OOBINLINE, 0); oerr != nil {
		return 0, fmt.Errorf("SO_OOBINLINE off: setsockopt: %w", oerr)
	}
	if err != nil {
		return 0, fmt.Errorf("SIOCINQ: ioctl: %w", err)
	}
	return n, nil
}

// dumpQueue selects queue, reads its TCP_QUEUE_SEQ and peeks its n bytes.
// It asks for one byte more than n, as libsoccr does, to be sure the
// queue holds exactly n.
func dumpQueue(fd, queue, n int) (uint32, []byte, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return 0, nil, fmt.Errorf("TCP_REPAIR_QUEUE: setsockopt: %w", err)
	}
	if beforeQueueSeq != nil {
		beforeQueueSeq(fd, queue)
	}
	seq, err := unix.GetsockoptInt(fd, unix.SOL_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, nil, fmt.Errorf("TCP_QUEUE_SEQ: getsockopt: %w", err)
	}
	if n == 0 {
		return uint32(seq), nil, nil
	}
	if beforePeek != nil {
		beforePeek(queue)
	}
	buf := make([]byte, n+1)
	got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, nil, fmt.Errorf("recv MSG_PEEK: %w", err)
	}
	if got != n {
		return 0, nil, fmt.Errorf("recv MSG_PEEK: %d bytes, want %d: %w", got, n, ErrQueueChanged)
	}
	return uint32(seq), buf[:n:n], nil
}

// SocketState reads c's TCP state (TCP_INFO), which tells a caller
// whether DumpConn can take it (StateEstablished) or whether a closed
// socket has finished its exchange.
func SocketState(c *net.TCPConn) (State, error) {
	var st State
	err := control(c, "state", StepDumpQueues, func(fd int) error {
		info, err := getTCPInfoHead(fd)
		st = State(info.state)
		return err
	})
	return st, err
}

// CloseSilently closes c in repair mode (turning it on if a dump has not),
// so the kernel drops the connection without a FIN or an RST.
func CloseSilently(c *net.TCPConn, opts ...Option) error {
	cfg := newConfig(opts)
	t := cfg.timer()
	err := control(c, "close", StepClose, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
			return &StepError{Op: "close", Step: StepClose, What: "TCP_REPAIR on", Call: "setsockopt", Err: err}
		}
		return nil
	})
	if err != nil {
		t.done(StepClose)
		return err
	}
	if err := c.Close(); err != nil {
		t.done(StepClose)
		return &StepError{Op: "close", Step: StepClose, What: "close", Call: "close", Err: err}
	}
	t.done(StepClose)
	return nil
}

// CloseSilentlyFD is CloseSilently for a raw descriptor.
func CloseSilentlyFD(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return &StepError{Op: "close", Step: StepClose, What: "TCP_REPAIR on", Call: "setsockopt", Err: err}
	}
	if err := unix.Close(fd); err != nil {
		return &StepError{Op: "close", Step: StepClose, What: "close", Call: "close", Err: err}
	}
	return nil
}

// Resume turns repair mode off on a dumped socket that is to carry on
// where it is (the migration was called off). The kernel sends a window
// probe, so the peer's answer brings the socket up to date.
func Resume(c *net.TCPConn) error {
	return control(c, "resume", StepRepairOff, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
			return &StepError{Op: "resume", Step: StepRepairOff, What: "TCP_REPAIR_QUEUE", Call: "setsockopt", Err: err}
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
			return &StepError{Op: "resume", Step: StepRepairOff, What: "TCP_REPAIR off", Call: "setsockopt", Err: err}
		}
		return nil
	})
}

// control runs fn on c's descriptor.
func control(c *net.TCPConn, op string, step Step, fn func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return &StepError{Op: op, Step: step, What: "descriptor", Call: "SyscallConn", Err: err}
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return &StepError{Op: op, Step: step, What: "descriptor", Call: "Control", Err: err}
	}
	return ferr
}
