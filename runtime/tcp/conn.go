package tcp

import (
	"fmt"
	"io"
	"time"
)

// Stats counts what a connection has seen and done.
type Stats struct {
	SegmentsIn      uint64 // segments handed to Input
	SegmentsOut     uint64 // segments emitted by Output
	Retransmits     uint64 // segments sent again (timeout, fast retransmit or go-back-N)
	FastRetransmits uint64 // fast retransmits on the third duplicate ACK
	Timeouts        uint64 // retransmission timer expiries
	RSTsSent        uint64
	RSTsReceived    uint64
	DupAcks         uint64 // duplicate ACKs per RFC 5681 §2
	OutOfOrder      uint64 // data segments parked beyond rcv.nxt
	ChallengeACKs   uint64 // RFC 5961 challenge ACKs
	// InvalidACKsLimited counts invalid segments without data left
	// unanswered by the rate limit (RFC 5961 §7): challenge ACKs and
	// answers to out-of-window, PAWS-rejected or unsent-data ACKs.
	InvalidACKsLimited uint64
	WindowProbes       uint64 // zero-window probes sent
	Unacceptable       uint64 // segments failing the RFC 9293 acceptability test
	RTTSamples         uint64
	TailLossProbes     uint64 // RFC 8985 §7 probes sent (new data or the last segment again)
	LimitedTransmit    uint64 // new segments sent on the first two duplicate ACKs (RFC 3042)
	LostRetransmits    uint64 // retransmissions in fast recovery found lost and sent again
	RACKLost           uint64 // segments RACK (RFC 8985 §6) marked lost
	PAWSRejected       uint64 // segments PAWS (RFC 7323 §5) dropped as old duplicates
	DSACKs             uint64 // D-SACK blocks received: spurious retransmissions (RFC 2883)
	Undos              uint64 // cuts undone: D-SACKs showed every retransmission spurious
	PathMTUDrops       uint64 // MSS reductions on ICMP "fragmentation needed" (RFC 1191)

	// Gauges, read at the time of the Stats call.
	SRTT     time.Duration // smoothed RTT; 0 before the first sample
	RTO      time.Duration // current retransmission timeout, with backoff
	Cwnd     uint32        // congestion window, bytes
	Ssthresh uint32        // slow-start threshold, bytes
	SndWnd   uint32        // peer's advertised window, scaled
}

