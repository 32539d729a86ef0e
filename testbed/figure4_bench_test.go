package testbed

import (
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// BenchmarkKernelVsBypass is the paper's Figure 4 and Figure 5, measured
// here: the host overhead of moving the same kinds of connection through
// the same switch with the same TCPMig engine, on capygen's stack
// (testbed/migration.yaml) and on the Linux kernel's through TCP_REPAIR
// (testbed/kernel.yaml), one after the other in one run:
//
//   - idle: 20 keep-alive HTTP connections, 1,100 moves (1,000 paired);
//   - queued: 10 echo connections with about 128 KiB waiting in each
//     server-side send queue (the client reads nothing), 1,200 moves
//     (1,000 paired).
//
// Host overhead is the origin's plus the target's migration work: the
// engine's handlers from entry to exit, which on the kernel path include
// the TCP_REPAIR calls. It prints one table, per part: host overhead,
// origin and target work, and the kernel's TCP_REPAIR steps, with p50, p99
// and max for each path and the kernel/bypass ratio; then the host
// overhead's quantiles (1, 5, 10, ..., 95, 99, 99.9) for Figure 5.
func BenchmarkKernelVsBypass(b *testing.B) {
	needNetns(b, "ping", "iptables")
	type part struct {
		name string
		ms   map[string][]migrate.Migration // by path
	}
	parts := []*part{{name: "idle", ms: map[string][]migrate.Migration{}}, {name: "queued", ms: map[string][]migrate.Migration{}}}
	for _, path := range []struct {
		name string
		topo *Topology
	}{{"bypass", Migration()}, {"kernel", Kernel()}} {
		// Kernel connections get a fixed 512 KiB send buffer, as the
		// kernel counts it (each 1448-byte segment costs about 2.3 KB of
		// it): the echo's 128 KiB then waits in the queue, as it does in
		// capygen's stack's 256 KiB of payload, and not in the
		// application's blocked write, where no migration can start.
		opts := Options{}
		if path.name == "kernel" {
			opts.Args = map[string][]string{RoleServer: {"-sndbuf", "524288", "-rcvbuf", "262144"}}
		}
		bed := upTopology(b, path.topo, opts)
		srv := dialServers(b, bed)
		col := &recordCollector{seen: map[recordID]bool{}}

		conns := make([]*httpConn, 20)
		for i := range conns {
			conns[i] = dialHTTP(b, bed)
		}
		migrateRounds(b, srv, col, 1100, 400) // a few are not paired
		parts[0].ms[path.name] = col.take(b, srv)
		for i, c := range conns {
			if err := c.ping(); err != nil {
				b.Errorf("%s: idle connection %d after the migrations: %v", path.name, i, err)
			}
			c.Close()
		}

		// The client's 16 KiB receive buffer takes ~16 KiB of the 144
		// KiB echoed and leaves ~128 KiB queued at the server. A smaller
		// one, as BenchmarkMigrationTestbed's, offers a window under one
		// MSS, into which Linux sends only on its persist timer (RFC
		// 1122's silly-window avoidance): reading the echo back would
		// take minutes on the kernel path.
		const queued = 144 << 10
		echoes := make([]net.Conn, 10)
		for i := range echoes {
			echoes[i] = dialQueuedEcho(b, bed, queued, 16<<10)
		}
		waitSendQueues(b, srv, len(echoes))
		migrateRounds(b, srv, col, 1200, 400)
		parts[1].ms[path.name] = col.take(b, srv)
		for i, c := range echoes {
			if err := readEcho(c, queued); err != nil {
				b.Errorf("%s: queued echo connection %d after the migrations: %v", path.name, i, err)
			}
			c.Close()
		}
		if err := bed.Down(); err != nil {
			b.Errorf("%s: Down: %v", path.name, err)
		}
	}

	var sb strings.Builder
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, p := range parts {
		by, kn := p.ms["bypass"], p.ms["kernel"]
		fmt.Fprintf(&sb, "\nFigure 4, %s: %d bypass and %d kernel migrations (paired records)\n", p.name, len(by), len(kn))
		fmt.Fprintf(&sb, "  %-22s %30s   %30s   %15s\n", "", "bypass p50 / p99 / max µs", "kernel p50 / p99 / max µs", "ratio p50 / p99")
		row := func(name string, bd, kd migrate.Dist) {
			fmt.Fprintf(&sb, "  %-22s %9.1f %9.1f %10.1f   %9.1f %9.1f %10.1f   %7.1f %7.1f\n", name,
				us(bd.P50), us(bd.P99), us(bd.Max), us(kd.P50), us(kd.P99), us(kd.Max),
				us(kd.P50)/max(us(bd.P50), 1e-9), us(kd.P99)/max(us(bd.P99), 1e-9))
		}
		bsum, ksum := migrate.SummarizeMigrations(by), migrate.SummarizeMigrations(kn)
		row("host overhead", bsum.HostOverhead, ksum.HostOverhead)
		row("origin work", bsum.OriginWork, ksum.OriginWork)
		row("target work", bsum.TargetWork, ksum.TargetWork)
		// The kernel's own steps (TCP_REPAIR), which the bypass path does
		// not have: its columns stay empty.
		for _, st := range ksum.Steps {
			kd := st.Dist
			fmt.Fprintf(&sb, "  %-22s %30s   %9.1f %9.1f %10.1f\n", "  kernel: "+st.Name, "-", us(kd.P50), us(kd.P99), us(kd.Max))
		}
		var bs, ks []int
		for _, m := range by {
			bs = append(bs, m.Origin.StateBytes)
		}
		for _, m := range kn {
			ks = append(ks, m.Origin.StateBytes)
		}
		sort.Ints(bs)
		sort.Ints(ks)
		if len(bs) > 0 && len(ks) > 0 {
			fmt.Fprintf(&sb, "  %-22s %30d   %30d\n", "state bytes p50", bs[len(bs)/2], ks[len(ks)/2])
		}
		fmt.Fprintf(&sb, "Figure 5, %s: host overhead quantiles, µs\n  %6s %10s %10s %8s\n", p.name, "q", "bypass", "kernel", "ratio")
		host := func(ms []migrate.Migration) []time.Duration {
			ds := make([]time.Duration, len(ms))
			for i := range ms {
				ds[i] = ms[i].HostOverhead()
			}
			slices.Sort(ds)
			return ds
		}
		bh, kh := host(by), host(kn)
		for _, q := range []float64{1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 99, 99.9} {
			bq, kq := migrate.Quantile(bh, q/100), migrate.Quantile(kh, q/100)
			fmt.Fprintf(&sb, "  %6.1f %10.1f %10.1f %8.1f\n", q, us(bq), us(kq), us(kq)/max(us(bq), 1e-9))
		}
		if len(bh) > 0 && len(kh) > 0 {
			b.ReportMetric(us(ksum.HostOverhead.P50)/max(us(bsum.HostOverhead.P50), 1e-9), p.name+"-ratio-p50")
			b.ReportMetric(us(ksum.HostOverhead.P99)/max(us(bsum.HostOverhead.P99), 1e-9), p.name+"-ratio-p99")
		}
		if len(by) < 1000 || len(kn) < 1000 {
			b.Errorf("%s: %d bypass and %d kernel migrations paired, want at least 1000 each", p.name, len(by), len(kn))
		}
	}
	b.ReportMetric(0, "ns/op")
	fmt.Fprint(os.Stdout, sb.String())
}
