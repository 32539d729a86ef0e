package link

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/asavie/xdp"
	"golang.org/x/sys/unix"
)

// Reasons AF_XDP cannot start, each distinct so callers (and the CLI) can
// say what to change.
var (
	// ErrPermission: the process lacks CAP_NET_ADMIN, CAP_NET_RAW or
	// CAP_BPF (run as root).
	ErrPermission = errors.New("link: AF_XDP needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (run as root)")
	// ErrNoAFXDP: the kernel was built without AF_XDP (CONFIG_XDP_SOCKETS).
	ErrNoAFXDP = errors.New("link: kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS off)")
	// ErrNoInterface: no interface of that name in this network namespace.
	ErrNoInterface = errors.New("link: no such interface")
	// ErrInterfaceDown: the interface exists but is not up.
	ErrInterfaceDown = errors.New("link: interface is down")
	// ErrMTUTooLarge: the interface MTU does not fit one UMEM frame.
	ErrMTUTooLarge = errors.New("link: interface mtu too large for the xdp frame size")
	// ErrXDPBusy: another XDP program or AF_XDP socket holds the interface
	// queue.
	ErrXDPBusy = errors.New("link: interface queue already has an xdp program or socket")
	// ErrXDPAttach: the kernel refused the XDP program in every mode tried.
	ErrXDPAttach = errors.New("link: cannot attach xdp program")
)

// xdpPacketHeadroom is XDP_PACKET_HEADROOM: in copy mode the kernel puts
// each received frame this far into its UMEM chunk.
const xdpPacketHeadroom = 256

// XDP modes reported by (*XDP).Mode.
const (
	ModeNative  = "native"
	ModeGeneric = "generic"
)

// XDPOptions tunes OpenXDP. The zero value is a good default.
type XDPOptions struct {
	// Queue is the interface receive queue to bind (default 0).
	Queue int
	// Frames is the number of UMEM frames, a power of two >= 16; half
	// receive and half transmit (default 4096).
	Frames int
	// FrameSize is 2048 or 4096 (default 2048, enough for MTU 1500).
	FrameSize int
	// Mode is "" to try native then generic, or ModeNative or ModeGeneric
	// to insist on one.
	Mode string
	// BindRetry bounds how long bind retries EBUSY, which the kernel
	// returns briefly after the previous socket on the queue closed
	// (default 2s).
	BindRetry time.Duration
	// Spin is how long Receive checks the ring before sleeping in poll.
	// A short spin saves the wake-up latency without starving the
	// kernel's softirq on a 2-core machine (default DefaultSpin).
	Spin time.Duration
	// SpinYield yields the processor (runtime.Gosched) at each check of
	// the spin. It suits one receiving goroutine that wakes others, a
	// stack's event loop: a goroutine it woke (a writer the ACKs gave
	// room) waits in its P's run queue, and otherwise runs only once
	// another thread steals it or the spin ends. Measured on the testbed
	// against the same build without it (CAPYRUN_AB, seven runs): bulk
	// download 1.18 times as fast (median); wrk requests/s went from 0.77
	// of the kernel's to 1.08-1.39. It does not suit several endpoints
	// spinning in one process (the switch's ports): they hand the
	// processor to each other, and the ping RTT through the switch rose
	// tenfold.
	SpinYield bool
	// TxWait bounds how long Send waits for a free transmit frame before
	// dropping (default 2ms).
	TxWait time.Duration
	// Offload sends through an AF_PACKET socket with the kernel's
	// segmentation offload instead of the AF_XDP ring: the frames of a
	// burst (Queue, then Flush) that continue one TCP stream leave as one
	// frame of up to 64 KiB that the kernel, or the NIC's TSO, cuts into
	// the original segments, as it does for a kernel TCP sender. Receiving
	// stays on AF_XDP. It needs a kernel with PACKET_VNET_HDR (2.6.30).
	// A veth peer running XDP in native mode makes the kernel cut the
	// frame on our side; one in generic mode would get it whole and drop
	// it (AF_XDP's frames are smaller), so leave Offload off towards such
	// a peer. TxWait then also bounds the wait on a full socket buffer.
	Offload bool
	// Replace takes over an interface that already has an XDP program,
	// e.g. one left by a crashed process (whose queue is then a black
	// hole). Without it OpenXDP refuses with ErrXDPBusy.
	Replace bool
}

// DefaultSpin is how long a receiver checks its ring before it sleeps in
// poll, unless told otherwise (XDPOptions.Spin, the software switch's).
const DefaultSpin = 20 * time.Microsecond

