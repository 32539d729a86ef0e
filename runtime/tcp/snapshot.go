package tcp

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Snapshot format, version 3. All integers are big-endian.
//
//	magic "CPYT", version 3
//	local, remote    addrport: family u8 (0 none, 4, 6), address 4|16 bytes, port u16
//	state u8, err u8 (0 none, 1 reset, 2 timeout, 3 closed, 4 refused)
//	flags u8         bit0 wsOK, bit1 closeReq, bit2 finRcvd, bit3 rcvFinOOO,
//	                 bit4 SACK agreed, bit5 timestamps agreed
//	iss, irs u32
//	sndUna, sndNxt, sndMax, sndWnd, maxSndWnd, sndWl1, sndWl2 u32
//	sndShift, rcvShift u8, sndMSS, advMSS u16
//	sendBuffer, recvBuffer u32 (buffer sizes)
//	rcvNxt, rcvAdvRight, rcvFinSeq u32
//	rto u32          microseconds, backed off
//	timer u8         0 none, 1 retransmission, 2 persist
//	timerLeft u32    microseconds until it fires at the snapshot's time
//	persistExp u8, retries u8
//	tsClock u32      our timestamp clock at the snapshot's time (0 without timestamps)
//	tsRecent u32     TS.Recent, the peer's timestamp we echo
//	unacked  u32 length + bytes   (send queue up to sndMax)
//	unsent   u32 length + bytes   (send queue after sndMax)
//	recvq    u32 length + bytes   (received, not yet read; reader_next = rcvNxt - length)
//	ooo      u8 count, then per range: start u32, length u32, bytes
//	appState u32 length + bytes
//
// The retransmission/persist timer moves, as the time it had left, the
// backed-off RTO and the retry count: a connection asked to move more often
// than its RTO (a client that stopped reading, a lost segment) would
// otherwise restart the timer at every restore and never retransmit or give
// up. Congestion control and the RTT estimator do not move: a restored
// connection starts with the initial cwnd and no RTT sample, like a fresh
// path.
//
// Version 3 added the options (RFC 2018 SACK, RFC 7323 timestamps): the
// target keeps sending what was negotiated, its timestamp clock goes on
// from the origin's (so the peer's PAWS check never sees it go back), and
// it echoes the peer's last timestamp. The SACK scoreboard does not move:
// the in-flight data becomes unSACKed records sent at the restore time,
// which at worst resends what the peer already holds, and the peer
// repeats its SACK blocks on every ACK while holes remain.
const (
	snapshotMagic   = "CPYT"
	snapshotVersion = 3
)

// Snapshot timer kinds.
const (
	snapTimerNone = iota
	snapTimerRetransmit
	snapTimerPersist
)

const (
	snapWsOK = 1 << iota
	snapCloseReq
	snapFinRcvd
	snapFinOOO
	snapSACK
	snapTS
	snapFlagsAll = snapWsOK | snapCloseReq | snapFinRcvd | snapFinOOO | snapSACK | snapTS
)

var snapErrors = [...]error{nil, ErrReset, ErrTimeout, ErrClosed, ErrRefused}

func errCode(err error) uint8 {
	for i, e := range snapErrors {
		if e == err {
			return uint8(i)
		}
	}
	return uint8(len(snapErrors)) // unknown errors cannot be produced; keep the encoding total
}

