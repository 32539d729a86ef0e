// Package repair dumps a live Linux TCP socket and rebuilds it on another
// host with TCP_REPAIR (Linux 3.11+, CAP_NET_ADMIN), the kernel path of
// migration that Prism and Socket Launcher take and that capygen measures
// its bypass path against.
//
// The order of operations, and its quirks, follow CRIU's libsoccr:
//
//   - Dump: repair mode on, then TCP_INFO (state, options, window
//     scales), the queue lengths (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD for the
//     part of the send queue never sent), TCP_MAXSEG, TCP_TIMESTAMP,
//     TCP_REPAIR_WINDOW, and per queue TCP_REPAIR_QUEUE + TCP_QUEUE_SEQ and
//     a MSG_PEEK of its bytes. The socket stays in repair mode, so closing
//     it afterwards sends neither FIN nor RST (CloseSilently).
//   - Restore: a new socket in repair mode, bound to the new host's own
//     address (IP_FREEBIND), the two queue sequences, connect (no SYN in
//     repair mode), TCP_REPAIR_OPTIONS and TCP_TIMESTAMP, the receive
//     queue and the sent part of the send queue written in repair mode,
//     the unsent part written with repair off (in repair mode it would
//     count as sent and never leave), TCP_REPAIR_WINDOW, repair off.
//
// The caller keeps packets away from the socket between the dump and the
// restore (a switch that holds the flow, a firewall rule, the link down):
// a host without the socket answers a stray segment with RST.
//
// Every error names the step and the errno. A restore that fails closes
// its half-built socket while still in repair mode, so nothing leaves it
// and no stray socket stays. Only ESTABLISHED connections are dumped:
// half-closed states need libsoccr's forged FIN, which this package does
// not send.
package repair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options of TCP_INFO's tcpi_options (include/uapi/linux/tcp.h).
const (
	optTimestamps = 1 // TCPI_OPT_TIMESTAMPS
	optSACK       = 2 // TCPI_OPT_SACK
	optWscale     = 4 // TCPI_OPT_WSCALE
)

// Queues of TCP_REPAIR_QUEUE (include/uapi/linux/tcp.h).
const (
	recvQueue = 1 // TCP_RECV_QUEUE
	sendQueue = 2 // TCP_SEND_QUEUE
)

// tcpEstablished is TCP_ESTABLISHED of include/net/tcp_states.h.
const tcpEstablished = 1

// ErrState marks a socket in a state this package does not move.
var ErrState = errors.New("repair: unsupported TCP state")

// Window is struct tcp_repair_window.
type Window struct {
	SndWl1, SndWnd, MaxWindow, RcvWnd, RcvWup uint32
}

// Dump is what a TCP socket's repair-mode dump holds.
type Dump struct {
	Local, Remote netip.AddrPort
	// SendSeq is the sequence number after the last byte written to the
	// send queue (write_seq) and RecvSeq the next one expected (rcv_nxt).
	SendSeq, RecvSeq uint32
	// SendQueue is every byte not yet acknowledged; its last Unsent
	// bytes were never sent. RecvQueue is received and not yet read.
	SendQueue, RecvQueue []byte
	Unsent               int
	MSS                  uint32
	// Options is tcpi_options; the window scales and the timestamp
	// offset matter only when their option is on.
	Options   uint8
	SndWscale uint8
	RcvWscale uint8
	Timestamp uint32
	Window    Window
	HasWindow bool
}

// Step is one timed step of a dump or a restore, for per-phase records.
type Step string

// Steps, in the order they run.
const (
	StepRepairOn  Step = "repair_on"
	StepDumpState Step = "dump_state"  // TCP_INFO, queue lengths, options, window
	StepDumpQueue Step = "dump_queues" // queue sequences and bytes
	StepBind      Step = "restore_bind"
	StepQueueSeq  Step = "queue_seq"
	StepConnect   Step = "connect"
	StepOptions   Step = "options"
	StepRefill    Step = "refill"
	StepUnsent    Step = "unsent"
	StepWindow    Step = "window"
	StepRepairOff Step = "repair_off"
)

// Timer, when set, is told how long each step took.
type Timer func(step Step, d time.Duration)

func (t Timer) since(step Step, start time.Time) time.Time {
	now := time.Now()
	if t != nil {
		t(step, now.Sub(start))
	}
	return now
}

// stepErr names the step and the call that failed.
func stepErr(step Step, call string, err error) error {
	return fmt.Errorf("repair: %s: %s: %w", step, call, err)
}

