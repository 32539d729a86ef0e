package app

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"hash"
	"strings"
	"testing"
	"time"
)

func hashOf(n int) hash.Hash {
	h := sha256.New()
	h.Write(payloadBytes(n))
	return h
}

// A task state that disagrees with the request's framing in the same
// state is refused at restore, naming the field: resumed, it sent the
// wrong bytes at the right length, or generated a body it never sent.
func TestResumeRefusesTaskOutOfStepWithResponse(t *testing.T) {
	bytesTaskState := func(bt *bytesTask) []byte {
		b, err := bt.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	get := func(length, written int64) taskPos {
		return taskPos{path: "/bytes", method: "GET", protoMinor: 1, resp: respState{status: 200, kind: respLength, length: length, written: written}}
	}
	upload := func(read int64, resp respState) taskPos {
		return taskPos{path: "/upload", method: "POST", protoMinor: 1, body: bodyState{kind: bodyLength, left: 1000, read: read}, resp: resp}
	}
	uploadState := func(count int64, hashed int) []byte {
		b, err := (&uploadTask{count: count, h: hashOf(hashed)}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		pos  taskPos
		task []byte
		want string // "" : resumed
	}{
		{"consistent download", get(1000, 100), bytesTaskState(&bytesTask{n: 1000, pos: 100, h: hashOf(100)}), ""},
		{"offset behind the response", get(1000, 500), bytesTaskState(&bytesTask{n: 1000, pos: 100, h: hashOf(100)}), "offset 100, but the response has 500 bytes written"},
		{"length not declared", get(2000, 100), bytesTaskState(&bytesTask{n: 1000, pos: 100, h: hashOf(100)}), "length 1000, but the response declared 2000 bytes"},
		{"hash behind the offset", get(1000, 100), bytesTaskState(&bytesTask{n: 1000, pos: 100, h: hashOf(50)}), "the hash covers 50 bytes, the task says 100"},
		{"offset before the header", taskPos{path: "/bytes", method: "GET", protoMinor: 1}, bytesTaskState(&bytesTask{n: 1000, pos: 100, h: hashOf(100)}), "offset 100, but no response header was written"},
		{"HEAD resumed as GET", taskPos{path: "/bytes", method: "HEAD", protoMinor: 1, resp: respState{status: 200, kind: respEmpty}},
			bytesTaskState(&bytesTask{n: 1 << 30, h: sha256.New()}), "head false in a HEAD request"},
		{"GET resumed as HEAD", get(1000, 0), bytesTaskState(&bytesTask{n: 1000, head: true, h: sha256.New()}), "head true in a GET request"},
		{"204 with a body to generate", taskPos{path: "/bytes", method: "GET", protoMinor: 1, resp: respState{status: 204, kind: respEmpty}},
			bytesTaskState(&bytesTask{n: 1 << 30, h: sha256.New()}), "response status 204, but the task answers 200"},
		{"consistent upload", upload(300, respState{}), uploadState(300, 300), ""},
		{"upload count not the body read", upload(300, respState{}), uploadState(100, 100), "count 100, but 300 body bytes were read"},
		{"upload hash behind its count", upload(300, respState{}), uploadState(300, 200), "the hash covers 200 bytes, the task says 300"},
		{"upload answered already", upload(300, respState{status: 200, kind: respLength, length: 65}), uploadState(300, 300), "its response (status 200) was already written"},
	} {
		st := (&httpState{task: &taskState{taskPos: tc.pos, task: tc.task}}).append(nil)
		srv := testServer()
		_, err := newHTTPConn(srv, srv.routes(), &fakeConn{out: &bytes.Buffer{}}, st, true)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrState) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: restore error %v, want ErrState saying %q", tc.name, err, tc.want)
		}
	}
}

// serveResumed serves a connection restored with the HTTP state st on a
// fake connection, and returns what it sent, its request logs and how
// long serving took.
func serveResumed(t *testing.T, st []byte) (out []byte, logs []RequestLog, took time.Duration) {
	t.Helper()
	srv := testServer()
	srv.OnRequest = func(l RequestLog) { logs = append(logs, l) }
	f := &fakeConn{out: &bytes.Buffer{}}
	hc, err := newHTTPConn(srv, srv.routes(), f, st, true)
	if err != nil {
		t.Fatal(err)
	}
	f.state = hc.state
	t0 := time.Now()
	hc.serve()
	return f.out.Bytes(), logs, time.Since(t0)
}

// A consistent state resumes where the response stands.
func TestResumedDownloadSendsTheRest(t *testing.T) {
	b, _ := (&bytesTask{n: 1000, pos: 100, h: hashOf(100)}).MarshalBinary()
	st := (&httpState{task: &taskState{taskPos: taskPos{path: "/bytes", method: "GET", protoMinor: 1,
		resp: respState{status: 200, kind: respLength, length: 1000, written: 100}}, task: b}}).append(nil)
	out, logs, _ := serveResumed(t, st)
	if !bytes.Equal(out, payloadBytes(1000)[100:]) {
		t.Errorf("resumed download sent %d bytes, not bytes [100, 1000) of the payload", len(out))
	}
	if len(logs) != 1 || !bytes.Equal(logs[0].SHA256, func() []byte { s := sha256.Sum256(payloadBytes(1000)); return s[:] }()) {
		t.Errorf("logs %+v, want one with the payload's digest", logs)
	}
}

// A HEAD download that moved after its header ends there: the body is
// neither generated nor counted.
func TestResumedHEADGeneratesNoBody(t *testing.T) {
	b, _ := (&bytesTask{n: 1 << 30, head: true, h: sha256.New()}).MarshalBinary()
	st := (&httpState{task: &taskState{taskPos: taskPos{path: "/bytes", method: "HEAD", protoMinor: 1,
		resp: respState{status: 200, kind: respEmpty}}, task: b}}).append(nil)
	out, logs, took := serveResumed(t, st)
	if len(logs) != 1 || logs[0].BodyOut != 0 || len(out) != 0 {
		t.Errorf("resumed HEAD: logs %+v, %d bytes sent, in %v; want no body", logs, len(out), took)
	}
}
