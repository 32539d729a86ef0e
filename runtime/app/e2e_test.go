package app_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/app"
	"github.com/capygen/capygen/testbed"
)

// minMoves is what each end-to-end test must reach.
const minMoves = 5

// dwell is how long a connection stays at a server before the mover asks
// it to leave (0: it is asked every period; see rack.mover).
var dwell time.Duration

// pipeUpload is the size of each upload of the pipelined batches; see
// pipelinedBatch.
var pipeUpload int

func init() {
	flag.DurationVar(&dwell, "app.dwell", 0, "how long a connection stays on a server before the end-to-end tests' mover asks it to move")
	flag.IntVar(&pipeUpload, "app.pipeupload", 200_000, "bytes of each upload in a pipelined batch (20000 keeps the request stream within the server's window)")
}

// plainHandler serves the paths no route takes.
func plainHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", r.URL.Query().Get("i"))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	return mux
}

func hexSHA(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func payload(n int) []byte {
	b := make([]byte, n)
	app.NewPayload(int64(n)).Read(b)
	return b
}

// requestMoves sums the mid-request moves the servers logged for path.
func (r *rack) requestMoves(path string) (requests, moves int) {
	for _, l := range r.requestLogs() {
		if l.Path == path {
			requests++
			moves += l.Moves
		}
	}
	return requests, moves
}

// wantMoves is how many migrations the adaptive tests go on to, within
// budget.
const (
	wantMoves = 2 * minMoves
	budget    = 6 * time.Second
)

// scaled divides a transfer size under the race detector.
func scaled(n int) int {
	if raceEnabled {
		return n / 8
	}
	return n
}

func TestE2EDownload(t *testing.T) {
	r := newRack(t, 3, nil)
	c := r.httpClient()
	n := int64(scaled(16 << 20))
	stop := r.mover(3*time.Millisecond, dwell)
	defer stop()
	start := time.Now()
	downloads := 0
	for ; downloads < 8 && time.Since(start) < budget; downloads++ {
		if _, moves := r.requestMoves("/bytes"); moves >= wantMoves && downloads > 0 {
			break
		}
		resp, err := c.Get(r.url(fmt.Sprintf("/bytes?n=%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		got, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("download %d: after %d of %d bytes: %v", downloads, got, n, err)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); got != n || sum != testbed.PayloadSHA256(n) {
			t.Fatalf("download %d: got %d bytes, sha256 %s; want %d, %s", downloads, got, sum, n, testbed.PayloadSHA256(n))
		}
		waitLogs(r, downloads+1)
	}
	logs := r.requestLogs()
	per := make([]int, 0, len(logs))
	for _, l := range logs {
		if hex.EncodeToString(l.SHA256) != testbed.PayloadSHA256(n) {
			t.Errorf("server log %+v: the running sha256 is not the body's", l)
		}
		per = append(per, l.Moves)
	}
	_, moves := r.requestMoves("/bytes")
	t.Logf("%d downloads of %d KiB in %v: %d migrations, %d of them mid-body %v", downloads, n>>10, time.Since(start), r.moved(), moves, per)
	if moves < minMoves {
		t.Errorf("the downloads moved %d times mid-body, want at least %d", moves, minMoves)
	}
}

// waitLogs waits (briefly) for n request logs: a server logs after the
// response is flushed, which may be after the client has read it.
func waitLogs(r *rack, n int) {
	for deadline := time.Now().Add(2 * time.Second); len(r.requestLogs()) < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

func TestE2EUpload(t *testing.T) {
	r := newRack(t, 3, nil)
	c := r.httpClient()
	n := int64(scaled(8 << 20))
	want := testbed.PayloadSHA256(n) + "\n"
	stop := r.mover(3*time.Millisecond, dwell)
	defer stop()
	start := time.Now()
	uploads := 0
	for ; uploads < 12 && time.Since(start) < budget; uploads++ {
		if _, moves := r.requestMoves("/upload"); moves >= wantMoves && uploads >= 2 {
			break
		}
		chunked := uploads%2 == 1
		req, err := http.NewRequest(http.MethodPost, r.url("/upload"), struct{ io.Reader }{app.NewPayload(n)})
		if err != nil {
			t.Fatal(err)
		}
		if !chunked {
			req.ContentLength = n
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("upload %d (chunked %v): %v", uploads, chunked, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != want || resp.Header.Get("X-Bytes") != fmt.Sprint(n) {
			t.Fatalf("upload %d (chunked %v): status %d, X-Bytes %q, body %q, %v; want 200, %d, %q",
				uploads, chunked, resp.StatusCode, resp.Header.Get("X-Bytes"), body, err, n, want)
		}
		waitLogs(r, uploads+1)
	}
	var per []int
	for _, l := range r.requestLogs() {
		per = append(per, l.Moves)
	}
	reqs, moves := r.requestMoves("/upload")
	t.Logf("%d uploads of %d KiB (Content-Length and chunked, alternating) in %v: %d migrations, %d of them mid-body %v",
		reqs, n>>10, time.Since(start), r.moved(), moves, per)
	if moves < minMoves {
		t.Errorf("the uploads moved %d times mid-body, want at least %d", moves, minMoves)
	}
}

// Many requests on one keep-alive connection, the connection moving
// between them and inside them, plain handler requests included.
func TestE2EKeepAlive(t *testing.T) {
	r := newRack(t, 3, plainHandler())
	c := r.httpClient()
	stop := r.mover(2*time.Millisecond, dwell)
	defer stop()
	deadline := time.Now().Add(3 * time.Second)
	i := 0
	for ; i < 2000 && (i < scaled(200) || r.moved() < 2*minMoves) && time.Now().Before(deadline); i++ {
		var path, want string
		switch i % 3 {
		case 0:
			path, want = "/ping", "pong\n"
		case 1:
			path, want = fmt.Sprintf("/hello?i=%d", i), fmt.Sprintf("hello %d\n", i)
		default:
			path, want = "/bytes?n=100000", string(payload(100000))
		}
		resp, err := c.Get(r.url(path))
		if err != nil {
			t.Fatalf("request %d %s: %v", i, path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("request %d %s: status %d, %d bytes, %v", i, path, resp.StatusCode, len(body), err)
		}
	}
	conns := uint64(0)
	for _, s := range r.servers {
		conns += s.http.Stats().Conns - s.http.Stats().Restored
	}
	t.Logf("%d requests on %d connection(s), %d migrations", i, conns, r.moved())
	if conns != 1 {
		t.Errorf("%d connections opened, want 1 (keep-alive across migrations)", conns)
	}
	if r.moved() < 2*minMoves {
		t.Errorf("%d migrations, want at least %d", r.moved(), 2*minMoves)
	}
}

// Pipelined requests, all written at once: those the server read ahead
// travel in its state.
func TestE2EPipelined(t *testing.T) {
	r := newRack(t, 3, plainHandler())
	stop := r.mover(2*time.Millisecond, dwell)
	defer stop()
	start := time.Now()
	batches := 0
	for ; batches < 6 && time.Since(start) < budget && (batches == 0 || r.moved() < wantMoves); batches++ {
		pipelinedBatch(t, r)
	}
	var carried uint64
	for _, s := range r.servers {
		carried += s.http.Stats().Carried
	}
	t.Logf("%d batches of 61 pipelined requests in %v, %d migrations, %d unparsed request bytes carried in states",
		batches, time.Since(start), r.moved(), carried)
	if carried == 0 {
		t.Errorf("no migration carried read-ahead request bytes")
	}
	if r.moved() < minMoves {
		t.Errorf("%d migrations, want at least %d", r.moved(), minMoves)
	}
}

func pipelinedBatch(t *testing.T, r *rack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := r.client.Dial(ctx, netip.AddrPortFrom(r.servers[0].addr, httpPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type want struct {
		method, body string
	}
	// The request stream (about 2.4 MB) overflows the server's receive
	// buffer, so the client keeps writing into a shut window while the
	// server answers (the zero-window exchange TestZeroWindowLivelock pins
	// down in the simulator).
	var reqs bytes.Buffer
	var wants []want
	up := payload(max(pipeUpload, 2000))
	for i := range 60 {
		switch i % 5 {
		case 0:
			fmt.Fprintf(&reqs, "GET /bytes?n=%d HTTP/1.1\r\nHost: a\r\n\r\n", scaled(1_000_000)+i)
			wants = append(wants, want{"GET", string(payload(scaled(1_000_000) + i))})
		case 1:
			fmt.Fprintf(&reqs, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(up)-i, up[:len(up)-i])
			wants = append(wants, want{"POST", hexSHA(up[:len(up)-i]) + "\n"})
		case 2:
			fmt.Fprintf(&reqs, "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n")
			wants = append(wants, want{"GET", "pong\n"})
		case 3:
			fmt.Fprintf(&reqs, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n%s", up[i:i+1000])
			wants = append(wants, want{"POST", string(up[i : i+1000])})
		case 4:
			fmt.Fprintf(&reqs, "HEAD /hello?i=%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
			wants = append(wants, want{"HEAD", ""})
		}
	}
	reqs.WriteString("GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	wants = append(wants, want{"GET", "pong\n"})
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(reqs.Bytes())
		werr <- err
	}()
	br := bufio.NewReader(conn)
	for i, w := range wants {
		resp, err := http.ReadResponse(br, &http.Request{Method: w.method})
		if err != nil {
			t.Fatalf("response %d: %v (%d migrations)", i, err, r.moved())
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != w.body {
			t.Fatalf("response %d: status %d, %d bytes, %v; want 200, %d bytes", i, resp.StatusCode, len(body), err, len(w.body))
		}
		if i == len(wants)-1 && !resp.Close {
			t.Errorf("the last response does not say close")
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the last response: %q, %v; want EOF", rest, err)
	}
}

// Echo: bytes flow both ways at once while the connection moves, then the
// client half-closes and gets every byte back before the server's FIN.
func TestE2EEcho(t *testing.T) {
	r := newRack(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := r.client.Dial(ctx, netip.AddrPortFrom(r.servers[0].addr, echoPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	stop := r.mover(3*time.Millisecond, dwell)
	defer stop()
	// The client writes the payload stream until the connection moved
	// enough (at least 8 MiB, at most 128 MiB), then half-closes; it reads
	// the echo meanwhile but keeps no count of what is in flight, so both
	// directions' windows can fill.
	const chunk = 32 << 10
	start := time.Now()
	sent := make(chan int64, 1)
	werr := make(chan error, 1)
	var got int64
	go func() {
		src := app.NewPayload(128 << 20)
		buf := make([]byte, chunk)
		var off int64
		for off < int64(scaled(8<<20)) || r.moved() < wantMoves && off < src.Size() && time.Since(start) < budget {
			n, _ := src.Read(buf)
			if _, err := conn.Write(buf[:n]); err != nil {
				sent <- off
				werr <- err
				return
			}
			off += int64(n)
		}
		sent <- off
		werr <- conn.CloseWrite()
	}()
	want := app.NewPayload(128 << 20)
	wbuf, rbuf := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		n, err := conn.Read(rbuf)
		if n > 0 {
			off := got
			want.ReadAt(wbuf[:n], off)
			if !bytes.Equal(rbuf[:n], wbuf[:n]) {
				t.Fatalf("echoed bytes %d..%d differ from those sent (%d migrations)", off, off+int64(n), r.moved())
			}
			got += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes back: %v (%d migrations)", got, err, r.moved())
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	total := <-sent
	if got != total {
		t.Fatalf("got %d bytes back before the FIN, sent %d", got, total)
	}
	var restored uint64
	for _, s := range r.servers {
		restored += s.echo.Stats().Restored
	}
	t.Logf("%d KiB echoed in %v: %d migrations, %d restores", total>>10, time.Since(start), r.moved(), restored)
	if r.moved() < minMoves {
		t.Errorf("%d migrations, want at least %d", r.moved(), minMoves)
	}
}
