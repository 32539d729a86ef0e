package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// Listener hands out connections, new and migrated in alike: a
// runtime/stack Listener, or a runtime/kernel one. Its connections must be
// migrate.Conns.
type Listener interface {
	Accept() (net.Conn, error)
	Close() error
}

// accept takes the next connection of ln.
func accept(ln Listener) (migrate.Conn, error) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil, err
		}
		if mc, ok := c.(migrate.Conn); ok {
			return mc, nil
		}
		// Not something the engine can move: a listener of another kind.
		c.Close()
		return nil, fmt.Errorf("app: the listener handed out a %T, which is not a migrate.Conn (use a runtime/stack or runtime/kernel listener)", c)
	}
}

// sessionConn is what the applications need of a migrate.Session. It is an
// interface so that tests can stand a scripted connection in for it and
// migrate at every quiescent point without a network.
type sessionConn interface {
	// Read is a quiescent point: a requested migration runs while it
	// waits, and it returns migrate.ErrMoved when the connection moved.
	Read(p []byte) (int, error)
	// ReadDirect reads without ever migrating; deadline is the read
	// deadline the caller wants (zero: none).
	ReadDirect(p []byte, deadline time.Time) (int, error)
	Write(p []byte) (int, error)
	// Checkpoint is a quiescent point outside Read.
	Checkpoint() error
	SetReadDeadline(t time.Time) error
	Close() error
	CloseWrite() error
	// Abort resets the connection.
	Abort()
	RemoteAddr() net.Addr
	LocalAddr() net.Addr
}

// session adapts a migrate.Session.
type session struct{ *migrate.Session }

// ReadDirect reads the stack connection, bypassing the Session's
// quiescent point. A Session wakes a Read it wants to migrate by setting a
// past read deadline; when that wake-up races with arriving data, the past
// deadline is still set when the application next reads. A deadline error
// before our own deadline is such a leftover: restore our deadline and read
// again. (The Session puts back its own deadline at its next Read.)
func (s session) ReadDirect(p []byte, deadline time.Time) (int, error) {
	c := s.Conn()
	for {
		n, err := c.Read(p)
		if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && (deadline.IsZero() || time.Now().Before(deadline)) {
			c.SetReadDeadline(deadline) //nolint:errcheck // never fails
			continue
		}
		return n, err
	}
}

func (s session) Abort() {
	s.Conn().Abort()
	s.Session.Close() //nolint:errcheck // only forgets the session: the connection is reset
}