func (o *XDPOptions) setDefaults() error {
	if o.Frames == 0 {
		o.Frames = 4096
	}
	if o.FrameSize == 0 {
		o.FrameSize = 2048
	}
	if o.BindRetry == 0 {
		o.BindRetry = 2 * time.Second
	}
	if o.Spin == 0 {
		o.Spin = DefaultSpin
	}
	if o.TxWait == 0 {
		o.TxWait = 2 * time.Millisecond
	}
	switch {
	case o.Queue < 0 || o.Queue > 1023:
		return fmt.Errorf("%w: xdp queue %d outside 0..1023", ErrBadConfig, o.Queue)
	case o.Frames < 16 || o.Frames > 1<<20 || o.Frames&(o.Frames-1) != 0:
		return fmt.Errorf("%w: xdp frames %d must be a power of two in 16..1048576", ErrBadConfig, o.Frames)
	case o.FrameSize != 2048 && o.FrameSize != 4096:
		return fmt.Errorf("%w: xdp frame size %d must be 2048 or 4096", ErrBadConfig, o.FrameSize)
	case o.Mode != "" && o.Mode != ModeNative && o.Mode != ModeGeneric:
		return fmt.Errorf("%w: xdp mode %q must be %q, %q or empty", ErrBadConfig, o.Mode, ModeNative, ModeGeneric)
	case o.BindRetry < 0 || o.Spin < 0 || o.TxWait < 0:
		return fmt.Errorf("%w: xdp durations must not be negative", ErrBadConfig)
	}
	return nil
}

// XDP is an Endpoint on one queue of a network interface through an
// AF_XDP socket in copy mode (veth refuses zero-copy). asavie/xdp supplies
// the eBPF redirect program; the socket and its rings are managed here
// because asavie's Socket panics on transmit errors, busy-loops in Poll,
// and scans every frame to find a free one.
//
// UMEM frames are split: the receive half always sits in the fill ring,
// the rx ring or (during a Receive callback) with the caller, and goes
// straight back to the fill ring; the transmit half cycles through a free
// list, the tx ring and the completion ring. Neither half can leak.
type XDP struct {
	ifname  string
	ifindex int
	mac     net.HardwareAddr
	mtu     int
	mode    string
	xdpFlag uint32
	opts    XDPOptions

	fd      int
	wakeFD  int // eventfd that Close and Wake write to end a Receive's poll
	umem    []byte
	prog    *xdp.Program
	nl      *rtnl
	fill    umemRing
	comp    umemRing
	rx      descRing
	tx      descRing
	mmaps   [][]byte
	chunkMk uint64

	rxMu    sync.Mutex // held by Receive; Close takes it to tear down
	rxAddrs []uint64
	woken   atomic.Bool // Wake was called since Receive last looked
	polling atomic.Bool // Receive is in (or about to enter) ppoll
	wakeMu  sync.Mutex  // keeps Wake's write off a closed wakeFD

	txMu   sync.Mutex // the tx ring; with Offload, the filling batch
	txFree []uint64
	// With Offload, gso transmits instead of the tx ring: txMu guards its
	// filling batch, flushMu (taken before txMu) the batch being sent.
	gso     *gsoTx
	flushMu sync.Mutex

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	rxFrames, rxBytes          atomic.Uint64
	txFrames, txBytes, txDrops atomic.Uint64
	rxDrops                    atomic.Uint64 // frames received but not delivered
}

var (
	_ Batcher      = (*XDP)(nil)
	_ Waker        = (*XDP)(nil)
	_ UDPSegmenter = (*XDP)(nil)
	_ TCPSegmenter = (*XDP)(nil)
)

type umemRing struct {
	prod, cons *uint32
	descs      []uint64
	mask       uint32
}

type descRing struct {
	prod, cons *uint32
	descs      []unix.XDPDesc
	mask       uint32
}

// OpenXDP attaches an AF_XDP socket to queue opts.Queue of ifname in the
// calling thread's network namespace, and the eBPF program that redirects
// that queue's frames to it. It tries native (driver) mode first and falls
// back to generic (SKB) mode unless opts.Mode insists; Mode reports which.
// While the endpoint is open the kernel stack sees none of the queue's
// frames.
func OpenXDP(ifname string, opts XDPOptions) (*XDP, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := checkCaps(); err != nil {
		return nil, err
	}
	// Probe AF_XDP before touching the interface so a kernel without it
	// is reported as such, not as some later bind failure.
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.EAFNOSUPPORT):
			return nil, fmt.Errorf("open af_xdp socket for %s: %w", ifname, ErrNoAFXDP)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return nil, fmt.Errorf("open af_xdp socket for %s: %w", ifname, ErrPermission)
		}
		return nil, fmt.Errorf("open af_xdp socket for %s: %w", ifname, err)
	}
	x := &XDP{ifname: ifname, fd: fd, wakeFD: -1, opts: opts}
	if err := x.open(); err != nil {
		x.teardown()
		return nil, err
	}
	return x, nil
}

