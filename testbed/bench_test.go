package testbed

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Kernel-vs-bypass benchmarks on one testbed, in one run: the same Go
// net/http handlers (capygen serve) on capygen's stack over AF_XDP and
// on Linux kernel sockets in the same server namespace, driven by wrk and
// curl from the client namespace. Sub-benchmarks are named
// <measure>/{kernel,bypass} so internal/benchtable pairs them; the
// benchmark also prints its own ratio table.

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
}

func (s kernelServer) stop(b *testing.B) {
	s.p.Stop(5 * time.Second)
	if _, err := s.bed.Exec("server", "ip", "addr", "del", s.prefix, "dev", s.iface); err != nil {
		b.Error(err)
	}
}

// startStack starts capygen serve in the server namespace on stack
// "bypass" (AF_XDP) or "kernel" (kernel sockets; the address goes on the
// interface for the duration).
func startStack(b *testing.B, bed *Testbed, stack string) stackServer {
	b.Helper()
	if stack == StackBypass {
		return bypassServer{startServe(b, bed)}
	}
	addr, iface, prefix := serverAddr(b, bed)
	if _, err := bed.Exec("server", "ip", "addr", "add", prefix, "dev", iface); err != nil {
		b.Fatal(err)
	}
	p, err := bed.Start("server", capygen(b), "serve", "-kernel", "-http", addr+":80")
	if err == nil {
		_, err = p.WaitOutput(readyRE, 10*time.Second)
	}
	if err != nil {
		bed.Exec("server", "ip", "addr", "del", prefix, "dev", iface)
		b.Fatal(err)
	}
	return kernelServer{bed: bed, p: p, prefix: prefix, iface: iface}
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

	measures := []struct {
		name string
		run  func(b *testing.B) []benchResult
	}{
		{"http", func(b *testing.B) []benchResult {
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
			return []benchResult{{"req/s", rps}, {"p50-µs", p50}, {"p99-µs", p99}}
		}},
		{"download", func(b *testing.B) []benchResult {
			var mbs float64
			for range b.N {
				mbs += curlSpeed(b, bed, "%{speed_download}", fmt.Sprintf("http://%s/bytes?n=%d", addr, bulkBench))
			}
			mbs /= float64(b.N)
			b.ReportMetric(float64(bulkBench)/mbs/1e6*1e9, "ns/op")
			b.ReportMetric(mbs, "MB/s")
			return []benchResult{{"MB/s", mbs}}
		}},
		{"upload", func(b *testing.B) []benchResult {
			var mbs float64
			for range b.N {
				mbs += curlSpeed(b, bed, "%{speed_upload}", "-H", "Content-Type: application/octet-stream",
					"--data-binary", "@"+upload, "http://"+addr+"/upload")
			}
			mbs /= float64(b.N)
			b.ReportMetric(float64(bulkBench)/mbs/1e6*1e9, "ns/op")
			b.ReportMetric(mbs, "MB/s")
			return []benchResult{{"MB/s", mbs}}
		}},
	}
	for _, m := range measures {
		b.Run(m.name, func(b *testing.B) {
			for _, st := range []string{StackKernel, StackBypass} {
				b.Run(st, func(b *testing.B) {
					srv := startStack(b, bed, st)
					defer srv.stop(b)
					b.ReportAllocs()
					results[m.name+"/"+st] = m.run(b)
				})
			}
		})
	}
	printComparison(results)
}

// printComparison prints bypass against kernel for every metric measured
// on both, with the ratio.
func printComparison(results map[string][]benchResult) {
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
	fmt.Fprintf(&sb, "\n%-10s %-8s %12s %12s %14s\n", "measure", "metric", "kernel", "bypass", "bypass/kernel")
	for _, n := range names {
		k, y := results[n+"/"+StackKernel], results[n+"/"+StackBypass]
		for i := range y {
			if i >= len(k) || k[i].value == 0 {
				continue
			}
			fmt.Fprintf(&sb, "%-10s %-8s %12.1f %12.1f %14.2f\n", n, y[i].metric, k[i].value, y[i].value, y[i].value/k[i].value)
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
