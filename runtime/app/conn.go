package app

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

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
