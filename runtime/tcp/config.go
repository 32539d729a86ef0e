package tcp

import (
	"net/netip"
	"time"
)

// Time is the caller's clock: nanoseconds since an arbitrary epoch. The
// package never reads a clock and starts no goroutines.
type Time = time.Duration

// ID names a connection by its two endpoints.
type ID struct{ Local, Remote netip.AddrPort }

// Config tunes a connection. Zero fields take the defaults of WithDefaults.
type Config struct {
	MSS        uint16        // MSS we advertise (MTU-40); default 1460
	RecvBuffer int           // receive buffer bytes to start with; default 256 KiB
	SendBuffer int           // send buffer bytes; default 256 KiB
	InitialRTO time.Duration // default 1s (RFC 6298)
	MinRTO     time.Duration // default 200ms
	MaxRTO     time.Duration // default 60s
	DelayedACK time.Duration // default 40ms; negative disables (ACK every segment at once)
	TimeWait   time.Duration // 2*MSL; default 60s
	// RecvBufferMax is how far the receive buffer grows while the
	// application reads as fast as data arrives (Linux's receive buffer
	// auto-tuning, tcp_rcv_space_adjust); the window scale is derived
	// from it. Default DefaultRecvMax (4 MiB) when RecvBuffer is 0; a
	// RecvBuffer set without it stays fixed, as SO_RCVBUF does (so
	// RecvBuffer: DefaultBuffer turns tuning off), and a negative one is
	// no growth.
	RecvBufferMax int
	// SendBufferMax is how far the send buffer grows, to twice the
	// congestion window (Linux's tcp_sndbuf_expand, up to tcp_wmem's
	// maximum). Default 4 MiB when SendBuffer is 0; a SendBuffer set
	// without it stays fixed, as SO_SNDBUF does.
	SendBufferMax int
	// FinWait2 bounds FIN-WAIT-2 for a connection its application
	// closed (Orphan): a peer that ACKs our FIN and never sends its own
	// cannot keep it forever (Linux's tcp_fin_timeout); default 60s.
	FinWait2 time.Duration
	// NoSACK and NoTimestamps turn off offering and accepting RFC 2018
	// SACK and RFC 7323 timestamps, which are on by default, as on Linux.
	NoSACK, NoTimestamps bool
	// Reno grows and cuts the congestion window as RFC 5681 does
	// (halving it on a loss) instead of CUBIC (RFC 9438), Linux's default.
	Reno          bool
	MaxRetries    int // data retransmissions before the connection fails with ErrTimeout; default 15
	MaxSYNRetries int // SYN or SYN-ACK retransmissions before failing; default 6
	// Buffers, if set, is where the queues' arrays come from and go back
	// to when a connection closes or Recycle is called; nil makes each
	// one new.
	Buffers *BufferPool
}

// Defaults, and the limits WithDefaults clamps to.
const (
	DefaultMSS       = 1460
	DefaultBuffer    = 256 << 10
	DefaultRecvMax   = 4 << 20
	DefaultSendMax   = 4 << 20
	minMSS           = 64
	maxBuffer        = 1 << 30 // RFC 7323 §2.3: 2^14 * 65535 bounds the window
	maxWindowShift   = 14
	minBuffer        = 1
	defaultRetries   = 15
	defaultSYNRetry  = 6
	defaultDelAck    = 40 * time.Millisecond
	defaultTimeWait  = 60 * time.Second
	defaultFinWait2  = 60 * time.Second
	defaultInitRTO   = time.Second
	defaultMinRTO    = 200 * time.Millisecond
	defaultMaxRTO    = 60 * time.Second
	synFallbackRTO   = 3 * time.Second  // after a resent SYN without an RTT sample (RFC 6298 §5.7)
	maxRTOCap        = time.Hour        // the largest MinRTO or MaxRTO WithDefaults keeps
	clockGranularity = time.Millisecond // G in RFC 6298 §2
)

// WithDefaults fills zero fields with the defaults and clamps out-of-range
// values: MSS to at least 64, buffers to [1, 1 GiB], MinRTO <= InitialRTO <= MaxRTO <= 1 h.
//
// DelayedACK 0 means the default; the brief's "0 disables" is spelt as a
// negative value here so that a zero Config gets the RFC 5681 behaviour.
func (c Config) WithDefaults() Config {
	if c.MSS == 0 {
		c.MSS = DefaultMSS
	}
	if c.MSS < minMSS {
		c.MSS = minMSS
	}
	c.RecvBuffer, c.RecvBufferMax = bufferLimits(c.RecvBuffer, c.RecvBufferMax, DefaultRecvMax)
	c.SendBuffer, c.SendBufferMax = bufferLimits(c.SendBuffer, c.SendBufferMax, DefaultSendMax)
	if c.MinRTO <= 0 {
		c.MinRTO = defaultMinRTO
	}
	if c.MaxRTO <= 0 {
		c.MaxRTO = defaultMaxRTO
	}
	// Doubling an RTO near the top of time.Duration wraps negative, and a
	// deadline in the past makes a loop spin: RTOs stop at an hour.
	c.MinRTO, c.MaxRTO = min(c.MinRTO, maxRTOCap), min(c.MaxRTO, maxRTOCap)
	if c.MaxRTO < c.MinRTO {
		c.MaxRTO = c.MinRTO
	}
	if c.InitialRTO <= 0 {
		c.InitialRTO = defaultInitRTO
	}
	c.InitialRTO = min(max(c.InitialRTO, c.MinRTO), c.MaxRTO)
	if c.DelayedACK == 0 {
		c.DelayedACK = defaultDelAck
	}
	if c.FinWait2 <= 0 {
		c.FinWait2 = defaultFinWait2
	}
	if c.TimeWait <= 0 {
		c.TimeWait = defaultTimeWait
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = defaultRetries
	}
	if c.MaxSYNRetries <= 0 {
		c.MaxSYNRetries = defaultSYNRetry
	}
	return c
}

// bufferLimits is a buffer's starting size and ceiling, the same rules
// for both directions: with neither set, DefaultBuffer growing to
// defaultCeiling; a size set alone stays fixed (as SO_RCVBUF and
// SO_SNDBUF do); a ceiling below DefaultBuffer set alone is the size; a
// negative ceiling is no growth.
func bufferLimits(size, ceiling, defaultCeiling int) (int, int) {
	if ceiling == 0 {
		ceiling = size
		if size == 0 {
			ceiling = defaultCeiling
		}
	}
	if size == 0 && ceiling > 0 && ceiling < DefaultBuffer {
		size = ceiling
	}
	size = clampBuffer(size)
	return size, max(clampBuffer(ceiling), size)
}

func clampBuffer(n int) int {
	if n == 0 {
		return DefaultBuffer
	}
	return min(max(n, minBuffer), maxBuffer)
}

// rcvWindowShift is our window scale: room for the largest receive buffer.
func (c Config) rcvWindowShift() uint8 { return windowShift(c.RecvBufferMax) }

// windowShift is the smallest RFC 7323 shift that lets a 16-bit window field
// describe a buffer of n bytes.
func windowShift(n int) uint8 {
	var s uint8
	for s < maxWindowShift && n>>s > 0xffff {
		s++
	}
	return s
}
