package app

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// silentConn is a fakeConn whose client sends in and then nothing more,
// keeping the connection open: a read with nothing to take waits for the
// read deadline the server set (SetReadDeadline), as a stack connection
// does. With moveAfter, a migratable read moves once it has waited that
// long, as an idle connection a balancer keeps moving.
type silentConn struct {
	fakeConn
	moveAfter time.Duration

	mu sync.Mutex
	dl time.Time
}

func (s *silentConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dl = t
	return nil
}

func (s *silentConn) wait(migratable bool) (int, error) {
	t0 := time.Now()
	for {
		s.mu.Lock()
		dl := s.dl
		s.mu.Unlock()
		if !dl.IsZero() && !time.Now().Before(dl) {
			return 0, os.ErrDeadlineExceeded
		}
		if migratable && s.moveAfter > 0 && time.Since(t0) >= s.moveAfter {
			st, err := s.state()
			if err != nil {
				return 0, err
			}
			s.saved, s.moved = st, true
			return 0, migrate.ErrMoved
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (s *silentConn) Read(p []byte) (int, error) {
	if s.moved {
		return 0, migrate.ErrMoved
	}
	if len(s.in) == 0 {
		return s.wait(true)
	}
	return s.fakeConn.ReadDirect(p, time.Time{})
}

func (s *silentConn) ReadDirect(p []byte, dl time.Time) (int, error) {
	if len(s.in) == 0 {
		return s.wait(false)
	}
	return s.fakeConn.ReadDirect(p, dl)
}

// serveSilent serves in on srv through the connection's moves until it
// closes, or fails the test after limit.
func serveSilent(t *testing.T, srv *HTTPServer, in string, moveAfter, limit time.Duration) (out []byte, moves int, took time.Duration) {
	t.Helper()
	buf, req := &bytes.Buffer{}, in
	var state []byte
	restored := false
	start := time.Now()
	for {
		c := &silentConn{fakeConn: fakeConn{in: []byte(in), out: buf}, moveAfter: moveAfter}
		in = ""
		hc, err := newHTTPConn(srv, srv.routes(), c, state, restored)
		if err != nil {
			t.Fatalf("restoring after %d moves: %v", moves, err)
		}
		c.state = hc.state
		done := make(chan struct{})
		go func() { hc.serve(); close(done) }()
		select {
		case <-done:
		case <-time.After(limit - time.Since(start)):
			t.Fatalf("%q: still open after %v and %d moves", clip([]byte(req)), time.Since(start), moves)
		}
		if !c.moved {
			return buf.Bytes(), moves, time.Since(start)
		}
		state, restored = c.saved, true
		moves++
	}
}

// A client that goes silent in the middle of its request body is cut off
// after BodyTimeout, whether a resumable task (answered 408) or a plain
// handler reads the body.
func TestBodyTimeoutClosesSilentClient(t *testing.T) {
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	const timeout = 100 * time.Millisecond
	for _, tc := range []struct {
		in     string
		status int
		idle   bool // set IdleTimeout instead, which BodyTimeout defaults to
	}{
		{"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", http.StatusRequestTimeout, false},
		{"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", http.StatusRequestTimeout, true},
		{"POST /plain HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", http.StatusBadRequest, true},
		{"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", http.StatusRequestTimeout, false},
		{"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5", http.StatusRequestTimeout, false},
		{"POST /plain HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", http.StatusBadRequest, false},
		// Left unread by the handler: the server reading it away waits
		// no longer.
		{"POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab", http.StatusMethodNotAllowed, false},
	} {
		srv := &HTTPServer{Handler: plain, ErrorLog: discardLogger(), BodyTimeout: timeout}
		if tc.idle {
			srv.BodyTimeout, srv.IdleTimeout = 0, timeout
		}
		out, _, took := serveSilent(t, srv, tc.in, 0, 3*time.Second)
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("%q: %v (output %q)", clip([]byte(tc.in)), err, clip(out))
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%q: status %d, want %d", clip([]byte(tc.in)), resp.StatusCode, tc.status)
		}
		if took < timeout {
			t.Errorf("%q: closed after %v, before BodyTimeout %v", clip([]byte(tc.in)), took, timeout)
		}
	}
}

// The time a connection waited for its client goes with it when it
// moves: moving it more often than the timeout does not keep it open.
func TestWaitClockTravelsWithMoves(t *testing.T) {
	const timeout, every = 200 * time.Millisecond, 120 * time.Millisecond
	for _, tc := range []struct {
		name, in string
		srv      *HTTPServer
		status   int // of the response, if one is due
	}{
		{"idle between requests", "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n",
			&HTTPServer{ErrorLog: discardLogger(), IdleTimeout: timeout}, 0},
		{"within a request header", "GET /ping HTTP/1.1\r\nHost: a\r\nX-Pad: 1",
			&HTTPServer{ErrorLog: discardLogger(), IdleTimeout: timeout}, 0},
		{"within a resumable body", "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab",
			&HTTPServer{ErrorLog: discardLogger(), BodyTimeout: timeout}, http.StatusRequestTimeout},
	} {
		out, moves, took := serveSilent(t, tc.srv, tc.in, every, 3*time.Second)
		if moves == 0 || moves > 3 {
			t.Errorf("%s: closed after %v and %d moves, want one or two moves (timeout %v, a move every %v)", tc.name, took, moves, timeout, every)
		}
		if took < timeout {
			t.Errorf("%s: closed after %v, before the timeout %v", tc.name, took, timeout)
		}
		if tc.status != 0 {
			// The answer comes after what the request got before (none).
			if !bytes.HasPrefix(out, []byte("HTTP/1.1 408 ")) {
				t.Errorf("%s: %q, want 408", tc.name, clip(out))
			}
		}
	}
}

// The state says how long the connection had waited; the HTTP state of
// version 1, from servers that did not say it, still loads, as having
// waited nothing; a newer version is refused by name.
func TestHTTPStateCarriesTheWait(t *testing.T) {
	srv := &HTTPServer{ErrorLog: discardLogger()}
	c := &silentConn{fakeConn: fakeConn{out: &bytes.Buffer{}}, moveAfter: 50 * time.Millisecond}
	hc, err := newHTTPConn(srv, srv.routes(), c, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	c.state = hc.state
	hc.serve()
	st, err := decodeHTTPState(c.saved)
	if err != nil || st.waited < 50*time.Millisecond || st.waited > 2*time.Second {
		t.Fatalf("state of a connection moved after 50ms idle: waited %v, %v", st.waited, err)
	}

	// Version 1: magic, version, moves, requests, buffered, no task.
	v1 := []byte("CAPH\x01\x03\x02\x03GET\x00")
	st, err = decodeHTTPState(v1)
	if err != nil || st.moves != 3 || st.requests != 2 || string(st.buffered) != "GET" || st.waited != 0 {
		t.Errorf("version 1 state: %+v, %v", st, err)
	}
	v3 := append([]byte("CAPH\x03"), v1[5:]...)
	if _, err := decodeHTTPState(v3); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "version 3, this build reads versions 1 to 2") {
		t.Errorf("version 3 state: %v, want ErrState naming the versions", err)
	}
}
