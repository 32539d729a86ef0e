package migrate

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/capygen/capygen/runtime/load"
	"github.com/capygen/capygen/runtime/tcp"
)

// Session is a connection that an application serves from its own goroutine
// and lets move at quiescent points: Migratory TCP's get/set-state contract
// for blocking Go code. It is a net.Conn.
//
// A migration that was asked for (Request, or the engine's Request*) runs
// when the application is quiescent: at Checkpoint, or while it waits in
// Read with nothing received. The application's state function is called at
// the freeze, while the application's goroutine is parked in that call, so
// it sees a consistent state. When the connection moves, Read, Write and
// Checkpoint return ErrMoved: the goroutine should return without closing
// (the connection lives on at the target, where Restored hands its state to
// the application there).
type Session struct {
	e        *Engine
	c        Conn
	id       tcp.ID
	restored []byte
	isRest   bool
	since    time.Time // when Manage made it: its arrival, if restored
	load     *load.ConnLoad

	mu     sync.Mutex
	state  func() ([]byte, error)
	wanted bool
	inRead bool
	poked  bool
	readDL time.Time
	// A Write that InterruptWrites lets a migration stop: it is woken by
	// a past write deadline, as Read is by a past read deadline.
	interruptWrites bool
	inWrite         bool
	pokedW          bool
	writeDL         time.Time
	moved           bool
	closed          bool
	last            Outcome
	lastErr         error
	ends            uint64 // migration attempts that ended (or could not start)
}

var _ net.Conn = (*Session)(nil)

// pastDeadline wakes a blocked Read at once.
var pastDeadline = time.Unix(1, 0)

// Manage makes c migratable. state, called at a migration's freeze, returns
// the application's state for c (nil for none); it may be set later with
// SetState. If c was migrated in, Restored returns the state that came with
// it.
func (e *Engine) Manage(c Conn, state func() ([]byte, error)) *Session {
	s := &Session{e: e, c: c, id: c.ID(), state: state, since: time.Now()}
	e.mu.Lock()
	if st, ok := e.restored[s.id]; ok {
		s.restored, s.isRest = st, true
		delete(e.restored, s.id)
	}
	e.sessions[s.id] = s
	e.mu.Unlock()
	return s
}

// SetLoad gives the connection's recent requests and their cost, which
// SessionInfos reports to a migration policy choosing among connections.
func (s *Session) SetLoad(l *load.ConnLoad) {
	s.mu.Lock()
	s.load = l
	s.mu.Unlock()
}

// Restored returns the application state that came with a connection
// migrated in, and whether it was migrated in.
func (s *Session) Restored() ([]byte, bool) { return s.restored, s.isRest }

// SetState replaces the application's state function.
func (s *Session) SetState(state func() ([]byte, error)) {
	s.mu.Lock()
	s.state = state
	s.mu.Unlock()
}

// Conn is the underlying connection.
func (s *Session) Conn() Conn { return s.c }

// ID is the connection's address pair as this stack files it.
func (s *Session) ID() tcp.ID { return s.id }

// Last returns the outcome of the session's latest migration attempt, and
// the error that kept one from starting.
func (s *Session) Last() (Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.lastErr
}

// InterruptWrites makes a Write that waits for send-buffer space stop
// when a migration is asked for, returning the bytes it wrote and
// ErrInterrupted; the application accounts for them in its state and calls
// Checkpoint, the quiescent point. Without it a server writing to a client
// that reads slowly (a closed receive window) cannot move until the client
// reads: exactly the connection a busy server wants to hand off.
func (s *Session) InterruptWrites() {
	s.mu.Lock()
	s.interruptWrites = true
	s.mu.Unlock()
}

