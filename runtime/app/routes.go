package app

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Resumable is a handler whose requests can move between servers in the
// middle of their bodies. The server serves its requests as a Task in
// steps, offering the connection for migration between steps and while
// the task waits for request body bytes; the task's state travels with the
// connection and Resume rebuilds it at the target.
type Resumable interface {
	// Begin starts serving r (its header is read, its body is not: read it
	// through the Exchange). A *StatusError answers at once with that
	// status; a nil Task with a nil error leaves r to the plain Handler.
	Begin(r *http.Request) (Task, error)
	// Resume rebuilds a task from what its MarshalBinary returned on the
	// server the connection came from. It must refuse a bad state with an
	// error, never panic.
	Resume(state []byte) (Task, error)
}

// Task is one request of a Resumable route being served.
//
// The server calls Step until it reports done, with a quiescent point
// between calls; reads of Exchange.Body are quiescent points too. At a
// quiescent point MarshalBinary must describe all the work done so far:
// update the state after each Read before reading again, and do not hold
// body bytes read in one Step for the next.
type Task interface {
	// Step does a bounded piece of the work (say 64 KiB of body in or out)
	// and reports whether the response is complete. An error before the
	// response header was written is answered (a *StatusError with its
	// status, else 500); after it, the connection closes. Return
	// migrate.ErrMoved from Body reads as it is.
	Step(x *Exchange) (done bool, err error)
	// MarshalBinary returns the task's state; version it.
	MarshalBinary() ([]byte, error)
}

// ResumeChecker is a Task that checks its state, once resumed, against
// the server's record of the request: a forged or corrupt state that
// disagrees is refused (an error wrapping ErrState, naming the field)
// before the task runs.
type ResumeChecker interface {
	CheckResume(p Progress) error
}

// Progress is the server's record of a request that moved in mid-body.
type Progress struct {
	Method   string
	BodyRead int64 // request body bytes read
	Status   int   // the response's, 0 while its header was not written
	Length   int64 // the response's declared length, -1 if none
	// Written is the response body bytes written; Unsent, that they are
	// counted and not sent (HEAD, 204, 304).
	Written int64
	Unsent  bool
}

// Digester is a Task that reports a digest of the body it sent or
// received; RequestLog.SHA256 carries it.
type Digester interface {
	SHA256() []byte
}

// StatusError is an HTTP error answer: Begin or Step return it to refuse
// a request with Code, a text body Msg and extra Header fields.
type StatusError struct {
	Code   int
	Msg    string
	Header http.Header
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Msg)
}

// Exchange is a task's view of its request and response. The framing of
// both is the server's and travels with the connection.
type Exchange struct {
	hc   *httpConn
	t    *taskRun
	body *bodyReader
}

// Body is the request body. Each Read may be a quiescent point (the
// connection may move while it waits): it then returns migrate.ErrMoved.
// It answers Expect: 100-continue at the first Read, unless the response
// header was written (the connection then closes after the response).
func (x *Exchange) Body() io.Reader { return x.body }

// Method is the request's method.
func (x *Exchange) Method() string { return x.t.method }

// HeaderWritten reports whether the response header was written.
func (x *Exchange) HeaderWritten() bool { return x.t.resp.kind != respNone }

// WriteHeader writes the response's status line and header. length is
// the body's size, or -1 if unknown: the body is then sent chunked (to an
// HTTP/1.0 client, delimited by closing the connection). For HEAD
// requests the body written is counted and not sent. The server adds
// Date, Content-Length or Transfer-Encoding, and Connection.
func (x *Exchange) WriteHeader(status int, h http.Header, length int64) error {
	if x.HeaderWritten() {
		return fmt.Errorf("app: %s %s: WriteHeader(%d) after the header was written", x.t.method, x.t.path, status)
	}
	if status < 200 || status > 999 {
		return fmt.Errorf("app: %s %s: WriteHeader(%d): want a final status in 200..999", x.t.method, x.t.path, status)
	}
	if h == nil {
		h = http.Header{}
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", x.hc.now().UTC().Format(http.TimeFormat))
	}
	// Say close when the rest of the body will not be read away.
	closeAfter := x.t.closeAfter || x.body.failed() || x.t.body.unreadable()
	st, closeAfter := frame(h, status, length, x.t.method == http.MethodHead, x.t.protoMinor, closeAfter)
	writeHead(x.hc.bw, status, h)
	x.t.resp, x.t.closeAfter = st, closeAfter
	return nil
}

// Write writes response body bytes (not a quiescent point).
func (x *Exchange) Write(p []byte) (int, error) {
	return writeBody(x.hc.bw, &x.t.resp, p)
}

