package migrate

import (
	"net/netip"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/tcp"
)

// An abort resets the connection, and its RST clears the switch's entry,
// so the client's answers to the abort's probes (Frozen.Abort) go to the
// server the client knows, the header's origin. Its reset ends the client's
// connection. When that server is not the one aborting, the connection
// moved from it, and a tombstone there (Config.Tombstone from the move)
// would drop the answers silently; conn_aborted ends it.

// abortNoticeSpan is how many migrations after the one that took a
// connection away an abort may be, for its conn_aborted to end the
// tombstone. Epochs count a connection's migrations on from that one
// (Start), across servers; a new connection of the same addresses draws
// its first epoch at random, so a late notice about an old one rarely
// matches. Beyond the span, the abort's last probe (probeLater) still
// comes after the tombstone.
const abortNoticeSpan = 32

// noticeLead is how long before each of the abort's later probes
// (tcp.AbortProbesAfter) conn_aborted goes again: a notice that was lost
// is replaced ahead of the answer the probe draws.
const noticeLead = time.Millisecond

// noticeAbort tells the server the client knows that this server reset o's
// connection, which had moved here from it. It goes before the RST, so
// that it arrives before the client's first answer, and again before each
// later probe. e.mu is held.
func (e *Engine) noticeAbort(now tcp.Time, o *outgoing) {
	if netip.AddrFrom4(o.k.originIP) == e.self {
		return
	}
	e.sendAbortNotice(o.k)
	for _, after := range tcp.AbortProbesAfter {
		e.schedule(timerEntry{at: now + after - noticeLead, kind: timerNotice, k: o.k})
	}
}

// sendAbortNotice sends conn_aborted for k to its origin address. If every
// one is lost, probeLater's probe still resets the client. e.mu is held.
func (e *Engine) sendAbortNotice(k key) {
	m := &e.msg.aborted
	*m = tcpmig.ConnAborted{TCPMigFields: k.fields()}
	if e.send(netip.AddrFrom4(k.originIP), m) == nil {
		e.stats.AbortNotices++
	}
}

// onAbortNotice ends the tombstone of the connection a conn_aborted names,
// if it left here by an earlier migration within abortNoticeSpan. e.mu is
// held.
func (e *Engine) onAbortNotice(stage tcpmig.Stage, payload []byte) bool {
	if stage != tcpmig.StageConnAborted {
		return false
	}
	var m tcpmig.ConnAborted
	if m.Decode(payload) != nil {
		e.stats.BadMessages++
		return true
	}
	k := keyOf(&m.TCPMigFields)
	id := k.idAt(e.self)
	tb, ok := e.tombs[id]
	if netip.AddrFrom4(k.originIP) != e.self || !ok || !epochAfter(k.epoch, tb.epoch, abortNoticeSpan) {
		e.stats.Ignored++
		return true
	}
	e.untomb(id)
	e.stats.TombstonesEnded++
	return true
}

// epochAfter reports whether epoch b comes 1 to span migrations after a.
// Epochs run 1..255 and wrap to 1 (Start).
func epochAfter(b, a uint8, span int) bool {
	d := (int(b) - int(a) + 255) % 255
	return d >= 1 && d <= span
}
