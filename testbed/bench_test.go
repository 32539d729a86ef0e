package testbed

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// Kernel-vs-bypass benchmarks on one testbed, in one run: the same Go
// net/http handlers (capyrun serve) on capygen's stack over AF_XDP and
// on Linux kernel sockets in the same server namespace, driven by wrk and
// curl from the client namespace. The http sub-benchmarks are named
// http/{kernel,bypass} so internal/benchtable pairs them; bulk transfers
// alternate the two servers round by round within one sub-benchmark
// (alternateBulk), which reports both and their ratio. The benchmark also
// prints its own ratio table of everything.

// wrkDuration is how long each wrk run lasts.
const wrkDuration = "3s"

// bulkBench is the size of each curl transfer.
const bulkBench = 50 << 20

type stackServer interface {
	stop(b *testing.B)
}

type bypassServer struct{ s *server }

func (s bypassServer) stop(b *testing.B) {
	if c := s.s.stop(b); c.RSTOut != 0 {
		b.Errorf("the stack sent %d RSTs during the benchmark", c.RSTOut)
	}
}

type kernelServer struct {
	bed           *Testbed
	p             *Proc
	prefix, iface string
	stopped       *bool
}

func (s kernelServer) stop(b *testing.B) {
	if *s.stopped {
		return
	}
	*s.stopped = true
	s.p.Stop(5 * time.Second)
	if _, err := s.bed.Exec("server", "ip", "addr", "del", s.prefix, "dev", s.iface); err != nil {
		b.Error(err)
	}
}

// stackAB names the server that CAPYRUN_AB's capyrun build runs, for
// comparing two builds of the stack against each other and the kernel in
// one run (alternateBulk): build the other with go build -o, then
//
//	CAPYRUN_AB=/tmp/capyrun-old go test -run '^$' -bench 'Testbed/download' ./testbed
const stackAB = "bypass-ab"

// startStack starts capyrun serve in the server namespace on stack
// "bypass" (AF_XDP) or "kernel" (kernel sockets; the address goes on the
// interface for the duration), with extra flags for either.
func startStack(b *testing.B, bed *Testbed, stack string, extra ...string) stackServer {
	b.Helper()
	switch stack {
	case StackBypass:
		return bypassServer{startServe(b, bed, extra...)}
	case stackAB:
		return bypassServer{startServeBin(b, bed, os.Getenv("CAPYRUN_AB"), nil, extra...)}
	}
	addr, iface, prefix := serverAddr(b, bed)
	if _, err := bed.Exec("server", "ip", "addr", "add", prefix, "dev", iface); err != nil {
		b.Fatal(err)
	}
	p, err := bed.Start("server", append([]string{capyrun(b), "serve", "-kernel", "-http", addr + ":80"}, extra...)...)
	if err == nil {
		_, err = p.WaitOutput(readyRE, 10*time.Second)
	}
	if err != nil {
		bed.Exec("server", "ip", "addr", "del", prefix, "dev", iface)
		b.Fatal(err)
	}
	s := kernelServer{bed: bed, p: p, prefix: prefix, iface: iface, stopped: new(bool)}
	b.Cleanup(func() { s.stop(b) }) // a benchmark that failed before stop
	return s
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
)

// wrk runs wrk from the client namespace and returns requests/s and the
// p50 and p99 latency in microseconds.
func wrk(b *testing.B, bed *Testbed, url string) (rps, p50, p99 float64) {
	b.Helper()
	out, err := bed.Exec("client", "wrk", "-t1", "-c32", "-d"+wrkDuration, "--latency", url)
	if err != nil {
		b.Fatal(err)
	}
	m := wrkRPS.FindStringSubmatch(string(out))
	if m == nil {
		b.Fatalf("wrk printed no Requests/sec:\n%s", out)
	}
	if e := wrkErrors.FindString(string(out)); e != "" {
		b.Errorf("wrk reported errors (%s):\n%s", e, out)
	}
	rps, _ = strconv.ParseFloat(m[1], 64)
	for _, l := range wrkLatency.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		switch l[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		if l[1] == "50" {
			p50 = v
		} else {
			p99 = v
		}
	}
	if p50 == 0 || p99 == 0 {
		b.Fatalf("wrk printed no latency distribution:\n%s", out)
	}
	return rps, p50, p99
}