// AppendSnapshot appends the connection's movable state at time now to
// dst. It does not change c, so a caller may snapshot, ship, and keep going
// on failure.
func (c *Conn) AppendSnapshot(dst []byte, now Time) []byte {
	dst = slices.Grow(dst, c.snapshotSize()) // one allocation, not one per field that overflows
	dst = append(dst, snapshotMagic...)
	dst = append(dst, snapshotVersion)
	dst = appendAddrPort(dst, c.id.Local)
	dst = appendAddrPort(dst, c.id.Remote)
	var flags uint8
	if c.wsOK {
		flags |= snapWsOK
	}
	if c.closeReq {
		flags |= snapCloseReq
	}
	if c.finRcvd {
		flags |= snapFinRcvd
	}
	if c.rcvFinOOO {
		flags |= snapFinOOO
	}
	if c.sackOK {
		flags |= snapSACK
	}
	var tsClock uint32
	if c.tsOK {
		flags |= snapTS
		tsClock = c.tsClock(now)
	}
	dst = append(dst, byte(c.state), errCode(c.err), flags)
	for _, v := range [...]uint32{c.iss, c.irs, c.sndUna, c.sndNxt, c.sndMax, c.sndWnd, c.maxSndWnd, c.sndWl1, c.sndWl2} {
		dst = binary.BigEndian.AppendUint32(dst, v)
	}
	dst = append(dst, c.sndShift, c.rcvShift)
	dst = binary.BigEndian.AppendUint16(dst, c.sndMSS)
	dst = binary.BigEndian.AppendUint16(dst, c.cfg.MSS)
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.sndBuf.cap()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(c.rcvBuf.cap()))
	dst = binary.BigEndian.AppendUint32(dst, c.rcvNxt)
	dst = binary.BigEndian.AppendUint32(dst, c.rcvAdvRight)
	dst = binary.BigEndian.AppendUint32(dst, c.rcvFinSeq)
	dst = binary.BigEndian.AppendUint32(dst, micros(c.rto))
	timer, left := uint8(snapTimerNone), Time(0)
	if c.retxOn {
		timer, left = snapTimerRetransmit, max(c.retxAt-now, 0)
		if c.persist {
			timer = snapTimerPersist
		}
	}
	dst = append(dst, timer)
	dst = binary.BigEndian.AppendUint32(dst, micros(left))
	dst = append(dst, c.persistExp, uint8(min(c.retries, 255)))
	dst = binary.BigEndian.AppendUint32(dst, tsClock)
	dst = binary.BigEndian.AppendUint32(dst, c.tsRecent)

	unacked := c.unackedLen()
	dst = appendRing(dst, &c.sndBuf, 0, unacked)
	dst = appendRing(dst, &c.sndBuf, unacked, c.sndBuf.len()-unacked)
	dst = appendRing(dst, &c.rcvBuf, 0, c.rcvBuf.len())

	dst = append(dst, byte(c.ooo.n))
	readerNext := c.rcvNxt - uint32(c.rcvBuf.len())
	for i := 0; i < c.ooo.n; i++ {
		r := c.ooo.r[i]
		dst = binary.BigEndian.AppendUint32(dst, r.start)
		dst = appendRing(dst, &c.rcvBuf, int(r.start-readerNext), int(r.end-r.start))
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(c.appState)))
	return append(dst, c.appState...)
}

// snapshotFixed bounds a snapshot's bytes besides its queued data, its
// out-of-order ranges and its application state: magic, version, two
// addresses of up to 19 bytes, state, error and flags, nine sequence
// variables, shifts, two MSS, five more uint32s, the timer (rto, kind,
// time left, persist exponent, retries), the timestamp clock and
// TS.Recent, three ring lengths, the range count and the application
// state's length.
const snapshotFixed = len(snapshotMagic) + 1 + 2*19 + 3 + 9*4 + 2 + 2*2 + 5*4 + (4 + 1 + 4 + 2) + 2*4 + 3*4 + 1 + 4

// micros is d in microseconds, saturated to a uint32 (71 minutes: beyond
// any MaxRTO).
func micros(d time.Duration) uint32 {
	return uint32(min(max(d/time.Microsecond, 0), math.MaxUint32))
}

// SnapshotSize bounds the length AppendSnapshot would append now, with app
// as the application state: a migration takes a buffer that fits.
func (c *Conn) SnapshotSize(app []byte) int {
	return c.snapshotSize() - len(c.appState) + len(app)
}

// snapshotSize bounds the length of AppendSnapshot's output.
func (c *Conn) snapshotSize() int {
	n := snapshotFixed + c.sndBuf.len() + c.rcvBuf.len() + len(c.appState)
	for i := 0; i < c.ooo.n; i++ {
		n += 8 + int(c.ooo.r[i].end-c.ooo.r[i].start)
	}
	return n
}

// unackedLen is how many queued data bytes have been sent at least once.
func (c *Conn) unackedLen() int {
	if c.state.Handshaking() {
		return 0
	}
	return min(int(c.sndMax-c.sndUna), c.sndBuf.len())
}

