package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests of capygen's stack (capyrun serve, over AF_XDP in the server
// namespace) against real Linux peers in the client namespace: curl, a Go
// client, a kernel HTTP server and ping.

var (
	tmpDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "capygen-testbed-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpDir = dir
	// Ctrl-C or a CI timeout's SIGTERM would end the test binary without
	// its cleanups, leaving the testbeds' namespaces and processes (in
	// process groups of their own) behind: take them down first.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "testbed: %v: taking every testbed down\n", s)
		if err := DownAll(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.RemoveAll(dir)
		os.Exit(1)
	}()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// capyrun returns the capyrun binary, built once per test run from this
// checkout (CAPYRUN_BIN overrides it with a prebuilt one).
func capyrun(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("CAPYRUN_BIN"); p != "" {
			binPath = p
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		binPath = filepath.Join(tmpDir, "capyrun")
		out, err := exec.Command(goTool, "build", "-o", binPath, "github.com/capygen/capygen/cmd/capyrun").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/capyrun: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// server is one capyrun serve process in the server namespace.
type server struct {
	proc *Proc
	addr string // 10.77.0.2
}

func serverAddr(tb testing.TB, bed *Testbed) (addr, iface, prefix string) {
	tb.Helper()
	for _, h := range bed.Topology.Hosts {
		if h.Role == RoleServer {
			for _, ifc := range bed.Topology.Interfaces(h.Name) {
				return ifc.Prefix.Addr().String(), ifc.Name, ifc.Prefix.String()
			}
		}
	}
	tb.Fatal("topology has no server interface")
	return
}

func clientAddr(tb testing.TB, bed *Testbed) string {
	tb.Helper()
	for _, ifc := range bed.Topology.Interfaces("client") {
		return ifc.Prefix.Addr().String()
	}
	tb.Fatal("topology has no client interface")
	return ""
}

// startServe runs capyrun serve (extra flags appended) in the server
// namespace and waits until it serves.
func startServe(tb testing.TB, bed *Testbed, extra ...string) *server {
	tb.Helper()
	return startServeEnv(tb, bed, nil, extra...)
}

// startServeEnv is startServe with environment settings (env execs
// capyrun in place: the process's PID is capyrun's).
func startServeEnv(tb testing.TB, bed *Testbed, env []string, extra ...string) *server {
	tb.Helper()
	return startServeBin(tb, bed, capyrun(tb), env, extra...)
}

// startServeBin is startServeEnv with another capyrun binary (an A/B
// comparison's second build).
func startServeBin(tb testing.TB, bed *Testbed, bin string, env []string, extra ...string) *server {
	tb.Helper()
	addr, iface, prefix := serverAddr(tb, bed)
	var argv []string
	if len(env) > 0 {
		argv = append([]string{"env"}, env...)
	}
	argv = append(append(argv, bin, "serve", "-addr", prefix, "-iface", iface), extra...)
	p, err := bed.Start("server", argv...)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := p.WaitOutput(readyRE, 10*time.Second); err != nil {
		p.Stop(time.Second)
		tb.Fatal(err)
	}
	s := &server{proc: p, addr: addr}
	tb.Cleanup(func() {
		// A test that failed before stop still shows what the stack saw.
		select {
		case <-p.Done():
		default:
			out := p.Stop(5 * time.Second)
			if tb.Failed() {
				tb.Logf("server exit report:\n%s", out)
			}
		}
	})
	return s
}

// counters is the part of stack.Counters the tests read, from the
// counters-json line capyrun serve prints on exit.
type counters struct {
	TCPIn, TCPOut, TCPRetransmits, RSTIn, RSTOut, TCPNoConn uint64
	ICMPEchoIn, ICMPEchoOut                                 uint64
	TCPTimeouts, TCPRecoveries, TCPTailLossProbes           uint64
	TCPRACKLost, TCPPAWSRejected                            uint64
}

var countersRE = regexp.MustCompile(`(?m)^counters-json (\{.*\})$`)

// stop ends the server, logs its exit report and returns its counters.
func (s *server) stop(tb testing.TB) counters {
	tb.Helper()
	c, out := s.stopReport(tb)
	tb.Logf("server exit report:\n%s", out)
	return c
}

// stopQuiet is stop without logging the exit report (whose gctrace lines
// can run long).
func (s *server) stopQuiet(tb testing.TB) counters {
	tb.Helper()
	c, _ := s.stopReport(tb)
	return c
}

// stopReport ends the server and returns its counters and exit report.
func (s *server) stopReport(tb testing.TB) (counters, string) {
	tb.Helper()
	out := s.proc.Stop(5 * time.Second)
	m := countersRE.FindStringSubmatch(out)
	if m == nil {
		tb.Fatalf("capyrun serve printed no counters on exit:\n%s", out)
	}
	var c counters
	if err := json.Unmarshal([]byte(m[1]), &c); err != nil {
		tb.Fatalf("counters %s: %v", m[1], err)
	}
	return c, out
}

func sha256File(tb testing.TB, path string) string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writePayload(tb testing.TB, n int64) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), fmt.Sprintf("payload-%d", n))
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(f, Payload(n)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

const bulk = 10 << 20

// curlDownload fetches n bytes with curl in the client namespace and
// checks them against PayloadSHA256.
func curlDownload(t *testing.T, bed *Testbed, addr string, n int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "download")
	url := fmt.Sprintf("http://%s/bytes?n=%d", addr, n)
	if _, err := bed.Exec("client", "curl", "-sS", "--fail", "-m", "60", "-o", path, url); err != nil {
		t.Fatal(err)
	}
	if got, want := sha256File(t, path), PayloadSHA256(n); got != want {
		t.Fatalf("curl %s: sha256 %s, want %s", url, got, want)
	}
}

// curlUpload posts the file with curl and checks the sha256 the server
// computed.
func curlUpload(t *testing.T, bed *Testbed, addr, path string) {
	t.Helper()
	out, err := bed.Exec("client", "curl", "-sS", "--fail", "-m", "60", "-H", "Content-Type: application/octet-stream",
		"--data-binary", "@"+path, "http://"+addr+"/upload")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), sha256File(t, path); got != want {
		t.Fatalf("server's sha256 of the upload = %q, want %s", got, want)
	}
}