func (x *XDP) open() error {
	o := x.opts
	ifi, err := net.InterfaceByName(x.ifname)
	if err != nil {
		return fmt.Errorf("open xdp on %q: %w (%v; see 'ip link' in this namespace)", x.ifname, ErrNoInterface, err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		return fmt.Errorf("open xdp on %q: %w (run 'ip link set %s up')", x.ifname, ErrInterfaceDown, x.ifname)
	}
	if max := o.FrameSize - xdpPacketHeadroom - EthernetHeaderLen; ifi.MTU > max {
		return fmt.Errorf("open xdp on %q: %w: mtu %d, frame size %d allows %d (lower the mtu or use FrameSize 4096)",
			x.ifname, ErrMTUTooLarge, ifi.MTU, o.FrameSize, max)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("open xdp on %q: %w: not an ethernet interface (hardware address %q)", x.ifname, ErrBadConfig, ifi.HardwareAddr)
	}
	x.ifindex, x.mac, x.mtu = ifi.Index, ifi.HardwareAddr, ifi.MTU
	x.chunkMk = ^uint64(o.FrameSize - 1)

	if x.wakeFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		return fmt.Errorf("open xdp on %q: eventfd: %w", x.ifname, err)
	}
	if err := x.setupUmem(); err != nil {
		return fmt.Errorf("open xdp on %q: %w", x.ifname, err)
	}
	if err := x.bind(); err != nil {
		return fmt.Errorf("open xdp on %q queue %d: %w", x.ifname, o.Queue, err)
	}
	if x.nl, err = openRtnl(); err != nil {
		return fmt.Errorf("open xdp on %q: %w", x.ifname, err)
	}
	if x.prog, err = xdp.NewProgram(o.Queue + 1); err != nil {
		return fmt.Errorf("open xdp on %q: load redirect program: %v", x.ifname, err)
	}
	if err := x.attach(); err != nil {
		return fmt.Errorf("open xdp on %q: %w", x.ifname, err)
	}
	if err := x.prog.Register(o.Queue, x.fd); err != nil {
		return fmt.Errorf("open xdp on %q: register socket for queue %d: %v", x.ifname, o.Queue, err)
	}
	if o.Offload {
		if x.gso, err = openGSOTx(x.ifname, x.ifindex, o.TxWait); err != nil {
			return err
		}
	}
	return nil
}

// checkCaps reports ErrPermission up front, naming what is missing, rather
// than letting map creation or bind fail with a bare EPERM.
func checkCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if !has(unix.CAP_NET_RAW) {
		missing = append(missing, "CAP_NET_RAW")
	}
	if !has(unix.CAP_BPF) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_BPF")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %v", ErrPermission, missing)
	}
	return nil
}

