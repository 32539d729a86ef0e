package app

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sampleStates are valid states of every kind, from real connections
// frozen at quiescent points: the seed corpus of the fuzz tests too.
func sampleHTTPStates(t testing.TB) [][]byte {
	var out [][]byte
	xs := pipeline()
	input := joinRequests(xs)
	for k := 0; k < 40; k += 3 {
		res := &fakeRun{}
		srv := testServer()
		f := &fakeConn{in: input, out: &bytes.Buffer{}, chunk: 3000}
		f.move = func(q int) bool { return q == k }
		hc, err := newHTTPConn(srv, srv.routes(), f, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		f.state = hc.state
		hc.serve()
		_ = res
		if f.moved {
			out = append(out, f.saved)
		}
	}
	return out
}

func TestHTTPStateRoundTrip(t *testing.T) {
	h := sha256.New()
	h.Write([]byte("abc"))
	bt := &bytesTask{n: 1000, pos: 64, h: h}
	task, err := bt.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*httpState{
		{},
		{moves: 3, requests: 9, buffered: []byte("GET /pi")},
		{moves: 1 << 40, buffered: bytes.Repeat([]byte{0}, 1000), task: &taskState{taskPos: taskPos{path: "/bytes", method: "GET", protoMinor: 1, resp: respState{status: 200, kind: respLength, length: 1000, written: 64}, startMoves: 2}, task: task}},
		{task: &taskState{taskPos: taskPos{path: "/upload", method: "POST", closeAfter: true, body: bodyState{kind: bodyChunked, stage: chunkData, left: 5, read: 77, expect: true, contSent: true}}, task: []byte("x")}},
		{task: &taskState{taskPos: taskPos{path: "/upload", method: "PUT", body: bodyState{kind: bodyLength, left: 1 << 40}, resp: respState{status: 204, kind: respEmpty}}}},
	} {
		b := s.append(nil)
		got, err := decodeHTTPState(b)
		if err != nil {
			t.Fatalf("decode(%+v): %v", s, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(s)) {
			t.Fatalf("round trip of %+v gave %+v", s, got)
		}
	}
	for i, b := range sampleHTTPStates(t) {
		s, err := decodeHTTPState(b)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		if !bytes.Equal(s.append(nil), b) {
			t.Fatalf("sample %d does not re-encode to itself", i)
		}
	}
}

func normalize(s *httpState) *httpState {
	c := *s
	if len(c.buffered) == 0 {
		c.buffered = nil
	}
	if c.task != nil {
		t := *c.task
		if len(t.task) == 0 {
			t.task = nil
		}
		c.task = &t
	}
	return &c
}

func TestHTTPStateRefusals(t *testing.T) {
	good := (&httpState{moves: 1, buffered: []byte("GET"), task: &taskState{taskPos: taskPos{path: "/bytes", method: "GET", protoMinor: 1}, task: []byte("t")}}).append(nil)
	// Every proper prefix is refused.
	for i := range len(good) {
		if _, err := decodeHTTPState(good[:i]); !errors.Is(err, ErrState) {
			t.Fatalf("decode(first %d of %d bytes) = %v, want ErrState", i, len(good), err)
		}
	}
	bad := func(mod func(*taskState)) []byte {
		ts := &taskState{taskPos: taskPos{path: "/bytes", method: "GET", protoMinor: 1}}
		mod(ts)
		return (&httpState{task: ts}).append(nil)
	}
	for _, tc := range []struct {
		name, want string
		b          []byte
	}{
		{"magic", `magic "XAPH", want "CAPH"`, append([]byte("X"), good[1:]...)},
		{"version", "version 9, this build reads versions 1 to 2", append(append([]byte("CAPH"), 9), good[5:]...)},
		{"trailing", "1 trailing bytes", append(append([]byte(nil), good...), 0)},
		{"flag", "flag byte 7", func() []byte { b := append([]byte(nil), good...); b[5+1+1+1+4] = 7; return b }()},
		{"path", `path "bytes" does not start with /`, bad(func(ts *taskState) { ts.path = "bytes" })},
		{"method", `method "G T" is not an HTTP token`, bad(func(ts *taskState) { ts.method = "G T" })},
		{"proto", "HTTP/1.2", bad(func(ts *taskState) { ts.protoMinor = 2 })},
		{"body kind", "body framing 3 unknown", bad(func(ts *taskState) { ts.body.kind = 3 })},
		{"chunk stage", "chunk stage 1 on a body that is not chunked", bad(func(ts *taskState) { ts.body.stage = chunkData })},
		{"chunk left", "chunk stage 0 with 4 chunk bytes left", bad(func(ts *taskState) { ts.body.kind, ts.body.left = bodyChunked, 4 })},
		{"continue", "100 Continue sent", bad(func(ts *taskState) { ts.body.contSent = true })},
		{"resp kind", "response framing 9 unknown", bad(func(ts *taskState) { ts.resp = respState{status: 200, kind: 9} })},
		{"status", "response status 0 with framing 1", bad(func(ts *taskState) { ts.resp.kind = respLength })},
		{"status range", "response status 150", bad(func(ts *taskState) { ts.resp = respState{status: 150, kind: respLength} })},
		{"written", "11 response bytes written of 10", bad(func(ts *taskState) { ts.resp = respState{status: 200, kind: respLength, length: 10, written: 11} })},
		{"no body", "without body has", bad(func(ts *taskState) { ts.body.read = 1 })},
	} {
		_, err := decodeHTTPState(tc.b)
		if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decode = %v, want ErrState saying %q", tc.name, err, tc.want)
		}
	}
}

// A restored connection whose route the target lacks, or whose task state
// is bad, is refused with an error naming it.
func TestRestoreRefusals(t *testing.T) {
	srv := testServer()
	st := (&httpState{task: &taskState{taskPos: taskPos{path: "/gone", method: "GET", protoMinor: 1}}}).append(nil)
	_, err := newHTTPConn(srv, srv.routes(), &fakeConn{out: &bytes.Buffer{}}, st, true)
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), `"/gone"`) {
		t.Errorf("restore of an unknown route = %v", err)
	}
	st = (&httpState{task: &taskState{taskPos: taskPos{path: "/bytes", method: "GET", protoMinor: 1}, task: []byte("CAPb\x01\x05\x09\x00")}}).append(nil)
	_, err = newHTTPConn(srv, srv.routes(), &fakeConn{out: &bytes.Buffer{}}, st, true)
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "offset 9 past the length 5") {
		t.Errorf("restore of a bad /bytes task = %v", err)
	}
	_, err = newEchoConn(&Echo{}, &fakeConn{}, []byte("CAPH\x01"), true)
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), `magic "CAPH", want "CAPE"`) {
		t.Errorf("echo restore of an HTTP state = %v", err)
	}
}

