package testbed

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// BenchmarkMigrationStall measures what a client of a streaming download
// sees of a migration: the longest gap between bytes arriving, as a
// multiple of the client<->server RTT through the same switch, measured in
// the same run. The client is a Linux kernel socket in the client
// namespace (opened by this process with InNamespace), reading
// GET /bytes as fast as it can while the connection hops between the three
// servers; each b.N is one download of 32 MiB with migrations every 20 ms.
func BenchmarkMigrationStall(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces and AF_XDP")
	}
	if err := CheckTools("ip", "ping"); err != nil {
		b.Skip(err)
	}
	bed := upMigration(b, Options{})
	rtt := pingRTT(b, bed)
	ctl := map[string]net.Conn{}
	for _, h := range []string{"s1", "s2", "s3"} {
		c, err := DialControl(bed.Tag, h)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		ctl[h] = c
	}
	client := &http.Client{Transport: &http.Transport{DialContext: bed.DialContext("client"), DisableCompression: true}}
	const size = 32 << 20
	var gaps []time.Duration
	moves := uint64(0)
	b.ResetTimer()
	for range b.N {
		resp, err := client.Get(fmt.Sprintf("http://10.77.0.11/bytes?n=%d", size))
		if err != nil {
			b.Fatal(err)
		}
		stop := make(chan struct{})
		driven := make(chan error, 1)
		go func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					driven <- nil
					return
				case <-t.C:
				}
				for _, c := range ctl {
					if _, err := migrate.Control(c, migrate.ControlRequest{Op: "migrate", Conn: "all"}); err != nil {
						driven <- err
						return
					}
				}
			}
			driven <- nil
		}()
		r := bufio.NewReaderSize(resp.Body, 64<<10)
		buf := make([]byte, 64<<10)
		var got int64
		last := time.Now()
		var worst time.Duration
		for {
			n, err := r.Read(buf)
			now := time.Now()
			if n > 0 {
				if d := now.Sub(last); d > worst {
					worst = d
				}
				last = now
				got += int64(n)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				close(stop)
				b.Fatalf("download after %d bytes: %v", got, err)
			}
		}
		close(stop)
		if err := <-driven; err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if got != size {
			b.Fatalf("downloaded %d bytes, want %d", got, size)
		}
		gaps = append(gaps, worst)
	}
	b.StopTimer()
	for _, c := range ctl {
		rep, err := migrate.Control(c, migrate.ControlRequest{Op: "stats"})
		if err != nil {
			b.Fatal(err)
		}
		moves += rep.Stats.Moved
	}
	worst := slices.Max(gaps)
	b.ReportMetric(float64(rtt.Microseconds()), "rtt-us")
	b.ReportMetric(float64(worst.Microseconds()), "max-gap-us")
	b.ReportMetric(float64(worst)/float64(rtt), "max-gap/rtt")
	b.ReportMetric(float64(moves)/float64(b.N), "moves/download")
}

var pingAvgRE = regexp.MustCompile(`= [0-9.]+/([0-9.]+)/`)

// pingRTT is the client's average ping RTT to s1 through the switch.
func pingRTT(tb testing.TB, bed *Testbed) time.Duration {
	tb.Helper()
	out, err := bed.Exec("client", "ping", "-q", "-c", "200", "-i", "0.005", "10.77.0.11")
	if err != nil {
		tb.Fatalf("ping: %v\n%s", err, out)
	}
	m := pingAvgRE.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("ping printed no rtt line:\n%s", out)
	}
	ms, _ := strconv.ParseFloat(string(m[1]), 64)
	return time.Duration(ms * float64(time.Millisecond))
}
