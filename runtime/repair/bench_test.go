//go:build linux

package repair

import (
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkDumpRestore times the kernel side of one migration of the
// server end: DumpConn, CloseSilently and Restore (ns/op), for an idle
// connection and for one with ~128 KB queued each way. The connection
// goes back and forth between the two server namespaces; freezing the
// origin and moving the client's route are `ip` commands run with the
// timer stopped. Each step's mean is reported as <step>-ns, and the
// streams are checked intact at the end, so every iteration was a real
// migration.
func BenchmarkDumpRestore(b *testing.B) {
	for _, bc := range []struct {
		name   string
		queued int
	}{{"idle", 0}, {"queued128k", 128 << 10}} {
		b.Run(bc.name, func(b *testing.B) {
			tp := newTopo(b)
			tp.muteResets(b)
			client, server := tp.connect(b, tp.a, 0)
			cs, sc := &stream{dir: 1}, &stream{dir: 2}
			if bc.queued > 0 {
				if err := cs.write(client, bc.queued, 500*time.Millisecond); err != nil {
					b.Fatal(err)
				}
				if err := sc.write(server, bc.queued, 500*time.Millisecond); err != nil {
					b.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			steps := map[Step]time.Duration{}
			hook := WithStepHook(func(s Step, d time.Duration) { steps[s] += d })
			var queued int
			cur, next := tp.a, tp.b
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				tp.freeze(b, cur)
				b.StartTimer()
				d, err := DumpConn(server, hook)
				if err != nil {
					b.Fatal(err)
				}
				if err := CloseSilently(server, hook); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				queued += len(d.SendQueue) + len(d.RecvQueue)
				tp.routeTo(b, next)
				tp.up(b, next)
				inNS(b, next, func() {
					b.StartTimer()
					server, err = Restore(d, netip.AddrPort{}, hook)
					b.StopTimer()
				})
				if err != nil {
					b.Fatal(err)
				}
				cur, next = next, cur
			}
			for s, d := range steps {
				b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), string(s)+"-ns")
			}
			b.ReportMetric(float64(queued)/float64(b.N), "queued-B")
			finish(b, client, server, cs, sc, 4<<10)
		})
	}
}

// muteResets drops the RSTs the server namespaces send from the server
// port. Between the route's move and the restore, the next namespace has
// no socket for the connection yet, and a client segment arriving then
// (a retransmission of its queued bytes, which it keeps sending while the
// origin is frozen) would draw a RST that kills the connection. The
// kernel-mode agent holds such segments in an NFQUEUE; this benchmark of
// the socket calls alone keeps the namespaces quiet instead. After
// thousands of moves the gap was hit: "restore: unsent bytes: write:
// connection reset by peer".
func (tp *topo) muteResets(b *testing.B) {
	b.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		b.Skip("needs nft (nftables) to keep the server namespaces from answering the client with RSTs between the route's move and the restore")
	}
	for _, ns := range []string{tp.a, tp.b} {
		run(b, "ip", "netns", "exec", ns, "nft", "add table ip repairbench")
		run(b, "ip", "netns", "exec", ns, "nft", "add chain ip repairbench out { type filter hook output priority 0; }")
		run(b, "ip", "netns", "exec", ns, "nft", fmt.Sprintf("add rule ip repairbench out tcp sport %d tcp flags & rst == rst drop", serverPort))
	}
}