func needPeers(t *testing.T) {
	t.Helper()
	needNetns(t, "curl", "ping")
}

// TestBypassStackWithKernelPeers runs the whole exchange on one testbed:
// our stack as a client of a kernel server, then as a server of curl, a
// keep-alive Go client and ping, clean and with loss and duplication.
// At no point may the stack send a RST.
func TestBypassStackWithKernelPeers(t *testing.T) {
	needPeers(t)
	bed := up(t, Default())
	addr, iface, prefix := serverAddr(t, bed)
	caddr := clientAddr(t, bed)

	t.Run("dial kernel server", func(t *testing.T) {
		ln, err := bed.Listen("client", "tcp4", caddr+":8080")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			io.Copy(w, Payload(n))
		})}
		go srv.Serve(ln)
		defer srv.Close()
		url := fmt.Sprintf("http://%s:8080/bytes?n=%d", caddr, bulk)
		out, err := bed.Exec("server", capyrun(t), "serve", "-addr", prefix, "-iface", iface, "-get", url)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("bytes %d sha256 %s", bulk, PayloadSHA256(bulk))
		if !strings.Contains(string(out), want) {
			t.Fatalf("capyrun serve -get printed:\n%s\nwant %q", out, want)
		}
		if m := countersRE.FindStringSubmatch(string(out)); m == nil || strings.Contains(m[1], `"RSTOut":0,`) == false {
			t.Errorf("our stack sent RSTs as a client:\n%s", out)
		}
	})

	t.Run("clean link", func(t *testing.T) {
		rsts := watchRST(t, bed, "client", "veth0", addr)
		s := startServe(t, bed)
		t.Run("ping", func(t *testing.T) {
			out, err := bed.Exec("client", "ping", "-c", "5", "-i", "0.05", "-W", "1", addr)
			if err != nil || !strings.Contains(string(out), " 0% packet loss") {
				t.Errorf("ping %s: %v\n%s", addr, err, out)
			}
		})
		t.Run("curl download", func(t *testing.T) { curlDownload(t, bed, addr, bulk) })
		t.Run("curl upload", func(t *testing.T) { curlUpload(t, bed, addr, writePayload(t, bulk+12345)) })
		t.Run("keep-alive", func(t *testing.T) { keepAlive(t, bed, addr, 100, 20) })
		// The one legitimate RST, which also shows both RST checks can
		// see one: a SYN to a port nobody listens on.
		t.Run("closed port refused", func(t *testing.T) {
			out, err := bed.Exec("client", "curl", "-sS", "-m", "5", "http://"+addr+":81/")
			// curl exits 7 when the connection is refused.
			if err == nil || !strings.Contains(err.Error(), "exit status 7") {
				t.Errorf("curl to a closed port: %v\n%s\nwant connection refused (exit 7)", err, out)
			}
		})
		c := s.stop(t)
		if c.RSTOut != 1 {
			t.Errorf("the stack sent %d RSTs on a clean link, want exactly the 1 refusing port 81; it must never reset a live connection", c.RSTOut)
		}
		r := rsts()
		if len(r) != 1 || !strings.Contains(r[0], addr+".81 >") {
			t.Errorf("tcpdump saw %d RSTs from the stack on a clean link, want only the one from port 81:\n%s", len(r), strings.Join(r, "\n"))
		}
		if c.ICMPEchoOut < 5 {
			t.Errorf("ICMPEchoOut = %d, want >= 5", c.ICMPEchoOut)
		}
	})

	t.Run("generic xdp mode", func(t *testing.T) {
		s := startServe(t, bed, "-mode", "generic")
		curlDownload(t, bed, addr, bulk)
		curlUpload(t, bed, addr, writePayload(t, bulk+1))
		if c := s.stop(t); c.RSTOut != 0 {
			t.Errorf("the stack sent %d RSTs in generic mode", c.RSTOut)
		}
		if !strings.Contains(s.proc.Output(), "xdp mode: generic") {
			t.Errorf("capyrun serve -mode generic did not report generic mode:\n%s", s.proc.Output())
		}
	})

	t.Run("1% loss and duplication", func(t *testing.T) {
		needPeers(t)
		if err := CheckTools("nft"); err != nil {
			t.Skip(err)
		}
		im := impair(t, bed, "client", "veth0", 1, 1)
		rsts := watchRST(t, bed, "client", "veth0", addr)
		s := startServe(t, bed)
		curlDownload(t, bed, addr, bulk)
		curlUpload(t, bed, addr, writePayload(t, bulk+777))
		c := s.stop(t)
		n := im.counts(t)
		t.Logf("nftables %s; stack retransmitted %d segments", n, c.TCPRetransmits)
		if n.lost() == 0 || n.duplicated() == 0 {
			t.Errorf("the nftables rules lost %d and duplicated %d packets; the test did not exercise loss", n.lost(), n.duplicated())
		}
		if c.RSTOut != 0 {
			t.Errorf("the stack sent %d RSTs under loss and duplication; it must never reset a live connection", c.RSTOut)
		}
		// The capture is an AF_PACKET tap, which sees arriving frames
		// before the netdev ingress rule drops any: it sees every RST the
		// stack sent, lost or not (but not the copies impair duplicates
		// through lo).
		if r := rsts(); len(r) > 0 {
			t.Errorf("tcpdump saw %d RSTs from the stack under loss:\n%s", len(r), strings.Join(r, "\n"))
		}
	})
}