func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	switch {
	case !a.IsValid():
		return append(dst, 0)
	case a.Is4():
		b := a.As4()
		dst = append(append(dst, 4), b[:]...)
	default:
		b := a.As16()
		dst = append(append(dst, 6), b[:]...)
	}
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// appendRing appends a u32 length and n ring bytes from offset off.
func appendRing(dst []byte, r *ring, off, n int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	start := len(dst)
	dst = grow(dst, n)
	r.peekInto(off, dst[start:])
	return dst
}

// decoder reads a snapshot and remembers the first failure.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(err error, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format+" (at byte %d)", append([]any{err}, append(args, d.off)...)...)
	}
}

func (d *decoder) take(n int, what string) []byte { return d.takePart(n, what, "") }

// takePart is take for a named part of a field; the two names are joined
// only for an error message, so the success path does not allocate.
func (d *decoder) takePart(n int, what, part string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b)-d.off < n {
		d.fail(ErrSnapshotTruncated, "%s%s needs %d bytes, %d left", what, part, n, len(d.b)-d.off)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u8(what string) uint8 { return d.u8Part(what, "") }

func (d *decoder) u8Part(what, part string) uint8 {
	if p := d.takePart(1, what, part); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 { return d.u16Part(what, "") }

func (d *decoder) u16Part(what, part string) uint16 {
	if p := d.takePart(2, what, part); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 { return d.u32Part(what, "") }

func (d *decoder) u32Part(what, part string) uint32 {
	if p := d.takePart(4, what, part); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// bytes reads a u32 length and that many bytes, refusing more than max.
func (d *decoder) bytes(what string, max int) []byte {
	n := d.u32Part(what, " length")
	if d.err == nil && uint64(n) > uint64(max) {
		d.fail(ErrSnapshotCorrupt, "%s length %d exceeds %d", what, n, max)
		return nil
	}
	return d.take(int(n), what)
}

func (d *decoder) addrPort(what string) netip.AddrPort {
	switch fam := d.u8Part(what, " family"); fam {
	case 0:
		return netip.AddrPort{}
	case 4:
		p := d.take(4, what)
		port := d.u16Part(what, " port")
		if p == nil {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(p)), port)
	case 6:
		p := d.take(16, what)
		port := d.u16Part(what, " port")
		if p == nil {
			return netip.AddrPort{}
		}
		a := netip.AddrFrom16([16]byte(p))
		if a.Is4In6() {
			// An IPv4-mapped address would re-encode as family 4.
			d.fail(ErrSnapshotCorrupt, "%s is an IPv4-mapped IPv6 address; encode it as IPv4", what)
		}
		return netip.AddrPortFrom(a, port)
	default:
		d.fail(ErrSnapshotCorrupt, "%s family %d, want 0, 4 or 6", what, fam)
		return netip.AddrPort{}
	}
}

// Restore rebuilds a connection from AppendSnapshot output. cfg supplies
// the timer and retry settings; the buffer sizes, MSS and window scales
// come from the snapshot, since the peer already relies on them. The
// congestion window, the RTO estimator and the timers start afresh at now;
// an ACK carrying the current window is due at once so that the peer's view
// of our window is refreshed after the move. Every field is validated; bad
// input returns an error wrapping ErrSnapshotTruncated, ErrSnapshotMagic,
// ErrSnapshotVersion or ErrSnapshotCorrupt, never a panic.
func Restore(cfg Config, b []byte, now Time) (*Conn, error) {
	return RestoreLimited(cfg, b, now, maxBuffer)
}

// RestoreLimited is Restore for a snapshot from another host: it refuses,
// with ErrSnapshotTooLarge and before allocating anything, a snapshot that
// declares a send or receive buffer over limit bytes. A migration
// target caps what a peer can make it allocate this way.
func RestoreLimited(cfg Config, b []byte, now Time, limit int) (*Conn, error) {
	return RestoreInto(nil, cfg, b, now, limit)
}

// RestoreInto is RestoreLimited into dst, a new(Conn) made beforehand that
// nothing else refers to (nil: a new one), so that a migration's restore
// need not allocate it. When the snapshot is refused nothing refers to dst,
// which may be used again.
func RestoreInto(dst *Conn, cfg Config, b []byte, now Time, limit int) (*Conn, error) {
	d := &decoder{b: b}
	if m := d.take(len(snapshotMagic), "magic"); m != nil && string(m) != snapshotMagic {
		return nil, fmt.Errorf("%w: magic %q, want %q", ErrSnapshotMagic, m, snapshotMagic)
	}
	if v := d.u8("version"); d.err == nil && v != snapshotVersion {
		if v < snapshotVersion {
			return nil, fmt.Errorf("%w: version %d comes from an older build, which did not carry the SACK and timestamp options; "+
				"this build reads version %d only: migrate between hosts running the same capygen build", ErrSnapshotVersion, v, snapshotVersion)
		}
		return nil, fmt.Errorf("%w: version %d comes from a newer build; this build reads version %d only: "+
			"migrate between hosts running the same capygen build", ErrSnapshotVersion, v, snapshotVersion)
	}
	var id ID
	id.Local = d.addrPort("local address")
	id.Remote = d.addrPort("remote address")
	state := State(d.u8("state"))
	ec := d.u8("error code")
	flags := d.u8("flags")
	var w [9]uint32
	for i := range w {
		w[i] = d.u32("sequence variables")
	}
	sndShift, rcvShift := d.u8("send window scale"), d.u8("receive window scale")
	sndMSS, advMSS := d.u16("send MSS"), d.u16("advertised MSS")
	sndCap, rcvCap := d.u32("send buffer size"), d.u32("receive buffer size")
	rcvNxt, rcvAdvRight, rcvFinSeq := d.u32("rcv.nxt"), d.u32("advertised right edge"), d.u32("FIN sequence")
	rto := time.Duration(d.u32("rto")) * time.Microsecond
	timer := d.u8("timer")
	left := time.Duration(d.u32("timer left")) * time.Microsecond
	persistExp, retries := d.u8("persist exponent"), d.u8("retries")
	tsClock, tsRecent := d.u32("timestamp clock"), d.u32("TS.Recent")
	if d.err != nil {
		return nil, d.err
	}
	switch {
	case !state.Valid() || state == StateListen:
		d.fail(ErrSnapshotCorrupt, "state %d is not a connection state", state)
	case int(ec) >= len(snapErrors):
		d.fail(ErrSnapshotCorrupt, "error code %d, want < %d", ec, len(snapErrors))
	case flags&^snapFlagsAll != 0:
		d.fail(ErrSnapshotCorrupt, "flags %#x has unknown bits", flags)
	case sndShift > maxWindowShift || rcvShift > maxWindowShift:
		d.fail(ErrSnapshotCorrupt, "window scales %d/%d exceed %d", sndShift, rcvShift, maxWindowShift)
	case sndMSS < minPeerMSS || advMSS < minMSS:
		d.fail(ErrSnapshotCorrupt, "MSS %d/%d out of range", sndMSS, advMSS)
	case sndCap < minBuffer || sndCap > maxBuffer || rcvCap < minBuffer || rcvCap > maxBuffer:
		d.fail(ErrSnapshotCorrupt, "buffer sizes %d/%d outside [%d, %d]", sndCap, rcvCap, minBuffer, maxBuffer)
	case rcvShift != 0 && windowShift(int(rcvCap)) > rcvShift:
		d.fail(ErrSnapshotCorrupt, "receive window scale %d cannot announce a %d-byte buffer", rcvShift, rcvCap)
	case timer > snapTimerPersist:
		d.fail(ErrSnapshotCorrupt, "timer kind %d, want 0 (none), 1 (retransmission) or 2 (persist)", timer)
	case timer == snapTimerNone && left != 0:
		d.fail(ErrSnapshotCorrupt, "%v left on no timer", left)
	case rto == 0:
		d.fail(ErrSnapshotCorrupt, "rto 0")
	case flags&snapTS == 0 && (tsClock != 0 || tsRecent != 0):
		d.fail(ErrSnapshotCorrupt, "timestamp clock %d and TS.Recent %d without timestamps", tsClock, tsRecent)
	}
	if d.err != nil {
		return nil, d.err
	}
	if int64(sndCap) > int64(limit) || int64(rcvCap) > int64(limit) {
		return nil, fmt.Errorf("%w: send/receive buffers of %d/%d bytes, the limit is %d; raise the restore limit to accept it",
			ErrSnapshotTooLarge, sndCap, rcvCap, limit)
	}
	cfg = cfg.WithDefaults()
	cfg.MSS = advMSS
	cfg.SendBuffer, cfg.RecvBuffer = int(sndCap), int(rcvCap)
	// Grown buffers keep their size, and grow on as far as this host allows.
	cfg.RecvBufferMax = max(cfg.RecvBufferMax, cfg.RecvBuffer)
	cfg.SendBufferMax = max(cfg.SendBufferMax, cfg.SendBuffer)
	if dst == nil {
		dst = new(Conn)
	}
	c := initConn(dst, cfg, id, w[0], now)
	c.setState(state)
	c.err = snapErrors[ec]
	c.wsOK = flags&snapWsOK != 0
	c.closeReq = flags&snapCloseReq != 0
	c.finRcvd = flags&snapFinRcvd != 0
	c.rcvFinOOO = flags&snapFinOOO != 0
	c.sackOK = flags&snapSACK != 0
	c.tsOK = flags&snapTS != 0
	if c.tsOK {
		// Our clock goes on from the origin's: never backwards for the peer.
		c.tsOffset = tsClock - uint32(now/tsTick)
		c.tsRecent, c.tsRecentAt = tsRecent, now
	}
	c.irs, c.sndUna, c.sndNxt, c.sndMax = w[1], w[2], w[3], w[4]
	c.sndWnd, c.maxSndWnd, c.sndWl1, c.sndWl2 = w[5], w[6], w[7], w[8]
	c.sndShift, c.rcvShift, c.sndMSS = sndShift, rcvShift, sndMSS
	c.rcvNxt, c.rcvAdvRight, c.rcvFinSeq = rcvNxt, rcvAdvRight, rcvFinSeq
	c.resetCwnd()

	unacked := d.bytes("unacked queue", int(sndCap))
	unsent := d.bytes("unsent queue", int(sndCap))
	recvq := d.bytes("receive queue", int(rcvCap))
	if d.err != nil {
		return nil, d.err
	}
	if len(unacked)+len(unsent) > int(sndCap) {
		return nil, fmt.Errorf("%w: %d queued send bytes exceed the %d-byte send buffer", ErrSnapshotCorrupt, len(unacked)+len(unsent), sndCap)
	}
	c.sndBuf.write(unacked)
	c.sndBuf.write(unsent)
	c.rcvBuf.write(recvq)
	readerNext := rcvNxt - uint32(len(recvq))
	if end := c.rcvBufEnd(); seqGT(c.rcvAdvRight, end) {
		// An older build's held edge could pass its buffer (rounding to
		// the window scale); nothing past the buffer fits here either.
		c.rcvAdvRight = end
	}
	nooo := int(d.u8("out-of-order count"))
	if d.err == nil && nooo > maxHoles {
		d.fail(ErrSnapshotCorrupt, "%d out-of-order ranges, at most %d", nooo, maxHoles)
	}
	prevEnd := rcvNxt
	for i := 0; i < nooo && d.err == nil; i++ {
		start := d.u32("out-of-order start")
		data := d.bytes("out-of-order data", int(rcvCap))
		if d.err != nil {
			break
		}
		end := start + uint32(len(data))
		off := int64(start - readerNext)
		switch {
		case len(data) == 0 || !seqGT(start, prevEnd):
			d.fail(ErrSnapshotCorrupt, "out-of-order range %d [%d,%d) is empty, unsorted or touches the previous one", i, start, end)
		case !seqGT(start, rcvNxt) || off+int64(len(data)) > int64(rcvCap) || uint64(start-readerNext) >= uint64(rcvCap):
			d.fail(ErrSnapshotCorrupt, "out-of-order range %d [%d,%d) lies outside the receive buffer", i, start, end)
		default:
			c.rcvBuf.writeAt(int(off), data)
			c.ooo.r[c.ooo.n] = seqRange{start, end}
			c.ooo.n++
			prevEnd = end
		}
	}
	c.appState = append([]byte(nil), d.bytes("application state", len(b))...)
	if d.err == nil && d.off != len(b) {
		d.fail(ErrSnapshotCorrupt, "%d trailing bytes", len(b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := c.checkInvariants(len(unacked)); err != nil {
		return nil, err
	}
	if len(c.appState) == 0 {
		c.appState = nil
	}
	c.recover = c.sndMax
	c.lastAckSent = c.rcvNxt
	c.rack.dsackRound, c.rack.fack = c.sndUna, c.sndUna
	c.rebuildRecords(now)
	c.rearm(now)
	// The origin's timer goes on where it was; this host's RTO bounds
	// apply (the peers' configurations may differ).
	c.rto = min(max(rto, cfg.MinRTO), cfg.MaxRTO)
	c.retries = int(retries)
	// A persist timer runs with nothing in flight (the window is shut on
	// unsent data), so rearm alone would not restart it.
	if timer != snapTimerNone && (c.retxOn || timer == snapTimerPersist && c.state.Synchronized()) {
		c.retxOn = true
		c.retxAt = now + min(left, cfg.MaxRTO)
		c.persist = timer == snapTimerPersist
	}
	c.persistExp = persistExp
	return c, nil
}

// checkInvariants rejects sequence variables that no live connection has.
func (c *Conn) checkInvariants(unacked int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrSnapshotCorrupt}, args...)...)
	}
	hs := c.state.Handshaking()
	switch {
	case hs && c.sndUna != c.iss:
		return bad("snd.una %d != iss %d during the handshake", c.sndUna, c.iss)
	case seqGT(c.sndUna, c.sndNxt) || seqGT(c.sndNxt, c.sndMax):
		return bad("need snd.una %d <= snd.nxt %d <= snd.max %d", c.sndUna, c.sndNxt, c.sndMax)
	case int64(c.sndMax-c.sndUna) > int64(c.sndBuf.cap())+2:
		return bad("%d bytes in flight exceed the send buffer", c.sndMax-c.sndUna)
	case hs && unacked != 0:
		return bad("%d unacked data bytes before the handshake completed", unacked)
	case !hs && unacked != c.unackedLen():
		return bad("unacked queue holds %d bytes, sequence numbers say %d", unacked, c.unackedLen())
	case c.sndWnd > 0xffff<<c.sndShift || c.maxSndWnd < c.sndWnd && c.state.Synchronized():
		return bad("send window %d (max %d) impossible with scale %d", c.sndWnd, c.maxSndWnd, c.sndShift)
	case c.rcvShift != 0 && !c.wsOK || c.sndShift != 0 && !c.wsOK:
		return bad("window scales set without window scaling")
	case c.rcvFinOOO && (c.finRcvd || !seqGT(c.rcvFinSeq, c.rcvNxt)):
		return bad("out-of-order FIN at %d with rcv.nxt %d", c.rcvFinSeq, c.rcvNxt)
	case !c.rcvFinOOO && c.rcvFinSeq != 0:
		return bad("FIN sequence %d without an out-of-order FIN", c.rcvFinSeq)
	case c.rcvFinOOO && c.ooo.n > 0 && seqGT(c.ooo.r[c.ooo.n-1].end, c.rcvFinSeq):
		return bad("out-of-order data beyond the FIN at %d", c.rcvFinSeq)
	case c.finRcvd && c.ooo.n > 0:
		return bad("out-of-order data after the peer's FIN")
	case c.finRcvd != finReceivedIn(c.state) && c.state != StateClosed:
		return bad("FIN received flag %v contradicts state %v", c.finRcvd, c.state)
	}
	return nil
}

// finReceivedIn reports whether the peer's FIN has been taken in s.
func finReceivedIn(s State) bool {
	return s == StateCloseWait || s == StateClosing || s == StateLastAck || s == StateTimeWait
}

// rearm restarts the timers a restored connection needs.
func (c *Conn) rearm(now Time) {
	c.lastNow = now
	switch {
	case c.state == StateClosed:
		return
	case c.state == StateTimeWait:
		c.closeOn, c.closeAt = true, now+c.cfg.TimeWait
		return
	}
	if c.sndUna != c.sndMax || c.state.Handshaking() && c.sndNxt != c.iss {
		c.retxOn, c.retxAt = true, now+c.rto
	}
	if c.state.Synchronized() {
		c.ackNow = true
	}
}