func (x *XDP) setupUmem() error {
	o := x.opts
	var err error
	x.umem, err = unix.Mmap(-1, 0, o.Frames*o.FrameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("map %d-byte umem: %w", o.Frames*o.FrameSize, err)
	}
	reg := unix.XDPUmemReg{
		Addr: uint64(uintptr(unsafe.Pointer(&x.umem[0]))),
		Len:  uint64(len(x.umem)),
		Size: uint32(o.FrameSize),
	}
	if err := setsockopt(x.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("register umem (raise RLIMIT_MEMLOCK or use fewer Frames): %w", err)
		}
		return fmt.Errorf("register umem: %w", err)
	}
	half := o.Frames / 2
	for _, r := range []struct {
		opt  int
		size int
	}{{unix.XDP_UMEM_FILL_RING, half}, {unix.XDP_UMEM_COMPLETION_RING, half}, {unix.XDP_RX_RING, half}, {unix.XDP_TX_RING, half}} {
		if err := unix.SetsockoptInt(x.fd, unix.SOL_XDP, r.opt, r.size); err != nil {
			return fmt.Errorf("size ring %d: %w", r.opt, err)
		}
	}
	var off unix.XDPMmapOffsets
	l := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return fmt.Errorf("read ring offsets: %w", e)
	}
	mapRing := func(pgoff int64, ro unix.XDPRingOffset, descSize uintptr) (unsafe.Pointer, *uint32, *uint32, error) {
		b, err := unix.Mmap(x.fd, pgoff, int(ro.Desc+uint64(half)*uint64(descSize)),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("map ring at %#x: %w", pgoff, err)
		}
		x.mmaps = append(x.mmaps, b)
		base := unsafe.Pointer(&b[0])
		return unsafe.Add(base, ro.Desc), (*uint32)(unsafe.Add(base, ro.Producer)), (*uint32)(unsafe.Add(base, ro.Consumer)), nil
	}
	mask := uint32(half - 1)
	d, p, c, err := mapRing(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 8)
	if err != nil {
		return err
	}
	x.fill = umemRing{prod: p, cons: c, descs: unsafe.Slice((*uint64)(d), half), mask: mask}
	if d, p, c, err = mapRing(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, 8); err != nil {
		return err
	}
	x.comp = umemRing{prod: p, cons: c, descs: unsafe.Slice((*uint64)(d), half), mask: mask}
	descSize := unsafe.Sizeof(unix.XDPDesc{})
	if d, p, c, err = mapRing(unix.XDP_PGOFF_RX_RING, off.Rx, descSize); err != nil {
		return err
	}
	x.rx = descRing{prod: p, cons: c, descs: unsafe.Slice((*unix.XDPDesc)(d), half), mask: mask}
	if d, p, c, err = mapRing(unix.XDP_PGOFF_TX_RING, off.Tx, descSize); err != nil {
		return err
	}
	x.tx = descRing{prod: p, cons: c, descs: unsafe.Slice((*unix.XDPDesc)(d), half), mask: mask}

	// Receive half: all of it into the fill ring, which holds exactly
	// that many, so a frame back from Receive always finds a slot.
	prod := atomic.LoadUint32(x.fill.prod)
	for i := range half {
		x.fill.descs[(prod+uint32(i))&mask] = uint64(i * o.FrameSize)
	}
	atomic.StoreUint32(x.fill.prod, prod+uint32(half))
	x.txFree = make([]uint64, 0, half)
	for i := half; i < o.Frames; i++ {
		x.txFree = append(x.txFree, uint64(i*o.FrameSize))
	}
	x.rxAddrs = make([]uint64, 0, half)
	return nil
}

func setsockopt(fd, opt int, p unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), size, 0); e != 0 {
		return e
	}
	return nil
}

// bind binds in copy mode, retrying EBUSY for up to BindRetry: the queue
// stays claimed for a moment after a previous socket on it closed.
func (x *XDP) bind() error {
	sa := &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(x.ifindex), QueueID: uint32(x.opts.Queue)}
	deadline := time.Now().Add(x.opts.BindRetry)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := unix.Bind(x.fd, sa)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			if errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("bind af_xdp socket: %w (does the interface have queue %d?)", err, x.opts.Queue)
			}
			return fmt.Errorf("bind af_xdp socket: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bind af_xdp socket: %w: still EBUSY after %v", ErrXDPBusy, x.opts.BindRetry)
		}
		time.Sleep(delay)
	}
}

// attach installs the redirect program, refusing to replace one that is
// already there (it may belong to someone else).
func (x *XDP) attach() error {
	modes := []struct {
		name string
		flag uint32
	}{{ModeNative, unix.XDP_FLAGS_DRV_MODE}, {ModeGeneric, unix.XDP_FLAGS_SKB_MODE}}
	var errs []error
	for _, m := range modes {
		if x.opts.Mode != "" && x.opts.Mode != m.name {
			continue
		}
		flags := m.flag
		if !x.opts.Replace {
			flags |= unix.XDP_FLAGS_UPDATE_IF_NOEXIST
		}
		err := x.nl.setXDP(x.ifindex, x.prog.Program.FD(), flags)
		if err == nil {
			x.mode, x.xdpFlag = m.name, m.flag
			return nil
		}
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("attach in %s mode: %w (%v; remove it with 'ip link set %s xdp off' or set Replace)", m.name, ErrXDPBusy, err, x.ifname)
		}
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("attach in %s mode: %w", m.name, ErrPermission)
		}
		errs = append(errs, fmt.Errorf("%s mode: %w", m.name, err))
	}
	return fmt.Errorf("%w: %w", ErrXDPAttach, errors.Join(errs...))
}

// PollFD is the socket's descriptor: it polls readable when frames wait
// in the rx ring. A caller serving several endpoints polls them together
// and drains each with Receive(0, fn).
func (x *XDP) PollFD() int { return x.fd }

// Mode reports how the program is attached: ModeNative or ModeGeneric.
func (x *XDP) Mode() string { return x.mode }

