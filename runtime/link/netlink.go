package link

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// rtnl is a route netlink socket opened in the namespace of the thread
// that created it. Keeping it for the endpoint's lifetime lets Close
// detach the XDP program from any goroutine, even one whose thread is in
// another network namespace (tests open endpoints in several).
type rtnl struct {
	fd  int
	seq atomic.Uint32
}

func openRtnl() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open route netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind route netlink socket: %w", err)
	}
	// A bounded receive timeout so a kernel that never acks cannot hang
	// Close (the failure mode of asavie/xdp's Detach).
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set route netlink timeout: %w", err)
	}
	return &rtnl{fd: fd}, nil
}

func (r *rtnl) close() { unix.Close(r.fd) }

// setXDP attaches program fd progFD to ifindex with flags, or detaches
// the program attached in the mode named by flags when progFD is -1. The
// returned error is the kernel's errno, so callers can test errors.Is.
func (r *rtnl) setXDP(ifindex, progFD int, flags uint32) error {
	const (
		nlmsgHdrLen  = 16
		ifinfoLen    = 16
		rtaHdrLen    = 4
		iflaXDP      = 43 // IFLA_XDP
		iflaXDPFd    = 1  // IFLA_XDP_FD
		iflaXDPFlags = 3  // IFLA_XDP_FLAGS
	)
	attrLen := rtaHdrLen + (rtaHdrLen + 4) + (rtaHdrLen + 4)
	msg := make([]byte, nlmsgHdrLen+ifinfoLen+attrLen)
	ne := binary.NativeEndian
	seq := r.seq.Add(1)
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], unix.RTM_SETLINK)
	ne.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:], seq)
	// ifinfomsg: family, pad, type, index, flags, change.
	msg[16] = unix.AF_UNSPEC
	ne.PutUint32(msg[20:], uint32(int32(ifindex)))
	a := msg[nlmsgHdrLen+ifinfoLen:]
	ne.PutUint16(a[0:], uint16(attrLen))
	ne.PutUint16(a[2:], iflaXDP|unix.NLA_F_NESTED)
	ne.PutUint16(a[4:], rtaHdrLen+4)
	ne.PutUint16(a[6:], iflaXDPFd)
	ne.PutUint32(a[8:], uint32(int32(progFD)))
	ne.PutUint16(a[12:], rtaHdrLen+4)
	ne.PutUint16(a[14:], iflaXDPFlags)
	ne.PutUint32(a[16:], flags)

	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send RTM_SETLINK: %w", err)
	}
	buf := make([]byte, 8192)
	// Skip anything that is not the ack for this request (bounded: the
	// socket subscribes to no groups, so only replies arrive).
	for range 16 {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			return fmt.Errorf("read RTM_SETLINK ack: %w", err)
		}
		if found, err := parseAck(buf[:n], seq); found || err != nil {
			return err
		}
	}
	return fmt.Errorf("read RTM_SETLINK ack: no ack for request %d", seq)
}

// parseAck looks through one datagram of netlink messages for the
// NLMSG_ERROR that acknowledges request seq. found reports whether it was
// there; err is the kernel's errno (nil for success) or a malformed
// message.
func parseAck(b []byte, seq uint32) (found bool, err error) {
	const nlmsgHdrLen = 16
	ne := binary.NativeEndian
	for len(b) >= nlmsgHdrLen {
		l := int(ne.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("read RTM_SETLINK ack: malformed %d-byte netlink message in %d bytes", l, len(b))
		}
		typ, mseq := ne.Uint16(b[4:]), ne.Uint32(b[8:])
		if typ == unix.NLMSG_ERROR && mseq == seq {
			if l < nlmsgHdrLen+4 {
				return true, fmt.Errorf("read RTM_SETLINK ack: %d-byte error message, want at least %d", l, nlmsgHdrLen+4)
			}
			if code := int32(ne.Uint32(b[nlmsgHdrLen:])); code != 0 {
				return true, unix.Errno(-code)
			}
			return true, nil
		}
		step := (l + 3) &^ 3
		if step >= len(b) {
			break
		}
		b = b[step:]
	}
	return false, nil
}
