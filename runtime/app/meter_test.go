package app

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/capygen/capygen/runtime/load"
)

// A request ends in the server's Load however its handler ends: one that
// panics (http.ErrAbortHandler included) left the server counted busy
// for ever.
func TestLoadEndsWhenHandlerPanics(t *testing.T) {
	for _, p := range []any{http.ErrAbortHandler, "on purpose"} {
		srv := testServer()
		srv.Handler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(p) })
		srv.Load = load.NewMeter(0)
		f := &fakeConn{in: []byte("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n"), out: &bytes.Buffer{}}
		hc, err := newHTTPConn(srv, srv.routes(), f, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		hc.load = load.NewConnLoad(0)
		f.state = hc.state
		hc.serve()
		now := load.Now()
		srv.Load.Tick(now)
		if s := srv.Load.Tick(now + 1e9); s.InFlight != 0 || s.Busy > 0.5 {
			t.Errorf("panic(%v): after the connection closed the load is %+v, want nothing in flight and idle", p, s)
		}
		if r, _ := hc.load.At(load.Now()); r < 0.5 {
			t.Errorf("panic(%v): the connection's load counts %.2f requests, want the one served", p, r)
		}
	}
}

// The rest of a request that moved in mid-body is counted in the target's
// Load while it is served.
func TestLoadCountsResumedRequest(t *testing.T) {
	srv := testServer()
	f := &fakeConn{in: []byte("GET /bytes?n=1000000 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), out: &bytes.Buffer{},
		move: func(q int) bool { return q == 3 }}
	hc, err := newHTTPConn(srv, srv.routes(), f, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	f.state = hc.state
	hc.serve()
	if !f.moved {
		t.Fatal("the download did not move")
	}
	tgt := testServer()
	tgt.Load = load.NewMeter(0)
	inFlight := int64(-1)
	tgt.OnRequest = func(RequestLog) { inFlight = tgt.Load.Tick(load.Now()).InFlight }
	f2 := &fakeConn{in: f.in, out: f.out}
	hc2, err := newHTTPConn(tgt, tgt.routes(), f2, f.saved, true)
	if err != nil {
		t.Fatal(err)
	}
	hc2.load = load.NewConnLoad(0)
	f2.state = hc2.state
	hc2.serve()
	if inFlight != 1 {
		t.Errorf("target's load while it finished the moved download: %d in flight, want 1", inFlight)
	}
	if s := tgt.Load.Tick(load.Now()); s.InFlight != 0 {
		t.Errorf("target's load once done: %d in flight, want 0", s.InFlight)
	}
	if r, _ := hc2.load.At(load.Now()); r < 0.5 {
		t.Errorf("the connection's load at the target counts %.2f requests, want the moved one", r)
	}
}
