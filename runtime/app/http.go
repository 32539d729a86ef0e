package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/load"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// HTTPServer serves HTTP/1.1 on a runtime/stack listener with connections
// that can migrate to another server between requests and, for resumable
// routes, in the middle of a body.
//
// Every server a connection may move to must run an HTTPServer with the
// same Routes, listening on the same port: a connection migrated in comes
// out of the listener like a new one, and its state says where it was.
type HTTPServer struct {
	// Handler serves requests no route claims (nil: 404). It runs between
	// quiescent points, so its connection moves only between requests.
	Handler http.Handler
	// Engine is the migration engine of the listener's stack (required).
	Engine *migrate.Engine
	// Routes are the resumable handlers by exact URL path (nil:
	// StandardRoutes, an empty map: none).
	Routes map[string]Resumable
	// MaxHeaderBytes bounds a request's line and header (1 MiB).
	MaxHeaderBytes int
	// IdleTimeout closes a connection that waits this long for a request
	// (0: no limit). The wait's clock travels with a connection that
	// moves, so moving an idle connection does not restart it.
	IdleTimeout time.Duration
	// BodyTimeout closes a connection whose client leaves a read of its
	// request body waiting this long for bytes (0: IdleTimeout's; both 0:
	// no limit); a resumable request is answered 408 if its response has
	// not begun. Like IdleTimeout, the wait's clock travels with a move.
	BodyTimeout time.Duration
	// ErrorLog receives what goes wrong on connections (nil: the log
	// package's standard logger).
	ErrorLog *log.Logger
	// OnRequest, if set, is called after each response, on the
	// connection's goroutine.
	OnRequest func(RequestLog)
	// Load, if set, counts every request (in flight, busy time, rate), and
	// each connection's recent requests and their cost go to its Session
	// for a migration policy (runtime/policy) to choose among.
	Load *load.Meter

	now   func() time.Time // tests fix the Date header
	stats httpCounters
}

// RequestLog describes one served request.
type RequestLog struct {
	Method, Path string
	Status       int
	// BodyIn and BodyOut are the request and response body bytes.
	BodyIn, BodyOut int64
	// Moves is how many times the connection moved while this request was
	// being served (resumable routes only; plain requests never move).
	Moves int
	// SHA256 is the digest a task reports (see Digester), or nil.
	SHA256 []byte
}

// HTTPStats are an HTTPServer's counters.
type HTTPStats struct {
	Conns    uint64 // connections served here, new or migrated in
	Restored uint64 // connections migrated in and served
	Moved    uint64 // connections that left for another server
	Requests uint64 // requests whose header was read here
	Refused  uint64 // migrated-in connections whose state was refused (reset)
	// Carried counts request bytes that arrived in migrated states: read
	// from the connection at the origin and not yet parsed (pipelined or
	// partial requests).
	Carried uint64
}

type httpCounters struct{ conns, restored, moved, requests, refused, carried atomic.Uint64 }

// Stats returns the server's counters.
func (s *HTTPServer) Stats() HTTPStats {
	return HTTPStats{s.stats.conns.Load(), s.stats.restored.Load(), s.stats.moved.Load(), s.stats.requests.Load(), s.stats.refused.Load(), s.stats.carried.Load()}
}

// defaultMaxHeaderBytes is net/http's default.
const defaultMaxHeaderBytes = 1 << 20

// maxHeaderLimit bounds MaxHeaderBytes and Echo.BufferSize: what a
// connection holds of them travels in its state, which must fit a
// CONN_STATE with the TCP queues; over it the origin cannot send the
// state and resets the connection.
const maxHeaderLimit = 8 << 20

// readBufferSize is a connection's initial read buffer.
const readBufferSize = 64 << 10

// maxDiscard bounds the unread request body the server reads away after a
// response to keep the connection; more closes it instead (net/http's
// figure).
const maxDiscard = 256 << 10

func (s *HTTPServer) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
		return
	}
	log.Printf(format, args...)
}

func (s *HTTPServer) routes() map[string]Resumable {
	if s.Routes == nil {
		return StandardRoutes()
	}
	return s.Routes
}

func (s *HTTPServer) bodyTimeout() time.Duration {
	if s.BodyTimeout > 0 {
		return s.BodyTimeout
	}
	return s.IdleTimeout
}

