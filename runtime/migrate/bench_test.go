package migrate_test

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
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

// warmup is how many migrations run before the measured ones: enough for
// the heap to reach its steady size, so that the measured ones allocate
// from memory the process has touched before. A fresh page costs a page
// fault, about 10 µs on this machine's VM, which would land in whichever
// handler happened to allocate: the harness's growth, not migration work.
const warmup = 3000

func benchMigrate(b *testing.B, queued int) {
	p := newPingPong(b, queued)
	// The records' room first, so the warm-up runs with the heap the
	// measured part will have.
	for _, srv := range p.r.Servers {
		srv.Records = slices.Grow(srv.Records, warmup+b.N+16)
		clear(srv.Records[:cap(srv.Records)])
	}
	for i := range warmup {
		p.move(b, i)
	}
	for _, srv := range p.r.Servers {
		srv.Records = srv.Records[:0]
	}
	b.ResetTimer()
	for i := range b.N {
		p.move(b, warmup+i)
	}
	b.StopTimer()
	s := migrate.SummarizeMigrations(migrate.Pair(p.records()))
	b.ReportMetric(float64(s.HostOverhead.P50.Nanoseconds()), "host-p50-ns")
	b.ReportMetric(float64(s.HostOverhead.P99.Nanoseconds()), "host-p99-ns")
	b.ReportMetric(float64(s.HostOverhead.Max.Nanoseconds()), "host-max-ns")
	b.ReportMetric(float64(s.OriginWork.P50.Nanoseconds()), "origin-p50-ns")
	b.ReportMetric(float64(s.TargetWork.P50.Nanoseconds()), "target-p50-ns")
	if queued == 0 {
		// The machine's own share of the tail, measured the same way in
		// the same run: see noiseFloor.
		f50, f99 := noiseFloor(b.N, s.HostOverhead.P50)
		b.ReportMetric(float64(f50.Nanoseconds()), "fixed-p50-ns")
		b.ReportMetric(float64(f99)/float64(max(f50, 1)), "fixed-p99/p50")
		b.ReportMetric(float64(s.HostOverhead.P99)/float64(max(s.HostOverhead.P50, 1)), "host-p99/p50")
	}
}

// noiseFloor times a fixed computation n times the way a migration's host
// overhead is timed: on the same clock, in six pieces (a migration's
// handlers) that add up to about target, with about five times as much
// untimed work between them (the simulator's, between handlers). It
// returns the sums' p50 and p99. What the fixed computation's p99/p50
// shows above 1 is the machine's (interrupts, a hypervisor that stops the
// vCPU for tens of microseconds): a migration's timing cannot show less.
func noiseFloor(n int, target time.Duration) (p50, p99 time.Duration) {
	const pieces = 6
	k := spinFor(target / pieces)
	sums := make([]time.Duration, n)
	for i := range sums {
		var sum int64
		for range pieces {
			t0 := migrate.Monotonic()
			spin(k)
			sum += migrate.Monotonic() - t0
			spin(5 * k)
		}
		sums[i] = time.Duration(sum)
	}
	slices.Sort(sums)
	return migrate.Quantile(sums, 0.5), migrate.Quantile(sums, 0.99)
}

// spinFor is how many spin rounds take about d, by the median of a few
// hundred timings.
func spinFor(d time.Duration) int {
	k := 1000
	ds := make([]time.Duration, 301)
	for i := range ds {
		t0 := migrate.Monotonic()
		spin(k)
		ds[i] = time.Duration(migrate.Monotonic() - t0)
	}
	slices.Sort(ds)
	return max(1, int(float64(k)*float64(d)/float64(max(ds[len(ds)/2], 1))))
}

var spinSink uint64