// Interface is the interface name the endpoint is bound to.
func (x *XDP) Interface() string { return x.ifname }

// MAC implements Endpoint.
func (x *XDP) MAC() net.HardwareAddr { return x.mac }

// MTU implements Endpoint.
func (x *XDP) MTU() int { return x.mtu }

// Send implements Endpoint. It copies frame into a free transmit frame and
// kicks the kernel. When no frame frees up within TxWait (the far side is
// not draining), the frame is dropped and counted, as a NIC with a full
// ring would; TCP recovers by retransmitting.
func (x *XDP) Send(frame []byte) error {
	if x.gso != nil {
		if err := x.gsoQueue(frame); err != nil {
			return err
		}
		return x.gsoFlush()
	}
	x.txMu.Lock()
	defer x.txMu.Unlock()
	if err := x.enqueue(frame); err != nil {
		return err
	}
	return x.flush()
}

// Queue implements Batcher: Send without the kick, so that a burst of
// frames costs one Flush. Frames still go out if the transmit frames run
// short, since waiting for a free one kicks the kernel.
func (x *XDP) Queue(frame []byte) error {
	if x.gso != nil {
		return x.gsoQueue(frame)
	}
	x.txMu.Lock()
	defer x.txMu.Unlock()
	return x.enqueue(frame)
}

// Flush implements Batcher: it kicks the kernel until the transmit ring is
// empty or stops draining.
func (x *XDP) Flush() error {
	if x.gso != nil {
		return x.gsoFlush()
	}
	x.txMu.Lock()
	defer x.txMu.Unlock()
	if x.closed.Load() {
		return ErrClosed
	}
	return x.flush()
}

// gsoQueue queues frame in the offload socket's filling batch. It waits
// for no other goroutine's send; only a full batch is flushed first. Other
// goroutines may fill the batch again before this one queues, so it tries
// until queued; a flush's errors are other frames', counted as dropped
// there, and the frame's own result is nil once it is queued. After
// gsoQueueTries full batches in a row it drops the frame, as a NIC ring
// that stays full would.
func (x *XDP) gsoQueue(frame []byte) error {
	if err := checkFrame(frame, x.mtu); err != nil {
		return err
	}
	return x.gsoEnqueue(func(b *gsoBatch) bool { return b.queue(frame) }, 1, uint64(len(frame)))
}

// gsoEnqueue queues a frame, a UDP train or a TCP run in the filling
// batch with queue (frames and bytes as on the wire). It retries after
// flushing a full batch, and after gsoQueueTries full batches in a row
// drops the frames and counts them.
func (x *XDP) gsoEnqueue(queue func(*gsoBatch) bool, frames int, bytes uint64) error {
	for range gsoQueueTries {
		x.txMu.Lock()
		if x.closed.Load() {
			x.txMu.Unlock()
			return ErrClosed
		}
		ok := queue(x.gso.fill)
		x.txMu.Unlock()
		if ok {
			x.txFrames.Add(uint64(frames))
			x.txBytes.Add(bytes)
			return nil
		}
		if err := x.gsoFlush(); errors.Is(err, ErrClosed) || errors.Is(err, ErrInterfaceDown) || errors.Is(err, ErrNoInterface) {
			return err
		}
	}
	x.txDrops.Add(uint64(frames))
	return nil
}

// MaxUDPSegments implements UDPSegmenter: with Offload the kernel cuts
// UDP trains; the AF_XDP ring cannot.
func (x *XDP) MaxUDPSegments() int {
	if x.gso == nil {
		return 0
	}
	return gsoMaxUDPSegs
}

// QueueUDPSegments implements UDPSegmenter, on the offload socket's batch
// as gsoQueue queues a frame.
func (x *XDP) QueueUDPSegments(frame []byte, segSize int) error {
	if x.gso == nil {
		return fmt.Errorf("link: %s cannot cut UDP trains without Offload (MaxUDPSegments is 0)", x.ifname)
	}
	n, err := udpTrain(frame, segSize, x.mtu)
	if err != nil {
		return fmt.Errorf("%w (on %s)", err, x.ifname)
	}
	return x.gsoEnqueue(func(b *gsoBatch) bool { return b.queueUDP(frame, segSize) },
		n, uint64(len(frame)+(n-1)*(EthernetHeaderLen+ipv4HdrLen+udpHdrLen)))
}

// MaxTCPSegments implements TCPSegmenter: with Offload the kernel cuts
// TCP runs; the AF_XDP ring cannot.
func (x *XDP) MaxTCPSegments() int {
	if x.gso == nil {
		return 0
	}
	return gsoMaxTCPSegs
}