// keepAlive runs conns concurrent keep-alive connections from the client
// namespace, each making reqs requests, and checks every body and that
// each connection carried all of its requests.
func keepAlive(t *testing.T, bed *Testbed, addr string, conns, reqs int) {
	var mu sync.Mutex
	newConns, reused := 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := make(chan struct{})
	for w := range conns {
		// One transport per worker, limited to one connection: 100
		// workers are 100 connections, each carrying all 20 requests.
		tr := &http.Transport{DialContext: bed.DialContext("client"), MaxConnsPerHost: 1, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for r := range reqs {
				n := int64(100 + (w*reqs+r)%5000)
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
					mu.Lock()
					if i.Reused {
						reused++
					} else {
						newConns++
					}
					mu.Unlock()
				}}
				ctx := httptrace.WithClientTrace(context.Background(), trace)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/bytes?n=%d", addr, n), nil)
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("worker %d request %d: %w", w, r, err)
					return
				}
				h := sha256.New()
				got, err := io.Copy(h, resp.Body)
				resp.Body.Close()
				if err != nil || got != n || hex.EncodeToString(h.Sum(nil)) != PayloadSHA256(n) {
					errs <- fmt.Errorf("worker %d request %d: %d of %d bytes (err %v) or wrong sha256", w, r, got, n, err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if total := newConns + reused; total != conns*reqs {
		t.Errorf("%d requests completed, want %d", total, conns*reqs)
	}
	if newConns != conns {
		t.Errorf("%d connections opened for %d workers, want exactly one each: keep-alive did not hold", newConns, conns)
	}
	t.Logf("%d connections, %d requests reused one", newConns, reused)
}

// capyrun testbed up/down from the CLI leave nothing behind.
func TestCLIUpDown(t *testing.T) {
	needNetns(t)
	bin := capyrun(t)
	tag := "cli" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() { DownTag(tag) })
	out, err := exec.Command(bin, "testbed", "up", "-name", tag).CombinedOutput()
	if err != nil {
		t.Fatalf("capyrun testbed up: %v\n%s", err, out)
	}
	for _, want := range []string{"capy-" + tag + "-client", "capy-" + tag + "-server", "10.77.0.1/24", "10.77.0.2/24", "capyrun testbed down -name " + tag} {
		if !strings.Contains(string(out), want) {
			t.Errorf("capyrun testbed up output lacks %q:\n%s", want, out)
		}
	}
	if nss, _ := Namespaces(tag); len(nss) != 2 {
		t.Fatalf("after up, namespaces = %v, want 2", nss)
	}
	if out, err := exec.Command(bin, "testbed", "up", "-name", tag).CombinedOutput(); err == nil {
		t.Errorf("a second up with the same tag succeeded:\n%s", out)
	}
	if out, err := exec.Command(bin, "testbed", "down", "-name", tag).CombinedOutput(); err != nil {
		t.Fatalf("capyrun testbed down: %v\n%s", err, out)
	}
	assertGone(t, tag)
	if out, err := exec.Command(bin, "testbed", "down").CombinedOutput(); err == nil {
		t.Errorf("down without -name succeeded:\n%s", out)
	}
}

var listeningRE = regexp.MustCompile(`listening on `)

// watchRST captures, in host's namespace, every TCP segment with RST from
// src on iface, independently of the stack's own counters. The returned
// function stops the capture and returns the RST lines seen.
func watchRST(t *testing.T, bed *Testbed, host, iface, src string) func() []string {
	t.Helper()
	if err := CheckTools("tcpdump"); err != nil {
		t.Logf("no wire check for RSTs: %v", err)
		return func() []string { return nil }
	}
	p, err := bed.Start(host, "tcpdump", "-i", iface, "-n", "-l", "-U", "-s", "96",
		fmt.Sprintf("tcp[tcpflags] & tcp-rst != 0 and src host %s", src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitOutput(listeningRE, 10*time.Second); err != nil {
		p.Stop(time.Second)
		t.Fatal(err)
	}
	return func() []string {
		// tcpdump flushes each line (-l); give the last segment a moment.
		time.Sleep(100 * time.Millisecond)
		var rsts []string
		for _, l := range strings.Split(p.Stop(3*time.Second), "\n") {
			if strings.Contains(l, "Flags [R") {
				rsts = append(rsts, l)
			}
		}
		return rsts
	}
}