// Conn is one TCP connection as a deterministic state machine: Input and
// Output take the caller's clock, the package never reads one, and a Conn is
// plain data that AppendSnapshot/Restore can move. A Conn is not safe for
// concurrent use.
type Conn struct {
	cfg     Config
	id      ID
	state   State    // changed only by setState
	entered StateSet // states entered since Transitions last ran
	err     error
	// lastInvalidACK is when an invalid segment without data was last
	// answered (ackInvalid's rate limit), if invalidACKed.
	lastInvalidACK Time
	invalidACKed   bool
	lastNow        Time // time of the latest Input/Output, for Deadline

	// Send sequence space (RFC 9293 §3.3.1). sndBuf holds the unacknowledged
	// and unsent bytes; its first byte has sequence number sndUna (iss+1
	// while our SYN is outstanding).
	iss       uint32
	sndUna    uint32
	sndNxt    uint32 // next sequence number to send; rewinds to sndUna on timeout (go-back-N)
	sndMax    uint32 // highest sequence number sent plus one
	sndWnd    uint32 // peer's window, scaled
	maxSndWnd uint32
	sndWl1    uint32 // seq of the segment that last updated sndWnd
	sndWl2    uint32 // ack of the segment that last updated sndWnd
	sndShift  uint8  // the peer's window scale
	sndMSS    uint16 // largest payload we send
	sndBuf    ring
	closeReq  bool // Close arrived during the handshake: FIN once established

	// Receive sequence space. rcvBuf holds bytes the application has not
	// read (queued) and out-of-order bytes parked beyond them.
	irs         uint32
	rcvNxt      uint32
	rcvShift    uint8 // our window scale
	wsOK        bool  // window scaling offered (SYN-SENT) or agreed
	rcvAdvRight uint32
	rcvBuf      ring
	ooo         assembler
	rcvFinOOO   bool // a FIN arrived beyond rcvNxt
	rcvFinSeq   uint32
	finRcvd     bool
	// Receive buffer auto-tuning (rcvSpaceAdjust): the most the
	// application read in one period, and where and when this one began.
	rcvSpace    uint32
	rcvSpaceSeq uint32
	rcvSpaceAt  Time
	rcvSpaceOn  bool

	// ACK generation.
	ackNow     bool
	ackTimer   bool
	ackAt      Time
	rcvUnacked int // in-order bytes received since our last ACK
	dupOwed    int // duplicate ACKs owed for out-of-order segments (RFC 5681 §4.2)

	// Retransmission (RFC 6298) and persist timer: one timer, two modes.
	rto        time.Duration
	srtt       time.Duration
	rttvar     time.Duration
	hasRTT     bool
	rttTiming  bool
	karn       bool // a retransmission stopped the timing (stopTiming)
	rttSeq     uint32
	rttStart   Time
	retxOn     bool
	retxAt     Time
	persist    bool
	persistExp uint8
	retries    int

	// Congestion control (RFC 5681, NewReno per RFC 6582).
	cwnd       uint32
	ssthresh   uint32
	dupAcks    int
	inRecovery bool
	recover    uint32
	fastRetx   bool
	// Lost-retransmission detection in recovery: more duplicate ACKs
	// since the last retransmission than segments were in flight when it
	// went out means it was lost too (the network is FIFO enough that it
	// would have been answered by then), so it is sent again instead of
	// waiting for the RTO.
	retxDups   int
	retxFlight int
	cubic      cubicState
	// Undo of a spurious cut (the idea of RFC 3708, as Linux's
	// undo_marker and undo_retrans): a SACK recovery or RTO remembers
	// cwnd and ssthresh before its cut and the ranges it resends; when
	// D-SACKs report every one of them as a duplicate, nothing was lost
	// and the cut is undone (dsackUndo).
	undoOn        bool
	undoResent    [maxUndoRanges]seqRange // resent, not yet reported duplicate
	undoN         int
	priorCwnd     uint32
	priorSsthresh uint32
	// Congestion window validation, as Linux's tcp_cwnd_validate (the
	// idea of RFC 7661): cwnd grows only while the sender fills it, so
	// an application-limited connection does not earn a window it never
	// tested.
	cwndLimited bool   // cwnd held data back in the current round
	maxFlight   uint32 // the most bytes in flight in the current round
	usageSeq    uint32 // the round ends when snd.una reaches it
	lastSend    Time   // the latest transmission of new data
	renoAcked   uint32 // Reno: bytes acknowledged towards the next segment of cwnd
	// sentData: new data went out since Dial, Accept or Restore (lastSend
	// means something); idleRestarted: this idle period's restart is done.
	sentData, idleRestarted bool

	// Tail loss probe (RFC 8985 §7): when the ACKs stop before the RTO,
	// send one segment so that a lost tail (or a lost ACK for it) draws an
	// ACK that drives fast recovery instead of waiting for the RTO.
	tlpOn   bool   // probe timer armed
	tlpAt   Time   // when it fires
	tlpOut  bool   // a probe is unanswered: no other until an ACK covers tlpHigh
	tlpHigh uint32 // snd.max after the probe
	tlpRetx bool   // the probe resent data (so an answer means a loss was repaired)

	// Options agreed in the handshake (offered, before it completes).
	sackOK bool // RFC 2018 SACK
	tsOK   bool // RFC 7323 timestamps

	// Timestamps (options.go).
	tsOffset    uint32 // our TSval is the caller's clock in ms plus this
	tsRecent    uint32 // TS.Recent: the peer's TSval we echo
	tsRecentAt  Time   // when TS.Recent was taken, for PAWS' 24-day rule
	lastAckSent uint32 // Last.ACK.sent (RFC 7323 §4.3)
	sackLast    uint32 // start of the latest out-of-order segment, reported first
	dsack       SACKBlock
	dsackOn     bool // dsack goes first in the next ACK (RFC 2883)

	// The SACK sender (rack.go): records in flight, RACK, PRR.
	txq         txQueue
	sackedBytes uint32
	lostBytes   uint32
	rack        rackState
	prr         prrState
	rtoRecovery bool // an RTO marked everything lost; cleared at recover

	closeOn bool // TIME-WAIT's timer, or an orphan's FIN-WAIT-2 bound
	closeAt Time
	orphan  bool // the application will neither read nor write (Orphan)

	rstPending   bool
	replyPending bool
	reply        Segment

	appState []byte
	stats    Stats
	out      Segment
	scratch  []byte
}