// TakeTCPSegments implements TCPSegmenter, on the offload socket's batch
// as gsoQueue queues a frame, but without copying head or payload.
func (x *XDP) TakeTCPSegments(head []byte, payload [][]byte, mss int) (spare []byte, err error) {
	if x.gso == nil {
		return head[:0], fmt.Errorf("link: %s cannot cut TCP runs without Offload (MaxTCPSegments is 0)", x.ifname)
	}
	extra := 0
	for _, p := range payload {
		extra += len(p)
	}
	thl, n, err := tcpRun(head, extra, mss, x.mtu)
	if err != nil {
		return head[:0], fmt.Errorf("%w (on %s)", err, x.ifname)
	}
	spare = head[:0] // until a batch takes it
	err = x.gsoEnqueue(func(b *gsoBatch) bool {
		if !b.takeTCP(head, payload, extra, mss, thl, n) {
			return false
		}
		x.gso.runsTaken.Add(1) // txMu is held: in the order of the batches
		spare = x.gso.takeSpare()
		return true
	}, n, uint64(len(head)+extra+(n-1)*(EthernetHeaderLen+ipv4HdrLen+thl)))
	return spare, err
}

// TCPRunsSent implements TCPSegmenter.
func (x *XDP) TCPRunsSent() (taken, ended uint64) {
	if x.gso == nil {
		return 0, 0
	}
	// ended first: a run taken between the loads only makes taken larger.
	ended = x.gso.runsEnded.Load()
	return x.gso.runsTaken.Load(), ended
}

// gsoQueueTries bounds gsoEnqueue's flushes for one frame or train.
const gsoQueueTries = 8

// gsoFlush sends the filling batch. Frames dropped on a full send buffer
// are counted, not an error: as with the tx ring, TCP resends them.
func (x *XDP) gsoFlush() error {
	x.flushMu.Lock()
	defer x.flushMu.Unlock()
	x.txMu.Lock()
	if x.closed.Load() {
		x.txMu.Unlock()
		return ErrClosed
	}
	g := x.gso
	g.fill, g.send = g.send, g.fill // send is empty: flushMu's holder empties it
	g.swapTaken = g.runsTaken.Load()
	x.txMu.Unlock()
	dropped, err := g.flush(g.send)
	g.runsEnded.Store(g.swapTaken) // sendmmsg has copied or dropped them all
	x.txDrops.Add(uint64(dropped))
	if len(g.sent) > 0 {
		x.txMu.Lock()
		g.keepSent()
		x.txMu.Unlock()
	}
	return err
}

// enqueue copies frame into a free transmit frame and places its
// descriptor in the tx ring; x.txMu is held.
func (x *XDP) enqueue(frame []byte) error {
	if err := checkFrame(frame, x.mtu); err != nil {
		return err
	}
	if x.closed.Load() {
		return ErrClosed
	}
	x.reclaim()
	if len(x.txFree) == 0 {
		deadline := time.Now().Add(x.opts.TxWait)
		for len(x.txFree) == 0 {
			if err := x.kick(); err != nil {
				return err
			}
			x.reclaim()
			if len(x.txFree) > 0 {
				break
			}
			if time.Now().After(deadline) {
				x.txDrops.Add(1)
				return nil
			}
			runtime.Gosched()
		}
	}
	addr := x.txFree[len(x.txFree)-1]
	x.txFree = x.txFree[:len(x.txFree)-1]
	copy(x.umem[addr:addr+uint64(len(frame))], frame)
	// A free frame implies a free tx slot: the ring is as large as the
	// transmit half and every queued descriptor holds one of its frames.
	prod := atomic.LoadUint32(x.tx.prod)
	x.tx.descs[prod&x.tx.mask] = unix.XDPDesc{Addr: addr, Len: uint32(len(frame))}
	atomic.StoreUint32(x.tx.prod, prod+1)
	x.txFrames.Add(1)
	x.txBytes.Add(uint64(len(frame)))
	return nil
}

// flush kicks until the kernel has taken every tx descriptor. In copy mode
// one sendto transmits at most 32 frames (the kernel's TX_BATCH_SIZE) and
// answers EAGAIN when more remain, so a burst needs several kicks. It stops
// when a kick takes nothing (the peer is not draining): the frames stay
// queued for the next kick. x.txMu is held.
func (x *XDP) flush() error {
	for {
		before := atomic.LoadUint32(x.tx.cons)
		if before == atomic.LoadUint32(x.tx.prod) {
			return nil
		}
		if err := x.kick(); err != nil {
			return err
		}
		if atomic.LoadUint32(x.tx.cons) == before {
			return nil
		}
	}
}

