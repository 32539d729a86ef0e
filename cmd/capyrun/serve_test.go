package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed"
)

func TestServeHandler(t *testing.T) {
	srv := httptest.NewServer(handler(1000, newWorkers(1)))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/ping"); code != 200 || body != "pong\n" {
		t.Errorf("GET /ping = %d %q, want 200 pong", code, body)
	}
	for _, tc := range []struct {
		path string
		n    int64
	}{{"/bytes", 1000}, {"/bytes?n=0", 0}, {"/bytes?n=123457", 123457}} {
		code, body := get(tc.path)
		sum := sha256.Sum256([]byte(body))
		if code != 200 || int64(len(body)) != tc.n || hex.EncodeToString(sum[:]) != testbed.PayloadSHA256(tc.n) {
			t.Errorf("GET %s = %d, %d bytes, want 200 and Payload(%d)", tc.path, code, len(body), tc.n)
		}
	}
	for _, bad := range []string{"/bytes?n=-1", "/bytes?n=x", "/bytes?n=99999999999999"} {
		if code, _ := get(bad); code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", bad, code)
		}
	}
	body := strings.Repeat("capygen", 10000)
	resp, err := http.Post(srv.URL+"/upload", "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256([]byte(body))
	if strings.TrimSpace(string(got)) != hex.EncodeToString(sum[:]) || resp.Header.Get("X-Bytes") != "70000" {
		t.Errorf("POST /upload = %q (X-Bytes %s), want %x and 70000", got, resp.Header.Get("X-Bytes"), sum)
	}
	if code, _ := get("/upload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /upload = %d, want 405", code)
	}
}

func TestListenPort(t *testing.T) {
	ours := netip.MustParseAddr("10.77.0.2")
	for _, tc := range []struct {
		in   string
		want uint16
		ok   bool
	}{
		{":80", 80, true}, {"10.77.0.2:8080", 8080, true}, {"0.0.0.0:81", 81, true},
		{"10.77.0.3:80", 0, false}, {":0", 0, false}, {":99999", 0, false}, {"80", 0, false},
	} {
		got, err := listenPort(tc.in, ours)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("listenPort(%q) = %d, %v, want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-size", "-1"},
		{"-addr", "nonsense"},
		{"-addr", "fd00::1/64"},
		{"-kernel", "-get", "http://10.77.0.1/"},
		{"extra"},
	} {
		if err := runServe(args); err == nil {
			t.Errorf("serve %q succeeded, want an error", args)
		}
	}
	// The policy flags fail before anything starts, naming what to change.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-policy", "threshold"}, "needs the migration engine, -switch"},
		{[]string{"-switch", "10.77.0.254", "-policy", "greedy"}, `unknown policy "greedy"`},
		{[]string{"-switch", "10.77.0.254", "-policy", "request-rate", "-servers", "3"}, "use -load-metric rate"},
		{[]string{"-switch", "10.77.0.254", "-policy", "threshold", "-margin", "0"}, "threshold -margin 0"},
		{[]string{"-congestion", "bbr"}, "our stack has cubic and reno"},
		{[]string{"-kernel", "-switch", "10.77.0.254", "-congestion", "cubic"}, "only without -switch"},
		{[]string{"-loop-priority", "-1"}, "want a SCHED_FIFO priority, 1 to 99"},
		{[]string{"-loop-priority", "100"}, "want a SCHED_FIFO priority, 1 to 99"},
		{[]string{"-kernel", "-loop-priority", "1"}, "no event loop of ours without -switch"},
		{[]string{"-procs", "-1"}, "-procs -1: want 1 to 1024 threads"},
		{[]string{"-procs", "100000"}, "-procs 100000: want 1 to 1024 threads"},
		{[]string{"-records", "r.jsonl"}, "-records: only with the migration engine; add -switch"},
		{[]string{"-kernel", "-max-restore", "-5"}, "-max-restore: only with the migration engine"},
		{[]string{"-echo", "7", "-heartbeat", "1ms"}, "-echo, -heartbeat: only with the migration engine"},
		{[]string{"-switch", "10.77.0.254", "-heartbeat", "1ns"}, "-heartbeat 1ns: want 1ms to 10s"},
		{[]string{"-switch", "10.77.0.254", "-echo", "70000"}, "-echo 70000: want a TCP port"},
		{[]string{"-switch", "10.77.0.254", "-max-restore", "-5"}, "-max-restore -5: want a byte count"},
		{[]string{"-switch", "10.77.0.254", "-max-restore", "65536"}, "-max-restore 65536: below the 262144-byte buffers"},
		{[]string{"-switch", "10.77.0.254", "-records", "x", "-control", "x"}, "-control and -records are both x"},
	} {
		if err := runServe(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %q: error %v, want one saying %q", c.args, err, c.want)
		}
	}
}