// scratchFor returns a buffer of at least n bytes for payloads that wrap
// around the send ring; it is allocated on first use only.
func (c *Conn) scratchFor(n int) []byte {
	if len(c.scratch) < n {
		c.scratch = make([]byte, max(n, int(c.sndMSS)))
	}
	return c.scratch
}

// defaultPeerMSS is the MSS to assume when the peer sends none (RFC 9293 §3.7.1).
const defaultPeerMSS = 536

// minPeerMSS floors the peer's MSS option, as Linux's TCP_MIN_SND_MSS does,
// so that a SYN cannot make us send one-byte segments (CVE-2019-11479).
const minPeerMSS = 48

func newConn(cfg Config, id ID, iss uint32, now Time) *Conn {
	return initConn(new(Conn), cfg, id, iss, now)
}

// initConn makes c, which nothing refers to yet, a new connection.
func initConn(c *Conn, cfg Config, id ID, iss uint32, now Time) *Conn {
	cfg = cfg.WithDefaults()
	*c = Conn{
		cfg:      cfg,
		id:       id,
		iss:      iss,
		sndUna:   iss,
		sndNxt:   iss,
		sndMax:   iss,
		recover:  iss,
		sndMSS:   min(defaultPeerMSS, cfg.MSS),
		sndBuf:   newRing(cfg.SendBuffer, cfg.Buffers),
		rcvBuf:   newRing(cfg.RecvBuffer, cfg.Buffers),
		rcvShift: cfg.rcvWindowShift(),
		rto:      cfg.InitialRTO,
		ssthresh: 1 << 30,
		lastNow:  now,
		tsOffset: tsOffsetFor(iss, now),
		sackOK:   !cfg.NoSACK,
		tsOK:     !cfg.NoTimestamps,
	}
	c.resetCwnd()
	return c
}

// Dial starts an active open: the conn is SYN-SENT and its first Output
// emits the SYN (with MSS and window-scale options).
func Dial(cfg Config, id ID, iss uint32, now Time) *Conn {
	c := newConn(cfg, id, iss, now)
	c.setState(StateSynSent)
	c.wsOK = true // offered; cleared if the SYN-ACK does not agree (as sackOK and tsOK)
	return c
}

// Accept answers a SYN (passive open): the conn is SYN-RECEIVED and its
// first Output emits the SYN-ACK. id.Local must be the SYN's destination.
func Accept(cfg Config, id ID, syn *Segment, iss uint32, now Time) (*Conn, error) {
	if syn.Flags&(FlagSYN|FlagACK|FlagRST|FlagFIN) != FlagSYN {
		return nil, fmt.Errorf("%w: flags %s, want SYN without ACK, RST or FIN", ErrNotSYN, syn.Flags)
	}
	if syn.DstPort != id.Local.Port() || syn.SrcPort != id.Remote.Port() {
		return nil, fmt.Errorf("%w: ports %d>%d do not match id %v>%v", ErrNotSYN, syn.SrcPort, syn.DstPort, id.Remote, id.Local)
	}
	c := newConn(cfg, id, iss, now)
	c.setState(StateSynReceived)
	c.stats.SegmentsIn++
	c.takeSYN(now, syn)
	c.sndWnd = uint32(syn.Window) // never scaled in a SYN (RFC 7323 §2.2)
	c.maxSndWnd = c.sndWnd
	c.sndWl1 = syn.Seq
	return c, nil
}