// reclaim moves completed transmit frames back to the free list.
func (x *XDP) reclaim() {
	cons := atomic.LoadUint32(x.comp.cons)
	prod := atomic.LoadUint32(x.comp.prod)
	for ; cons != prod; cons++ {
		x.txFree = append(x.txFree, x.comp.descs[cons&x.comp.mask]&x.chunkMk)
	}
	atomic.StoreUint32(x.comp.cons, cons)
}

// kick asks the kernel to transmit the tx ring (copy mode sends only on
// sendto). Transient conditions are not errors: the frames stay queued.
func (x *XDP) kick() error {
	for range 4 {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(x.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
			return nil
		case unix.EINTR:
			continue
		case unix.ENETDOWN:
			return fmt.Errorf("send on %s: %w", x.ifname, ErrInterfaceDown)
		case unix.ENXIO, unix.ENODEV:
			return fmt.Errorf("send on %s: %w: %v", x.ifname, ErrNoInterface, e)
		default:
			return fmt.Errorf("send on %s: %w", x.ifname, e)
		}
	}
	return nil
}

// Receive implements Endpoint. It checks the rx ring, spins for up to
// Spin, then sleeps in ppoll (on the socket and the eventfd Close and Wake
// write) for the rest of timeout. Each frame goes back to the fill ring after fn, even
// if fn panics.
func (x *XDP) Receive(timeout time.Duration, fn func(frame []byte)) (int, error) {
	x.rxMu.Lock()
	defer x.rxMu.Unlock()
	if x.closed.Load() {
		return 0, ErrClosed
	}
	if x.rxReady() == 0 && timeout > 0 && !x.woken.Load() {
		spinEnd := time.Now().Add(min(x.opts.Spin, timeout))
		for x.rxReady() == 0 && !x.woken.Load() && time.Now().Before(spinEnd) {
			// Busy check: the ring is shared memory, no syscall needed.
			if x.opts.SpinYield {
				runtime.Gosched() // returns at once when nothing else is runnable
			}
		}
		// polling before the last look at woken: a Wake either sees it
		// and writes the eventfd, or is seen here (both atomics are
		// sequentially consistent), so none is lost.
		x.polling.Store(true)
		if x.rxReady() == 0 && !x.woken.Load() {
			if err := x.wait(timeout - x.opts.Spin); err != nil {
				x.polling.Store(false)
				return 0, err
			}
		}
		x.polling.Store(false)
	}
	x.woken.Store(false)
	if x.closed.Load() {
		return 0, ErrClosed
	}
	return x.drain(fn), nil
}

func (x *XDP) rxReady() uint32 {
	return atomic.LoadUint32(x.rx.prod) - atomic.LoadUint32(x.rx.cons)
}

// Wake implements Waker: the flag ends a spin, the eventfd a poll. The
// eventfd is written only for a Receive that polls: a wake left in it
// would end the next poll, one Receive later, for nothing.
func (x *XDP) Wake() {
	if x.woken.Swap(true) || !x.polling.Load() {
		return // a wake is already pending, or the flag suffices
	}
	x.wakeMu.Lock()
	defer x.wakeMu.Unlock()
	if x.wakeFD >= 0 && !x.closed.Load() {
		var one [8]byte
		one[0] = 1
		unix.Write(x.wakeFD, one[:]) //nolint:errcheck // the counter cannot overflow: wait reads it
	}
}

// wait sleeps until the socket is readable, Close or Wake is called, or d
// passes.
func (x *XDP) wait(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(x.fd), Events: unix.POLLIN}, {Fd: int32(x.wakeFD), Events: unix.POLLIN}}
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			// A negative timespec makes ppoll fail with EINVAL, and a
			// sub-microsecond wait can be used up before we get here.
			return nil
		}
		ts := unix.NsecToTimespec(int64(left))
		_, err := unix.Ppoll(fds, &ts, nil)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			return fmt.Errorf("poll %s: %w", x.ifname, err)
		}
		if time.Now().After(deadline) {
			break
		}
	}
	if fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
		return fmt.Errorf("poll %s: socket error (revents %#x)", x.ifname, fds[0].Revents)
	}
	if fds[1].Revents&unix.POLLIN != 0 && !x.closed.Load() {
		var b [8]byte
		unix.Read(x.wakeFD, b[:]) //nolint:errcheck // a Wake's count: reset, or every poll would return at once
	}
	return nil
}

