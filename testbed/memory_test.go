package testbed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Does capyrun serve give its memory back once connections are gone?
// The process's resident set is read from /proc (VmRSS); capyrun serve
// runs with GODEBUG=gctrace=1, so its last GC line (heap live and goal)
// shows whether what stays is live heap or memory the Go runtime has not
// yet returned. An idle Go process collects only when forced, every 2
// minutes; the stack hands memory back itself once a burst of
// connections is over (runtime/stack/memory.go: when at least 1,024 were
// reaped and fewer than half of the peak remain, at most every 10 s). The
// bound is that the server's memory comes back soon after its
// connections are gone, as a kernel's socket memory does, not eventually.

// rssSlack is how far above the warmed-up baseline the resident set may
// stay once the connections of a test are gone.
const rssSlack = 12_000_000

// releaseSettle is how long after its connections are gone the stack's
// second release (10 s after the first, for the rest of the wave) may
// take, with a margin.
const releaseSettle = 13 * time.Second

// procMem is one reading of /proc/PID/status.
type procMem struct {
	rss, hwm int64 // VmRSS, VmHWM in bytes
}

func (m procMem) String() string {
	return fmt.Sprintf("RSS %s (peak %s)", mb(m.rss), mb(m.hwm))
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// readMem reads pid's VmRSS and VmHWM.
func readMem(tb testing.TB, pid int) procMem {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var m procMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			tb.Fatalf("/proc/%d/status: %s:%s", pid, k, v)
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if k == "VmRSS" {
			m.rss = n << 10
		} else {
			m.hwm = n << 10
		}
	}
	if m.rss == 0 {
		tb.Fatalf("/proc/%d/status has no VmRSS", pid)
	}
	return m
}

var gctraceRE = regexp.MustCompile(`(?m)^gc \d+ @.*?(\d+)->(\d+)->(\d+) MB, (\d+) MB goal.*$`)

// lastGC is the server's last gctrace line, shortened to what matters.
func lastGC(s *server) string {
	all := gctraceRE.FindAllStringSubmatch(s.proc.Output(), -1)
	if len(all) == 0 {
		return "no GC yet"
	}
	m := all[len(all)-1]
	return fmt.Sprintf("%d GCs, last: heap %s->%s->%s MB live, goal %s MB", len(all), m[1], m[2], m[3], m[4])
}

// startServeTraced is startServe with GODEBUG=gctrace=1, whose lines
// lastGC reads.
func startServeTraced(tb testing.TB, bed *Testbed, extra ...string) *server {
	tb.Helper()
	return startServeEnv(tb, bed, []string{"GODEBUG=gctrace=1"}, extra...)
}

// waitRSS samples the server's memory every 5 s for at least minWait
// and at most maxWait, logging each sample, until it is within bound
// (after minWait); it returns the last sample.
func waitRSS(t *testing.T, s *server, bound int64, minWait, maxWait time.Duration) procMem {
	t.Helper()
	start := time.Now()
	for {
		time.Sleep(5 * time.Second)
		m := readMem(t, s.proc.PID())
		took := time.Since(start)
		t.Logf("  +%2.0fs: %s; %s", took.Seconds(), m, lastGC(s))
		if (m.rss <= bound && took >= minWait) || took >= maxWait {
			return m
		}
	}
}