func (s *HTTPServer) maxHeader() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return defaultMaxHeaderBytes
}

// Serve accepts connections on ln, new and migrated in, and serves each in
// a goroutine of its own (one that served an earlier connection, when one
// is idle) until ln is closed; it returns the listener's error.
func (s *HTTPServer) Serve(ln Listener) error {
	if s.MaxHeaderBytes > maxHeaderLimit {
		return fmt.Errorf("app: HTTPServer.MaxHeaderBytes %d: at most %d, so that a connection's state (its buffered input with the TCP state) fits a CONN_STATE (%d bytes)",
			s.MaxHeaderBytes, maxHeaderLimit, tcpmig.ConnStateMaxBytes)
	}
	if s.Engine == nil {
		return errors.New("app: HTTPServer.Engine is nil: set it to the migrate.Engine of the listener's stack")
	}
	if ln == nil {
		return errors.New("app: HTTPServer.Serve: nil listener")
	}
	routes := s.routes()
	w := newWorkers(workerIdle)
	for {
		c, err := accept(ln)
		if err != nil {
			return err
		}
		sess := s.Engine.Manage(c, nil)
		state, restored := sess.Restored()
		hc, err := newHTTPConn(s, routes, session{sess}, state, restored)
		if err != nil {
			s.refuse(session{sess}, err)
			continue
		}
		sess.SetState(hc.state)
		if s.Load != nil {
			hc.load = load.NewConnLoad(0)
			sess.SetLoad(hc.load)
		}
		w.run(hc.serve)
	}
}

// refuse resets a connection migrated in whose state cannot be served.
func (s *HTTPServer) refuse(c sessionConn, err error) {
	s.stats.refused.Add(1)
	s.logf("app: resetting the http connection of %v to %v, migrated in: %v", c.RemoteAddr(), c.LocalAddr(), err)
	c.Abort()
}

// httpConn is one connection's server side. Its fields change only between
// quiescent points, and its state function runs only while the serving
// goroutine is parked in one, so the state it writes is consistent.
type httpConn struct {
	srv    *HTTPServer
	routes map[string]Resumable
	conn   sessionConn
	cr     *connReader
	bw     *bufio.Writer
	bufs   *connBuffers // bw and cr's first buffer, from httpBuffers
	now    func() time.Time

	moves, requests uint64
	cur             *taskRun       // the resumable request in progress, or nil
	load            *load.ConnLoad // with HTTPServer.Load

	// waitFrom is when the wait for the client in progress began (zero
	// when none is), on the clock of read deadlines; carried is how long
	// the server a connection moved from had waited in it.
	waitFrom time.Time
	carried  time.Duration
}

// taskRun is a resumable request in progress.
type taskRun struct {
	taskPos
	route Resumable
	task  Task
}

// connWriter writes to the connection; Session.Write never migrates.
type connWriter struct{ c sessionConn }

func (w connWriter) Write(p []byte) (int, error) { return w.c.Write(p) }

func newHTTPConn(s *HTTPServer, routes map[string]Resumable, c sessionConn, state []byte, restored bool) (*httpConn, error) {
	hc := &httpConn{srv: s, routes: routes, conn: c, now: s.now}
	if hc.now == nil {
		hc.now = time.Now
	}
	bufs := httpBuffers.Get().(*connBuffers)
	bufs.w.Reset(connWriter{c})
	hc.bw, hc.bufs = bufs.w, bufs
	var pending []byte
	if restored {
		st, err := decodeHTTPState(state)
		if err != nil {
			return nil, err
		}
		hc.moves, hc.requests = st.moves+1, st.requests
		hc.carried = st.waited
		pending = st.buffered
		if t := st.task; t != nil {
			route := routes[t.path]
			if route == nil {
				return nil, fmt.Errorf("%w: a request to %q was migrated in mid-body, but this server has no resumable route for it (every server needs the same HTTPServer.Routes)", ErrState, t.path)
			}
			task, err := route.Resume(t.task)
			if err != nil {
				if !errors.Is(err, ErrState) {
					err = fmt.Errorf("%w: %w", ErrState, err)
				}
				return nil, fmt.Errorf("resuming %s %s: %w", t.method, t.path, err)
			}
			if c, ok := task.(ResumeChecker); ok {
				if err := c.CheckResume(t.progress()); err != nil {
					if !errors.Is(err, ErrState) {
						err = fmt.Errorf("%w: %w", ErrState, err)
					}
					return nil, fmt.Errorf("resuming %s %s: %w", t.method, t.path, err)
				}
			}
			hc.cur = &taskRun{taskPos: t.taskPos, route: route, task: task}
		}
		s.stats.restored.Add(1)
		s.stats.carried.Add(uint64(len(pending)))
	}
	s.stats.conns.Add(1)
	hc.cr = newConnReader(c, bufs.read, s.maxHeader()+readBufferSize, pending)
	hc.cr.before = hc.bw.Flush
	return hc, nil
}

