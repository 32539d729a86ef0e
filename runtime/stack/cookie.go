package stack

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// SYN cookies (RFC 4987 §3.6), for a listener whose backlog is full: the
// SYN is answered with a SYN-ACK whose sequence number encodes the
// connection, and nothing is kept; the ACK that completes the handshake
// carries it back, and the connection is built then. A SYN flood whose
// SYN-ACKs go unanswered then fills the backlog without shutting
// legitimate clients out.
//
// The cookie: 5 bits of a 64-second counter, 3 bits of an MSS index, and
// 24 bits of a keyed hash (the stack's secret key) over the address pair,
// the counter, the client's ISN and the MSS index. It is good for the
// counter period it was made in and the next. What it cannot hold, the
// client's window scale and SACK-permitted, rides in the low bits of the
// SYN-ACK's timestamp when the client sent one (tcp.CookieSYNACK), as on
// Linux; without timestamps neither side scales and there is no SACK.
// The timestamp clock's offset comes from the same keyed hash, so the
// connection's clock goes on from the SYN-ACK's.

// cookieMSS are the MSS values a cookie can carry: the client's MSS is
// rounded down to one of them.
var cookieMSS = [8]uint16{536, 1200, 1300, 1400, 1440, 1452, 1460, 8960}

const cookiePeriod = 64 * time.Second

func cookieCounter(now tcp.Time) uint32 { return uint32(now/cookiePeriod) & 31 }

// cookieHash is the 24-bit keyed hash of a cookie, and the offset of the
// connection's timestamp clock.
func (s *Stack) cookieHash(id tcp.ID, counter, irs uint32, mssIdx int) (hash, tsOffset uint32) {
	var b [32 + 12 + 9]byte
	copy(b[:32], s.key[:])
	l, r := id.Local.Addr().As4(), id.Remote.Addr().As4()
	copy(b[32:36], l[:])
	copy(b[36:40], r[:])
	binary.BigEndian.PutUint16(b[40:42], id.Local.Port())
	binary.BigEndian.PutUint16(b[42:44], id.Remote.Port())
	binary.BigEndian.PutUint32(b[44:48], counter)
	binary.BigEndian.PutUint32(b[48:52], irs)
	b[52] = byte(mssIdx)
	h := sha256.Sum256(b[:])
	return binary.BigEndian.Uint32(h[:4]) & 0xffffff, binary.BigEndian.Uint32(h[4:8])
}

// cookie is the ISN a SYN-ACK carries for a SYN from id with ISN irs and
// MSS mss, and the timestamp clock's offset.
func (s *Stack) cookie(id tcp.ID, irs uint32, now tcp.Time, mss uint16) (cookie, tsOffset uint32) {
	idx := 0
	for i, m := range cookieMSS {
		if m <= mss {
			idx = i
		}
	}
	c := cookieCounter(now)
	h, ts := s.cookieHash(id, c, irs, idx)
	return c<<27 | uint32(idx)<<24 | h, ts
}

// checkCookie validates a cookie that came back: made from id's ISN irs
// in this counter period or the last. It returns the MSS it carries and
// the timestamp clock's offset.
func (s *Stack) checkCookie(id tcp.ID, irs, cookie uint32, now tcp.Time) (mss uint16, tsOffset uint32, ok bool) {
	c, idx := cookie>>27, int(cookie>>24&7)
	now32 := cookieCounter(now)
	if c != now32 && c != (now32-1)&31 {
		return 0, 0, false
	}
	h, ts := s.cookieHash(id, c, irs, idx)
	if h != cookie&0xffffff {
		return 0, 0, false
	}
	return cookieMSS[idx], ts, true
}

// sendCookie answers syn with a cookie SYN-ACK, keeping nothing.
func (s *Stack) sendCookie(now tcp.Time, id tcp.ID, syn *tcp.Segment) {
	mss := syn.MSS
	if mss == 0 {
		mss = 536 // RFC 9293 §3.7.1's default
	}
	cfg := s.cfg.TCP.WithDefaults()
	cookie, tsOffset := s.cookie(id, syn.Seq, now, min(mss, cfg.MSS))
	synack := tcp.CookieSYNACK(cfg, id, syn, cookie, s.cookieWindow(), tsOffset, now)
	s.ctr.SYNCookiesSent++
	s.sendSegment(now, id, &synack) // the client retransmits its SYN if it is lost
}

// cookieWindow is the window a cookie SYN-ACK offers: the receive
// buffer, unscaled.
func (s *Stack) cookieWindow() uint16 {
	return uint16(min(s.cfg.TCP.WithDefaults().RecvBuffer, 65535))
}

// acceptCookie builds the connection a valid cookie in ack stands for,
// queues it on l and reports whether it did; false leaves ack to the
// caller (a RST, as for any stray ACK).
func (s *Stack) acceptCookie(now tcp.Time, l *Listener, id tcp.ID, ack *tcp.Segment) bool {
	irs, iss := ack.Seq-1, ack.Ack-1
	mss, tsOffset, ok := s.checkCookie(id, irs, iss, now)
	if !ok {
		s.ctr.SYNCookiesRejected++
		return false
	}
	if len(l.queue) >= s.cfg.Backlog {
		s.drop(DropBacklogFull) // the accept queue itself is full: the client retransmits
		return true
	}
	c := s.newConn(tcp.AcceptCookie(s.cfg.TCP, id, iss, irs, mss, s.cookieWindow(), tsOffset, ack, now), id)
	c.lis = l
	l.pending++
	s.ctr.SYNCookiesAccepted++
	c.tc.Input(now, ack)
	s.output(now, c)
	return true
}
