//go:build linux

package repair

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// refillChunk is the largest write Restore makes into a queue in repair
// mode. The kernel builds one skb per write into the receive queue; when
// it refuses one (ENOMEM), the chunk is halved down to minRefillChunk, as
// libsoccr does.
const (
	refillChunk    = 64 << 10
	minRefillChunk = 1 << 10
)

// Restore rebuilds d's connection on a new socket bound to local, an
// address of this host's own (the zero AddrPort means d.Local), and
// returns it ready for use: the peer sees the same connection carry on.
// The steps follow libsoccr (see the package documentation). d is
// validated before any socket exists; on a later failure the half-built
// socket is closed in repair mode, so nothing leaves it and no socket
// stays behind, and the error is a *StepError naming the step and the
// errno.
func Restore(d *Dump, local netip.AddrPort, opts ...Option) (*net.TCPConn, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if !local.IsValid() {
		local = d.Local
	}
	if local.Addr().Is4() != d.Remote.Addr().Is4() || local.Addr().Is4In6() {
		return nil, badField("local", "%v is not of the peer %v's family", local, d.Remote)
	}
	if local.Port() == 0 || local.Addr().IsUnspecified() {
		return nil, badField("local", "%v: need an address and a port", local)
	}
	cfg := newConfig(opts)
	r := &restorer{d: d, cfg: &cfg, t: cfg.timer(), fd: -1}
	c, err := r.run(local)
	if err != nil {
		return nil, err
	}
	return c, nil
}

type restorer struct {
	d    *Dump
	cfg  *config
	t    timer
	step Step
	fd   int
}

