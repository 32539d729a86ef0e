package app

import (
	"bytes"
	"errors"
	"io"
	"time"
)

// connReader is a connection's read buffer, kept by hand (not a
// bufio.Reader) because its unread bytes are part of the application's
// state: bytes pulled from the connection are no longer in the TCP state,
// so a migration must carry them. The state function reads buf[r:w] while
// the serving goroutine is parked in a quiescent point; every quiescent
// point is a fill, which touches only buf[w:] until it returns, so the
// bytes it reports are exactly those not yet consumed.
type connReader struct {
	conn sessionConn
	buf  []byte
	r, w int
	max  int // the buffer grows up to this many bytes
	// migratable makes fills go through Session.Read, a quiescent point.
	// Off, they read the stack connection directly so no migration can run
	// while a part of the application whose state cannot travel (a plain
	// http.Handler) is reading.
	migratable bool
	// deadline is the read deadline the owner wants on direct reads.
	deadline time.Time
	// before runs ahead of every fill: output still buffered is flushed
	// before blocking on input (the peer may wait for it), and before a
	// quiescent point, where it would otherwise be lost.
	before func() error
}

func newConnReader(conn sessionConn, buf []byte, limit int, pending []byte) *connReader {
	if len(pending) > len(buf) {
		buf = make([]byte, len(pending))
	}
	cr := &connReader{conn: conn, buf: buf, max: max(limit, len(buf)), migratable: true}
	cr.w = copy(cr.buf, pending)
	return cr
}

// buffered returns the unread bytes (aliasing the buffer).
func (cr *connReader) buffered() []byte { return cr.buf[cr.r:cr.w] }

func (cr *connReader) consume(n int) {
	cr.r += n
	if cr.r == cr.w {
		cr.r, cr.w = 0, 0
	}
}

// errBufferFull is fill's refusal once the buffer holds max bytes.
var errBufferFull = errors.New("app: read buffer full")

// fill reads more bytes after w, making room first. It returns
// migrate.ErrMoved when the connection moved while waiting.
func (cr *connReader) fill() error {
	if cr.before != nil {
		if err := cr.before(); err != nil {
			return err
		}
	}
	if cr.r > 0 && (cr.w == len(cr.buf) || cr.r >= len(cr.buf)/2) {
		cr.w = copy(cr.buf, cr.buf[cr.r:cr.w])
		cr.r = 0
	}
	if cr.w == len(cr.buf) {
		if len(cr.buf) >= cr.max {
			return errBufferFull
		}
		nb := make([]byte, min(2*len(cr.buf), cr.max))
		cr.w = copy(nb, cr.buf[cr.r:cr.w])
		cr.r = 0
		cr.buf = nb
	}
	var n int
	var err error
	if cr.migratable {
		n, err = cr.conn.Read(cr.buf[cr.w:])
	} else {
		n, err = cr.conn.ReadDirect(cr.buf[cr.w:], cr.deadline)
	}
	cr.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// Read reads buffered bytes, filling once when there are none.
func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.r == cr.w {
		if err := cr.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, cr.buf[cr.r:cr.w])
	cr.consume(n)
	return n, nil
}

// peek returns the next n bytes without consuming them, filling as
// needed; n must not exceed max.
func (cr *connReader) peek(n int) ([]byte, error) {
	for cr.w-cr.r < n {
		if err := cr.fill(); err != nil {
			return nil, err
		}
	}
	return cr.buf[cr.r : cr.r+n], nil
}

// line returns the next line, '\n' included, without consuming it; max
// bounds its length (errLineTooLong beyond).
func (cr *connReader) line(max int) ([]byte, error) {
	for scanned := 0; ; {
		b := cr.buf[cr.r:cr.w]
		if i := bytes.IndexByte(b[scanned:], '\n'); i >= 0 {
			if scanned+i+1 > max {
				return nil, errLineTooLong
			}
			return b[:scanned+i+1], nil
		}
		scanned = len(b)
		if scanned > max {
			return nil, errLineTooLong
		}
		if err := cr.fill(); err != nil {
			if errors.Is(err, errBufferFull) {
				err = errLineTooLong
			}
			return nil, err
		}
	}
}

var errLineTooLong = errors.New("app: line too long")