// state is the connection's migrate state function.
func (hc *httpConn) state() ([]byte, error) {
	st := httpState{moves: hc.moves, requests: hc.requests, buffered: hc.cr.buffered()}
	if !hc.waitFrom.IsZero() {
		st.waited = max(time.Since(hc.waitFrom), 0)
	}
	if t := hc.cur; t != nil {
		b, err := t.task.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("app: saving the state of %s %s: %w", t.method, t.path, err)
		}
		st.task = &taskState{taskPos: t.taskPos, task: b}
	}
	return st.append(nil), nil
}

// errClose ends a connection gracefully after the response.
var errClose = errors.New("app: close the connection")

// serve runs the connection until it closes or moves.
func (hc *httpConn) serve() {
	defer hc.release()
	err := hc.loop()
	switch {
	case errors.Is(err, migrate.ErrMoved):
		hc.srv.stats.moved.Add(1)
		return // it lives on at the target: nothing to close here
	case err == nil, errors.Is(err, errClose):
	default:
		if !quietErr(err) {
			hc.srv.logf("app: http connection %v: %v", hc.conn.RemoteAddr(), err)
		}
	}
	hc.bw.Flush() //nolint:errcheck // closing anyway
	hc.conn.Close()
}

// connBuffers are an HTTP connection's read buffer and response writer.
type connBuffers struct {
	read []byte
	w    *bufio.Writer
}

// httpBuffers keeps the buffers of connections that ended or moved away
// for the next ones. A server whose connections migrate in and out
// thousands of times a second otherwise allocates 68 KiB for each
// arrival, which the runtime zeroes and the kernel faults in: a profile
// of a testbed server moving idle connections put a sixth of its CPU time
// there, on CPUs its event loop and the switch share.
var httpBuffers = sync.Pool{New: func() any {
	return &connBuffers{read: make([]byte, readBufferSize), w: bufio.NewWriterSize(nil, 4096)}
}}

// release gives the buffers back once the connection is done with them:
// it closed, or it moved and its state (a copy of the unread bytes) was
// taken at the freeze, and neither handler nor state function runs again.
// A buffer the reader grew past its first size is left to the collector.
func (hc *httpConn) release() {
	buf, bufs := hc.cr.buf, hc.bufs
	hc.cr.buf, hc.bw, hc.bufs = nil, nil, nil // a use after this fails loudly
	if cap(buf) != readBufferSize {
		return
	}
	bufs.read = buf[:readBufferSize]
	bufs.w.Reset(nil)
	httpBuffers.Put(bufs)
}

// quietErr reports the ends of a connection not worth logging.
func quietErr(err error) bool {
	// migrate.ErrClosed: the server's own migration engine closed, which
	// is not the connection's failure.
	for _, q := range []error{io.EOF, io.ErrUnexpectedEOF, os.ErrDeadlineExceeded, net.ErrClosed,
		stack.ErrDetached, tcp.ErrReset, tcp.ErrClosed, tcp.ErrTimeout, syscall.ECONNRESET, syscall.EPIPE, migrate.ErrClosed} {
		if errors.Is(err, q) {
			return true
		}
	}
	return false
}

func (hc *httpConn) loop() (err error) {
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				hc.srv.logf("app: panic serving %v: %v", hc.conn.RemoteAddr(), r)
			}
			err = errClose
		}
	}()
	if hc.cur != nil { // migrated in mid-request
		if err := hc.metered(hc.runTask); err != nil {
			return err
		}
		if err := hc.checkpoint(); err != nil {
			return err
		}
	}
	for {
		req, err := hc.readRequest()
		if err != nil {
			return err
		}
		if err := hc.metered(func() error { return hc.dispatch(req) }); err != nil {
			return err
		}
		if err := hc.checkpoint(); err != nil {
			return err
		}
	}
}