// A -control path that holds a file of another kind, or a socket that
// a live server answers on, is not removed to make room.
func TestClaimSocketKeepsWhatIsNotAStaleSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "records.jsonl")
	if err := os.WriteFile(file, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := claimSocket(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("claimSocket on a regular file = %v, want a refusal", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "precious\n" {
		t.Errorf("the file is now %q, %v", b, err)
	}
	live := filepath.Join(dir, "live.sock")
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := claimSocket(live); err == nil || !strings.Contains(err.Error(), "another server answers") {
		t.Errorf("claimSocket on a live socket = %v, want a refusal", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	if err := claimSocket(stale); err != nil {
		t.Errorf("claimSocket on a stale socket = %v, want it removed", err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale socket is still there: %v", err)
	}
	if err := claimSocket(filepath.Join(dir, "none")); err != nil {
		t.Errorf("claimSocket on no file = %v", err)
	}
}

// TestServeProcs: -procs N is the GOMAXPROCS serve sets; 0 leaves Go's.
func TestServeProcs(t *testing.T) {
	for _, want := range []int{0, 1, 3} {
		f, err := parseServeFlags([]string{"-procs", strconv.Itoa(want)})
		if err != nil || f.procs != want {
			t.Errorf("serve -procs %d: procs %d, %v", want, f.procs, err)
		}
	}
}

// TestWorkHandler: /work sleeps the asked time, one request at a time per
// worker, and refuses bad input with a message naming it.
func TestWorkHandler(t *testing.T) {
	srv := httptest.NewServer(newWorkers(1))
	defer srv.Close()
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(srv.URL + "/work?us=20000")
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("GET /work?us=20000: %v %v", resp, err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Errorf("4 requests of 20 ms on one worker took %v, want at least 80 ms", d)
	}
	for _, q := range []string{"", "?us=-1", "?us=x", "?us=99999999999", "?us=18446744073709552", "?us=9223372036854775807"} {
		resp, err := http.Get(srv.URL + "/work" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), "want a service time in microseconds") {
			t.Errorf("GET /work%s = %d %q, want 400 naming the parameter", q, resp.StatusCode, body)
		}
	}
}

// TestRealtimeLoop: the loop's thread goes to SCHED_FIFO at the priority
// asked for, or the error says what it needs; 0 leaves it alone.
func TestRealtimeLoop(t *testing.T) {
	if err := realtimeLoop(0); err != nil {
		t.Fatalf("realtimeLoop(0): %v", err)
	}
	done := make(chan error, 1)
	go func() {
		// The goroutine's thread stays locked and is not reused: it ends
		// with the goroutine, and its SCHED_FIFO with it.
		if err := realtimeLoop(3); err != nil {
			done <- err
			return
		}
		attr, err := unix.SchedGetAttr(0, 0)
		switch {
		case err != nil:
			done <- err
		case attr.Policy != unix.SCHED_FIFO || attr.Priority != 3:
			done <- fmt.Errorf("policy %d priority %d, want SCHED_FIFO (%d) at 3", attr.Policy, attr.Priority, unix.SCHED_FIFO)
		default:
			done <- nil
		}
	}()
	err := <-done
	if err != nil && strings.Contains(err.Error(), "CAP_SYS_NICE") && os.Geteuid() != 0 {
		t.Skipf("not root: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// A record reported after shutdown began is counted, not sent on a closed
// channel (a panic); records a full disk refuses are counted and named.
func TestRecordWriterShutdownAndFullDisk(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full to fill: %v", err)
	}
	w, err := newRecordWriter("/dev/full")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.write(migrate.Record{})
	}
	w.close()
	w.write(migrate.Record{}) // after close: dropped, no panic
	if w.lost != 3 || w.err == nil {
		t.Errorf("after 3 records to a full disk: lost %d, err %v; want 3 lost and the error", w.lost, w.err)
	}
	if n := w.dropped.Load(); n != 1 {
		t.Errorf("dropped %d, want the 1 written after close", n)
	}
}