// fail ends the current step, tears the socket down and describes the
// failure.
func (r *restorer) fail(what, call string, err error) error {
	r.t.done(r.step)
	if r.fd >= 0 {
		// Repair mode first (it may be off already, or never have been
		// turned on): a close in repair mode sends neither FIN nor RST.
		unix.SetsockoptInt(r.fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
		unix.Close(r.fd)
		r.fd = -1
	}
	return &StepError{Op: "restore", Step: r.step, What: what, Call: call, Err: err}
}

func (r *restorer) next(s Step) {
	if r.step != "" {
		r.t.done(r.step)
	}
	r.step = s
}

func (r *restorer) run(local netip.AddrPort) (*net.TCPConn, error) {
	d := r.d
	r.next(StepBind)
	family, ipLevel, freeBind, transparent := unix.AF_INET, unix.SOL_IP, unix.IP_FREEBIND, unix.IP_TRANSPARENT
	if !local.Addr().Is4() {
		family, ipLevel, freeBind, transparent = unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_FREEBIND, unix.IPV6_TRANSPARENT
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, r.fail("socket", "socket", err)
	}
	r.fd = fd
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return nil, r.fail("TCP_REPAIR on", "setsockopt", err)
	}
	// The queues must fit the new socket's buffers: a repair-mode write
	// past them fails (ENOMEM for the receive queue, EAGAIN for the send
	// queue). The origin's sizes are carried over, raised to hold twice
	// the queued bytes for the kernel's per-skb overhead.
	if err := raiseBuf(fd, unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, max(d.SndBuf, bufFor(len(d.SendQueue)))); err != nil {
		return nil, r.fail("SO_SNDBUFFORCE", "setsockopt", err)
	}
	if err := raiseBuf(fd, unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, max(d.RcvBuf, bufFor(len(d.RecvQueue)))); err != nil {
		return nil, r.fail("SO_RCVBUFFORCE", "setsockopt", err)
	}
	if r.cfg.transient && !r.cfg.freeBind {
		if err := unix.SetsockoptInt(fd, ipLevel, transparent, 1); err != nil {
			return nil, r.fail("IP_TRANSPARENT", "setsockopt", err)
		}
	}
	if r.cfg.freeBind {
		if err := unix.SetsockoptInt(fd, ipLevel, freeBind, 1); err != nil {
			return nil, r.fail("IP_FREEBIND", "setsockopt", err)
		}
		if err := unix.SetsockoptInt(fd, ipLevel, transparent, 1); err != nil {
			return nil, r.fail("IP_TRANSPARENT", "setsockopt", err)
		}
	}
	// Repair mode sets SO_REUSE-like forced reuse: the bind itself never
	// fails for a port in use; a clash with a live connection's four
	// tuple is refused at connect.
	if err := unix.Bind(fd, sockaddr(local)); err != nil {
		return nil, r.fail("bind "+local.String(), "bind", err)
	}

	r.next(StepQueueSeq)
	if err := setQueueSeq(fd, tcpRecvQueue, d.RecvSeq-uint32(len(d.RecvQueue))); err != nil {
		return nil, r.fail("receive queue", "", err)
	}
	if err := setQueueSeq(fd, tcpSendQueue, d.SendSeq-uint32(len(d.SendQueue))); err != nil {
		return nil, r.fail("send queue", "", err)
	}

	r.next(StepConnect)
	if d.Options&OptTimestamps != 0 {
		// Before the connect, which makes the socket reachable: no
		// segment may leave it on the raw clock. A little ahead, too:
		// the last TSval on the wire may be past the dump's clock
		// reading (segments are stamped at their departure time, in
		// ms), and a peer drops, by PAWS, segments whose TSval went back
		// more than 1 ms. A clock a few ms ahead is still a valid TSval
		// clock (RFC 7323 only asks that it not go back).
		if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_TIMESTAMP, int(int32(d.Timestamp+TimestampSlack))); err != nil {
			return nil, r.fail("TCP_TIMESTAMP", "setsockopt", err)
		}
	}
	// The repair-mode connect sizes the segments from the MSS clamp it
	// knows then, the 536-byte default: TCP_REPAIR_OPTIONS' MSS comes
	// later and does not resize them, and the restored socket would send
	// 524-byte segments for good. The user MSS sets the clamp first; over
	// the 32767 it takes (a 64 KB MTU, as loopback's), segments stay at
	// that size.
	if d.MSS != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_MAXSEG, int(min(d.MSS, maxUserMSS))); err != nil {
			return nil, r.fail("TCP_MAXSEG", "setsockopt", err)
		}
	}
	if err := unix.Connect(fd, sockaddr(d.Remote)); err != nil && err != unix.EINPROGRESS {
		return nil, r.fail("connect "+d.Remote.String(), "connect", err)
	}

	r.next(StepOptions)
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.SOL_TCP, unix.TCP_REPAIR_OPTIONS, repairOptions(d)); err != nil {
		return nil, r.fail("TCP_REPAIR_OPTIONS", "setsockopt", err)
	}

	r.next(StepRefill)
	if err := refill(fd, tcpRecvQueue, d.RecvQueue); err != nil {
		return nil, r.fail("refill receive queue", "", err)
	}
	// The receive buffer goes back to the origin's size before the first
	// segment leaves (TCP_REPAIR off sends one): a window computed from
	// the raised buffer would promise the peer room the socket no longer
	// has once it is lowered, and Linux never takes a promised edge back,
	// so the peer's data up to it would be dropped for memory and resent.
	if bufFor(len(d.RecvQueue)) > d.RcvBuf && d.RcvBuf > 0 {
		// It raised the same buffer just before: a failure here would
		// leave the larger one, which costs memory and resends, not the
		// connection.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, int(d.RcvBuf/2)) //nolint:errcheck // see above
	}
	sent := d.SendQueue[:len(d.SendQueue)-int(d.Unsent)]
	if err := refill(fd, tcpSendQueue, sent); err != nil {
		return nil, r.fail("refill send queue", "", err)
	}

	r.next(StepWindow)
	if err := setWindow(fd, restoreWindow(d)); err != nil {
		return nil, r.fail("TCP_REPAIR_WINDOW", "setsockopt", err)
	}

	r.next(StepRepairOff)
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return nil, r.fail("TCP_REPAIR off", "setsockopt", err)
	}

	r.next(StepUnsent)
	f := os.NewFile(uintptr(fd), "repair:"+d.Remote.String())
	nc, err := net.FileConn(f) // a duplicate of fd, registered with the poller
	if err != nil {
		// f owns fd now: close through it, never twice.
		unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
		f.Close()
		r.fd = -1
		return nil, r.fail("net.FileConn", "", err)
	}
	r.fd = -1
	f.Close()
	c := nc.(*net.TCPConn) // FileConn returns *TCPConn for a TCP socket
	if err := writeUnsent(c, d.SendQueue[len(sent):], r.cfg.unsentTimeout); err != nil {
		r.t.done(r.step)
		control(c, "restore", StepUnsent, func(fd int) error {
			return unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
		})
		c.Close()
		return nil, &StepError{Op: "restore", Step: StepUnsent, What: "unsent bytes", Call: "write", Err: err}
	}
	// The send buffer was raised to take the queue; left there (and
	// locked, as any SO_SNDBUF is) it would let more queue at each
	// migration. The origin's size comes back once the unsent bytes are in
	// (the receive buffer's came back before TCP_REPAIR off).
	if bufFor(len(d.SendQueue)) > d.SndBuf && d.SndBuf > 0 {
		control(c, "restore", StepUnsent, func(fd int) error { //nolint:errcheck // a larger buffer only costs memory
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, int(d.SndBuf/2))
		})
	}
	if r.cfg.transient && !r.cfg.freeBind {
		// Whole now: the peer's segments may reach it.
		if err := control(c, "restore", StepUnsent, func(fd int) error {
			return unix.SetsockoptInt(fd, ipLevel, transparent, 0)
		}); err != nil {
			r.t.done(StepUnsent)
			control(c, "restore", StepUnsent, func(fd int) error { //nolint:errcheck // closing anyway
				return unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
			})
			c.Close()
			return nil, &StepError{Op: "restore", Step: StepUnsent, What: "IP_TRANSPARENT off", Call: "setsockopt", Err: err}
		}
	}
	r.t.done(StepUnsent)
	return c, nil
}

