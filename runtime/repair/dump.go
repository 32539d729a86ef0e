package repair

import (
	"fmt"
	"net/netip"
	"time"
)

// Dump is what it takes to rebuild one TCP connection's endpoint.
type Dump struct {
	// Local and Remote are the socket's own and its peer's address as the
	// origin saw them. Restore binds to an address of the target's own.
	Local, Remote netip.AddrPort
	// State is the TCP state; only StateEstablished is dumped.
	State State

	// SendSeq is the sequence number after the last byte of SendQueue
	// (the kernel's write_seq); SendSeq-len(SendQueue) is snd_una.
	SendSeq uint32
	// RecvSeq is the next sequence number expected from the peer
	// (rcv_nxt); RecvSeq-len(RecvQueue) is where the application's
	// reading stands.
	RecvSeq uint32
	// SendQueue holds every byte written and not acknowledged. Its last
	// Unsent bytes were never transmitted.
	SendQueue []byte
	Unsent    uint32
	// RecvQueue holds the bytes received and not yet read.
	RecvQueue []byte

	// Options are the options negotiated in the handshake.
	Options Options
	// SndWscale and RcvWscale are the window scales, when Options has
	// OptWindowScale.
	SndWscale, RcvWscale uint8
	// MSS is the MSS clamp (the peer's announced MSS, or a smaller
	// TCP_MAXSEG).
	MSS uint16
	// Timestamp is TCP_TIMESTAMP, the socket's TSval clock, when Options
	// has OptTimestamps. Restore continues the clock from it.
	Timestamp uint32
	// Window is TCP_REPAIR_WINDOW.
	Window Window

	// SndBuf and RcvBuf are SO_SNDBUF and SO_RCVBUF (the kernel's doubled
	// values). Restore raises the new socket's buffers to them.
	SndBuf, RcvBuf uint32
}

// Window is struct tcp_repair_window.
type Window struct {
	SndWl1    uint32 // sequence of the segment that last updated snd_wnd
	SndWnd    uint32 // the peer's receive window
	MaxWindow uint32 // largest window the peer has offered
	RcvWnd    uint32 // our receive window
	RcvWup    uint32 // rcv_nxt at our last window update
}

// Options is a set of negotiated TCP options, with the tcpi_options bit
// values.
type Options uint8

const (
	OptTimestamps  Options = 1 // TCPI_OPT_TIMESTAMPS
	OptSACK        Options = 2 // TCPI_OPT_SACK
	OptWindowScale Options = 4 // TCPI_OPT_WSCALE

	optsKnown = OptTimestamps | OptSACK | OptWindowScale
)

// State is a Linux TCP state number (include/net/tcp_states.h).
type State uint8

const (
	StateEstablished State = 1
	StateFinWait2    State = 5
	StateTimeWait    State = 6
	StateClose       State = 7
)

var stateNames = [...]string{"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"}

func (s State) String() string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Step names one phase of a dump, a close or a restore, for timing.
type Step string

const (
	StepRepairOn   Step = "repair_on"    // dump: TCP_REPAIR on
	StepDumpQueues Step = "dump_queues"  // dump: state, options, window, both queues
	StepClose      Step = "close"        // CloseSilently
	StepBind       Step = "restore_bind" // restore: socket, repair on, buffers, bind
	StepQueueSeq   Step = "queue_seq"    // restore: TCP_QUEUE_SEQ for both queues
	StepConnect    Step = "connect"      // restore: connect without a SYN
	StepOptions    Step = "options"      // restore: TCP_REPAIR_OPTIONS, TCP_TIMESTAMP
	StepRefill     Step = "refill"       // restore: receive queue, sent part of the send queue
	StepWindow     Step = "window"       // restore: TCP_REPAIR_WINDOW
	StepRepairOff  Step = "repair_off"   // restore: TCP_REPAIR off (sends a window probe)
	StepUnsent     Step = "unsent"       // restore: net.Conn wrapping, unsent bytes written
)

// Option adjusts DumpFD, DumpConn, CloseSilently or Restore.
type Option func(*config)

type config struct {
	freeBind      bool
	transient     bool
	hook          func(Step, time.Duration)
	unsentTimeout time.Duration
}

func newConfig(opts []Option) config {
	c := config{unsentTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithFreeBind lets Restore rebuild a connection on an address the target
// does not hold (yet). It sets IP_FREEBIND, which lets the bind through,
// and IP_TRANSPARENT, without which the kernel refuses the connect
// (ENETUNREACH: an output route from a non-local source is granted only
// to transparent sockets). The socket stays transparent. The target must
// still deliver the address's segments locally (configure the address or
// a local route) before the peer's next segment arrives.
func WithFreeBind() Option { return func(c *config) { c.freeBind = true } }

// WithTransparentRestore keeps the socket IP_TRANSPARENT while Restore
// builds it and clears it at the end (unless WithFreeBind needs it). From
// its connect on, the half-built socket is in the kernel's tables and
// takes the peer's segments, and answers them with whatever it has so far
// (an ACK before TCP_TIMESTAMP is set carries the raw clock, and the
// peer's PAWS then drops every later segment). A netfilter rule that
// queues segments whose socket is transparent (iptables -m socket
// --transparent -j NFQUEUE) keeps them away until the socket is whole.
func WithTransparentRestore() Option { return func(c *config) { c.transient = true } }

// WithStepHook has fn called after each step that ran, with its duration,
// from the calling goroutine. Steps that fail are reported too.
func WithStepHook(fn func(Step, time.Duration)) Option {
	return func(c *config) { c.hook = fn }
}

// WithUnsentTimeout bounds how long Restore waits for room in the send
// buffer while writing the unsent bytes (default 5s). The buffer is sized
// to take them at once, so waiting means the kernel refused memory.
func WithUnsentTimeout(d time.Duration) Option {
	return func(c *config) { c.unsentTimeout = d }
}

// timer measures consecutive steps.
type timer struct {
	hook  func(Step, time.Duration)
	start time.Time
}

func (c *config) timer() timer {
	t := timer{hook: c.hook}
	if t.hook != nil {
		t.start = time.Now()
	}
	return t
}

// done reports step s as ending now and starts the next one.
func (t *timer) done(s Step) {
	if t.hook == nil {
		return
	}
	now := time.Now()
	t.hook(s, now.Sub(t.start))
	t.start = now
}
