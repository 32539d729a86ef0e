package testbed

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
)

// BenchmarkMigrationStall measures what a client of a streaming download
// sees of a migration: the gap between bytes arriving across each
// migration, as a multiple of the client<->server RTT through the same
// switch, measured in the same run. The client is a Linux kernel socket in
// the client namespace (opened by this process with InNamespace), reading
// GET /bytes as fast as it can while the connection hops between the three
// servers; each b.N is one download of 32 MiB with migrations every 20 ms.
//
// A migration's gap is the one between the reads on either side of the
// moment the target replayed the held segments (migrate.PhaseReplayed,
// on the same CLOCK_MONOTONIC as this process's migrate.Monotonic): the
// last bytes the origin sent before it froze, and the first the target
// sent. The download has gaps of its own too (loss recovery in a bulk flow
// through the software switch): the longest gap outside any migration is
// reported beside them, so the two are not confused.
func BenchmarkMigrationStall(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces and AF_XDP")
	}
	if err := CheckTools("ip", "ping"); err != nil {
		b.Skip(err)
	}
	bed := upMigration(b, Options{})
	rtt := pingRTT(b, bed)
	srv := dialServers(b, bed)
	col := &recordCollector{seen: map[recordID]bool{}}
	client := &http.Client{Transport: &http.Transport{DialContext: bed.DialContext("client"), DisableCompression: true}}
	const size = 32 << 20
	var downloads [][]int64 // each download's read times, on migrate.Monotonic
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
				for _, h := range srv.names {
					if _, err := srv.control(h, migrate.ControlRequest{Op: "migrate", Conn: "all"}); err != nil {
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
		reads := []int64{migrate.Monotonic()}
		for {
			n, err := r.Read(buf)
			if n > 0 {
				reads = append(reads, migrate.Monotonic())
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
		downloads = append(downloads, reads)
	}
	b.StopTimer()
	ms := col.take(b, srv)
	mig, other := migrationGaps(downloads, ms)
	if len(mig) == 0 {
		b.Fatalf("no migration of the %d paired fell inside a download", len(ms))
	}
	slices.Sort(mig)
	x := func(d time.Duration) float64 { return float64(d) / float64(rtt) }
	b.ReportMetric(float64(rtt.Microseconds()), "rtt-us")
	b.ReportMetric(float64(len(mig))/float64(b.N), "moves/download")
	b.ReportMetric(x(mig[len(mig)/2]), "gap-p50/rtt")
	b.ReportMetric(x(mig[len(mig)-1]), "gap-max/rtt")
	b.ReportMetric(float64(mig[len(mig)-1].Microseconds()), "gap-max-us")
	b.ReportMetric(x(other), "other-gap-max/rtt")
	// A migration message resent on the engine's timer (one dropped on a
	// full ring, say) stalls its move for the timeout: a long gap-max
	// beside resends says so.
	retries := 0
	for _, m := range ms {
		retries += m.Origin.Retries + m.Target.Retries
	}
	b.ReportMetric(float64(retries), "resends")
	if bo := migrate.SummarizeMigrations(ms).Blackout; bo.P50 > 0 {
		b.ReportMetric(x(bo.P50), "blackout-p50/rtt") // frozen to replayed, on the servers
	}
}

// migrationGaps splits the gaps between consecutive reads of each
// download into those across a migration's replay and the longest of the
// rest.
func migrationGaps(downloads [][]int64, ms []migrate.Migration) (mig []time.Duration, other time.Duration) {
	for _, reads := range downloads {
		across := map[int]bool{} // index of the read that ends the gap
		for i := range ms {
			at := ms[i].Target.At[migrate.PhaseReplayed]
			j := sort.Search(len(reads), func(k int) bool { return reads[k] > at })
			if at == 0 || j == 0 || j == len(reads) || across[j] {
				continue // not during this download, or a gap already counted
			}
			across[j] = true
			mig = append(mig, time.Duration(reads[j]-reads[j-1]))
		}
		for j := 1; j < len(reads); j++ {
			if !across[j] {
				other = max(other, time.Duration(reads[j]-reads[j-1]))
			}
		}
	}
	return mig, other
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