// SYN cookies keep no state, so the options a cookie's sequence number
// has no room for ride in the low bits of its SYN-ACK's timestamp, which
// the peer echoes in the ACK that brings the cookie back (Linux's
// cookie_init_timestamp): the peer's window scale (cookieNoWS for none)
// and SACK-permitted. A SYN without timestamps gets neither option.
const (
	cookieWSMask = 0xf
	cookieNoWS   = cookieWSMask
	cookieSACK   = 1 << 4
	cookieTSBits = 6
)

// CookieSYNACK is the SYN-ACK that answers syn with the SYN cookie iss
// when the listener keeps no state: the options Accept would agree to,
// and window unscaled. tsOffset is the
// timestamp clock's offset, which the caller must derive again for
// AcceptCookie (from its secret and what the cookie holds), so the clock
// goes on from this SYN-ACK's.
func CookieSYNACK(cfg Config, id ID, syn *Segment, iss uint32, window uint16, tsOffset uint32, now Time) Segment {
	cfg = cfg.WithDefaults()
	out := Segment{SrcPort: id.Local.Port(), DstPort: id.Remote.Port(), Seq: iss, Ack: syn.Seq + 1,
		Flags: FlagSYN | FlagACK, Window: window, MSS: cfg.MSS, WindowScale: -1}
	if !syn.HasTS || cfg.NoTimestamps {
		return out
	}
	opts := uint32(cookieNoWS)
	if syn.WindowScale >= 0 {
		opts = uint32(min(syn.WindowScale, maxWindowShift))
		out.WindowScale = int8(cfg.rcvWindowShift())
	}
	if syn.SACKPermitted && !cfg.NoSACK {
		opts |= cookieSACK
		out.SACKPermitted = true
	}
	// The clock with its low bits replaced, never ahead of the clock: the
	// connection's first segments must not look older to the peer's PAWS.
	clock := uint32(now/tsTick) + tsOffset
	ts := clock&^(1<<cookieTSBits-1) | opts
	if seqGT(ts, clock) {
		ts -= 1 << cookieTSBits
	}
	out.HasTS, out.TSVal, out.TSEcr = true, ts, syn.TSVal
	return out
}

// AcceptCookie rebuilds the passive open a SYN cookie stood for (the
// stack's listener answered the SYN with CookieSYNACK and kept nothing):
// the peer's ISN irs, ours iss, the MSS the cookie carries and the window
// its SYN-ACK offered. When the ACK that brought the cookie back (ack)
// echoes a timestamp, the window scale and SACK-permitted come back from
// its low bits and the timestamp clock goes on with tsOffset; without
// one, neither side scales and there is no SACK. That SYN-ACK counts as
// sent; Input of ack completes the handshake.
func AcceptCookie(cfg Config, id ID, iss, irs uint32, mss, window uint16, tsOffset uint32, ack *Segment, now Time) *Conn {
	c := newConn(cfg, id, iss, now)
	c.setState(StateSynReceived)
	syn := Segment{Seq: irs, MSS: mss, WindowScale: -1}
	if ack.HasTS && c.tsOK {
		opts := ack.TSEcr & (1<<cookieTSBits - 1)
		syn.HasTS, syn.TSVal = true, ack.TSVal
		syn.SACKPermitted = opts&cookieSACK != 0
		if ws := opts & cookieWSMask; ws != cookieNoWS {
			syn.WindowScale = int8(min(ws, maxWindowShift))
		}
		c.tsOffset = tsOffset
	}
	c.takeSYN(now, &syn)
	c.sndNxt, c.sndMax = iss+1, iss+1
	c.sndWl1 = irs
	c.rcvAdvRight = c.rcvNxt + min(uint32(window), uint32(c.rcvBuf.free())) // never past the buffer
	return c
}

