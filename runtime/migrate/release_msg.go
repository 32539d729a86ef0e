package migrate

import "github.com/capygen/capygen/generated/tcpmig"

// sendRelease sends conn_closed for k to the switch, which clears the key
// on every level and echoes the datagram back. e.mu is held.
func (e *Engine) sendRelease(k key) bool {
	m := &e.msg.closed
	*m = tcpmig.ConnClosed{TCPMigFields: k.fields()}
	return e.send(e.cfg.Switch, m) == nil
}

// onReleaseEcho takes the switch's echo of a conn_closed: the entry is gone,
// so the release stops. e.mu is held.
func (e *Engine) onReleaseEcho(stage tcpmig.Stage, payload []byte) bool {
	if stage != tcpmig.StageConnClosed {
		return false
	}
	var m tcpmig.ConnClosed
	if m.Decode(payload) != nil {
		e.stats.BadMessages++
		return true
	}
	k := keyOf(&m.TCPMigFields).conn()
	id := k.idAt(e.self)
	if h, ok := e.hosted[id]; ok && h.k == k && h.closing {
		delete(e.hosted, id)
		e.stats.ReleaseAcks++
	}
	return true
}