// checkpoint flushes and offers the connection for migration: the
// quiescent point after each response.
func (hc *httpConn) checkpoint() error {
	if err := hc.bw.Flush(); err != nil {
		return err
	}
	return hc.conn.Checkpoint()
}

// headerEnd returns the length of the header block at the start of b (up
// to and including its blank line), or 0; scanned is where to resume.
func headerEnd(b []byte, from int) int {
	from = max(from-3, 0)
	for {
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			return 0
		}
		i += from
		switch {
		case i+1 < len(b) && b[i+1] == '\n':
			return i + 2
		case i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n':
			return i + 3
		}
		from = i + 1
	}
}

// framing is what the raw header says that http.ReadRequest's result no
// longer does.
type framing struct {
	te, cl, host bool   // Transfer-Encoding, Content-Length, Host present
	hostValue    string // the Host field's value (ReadRequest refuses two)
}

func framingFields(h []byte) framing {
	var f framing
	for line := range bytes.SplitSeq(h, []byte("\n")) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch {
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			f.te = true
		case bytes.EqualFold(name, []byte("Content-Length")):
			f.cl = true
		case bytes.EqualFold(name, []byte("Host")):
			f.host, f.hostValue = true, string(bytes.Trim(value, " \t\r"))
		}
	}
	return f
}

// withoutTE is header block h without its Transfer-Encoding lines.
func withoutTE(h []byte) []byte {
	var out []byte
	for line := range bytes.SplitAfterSeq(h, []byte("\n")) {
		if name, _, ok := bytes.Cut(line, []byte(":")); !ok || !bytes.EqualFold(name, []byte("Transfer-Encoding")) {
			out = append(out, line...)
		}
	}
	return out
}