// spin is a fixed computation of k rounds (xorshift), touching no memory.
func spin(k int) {
	x := spinSink | 1
	for range k {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	spinSink = x
}

// TestWorkCoversTheHandlers checks that each record's Work holds every
// handler's time, the last one's included: the phases a server marks
// inside its handlers lie within its Work on the same real clock, so
// Work is at least the span between them.
func TestWorkCoversTheHandlers(t *testing.T) {
	p := newPingPong(t, 0)
	for i := range 20 {
		p.move(t, i)
	}
	ms := migrate.Pair(p.records())
	if len(ms) != 20 {
		t.Fatalf("Pair found %d migrations, want 20", len(ms))
	}
	for i, m := range ms {
		o, tg := m.Origin, m.Target
		if span := time.Duration(o.At[migrate.PhaseStateSent] - o.At[migrate.PhaseAckReceived]); o.Work < span {
			t.Errorf("migration %d: origin Work %v < its PREPARE_MIG_ACK handler's %v (ack_received to state_sent)", i, o.Work, span)
		}
		if span := time.Duration(tg.At[migrate.PhaseStateAckSent] - tg.At[migrate.PhaseStateReassembled]); tg.Work < span {
			t.Errorf("migration %d: target Work %v < its CONN_STATE handler's %v (state_reassembled to state_ack_sent)", i, tg.Work, span)
		}
		if span := time.Duration(tg.At[migrate.PhaseAckSent] - tg.At[migrate.PhasePrepareReceived]); tg.Work < span {
			t.Errorf("migration %d: target Work %v < its PREPARE_MIG handler's %v", i, tg.Work, span)
		}
	}
}

// pingPong moves one connection back and forth between two servers of a
// simulated rack. The simulator's clock is virtual, but the engines time
// their Work on the real monotonic clock (RealClock).
type pingPong struct {
	r  *migratetest.Rack
	c  *stack.Conn
	at int
	// done and out are the current move's outcome, which onDone (made
	// once) sets: a closure per move would be the harness's garbage in
	// the collections that the measured handlers pay for.
	done   bool
	out    migrate.Outcome
	onDone func(migrate.Outcome)
}

func (p *pingPong) finished(o migrate.Outcome) { p.done, p.out = true, o }

func newPingPong(tb testing.TB, queued int) *pingPong {
	r, err := migratetest.New(migratetest.Config{Seed: 1, Servers: 2, Link: sim.LinkConfig{Delay: 5 * time.Microsecond},
		Engine: migrate.Config{HeartbeatPeriod: time.Millisecond}, RealClock: true})
	if err != nil {
		tb.Fatal(err)
	}
	for _, srv := range r.Servers {
		// A parked application: nothing reads, so queued bytes stay queued.
		srv.Parked = true
		if err := srv.Engine.HandleRestored(80, func(*stack.Conn, []byte) {}); err != nil {
			tb.Fatal(err)
		}
	}
	c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.Sim.RunUntil(r.Sim.Now() + 5*time.Millisecond); err != nil {
		tb.Fatal(err)
	}
	var acc *stack.Conn
	for _, a := range r.Servers[0].Apps {
		acc = a.Conn
	}
	if acc == nil || !c.Established() {
		tb.Fatal("no connection")
	} else if queued > 0 {
		// queued bytes each way: the server writes what the client does not
		// read, and the client writes what the server does not read.
		buf := make([]byte, queued)
		acc.TryWrite(buf) //nolint:errcheck
		c.TryWrite(buf)   //nolint:errcheck
	}
	if err := r.Sim.RunUntil(r.Sim.Now() + 20*time.Millisecond); err != nil {
		tb.Fatal(err)
	}
	p := &pingPong{r: r, c: c}
	p.onDone = p.finished
	return p
}

// move migrates the connection to the other server; migration i fails tb
// unless it moves.
func (p *pingPong) move(tb testing.TB, i int) {
	// Heartbeats (every 1 ms) make the other server the least loaded.
	if err := p.r.Sim.RunUntil(p.r.Sim.Now() + 3*time.Millisecond); err != nil {
		tb.Fatal(err)
	}
	srv := p.r.Servers[p.at]
	id := migratetest.ServerID(p.at, p.c)
	p.done = false
	if err := srv.Engine.Start(id, nil, p.onDone); err != nil {
		tb.Fatalf("migration %d: %v", i, err)
	}
	for n := 0; !p.done; n++ {
		if n == 10000 {
			tb.Fatalf("migration %d: not done after 1 s of simulated time", i)
		}
		if err := p.r.Sim.RunUntil(p.r.Sim.Now() + 100*time.Microsecond); err != nil {
			tb.Fatal(err)
		}
	}
	if p.out.Result != migrate.ResultMoved {
		tb.Fatalf("migration %d: %+v", i, p.out)
	}
	p.at = 1 - p.at
}

func (p *pingPong) records() []migrate.Record {
	var recs []migrate.Record
	for _, srv := range p.r.Servers {
		recs = append(recs, srv.Records...)
	}
	return recs
}

// TestMigrationAllocatesOnlyItsSpares pins the allocation-free handlers
// and the reuse around them: in steady state a migration allocates only
// the restored connection's stack.Conn, made after the call that used the
// last (spares.go); the outgoing and incoming migrations are the ones
// forgotten a Grace earlier, and the restore's tcp.Conn the one that
// moved away last. An allocation added to a handler, or a spare no
// longer reused, shows here as a second.
func TestMigrationAllocatesOnlyItsSpares(t *testing.T) {
	// warm moves take over a simulated second (3 ms each), the Grace
	// after which the first migrations are forgotten and reused.
	const warm, moves, spares = 400, 500, 1
	p := newPingPong(t, 0)
	for _, srv := range p.r.Servers {
		srv.Records = slices.Grow(srv.Records, warm+moves+16)
	}
	for i := range warm {
		p.move(t, i)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range moves {
		p.move(t, warm+i)
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / moves; per > spares+0.5 {
		t.Errorf("%.2f allocations per migration, want at most %d: the restored connection's stack.Conn", per, spares)
	}
}

// TestInjectDelayIsOriginWork: the experiments' injected overhead is a
// busy wait in the origin's freeze, so it shows in the origin's Work.
func TestInjectDelayIsOriginWork(t *testing.T) {
	r, err := migratetest.New(migratetest.Config{Seed: 1, Servers: 2, Link: sim.LinkConfig{Delay: 5 * time.Microsecond},
		Engine: migrate.Config{HeartbeatPeriod: time.Millisecond, InjectDelay: 300 * time.Microsecond}, RealClock: true})
	if err != nil {
		t.Fatal(err)
	}
	p := &pingPong{r: r}
	p.onDone = p.finished
	for _, srv := range r.Servers {
		srv.Engine.HandleRestored(80, func(*stack.Conn, []byte) {}) //nolint:errcheck // port 80 is free
	}
	if p.c, err = r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80)); err != nil {
		t.Fatal(err)
	}
	if err := r.Sim.RunUntil(r.Sim.Now() + 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	p.move(t, 0)
	ms := migrate.Pair(p.records())
	if len(ms) != 1 || ms[0].Origin.Work < 300*time.Microsecond {
		t.Fatalf("migrations %+v: want one whose origin worked at least the injected 300 µs", ms)
	}
	if _, err := migrate.New(r.Servers[0].Host.Stack, migrate.Config{Switch: migratetest.Control, InjectDelay: -1}); err == nil {
		t.Error("a negative InjectDelay was accepted")
	}
}

// TestQueuedMigrationsReuseQueues: a connection that moves away leaves its
// queues' arrays in its stack's pool (Recycle), and one that arrives with
// queued bytes restores into the pool's arrays rather than fresh memory
// (whose page faults are most of a restore's time on a VM).
func TestQueuedMigrationsReuseQueues(t *testing.T) {
	p := newPingPong(t, 128<<10)
	p.move(t, 0)
	p.move(t, 1) // each server has now given a connection's arrays back
	pools := make([]*tcp.BufferPool, len(p.r.Servers))
	before := make([]tcp.BufferPoolStats, len(p.r.Servers))
	for i, srv := range p.r.Servers {
		pools[i] = srv.Host.Stack.Config().TCP.Buffers
		before[i] = pools[i].Stats()
	}
	for i := range 4 {
		p.move(t, 2+i)
	}
	for i := range pools {
		st := pools[i].Stats()
		// Two restores per server, each of two queues (128 KiB each way),
		// and the arrays of the two connections that left.
		if hits := st.Hits - before[i].Hits; hits < 4 {
			t.Errorf("server %d's buffer pool %+v: %d arrays reused in two restores, want the 4 queues'", i, st, hits)
		}
	}
}
