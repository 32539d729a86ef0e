package app

import (
	"errors"
	"fmt"
	"io"
	"log"
	"sync/atomic"

	"github.com/capygen/capygen/runtime/migrate"
)

// Echo writes back every byte it reads, on connections that can move at
// any moment between reads: for nc and socat. Bytes read and not yet
// written back are its application state. When the client half-closes,
// it writes back everything pending and then closes its side.
type Echo struct {
	// Engine is the migration engine of the listener's stack (required).
	Engine *migrate.Engine
	// BufferSize is the most one read takes (32 KiB).
	BufferSize int
	// InterruptWrites lets a migration stop a write waiting for a client
	// that reads slowly (migrate.Session.InterruptWrites): the connection
	// can move while the client's window is closed. Leave it off for
	// kernel sockets: with it on, kernel echo runs lost the connection
	// from every server (not yet understood; runtime/repair's snd_wl1
	// clamp fixed the refused restores seen first).
	InterruptWrites bool
	// ErrorLog receives what goes wrong (nil: the standard logger).
	ErrorLog *log.Logger

	stats echoCounters
}

// EchoStats are an Echo's counters.
type EchoStats struct {
	Conns, Restored, Moved, Refused uint64
	Bytes                           uint64 // echoed by this server
}

type echoCounters struct{ conns, restored, moved, refused, bytes atomic.Uint64 }

// Stats returns the service's counters.
func (e *Echo) Stats() EchoStats {
	return EchoStats{e.stats.conns.Load(), e.stats.restored.Load(), e.stats.moved.Load(), e.stats.refused.Load(), e.stats.bytes.Load()}
}

func (e *Echo) logf(format string, args ...any) {
	if e.ErrorLog != nil {
		e.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

// Serve accepts connections on ln, new and migrated in, until ln is
// closed; it returns the listener's error.
func (e *Echo) Serve(ln Listener) error {
	if e.BufferSize > maxHeaderLimit {
		return fmt.Errorf("app: Echo.BufferSize %d: at most %d, so that a connection's pending bytes fit its state", e.BufferSize, maxHeaderLimit)
	}
	if e.Engine == nil {
		return errors.New("app: Echo.Engine is nil: set it to the migrate.Engine of the listener's stack")
	}
	if ln == nil {
		return errors.New("app: Echo.Serve: nil listener")
	}
	w := newWorkers(workerIdle)
	for {
		c, err := accept(ln)
		if err != nil {
			return err
		}
		sess := e.Engine.Manage(c, nil)
		if e.InterruptWrites {
			sess.InterruptWrites() // the echo's pending bytes say how far a write got
		}
		state, restored := sess.Restored()
		ec, err := newEchoConn(e, session{sess}, state, restored)
		if err != nil {
			e.stats.refused.Add(1)
			e.logf("app: resetting echo connection %v, migrated in: %v", c.RemoteAddr(), err)
			session{sess}.Abort()
			continue
		}
		sess.SetState(ec.state)
		w.run(ec.serve)
	}
}

// echoConn is one echo connection. pending and eof change only between
// quiescent points.
type echoConn struct {
	e       *Echo
	conn    sessionConn
	buf     []byte
	pending []byte // read, not yet written back (aliases buf)
	eof     bool   // the client half-closed
	moves   uint64
}

func newEchoConn(e *Echo, c sessionConn, state []byte, restored bool) (*echoConn, error) {
	size := e.BufferSize
	if size <= 0 {
		size = 32 << 10
	}
	ec := &echoConn{e: e, conn: c}
	if restored {
		st, err := decodeEchoState(state)
		if err != nil {
			return nil, err
		}
		size = max(size, len(st.pending))
		ec.buf = make([]byte, size)
		ec.pending = ec.buf[:copy(ec.buf, st.pending)]
		ec.eof, ec.moves = st.eof, st.moves+1
		e.stats.restored.Add(1)
	} else {
		ec.buf = make([]byte, size)
	}
	e.stats.conns.Add(1)
	return ec, nil
}

func (ec *echoConn) state() ([]byte, error) {
	s := echoState{pending: ec.pending, eof: ec.eof, moves: ec.moves}
	return s.append(nil), nil
}

func (ec *echoConn) serve() {
	err := ec.loop()
	if errors.Is(err, migrate.ErrMoved) {
		ec.e.stats.moved.Add(1)
		return
	}
	if err != nil && !quietErr(err) {
		ec.e.logf("app: echo connection %v: %v", ec.conn.RemoteAddr(), err)
	}
	ec.conn.Close()
}

func (ec *echoConn) loop() error {
	for {
		for len(ec.pending) > 0 {
			n, err := ec.conn.Write(ec.pending)
			ec.e.stats.bytes.Add(uint64(n))
			ec.pending = ec.pending[n:]
			if errors.Is(err, migrate.ErrInterrupted) {
				// A quiescent point in the middle of a write to a slow
				// reader: what is left pending travels in the state.
				if err := ec.conn.Checkpoint(); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
		}
		ec.pending = ec.buf[:0]
		if ec.eof {
			return nil // all written back; Close sends the FIN after it
		}
		// A quiescent point with nothing pending.
		n, err := ec.conn.Read(ec.buf)
		ec.pending = ec.buf[:n]
		switch {
		case err == io.EOF:
			ec.eof = true
		case err != nil:
			return err
		}
		// A quiescent point with the bytes just read pending: they travel
		// in the state and the target writes them back.
		if err := ec.conn.Checkpoint(); err != nil {
			return err
		}
	}
}

// echoState is an echo connection's migration state:
//
//	"CAPE" version=1 eof moves pending
type echoState struct {
	pending []byte
	eof     bool
	moves   uint64
}

const echoMagic = "CAPE"

// maxEchoPending bounds the pending bytes a state may carry.
const maxEchoPending = 16 << 20

func (s *echoState) append(b []byte) []byte {
	e := enc{b: b}
	e.header(echoMagic)
	e.flag(s.eof)
	e.uvar(s.moves)
	e.bytes(s.pending)
	return e.b
}

func decodeEchoState(b []byte) (*echoState, error) {
	d := dec{what: "echo connection", b: b}
	d.header(echoMagic)
	s := &echoState{}
	s.eof = d.flag("eof")
	s.moves = d.uvar("moves")
	s.pending = d.bytes("pending bytes", maxEchoPending)
	if err := d.end(); err != nil {
		return nil, err
	}
	return s, nil
}
