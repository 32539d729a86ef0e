package migrate_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/tcp"
)

// scenario is one seeded run: streams from the client to server 0, and
// migrations started at random moments from whichever server holds a
// connection, until every stream is echoed back whole.
type scenario struct {
	seed       uint64
	servers    int
	streams    int
	bytes      int
	migrations int // to start in all
	every      time.Duration
	window     int // bytes in flight per stream (0: unbounded)
	link       sim.LinkConfig
	engine     migrate.Config
	limit      time.Duration
}

type result struct {
	started, moved, stayed, aborted int
	r                               *rack
	streams                         []*stream
}

func (sc scenario) run() (*result, error) { return sc.runWith(nil) }

func (sc scenario) runWith(setup func(*rack)) (*result, error) {
	r, err := newRack(sc.seed, sc.servers, sc.link, sc.engine)
	if err != nil {
		return nil, err
	}
	if setup != nil {
		setup(r)
	}
	rng := rand.New(rand.NewPCG(sc.seed, 99))
	res := &result{r: r}
	for i := range sc.streams {
		c, err := r.client.Stack.Connect(netip.AddrPortFrom(serverAddr(0).Addr(), 80))
		if err != nil {
			return nil, err
		}
		data := make([]byte, sc.bytes)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		_ = i
		res.streams = append(res.streams, &stream{conn: c, data: data, window: sc.window})
	}
	r.client.OnStep(func(sim.Time) {
		for _, st := range res.streams {
			st.step()
		}
	})
	next := sc.every
	allDone := func() bool {
		for _, st := range res.streams {
			if st.err != nil {
				return true
			}
			if !st.done() {
				return false
			}
		}
		return true
	}
	for !allDone() {
		if r.s.Now() > sc.limit {
			return res, fmt.Errorf("not done after %v of virtual time: %s", sc.limit, res.progress())
		}
		if err := r.s.RunUntil(min(next, sc.limit+time.Millisecond)); err != nil && err != sim.ErrLimit {
			return res, err
		}
		if r.s.Now() >= next {
			next += sc.every
			if res.started < sc.migrations {
				from := r.servers[rng.IntN(len(r.servers))]
				if from.migrate(rng.Int(), func(out migrate.Outcome) {
					switch out.Result {
					case migrate.ResultMoved:
						res.moved++
					case migrate.ResultStayed:
						res.stayed++
					case migrate.ResultAborted:
						res.aborted++
					}
				}) {
					res.started++
				}
			}
		}
	}
	for _, st := range res.streams {
		if st.err != nil {
			return res, st.err
		}
	}
	return res, nil
}

func (res *result) progress() string {
	s := fmt.Sprintf("%d started, %d moved, %d stayed, %d aborted;", res.started, res.moved, res.stayed, res.aborted)
	for _, st := range res.streams {
		s += fmt.Sprintf(" [%v sent %d got %d/%d]", st.conn.ID().Local, st.sent, st.got, len(st.data))
	}
	return s
}

func TestMigrateEchoStream(t *testing.T) {
	sc := scenario{seed: 1, servers: 3, streams: 1, bytes: 1 << 20, migrations: 10, every: 5 * time.Millisecond,
		link: sim.LinkConfig{Delay: 10 * time.Microsecond, Bandwidth: 100e6}, limit: 10 * time.Second}
	res, err := sc.run()
	if err != nil {
		if res != nil {
			res.dump(t)
		}
		t.Fatalf("seed %d: %v", sc.seed, err)
	}
	if res.moved == 0 {
		t.Fatalf("no migration moved the connection: %s", res.progress())
	}
	if err := res.check(); err != nil {
		t.Error(err)
	}
	t.Logf("%s", res.progress())
	for i, srv := range res.r.servers {
		t.Logf("server %d: %+v", i, srv.e.Stats())
	}
}

func (res *result) dump(t *testing.T) {
	t.Helper()
	t.Logf("%s", res.progress())
	for i, srv := range res.r.servers {
		t.Logf("server %d: %+v\n\tstack: %v", i, srv.e.Stats(), srv.h.Stack.Counters())
		for _, rec := range srv.recs {
			b, _ := rec.MarshalJSON()
			t.Logf("\t%s", b)
		}
	}
	t.Logf("switch: %+v", res.r.sw.p.Counters())
	for _, st := range res.streams {
		c := st.conn.TCP()
		t.Logf("stream %v: client %v %+v", st.conn.ID().Local, c.State(), c.Stats())
		lvl, e, ok := res.r.sw.p.Lookup(clientAddr.Addr().As4(), st.conn.ID().Local.Port())
		t.Logf("\tdirectory: level %d %+v %v", lvl, e, ok)
		for i, srv := range res.r.servers {
			id := tcp.ID{Local: netip.AddrPortFrom(serverAddr(i).Addr(), 80), Remote: st.conn.ID().Local}
			if sc := srv.h.Stack.LookupConn(id); sc != nil {
				a := srv.apps[id]
				pend := -1
				if a != nil {
					pend = len(a.pending)
				}
				t.Logf("\tserver %d: %v app=%v pending=%d %+v", i, sc.TCP().State(), a != nil, pend, sc.TCP().Stats())
			}
		}
	}
}

var soak = flag.Int("soak", 0, "run about this many migrations (100 seeds of 150 starts each per 10,000) instead of 2,000")

// faultyLink is every link of the fault tests: TCPMig rides it too.
var faultyLink = sim.LinkConfig{Delay: 10 * time.Microsecond, Jitter: 5 * time.Microsecond, Bandwidth: 1e9,
	Loss: 0.05, Dup: 0.02, Reorder: 0.05}

func TestMigrationsUnderFaults(t *testing.T) {
	seeds, per := 20, 150
	if *soak > 0 {
		seeds = (*soak + 99) / 100
	} else if testing.Short() {
		seeds = 4
	}
	total := 0
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			sc := scenario{seed: seed, servers: 3, streams: 8, bytes: 512 << 10, window: 64 << 10, migrations: per, every: 2 * time.Millisecond,
				link: faultyLink, limit: 300 * time.Second}
			res, err := sc.run()
			if err == nil {
				err = res.check()
			}
			if err != nil {
				if res != nil {
					res.dump(t)
				}
				t.Fatalf("seed %d: %v\n\treplay: go test ./runtime/migrate -run 'TestMigrationsUnderFaults/seed=%d$' -v", seed, err, seed)
			}
			total += res.moved
		})
	}
	t.Logf("%d migrations moved a connection", total)
}

// check is what every run must end with: no RST reached the client, and
// each connection is held by exactly one server.
func (res *result) check() error {
	if n := len(res.r.harmfulRSTs); n != 0 {
		return fmt.Errorf("%d RSTs reached open client connections, the first: %s (%s)", n, res.r.harmfulRSTs[0], res.progress())
	}
	for _, st := range res.streams {
		if st.closed {
			continue // closed connections may be gone already
		}
		if n := res.r.holders(st.conn); n != 1 {
			return fmt.Errorf("connection %v is held by %d servers", st.conn.ID(), n)
		}
	}
	return nil
}
