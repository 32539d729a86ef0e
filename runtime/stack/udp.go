package stack

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// UDPQueue bounds the datagrams a UDPConn holds unread; more are dropped.
const UDPQueue = 256

var _ net.PacketConn = (*UDPConn)(nil)

type datagram struct {
	from netip.AddrPort
	data []byte
}

// UDPConn is a UDP port of the stack used as a net.PacketConn.
type UDPConn struct {
	s      *Stack
	port   uint16
	queue  []datagram
	closed bool
	wake   waker

	readDeadline time.Time
}

// ListenUDP opens port for a UDPConn. The port is shared with HandleUDP:
// each port has one owner.
func (s *Stack) ListenUDP(port uint16) (*UDPConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("stack: listen on UDP port %d: %w", port, net.ErrClosed)
	}
	if port == 0 {
		return nil, fmt.Errorf("%w: UDP port 0", ErrBadAddr)
	}
	if s.udp[port] != nil || s.udpConns[port] != nil {
		return nil, fmt.Errorf("%w: UDP port %d already has an owner", ErrPortInUse, port)
	}
	u := &UDPConn{s: s, port: port}
	s.udpConns[port] = u
	return u, nil
}

// deliver queues a datagram; called with the stack lock held.
func (u *UDPConn) deliver(from netip.AddrPort, p []byte) {
	if len(u.queue) >= UDPQueue {
		u.s.drop(DropUDPQueueFull)
		return
	}
	u.queue = append(u.queue, datagram{from: from, data: append([]byte(nil), p...)})
	u.s.signal(&u.wake)
}

// ReadFromUDPAddrPort waits for a datagram, copies it into p (truncating
// like a socket) and returns its length and sender.
func (u *UDPConn) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if u.closed || s.closed {
			return 0, netip.AddrPort{}, u.opError("read", net.ErrClosed)
		}
		if expired(u.readDeadline) {
			return 0, netip.AddrPort{}, u.opError("read", os.ErrDeadlineExceeded)
		}
		if len(u.queue) > 0 {
			d := u.queue[0]
			u.queue[0] = datagram{}
			u.queue = u.queue[1:]
			return copy(p, d.data), d.from, nil
		}
		if err := u.wake.wait(s, u.readDeadline, nil); err != nil {
			return 0, netip.AddrPort{}, u.opError("read", err)
		}
	}
}

// ReadFrom is ReadFromUDPAddrPort with a *net.UDPAddr.
func (u *UDPConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := u.ReadFromUDPAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteToUDPAddrPort sends p to addr. It never blocks.
func (u *UDPConn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	u.s.mu.Lock()
	closed := u.closed
	u.s.mu.Unlock()
	if closed {
		return 0, u.opError("write", net.ErrClosed)
	}
	if err := u.s.SendUDP(netip.AddrPortFrom(u.s.addr, u.port), addr, p); err != nil {
		return 0, u.opError("write", err)
	}
	return len(p), nil
}

// WriteTo sends p to addr, which must be a *net.UDPAddr with an IPv4
// address.
func (u *UDPConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, u.opError("write", fmt.Errorf("%w: %T %v is not a *net.UDPAddr", ErrBadAddr, addr, addr))
	}
	return u.WriteToUDPAddrPort(p, ua.AddrPort())
}

// Close releases the port and wakes blocked readers.
func (u *UDPConn) Close() error {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.closed {
		return u.opError("close", net.ErrClosed)
	}
	u.closed = true
	if s.udpConns[u.port] == u {
		delete(s.udpConns, u.port)
	}
	u.queue = nil
	u.wake.signal()
	return nil
}

// LocalAddr is our address and the port.
func (u *UDPConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(netip.AddrPortFrom(u.s.addr, u.port))
}

// SetDeadline sets the read deadline (writes never block).
func (u *UDPConn) SetDeadline(t time.Time) error { return u.SetReadDeadline(t) }

// SetReadDeadline sets the deadline for reads; zero means none.
func (u *UDPConn) SetReadDeadline(t time.Time) error {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	u.readDeadline = t
	u.wake.signal()
	return nil
}

// SetWriteDeadline is accepted for net.PacketConn; writes never block.
func (u *UDPConn) SetWriteDeadline(time.Time) error { return nil }

func (u *UDPConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: u.LocalAddr(), Err: err}
}

// Ping sends one ICMP echo request carrying payload to dst and waits for
// the matching reply, ctx's end or the stack's Close. It returns the
// round-trip time measured on the caller's clock; it needs Run.
func (s *Stack) Ping(ctx context.Context, dst netip.Addr, payload []byte) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("stack: ping %v: %w", dst, net.ErrClosed)
	}
	if len(payload) > s.mtu-IPv4MinHeaderLen-icmpHeaderLen {
		return 0, fmt.Errorf("%w: %d-byte ping payload, at most %d fit", ErrTooBig, len(payload), s.mtu-IPv4MinHeaderLen-icmpHeaderLen)
	}
	s.pingSeq++
	seq := s.pingSeq
	w := &pingWait{dst: dst}
	s.pings[seq] = w
	defer delete(s.pings, seq)
	s.startFrame()
	off := len(s.tx)
	s.tx = append(s.tx, icmpEchoRequest, 0, 0, 0, 0, 0, 0, 0)
	s.tx = append(s.tx, payload...)
	m := s.tx[off:]
	binary.BigEndian.PutUint16(m[4:6], s.pingID)
	binary.BigEndian.PutUint16(m[6:8], seq)
	binary.BigEndian.PutUint16(m[2:4], checksum(m, 0))
	start := time.Now()
	if err := s.sendIPv4(s.nowLocked(), dst, protoICMP); err != nil {
		return 0, fmt.Errorf("stack: ping %v: %w", dst, err)
	}
	s.ctr.ICMPEchoRequestsOut++
	for !w.done {
		if err := w.wake.wait(s, time.Time{}, ctx); err != nil {
			return 0, fmt.Errorf("stack: ping %v seq %d: %w", dst, seq, err)
		}
		if s.closed {
			return 0, fmt.Errorf("stack: ping %v: %w", dst, net.ErrClosed)
		}
	}
	return time.Since(start), nil
}

type pingWait struct {
	dst  netip.Addr // the reply must come from here: an id and sequence are easy to guess
	done bool
	wake waker
}

// inputEchoReply completes a Ping waiting for id and seq from src.
func (s *Stack) inputEchoReply(_ tcp.Time, src netip.Addr, m []byte) {
	id, seq := binary.BigEndian.Uint16(m[4:6]), binary.BigEndian.Uint16(m[6:8])
	w := s.pings[seq]
	if id != s.pingID || w == nil || w.dst != src {
		s.drop(DropICMPType)
		return
	}
	s.ctr.ICMPEchoRepliesIn++
	w.done = true
	s.signal(&w.wake)
}