// DumpConn puts c's socket in repair mode and dumps it. The socket stays in
// repair mode: close it with CloseSilently, or take it out with Resume if
// the migration is abandoned.
func DumpConn(c *net.TCPConn, t Timer) (*Dump, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("repair: dump: %w", err)
	}
	var d *Dump
	var derr error
	if err := rc.Control(func(fd uintptr) { d, derr = DumpFD(int(fd), t) }); err != nil {
		return nil, fmt.Errorf("repair: dump: %w", err)
	}
	return d, derr
}

// DumpFD is DumpConn on a socket descriptor. A dump that fails takes the
// socket out of repair mode again: the connection goes on where it was.
func DumpFD(fd int, t Timer) (d *Dump, err error) {
	start := time.Now()
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return nil, stepErr(StepRepairOn, "setsockopt TCP_REPAIR", err)
	}
	defer func() {
		if err != nil {
			unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF) //nolint:errcheck // the dump's error says more
		}
	}()
	start = t.since(StepRepairOn, start)
	return dumpRepairing(fd, t, start)
}

func dumpRepairing(fd int, t Timer, start time.Time) (*Dump, error) {
	d := &Dump{}
	info, err := getsockopt(fd, unix.TCP_INFO, 256, 8)
	if err != nil {
		return nil, stepErr(StepDumpState, "getsockopt TCP_INFO", err)
	}
	if info[0] != tcpEstablished {
		return nil, fmt.Errorf("%w: TCP state %d; only ESTABLISHED (1) connections are dumped", ErrState, info[0])
	}
	d.Options = info[5]
	d.SndWscale, d.RcvWscale = info[6]&0x0f, info[6]>>4
	if d.Local, d.Remote, err = addrs(fd); err != nil {
		return nil, stepErr(StepDumpState, "getsockname/getpeername", err)
	}
	outq, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	if err != nil {
		return nil, stepErr(StepDumpState, "ioctl SIOCOUTQ", err)
	}
	unsent, err := unix.IoctlGetInt(fd, unix.SIOCOUTQNSD)
	if err != nil {
		return nil, stepErr(StepDumpState, "ioctl SIOCOUTQNSD", err)
	}
	inq, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	if err != nil {
		return nil, stepErr(StepDumpState, "ioctl SIOCINQ", err)
	}
	mss, err := unix.GetsockoptInt(fd, unix.SOL_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return nil, stepErr(StepDumpState, "getsockopt TCP_MAXSEG", err)
	}
	d.MSS = uint32(mss)
	if d.Options&optTimestamps != 0 {
		ts, err := unix.GetsockoptInt(fd, unix.SOL_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return nil, stepErr(StepDumpState, "getsockopt TCP_TIMESTAMP", err)
		}
		d.Timestamp = uint32(ts)
	}
	if b, err := getsockopt(fd, unix.TCP_REPAIR_WINDOW, 20, 20); err == nil {
		d.Window = Window{binary.NativeEndian.Uint32(b), binary.NativeEndian.Uint32(b[4:]), binary.NativeEndian.Uint32(b[8:]),
			binary.NativeEndian.Uint32(b[12:]), binary.NativeEndian.Uint32(b[16:])}
		d.HasWindow = true
	} else if err != nil && !errors.Is(err, unix.ENOPROTOOPT) {
		return nil, stepErr(StepDumpState, "getsockopt TCP_REPAIR_WINDOW", err)
	}
	start = t.since(StepDumpState, start)
	if d.RecvSeq, d.RecvQueue, err = queue(fd, recvQueue, inq); err != nil {
		return nil, err
	}
	if d.SendSeq, d.SendQueue, err = queue(fd, sendQueue, outq); err != nil {
		return nil, err
	}
	if unsent < 0 || unsent > outq {
		return nil, stepErr(StepDumpState, "ioctl SIOCOUTQNSD", fmt.Errorf("%d unsent bytes of a %d-byte send queue", unsent, outq))
	}
	d.Unsent = unsent
	t.since(StepDumpQueue, start)
	return d, nil
}

// getsockopt reads a SOL_TCP option of size bytes (at least min come
// back) as raw bytes: x/sys's string form stops at the first zero byte,
// and TCP_REPAIR_WINDOW wants its exact size.
func getsockopt(fd, opt, size, min int) ([]byte, error) {
	buf := make([]byte, size)
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_TCP, uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return nil, e
	}
	if int(n) < min {
		return nil, fmt.Errorf("%d bytes, want at least %d", n, min)
	}
	return buf[:n], nil
}