// StepSize is how much body the standard routes move per step, between
// quiescent points.
const StepSize = 64 << 10

// DefaultBytes is /bytes's length when the request gives no n.
const DefaultBytes = 10 << 20

// MaxBytes bounds /bytes?n=.
const MaxBytes = 16 << 30

// StandardRoutes are the routes of capyrun serve, resumable: GET /bytes?n=N
// (N bytes of Payload), POST or PUT /upload (answers the body's SHA-256 in
// hex) and GET /ping.
func StandardRoutes() map[string]Resumable {
	return map[string]Resumable{
		"/bytes":  BytesRoute{Default: DefaultBytes},
		"/upload": UploadRoute{},
		"/ping":   PingRoute{},
	}
}

var stepBuffers = sync.Pool{New: func() any { return new([StepSize]byte) }}

func methodNotAllowed(r *http.Request, allow string) error {
	return &StatusError{Code: http.StatusMethodNotAllowed, Msg: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, allow),
		Header: http.Header{"Allow": {allow}}}
}

// BytesRoute serves GET /bytes?n=N: N bytes of Payload (Default without
// n), resumable at any offset. Its state is the offset and a running
// SHA-256 of what was sent.
type BytesRoute struct{ Default int64 }

// Begin parses n.
func (b BytesRoute) Begin(r *http.Request) (Task, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, methodNotAllowed(r, "GET, HEAD")
	}
	n := b.Default
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 || v > MaxBytes {
			return nil, &StatusError{Code: http.StatusBadRequest, Msg: fmt.Sprintf("n=%q: want a byte count in 0..%d", s, int64(MaxBytes))}
		}
		n = v
	}
	return &bytesTask{n: n, head: r.Method == http.MethodHead, h: sha256.New()}, nil
}

// Resume loads a bytesTask's state.
func (BytesRoute) Resume(state []byte) (Task, error) { return decodeBytesTask(state) }

type bytesTask struct {
	n, pos int64
	head   bool
	h      hash.Hash // of bytes [0, pos)
}

func (t *bytesTask) Step(x *Exchange) (bool, error) {
	if !x.HeaderWritten() {
		h := http.Header{"Content-Type": {"application/octet-stream"}}
		if err := x.WriteHeader(http.StatusOK, h, t.n); err != nil {
			return false, err
		}
	}
	if t.head || t.pos >= t.n {
		return true, nil // HEAD: the body would be counted, never sent
	}
	buf := stepBuffers.Get().(*[StepSize]byte)
	defer stepBuffers.Put(buf)
	chunk := buf[:min(int64(StepSize), t.n-t.pos)]
	fill(chunk, t.pos)
	if _, err := x.Write(chunk); err != nil {
		return false, err
	}
	t.h.Write(chunk)
	t.pos += int64(len(chunk))
	return t.pos == t.n, nil
}

// SHA256 is the digest of what was sent, once all of it was.
func (t *bytesTask) SHA256() []byte {
	if t.pos != t.n || t.head {
		return nil
	}
	return t.h.Sum(nil)
}

const bytesMagic = "CAPb"

func (t *bytesTask) MarshalBinary() ([]byte, error) {
	var e enc
	e.header(bytesMagic)
	e.uvar(uint64(t.n))
	e.uvar(uint64(t.pos))
	e.flag(t.head)
	if err := appendHash(&e, t.h); err != nil {
		return nil, err
	}
	return e.b, nil
}

func decodeBytesTask(b []byte) (*bytesTask, error) {
	d := dec{what: "/bytes task", b: b}
	d.header(bytesMagic)
	t := &bytesTask{}
	t.n = d.int63("length", MaxBytes)
	t.pos = d.int63("offset", MaxBytes)
	if d.err == nil && t.pos > t.n {
		d.fail("offset %d past the length %d", t.pos, t.n)
	}
	t.head = d.flag("head")
	t.h = d.hash("sha256", t.pos)
	if err := d.end(); err != nil {
		return nil, err
	}
	return t, nil
}

// CheckResume refuses a state whose offset is not where the response
// stands: the target would send the wrong bytes at the right length.
func (t *bytesTask) CheckResume(p Progress) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: /bytes task: %s", ErrState, fmt.Sprintf(format, args...))
	}
	switch {
	case t.head != (p.Method == http.MethodHead):
		return fail("head %v in a %s request", t.head, p.Method)
	case p.Status == 0 && t.pos != 0:
		return fail("offset %d, but no response header was written", t.pos)
	case p.Status == 0:
		return nil
	case p.Status != http.StatusOK:
		return fail("response status %d, but the task answers %d", p.Status, http.StatusOK)
	case p.Unsent != t.head:
		return fail("head %v, but the response body is unsent %v", t.head, p.Unsent)
	case !t.head && p.Length != t.n:
		return fail("length %d, but the response declared %d bytes", t.n, p.Length)
	case p.Written != t.pos:
		return fail("offset %d, but the response has %d bytes written", t.pos, p.Written)
	}
	return nil
}

