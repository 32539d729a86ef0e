package app

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// lateReadRoute's task writes its response header and then reads the
// body (echoing it), as a handler that streams may.
type lateReadRoute struct{}

func (lateReadRoute) Begin(r *http.Request) (Task, error) { return &lateReadTask{}, nil }
func (lateReadRoute) Resume([]byte) (Task, error) {
	return nil, errors.New("lateReadRoute: not resumable")
}

type lateReadTask struct{}

func (*lateReadTask) Step(x *Exchange) (bool, error) {
	if err := x.WriteHeader(http.StatusOK, nil, -1); err != nil {
		return false, err
	}
	io.WriteString(x, "got:")
	b, err := io.ReadAll(x.Body())
	if err != nil {
		return false, err
	}
	_, err = x.Write(b)
	return true, err
}

func (*lateReadTask) MarshalBinary() ([]byte, error) { return nil, errors.New("not resumable") }

// No "100 Continue" follows the final response's header: it would land
// in the response's body. The body is read without it, and the
// connection closes after the response, which says so.
func TestNoContinueAfterFinalHeader(t *testing.T) {
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("a"), plainBufferSize+1)) // the header goes out
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	for _, tc := range []struct {
		name, path, want string
	}{
		{"plain handler", "/plain", strings.Repeat("a", plainBufferSize+1) + "xyz"},
		{"resumable task", "/late", "got:xyz"},
	} {
		srv := testServer()
		srv.Handler = plain
		srv.Routes = map[string]Resumable{"/late": lateReadRoute{}}
		in := "POST " + tc.path + " HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nxyz"
		res, err := serveHTTPFake(srv, []byte(in), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(res.out, []byte("100 Continue")); i >= 0 {
			t.Errorf("%s: 100 Continue at byte %d, after the final header", tc.name, i)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.out)), nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != tc.want {
			t.Errorf("%s: body %q, %v; want %q", tc.name, clip(body), err, clip([]byte(tc.want)))
		}
		if !resp.Close || !res.early {
			t.Errorf("%s: response says close %v, closed %v; want both", tc.name, resp.Close, res.early)
		}
	}
	// Read before the header, the body still gets its 100 Continue.
	res, err := serveHTTPFake(testServer(), []byte("POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(res.out, []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")) {
		t.Errorf("echo with 100-continue: %q, want 100 Continue then 200", clip(res.out))
	}
}

// When the server will close the connection rather than read away the
// body a response left unread (an unanswered 100-continue, or more than
// maxDiscard), the response says Connection: close (RFC 9110 §9.6).
func TestCloseAnnouncedWhenBodyStaysUnread(t *testing.T) {
	srv := func() *HTTPServer {
		s := testServer()
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "no\n") })
		return s
	}
	big := strings.Repeat("z", maxDiscard+1)
	for _, tc := range []struct {
		in    string
		close bool
	}{
		{"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n", true},
		{"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 262145\r\n\r\n" + big, true},
		{"GET /bytes?n=3 HTTP/1.1\r\nHost: a\r\nContent-Length: 262145\r\n\r\n" + big, true},
		{"GET /bytes?n=3 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n", true},
		{"POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 262145\r\n\r\n" + big, true}, // answerError's own rule
		// Read away: the connection stays.
		{"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 262144\r\n\r\n" + big[1:], false},
		{"GET /bytes?n=3 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", false},
	} {
		res, err := serveHTTPFake(srv(), []byte(tc.in), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.out)), nil)
		if err != nil {
			t.Fatalf("%q: %v", clip([]byte(tc.in)), err)
		}
		if resp.Close != tc.close || res.early != tc.close {
			t.Errorf("%q: %d response says close %v, closed %v; want %v", clip([]byte(tc.in)), resp.StatusCode, resp.Close, res.early, tc.close)
		}
	}
}

// A Host field is checked whenever a request has one (RFC 9112 §3.2),
// and required of HTTP/1.1 only.
func TestHostCheckedOnEveryVersion(t *testing.T) {
	for _, tc := range []struct {
		req    string
		status int
	}{
		{"GET /ping HTTP/1.0\r\nHost: a b\r\n\r\n", 400},
		{"GET /ping HTTP/1.0\r\nHost: a\x01\r\n\r\n", 400},
		{"GET http://a/ping HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"GET /ping HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"GET /ping HTTP/1.1\r\n\r\n", 400},
		{"GET /ping HTTP/1.0\r\n\r\n", 200},
		{"GET /ping HTTP/1.0\r\nHost: a\r\n\r\n", 200},
		{"GET http://a/ping HTTP/1.1\r\nHost: b\r\n\r\n", 200},
	} {
		res, err := serveHTTPFake(testServer(), []byte(tc.req), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.out)), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.req, err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%q: status %d, want %d", tc.req, resp.StatusCode, tc.status)
		}
	}
}

// A Transfer-Encoding other than chunked is not implemented: 501 (RFC
// 9112 §6.1), and the connection closes, as its body cannot be framed.
func TestUnknownTransferEncodingIs501(t *testing.T) {
	for _, tc := range []struct {
		te     string
		status int
	}{
		{"Transfer-Encoding: gzip\r\n", 501},
		{"Transfer-Encoding: gzip, chunked\r\n", 501},
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 501},
		{"Transfer-Encoding: gzip\r\nContent-Length: 5\r\n", 501},
		// Another fault in the header is the client's: 400.
		{"Transfer-Encoding: gzip\r\nNoColon\r\n", 400},
	} {
		in := "POST /upload HTTP/1.1\r\nHost: a\r\n" + tc.te + "\r\n0\r\n\r\n"
		res, err := serveHTTPFake(testServer(), []byte(in), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.out)), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.te, err)
		}
		if resp.StatusCode != tc.status || !resp.Close || !res.early {
			t.Errorf("%q: status %d, says close %v, closed %v; want %d and closed", tc.te, resp.StatusCode, resp.Close, res.early, tc.status)
		}
	}
}