func addrs(fd int) (local, remote netip.AddrPort, err error) {
	ls, err := unix.Getsockname(fd)
	if err != nil {
		return local, remote, err
	}
	rs, err := unix.Getpeername(fd)
	if err != nil {
		return local, remote, err
	}
	return sockaddr(ls), sockaddr(rs), nil
}

func sockaddr(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// queue reads a queue's sequence and peeks its n bytes; one byte more is
// asked for, so a queue that grew is noticed.
func queue(fd, which, n int) (uint32, []byte, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR_QUEUE, which); err != nil {
		return 0, nil, stepErr(StepDumpQueue, "setsockopt TCP_REPAIR_QUEUE", err)
	}
	seq, err := unix.GetsockoptInt(fd, unix.SOL_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, nil, stepErr(StepDumpQueue, "getsockopt TCP_QUEUE_SEQ", err)
	}
	if n == 0 {
		return uint32(seq), nil, nil
	}
	buf := make([]byte, n+1)
	got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	if err != nil {
		return 0, nil, stepErr(StepDumpQueue, "recv MSG_PEEK", err)
	}
	if got != n {
		return 0, nil, stepErr(StepDumpQueue, "recv MSG_PEEK", fmt.Errorf("peeked %d bytes of a %d-byte queue", got, n))
	}
	return uint32(seq), buf[:n], nil
}

// CloseSilently closes a socket that DumpConn left in repair mode: the
// kernel forgets it without sending FIN or RST.
func CloseSilently(c *net.TCPConn) error {
	if err := c.SetLinger(0); err != nil {
		return fmt.Errorf("repair: close: %w", err)
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("repair: close: %w", err)
	}
	return nil
}

// Resume takes a dumped socket out of repair mode, for a migration that
// was abandoned: the connection goes on where it was.
func Resume(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("repair: resume: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF)
	}); err != nil {
		return fmt.Errorf("repair: resume: %w", err)
	}
	if serr != nil {
		return stepErr(StepRepairOff, "setsockopt TCP_REPAIR", serr)
	}
	return nil
}

// Restore rebuilds d's connection in the calling thread's network
// namespace, bound to local (the new host's own address for the
// connection, usually d.Local), and returns it as a net.TCPConn. On error
// the half-built socket is closed in repair mode: nothing leaves it.
func Restore(d *Dump, local netip.AddrPort, t Timer) (*net.TCPConn, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	family := unix.AF_INET
	if !local.Addr().Is4() {
		family = unix.AF_INET6
	}
	start := time.Now()
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, stepErr(StepRepairOn, "socket", err)
	}
	if err := restoreFD(fd, d, local, t, start); err != nil {
		unix.Close(fd) // still in repair mode: closing sends nothing
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "repaired "+d.Local.String()+"-"+d.Remote.String())
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("repair: restore: %w", err)
	}
	return c.(*net.TCPConn), nil
}