// curlSpeed runs curl in the client namespace with -w format (a speed
// variable) and returns MB/s.
func curlSpeed(b *testing.B, bed *Testbed, format string, args ...string) float64 {
	b.Helper()
	argv := append([]string{"curl", "-sS", "--fail", "-m", "120", "-o", "/dev/null", "-w", format}, args...)
	out, err := bed.Exec("client", argv...)
	if err != nil {
		b.Fatal(err)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		b.Fatalf("curl speed %q: %v", out, err)
	}
	return v / 1e6
}

type benchResult struct {
	metric string
	value  float64
}

func BenchmarkTestbed(b *testing.B) {
	needNetns(b, "curl", "wrk")
	bed := up(b, Default())
	addr, _, _ := serverAddr(b, bed)
	upload := writePayload(b, bulkBench)
	results := map[string][]benchResult{} // "measure/stack" -> metrics

	b.Run("http", func(b *testing.B) {
		for _, st := range []string{StackKernel, StackBypass} {
			b.Run(st, func(b *testing.B) {
				srv := startStack(b, bed, st)
				defer srv.stop(b)
				b.ReportAllocs()
				var rps, p50, p99 float64
				for range b.N {
					r, l50, l99 := wrk(b, bed, "http://"+addr+"/ping")
					rps, p50, p99 = rps+r, p50+l50, p99+l99
				}
				n := float64(b.N)
				rps, p50, p99 = rps/n, p50/n, p99/n
				b.ReportMetric(1e9/rps, "ns/op")
				b.ReportMetric(rps, "req/s")
				b.ReportMetric(p50, "p50-µs")
				b.ReportMetric(p99, "p99-µs")
				results["http/"+st] = []benchResult{{"req/s", rps}, {"p50-µs", p50}, {"p99-µs", p99}}
			})
		}
	})
	alternateBulk(b, bed, results, "download", func(b *testing.B) float64 {
		return curlSpeed(b, bed, "%{speed_download}", fmt.Sprintf("http://%s/bytes?n=%d", addr, bulkBench))
	})
	alternateBulk(b, bed, results, "upload", func(b *testing.B) float64 {
		return curlSpeed(b, bed, "%{speed_upload}", "-H", "Content-Type: application/octet-stream",
			"--data-binary", "@"+upload, "http://"+addr+"/upload")
	})
	printComparison(results, nil)
}

// bulkRounds is how many rounds alternateBulk runs: even, so each server
// goes first as often as the other.
const bulkRounds = 8

// alternateBulk measures one bulk transfer (MB/s) on each server in
// bulkRounds rounds, the order rotating every round, so that this
// machine's drift (swings of 20% that last minutes) falls on both alike,
// and reports each server's median. In a round each server starts afresh
// and makes one transfer untimed first, so that the timed one finds its
// buffers grown and its pages touched, as a server that has been up does.
func alternateBulk(b *testing.B, bed *Testbed, results map[string][]benchResult, measure string, transfer func(b *testing.B) float64) {
	b.Run(measure, func(b *testing.B) {
		stacks := []string{StackKernel, StackBypass}
		if os.Getenv("CAPYRUN_AB") != "" {
			stacks = append(stacks, stackAB)
		}
		speeds := map[string][]float64{}
		for range b.N {
			inRounds(bulkRounds, stacks, func(st string) {
				srv := startStack(b, bed, st)
				transfer(b)
				speeds[st] = append(speeds[st], transfer(b))
				srv.stop(b)
			})
		}
		med := map[string]float64{}
		for _, st := range stacks {
			v := slices.Clone(speeds[st])
			slices.Sort(v)
			med[st] = percentile(v, 0.5)
			b.Logf("%s on %s, MB/s by round: %.0f (median %.0f)", measure, st, speeds[st], med[st])
			results[measure+"/"+st] = []benchResult{{"MB/s", med[st]}}
		}
		b.ReportMetric(float64(bulkBench)/med[StackBypass]/1e6*1e9, "ns/op")
		b.ReportMetric(med[StackKernel], "kernel-MB/s")
		b.ReportMetric(med[StackBypass], "bypass-MB/s")
		b.ReportMetric(med[StackBypass]/med[StackKernel], "bypass/kernel")
		if m, ok := med[stackAB]; ok {
			b.ReportMetric(m/med[StackKernel], "ab/kernel")
			b.ReportMetric(m/med[StackBypass], "ab/bypass")
		}
	})
}

