package app

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var fixedNow = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }

// testHandler is the plain handler of the unit tests.
func testHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		for i := range 10 {
			fmt.Fprintf(w, "%04d:%s\n", i, strings.Repeat("x", 1000))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("y"), 10000)) // more than is held: chunked
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye\n")
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("on purpose") })
	return mux
}

func testServer() *HTTPServer {
	return &HTTPServer{Handler: testHandler(), now: fixedNow, ErrorLog: discardLogger()}
}

func payloadBytes(n int) []byte {
	b := make([]byte, n)
	NewPayload(int64(n)).Read(b)
	return b
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// exchange is one request of a pipelined input and what its response
// must be.
type exchange struct {
	req    string
	method string // for ReadResponse (HEAD has no body)
	status int
	body   func(t *testing.T, body []byte, h http.Header)
}

func bodyIs(want string) func(*testing.T, []byte, http.Header) {
	return func(t *testing.T, got []byte, _ http.Header) {
		t.Helper()
		if string(got) != want {
			t.Errorf("body %q, want %q", clip(got), clip([]byte(want)))
		}
	}
}

func bodyLen(n int) func(*testing.T, []byte, http.Header) {
	return func(t *testing.T, got []byte, _ http.Header) {
		t.Helper()
		if len(got) != n {
			t.Errorf("body of %d bytes, want %d", len(got), n)
		}
	}
}

// chunked frames b as a chunked body with uneven chunks, extensions and a
// trailer.
func chunked(b []byte) string {
	var s strings.Builder
	for i, sz := 0, 1; i < len(b); sz = sz*3 + 7 {
		n := min(sz, len(b)-i)
		fmt.Fprintf(&s, "%x;ext=%d\r\n", n, sz)
		s.Write(b[i : i+n])
		s.WriteString("\r\n")
		i += n
	}
	s.WriteString("0\r\nX-Trailer: yes\r\n\r\n")
	return s.String()
}

func pipeline() []exchange {
	up := payloadBytes(100_000)
	up2 := payloadBytes(77_777)[1000:]
	small := payloadBytes(3000)
	echo := payloadBytes(5000)
	return []exchange{
		{req: "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: bodyIs("pong\n")},
		{req: "GET /bytes?n=150000 HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: bodyIs(string(payloadBytes(150_000)))},
		{req: "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + string(up), status: 200, body: bodyIs(hexSHA(up) + "\n")},
		{req: "\r\nPOST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(up2), status: 200, body: bodyIs(hexSHA(up2) + "\n")},
		{req: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + string(echo), status: 200, body: bodyIs(string(echo))},
		{req: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(echo), status: 200, body: bodyIs(string(echo))},
		{req: "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: bodyLen(10 * 1006)},
		{req: "GET /big HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: bodyLen(10000)},
		{req: "HEAD /bytes?n=5 HTTP/1.1\r\nHost: a\r\n\r\n", method: "HEAD", status: 200, body: bodyLen(0)},
		{req: "GET /bytes?n=0 HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: bodyLen(0)},
		{req: "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3000\r\n\r\n" + string(small), status: 200, body: bodyIs(hexSHA(small) + "\n")},
		{req: "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n", status: 204, body: bodyLen(0)},
		{req: "GET /bytes?n=x HTTP/1.1\r\nHost: a\r\n\r\n", status: 400, body: bodyIs("n=\"x\": want a byte count in 0..17179869184\n")},
		{req: "DELETE /upload HTTP/1.1\r\nHost: a\r\n\r\n", status: 405, body: bodyIs("DELETE /upload: use POST, PUT\n")},
		{req: "GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n", status: 404, body: bodyIs("404 page not found\n")},
		{req: "GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, body: bodyIs("pong\n")},
		{req: "GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", status: 200, body: bodyIs("pong\n")},
	}
}

func joinRequests(xs []exchange) []byte {
	var b bytes.Buffer
	for _, x := range xs {
		b.WriteString(x.req)
	}
	return b.Bytes()
}

// checkResponses parses out as the responses to xs, in order.
func checkResponses(t *testing.T, xs []exchange, out []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(out))
	for i, x := range xs {
		method := x.method
		if method == "" {
			method = "GET"
		}
		var resp *http.Response
		var err error
		for {
			resp, err = http.ReadResponse(br, &http.Request{Method: method})
			if err != nil || resp.StatusCode >= 200 {
				break
			}
		}
		if err != nil {
			t.Fatalf("response %d (%q): %v", i, clip([]byte(x.req)), err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d (%q): body: %v", i, clip([]byte(x.req)), err)
		}
		if resp.StatusCode != x.status {
			t.Errorf("response %d (%q): status %d, want %d (body %q)", i, clip([]byte(x.req)), resp.StatusCode, x.status, clip(body))
		}
		x.body(t, body, resp.Header)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Errorf("%d bytes after the last response: %q", len(rest), clip(rest))
	}
}

func TestHTTPPipelineNoMigration(t *testing.T) {
	xs := pipeline()
	for _, chunk := range []int{0, 1, 1000} {
		res, err := serveHTTPFake(testServer(), joinRequests(xs), chunk, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResponses(t, xs, res.out)
		if !res.early {
			t.Error("the connection was not closed after Connection: close")
		}
		if len(res.logs) != len(xs) {
			t.Errorf("%d requests logged, want %d", len(res.logs), len(xs))
		}
	}
}

// Migrating once at each quiescent point in turn, or at random ones over
// and over, must give the very bytes of a run that never moves.
func TestHTTPMigrateAtEveryQuiescentPoint(t *testing.T) {
	xs := pipeline()
	input := joinRequests(xs)
	for _, chunk := range []int{4096, 700} {
		ref, err := serveHTTPFake(testServer(), input, chunk, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < ref.points; k++ {
			res, err := serveHTTPFake(testServer(), input, chunk, func(inc, q int) bool { return inc == 0 && q == k })
			if err != nil {
				t.Fatalf("chunk %d, move at point %d: %v", chunk, k, err)
			}
			if res.moves != 1 {
				t.Fatalf("chunk %d, move at point %d: %d moves, want 1", chunk, k, res.moves)
			}
			if !bytes.Equal(res.out, ref.out) {
				checkResponses(t, xs, res.out)
				t.Fatalf("chunk %d, move at point %d of %d: output differs from the run without migration", chunk, k, ref.points)
			}
		}
		t.Logf("chunk %d: %d quiescent points, each a migration that changed nothing", chunk, ref.points)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	res, err := serveHTTPFake(testServer(), input, 1500, func(_, q int) bool { return q > 0 && rng.IntN(2) == 0 })
	if err != nil {
		t.Fatal(err)
	}
	checkResponses(t, xs, res.out)
	ref, _ := serveHTTPFake(testServer(), input, 1500, nil)
	if !bytes.Equal(res.out, ref.out) {
		t.Fatal("random migrations changed the output")
	}
	moved := 0
	for _, l := range res.logs {
		moved += l.Moves
	}
	t.Logf("random: %d migrations, %d of them mid-request", res.moves, moved)
	if moved == 0 {
		t.Error("no request moved mid-body")
	}
}

// The digests the standard tasks report travel with them.
func TestHTTPDigestsSurviveMoves(t *testing.T) {
	up := payloadBytes(500_000)
	input := "GET /bytes?n=1000000 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 500000\r\nConnection: close\r\n\r\n" + string(up)
	res, err := serveHTTPFake(testServer(), []byte(input), 9000, func(_, q int) bool { return q%2 == 1 })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.logs) != 2 {
		t.Fatalf("%d requests logged, want 2", len(res.logs))
	}
	want := []string{hexSHA(payloadBytes(1_000_000)), hexSHA(up)}
	for i, l := range res.logs {
		if got := hex.EncodeToString(l.SHA256); got != want[i] {
			t.Errorf("%s %s: digest %s, want %s", l.Method, l.Path, got, want[i])
		}
		if l.Moves < 5 {
			t.Errorf("%s %s moved %d times, want many", l.Method, l.Path, l.Moves)
		}
	}
	t.Logf("%d moves in all; per request %d and %d", res.moves, res.logs[0].Moves, res.logs[1].Moves)
}

func readOne(t *testing.T, req string, method string, truncated bool) (*http.Response, []byte, *fakeRun) {
	t.Helper()
	res, err := serveHTTPFake(testServer(), []byte(req), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.out)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v\n%s", req, err, res.out)
	}
	body, err := io.ReadAll(resp.Body)
	if truncated != (err == io.ErrUnexpectedEOF) {
		t.Fatalf("%q: body: %v (truncated %v)", req, err, truncated)
	}
	return resp, body, res
}

func TestResponseWriterFraming(t *testing.T) {
	for _, tc := range []struct {
		name, req, method string
		status            int
		length            int64 // -1: chunked or close-delimited
		chunked, close    bool
		truncated         bool
		body              string
		header            map[string]string
	}{
		{name: "small body gets a length", req: "GET /close HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, length: 4, close: true, body: "bye\n",
			header: map[string]string{"Content-Type": "text/plain; charset=utf-8", "Date": "Thu, 02 Jan 2025 03:04:05 GMT"}},
		{name: "streamed body is chunked", req: "GET /stream HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, length: -1, chunked: true},
		{name: "big body is chunked", req: "GET /big HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, length: -1, chunked: true, body: strings.Repeat("y", 10000)},
		{name: "HTTP/1.0 stream is close-delimited", req: "GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, length: -1, close: true,
			body: strings.Repeat("y", 10000)},
		{name: "HTTP/1.0 keep-alive", req: "GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", status: 200, length: 5, body: "pong\n",
			header: map[string]string{"Connection": "keep-alive"}},
		{name: "HTTP/1.0 closes by default", req: "GET /ping HTTP/1.0\r\n\r\n", status: 200, length: 5, close: true, body: "pong\n"},
		{name: "HEAD keeps the length", req: "HEAD /bytes?n=12345 HTTP/1.1\r\nHost: a\r\n\r\n", method: "HEAD", status: 200, length: 12345},
		{name: "204 has no length", req: "GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\n", status: 204, length: -1},
		{name: "short body closes", req: "GET /short HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, length: 10, close: true, truncated: true},
		{name: "bad request", req: "BOGUS\r\n\r\n", status: 400, length: -2, close: true},
		{name: "HTTP/2 refused", req: "GET / HTTP/2.0\r\n\r\n", status: 505, length: -2, close: true},
		// Served as 1.1, which is what a migrated request's state can say.
		{name: "HTTP/1.2 served as 1.1", req: "GET /ping HTTP/1.2\r\nHost: a\r\n\r\n", status: 200, length: 5, body: "pong\n"},
		// Beyond what a migrated body's state can say.
		{name: "Content-Length over 2^62 refused", req: "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000000000000000\r\n\r\n", status: 413, length: -2, close: true},
		{name: "unknown expectation", req: "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx", status: 417, length: -2, close: true},
		// RFC 9112: what net/http's Server checks and ReadRequest does not.
		{name: "no Host", req: "GET /ping HTTP/1.1\r\n\r\n", status: 400, length: -2, close: true},
		{name: "invalid Host", req: "GET /ping HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400, length: -2, close: true},
		{name: "HTTP/1.0 with Transfer-Encoding", req: "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", status: 400, length: -2, close: true},
		{name: "Transfer-Encoding and Content-Length close", req: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", status: 200, length: -2, close: true},
		{name: "signed chunk size", req: "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n-0\r\n\r\n", status: 400, length: -2, close: true},
		{name: "HTTP/1.0 100-continue ignored", req: "POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", status: 200, length: -2, close: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			resp, body, res := readOne(t, tc.req, method, tc.truncated)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.length != -2 && resp.ContentLength != tc.length && !(tc.status == 204 && resp.ContentLength == 0) {
				t.Errorf("ContentLength %d, want %d", resp.ContentLength, tc.length)
			}
			if got := len(resp.TransferEncoding) > 0; got != tc.chunked {
				t.Errorf("chunked %v, want %v", got, tc.chunked)
			}
			if res.early != tc.close || resp.Close != (tc.close && !tc.truncated) {
				t.Errorf("connection closed %v, response says close %v; want %v", res.early, resp.Close, tc.close)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("body %q, want %q", clip(body), clip([]byte(tc.body)))
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHandlerPanicClosesConnection(t *testing.T) {
	res, err := serveHTTPFake(testServer(), []byte("GET /panic HTTP/1.1\r\nHost: a\r\n\r\nGET /ping HTTP/1.1\r\nHost: a\r\n\r\n"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.early || len(res.out) != 0 {
		t.Errorf("after a panic: closed %v, output %q; want closed, nothing", res.early, res.out)
	}
}

func TestHeaderLimit(t *testing.T) {
	srv := testServer()
	srv.MaxHeaderBytes = 100
	res, err := serveHTTPFake(srv, []byte("GET /ping HTTP/1.1\r\nHost: a\r\nX-Long: "+strings.Repeat("a", 300)+"\r\n\r\n"), 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(res.out, []byte("HTTP/1.1 431 ")) || !res.early {
		t.Errorf("output %q closed %v, want 431 and closed", clip(res.out), res.early)
	}
}

// A body that is more than the server will read away closes the
// connection instead; a small one is skipped and the next request served.
func TestUnreadBodyDiscard(t *testing.T) {
	in := "POST /ping HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"
	// /ping refuses POST before reading the body.
	res, err := serveHTTPFake(testServer(), []byte(in), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(res.out, []byte("HTTP/1.1 ")); n != 2 {
		t.Errorf("%d responses, want 2 (405, then pong): %q", n, res.out)
	}
	big := "POST /nothing HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(maxDiscard+10) + "\r\n\r\n" + strings.Repeat("z", maxDiscard+10) + "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"
	res, err = serveHTTPFake(testServer(), []byte(big), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(res.out, []byte("HTTP/1.1 ")); n != 1 || !res.early {
		t.Errorf("%d responses, closed %v; want the 404, then close", n, res.early)
	}
}

func TestBadChunkedUpload(t *testing.T) {
	for _, body := range []string{"zz\r\n", "5\r\nabcdefg\r\n0\r\n\r\n", "5\r\nab"} {
		in := "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		resp, msg, res := readOne(t, in, "POST", false)
		if resp.StatusCode != 400 || !res.closed || !resp.Close {
			t.Errorf("%q: status %d closed %v, want 400 and closed (%q)", body, resp.StatusCode, res.closed, msg)
		}
	}
}

// Small requests read a few bytes at a time put every kind of partial
// request in the buffer at some quiescent point.
func TestHTTPMigrateMidHeader(t *testing.T) {
	small := payloadBytes(40)
	xs := []exchange{
		{req: "GET /ping HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n", status: 200, body: bodyIs("pong\n")},
		{req: "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(small), status: 200, body: bodyIs(hexSHA(small) + "\n")},
		{req: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 40\r\n\r\n" + string(small), status: 200, body: bodyIs(string(small))},
		{req: "GET /bytes?n=33 HTTP/1.1\r\nHost: a\r\n\r\n", status: 200, body: bodyIs(string(payloadBytes(33)))},
		{req: "POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 40\r\n\r\n" + string(small), status: 200, body: bodyIs(hexSHA(small) + "\n")},
	}
	input := joinRequests(xs)
	for _, chunk := range []int{1, 5} {
		ref, err := serveHTTPFake(testServer(), input, chunk, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResponses(t, xs, ref.out)
		for k := 0; k < ref.points; k++ {
			res, err := serveHTTPFake(testServer(), input, chunk, func(inc, q int) bool { return inc == 0 && q == k })
			if err != nil {
				t.Fatalf("chunk %d, move at point %d: %v", chunk, k, err)
			}
			if !bytes.Equal(res.out, ref.out) {
				t.Fatalf("chunk %d, move at point %d of %d: output differs from the run without migration", chunk, k, ref.points)
			}
		}
		// And a move at every other point, all the way.
		res, err := serveHTTPFake(testServer(), input, chunk, func(_, q int) bool { return q == 1 })
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.out, ref.out) {
			t.Fatalf("chunk %d, %d moves: output differs from the run without migration", chunk, res.moves)
		}
		t.Logf("chunk %d: %d quiescent points; a run moving at every other one moved %d times", chunk, ref.points, res.moves)
	}
}

// A connection that moves away, or closes, leaves its buffers to the next
// one: an idle keep-alive connection hopping between servers costs its
// servers a few small objects per move, not a fresh 64 KiB read buffer.
func TestHTTPMovesReuseTheBuffers(t *testing.T) {
	var input []byte
	for range 200 {
		input = append(input, "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"...)
	}
	srv := testServer()
	// allocated serves input, moving at every quiescent point but the
	// first of each incarnation, or never.
	allocated := func(move bool) (uint64, int) {
		var m func(_, q int) bool
		if move {
			m = func(_, q int) bool { return q > 0 }
		}
		serveHTTPFake(srv, input, 0, m) // warm the pool
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res, err := serveHTTPFake(srv, input, 0, m)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		return after.TotalAlloc - before.TotalAlloc, res.moves
	}
	still, _ := allocated(false)
	moving, moves := allocated(true)
	if moves < 90 {
		t.Fatalf("the connection moved %d times, want about one per two quiescent points", moves)
	}
	perMove := int64(moving-still) / int64(moves)
	if perMove >= readBufferSize/2 { // the race detector makes sync.Pool drop a quarter of what it is given
		t.Errorf("%d bytes allocated per move (%d moves), want well under the %d-byte read buffer", perMove, moves, readBufferSize)
	}
	t.Logf("%d bytes allocated per move, %d moves", perMove, moves)
}

// TestBuffersThatCannotTravelAreRefused: a header or echo buffer whose
// contents could not fit a connection's state is refused at Serve, naming
// the field, rather than reset the connection at its first move.
func TestBuffersThatCannotTravelAreRefused(t *testing.T) {
	if err := (&HTTPServer{MaxHeaderBytes: 9 << 20}).Serve(nil); err == nil || !strings.Contains(err.Error(), "MaxHeaderBytes") {
		t.Errorf("Serve with MaxHeaderBytes 9 MiB = %v, want it refused by name", err)
	}
	if err := (&Echo{BufferSize: 9 << 20}).Serve(nil); err == nil || !strings.Contains(err.Error(), "BufferSize") {
		t.Errorf("Serve with BufferSize 9 MiB = %v, want it refused by name", err)
	}
}