// Request asks for a migration at the next quiescent point, and wakes a
// Read that is waiting with nothing received (and a Write waiting for
// buffer space, with InterruptWrites).
func (s *Session) Request() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.moved || s.closed {
		return
	}
	s.wanted = true
	if s.inRead && !s.poked {
		s.poked = true
		s.c.SetReadDeadline(pastDeadline) //nolint:errcheck // never fails
	}
	if s.inWrite && !s.pokedW {
		s.pokedW = true
		s.c.SetWriteDeadline(pastDeadline) //nolint:errcheck // never fails
	}
}

// Checkpoint is a quiescent point: if a migration was asked for, it runs it
// now and waits for its end. It returns ErrMoved when the connection moved,
// the connection's error when the migration had to reset it, and nil when
// the connection stays here (nothing asked, or no server took it).
func (s *Session) Checkpoint() error {
	s.mu.Lock()
	if s.moved {
		s.mu.Unlock()
		return ErrMoved
	}
	if !s.wanted || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.wanted = false
	state := s.state
	s.mu.Unlock()
	ch := make(chan Outcome, 1)
	err := s.e.Start(s.id, state, func(o Outcome) { ch <- o })
	if err != nil {
		s.mu.Lock()
		s.lastErr = err
		s.ends++
		s.mu.Unlock()
		return nil // not movable now: it goes on here
	}
	out := <-ch
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last, s.lastErr = out, nil
	s.ends++
	switch out.Result {
	case ResultMoved:
		s.moved = true
		s.forget()
		return ErrMoved
	case ResultAborted:
		s.closed = true
		s.forget()
		return fmt.Errorf("%w: connection %v-%v: %w", ErrAborted, s.id.Local, s.id.Remote, out.Err)
	}
	return nil
}

// forget takes the session off the engine's list. s.mu is held.
func (s *Session) forget() {
	s.e.mu.Lock()
	if s.e.sessions[s.id] == s {
		delete(s.e.sessions, s.id)
	}
	s.e.mu.Unlock()
}

// Read reads like net.Conn's Read. While it waits with nothing received it
// is a quiescent point: a requested migration runs, and if the connection
// moves Read returns ErrMoved.
func (s *Session) Read(p []byte) (int, error) {
	for {
		if err := s.Checkpoint(); err != nil {
			return 0, err
		}
		s.mu.Lock()
		if s.poked {
			s.poked = false
			s.c.SetReadDeadline(s.readDL) //nolint:errcheck // never fails
		}
		if s.wanted {
			s.mu.Unlock()
			continue
		}
		s.inRead = true
		s.mu.Unlock()
		n, err := s.c.Read(p)
		s.mu.Lock()
		s.inRead = false
		poked := s.poked
		s.mu.Unlock()
		if n == 0 && poked && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // woken for a migration
		}
		return n, err
	}
}

// Write writes like net.Conn's Write; ErrMoved once the connection moved.
// With InterruptWrites, a migration asked for before or during the write
// stops it: Write returns what it wrote and ErrInterrupted.
func (s *Session) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.moved {
		s.mu.Unlock()
		return 0, ErrMoved
	}
	if !s.interruptWrites {
		s.mu.Unlock()
		return s.c.Write(p)
	}
	if s.wanted {
		s.mu.Unlock()
		return 0, ErrInterrupted
	}
	s.inWrite = true
	s.mu.Unlock()
	n, err := s.c.Write(p)
	s.mu.Lock()
	s.inWrite = false
	poked, dl := s.pokedW, s.writeDL
	if poked {
		s.pokedW = false
		s.c.SetWriteDeadline(dl) //nolint:errcheck // never fails
	}
	s.mu.Unlock()
	if poked && errors.Is(err, os.ErrDeadlineExceeded) && (dl.IsZero() || time.Now().Before(dl)) {
		return n, ErrInterrupted
	}
	return n, err
}

// Close closes the connection, unless it moved (then it belongs to the
// target and Close only forgets it here).
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.moved {
		return nil
	}
	s.closed = true
	s.forget()
	return s.c.Close()
}

// CloseWrite sends a FIN after the data already written.
func (s *Session) CloseWrite() error { return s.c.CloseWrite() }