// TimestampSlack is how far ahead, in ms, Restore starts the TSval clock:
// a segment the origin sends for the connection after the dump needs a
// TSval this much ahead of its own clock to pass the peer's PAWS.
const TimestampSlack = 4

func bufFor(n int) uint32 { return uint32(min(2*n, math.MaxInt32)) }

// raiseBuf raises a socket buffer to want (the doubled size getsockopt
// reports) when it is smaller. The FORCE variants pass the net.core
// limits, which a host's defaults may keep below what the origin had.
func raiseBuf(fd, get, force int, want uint32) error {
	cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, get)
	if err != nil {
		return err
	}
	if want <= uint32(cur) {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, int(min(want/2, math.MaxInt32/2)))
}

func setQueueSeq(fd, queue int, seq uint32) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: setsockopt: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_QUEUE_SEQ, int(int32(seq))); err != nil {
		return fmt.Errorf("TCP_QUEUE_SEQ: setsockopt: %w", err)
	}
	return nil
}

// repairOptions is libsoccr's TCP_REPAIR_OPTIONS list: SACK permitted,
// window scale (snd | rcv<<16), timestamps, and the MSS clamp.
func repairOptions(d *Dump) []unix.TCPRepairOpt {
	o := make([]unix.TCPRepairOpt, 0, 4)
	if d.Options&OptSACK != 0 {
		o = append(o, unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED})
	}
	if d.Options&OptWindowScale != 0 {
		o = append(o, unix.TCPRepairOpt{Code: unix.TCPOPT_WINDOW, Val: uint32(d.SndWscale) | uint32(d.RcvWscale)<<16})
	}
	if d.Options&OptTimestamps != 0 {
		o = append(o, unix.TCPRepairOpt{Code: unix.TCPOPT_TIMESTAMP})
	}
	return append(o, unix.TCPRepairOpt{Code: unix.TCPOPT_MAXSEG, Val: uint32(d.MSS)})
}

// refill writes b into queue in repair mode: into the receive queue as if
// received, into the send queue as if sent and not yet acknowledged.
func refill(fd, queue int, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: setsockopt: %w", err)
	}
	chunk := refillChunk
	for len(b) > 0 {
		n, err := unix.Write(fd, b[:min(chunk, len(b))])
		if err != nil || n <= 0 {
			if chunk > minRefillChunk {
				chunk /= 2
				continue
			}
			if err == nil {
				err = fmt.Errorf("wrote nothing")
			}
			return fmt.Errorf("write (%d bytes left, chunk %d): %w", len(b), chunk, err)
		}
		b = b[n:]
	}
	return nil
}

// writeUnsent writes the bytes the origin never transmitted, as ordinary
// data now that repair mode is off.
func writeUnsent(c *net.TCPConn, b []byte, timeout time.Duration) error {
	if len(b) == 0 {
		return nil
	}
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	n, err := c.Write(b)
	if err != nil {
		return fmt.Errorf("%d of %d bytes written: %w", n, len(b), err)
	}
	return c.SetWriteDeadline(time.Time{})
}