// TestMemoryReturnsAfterShortConnectionBurst: after 20,000 short
// connections (ab, no keep-alive: the server closes first, so each
// connection leaves a TIME-WAIT of 60 s in the stack), the server's
// resident set must come back within rssSlack of its warmed-up baseline
// once TIME-WAIT is over (waiting up to 95 s after the burst).
func TestMemoryReturnsAfterShortConnectionBurst(t *testing.T) {
	needNetns(t, "ab")
	bed := up(t, Default())
	addr, _, _ := serverAddr(t, bed)
	s := startServeTraced(t, bed)
	url := "http://" + addr + "/ping"

	// Warm-up on 8 keep-alive connections: the handlers, the goroutines
	// and the heap grow once, without leaving TIME-WAITs behind.
	if r := runAB(t, bed, time.Minute, url, "-k", "-n", "2000", "-c", "8"); r.complete != 2000 || r.failed != 0 {
		t.Fatalf("warm-up: %d complete, %d failed:\n%s", r.complete, r.failed, r.out)
	}
	time.Sleep(2 * time.Second)
	base := readMem(t, s.proc.PID())
	t.Logf("baseline after warm-up: %s; %s", base, lastGC(s))

	r := runAB(t, bed, 3*time.Minute, url, "-n", strconv.Itoa(abRequests), "-c", "8")
	t.Logf("burst: ab %d complete, %d failed in %v", r.complete, r.failed, r.took.Round(time.Millisecond))
	if r.complete != abRequests || r.failed != 0 {
		t.Errorf("burst: %d of %d complete, %d failed", r.complete, abRequests, r.failed)
	}
	peak := readMem(t, s.proc.PID())
	t.Logf("right after the burst: %s (+%s over baseline); %s", peak, mb(peak.rss-base.rss), lastGC(s))

	// TIME-WAIT is 60 s (tcp.Config's default; capyrun serve has no flag
	// for it): wait past it, then for the runtime to give memory back.
	after := waitRSS(t, s, base.rss+rssSlack, 60*time.Second+releaseSettle, 95*time.Second)
	t.Logf("summary: baseline %s, after the burst %s, at the end %s (+%s over baseline, bound +%s)",
		mb(base.rss), mb(peak.rss), mb(after.rss), mb(after.rss-base.rss), mb(rssSlack))
	if after.rss > base.rss+rssSlack {
		t.Errorf("RSS %s after the burst and TIME-WAIT, want at most baseline %s + %s", mb(after.rss), mb(base.rss), mb(rssSlack))
	}
	c := s.stopQuiet(t)
	t.Logf("the stack: %d RSTs out, %d segments without a connection", c.RSTOut, c.TCPNoConn)
}

// finWait2Conns is how many client connections TestFinWait2ClientsReleaseMemory
// leaves the server waiting for.
const finWait2Conns = 4000

// halfClosed opens n connections from the client namespace, each asking
// GET /ping in HTTP/1.0 (the server answers and closes) and reading to
// the server's FIN, which the client's kernel acknowledges; the client
// never closes its side, so the server's side stays in FIN-WAIT-2. It
// returns the connections that got their answer and the failures.
func halfClosed(bed *Testbed, addr string, n, workers int) ([]net.Conn, []error) {
	var mu sync.Mutex
	var conns []net.Conn
	var errs []error
	next := make(chan int)
	var wg sync.WaitGroup
	dial := bed.DialContext("client")
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				c, err := func() (net.Conn, error) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					c, err := dial(ctx, "tcp4", addr+":80")
					if err != nil {
						return nil, err
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.WriteString(c, "GET /ping HTTP/1.0\r\n\r\n"); err != nil {
						c.Close()
						return nil, err
					}
					b, err := io.ReadAll(c)
					if err != nil || !strings.Contains(string(b), " 200 OK") {
						c.Close()
						return nil, fmt.Errorf("GET /ping: %q, %v", b, err)
					}
					c.SetDeadline(time.Time{})
					return c, nil
				}()
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("connection %d: %w", i, err))
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return conns, errs
}

// linkRE finds capyrun serve's link counters in its exit report; frames
// its receive ring dropped are why a probe takes more than one round.
var linkRE = regexp.MustCompile(`(?m)^link: .*$`)

// resetCount reports how many of conns the server has forgotten: a byte
// written to each is answered with a RST by a server that no longer holds
// the connection (and acknowledged by one still in FIN-WAIT-2), which a
// later write reports. A probe the server's receive ring dropped in the
// burst of finWait2Conns is only resent at the client's RTO, and its RST
// comes after that, so the conns not yet reset are probed again for up
// to resetWait: a connection the server still holds never resets, however
// long it is probed.
func resetCount(conns []net.Conn) (gone, rounds int) {
	const resetWait = 5 * time.Second
	held := append([]net.Conn(nil), conns...)
	deadline := time.Now().Add(resetWait)
	for len(held) > 0 && time.Now().Before(deadline) {
		rounds++
		for _, c := range held {
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			c.Write([]byte("x")) //nolint:errcheck // a RST shows on a later write
		}
		time.Sleep(500 * time.Millisecond)
		still := held[:0]
		for _, c := range held {
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("x")); errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
				gone++
			} else {
				still = append(still, c)
			}
		}
		held = still
	}
	return gone, rounds
}