// validHostChars reports whether h may be a Host field's value: no space
// or control character (net/http's httpguts.ValidHostHeader, in short).
func validHostChars(h string) bool {
	return !strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// validHost reports whether h names a host: non-empty, and valid.
func validHost(h string) bool { return h != "" && validHostChars(h) }

// startWait starts a wait for the client bounded by timeout (0: none).
// Its clock starts what the origin server had waited (carried) before
// now, so that moving a connection does not restart it.
func (hc *httpConn) startWait(timeout time.Duration) {
	hc.waitFrom = time.Now().Add(-hc.carried)
	hc.carried = 0
	var dl time.Time
	if timeout > 0 {
		dl = hc.waitFrom.Add(timeout)
	}
	if dl != hc.cr.deadline {
		hc.cr.deadline = dl
		hc.conn.SetReadDeadline(dl) //nolint:errcheck // never fails
	}
}

// endWait ends the wait startWait began.
func (hc *httpConn) endWait() {
	hc.waitFrom = time.Time{}
	if !hc.cr.deadline.IsZero() {
		hc.cr.deadline = time.Time{}
		hc.conn.SetReadDeadline(time.Time{}) //nolint:errcheck // never fails
	}
}

// bodyReader reads the body of the request in progress.
func (hc *httpConn) bodyReader(st *bodyState, answered func() bool) *bodyReader {
	return &bodyReader{st: st, cr: hc.cr, sendContinue: hc.sendContinue, answered: answered,
		wait: func() { hc.startWait(hc.srv.bodyTimeout()) }, waited: hc.endWait}
}

// readRequest waits for the next request's header, a quiescent point.
func (hc *httpConn) readRequest() (*http.Request, error) {
	hc.cr.migratable = true
	hc.startWait(hc.srv.IdleTimeout)
	defer hc.endWait()
	limit := hc.srv.maxHeader()
	scanned := 0
	for {
		b := hc.cr.buffered()
		i := 0
		for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
			i++ // RFC 9112 2.2: ignore empty lines before a request line
		}
		if i > 0 {
			hc.cr.consume(i)
			b, scanned = hc.cr.buffered(), max(scanned-i, 0)
		}
		if end := headerEnd(b, scanned); end > 0 {
			if end > limit {
				return nil, hc.fail(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request header of %d bytes exceeds %d", end, limit))
			}
			f := framingFields(b[:end])
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:end])))
			if err != nil && f.te {
				// A Transfer-Encoding this server cannot decode is 501
				// (RFC 9112 §6.1): it is what failed if the rest parses.
				if _, err2 := http.ReadRequest(bufio.NewReader(bytes.NewReader(withoutTE(b[:end])))); err2 == nil {
					hc.cr.consume(end)
					return nil, hc.fail(http.StatusNotImplemented, fmt.Sprintf("%v: send the body with Transfer-Encoding: chunked alone, or with a Content-Length", err))
				}
			}
			hc.cr.consume(end)
			if err != nil {
				return nil, hc.fail(http.StatusBadRequest, err.Error())
			}
			// What net/http's Server checks beyond ReadRequest, which drops
			// the headers that would show it (RFC 9112 §3.2, §6.1, §6.3).
			switch {
			case f.te && req.ProtoMinor == 0:
				return nil, hc.fail(http.StatusBadRequest, "Transfer-Encoding in an HTTP/1.0 request: its framing is faulty")
			case f.host && !validHostChars(f.hostValue):
				// Whatever the version, and even when an absolute URI
				// overrides it (RFC 9112 §3.2).
				return nil, hc.fail(http.StatusBadRequest, fmt.Sprintf("Host %q: a host may not hold spaces or control characters", f.hostValue))
			case req.ProtoMinor >= 1 && (!f.host || !validHost(req.Host)):
				return nil, hc.fail(http.StatusBadRequest, fmt.Sprintf("Host %q: an HTTP/1.1 request needs one valid Host", req.Host))
			case f.te && f.cl:
				req.Close = true // answered by Transfer-Encoding, then closed: a proxy may have framed it by Content-Length
			}
			hc.requests++
			hc.srv.stats.requests.Add(1)
			return req, nil
		}
		scanned = len(b)
		if len(b) > limit {
			return nil, hc.fail(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request header exceeds %d bytes", limit))
		}
		if err := hc.cr.fill(); err != nil {
			if errors.Is(err, errBufferFull) {
				return nil, hc.fail(http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request header exceeds %d bytes", limit))
			}
			if err == io.EOF && len(hc.cr.buffered()) == 0 {
				return nil, errClose // the client closed between requests
			}
			return nil, err
		}
	}
}

// fail answers a request that cannot be served with status and closes
// the connection.
func (hc *httpConn) fail(status int, msg string) error {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Date", hc.now().UTC().Format(http.TimeFormat))
	body := msg + "\n"
	st, _ := frame(h, status, int64(len(body)), false, 1, true)
	writeHead(hc.bw, status, h)
	writeBody(hc.bw, &st, []byte(body)) //nolint:errcheck // sticky in bw
	return errClose
}

// metered serves a request, or the rest of one that moved in, counting it
// in the server's Load and the connection's (both set at accept, with
// HTTPServer.Load). Deferred, so that a handler's panic ends it too.
func (hc *httpConn) metered(serve func() error) error {
	m := hc.srv.Load
	if m == nil || hc.load == nil {
		return serve()
	}
	t0 := load.Now()
	m.Begin(t0) // a moved request counts as an arrival: Meter has no other way in
	defer func() {
		t1 := load.Now()
		m.End(t1)
		hc.load.Served(t1, t1-t0)
	}()
	return serve()
}