func TestTaskStateRoundTrip(t *testing.T) {
	h := sha256.New()
	h.Write([]byte("hello"))
	bh := sha256.New()
	bh.Write(payloadBytes(40))
	bt := &bytesTask{n: 100, pos: 40, head: true, h: bh}
	b, _ := bt.MarshalBinary()
	got, err := decodeBytesTask(b)
	if err != nil || got.n != 100 || got.pos != 40 || !got.head || !bytes.Equal(got.h.Sum(nil), bh.Sum(nil)) {
		t.Fatalf("bytes task round trip: %+v, %v", got, err)
	}
	ut := &uploadTask{count: 5, h: h}
	b, _ = ut.MarshalBinary()
	gu, err := decodeUploadTask(b)
	if err != nil || gu.count != 5 || !bytes.Equal(gu.h.Sum(nil), h.Sum(nil)) {
		t.Fatalf("upload task round trip: %+v, %v", gu, err)
	}
	b[len(b)-maxHashStateLen] ^= 0xff // the sha256 state's own magic
	if _, err := decodeUploadTask(b); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("a corrupt sha256 state loaded: %v", err)
	}
}

// maxHashStateLen is crypto/sha256's saved state: magic, 8 words, a block
// and the length.
const maxHashStateLen = 4 + 32 + 64 + 8

func TestEchoStateRoundTrip(t *testing.T) {
	for _, s := range []echoState{{}, {pending: []byte("abc"), eof: true, moves: 7}} {
		got, err := decodeEchoState(s.append(nil))
		if err != nil || !bytes.Equal(got.pending, s.pending) || got.eof != s.eof || got.moves != s.moves {
			t.Fatalf("echo round trip of %+v: %+v, %v", s, got, err)
		}
	}
	good := (&echoState{pending: []byte("abc")}).append(nil)
	for i := range len(good) {
		if _, err := decodeEchoState(good[:i]); !errors.Is(err, ErrState) {
			t.Fatalf("decode(first %d bytes) = %v, want ErrState", i, err)
		}
	}
}