// LocalAddr is the address the client knows this end by.
func (s *Session) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(s.c.Origin()) }

// RemoteAddr is the client's address.
func (s *Session) RemoteAddr() net.Addr { return s.c.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (s *Session) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t) //nolint:errcheck // never fails
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (s *Session) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return setDeadline(t, &s.readDL, s.poked, s.c.SetReadDeadline)
}

// SetWriteDeadline sets the write deadline.
func (s *Session) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return setDeadline(t, &s.writeDL, s.pokedW, s.c.SetWriteDeadline)
}

// setDeadline records t as the application's deadline and applies it,
// unless a migration's wake-up (poked) holds a past one: whoever consumes
// the wake-up puts the recorded deadline back. s.mu is held.
func setDeadline(t time.Time, app *time.Time, poked bool, set func(time.Time) error) error {
	*app = t
	if poked {
		return nil
	}
	return set(t)
}

// Request asks the session of connection id to migrate at its next
// quiescent point.
func (e *Engine) Request(id tcp.ID) error {
	e.mu.Lock()
	s := e.sessions[id]
	e.mu.Unlock()
	if s == nil {
		return fmt.Errorf("%w: %v-%v has no session (the application must Manage it to make it migratable)", ErrNoConn, id.Local, id.Remote)
	}
	s.Request()
	return nil
}

// SessionInfo describes a migratable connection to a policy.
type SessionInfo struct {
	ID tcp.ID
	// Restored: it migrated in, at Since (when it was handed to the
	// application); otherwise Since is its acceptance.
	Restored bool
	Since    time.Time
	// Queued is the bytes in its send and receive buffers, which its
	// state would carry (-1: the host does not say).
	Queued int
	// Pending: a migration was asked for and has not started (it waits
	// for a quiescent point), or is under way.
	Pending bool
	// Load is what the application set with SetLoad (nil: none).
	Load *load.ConnLoad
}

// Queuer is a Conn that says how many bytes its buffers hold.
type Queuer interface {
	Queued() int
}

// SessionInfos appends a SessionInfo for every connection applications
// made migratable and not yet moved, to dst, in address order (a seeded
// policy then sees the same list in the same order).
func (e *Engine) SessionInfos(dst []SessionInfo) []SessionInfo {
	e.mu.Lock()
	list := make([]*Session, 0, len(e.sessions))
	for _, s := range e.sessions {
		list = append(list, s)
	}
	e.mu.Unlock()
	slices.SortFunc(list, func(a, b *Session) int { return a.id.Remote.Compare(b.id.Remote) })
	for _, s := range list {
		s.mu.Lock()
		info := SessionInfo{ID: s.id, Restored: s.isRest, Since: s.since, Queued: -1, Load: s.load, Pending: s.wanted}
		done := s.moved || s.closed
		s.mu.Unlock()
		if !info.Pending {
			info.Pending = e.Migrating(s.id)
		}
		if done {
			continue
		}
		if q, ok := s.c.(Queuer); ok {
			info.Queued = q.Queued()
		}
		dst = append(dst, info)
	}
	return dst
}

// Sessions lists the connections applications made migratable.
func (e *Engine) Sessions() []tcp.ID {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]tcp.ID, 0, len(e.sessions))
	for id := range e.sessions {
		ids = append(ids, id)
	}
	return ids
}

// RequestAll asks every session to migrate and returns how many it asked.
func (e *Engine) RequestAll() int {
	ids := e.Sessions()
	n := 0
	for _, id := range ids {
		if e.Request(id) == nil {
			n++
		}
	}
	return n
}

// RequestRandom asks one session, chosen at random, to migrate.
func (e *Engine) RequestRandom() (tcp.ID, bool) {
	ids := e.Sessions()
	if len(ids) == 0 {
		return tcp.ID{}, false
	}
	e.mu.Lock()
	id := ids[e.rng.IntN(len(ids))]
	e.mu.Unlock()
	return id, e.Request(id) == nil
}