func restoreFD(fd int, d *Dump, local netip.AddrPort, t Timer, start time.Time) error {
	set := func(step Step, name string, opt, v int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_TCP, opt, v); err != nil {
			return stepErr(step, "setsockopt "+name, err)
		}
		return nil
	}
	if err := set(StepRepairOn, "TCP_REPAIR", unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return err
	}
	start = t.since(StepRepairOn, start)
	// The address may be one this host takes over with the connection.
	if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_FREEBIND, 1); err != nil {
		return stepErr(StepBind, "setsockopt IP_FREEBIND", err)
	}
	if err := unix.Bind(fd, toSockaddr(local)); err != nil {
		return stepErr(StepBind, "bind "+local.String(), err)
	}
	start = t.since(StepBind, start)
	if err := set(StepQueueSeq, "TCP_REPAIR_QUEUE", unix.TCP_REPAIR_QUEUE, recvQueue); err != nil {
		return err
	}
	if err := set(StepQueueSeq, "TCP_QUEUE_SEQ (receive)", unix.TCP_QUEUE_SEQ, int(d.RecvSeq-uint32(len(d.RecvQueue)))); err != nil {
		return err
	}
	if err := set(StepQueueSeq, "TCP_REPAIR_QUEUE", unix.TCP_REPAIR_QUEUE, sendQueue); err != nil {
		return err
	}
	if err := set(StepQueueSeq, "TCP_QUEUE_SEQ (send)", unix.TCP_QUEUE_SEQ, int(d.SendSeq-uint32(len(d.SendQueue)))); err != nil {
		return err
	}
	start = t.since(StepQueueSeq, start)
	if err := unix.Connect(fd, toSockaddr(d.Remote)); err != nil {
		return stepErr(StepConnect, "connect "+d.Remote.String(), err)
	}
	start = t.since(StepConnect, start)
	var opts []byte
	opt := func(code, val uint32) {
		opts = binary.NativeEndian.AppendUint32(opts, code)
		opts = binary.NativeEndian.AppendUint32(opts, val)
	}
	if d.Options&optSACK != 0 {
		opt(unix.TCPOPT_SACK_PERMITTED, 0)
	}
	if d.Options&optWscale != 0 {
		opt(unix.TCPOPT_WINDOW, uint32(d.SndWscale)|uint32(d.RcvWscale)<<16)
	}
	if d.Options&optTimestamps != 0 {
		opt(unix.TCPOPT_TIMESTAMP, 0)
	}
	opt(unix.TCPOPT_MAXSEG, d.MSS)
	if err := unix.SetsockoptString(fd, unix.SOL_TCP, unix.TCP_REPAIR_OPTIONS, string(opts)); err != nil {
		return stepErr(StepOptions, "setsockopt TCP_REPAIR_OPTIONS", err)
	}
	if d.Options&optTimestamps != 0 {
		if err := set(StepOptions, "TCP_TIMESTAMP", unix.TCP_TIMESTAMP, int(d.Timestamp)); err != nil {
			return err
		}
	}
	start = t.since(StepOptions, start)
	if len(d.RecvQueue) > 0 {
		if err := set(StepRefill, "TCP_REPAIR_QUEUE", unix.TCP_REPAIR_QUEUE, recvQueue); err != nil {
			return err
		}
		if err := write(fd, d.RecvQueue); err != nil {
			return stepErr(StepRefill, "send (receive queue)", err)
		}
	}
	sent := d.SendQueue[:len(d.SendQueue)-d.Unsent]
	if len(sent) > 0 {
		if err := set(StepRefill, "TCP_REPAIR_QUEUE", unix.TCP_REPAIR_QUEUE, sendQueue); err != nil {
			return err
		}
		if err := write(fd, sent); err != nil {
			return stepErr(StepRefill, "send (send queue)", err)
		}
	}
	start = t.since(StepRefill, start)
	if d.Unsent > 0 {
		// Written in repair mode, these bytes would count as sent and
		// wait for an ACK that never comes: they go in with repair off.
		if err := set(StepUnsent, "TCP_REPAIR off", unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
			return err
		}
		if err := write(fd, d.SendQueue[len(sent):]); err != nil {
			return stepErr(StepUnsent, "send (unsent)", err)
		}
		if err := set(StepUnsent, "TCP_REPAIR on", unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
			return err
		}
		start = t.since(StepUnsent, start)
	}
	if d.HasWindow {
		w := d.Window
		b := make([]byte, 0, 20)
		for _, v := range []uint32{w.SndWl1, w.SndWnd, w.MaxWindow, w.RcvWnd, w.RcvWup} {
			b = binary.NativeEndian.AppendUint32(b, v)
		}
		if err := unix.SetsockoptString(fd, unix.SOL_TCP, unix.TCP_REPAIR_WINDOW, string(b)); err != nil {
			return stepErr(StepWindow, "setsockopt TCP_REPAIR_WINDOW", err)
		}
		start = t.since(StepWindow, start)
	}
	if err := set(StepRepairOff, "TCP_REPAIR off", unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return err
	}
	t.since(StepRepairOff, start)
	return nil
}

// write sends all of b on a blocking socket, halving the chunk when the
// kernel cannot allocate it in one piece (libsoccr: in repair mode the
// receive queue takes one linear skb per send).
func write(fd int, b []byte) error {
	chunk := len(b)
	for len(b) > 0 {
		n, err := unix.Write(fd, b[:min(chunk, len(b))])
		if err != nil || n <= 0 {
			if chunk > 1024 && (err == nil || errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EAGAIN)) {
				chunk /= 2
				continue
			}
			if err == nil {
				err = errors.New("wrote nothing")
			}
			return err
		}
		b = b[n:]
	}
	return nil
}

func toSockaddr(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}
