package migratetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/sim"
)

// FaultyLink is every link of the fault runs, TCPMig's included: 5% loss,
// 2% duplication and 5% reordering each way, at 1 Gb/s.
var FaultyLink = sim.LinkConfig{Delay: 10 * time.Microsecond, Jitter: 5 * time.Microsecond, Bandwidth: 1e9,
	Loss: 0.05, Dup: 0.02, Reorder: 0.05}

// Scenario is one seeded run: echo streams from the client to server 0,
// and migrations started every Every from a random server's random
// connection, until every stream came back whole.
type Scenario struct {
	Seed       uint64
	Servers    int
	Streams    int
	Bytes      int // per stream
	Window     int // bytes in flight per stream (0: unbounded)
	Migrations int // to start in all
	Every      time.Duration
	Link       sim.LinkConfig
	Engine     migrate.Config
	Limit      time.Duration // of virtual time
	// Setup, if set, runs on the rack before the streams start.
	Setup func(*Rack)
}

// Result is what a run did.
type Result struct {
	Started, Moved, Stayed, Aborted int
	Rack                            *Rack
	Streams                         []*Stream
}

// Run runs the scenario. A run that ends with a stream's error, or that
// does not finish within Limit, returns the error with the Result so far.
func (sc Scenario) Run() (*Result, error) {
	r, err := New(Config{Seed: sc.Seed, Servers: sc.Servers, Link: sc.Link, Engine: sc.Engine})
	if err != nil {
		return nil, err
	}
	if sc.Setup != nil {
		sc.Setup(r)
	}
	rng := rand.New(rand.NewPCG(sc.Seed, 99))
	res := &Result{Rack: r}
	for range sc.Streams {
		c, err := r.Client.Stack.Connect(netip.AddrPortFrom(ServerAddr(0).Addr(), 80))
		if err != nil {
			return nil, err
		}
		data := make([]byte, sc.Bytes)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		res.Streams = append(res.Streams, &Stream{Conn: c, Data: data, Window: sc.Window})
	}
	r.Client.OnStep(func(sim.Time) {
		for _, st := range res.Streams {
			st.Step()
		}
	})
	done := func() bool {
		for _, st := range res.Streams {
			if st.Err == nil && !st.Done() {
				return false
			}
		}
		return true
	}
	next := sc.Every
	for !done() {
		if r.Sim.Now() > sc.Limit {
			return res, fmt.Errorf("not done after %v of virtual time: %s", sc.Limit, res.Progress())
		}
		if err := r.Sim.RunUntil(min(next, sc.Limit+time.Millisecond)); err != nil && !errors.Is(err, sim.ErrLimit) {
			return res, err
		}
		if r.Sim.Now() < next {
			continue
		}
		next += sc.Every
		if res.Started >= sc.Migrations {
			continue
		}
		from := r.Servers[rng.IntN(len(r.Servers))]
		if from.MigrateAny(rng.Int(), res.count) {
			res.Started++
		}
	}
	for _, st := range res.Streams {
		if st.Err != nil {
			return res, st.Err
		}
	}
	return res, nil
}

func (res *Result) count(out migrate.Outcome) {
	switch out.Result {
	case migrate.ResultMoved:
		res.Moved++
	case migrate.ResultStayed:
		res.Stayed++
	case migrate.ResultAborted:
		res.Aborted++
	}
}

// Check is what every run must end with: no RST reached an open client
// connection, and each connection still open is held by exactly one server.
func (res *Result) Check() error {
	if n := len(res.Rack.HarmfulRSTs); n != 0 {
		return fmt.Errorf("%d RSTs reached open client connections, the first: %s (%s)", n, res.Rack.HarmfulRSTs[0], res.Progress())
	}
	for _, st := range res.Streams {
		if st.Closed {
			continue // closed connections may be gone already
		}
		if n := res.Rack.Holders(st.Conn); n != 1 {
			return fmt.Errorf("connection %v is held by %d servers", st.Conn.ID(), n)
		}
	}
	return nil
}

// Progress summarizes the outcomes and the streams.
func (res *Result) Progress() string {
	s := fmt.Sprintf("%d started, %d moved, %d stayed, %d aborted;", res.Started, res.Moved, res.Stayed, res.Aborted)
	for _, st := range res.Streams {
		s += fmt.Sprintf(" [%v sent %d got %d/%d]", st.Conn.ID().Local, st.Sent, st.Got, len(st.Data))
	}
	return s
}

// Dump writes what a failed run needs for a diagnosis: each server's
// counters and records (JSON lines), the switch's report and each stream's
// connection, directory entry and holders.
func (res *Result) Dump(logf func(format string, args ...any)) {
	r := res.Rack
	logf("%s", res.Progress())
	for i, srv := range r.Servers {
		logf("server %d: %+v", i, srv.Engine.Stats())
		for _, rec := range srv.Records {
			b, _ := json.Marshal(rec)
			logf("\t%s", b)
		}
	}
	logf("switch: %+v", r.Pipeline.Counters())
	for _, st := range res.Streams {
		c := st.Conn.TCP()
		logf("stream %v: client %v %+v", st.Conn.ID().Local, c.State(), c.Stats())
		lvl, e, ok := r.Pipeline.Lookup(ClientAddr.Addr().As4(), st.Conn.ID().Local.Port())
		logf("\tdirectory: level %d %+v %v", lvl, e, ok)
		for k, srv := range r.Servers {
			id := ServerID(k, st.Conn)
			if sc := srv.Host.Stack.LookupConn(id); sc != nil {
				a := srv.Apps[id]
				pend := -1
				if a != nil {
					pend = len(a.Pending)
				}
				logf("\tserver %d holds it: %v app=%v pending=%d %+v", k, sc.TCP().State(), a != nil, pend, sc.TCP().Stats())
			}
		}
	}
}
