//go:build linux

package repair

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Constants golang.org/x/sys/unix (v0.31.0) does not define.
const (
	// TCP_REPAIR_QUEUE values, the anonymous enum after struct
	// tcp_repair_opt in include/uapi/linux/tcp.h.
	tcpNoQueue   = 0 // TCP_NO_QUEUE
	tcpRecvQueue = 1 // TCP_RECV_QUEUE
	tcpSendQueue = 2 // TCP_SEND_QUEUE

	// tcpi_options bits, TCPI_OPT_* in include/uapi/linux/tcp.h.
	tcpiOptTimestamps = 1 // TCPI_OPT_TIMESTAMPS
	tcpiOptSACK       = 2 // TCPI_OPT_SACK
	tcpiOptWscale     = 4 // TCPI_OPT_WSCALE

	// sizeof(struct tcp_repair_window), include/uapi/linux/tcp.h: five
	// __u32 fields.
	sizeofTCPRepairWindow = 20
)

// tcp_info's first eight bytes (include/uapi/linux/tcp.h): state, ca_state,
// retransmits, probes, backoff, options, then the bitfield byte
// snd_wscale:4, rcv_wscale:4. unix.TCPInfo skips that byte as padding, so
// the prefix is read raw. The kernel copies min(len, sizeof) bytes.
const tcpInfoPrefix = 8

type tcpInfoHead struct {
	state     uint8
	options   uint8
	sndWscale uint8
	rcvWscale uint8
}

// bigEndian: C bitfields fill a byte from the low bits on little-endian
// targets and from the high bits on big-endian ones.
var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

func getTCPInfoHead(fd int) (tcpInfoHead, error) {
	var b [tcpInfoPrefix]byte
	if _, err := getsockoptBytes(fd, unix.SOL_TCP, unix.TCP_INFO, b[:]); err != nil {
		return tcpInfoHead{}, err
	}
	h := tcpInfoHead{state: b[0], options: b[5]}
	lo, hi := b[6]&0x0f, b[6]>>4
	if bigEndian {
		lo, hi = hi, lo
	}
	h.sndWscale, h.rcvWscale = lo, hi
	return h, nil
}

func getsockoptBytes(fd, level, opt int, buf []byte) (int, error) {
	l := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, e
	}
	return int(l), nil
}

func setsockoptBytes(fd, level, opt int, buf []byte) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func getWindow(fd int) (Window, error) {
	var b [sizeofTCPRepairWindow]byte
	n, err := getsockoptBytes(fd, unix.SOL_TCP, unix.TCP_REPAIR_WINDOW, b[:])
	if err != nil {
		return Window{}, err
	}
	if n != len(b) {
		return Window{}, unix.EINVAL
	}
	ne := binary.NativeEndian
	return Window{
		SndWl1:    ne.Uint32(b[0:]),
		SndWnd:    ne.Uint32(b[4:]),
		MaxWindow: ne.Uint32(b[8:]),
		RcvWnd:    ne.Uint32(b[12:]),
		RcvWup:    ne.Uint32(b[16:]),
	}, nil
}

func setWindow(fd int, w Window) error {
	var b [sizeofTCPRepairWindow]byte
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], w.SndWl1)
	ne.PutUint32(b[4:], w.SndWnd)
	ne.PutUint32(b[8:], w.MaxWindow)
	ne.PutUint32(b[12:], w.RcvWnd)
	ne.PutUint32(b[16:], w.RcvWup)
	return setsockoptBytes(fd, unix.SOL_TCP, unix.TCP_REPAIR_WINDOW, b[:])
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

// addrPort converts a socket address; IPv4-mapped IPv6 addresses (a
// dual-stack listener's accepted sockets) become plain IPv4, so the
// connection can be rebuilt on an AF_INET socket.
func addrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}