// TestFinWait2ClientsReleaseMemory: finWait2Conns Linux clients read the
// server's FIN (HTTP/1.0) and acknowledge it but never send their own,
// leaving the server's sides in FIN-WAIT-2. With capyrun serve
// -fin-wait2 2s, every one must be gone after the bound (a byte the
// client sends then is answered with a RST), and the server's resident
// set must come back within rssSlack of its warmed-up baseline (waiting
// up to 60 s).
func TestFinWait2ClientsReleaseMemory(t *testing.T) {
	needNetns(t)
	bed := up(t, Default())
	addr, _, _ := serverAddr(t, bed)
	const finWait2 = 2 * time.Second
	s := startServeTraced(t, bed, "-fin-wait2", finWait2.String())

	// Warm-up: the same on 200 connections, closed by the client, then
	// long enough for the server to have forgotten them.
	warm, errs := halfClosed(bed, addr, 200, 16)
	for _, c := range warm {
		c.Close()
	}
	if len(errs) > 0 {
		t.Fatalf("warm-up: %d of 200 connections failed, the first: %v", len(errs), errs[0])
	}
	time.Sleep(finWait2 + 2*time.Second)
	base := readMem(t, s.proc.PID())
	t.Logf("baseline after warm-up: %s; %s", base, lastGC(s))

	start := time.Now()
	conns, errs := halfClosed(bed, addr, finWait2Conns, 16)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	opened := time.Since(start)
	t.Logf("%d connections left in FIN-WAIT-2 in %v, %d failed", len(conns), opened.Round(time.Millisecond), len(errs))
	for i, err := range errs {
		if i == 5 {
			t.Errorf("... and %d more", len(errs)-5)
			break
		}
		t.Error(err)
	}
	peak := readMem(t, s.proc.PID())
	t.Logf("with them held: %s (+%s over baseline); %s", peak, mb(peak.rss-base.rss), lastGC(s))

	// The last connection's bound ends finWait2 after it; a margin for
	// the timers.
	time.Sleep(finWait2 + 3*time.Second)
	expired := readMem(t, s.proc.PID())
	t.Logf("after -fin-wait2: %s; %s", expired, lastGC(s))
	gone, rounds := resetCount(conns)
	t.Logf("%d of %d connections answered with a RST (gone from the server), probed in %d rounds", gone, len(conns), rounds)
	if gone != len(conns) {
		t.Errorf("%d of %d connections still held by the server %v after -fin-wait2 %v", len(conns)-gone, len(conns), finWait2+3*time.Second, finWait2)
	}

	after := waitRSS(t, s, base.rss+rssSlack, releaseSettle, 60*time.Second)
	t.Logf("summary: baseline %s, %d connections in FIN-WAIT-2 %s, after the bound %s, at the end %s (+%s over baseline, bound +%s)",
		mb(base.rss), len(conns), mb(peak.rss), mb(expired.rss), mb(after.rss), mb(after.rss-base.rss), mb(rssSlack))
	if after.rss > base.rss+rssSlack {
		t.Errorf("RSS %s after the FIN-WAIT-2 connections ended, want at most baseline %s + %s", mb(after.rss), mb(base.rss), mb(rssSlack))
	}
	c, out := s.stopReport(t)
	t.Logf("the stack: %d RSTs out (the answers to the probes), %d segments without a connection; %s",
		c.RSTOut, c.TCPNoConn, linkRE.FindString(out))
	if c.RSTOut < uint64(gone) {
		t.Errorf("the stack counted %d RSTs out, fewer than the %d connections the clients saw reset", c.RSTOut, gone)
	}
}