// inRounds calls f for every stack in each of rounds rounds, the order
// rotating every round, so that this machine's drift falls on all alike.
func inRounds(rounds int, stacks []string, f func(stack string)) {
	for r := range rounds {
		for i := range stacks {
			f(stacks[(i+r)%len(stacks)])
		}
	}
}

// printComparison prints bypass against kernel for every metric measured
// on both, with the ratio and, when verdict is set, what it says of the
// ratio (a target met or missed).
func printComparison(results map[string][]benchResult, verdict func(metric string, ratio float64) string) {
	var names []string
	for k := range results {
		if m, ok := strings.CutSuffix(k, "/"+StackBypass); ok {
			if _, ok := results[m+"/"+StackKernel]; ok {
				names = append(names, m)
			}
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-14s %-11s %12s %12s %14s\n", "measure", "metric", "kernel", "bypass", "bypass/kernel")
	for _, n := range names {
		k, y := results[n+"/"+StackKernel], results[n+"/"+StackBypass]
		for i := range y {
			if i >= len(k) || k[i].value == 0 {
				continue
			}
			r := y[i].value / k[i].value
			v := ""
			if verdict != nil {
				v = verdict(y[i].metric, r)
			}
			fmt.Fprintf(&sb, "%-14s %-11s %12.3f %12.3f %14.2f  %s\n", n, y[i].metric, k[i].value, y[i].value, r, v)
		}
	}
	fmt.Fprint(os.Stdout, sb.String())
}

// switchBenchYAML puts a kernel client and a kernel server on both sides
// of the software switch, and also on a plain veth pair between them, so
// one run measures both paths with the same peers.
const switchBenchYAML = `version: 1
hosts:
  - {name: client, role: client, stack: kernel}
  - {name: sw, role: switch, stack: bypass, run: switch}
  - {name: server, role: server, stack: kernel}
links:
  - a: {host: client, iface: veth0, addr: 10.77.0.1/24}
    b: {host: sw, iface: p0}
  - a: {host: sw, iface: p1}
    b: {host: server, iface: veth0, addr: 10.77.0.2/24}
  - a: {host: client, iface: veth1, addr: 10.77.1.1/24}
    b: {host: server, iface: veth1, addr: 10.77.1.2/24}
`

var pingTimeRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// pingRTTs pings addr n times from host, 1 ms apart, and returns the
// round-trip times in microseconds, sorted.
func pingRTTs(b *testing.B, bed *Testbed, host, addr string, n int) []float64 {
	b.Helper()
	out, err := bed.Exec(host, "ping", "-n", "-c", strconv.Itoa(n), "-i", "0.001", "-W", "1", addr)
	if err != nil {
		b.Fatal(err)
	}
	var rtts []float64
	for _, m := range pingTimeRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		rtts = append(rtts, v*1e3)
	}
	if len(rtts) < n*9/10 {
		b.Fatalf("ping %s: %d replies of %d:\n%s", addr, len(rtts), n, out)
	}
	sort.Float64s(rtts)
	return rtts
}

func percentile(sorted []float64, p float64) float64 {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// udpFlood sends 64-byte UDP datagrams from client to server's addr for
// d, as fast as one kernel socket goes, and returns the datagrams sent
// and received per second.
func udpFlood(b *testing.B, bed *Testbed, addr string, d time.Duration) (sent, got float64) {
	b.Helper()
	var rx net.PacketConn
	if err := bed.InNamespace("server", func() (err error) {
		rx, err = net.ListenPacket("udp4", addr+":9999")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	if c, ok := rx.(*net.UDPConn); ok {
		c.SetReadBuffer(8 << 20)
	}
	var received atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := rx.ReadFrom(buf); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	var tx net.Conn
	if err := bed.InNamespace("client", func() (err error) {
		tx, err = net.Dial("udp4", addr+":9999")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	payload := make([]byte, 64-42) // a 64-byte frame without FCS
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for range 64 {
			if _, err := tx.Write(payload); err == nil {
				n++
			}
		}
	}
	took := time.Since(start)
	// Let the last frames drain through the switch.
	time.Sleep(200 * time.Millisecond)
	rx.Close()
	<-done
	return float64(n) / took.Seconds(), float64(received.Load()) / took.Seconds()
}

// BenchmarkSwitch measures the software switch in the same run as a plain
// veth pair between the same kernel peers: ping RTT percentiles (and the
// latency the switch adds per hop: half the extra RTT, which also holds
// the second veth crossing), and 64-byte UDP frames per second through
// each path. One kernel socket offers the frames, and on the switch path
// its sends also pay for the XDP redirect on the switch's veth, so with
// loss-% 0 the rate is the sender's and the switch kept up; the switch's
// own per-frame cost is runtime/switch's BenchmarkDeliver.
func BenchmarkSwitch(b *testing.B) {
	needNetns(b, "ping")
	topo, err := Parse("switchbench.yaml", []byte(switchBenchYAML))
	if err != nil {
		b.Fatal(err)
	}
	bed := up(b, topo)
	paths := []struct{ name, addr string }{{"veth", "10.77.1.2"}, {"switch", "10.77.0.2"}}
	// Resolve ARP on both paths first.
	for _, p := range paths {
		pingRTTs(b, bed, "client", p.addr, 3)
	}
	res := map[string]map[string]float64{}
	for _, p := range paths {
		res[p.name] = map[string]float64{}
		b.Run("ping/"+p.name, func(b *testing.B) {
			var all []float64
			for range b.N {
				all = append(all, pingRTTs(b, bed, "client", p.addr, 1000)...)
			}
			sort.Float64s(all)
			p50, p99 := percentile(all, 0.50), percentile(all, 0.99)
			b.ReportMetric(p50*1e3, "ns/op")
			b.ReportMetric(p50, "p50-µs")
			b.ReportMetric(p99, "p99-µs")
			res[p.name]["rtt p50 µs"], res[p.name]["rtt p99 µs"] = p50, p99
		})
	}
	for _, p := range paths {
		b.Run("udp64/"+p.name, func(b *testing.B) {
			var sent, got float64
			for range b.N {
				s, g := udpFlood(b, bed, p.addr, time.Second)
				sent, got = sent+s, got+g
			}
			sent, got = sent/float64(b.N), got/float64(b.N)
			b.ReportMetric(1e9/got, "ns/op")
			b.ReportMetric(got, "frames/s")
			b.ReportMetric(100*(1-got/sent), "loss-%")
			res[p.name]["frames/s"], res[p.name]["offered/s"] = got, sent
		})
	}
	r := switchReport(b, bed)
	b.Logf("switch report:\n%s", r)
	v, s := res["veth"], res["switch"]
	if len(v) == 0 || len(s) == 0 {
		return
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-12s %12s %12s %14s\n", "metric", "veth", "switch", "switch/veth")
	for _, m := range []string{"rtt p50 µs", "rtt p99 µs", "frames/s", "offered/s"} {
		if v[m] > 0 {
			fmt.Fprintf(&sb, "%-12s %12.1f %12.1f %14.2f\n", m, v[m], s[m], s[m]/v[m])
		}
	}
	fmt.Fprintf(&sb, "added latency per hop through the switch (half the extra p50 RTT): %.1f µs\n", (s["rtt p50 µs"]-v["rtt p50 µs"])/2)
	fmt.Fprint(os.Stdout, sb.String())
}

// BenchmarkMigrationTestbed measures live migration on the migration
// testbed with kernel clients, in one run:
//
//   - idle: 100 idle keep-alive HTTP connections (the benchmark's own
//     sockets, opened in the client namespace) moved 10,000 times in all,
//     in rounds of "all" on every server, each round waited for;
//   - queued: 10 echo connections whose client wrote 128 KiB and reads
//     nothing (its receive buffer is a few KB), so about 128 KiB waits in
//     each server-side send queue, moved 1,000 times in all;
//   - single: one idle connection moved 300 times, one migration at a
//     time (migrate -conn -wait), the uncontended latency.
//
// Every connection is checked to still work afterwards. The servers'
// records are paired (migrate.Pair) and summarized per part: host
// overhead (origin + target work) and end to end (PREPARE sent to
// CONN_STATE_ACK received) p50/p99/max, beside the client↔server RTT
// through the switch (ping -c 200 -i 0.01, p50). Targets on this
// machine: host overhead p50 ≤ 5 µs with p99/p50 ≤ 2, end to end p50 ≤
// 3 × RTT; the benchmark reports, it does not assert them.
func BenchmarkMigrationTestbed(b *testing.B) {
	needNetns(b, "ping")
	bed := upMigration(b, Options{})
	srv := dialServers(b, bed)
	col := &recordCollector{seen: map[recordID]bool{}}
	b.Cleanup(func() {
		// A failure (a connection reset, a move short) prints the
		// engines' counters beside the servers' exit reports: which
		// migrations aborted, stayed, were reclaimed or dropped segments.
		if !b.Failed() {
			return
		}
		for _, h := range srv.names {
			rep, err := srv.control(h, migrate.ControlRequest{Op: "stats"})
			if err != nil || rep.Stats == nil {
				b.Logf("%s engine stats: %v", h, err)
				continue
			}
			b.Logf("%s engine stats: %+v", h, *rep.Stats)
		}
	})

	rtt := migrationRTT(b, bed)
	b.ReportMetric(rtt, "rtt-p50-µs")

	// Idle keep-alive HTTP connections.
	const idleConns, idleMoves = 100, 10000
	conns := make([]*httpConn, idleConns)
	for i := range conns {
		conns[i] = dialHTTP(b, bed)
	}
	start := time.Now()
	moves := migrateRounds(b, srv, col, idleMoves, 400)
	idleWall := time.Since(start)
	idle := col.take(b, srv)
	for i, c := range conns {
		if err := c.ping(); err != nil {
			b.Errorf("idle connection %d after the migrations: %v", i, err)
		}
		c.Close()
	}
	b.ReportMetric(float64(idleWall.Nanoseconds())/float64(max(moves, 1)), "ns/op")
	report(b, "idle", idle, rtt)

	// Connections with ~128 KiB queued.
	const queuedConns, queuedMoves, queued = 10, 1000, 128 << 10
	echoes := make([]net.Conn, queuedConns)
	for i := range echoes {
		echoes[i] = dialQueuedEcho(b, bed, queued, 2048)
	}
	waitSendQueues(b, srv, queuedConns)
	migrateRounds(b, srv, col, queuedMoves, 400)
	q := col.take(b, srv)
	for i, c := range echoes {
		if err := readEcho(c, queued); err != nil {
			b.Errorf("queued echo connection %d after the migrations: %v", i, err)
		}
		c.Close()
	}
	report(b, "queued", q, rtt)
	var sb []int
	for _, m := range q {
		sb = append(sb, m.Origin.StateBytes)
	}
	if len(sb) > 0 {
		sort.Ints(sb)
		b.ReportMetric(float64(sb[len(sb)/2]), "queued-state-bytes-p50")
	}

	// One at a time.
	one := dialHTTP(b, bed)
	singleMoves(b, srv, one, 300)
	s := col.take(b, srv)
	if err := one.ping(); err != nil {
		b.Errorf("the single connection after its migrations: %v", err)
	}
	one.Close()
	report(b, "single", s, rtt)
}

// migrationRTT pings s1 through the switch 200 times, 10 ms apart, and
// returns the p50 RTT in µs.
func migrationRTT(b *testing.B, bed *Testbed) float64 {
	b.Helper()
	out, err := bed.Exec("client", "ping", "-n", "-c", "200", "-i", "0.01", "-W", "1", originIP)
	if err != nil {
		b.Fatal(err)
	}
	var rtts []float64
	for _, m := range pingTimeRE.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		rtts = append(rtts, v*1e3)
	}
	if len(rtts) < 180 {
		b.Fatalf("ping %s: %d replies of 200:\n%s", originIP, len(rtts), out)
	}
	sort.Float64s(rtts)
	return percentile(rtts, 0.5)
}

// httpConn is a keep-alive HTTP connection from the client namespace.
type httpConn struct {
	net.Conn
	br *bufio.Reader
}

func dialHTTP(b *testing.B, bed *Testbed) *httpConn {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := bed.DialContext("client")(ctx, "tcp4", originIP+":80")
	if err != nil {
		b.Fatal(err)
	}
	h := &httpConn{Conn: c, br: bufio.NewReader(c)}
	if err := h.ping(); err != nil {
		b.Fatal(err)
	}
	return h
}

// ping asks GET /ping on the connection and checks the answer.
func (h *httpConn) ping() error {
	h.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(h, "GET /ping HTTP/1.1\r\nHost: "+originIP+"\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "pong\n" {
		return fmt.Errorf("GET /ping: %s %q %v", resp.Status, body, err)
	}
	return nil
}

// dialQueuedEcho opens an echo connection whose receive buffer is
// rcvbuf bytes (SO_RCVBUF), writes n bytes of Payload and reads nothing:
// the echo waits in the server's send queue.
func dialQueuedEcho(b *testing.B, bed *Testbed, n, rcvbuf int) net.Conn {
	b.Helper()
	var c net.Conn
	err := bed.InNamespace("client", func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return serr
		}}
		c, err = d.Dial("tcp4", originIP+":7")
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(c, Payload(int64(n))); err != nil {
		b.Fatal(err)
	}
	return c
}

// waitSendQueues waits until n echo sessions are idle with their echo
// queued: the servers have read everything (a short settle).
func waitSendQueues(b *testing.B, srv *servers, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got := 0
		for _, c := range srv.sessions(b) {
			got += len(c)
		}
		if got >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

// readEcho reads the n echoed bytes back and checks them.
func readEcho(c net.Conn, n int) error {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h := sha256.New()
	if _, err := io.CopyN(h, c, int64(n)); err != nil {
		return err
	}
	if got, want := hex.EncodeToString(h.Sum(nil)), PayloadSHA256(int64(n)); got != want {
		return fmt.Errorf("echo sha256 %s, want %s", got, want)
	}
	return nil
}

// migrateRounds asks every server to move all its connections, waits
// until those migrations ended, and repeats until want moves or
// maxRounds; it returns the moves. Records are collected every few
// rounds, before the servers' rings (4096 each) wrap.
func migrateRounds(b *testing.B, srv *servers, col *recordCollector, want uint64, maxRounds int) uint64 {
	b.Helper()
	base := total(srv.settled(b), moved)
	var got uint64
	idle := 0 // rounds in a row in which no migration ended
	for round := 0; round < maxRounds && got < want; round++ {
		before := srv.stats(b)
		requested := 0
		for _, h := range srv.names {
			rep, err := srv.control(h, migrate.ControlRequest{Op: "migrate", Conn: "all"})
			if err != nil {
				b.Fatal(err)
			}
			requested += rep.Requested
		}
		ended := func(st map[string]migrate.Stats) uint64 {
			return total(st, func(s migrate.Stats) uint64 { return s.Moved + s.Stayed + s.Aborted })
		}
		target := ended(before) + uint64(requested)
		deadline := time.Now().Add(5 * time.Second)
		var st map[string]migrate.Stats
		for {
			time.Sleep(2 * time.Millisecond)
			st = srv.stats(b)
			if ended(st) >= target || time.Now().After(deadline) {
				break
			}
		}
		if a := total(st, func(s migrate.Stats) uint64 { return s.Aborted }) - total(before, func(s migrate.Stats) uint64 { return s.Aborted }); a > 0 {
			b.Errorf("round %d: %d migrations aborted", round, a)
		}
		got = total(st, moved) - base
		if ended(st) == ended(before) {
			if idle++; idle == 3 {
				b.Fatalf("round %d: no migration ended in 3 rounds (%d requested in the last): is an application blocked outside a quiescent point?", round, requested)
			}
		} else {
			idle = 0
		}
		if round%8 == 7 {
			col.collect(b, srv)
		}
	}
	if got < want {
		b.Errorf("%d moves in %d rounds, want %d", got, maxRounds, want)
	}
	return got
}

// singleMoves moves c's connection n times, one migration at a time,
// each waited for, from whichever server holds it. Between two it waits
// out two heartbeats (10 ms each): until the switch's min_workload has
// heard of the move, the new holder is still the least loaded and the
// switch answers its PREPARE with REJECTED (the migration stays).
func singleMoves(b *testing.B, srv *servers, c *httpConn, n int) {
	b.Helper()
	client := c.LocalAddr().String()
	done := 0
	for i := 0; done < n && i < 3*n+30; i++ {
		time.Sleep(20 * time.Millisecond)
		var rep migrate.ControlReply
		var err error
		for _, h := range srv.names {
			rep, err = srv.control(h, migrate.ControlRequest{Op: "migrate", Conn: client, Wait: true})
			if err == nil {
				break
			}
		}
		if err != nil {
			continue // between two servers for a moment
		}
		if rep.Result == migrate.ResultMoved.String() {
			done++
		}
	}
	if done < n {
		b.Errorf("the single connection moved %d times, want %d", done, n)
	}
}

// recordCollector gathers the servers' records without duplicates.
type recordCollector struct {
	seen map[recordID]bool
	recs []migrate.Record
}

// recordID tells records apart: one server's role in one migration.
type recordID struct {
	role           migrate.Role
	origin, client netip.AddrPort
	epoch          uint8
	start          int64
}

func (c *recordCollector) collect(b *testing.B, srv *servers) {
	for _, r := range srv.records(b) {
		if id := (recordID{r.Role, r.Origin, r.Client, r.Epoch, r.Start}); !c.seen[id] {
			c.seen[id] = true
			c.recs = append(c.recs, r)
		}
	}
}

// take collects and returns the migrations paired since the last take.
func (c *recordCollector) take(b *testing.B, srv *servers) []migrate.Migration {
	srv.settled(b)
	time.Sleep(50 * time.Millisecond)
	c.collect(b, srv)
	recs := c.recs
	c.recs = nil
	return migrate.Pair(recs)
}

// report prints and reports one part's summary.
func report(b *testing.B, part string, ms []migrate.Migration, rtt float64) {
	s := migrate.SummarizeMigrations(ms)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	h, e := s.HostOverhead, s.EndToEnd
	b.ReportMetric(float64(s.Migrations), part+"-paired")
	b.ReportMetric(us(h.P50), part+"-host-p50-µs")
	b.ReportMetric(us(h.P99), part+"-host-p99-µs")
	b.ReportMetric(us(h.Max), part+"-host-max-µs")
	b.ReportMetric(us(e.P50), part+"-e2e-p50-µs")
	b.ReportMetric(us(e.P99), part+"-e2e-p99-µs")
	b.ReportMetric(us(e.Max), part+"-e2e-max-µs")
	if rtt > 0 {
		b.ReportMetric(us(e.P50)/rtt, part+"-e2e/rtt")
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s: %d migrations paired; RTT p50 %.1f µs\n", part, s.Migrations, rtt)
	fmt.Fprintf(&sb, "  host overhead  %v (p99/p50 %.2f)\n  origin work    %v\n  target work    %v\n  end to end     %v (p50/RTT %.1f)\n  blackout       %v\n",
		h, us(h.P99)/max(us(h.P50), 1e-9), s.OriginWork, s.TargetWork, e, us(e.P50)/max(rtt, 1e-9), s.Blackout)
	for _, p := range s.Phases {
		fmt.Fprintf(&sb, "  %18s → %-18s p50 %9.1f µs  p99 %9.1f µs\n", p.From, p.To, us(p.Dist.P50), us(p.Dist.P99))
	}
	fmt.Fprint(os.Stdout, sb.String())
}
