package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/runtime/app"
	"github.com/capygen/capygen/runtime/kernel"
	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/metrics"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/policy"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
	"github.com/capygen/capygen/testbed"
	"golang.org/x/sys/unix"
)

func init() {
	prog.Register("serve", "run net/http on capygen's TCP/IP stack over AF_XDP (or -get a URL through it)", runServe)
}

// maxBody bounds /bytes so a typo cannot ask for a terabyte.
const maxBody = 16 << 30

type serveFlags struct {
	addr, iface, gateway, httpAddr, mode, get string
	cpuProfile                                string
	size                                      int64
	kernel, replace, offload                  bool
	frames                                    int
	loopPriority                              int
	procs                                     int
	// migration
	switchAddr, control, records string
	echoPort                     int
	heartbeat                    time.Duration
	maxRestore                   int
	sndbuf, rcvbuf               int
	congestion                   string
	policy                       policy.Spec
	workers                      int
	metricsAddr                  string
	injectDelay                  time.Duration
	finWait2                     time.Duration
	idleTimeout, bodyTimeout     time.Duration
	// work is the -workers every handler of this server shares (and the
	// injected migration overhead takes).
	work *workers
}

func runServe(args []string) error {
	f, err := parseServeFlags(args)
	if err != nil {
		return err
	}
	if f.procs > 0 {
		runtime.GOMAXPROCS(f.procs)
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.kernel {
		if f.get != "" {
			return fmt.Errorf("-get runs through our stack; drop -kernel (curl does the kernel side)")
		}
		return serveKernel(ctx, f)
	}
	return serveBypass(ctx, f)
}

// The timeouts that keep a silent client from holding a connection (and
// its goroutine) for ever. Idle outlasts the testbed's experiments, which
// keep idle connections moving for a whole run (Figures 4 and 5: seconds
// to minutes); a body pauses only on a dead or hostile client.
const (
	defaultIdleTimeout = 5 * time.Minute
	defaultBodyTimeout = time.Minute
)

// parseServeFlags reads and checks serve's flags.
// maxProcs bounds -procs: far beyond any machine's cores, and far below
// the thread count that exhausts the runtime.
const maxProcs = 1024

func parseServeFlags(args []string) (serveFlags, error) {
	fs := flag.NewFlagSet("capyrun serve", flag.ContinueOnError)
	f := serveFlags{policy: policy.DefaultSpec()}
	fs.StringVar(&f.addr, "addr", "", "our IPv4 `prefix`, e.g. 10.77.0.2/24 (required unless -kernel)")
	fs.StringVar(&f.iface, "iface", "veth0", "the `interface` AF_XDP takes over")
	fs.StringVar(&f.gateway, "gateway", "", "next-hop `address` for off-link destinations")
	fs.StringVar(&f.httpAddr, "http", ":80", "HTTP listen `address` (only the port matters on our stack)")
	fs.Int64Var(&f.size, "size", 10<<20, "default /bytes body `length`; its sha256 is printed at start")
	fs.StringVar(&f.mode, "mode", "", "XDP attach `mode`: native, generic or empty for native then generic")
	fs.IntVar(&f.frames, "frames", 0, "UMEM `frames` (power of two; 0 for the link default)")
	fs.BoolVar(&f.offload, "offload", true, "transmit through AF_PACKET with the kernel's segmentation offload (GSO/TSO), as a kernel sender does; false sends every frame through the AF_XDP ring")
	fs.BoolVar(&f.replace, "replace-xdp", false, "take over an interface that already has an XDP program (e.g. left by a killed serve)")
	fs.IntVar(&f.procs, "procs", 0, "how many threads run Go code at once (GOMAXPROCS; 0: Go's default, one per CPU). 1 runs our stack as one core, as a Capybara server runs: on a small shared machine, faster request/response and migration tails, but slower sleep-bound handlers (see the README)")
	fs.IntVar(&f.loopPriority, "loop-priority", 0, "run the event loop (with -kernel -switch: the TCPMig receiver) on its own thread in SCHED_FIFO at this `priority`, 1-99, as on a dedicated core (0: the normal scheduler)")
	fs.BoolVar(&f.kernel, "kernel", false, "serve the same handlers on Linux kernel sockets instead (the baseline)")
	fs.StringVar(&f.get, "get", "", "instead of serving, GET `url` through our stack, print its length and sha256, and exit")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file`")
	fs.StringVar(&f.switchAddr, "switch", "", "the switch's control `address`: run the migration engine (TCPMig), and serve migratable HTTP and echo")
	fs.StringVar(&f.control, "control", "", "with -switch: the unix `socket` capyrun migrate talks to")
	fs.StringVar(&f.records, "records", "", "with -switch: append each migration's record to `file` (JSON lines)")
	fs.IntVar(&f.echoPort, "echo", 0, "with -switch: also serve the migratable echo service on TCP `port` (0: none)")
	fs.DurationVar(&f.heartbeat, "heartbeat", 10*time.Millisecond, "with -switch: how often the workload goes to the switch")
	fs.IntVar(&f.maxRestore, "max-restore", 0, "with -switch: refuse migrated-in connections whose buffers exceed this many `bytes` (0: 4 MiB, or 16 MiB with -kernel)")
	fs.IntVar(&f.sndbuf, "sndbuf", 0, "with -kernel -switch: the connections' send buffer in `bytes` as the kernel counts it (0: autotuned, up to net.ipv4.tcp_wmem's max)")
	fs.IntVar(&f.rcvbuf, "rcvbuf", 0, "with -kernel -switch: the connections' receive buffer in `bytes` as the kernel counts it (0: autotuned)")
	fs.StringVar(&f.metricsAddr, "metrics", "", "with -switch: serve Prometheus /metrics on this kernel `address` in our namespace, e.g. 127.0.0.1:9100")
	fs.DurationVar(&f.injectDelay, "inject-migration-delay", 0, "with -switch, for experiments: busy-wait this long in each outgoing migration's freeze (Figure 1's injected overhead)")
	fs.StringVar(&f.congestion, "congestion", "", "congestion control `algorithm`: cubic (the default) or reno on our stack; with -kernel, any the kernel has (TCP_CONGESTION on the listener, which accepted sockets inherit), e.g. cubic where the machine defaults to bbr")
	fs.DurationVar(&f.finWait2, "fin-wait2", 0, "how long a connection the server closed waits in FIN-WAIT-2 for the client's FIN (0: 60s, Linux's tcp_fin_timeout)")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", defaultIdleTimeout, "close a keep-alive connection that waits this long for its next request (0: never); with -switch the wait counts across migrations")
	fs.DurationVar(&f.bodyTimeout, "body-timeout", defaultBodyTimeout, "with -switch: close a connection whose client sends no request body bytes for this long (0: -idle-timeout's)")
	fs.IntVar(&f.workers, "workers", 0, "GET /work?us=N holds one of this many `workers` for N µs: the server's capacity (0: no limit)")
	f.policy.RegisterFlags(fs)
	if err := cli.Parse(fs, args); err != nil {
		return f, err
	}
	if f.policy.Enabled() {
		if f.switchAddr == "" {
			return f, fmt.Errorf("-policy %s decides migrations: it needs the migration engine, -switch", f.policy.Name)
		}
		if _, err := f.policy.Build(1); err != nil { // its errors before anything starts
			return f, err
		}
	}
	for _, b := range []struct {
		name string
		n    int
	}{{"-sndbuf", f.sndbuf}, {"-rcvbuf", f.rcvbuf}} {
		if b.n < 0 || (b.n > 0 && !(f.kernel && f.switchAddr != "")) {
			return f, fmt.Errorf("%s %d: a positive buffer, and only with -kernel -switch", b.name, b.n)
		}
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if f.switchAddr == "" {
		// These configure the migration engine: without it they would
		// be ignored, and a run measured without what they ask for.
		var set []string
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "control", "records", "echo", "heartbeat", "max-restore", "body-timeout":
				set = append(set, "-"+fl.Name)
			}
		})
		if len(set) > 0 {
			return f, fmt.Errorf("%s: only with the migration engine; add -switch", strings.Join(set, ", "))
		}
	}
	switch {
	case f.echoPort < 0 || f.echoPort > 65535:
		return f, fmt.Errorf("-echo %d: want a TCP port, 1 to 65535, or 0 for none", f.echoPort)
	case f.maxRestore < 0:
		return f, fmt.Errorf("-max-restore %d: want a byte count, or 0 for the default", f.maxRestore)
	case f.maxRestore > 0 && f.maxRestore < tcp.DefaultBuffer && !f.kernel:
		// The stack's buffers grow to 256 KiB with -switch: every server
		// must take that, or busy connections are reset after their freeze.
		return f, fmt.Errorf("-max-restore %d: below the %d-byte buffers the stack's connections grow to with -switch, so targets would refuse busy connections; use at least %d", f.maxRestore, tcp.DefaultBuffer, tcp.DefaultBuffer)
	case f.heartbeat < time.Millisecond || f.heartbeat > 10*time.Second:
		return f, fmt.Errorf("-heartbeat %v: want 1ms to 10s (each one is a datagram to the switch)", f.heartbeat)
	case f.control != "" && f.control == f.records:
		return f, fmt.Errorf("-control and -records are both %s: the socket would replace the records; give them different paths", f.control)
	}
	if f.procs < 0 || f.procs > maxProcs {
		return f, fmt.Errorf("-procs %d: want 1 to %d threads, or 0 for Go's default (one per CPU)", f.procs, maxProcs)
	}
	if f.loopPriority < 0 || f.loopPriority > maxLoopPriority {
		return f, fmt.Errorf("-loop-priority %d: want a SCHED_FIFO priority, 1 to %d, or 0 for the normal scheduler", f.loopPriority, maxLoopPriority)
	}
	if f.loopPriority > 0 && f.kernel && f.switchAddr == "" {
		return f, fmt.Errorf("-loop-priority %d: -kernel has no event loop of ours without -switch (then it is the TCPMig receiver's)", f.loopPriority)
	}
	if f.size < 0 || f.size > maxBody {
		return f, fmt.Errorf("-size %d outside 0..%d", f.size, int64(maxBody))
	}
	if f.metricsAddr != "" && f.switchAddr == "" {
		return f, fmt.Errorf("-metrics %s: the metrics are the migration engine's; add -switch", f.metricsAddr)
	}
	switch {
	case f.congestion == "" || f.kernel && f.switchAddr == "":
	case f.kernel:
		return f, fmt.Errorf("-congestion %s: only without -switch on -kernel (the migratable kernel server does not set it)", f.congestion)
	case f.congestion != "cubic" && f.congestion != "reno":
		return f, fmt.Errorf("-congestion %q: our stack has cubic and reno", f.congestion)
	}
	if f.finWait2 < 0 {
		return f, fmt.Errorf("-fin-wait2 %v: want a positive duration, or 0 for 60s", f.finWait2)
	}
	if f.idleTimeout < 0 {
		return f, fmt.Errorf("-idle-timeout %v: want a positive duration, or 0 to keep idle connections for ever", f.idleTimeout)
	}
	if f.bodyTimeout < 0 {
		return f, fmt.Errorf("-body-timeout %v: want a positive duration, or 0 for -idle-timeout's", f.bodyTimeout)
	}
	if f.workers < 0 {
		return f, fmt.Errorf("-workers %d: want a count of workers, or 0 for no limit", f.workers)
	}
	if f.injectDelay < 0 || f.injectDelay > time.Second {
		return f, fmt.Errorf("-inject-migration-delay %v: want 0 to 1s", f.injectDelay)
	}
	if f.injectDelay > 0 && f.switchAddr == "" {
		return f, fmt.Errorf("-inject-migration-delay %v delays migrations: it needs the migration engine, -switch", f.injectDelay)
	}
	f.work = newWorkers(f.workers)
	return f, nil
}

// handler serves GET /bytes?n=N (deterministic body, see
// testbed.Payload), POST /upload (answers the body's sha256), GET /ping
// and GET /work?us=N (workers).
func handler(defaultSize int64, work *workers) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "pong\n")
	})
	mux.Handle("/work", work)
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n := defaultSize
		if s := r.URL.Query().Get("n"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 || v > maxBody {
				http.Error(w, fmt.Sprintf("n=%q: want a byte count in 0..%d", s, int64(maxBody)), http.StatusBadRequest)
				return
			}
			n = v
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, testbed.Payload(n))
	})
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("reading the body after %d bytes: %v", n, err), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Bytes", strconv.FormatInt(n, 10))
		fmt.Fprintf(w, "%s\n", hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

func serveKernel(ctx context.Context, f serveFlags) error {
	if f.switchAddr != "" {
		return serveKernelMigratable(ctx, f)
	}
	var lc net.ListenConfig
	if f.congestion != "" {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, f.congestion)
			}); err != nil {
				return err
			}
			if serr != nil {
				return fmt.Errorf("-congestion %s: TCP_CONGESTION: %w (see net.ipv4.tcp_available_congestion_control)", f.congestion, serr)
			}
			return nil
		}
	}
	ln, err := lc.Listen(ctx, "tcp4", f.httpAddr)
	if err != nil {
		return err
	}
	fmt.Printf("serving http on %s over the kernel stack\n", ln.Addr())
	return serveHTTP(ctx, ln, f, func() {})
}

func serveHTTP(ctx context.Context, ln net.Listener, f serveFlags, report func()) error {
	fmt.Printf("bytes sha256 %d %s\n", f.size, testbed.PayloadSHA256(f.size))
	srv := &http.Server{Handler: handler(f.size, f.work), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: f.idleTimeout}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Println("ready")
	select {
	case err := <-errc:
		report()
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	report()
	return nil
}

func serveBypass(ctx context.Context, f serveFlags) error {
	if f.addr == "" {
		return fmt.Errorf("-addr is required (our IPv4 prefix, e.g. 10.77.0.2/24)")
	}
	pfx, err := netip.ParsePrefix(f.addr)
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("-addr %q: want an IPv4 prefix like 10.77.0.2/24", f.addr)
	}
	var gw netip.Addr
	if f.gateway != "" {
		if gw, err = netip.ParseAddr(f.gateway); err != nil {
			return fmt.Errorf("-gateway %q: %v", f.gateway, err)
		}
	}
	ep, err := link.OpenXDP(f.iface, link.XDPOptions{Mode: f.mode, Frames: f.frames, Replace: f.replace, Offload: f.offload, SpinYield: true})
	if err != nil {
		return err
	}
	defer ep.Close()
	scfg := stack.Config{Addr: pfx, Gateway: gw, TCP: tcp.Config{FinWait2: f.finWait2, Reno: f.congestion == "reno"}}
	if f.switchAddr != "" {
		// A connection's whole state can go to a server this one has never
		// talked to: queue its fragments while ARP resolves, and retry ARP
		// soon when a fault took the request.
		scfg.ARPQueue, scfg.ARPRetry = 4096, 20*time.Millisecond
		// A migration moves the send and receive queues whole: buffers
		// grown to 4 MiB make a busy connection's state thousands of
		// fragments, which a lossy path seldom delivers in one piece, and
		// a large window lets the client put more in flight for the
		// target to hold. Keep both at 256 KiB.
		scfg.TCP.SendBufferMax = tcp.DefaultBuffer
		scfg.TCP.RecvBufferMax = tcp.DefaultBuffer
	}
	st, err := stack.New(scfg, ep)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	runErr, ready := make(chan error, 1), make(chan error, 1)
	go func() {
		if err := realtimeLoop(f.loopPriority); err != nil {
			ready <- err
			runErr <- nil
			return
		}
		ready <- nil
		runErr <- st.Run(runCtx)
	}()
	if err := <-ready; err != nil {
		cancel()
		st.Close()
		return err
	}
	tx := "AF_XDP"
	if f.offload {
		tx = "AF_PACKET with segmentation offload"
	}
	fmt.Printf("capygen stack %s on %s (mac %s, AF_XDP %s mode; transmit %s)\n", pfx, f.iface, ep.MAC(), ep.Mode(), tx)
	report := func() {
		fmt.Printf("xdp mode: %s\n", ep.Mode())
		ls := ep.Stats()
		fmt.Printf("link: rx %d frames %d bytes (dropped %d), tx %d frames %d bytes (dropped %d)\n",
			ls.RxFrames, ls.RxBytes, ls.RxDropped, ls.TxFrames, ls.TxBytes, ls.TxDropped)
		c := st.Counters()
		fmt.Printf("counters:\n%s", c.String())
		if js, err := json.Marshal(c); err == nil {
			fmt.Printf("counters-json %s\n", js)
		}
	}
	// The report comes after Close, so the RSTs Close sends to connections
	// still open are counted too.
	defer func() {
		// Connections the handlers closed finish their handshakes first:
		// Close would reset them (and did, once Run ended promptly).
		lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
		st.Linger(lctx) //nolint:errcheck // those still closing get Close's RST, as before
		lcancel()
		cancel()
		<-runErr
		st.Close()
		report()
	}()

	if f.get != "" {
		return fetch(ctx, st, f.get)
	}
	port, err := listenPort(f.httpAddr, pfx.Addr())
	if err != nil {
		return err
	}
	ln, err := st.Listen(port)
	if err != nil {
		return err
	}
	fmt.Printf("serving http on %s:%d\n", pfx.Addr(), port)
	if f.switchAddr != "" {
		go func() {
			// A stack failure (the endpoint died) ends the server too.
			if err := <-runErr; err != nil {
				fmt.Fprintf(os.Stderr, "capyrun serve: stack stopped: %v\n", err)
			}
			runErr <- nil
			ln.Close()
		}()
		return serveMigratable(ctx, st, ln, f)
	}
	go func() {
		// A stack failure (the endpoint died) ends the server too.
		select {
		case err := <-runErr:
			if err != nil {
				fmt.Fprintf(os.Stderr, "capyrun serve: stack stopped: %v\n", err)
			}
			runErr <- err
			ln.Close()
		case <-runCtx.Done():
		}
	}()
	return serveHTTP(ctx, ln, f, func() {})
}

// listenPort takes the port of an -http address; a host part, if any,
// must be our address.
func listenPort(httpAddr string, ours netip.Addr) (uint16, error) {
	host, p, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return 0, fmt.Errorf("-http %q: %v", httpAddr, err)
	}
	if host != "" && host != "0.0.0.0" && host != ours.String() {
		return 0, fmt.Errorf("-http %q: our stack only has %s", httpAddr, ours)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return 0, fmt.Errorf("-http %q: port must be 1..65535", httpAddr)
	}
	return uint16(port), nil
}

// fetch GETs url through the stack and prints its length and sha256.
func fetch(ctx context.Context, st *stack.Stack, url string) error {
	client := &http.Client{
		Transport: &http.Transport{DialContext: st.DialContext, DisableCompression: true},
		Timeout:   2 * time.Minute,
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("-get %q: %v", url, err)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("-get %s: %w", url, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("-get %s: reading body after %d bytes: %w", url, n, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("-get %s: %s", url, resp.Status)
	}
	d := time.Since(start)
	fmt.Printf("get %s status %d bytes %d sha256 %s in %v (%.1f MB/s)\n", url, resp.StatusCode, n,
		hex.EncodeToString(h.Sum(nil)), d.Round(time.Microsecond), float64(n)/d.Seconds()/1e6)
	client.CloseIdleConnections()
	return nil
}

// serveMigratable runs the migration engine on st and serves HTTP (and
// echo) whose connections move between servers: capyrun serve -switch.
func serveMigratable(ctx context.Context, st *stack.Stack, ln *stack.Listener, f serveFlags) error {
	ecfg, rec, bal, err := engineConfig(f)
	if err != nil {
		return err
	}
	defer rec.close()
	eng, err := migrate.New(st, ecfg)
	if err != nil {
		return err
	}
	defer eng.Close()
	return serveApps(ctx, eng, bal, ln, func(port uint16) (app.Listener, error) { return st.Listen(port) }, st.Addr(), f, rec)
}

// serveKernelMigratable is serveMigratable on kernel sockets: capyrun serve
// -kernel -switch. The engine, the applications and the control socket
// are the same; connections move through TCP_REPAIR.
func serveKernelMigratable(ctx context.Context, f serveFlags) error {
	if f.addr == "" {
		return fmt.Errorf("-kernel -switch needs -addr, the address of this namespace's server (e.g. 10.77.0.11/24)")
	}
	pfx, err := netip.ParsePrefix(f.addr)
	if err != nil || !pfx.Addr().Is4() {
		return fmt.Errorf("-addr %q: want an IPv4 prefix like 10.77.0.11/24", f.addr)
	}
	ecfg, rec, bal, err := engineConfig(f)
	if err != nil {
		return err
	}
	defer rec.close()
	kcfg := kernel.Config{Addr: pfx.Addr(), Engine: ecfg, SendBuffer: f.sndbuf, RecvBuffer: f.rcvbuf}
	if f.loopPriority > 0 {
		kcfg.LoopThread = func() error { return realtimeLoop(f.loopPriority) }
	}
	srv, err := kernel.Start(kcfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	port, err := listenPort(f.httpAddr, pfx.Addr())
	if err != nil {
		return err
	}
	ln, err := srv.Listen(port)
	if err != nil {
		return err
	}
	fmt.Printf("serving http on %s:%d over the kernel stack (TCP_REPAIR migration)\n", pfx.Addr(), port)
	return serveApps(ctx, srv.Engine, bal, ln, func(port uint16) (app.Listener, error) { return srv.Listen(port) }, pfx.Addr(), f, rec)
}

// engineConfig checks the migration flags and opens the records file;
// with -policy it also builds the balancer, whose load the heartbeats
// carry.
func engineConfig(f serveFlags) (migrate.Config, *recordWriter, *policy.Balancer, error) {
	sw, err := netip.ParseAddr(f.switchAddr)
	if err != nil || !sw.Is4() {
		return migrate.Config{}, nil, nil, fmt.Errorf("-switch %q: want the switch's control IPv4 address, e.g. 10.77.0.254", f.switchAddr)
	}
	if f.heartbeat <= 0 {
		return migrate.Config{}, nil, nil, fmt.Errorf("-heartbeat %v: want a positive period", f.heartbeat)
	}
	cfg := migrate.Config{Switch: sw, HeartbeatPeriod: f.heartbeat, MaxRestoreBuffer: f.maxRestore, InjectDelay: f.injectDelay}
	if f.work != nil {
		cfg.InjectCharge = f.work.charge
	}
	var bal *policy.Balancer
	if f.policy.Enabled() {
		// A state carries both buffers, each within the target's bound.
		bound := f.maxRestore
		if bound == 0 {
			bound = migrate.DefaultMaxRestoreBuffer
			if f.kernel {
				bound = kernel.DefaultMaxRestoreBuffer
			}
		}
		if bal, err = f.policy.Build(2 * bound); err != nil {
			return migrate.Config{}, nil, nil, err
		}
		cfg.Workload = bal.Workload
	}
	rec, err := newRecordWriter(f.records)
	if err != nil {
		return migrate.Config{}, nil, nil, err
	}
	cfg.OnRecord = rec.write
	return cfg, rec, bal, nil
}

// claimSocket makes path free for a unix socket: a socket left there by
// a killed serve goes, but not a file of another kind (the records, a
// typo), nor a socket another serve still answers on.
func claimSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("exists and is not a socket (%v); choose another path", fi.Mode().Type())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return errors.New("another server answers on this socket; stop it or choose another path")
	}
	return os.Remove(path)
}

// serveApps serves migratable HTTP on ln (and echo) with eng, answers the
// control socket, and reports the engine's counters at the end.
func serveApps(ctx context.Context, eng *migrate.Engine, bal *policy.Balancer, ln app.Listener, listen func(uint16) (app.Listener, error), addr netip.Addr, f serveFlags, rec *recordWriter) error {
	sw := f.switchAddr
	var err error
	if f.control != "" {
		os.MkdirAll(filepath.Dir(f.control), 0o755) //nolint:errcheck // Listen says what is wrong
		if err := claimSocket(f.control); err != nil {
			return fmt.Errorf("-control %s: %w", f.control, err)
		}
		cl, err := net.Listen("unix", f.control)
		if err != nil {
			return fmt.Errorf("-control %s: %w", f.control, err)
		}
		defer os.Remove(f.control)
		go eng.ServeControl(ctx, cl) //nolint:errcheck // ends with ctx
	}
	logger := log.New(os.Stderr, "capyrun serve: ", 0)
	hs := appHTTPServer(f, eng, logger)
	if f.metricsAddr != "" {
		reg := metrics.NewRegistry()
		m, err := metrics.NewServer(reg, eng, bal)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return fmt.Errorf("-metrics: %w", err)
		}
		rec.metrics.Store(m)
		mctx, stopMetrics := context.WithCancel(ctx)
		defer stopMetrics()
		go metrics.ServeListener(mctx, ln, reg) //nolint:errcheck // ends with ctx
		fmt.Printf("metrics on http://%s/metrics\n", f.metricsAddr)
	}
	if bal != nil {
		bal.Engine = eng
		hs.Load = bal.Meter
		bctx, stopBal := context.WithCancel(ctx)
		defer stopBal()
		go bal.Run(bctx) //nolint:errcheck // ends with ctx; its fields were checked by Build
		fmt.Printf("policy %s on %s, choosing the %s connection, at most one move per %v\n", f.policy.Name, f.policy.Metric, f.policy.Chooser, f.policy.Every)
	}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	var echo *app.Echo
	if f.echoPort != 0 {
		if f.echoPort < 0 || f.echoPort > 65535 {
			return fmt.Errorf("-echo %d: want a TCP port in 1..65535", f.echoPort)
		}
		eln, err := listen(uint16(f.echoPort))
		if err != nil {
			return fmt.Errorf("-echo %d: %w", f.echoPort, err)
		}
		defer eln.Close()
		// Kernel sockets too: a write blocked on a slow client is a
		// quiescent point on both paths. (Kernel mode livelocked so until
		// repair's restoreWindow closed the send window of a socket
		// restored with bytes in flight.)
		echo = &app.Echo{Engine: eng, ErrorLog: logger, InterruptWrites: true}
		go func() { errc <- echo.Serve(eln) }()
		fmt.Printf("serving echo on %s:%d\n", addr, f.echoPort)
	}
	fmt.Printf("migration engine on, switch %s, control %q, records %q\n", sw, f.control, f.records)
	fmt.Printf("bytes sha256 %d %s\n", f.size, testbed.PayloadSHA256(f.size))
	fmt.Println("ready")
	select {
	case err = <-errc:
		err = fmt.Errorf("server: %w", err)
	case <-ctx.Done():
		err = nil
	}
	ln.Close()
	es := eng.Stats()
	fmt.Printf("migration: started %d (not started %d) moved %d stayed %d aborted %d; accepted %d abandoned %d refused %d; retries %d held %d (overflow %d) replayed %d\n",
		es.Started, es.NotStarted, es.Moved, es.Stayed, es.Aborted, es.Accepted, es.Abandoned, es.RestoreFailures, es.Retries, es.Held, es.HeldOverflow, es.Replayed)
	if js, jerr := json.Marshal(es); jerr == nil {
		fmt.Printf("migration-json %s\n", js)
	}
	if bal != nil {
		st := bal.Stats()
		fmt.Printf("policy: decided %d, rate-limited %d, none eligible %d, asked %d (refused %d)\n",
			st.Decisions, st.Limited, st.NoneEligible, st.Asked, st.AskFailed)
	}
	if n := rec.dropped.Load(); n > 0 {
		fmt.Printf("migration records dropped (writer behind): %d\n", n)
	}
	return err
}

// appHTTPServer is the migratable HTTP server of serve -switch.
func appHTTPServer(f serveFlags, eng *migrate.Engine, logger *log.Logger) *app.HTTPServer {
	return &app.HTTPServer{Engine: eng, ErrorLog: logger, Handler: f.work, IdleTimeout: f.idleTimeout, BodyTimeout: f.bodyTimeout}
}

// recordWriter appends migration records to a file as JSON lines from its
// own goroutine: the engine's OnRecord runs on the event loop and must not
// wait for a disk.
type recordWriter struct {
	ch      chan migrate.Record
	done    chan struct{}
	dropped atomic.Int64
	// mu orders write's send against close's: the engine may report a
	// record after serve began to shut down.
	mu     sync.Mutex
	closed bool
	// lost counts records a failed write (a full disk) lost; err is the
	// first failure. The writer's goroutine sets them before done.
	lost int64
	err  error
	// metrics, once -metrics serves them, sees every record too.
	metrics atomic.Pointer[metrics.Server]
}

func newRecordWriter(path string) (*recordWriter, error) {
	w := &recordWriter{ch: make(chan migrate.Record, 65536), done: make(chan struct{})}
	if path == "" {
		close(w.done)
		w.ch = nil
		return w, nil
	}
	os.MkdirAll(filepath.Dir(path), 0o755) //nolint:errcheck // OpenFile says what is wrong
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("-records: %w", err)
	}
	go func() {
		defer close(w.done)
		bw := bufio.NewWriter(fh)
		var line []byte
		pending := int64(0) // records in bw since its last flush
		fail := func(err error) {
			if err != nil {
				w.lost += pending
				if w.err == nil {
					w.err = err
				}
			}
			pending = 0
		}
		for r := range w.ch {
			line = append(r.AppendJSON(line[:0]), '\n')
			pending++
			if _, err := bw.Write(line); err != nil {
				fail(err) // a full disk loses records, not the server
				bw.Reset(fh)
				continue
			}
			if len(w.ch) == 0 {
				fail(bw.Flush())
			}
		}
		fail(bw.Flush())
		if err := fh.Close(); err != nil && w.err == nil {
			w.err = err
		}
	}()
	return w, nil
}

func (w *recordWriter) write(r migrate.Record) {
	if m := w.metrics.Load(); m != nil {
		m.Observe(r)
	}
	if w.ch == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.dropped.Add(1)
		return
	}
	select {
	case w.ch <- r:
	default:
		w.dropped.Add(1)
	}
}

func (w *recordWriter) close() {
	w.mu.Lock()
	if w.ch != nil && !w.closed {
		close(w.ch)
	}
	w.closed = true
	w.mu.Unlock()
	<-w.done
	if w.err != nil {
		fmt.Fprintf(os.Stderr, "capyrun serve: -records: %d migration records lost: %v\n", w.lost, w.err)
	}
}
