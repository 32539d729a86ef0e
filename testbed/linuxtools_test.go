package testbed

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// capygen's stack against the Linux tools issue 11 names: ApacheBench
// (many short connections) and nmap's FIN, NULL and Xmas scans.

var (
	abCompleteRE = regexp.MustCompile(`(?m)^Complete requests:\s+(\d+)`)
	abFailedRE   = regexp.MustCompile(`(?m)^Failed requests:\s+(\d+)`)
	abNon2xxRE   = regexp.MustCompile(`(?m)^Non-2xx responses:\s+(\d+)`)
	abTookRE     = regexp.MustCompile(`(?m)^Time taken for tests:\s+([0-9.]+) seconds`)
	abRPSRE      = regexp.MustCompile(`(?m)^Requests per second:\s+([0-9.]+)`)
)

// abResult is what ab reported.
type abResult struct {
	complete, failed, non2xx int
	took                     time.Duration
	rps                      float64
	out                      string
}

// runAB runs ab from the client namespace with args before the URL (ab
// keeps going after a receive error, -r, and gives up on a request after
// 10 s, -s) and parses its summary. The whole run is bounded by timeout.
func runAB(tb testing.TB, bed *Testbed, timeout time.Duration, url string, args ...string) abResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{"ab", "-q", "-r", "-s", "10"}, args...)
	out, err := bed.ExecContext(ctx, "client", append(argv, url)...)
	if err != nil {
		tb.Fatalf("ab: %v", err)
	}
	r := abResult{out: string(out)}
	atoi := func(re *regexp.Regexp) int {
		m := re.FindSubmatch(out)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	if !abCompleteRE.Match(out) || !abTookRE.Match(out) {
		tb.Fatalf("ab printed no summary:\n%s", out)
	}
	r.complete, r.failed, r.non2xx = atoi(abCompleteRE), atoi(abFailedRE), atoi(abNon2xxRE)
	if m := abTookRE.FindSubmatch(out); m != nil {
		s, _ := strconv.ParseFloat(string(m[1]), 64)
		r.took = time.Duration(s * float64(time.Second))
	}
	if m := abRPSRE.FindSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	return r
}

// abRequests is the count of short connections for ab.
const abRequests = 20000

// TestNoClientResetsUnderAb: ab makes 20,000 requests for /ping, 8 at a
// time, each on its own connection (no keep-alive: HTTP/1.0, the server
// closes), to capygen's stack. Every request must succeed, and the Linux
// client must never have had a reason to send a RST (a segment it could
// not place: a stale ACK for a reused port pair, data after its close...),
// as a tcpdump in the client namespace sees.
func TestNoClientResetsUnderAb(t *testing.T) {
	needNetns(t, "ab", "tcpdump")
	bed := up(t, Default())
	addr, _, _ := serverAddr(t, bed)
	caddr := clientAddr(t, bed)
	rsts := watchRST(t, bed, "client", "veth0", caddr)
	s := startServe(t, bed)

	// The control: a connection the client aborts (SO_LINGER 0) sends
	// one RST, which the capture must see.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctl, err := bed.DialContext("client")(ctx, "tcp4", addr+":80")
	if err != nil {
		t.Fatal(err)
	}
	ctlPort := ctl.LocalAddr().(*net.TCPAddr).Port
	ctl.(*net.TCPConn).SetLinger(0)
	ctl.Close()

	start := time.Now()
	r := runAB(t, bed, 3*time.Minute, "http://"+addr+"/ping", "-n", strconv.Itoa(abRequests), "-c", "8")
	t.Logf("ab: %d complete, %d failed, %d non-2xx in %v (%.0f requests/s); the test's wall time for ab %v",
		r.complete, r.failed, r.non2xx, r.took.Round(time.Millisecond), r.rps, time.Since(start).Round(time.Millisecond))
	if r.complete != abRequests || r.failed != 0 || r.non2xx != 0 {
		t.Errorf("ab: %d of %d requests complete, %d failed, %d non-2xx; want all complete and none failed:\n%s", r.complete, abRequests, r.failed, r.non2xx, r.out)
	}
	c := s.stop(t)
	t.Logf("the stack: %d TCP segments in, %d out, %d retransmits, %d RSTs in, %d RSTs out, %d segments without a connection",
		c.TCPIn, c.TCPOut, c.TCPRetransmits, c.RSTIn, c.RSTOut, c.TCPNoConn)
	var got []string
	control := false
	for _, l := range rsts() {
		if strings.Contains(l, fmt.Sprintf("%s.%d >", caddr, ctlPort)) {
			control = true
			continue
		}
		got = append(got, l)
	}
	if !control {
		t.Error("tcpdump did not see the control connection's RST: the capture cannot be trusted")
	}
	t.Logf("tcpdump saw %d RSTs sent by the client under ab (besides the control's)", len(got))
	if len(got) > 0 {
		show := got
		if len(show) > 20 {
			show = show[:20]
		}
		t.Errorf("the Linux client sent %d RSTs to the stack under ab, want none; the first:\n%s", len(got), strings.Join(show, "\n"))
	}
}

