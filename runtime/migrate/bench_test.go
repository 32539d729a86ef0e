package migrate_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
)

// BenchmarkMigrate moves connections back and forth between two servers in
// the simulator. The simulator's clock is virtual, but Work is measured on
// the real monotonic clock: it is the CPU time the engines spend in
// migration work (the host overhead), which is what this reports, with
// its p50, p99 and max over b.N migrations.
func BenchmarkMigrate(b *testing.B) {
	b.Run("idle", func(b *testing.B) { benchMigrate(b, 0) })
	b.Run("queued-128KiB", func(b *testing.B) { benchMigrate(b, 128<<10) })
}

func benchMigrate(b *testing.B, queued int) {
	// Real time for Work; the phase times are then real too, and only Work
	// is meaningful in a simulation.
	r, err := migratetest.New(migratetest.Config{Seed: 1, Servers: 2, Link: sim.LinkConfig{Delay: 5 * time.Microsecond},
		Engine: migrate.Config{HeartbeatPeriod: time.Millisecond}, RealClock: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, srv := range r.Servers {
		// A parked application: nothing reads, so queued bytes stay queued.
		srv.Parked = true
		srv.Engine.HandleRestored(80, func(*stack.Conn, []byte) {})
	}
	c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Sim.RunUntil(r.Sim.Now() + 5*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	var acc *stack.Conn
	for _, a := range r.Servers[0].Apps {
		acc = a.Conn
	}
	if acc == nil || !c.Established() {
		b.Fatal("no connection")
	} else if queued > 0 {
		// queued bytes each way: the server writes what the client does not
		// read, and the client writes what the server does not read.
		buf := make([]byte, queued)
		acc.TryWrite(buf) //nolint:errcheck
		c.TryWrite(buf)   //nolint:errcheck
	}
	if err := r.Sim.RunUntil(r.Sim.Now() + 20*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	at := 0
	b.ResetTimer()
	for i := range b.N {
		// Heartbeats (every 1 ms) make the other server the least loaded.
		if err := r.Sim.RunUntil(r.Sim.Now() + 3*time.Millisecond); err != nil {
			b.Fatal(err)
		}
		srv := r.Servers[at]
		id := migratetest.ServerID(at, c)
		done := false
		var out migrate.Outcome
		if err := srv.Engine.Start(id, nil, func(o migrate.Outcome) { done, out = true, o }); err != nil {
			b.Fatalf("migration %d: %v", i, err)
		}
		for !done {
			if err := r.Sim.RunUntil(r.Sim.Now() + 100*time.Microsecond); err != nil {
				b.Fatal(err)
			}
		}
		if out.Result != migrate.ResultMoved {
			b.Fatalf("migration %d: %+v", i, out)
		}
		at = 1 - at
	}
	b.StopTimer()
	var recs []migrate.Record
	for _, srv := range r.Servers {
		recs = append(recs, srv.Records...)
	}
	ms := migrate.Pair(recs)
	s := migrate.SummarizeMigrations(ms)
	b.ReportMetric(float64(s.HostOverhead.P50.Nanoseconds()), "host-p50-ns")
	b.ReportMetric(float64(s.HostOverhead.P99.Nanoseconds()), "host-p99-ns")
	b.ReportMetric(float64(s.HostOverhead.Max.Nanoseconds()), "host-max-ns")
	b.ReportMetric(float64(s.OriginWork.P50.Nanoseconds()), "origin-p50-ns")
	b.ReportMetric(float64(s.TargetWork.P50.Nanoseconds()), "target-p50-ns")
}
