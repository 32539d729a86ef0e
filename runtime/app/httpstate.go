package app

import (
	"net/http"
	"strings"
	"time"
)

// httpState is what an HTTP connection's migration carries besides the
// TCP state. Wire form (varints unsigned LEB128, byte strings
// length-prefixed):
//
//	"CAPH" version=2
//	moves requests waited buffered hasTask
//	[path method protoMinor closeAfter
//	 body{kind stage left read expect contSent}
//	 resp{status kind length written}
//	 startMoves task]
//
// Version 1, which a decoder still reads, has no waited.
type httpState struct {
	moves, requests uint64
	// waited is how long the server had been waiting for the client (a
	// request, or body bytes) when the state was taken: the wait's
	// timeout goes on counting from there at the target.
	waited   time.Duration
	buffered []byte // bytes read from the connection, not yet parsed
	task     *taskState
}

type taskState struct {
	taskPos
	task []byte // the Task's MarshalBinary
}

// taskPos is where a resumable request stands: what a running request
// (taskRun) and its saved state (taskState) both hold, besides the Task.
type taskPos struct {
	path, method string
	protoMinor   int
	closeAfter   bool
	body         bodyState
	resp         respState
	startMoves   uint64
}

const httpMagic = "CAPH"

// httpVersion is the HTTP state's version (2 added waited); version 1
// states are still read, as having waited nothing.
const httpVersion = 2

// Limits a decoder holds a state to. They bound allocations and catch
// garbage; a real state is far below each.
const (
	maxBuffered  = 64 << 20
	maxPath      = 8 << 10
	maxMethod    = 64
	maxTaskState = 1 << 20
	maxBodyLen   = 1 << 62
	maxWaited    = 1 << 62 // nanoseconds
)

func (s *httpState) append(b []byte) []byte {
	e := enc{b: b}
	e.versioned(httpMagic, httpVersion)
	e.uvar(s.moves)
	e.uvar(s.requests)
	e.uvar(uint64(s.waited))
	e.bytes(s.buffered)
	e.flag(s.task != nil)
	if t := s.task; t != nil {
		e.str(t.path)
		e.str(t.method)
		e.u8(uint8(t.protoMinor))
		e.flag(t.closeAfter)
		e.u8(uint8(t.body.kind))
		e.u8(uint8(t.body.stage))
		e.uvar(uint64(t.body.left))
		e.uvar(uint64(t.body.read))
		e.flag(t.body.expect)
		e.flag(t.body.contSent)
		e.uvar(uint64(t.resp.status))
		e.u8(uint8(t.resp.kind))
		e.uvar(uint64(t.resp.length))
		e.uvar(uint64(t.resp.written))
		e.uvar(t.startMoves)
		e.bytes(t.task)
	}
	return e.b
}

// decodeHTTPState reads and checks a state; errors wrap ErrState.
func decodeHTTPState(b []byte) (*httpState, error) {
	d := dec{what: "http connection", b: b}
	v := d.versions(httpMagic, 1, httpVersion)
	s := &httpState{}
	s.moves = d.uvar("moves")
	s.requests = d.uvar("requests")
	if v >= 2 {
		s.waited = time.Duration(d.int63("time waited", maxWaited))
	}
	s.buffered = d.bytes("buffered input", maxBuffered)
	if d.flag("request in progress") {
		t := &taskState{}
		t.path = string(d.bytes("path", maxPath))
		t.method = string(d.bytes("method", maxMethod))
		t.protoMinor = int(d.u8("protocol minor version"))
		t.closeAfter = d.flag("close after")
		t.body.kind = bodyKind(d.u8("body framing"))
		t.body.stage = chunkStage(d.u8("chunk stage"))
		t.body.left = d.int63("body bytes left", maxBodyLen)
		t.body.read = d.int63("body bytes read", maxBodyLen)
		t.body.expect = d.flag("expect continue")
		t.body.contSent = d.flag("continue sent")
		t.resp.status = int(d.int63("status", 999))
		t.resp.kind = respKind(d.u8("response framing"))
		t.resp.length = d.int63("response length", maxBodyLen)
		t.resp.written = d.int63("response bytes written", maxBodyLen)
		t.startMoves = d.uvar("moves at request start")
		t.task = d.bytes("task state", maxTaskState)
		if d.err == nil {
			checkTask(&d, t)
		}
		s.task = t
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return s, nil
}

// progress is the server's record of the request, for a ResumeChecker.
func (t *taskPos) progress() Progress {
	p := Progress{Method: t.method, BodyRead: t.body.read, Status: t.resp.status, Length: -1,
		Written: t.resp.written, Unsent: t.resp.kind == respEmpty}
	if t.resp.kind == respLength {
		p.Length = t.resp.length
	}
	return p
}

// checkTask refuses field combinations the server never writes.
func checkTask(d *dec, t *taskState) {
	switch {
	case len(t.path) == 0 || t.path[0] != '/':
		d.fail("path %q does not start with /", clip([]byte(t.path)))
	case !validMethod(t.method):
		d.fail("method %q is not an HTTP token", t.method)
	case t.protoMinor > 1:
		d.fail("HTTP/1.%d, want 1.0 or 1.1", t.protoMinor)
	case t.body.kind >= numBodyKinds:
		d.fail("body framing %d unknown", t.body.kind)
	case t.body.stage >= numChunkStages:
		d.fail("chunk stage %d unknown", t.body.stage)
	case t.body.kind != bodyChunked && t.body.stage != chunkSize:
		d.fail("chunk stage %d on a body that is not chunked", t.body.stage)
	case t.body.kind == bodyNone && (t.body.left != 0 || t.body.read != 0):
		d.fail("a request without body has %d bytes left and %d read", t.body.left, t.body.read)
	case t.body.kind == bodyChunked && (t.body.left != 0) != (t.body.stage == chunkData):
		d.fail("chunk stage %d with %d chunk bytes left", t.body.stage, t.body.left)
	case t.body.contSent && !t.body.expect:
		d.fail("100 Continue sent though none was expected")
	case t.resp.kind >= numRespKinds:
		d.fail("response framing %d unknown", t.resp.kind)
	case (t.resp.kind == respNone) != (t.resp.status == 0):
		d.fail("response status %d with framing %d", t.resp.status, t.resp.kind)
	case t.resp.status != 0 && (t.resp.status < 200 || t.resp.status > 999):
		d.fail("response status %d, want 200..999", t.resp.status)
	case t.resp.kind == respLength && t.resp.written > t.resp.length:
		d.fail("%d response bytes written of %d declared", t.resp.written, t.resp.length)
	case t.resp.kind != respLength && t.resp.length != 0:
		d.fail("a declared response length %d with framing %d", t.resp.length, t.resp.kind)
	case t.resp.kind == respNone && t.resp.written != 0:
		d.fail("%d response bytes written before the header", t.resp.written)
	case t.resp.kind == respEmpty && t.method != http.MethodHead && bodyAllowedForStatus(t.resp.status):
		// A body the server counts and never sends (frame's respEmpty) is
		// for HEAD or a bodiless status only: a forged state could make the
		// target generate gigabytes for nothing.
		d.fail("a %s response with status %d has no body", t.method, t.resp.status)
	}
}

// validMethod reports whether m is an RFC 9110 token.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