func FuzzHTTPState(f *testing.F) {
	for _, b := range sampleHTTPStates(f) {
		f.Add(b)
	}
	f.Add([]byte("CAPH\x01"))
	f.Add((&httpState{task: &taskState{taskPos: taskPos{path: "/upload", method: "POST", body: bodyState{kind: bodyChunked, stage: chunkData, left: 3}}}}).append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeHTTPState(b)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error %v does not wrap ErrState", err)
			}
			return
		}
		if b[len(httpMagic)] == httpVersion && !bytes.Equal(s.append(nil), b) {
			t.Fatalf("a state that decodes does not re-encode to itself")
		}
		// Restoring it must not panic either, and serving it must end (a
		// restored download may claim gigabytes: the output is capped).
		srv := testServer()
		c := &fakeConn{in: []byte("GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"), out: &bytes.Buffer{}, limit: 1 << 20}
		hc, err := newHTTPConn(srv, srv.routes(), c, b, true)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("restore error %v does not wrap ErrState", err)
			}
			return
		}
		c.state = hc.state
		hc.serve()
	})
}

func FuzzTaskStates(f *testing.F) {
	h := sha256.New()
	h.Write([]byte("abc")) // the 3 bytes the seeds count
	b1, _ := (&bytesTask{n: 10, pos: 3, h: h}).MarshalBinary()
	b2, _ := (&uploadTask{count: 3, h: h}).MarshalBinary()
	b3, _ := pingTask{}.MarshalBinary()
	f.Add(b1)
	f.Add(b2)
	f.Add(b3)
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, r := range StandardRoutes() {
			task, err := r.Resume(b)
			if err != nil {
				if !errors.Is(err, ErrState) {
					t.Fatalf("%s: error %v does not wrap ErrState", name, err)
				}
				continue
			}
			// The sha256 state inside is crypto/sha256's, which loads some
			// encodings it does not write (junk past the buffered bytes):
			// saving must reach a fixed point after one round.
			again, err := task.MarshalBinary()
			if err != nil {
				t.Fatalf("%s: a state that loads does not save: %v", name, err)
			}
			task2, err := r.Resume(again)
			if err != nil {
				t.Fatalf("%s: a saved state does not load: %v", name, err)
			}
			if third, _ := task2.MarshalBinary(); !bytes.Equal(third, again) {
				t.Fatalf("%s: saving does not reach a fixed point", name)
			}
		}
	})
}

func FuzzEchoState(f *testing.F) {
	f.Add((&echoState{pending: []byte("abc"), eof: true, moves: 2}).append(nil))
	f.Add([]byte("CAPE\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeEchoState(b)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error %v does not wrap ErrState", err)
			}
			return
		}
		if !bytes.Equal(s.append(nil), b) {
			t.Fatalf("a state that decodes does not re-encode to itself")
		}
	})
}

// TestHTTP12RequestMoves: an HTTP/1.2 request, which Go's ReadRequest
// takes and the server answers as 1.1, moves mid-response: its state says
// 1.1, which a target restores (it refused 1.2 and reset the connection).
func TestHTTP12RequestMoves(t *testing.T) {
	srv := testServer()
	f := &fakeConn{in: []byte("GET /bytes?n=300000 HTTP/1.2\r\nHost: a\r\n\r\n"), out: &bytes.Buffer{}, chunk: 3000}
	f.move = func(q int) bool { return q == 3 }
	hc, err := newHTTPConn(srv, srv.routes(), f, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.state = hc.state
	hc.serve()
	if !f.moved {
		t.Fatal("the connection never reached its fourth quiescent point")
	}
	if _, err := newHTTPConn(srv, srv.routes(), &fakeConn{out: &bytes.Buffer{}}, f.saved, true); err != nil {
		t.Fatalf("restoring the moved HTTP/1.2 request: %v", err)
	}
}

// A state whose GET response counts its body without sending it (a
// respEmpty frame, for HEAD and bodiless statuses only) is refused: a
// forged one made the target generate a 16 GiB /bytes body for nothing,
// and stalled FuzzHTTPState.
func TestStateRefusesAnUnsentBodyForGET(t *testing.T) {
	for _, tc := range []struct {
		method string
		status int
		ok     bool
	}{{"GET", 200, false}, {"HEAD", 200, true}, {"GET", 204, true}} {
		s := &httpState{task: &taskState{taskPos: taskPos{path: "/bytes", method: tc.method, protoMinor: 1,
			resp: respState{status: tc.status, kind: respEmpty}}}}
		_, err := decodeHTTPState(s.append(nil))
		if (err == nil) != tc.ok {
			t.Errorf("%s with status %d and no body sent: decode error %v, want ok %v", tc.method, tc.status, err, tc.ok)
		}
	}
}