var nmapPortRE = regexp.MustCompile(`(?m)^(\d+)/tcp\s+(\S+)`)

// TestNmapProbesGetNoAnswer runs nmap's FIN, NULL and Xmas scans from
// the client namespace against capygen's stack: the listening port 80
// must stay silent (RFC 9293 §3.10.7.2: a segment without SYN, ACK or RST
// to a LISTEN socket is dropped), which nmap reports as open|filtered;
// the closed port 81 answers with a RST, which nmap reports as closed.
func TestNmapProbesGetNoAnswer(t *testing.T) {
	needNetns(t, "nmap", "tcpdump")
	bed := up(t, Default())
	addr, _, _ := serverAddr(t, bed)
	rsts := watchRST(t, bed, "client", "veth0", addr)
	s := startServe(t, bed)
	want := map[string]string{"80": "open|filtered", "81": "closed"}
	for _, scan := range []string{"-sF", "-sN", "-sX"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		out, err := bed.ExecContext(ctx, "client", "nmap", scan, "-Pn", "-n", "-T4", "-p", "80,81", addr)
		cancel()
		if err != nil {
			t.Errorf("nmap %s: %v", scan, err)
			continue
		}
		got := map[string]string{}
		for _, m := range nmapPortRE.FindAllStringSubmatch(string(out), -1) {
			got[m[1]] = m[2]
		}
		t.Logf("nmap %s in %v: port 80 %s, port 81 %s", scan, time.Since(start).Round(time.Millisecond), got["80"], got["81"])
		for port, w := range want {
			if got[port] != w {
				t.Errorf("nmap %s: port %s is %q, want %q:\n%s", scan, port, got[port], w, out)
			}
		}
	}
	c := s.stop(t)
	var from80, from81, other []string
	for _, l := range rsts() {
		switch {
		case strings.Contains(l, addr+".80 >"):
			from80 = append(from80, l)
		case strings.Contains(l, addr+".81 >"):
			from81 = append(from81, l)
		default:
			other = append(other, l)
		}
	}
	t.Logf("tcpdump saw %d RSTs from port 80, %d from port 81 and %d others; the stack counted %d RSTs out", len(from80), len(from81), len(other), c.RSTOut)
	if len(from80) > 0 || len(other) > 0 {
		t.Errorf("the stack answered probes with RSTs other than port 81's:\n%s", strings.Join(append(from80, other...), "\n"))
	}
	if len(from81) == 0 {
		t.Error("tcpdump saw no RST from the closed port 81: the capture cannot be trusted")
	}
	if c.RSTOut != uint64(len(from81)) {
		t.Errorf("the stack counted %d RSTs out, tcpdump saw %d from port 81 and %d from port 80", c.RSTOut, len(from81), len(from80))
	}
}