// takeSYN records the peer's initial sequence number and options: each
// option is on when we offered it (or would have) and the SYN carries it.
func (c *Conn) takeSYN(now Time, seg *Segment) {
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq + 1
	c.rcvAdvRight = c.rcvNxt
	mss := seg.MSS
	if mss == 0 {
		mss = defaultPeerMSS
	}
	c.sndMSS = max(min(mss, c.cfg.MSS), minPeerMSS)
	if seg.WindowScale >= 0 && (c.wsOK || c.state == StateSynReceived) {
		c.wsOK = true
		c.sndShift = uint8(seg.WindowScale)
	} else {
		c.wsOK = false
		c.sndShift, c.rcvShift = 0, 0
	}
	c.sackOK = c.sackOK && seg.SACKPermitted
	c.tsOK = c.tsOK && seg.HasTS
	if c.tsOK {
		c.tsRecent, c.tsRecentAt = seg.TSVal, now
		// The option rides on every segment: a full one carries that
		// much less data (RFC 6691; Linux's mss_cache).
		c.sndMSS = max(c.sndMSS-tsOptLen, minPeerMSS)
	}
	if c.state == StateSynSent && c.retries > 1 {
		// The SYN was lost more than once: start from one segment, as
		// RFC 5681 §3.1 says of a lost SYN and Linux's tcp_init_transfer
		// does past one retransmission (the passive side's lost SYN-ACK
		// keeps the RTO's one segment already).
		c.cwnd = uint32(c.sndMSS)
		return
	}
	c.resetCwnd()
}

// resetCwnd sets the initial window of RFC 6928: ten segments, at most
// 14600 bytes unless that is under two segments.
func (c *Conn) resetCwnd() { c.cwnd = c.initialWindow() }

// initialWindow is RFC 6928's initial window for the current MSS.
func (c *Conn) initialWindow() uint32 {
	mss := uint32(c.sndMSS)
	return min(10*mss, max(2*mss, 14600))
}

// State is the current RFC 9293 state.
func (c *Conn) State() State { return c.state }

// setState is the one place a connection changes state, as gVisor's
// setEndpointState is: every transition goes through it (a test checks
// that nothing else assigns c.state), and it records the state entered
// for Transitions.
func (c *Conn) setState(s State) {
	if s == c.state {
		return
	}
	c.state = s
	c.entered |= 1 << s
}

// Transitions returns the states the connection entered since the last
// call (or since Dial, Accept or Restore) and forgets them, so that the
// caller reacts to state changes instead of polling State after every
// Input and Output. A Conn never calls out: like the segments Output
// hands over, transitions wait in the Conn, in a fixed 16-bit set that
// costs no allocation. The set loses only their order, which RFC 9293's
// state diagram gives: no connection enters a state twice.
func (c *Conn) Transitions() StateSet {
	t := c.entered
	c.entered = 0
	return t
}

// ID is the connection's address pair.
func (c *Conn) ID() ID { return c.id }

// Readable is the number of bytes Read can return now.
func (c *Conn) Readable() int { return c.rcvBuf.len() }

// Queued is the bytes in the send buffer (unacknowledged and unsent) and
// the receive buffer: what a snapshot of c carries.
func (c *Conn) Queued() int { return c.sndBuf.len() + c.rcvBuf.len() }

// SendBufferSize is the send buffer's size now (it grows with cwnd,
// up to Config.SendBufferMax).
func (c *Conn) SendBufferSize() int { return c.sndBuf.cap() }

// Writable is the free space in the send buffer (0 once sending is closed).
func (c *Conn) Writable() int {
	if c.err != nil || !c.state.CanSend() || c.closeReq {
		return 0
	}
	return c.sndBuf.free()
}

// Err is the error that ended the connection, or nil.
func (c *Conn) Err() error { return c.err }

// Done reports whether the connection is fully closed, has nothing left to
// emit, and may be forgotten.
func (c *Conn) Done() bool {
	return c.state == StateClosed && !c.rstPending && !c.replyPending
}

// Reusable reports whether syn may open a new connection on c's address
// pair, replacing c: c is done, or in TIME-WAIT and syn is a SYN whose
// sequence number lies beyond everything c received (RFC 9293 §3.6.1) or,
// with timestamps, whose timestamp is newer than any c saw (RFC 6191, as
// Linux's tcp_timewait_state_process). The caller then calls Accept.
func (c *Conn) Reusable(syn *Segment) bool {
	if syn.Flags&(FlagSYN|FlagACK|FlagRST) != FlagSYN {
		return false
	}
	if c.Done() {
		return true
	}
	if c.state != StateTimeWait {
		return false
	}
	if c.tsOK && syn.HasTS && seqLT(syn.TSVal, c.tsRecent) {
		return false // PAWS: an old duplicate, whatever its sequence number (Linux's paws_reject)
	}
	return seqGT(syn.Seq, c.rcvNxt) || c.tsOK && syn.HasTS && seqGT(syn.TSVal, c.tsRecent)
}

