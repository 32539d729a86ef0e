package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// fakeConn stands in for a migrate.Session without a network: in is what
// the client sent that the TCP layer still holds, out what the server
// wrote. At a quiescent point it may "migrate": it takes the application's
// state as the engine would at the freeze, and returns ErrMoved. The next
// incarnation starts from that state with the same in and out, exactly as
// a target restores the TCP state (receive and send buffers) and the
// application state.
type fakeConn struct {
	in    []byte
	out   *bytes.Buffer
	chunk int // the most one read returns
	// writeChunk > 0: a Write of more stops after that many bytes with
	// migrate.ErrInterrupted, as a Session that InterruptWrites does when
	// a migration is asked for while the send buffer is full.
	writeChunk int
	limit      int // Write fails beyond this much output (0: no limit)
	// move decides, at the q-th quiescent point of this incarnation,
	// whether to migrate there.
	move  func(q int) bool
	state func() ([]byte, error)

	q       int
	moved   bool
	saved   []byte
	closed  bool
	aborted bool
	sawEOF  bool // a read returned the client's EOF
}

var errFakeAfterMove = errors.New("fake: used after it moved")

func (f *fakeConn) quiescent() error {
	q := f.q
	f.q++
	if f.move != nil && f.move(q) {
		st, err := f.state()
		if err != nil {
			return fmt.Errorf("fake: the state function failed: %w", err)
		}
		f.saved, f.moved = st, true
		return migrate.ErrMoved
	}
	return nil
}

func (f *fakeConn) Read(p []byte) (int, error) {
	if f.moved {
		return 0, migrate.ErrMoved
	}
	if err := f.quiescent(); err != nil {
		return 0, err
	}
	return f.ReadDirect(p, time.Time{})
}

func (f *fakeConn) ReadDirect(p []byte, _ time.Time) (int, error) {
	if f.moved {
		return 0, errFakeAfterMove
	}
	if len(f.in) == 0 {
		f.sawEOF = true
		return 0, io.EOF // the client half-closed after its input
	}
	if f.chunk > 0 && len(p) > f.chunk {
		p = p[:f.chunk]
	}
	n := copy(p, f.in)
	f.in = f.in[n:]
	return n, nil
}

func (f *fakeConn) Write(p []byte) (int, error) {
	if f.moved {
		return 0, migrate.ErrMoved
	}
	if f.limit > 0 && f.out.Len()+len(p) > f.limit {
		return 0, errors.New("fake: output limit reached")
	}
	if f.writeChunk > 0 && len(p) > f.writeChunk {
		n, _ := f.out.Write(p[:f.writeChunk])
		return n, migrate.ErrInterrupted
	}
	return f.out.Write(p)
}

func (f *fakeConn) Checkpoint() error {
	if f.moved {
		return migrate.ErrMoved
	}
	return f.quiescent()
}

func (f *fakeConn) SetReadDeadline(time.Time) error { return nil }
func (f *fakeConn) Close() error                    { f.closed = true; return nil }
func (f *fakeConn) CloseWrite() error               { return nil }
func (f *fakeConn) Abort()                          { f.aborted = true }
func (f *fakeConn) RemoteAddr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 40000} }
func (f *fakeConn) LocalAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 80} }

// fakeRun is the outcome of serving one input across incarnations.
type fakeRun struct {
	out    []byte
	moves  int
	points int  // quiescent points passed, over all incarnations
	closed bool // the server closed
	// early: it closed before reading the client's EOF (after a response
	// that said close, or an error)
	early bool
	logs  []RequestLog
}

// serveHTTPFake serves input on srv through as many incarnations as the
// moves make; move(inc, q) decides each quiescent point.
func serveHTTPFake(srv *HTTPServer, input []byte, chunk int, move func(inc, q int) bool) (*fakeRun, error) {
	res := &fakeRun{}
	srv.OnRequest = func(l RequestLog) { res.logs = append(res.logs, l) }
	out := &bytes.Buffer{}
	in := input
	var state []byte
	restored := false
	for inc := 0; ; inc++ {
		if inc > 1_000_000 {
			return res, errors.New("more than a million incarnations: the moves make no progress")
		}
		f := &fakeConn{in: in, out: out, chunk: chunk}
		if move != nil {
			f.move = func(q int) bool { return move(inc, q) }
		}
		hc, err := newHTTPConn(srv, srv.routes(), f, state, restored)
		if err != nil {
			return res, err
		}
		f.state = hc.state
		hc.serve()
		res.points += f.q
		if !f.moved {
			res.out, res.moves, res.closed, res.early = out.Bytes(), inc, f.closed, f.closed && !f.sawEOF
			return res, nil
		}
		if f.closed || f.aborted {
			return res, errors.New("the server closed a connection that moved")
		}
		state, restored, in = f.saved, true, f.in
	}
}

// testLogger fails nothing but keeps the log out of the test output
// unless asked.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