func (x *XDP) drain(fn func(frame []byte)) int {
	cons := atomic.LoadUint32(x.rx.cons)
	n := atomic.LoadUint32(x.rx.prod) - cons
	if n == 0 {
		return 0
	}
	addrs := x.rxAddrs[:0]
	for i := range n {
		d := x.rx.descs[(cons+i)&x.rx.mask]
		addrs = append(addrs, d.Addr)
	}
	var i uint32
	defer func() {
		if i+1 < n {
			// fn panicked on frame i: the frames after it go back to the
			// fill ring unseen, dropped as a full ring drops them.
			x.rxDrops.Add(uint64(n - i - 1))
		}
		atomic.StoreUint32(x.rx.cons, cons+n)
		prod := atomic.LoadUint32(x.fill.prod)
		for i, a := range addrs {
			x.fill.descs[(prod+uint32(i))&x.fill.mask] = a & x.chunkMk
		}
		atomic.StoreUint32(x.fill.prod, prod+uint32(len(addrs)))
	}()
	for i = 0; i < n; i++ {
		d := x.rx.descs[(cons+i)&x.rx.mask]
		x.rxFrames.Add(1)
		x.rxBytes.Add(uint64(d.Len))
		fn(x.umem[d.Addr : d.Addr+uint64(d.Len) : d.Addr+uint64(d.Len)])
	}
	return int(n)
}

// Stats returns the endpoint's counters; RxDropped is the kernel's count
// of frames it could not place (rx ring full or fill ring empty).
func (x *XDP) Stats() Stats {
	s := Stats{
		RxFrames: x.rxFrames.Load(), RxBytes: x.rxBytes.Load(),
		TxFrames: x.txFrames.Load(), TxBytes: x.txBytes.Load(), TxDropped: x.txDrops.Load(),
	}
	if ks, err := x.KernelStats(); err == nil {
		// Rx_dropped counts fill-ring-empty drops (also counted, per
		// descriptor peek, in Rx_fill_ring_empty_descs: not added twice).
		s.RxDropped = ks.Rx_dropped + ks.Rx_ring_full
	}
	s.RxDropped += x.rxDrops.Load()
	return s
}

// KernelStats returns the socket's XDP_STATISTICS.
func (x *XDP) KernelStats() (unix.XDPStatistics, error) {
	// txMu keeps Close from closing the socket under the getsockopt.
	x.txMu.Lock()
	defer x.txMu.Unlock()
	if x.closed.Load() {
		return unix.XDPStatistics{}, ErrClosed
	}
	var ks unix.XDPStatistics
	l := uint32(unsafe.Sizeof(ks))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(x.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&ks)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return ks, fmt.Errorf("read xdp statistics of %s: %w", x.ifname, e)
	}
	return ks, nil
}

// Close implements Endpoint. It wakes a blocked Receive, detaches the
// program with the flags it was attached with (a flagless detach can hang
// for generic mode), and frees the socket and UMEM.
func (x *XDP) Close() error {
	x.closeOnce.Do(func() {
		x.closed.Store(true)
		var one [8]byte
		one[0] = 1
		unix.Write(x.wakeFD, one[:])
		x.rxMu.Lock()
		x.flushMu.Lock()
		x.txMu.Lock()
		x.closeErr = x.teardown()
		if x.gso != nil {
			// Runs still queued will never be sent: none is read any more,
			// and a fence waiting for them would hold back arrays for good.
			x.gso.runsEnded.Store(x.gso.runsTaken.Load())
		}
		x.txMu.Unlock()
		x.flushMu.Unlock()
		x.rxMu.Unlock()
	})
	return x.closeErr
}

func (x *XDP) teardown() error {
	var errs []error
	if x.prog != nil {
		if x.mode != "" {
			err := x.nl.setXDP(x.ifindex, -1, x.xdpFlag)
			// The interface (or its namespace) may already be gone,
			// which removes the program with it.
			if err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("detach xdp from %s: %w", x.ifname, err))
			}
		}
		if err := x.prog.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close xdp program: %v", err))
		}
		x.prog = nil
	}
	if x.nl != nil {
		x.nl.close()
		x.nl = nil
	}
	if x.fd >= 0 {
		unix.Close(x.fd)
		x.fd = -1
	}
	if x.gso != nil {
		x.gso.close()
	}
	for _, m := range x.mmaps {
		unix.Munmap(m)
	}
	x.mmaps = nil
	if x.umem != nil {
		unix.Munmap(x.umem)
		x.umem = nil
	}
	x.wakeMu.Lock()
	if x.wakeFD >= 0 {
		unix.Close(x.wakeFD)
		x.wakeFD = -1
	}
	x.wakeMu.Unlock()
	return errors.Join(errs...)
}