// UploadRoute serves POST (or PUT) /upload: it reads the body, in any
// framing, and answers its SHA-256 in hex, with X-Bytes its length. Its
// state is the count and the running SHA-256, so whichever server reads
// the last byte answers.
type UploadRoute struct{}

// Begin checks the method.
func (UploadRoute) Begin(r *http.Request) (Task, error) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return nil, methodNotAllowed(r, "POST, PUT")
	}
	return &uploadTask{h: sha256.New()}, nil
}

// Resume loads an uploadTask's state.
func (UploadRoute) Resume(state []byte) (Task, error) { return decodeUploadTask(state) }

type uploadTask struct {
	count int64
	h     hash.Hash
	sum   []byte
}

func (t *uploadTask) Step(x *Exchange) (bool, error) {
	buf := stepBuffers.Get().(*[StepSize]byte)
	defer stepBuffers.Put(buf)
	body := x.Body()
	for got := 0; got < StepSize; {
		n, err := body.Read(buf[:StepSize-got])
		// The state moves with every Read: the next Read may migrate.
		t.h.Write(buf[:n])
		t.count += int64(n)
		got += n
		if err == io.EOF {
			return true, t.answer(x)
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

func (t *uploadTask) answer(x *Exchange) error {
	t.sum = t.h.Sum(nil)
	msg := hex.EncodeToString(t.sum) + "\n"
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}, "X-Bytes": {strconv.FormatInt(t.count, 10)}}
	if err := x.WriteHeader(http.StatusOK, h, int64(len(msg))); err != nil {
		return err
	}
	_, err := io.WriteString(x, msg)
	return err
}

// SHA256 is the digest of the whole body, once read.
func (t *uploadTask) SHA256() []byte { return t.sum }

// CheckResume refuses a state whose count is not the body read so far, or
// that moved after answering (it answers in its last step).
func (t *uploadTask) CheckResume(p Progress) error {
	switch {
	case t.count != p.BodyRead:
		return fmt.Errorf("%w: /upload task: count %d, but %d body bytes were read", ErrState, t.count, p.BodyRead)
	case p.Status != 0:
		return fmt.Errorf("%w: /upload task: its response (status %d) was already written", ErrState, p.Status)
	}
	return nil
}

const uploadMagic = "CAPu"

func (t *uploadTask) MarshalBinary() ([]byte, error) {
	var e enc
	e.header(uploadMagic)
	e.uvar(uint64(t.count))
	if err := appendHash(&e, t.h); err != nil {
		return nil, err
	}
	return e.b, nil
}

// maxUpload bounds the count a state may claim (it only feeds X-Bytes).
const maxUpload = 1 << 62

func decodeUploadTask(b []byte) (*uploadTask, error) {
	d := dec{what: "/upload task", b: b}
	d.header(uploadMagic)
	t := &uploadTask{}
	t.count = d.int63("count", maxUpload)
	t.h = d.hash("sha256", t.count)
	if err := d.end(); err != nil {
		return nil, err
	}
	return t, nil
}

// PingRoute serves GET /ping: "pong".
type PingRoute struct{}

// Begin checks the method.
func (PingRoute) Begin(r *http.Request) (Task, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, methodNotAllowed(r, "GET, HEAD")
	}
	return pingTask{}, nil
}

const pingMagic = "CAPp"

// Resume checks the (empty) state.
func (PingRoute) Resume(state []byte) (Task, error) {
	d := dec{what: "/ping task", b: state}
	d.header(pingMagic)
	if err := d.end(); err != nil {
		return nil, err
	}
	return pingTask{}, nil
}

type pingTask struct{}

func (pingTask) Step(x *Exchange) (bool, error) {
	const msg = "pong\n"
	if err := x.WriteHeader(http.StatusOK, http.Header{"Content-Type": {"text/plain; charset=utf-8"}}, int64(len(msg))); err != nil {
		return false, err
	}
	_, err := io.WriteString(x, msg)
	return true, err
}

func (pingTask) MarshalBinary() ([]byte, error) {
	var e enc
	e.header(pingMagic)
	return e.b, nil
}