// dispatch serves one request whose header was read.
func (hc *httpConn) dispatch(req *http.Request) error {
	if req.ProtoMajor != 1 {
		return hc.fail(http.StatusHTTPVersionNotSupported, fmt.Sprintf("protocol %s: this server speaks HTTP/1.0 and HTTP/1.1", req.Proto))
	}
	if req.ProtoMinor > 1 {
		// HTTP/1.x beyond 1.1 is served as 1.1 (RFC 9110, 2.5), which is
		// also what a migrated request's state can say.
		req.Proto, req.ProtoMinor = "HTTP/1.1", 1
	}
	if req.ContentLength > maxBodyLen {
		return hc.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("Content-Length %d: at most %d", req.ContentLength, int64(maxBodyLen)))
	}
	req.RemoteAddr = hc.conn.RemoteAddr().String()
	body := bodyState{}
	switch {
	case len(req.TransferEncoding) > 0:
		body.kind = bodyChunked // ReadRequest accepts only chunked
	case req.ContentLength > 0:
		body.kind, body.left = bodyLength, req.ContentLength
	}
	if e := req.Header.Get("Expect"); e != "" && !(req.ProtoMinor == 0 && strings.EqualFold(e, "100-continue")) {
		// An HTTP/1.0 request's 100-continue is ignored (RFC 9110 §10.1.1).
		if !strings.EqualFold(e, "100-continue") {
			return hc.fail(http.StatusExpectationFailed, fmt.Sprintf("Expect %q: only 100-continue is supported", e))
		}
		body.expect = body.kind != bodyNone
	}
	if route := hc.routes[req.URL.Path]; route != nil {
		task, err := route.Begin(req)
		if err != nil {
			return hc.answerError(req, &body, err)
		}
		if task != nil {
			hc.cur = &taskRun{taskPos: taskPos{path: req.URL.Path, method: req.Method, protoMinor: req.ProtoMinor,
				closeAfter: req.Close, body: body, startMoves: hc.moves}, route: route, task: task}
			return hc.runTask()
		}
	}
	return hc.servePlain(req, &body)
}

// answerError answers a request a route refused before its task began.
func (hc *httpConn) answerError(req *http.Request, body *bodyState, err error) error {
	var se *StatusError
	if !errors.As(err, &se) {
		hc.srv.logf("app: %s %s: %v", req.Method, req.URL.Path, err)
		se = &StatusError{Code: http.StatusInternalServerError, Msg: "internal error"}
	}
	h, msg := hc.errorResponse(se)
	// Say close when the unread body will not be read away (see
	// discardBody).
	closeAfter := req.Close || body.unreadable()
	st, closeAfter := frame(h, se.Code, int64(len(msg)), req.Method == http.MethodHead, req.ProtoMinor, closeAfter)
	writeHead(hc.bw, se.Code, h)
	writeBody(hc.bw, &st, []byte(msg)) //nolint:errcheck // sticky in bw
	hc.logRequest(RequestLog{Method: req.Method, Path: req.URL.Path, Status: se.Code, BodyOut: st.written})
	return hc.discardBody(body, closeAfter)
}

func (hc *httpConn) logRequest(l RequestLog) {
	if hc.srv.OnRequest != nil {
		hc.srv.OnRequest(l)
	}
}

// sendContinue answers Expect: 100-continue when the body is first read.
func (hc *httpConn) sendContinue() error {
	_, err := hc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	return err
}

// runTask steps the resumable request in progress, with a quiescent point
// between steps, and completes its response.
func (hc *httpConn) runTask() error {
	t := hc.cur
	hc.cr.migratable = true
	x := &Exchange{hc: hc, t: t}
	x.body = hc.bodyReader(&t.body, x.HeaderWritten)
	for {
		done, err := t.task.Step(x)
		if errors.Is(err, migrate.ErrMoved) || errors.Is(err, migrate.ErrAborted) {
			return err // the connection is gone from here: no response to write
		}
		if err != nil {
			return hc.taskFailed(err)
		}
		if done {
			break
		}
		if err := hc.checkpoint(); err != nil {
			return err
		}
	}
	if t.resp.kind == respNone {
		return hc.taskFailed(fmt.Errorf("app: the task of %s %s finished without writing a response", t.method, t.path))
	}
	complete := endBody(hc.bw, &t.resp)
	l := RequestLog{Method: t.method, Path: t.path, Status: t.resp.status, BodyIn: t.body.read, BodyOut: t.resp.written, Moves: int(hc.moves - t.startMoves)}
	if d, ok := t.task.(Digester); ok {
		l.SHA256 = d.SHA256()
	}
	hc.cur = nil
	hc.logRequest(l)
	if !complete {
		if t.resp.kind == respLength {
			hc.srv.logf("app: %s %s wrote %d of the %d body bytes it declared; closing the connection", t.method, t.path, t.resp.written, t.resp.length)
		}
		return errClose
	}
	return hc.discardBody(&t.body, t.closeAfter || x.body.failed())
}