// Stats returns the counters and the current congestion-control gauges.
func (c *Conn) Stats() Stats {
	st := c.stats
	st.SRTT, st.RTO, st.Cwnd, st.Ssthresh, st.SndWnd = c.srtt, c.rto, c.cwnd, c.ssthresh, c.sndWnd
	return st
}

// Config is the configuration the connection runs with, after defaults
// (for a restored conn: the buffer sizes and MSS from its snapshot).
func (c *Conn) Config() Config { return c.cfg }

// SetAppState attaches an application blob that AppendSnapshot carries
// along (Migratory TCP's get/set-state). It is copied.
func (c *Conn) SetAppState(b []byte) { c.appState = append(c.appState[:0], b...) }

// AppState is the blob set by SetAppState or restored from a snapshot.
func (c *Conn) AppState() []byte { return c.appState }

// Read moves received bytes into p without blocking: (0, nil) when nothing
// is buffered, io.EOF once the peer's FIN has been read up to, and the
// connection's error after a failure.
func (c *Conn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.rcvBuf.len() == 0 {
		switch {
		case c.finRcvd:
			return 0, io.EOF
		case c.state == StateClosed:
			return 0, ErrClosed
		}
		return 0, nil
	}
	n := c.rcvBuf.read(p)
	if c.ooo.empty() {
		c.rcvBuf.rewind()
	}
	c.maybeWindowUpdate()
	return n, nil
}

// maybeWindowUpdate asks for an ACK when reading opened the window enough
// to be worth announcing (receiver SWS avoidance, RFC 9293 §3.8.6.2.2).
func (c *Conn) maybeWindowUpdate() {
	if !c.state.CanReceive() {
		return
	}
	// The edge windowField would advertise without receiver SWS holding.
	space := uint32(c.rcvBuf.free())
	space -= min(space, c.rcvSlack())
	right := c.rcvNxt + min(space>>c.rcvShift, 0xffff)<<c.rcvShift
	if seqLEQ(right, c.rcvAdvRight) || right-c.rcvAdvRight < c.swsThreshold() {
		return
	}
	// Only a window that had closed to half or less, and at least
	// doubles, is worth an ACK of its own (Linux's tcp_cleanup_rbuf):
	// otherwise the peer is not held back, and the next ACK carries the
	// new edge. An update per read would double a bulk upload's ACKs.
	open := c.rcvAdvRight - c.rcvNxt
	if 2*open <= uint32(c.rcvBuf.cap()) && right-c.rcvNxt >= 2*open {
		c.ackNow = true
	}
}

// swsThreshold is how far the right edge must be able to move before we
// announce it: min(half the buffer, one MSS) (RFC 9293 §3.8.6.2.2).
func (c *Conn) swsThreshold() uint32 {
	return max(min(uint32(c.rcvBuf.cap())/2, uint32(c.cfg.MSS)), 1)
}

// Write queues as much of p as fits in the send buffer without blocking.
func (c *Conn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if !c.state.CanSend() || c.closeReq {
		return 0, ErrClosed
	}
	return c.sndBuf.write(p), nil
}

// Close starts a graceful close: a FIN follows the queued data. Reading
// stays possible until the peer's FIN. In SYN-SENT with nothing queued the
// connection just ends; with data queued, data and FIN follow the handshake.
func (c *Conn) Close() {
	switch c.state {
	case StateSynSent:
		if c.sndBuf.len() == 0 {
			c.setClosed(nil) // RFC 9293 §3.10.4: nothing to deliver
			return
		}
		c.closeReq = true // queued data still goes out, then the FIN
	case StateSynReceived:
		c.closeReq = true
	case StateEstablished:
		c.setState(StateFinWait1)
	case StateCloseWait:
		c.setState(StateLastAck)
	}
}

// Orphan says the application has let the connection go: it will neither
// read nor write again (a full close, where Close alone is a shutdown of
// the sending side). FIN-WAIT-2 is then bounded by Config.FinWait2, after
// which the connection is CLOSED without a word, as Linux's is; a segment
// that arrives later finds no connection and gets a RST.
func (c *Conn) Orphan() {
	c.orphan = true
	c.armFinWait2(c.lastNow)
}

// armFinWait2 starts an orphan's FIN-WAIT-2 bound, once.
func (c *Conn) armFinWait2(now Time) {
	if c.orphan && c.state == StateFinWait2 && !c.closeOn {
		c.closeOn, c.closeAt = true, now+c.cfg.FinWait2
	}
}

// Abort drops the connection: the next Output emits a RST (when the peer
// knows the connection) and the state becomes CLOSED at once.
func (c *Conn) Abort() {
	if c.state == StateClosed || c.state == StateInvalid {
		return
	}
	// RFC 9293 §3.10.5: in CLOSING, LAST-ACK and TIME-WAIT both sides have
	// already sent FIN, so ABORT just deletes the connection; a RST there
	// would only answer a peer that has finished cleanly.
	switch c.state {
	case StateSynSent, StateClosing, StateLastAck, StateTimeWait:
	default:
		c.rstPending = true
	}
	c.setClosed(ErrClosed)
}

// setClosed enters CLOSED, records err (if none yet) and stops all timers.
func (c *Conn) setClosed(err error) {
	c.setState(StateClosed)
	if c.err == nil {
		c.err = err
	}
	c.retxOn, c.persist, c.ackTimer, c.ackNow, c.closeOn, c.fastRetx = false, false, false, false, false, false
	c.tlpOn, c.tlpOut = false, false
	c.rack.timerOn = false
	c.dupOwed = 0
	c.releaseBuffers()
}

// Recycle gives the connection's queues to its Config's BufferPool, data
// and all: c is done with for good, as an origin's connection is once its
// state reached the migration's target. c must not be used after.
func (c *Conn) Recycle() {
	c.sndBuf.drop()
	c.rcvBuf.drop()
}

// releaseBuffers lets go of the memory a connection needs only while data
// moves: a server's TIME-WAIT connections outnumber its live ones after a
// burst of short requests, and each would otherwise keep its rings.
func (c *Conn) releaseBuffers() {
	c.sndBuf.release()
	c.rcvBuf.release()
	c.txq = txQueue{}
	c.scratch = nil
}

func (c *Conn) enterTimeWait(now Time) {
	c.setState(StateTimeWait)
	c.retxOn, c.persist = false, false
	c.tlpOn, c.tlpOut = false, false
	c.rack.timerOn = false
	c.closeOn = true
	c.closeAt = now + c.cfg.TimeWait
	c.releaseBuffers()
}

// Deadline is the earliest time Output has work to do: a pending timer, or
// the time of the latest Input/Output call when something is due at once
// (an ACK, data the windows allow, a RST). ok is false when nothing is due.
// Call Output after Input, Read, Write, Close and Abort as well.
func (c *Conn) Deadline() (t Time, ok bool) {
	if c.immediate() {
		return c.lastNow, true
	}
	if c.state == StateClosed || c.state == StateInvalid {
		return 0, false
	}
	pick := func(on bool, at Time) {
		if on && (!ok || at < t) {
			t, ok = at, true
		}
	}
	pick(c.retxOn, c.retxAt)
	pick(c.tlpOn, c.tlpAt)
	pick(c.rack.timerOn, c.rack.timerAt)
	pick(c.ackTimer, c.ackAt)
	pick(c.closeOn, c.closeAt)
	return t, ok
}

func (c *Conn) immediate() bool {
	if c.replyPending || c.rstPending {
		return true
	}
	if c.state == StateClosed || c.state == StateInvalid {
		return false
	}
	if c.ackNow || c.fastRetx || c.dupOwed > 0 {
		return true
	}
	_, _, ok := c.nextSegment()
	return ok
}