// taskFailed ends a request whose task failed: with an error response if
// none began, else by closing the connection mid-response.
func (hc *httpConn) taskFailed(err error) error {
	t := hc.cur
	hc.cur = nil
	if t.resp.kind != respNone {
		if !quietErr(err) {
			hc.srv.logf("app: %s %s failed after its response began: %v", t.method, t.path, err)
		}
		return errClose
	}
	var se *StatusError
	if !errors.As(err, &se) {
		if !quietErr(err) {
			hc.srv.logf("app: %s %s: %v", t.method, t.path, err)
		}
		se = &StatusError{Code: http.StatusInternalServerError, Msg: "internal error"}
		switch {
		case errors.Is(err, errBadChunk) || errors.Is(err, io.ErrUnexpectedEOF):
			se = &StatusError{Code: http.StatusBadRequest, Msg: err.Error()}
		case errors.Is(err, os.ErrDeadlineExceeded):
			se = &StatusError{Code: http.StatusRequestTimeout, Msg: fmt.Sprintf("no request body bytes for %v: send the body without pausing", hc.srv.bodyTimeout())}
		}
	}
	h, msg := hc.errorResponse(se)
	// The body's state is unknown after a failure: answer and close.
	st, _ := frame(h, se.Code, int64(len(msg)), t.method == http.MethodHead, t.protoMinor, true)
	writeHead(hc.bw, se.Code, h)
	writeBody(hc.bw, &st, []byte(msg)) //nolint:errcheck // sticky in bw
	hc.logRequest(RequestLog{Method: t.method, Path: t.path, Status: se.Code, BodyIn: t.body.read, BodyOut: st.written, Moves: int(hc.moves - t.startMoves)})
	return errClose
}

// discardBody reads away what the handler left of the request body, so the
// next request can be read, or closes the connection if that is too much
// or cannot be known. It never migrates: it runs outside any task.
func (hc *httpConn) discardBody(body *bodyState, closeAfter bool) error {
	if closeAfter {
		return errClose
	}
	if body.done() {
		return nil
	}
	if body.expect && !body.contSent {
		// The client may or may not send the body it announced.
		return errClose
	}
	hc.cr.migratable = false
	br := hc.bodyReader(body, nil)
	br.sendContinue = nil
	n, err := io.CopyN(io.Discard, br, maxDiscard+1)
	if err == io.EOF && n <= maxDiscard {
		return nil
	}
	return errClose
}

// servePlain runs the plain handler on a request. Its state cannot travel,
// so its reads bypass the quiescent points.
func (hc *httpConn) servePlain(req *http.Request, body *bodyState) error {
	hc.cr.migratable = false
	w := &response{bw: hc.bw, now: hc.now, logf: hc.srv.logf, protoMinor: req.ProtoMinor,
		head: req.Method == http.MethodHead, closeAfter: req.Close, header: http.Header{}}
	br := &plainBody{r: *hc.bodyReader(body, func() bool { return w.committed })}
	w.body = &br.r
	if body.kind == bodyNone {
		req.Body = http.NoBody
	} else {
		req.Body = br
	}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), http.LocalAddrContextKey, hc.conn.LocalAddr()))
	defer cancel()
	req = req.WithContext(ctx)
	h := hc.srv.Handler
	if h == nil {
		h = http.NotFoundHandler()
	}
	h.ServeHTTP(w, req)
	br.closed = true
	complete := w.finish()
	hc.logRequest(RequestLog{Method: req.Method, Path: req.URL.Path, Status: w.st.status, BodyIn: body.read, BodyOut: w.st.written})
	if !complete {
		return errClose
	}
	return hc.discardBody(body, w.closeAfter || br.r.failed())
}

// plainBody is a plain handler's Request.Body.
type plainBody struct {
	r      bodyReader
	closed bool
}

func (b *plainBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.r.Read(p)
}

// Close stops the handler's reads; the server discards the rest.
func (b *plainBody) Close() error {
	b.closed = true
	return nil
}

// errorResponse is the header and the plain-text body of the answer to se.
func (hc *httpConn) errorResponse(se *StatusError) (http.Header, string) {
	h := http.Header{}
	for k, v := range se.Header {
		h[k] = v
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Date", hc.now().UTC().Format(http.TimeFormat))
	return h, se.Msg + "\n"
}
