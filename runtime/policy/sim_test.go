package policy_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/policy"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// The skew scenario in the simulator: every connection lands on server 0
// of three; each server works one 8-byte request at a time for a fixed
// service time; clients send open-loop Poisson requests. With the
// threshold policy on each server (runtime/policy's Governor, stepped on
// the virtual clock), connections move and the p99 falls; the run is a
// function of its seed.

const (
	workPort  = 8080
	service   = time.Millisecond
	simConns  = 30
	simRate   = 1500.0 // requests/s: 150% of one server, 50% of three
	simFor    = 3 * time.Second
	simWarmup = 500 * time.Millisecond
	reqLen    = 8
)

// workConn is one connection on a server: its partial request bytes.
type workConn struct {
	c         *stack.Conn
	part      []byte
	moved     time.Duration
	everMoved bool
	requests  float64
	moving    bool
}

type request struct {
	id  tcp.ID
	req [reqLen]byte
}

// workServer is the application: requests from every connection queue in
// arrival order for one worker. A connection's queued requests are its
// application state when it moves (Migratory TCP's get/set-state).
type workServer struct {
	srv    *migratetest.Server
	ln     *stack.Listener
	conns  map[tcp.ID]*workConn
	queue  []request
	busy   bool
	cur    request
	doneAt time.Duration
	gov    *policy.Governor
}

func (w *workServer) inflight() int {
	n := len(w.queue)
	if w.busy {
		n++
	}
	return n
}

func (w *workServer) ids() []tcp.ID {
	ids := make([]tcp.ID, 0, len(w.conns))
	for id := range w.conns {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b tcp.ID) int { return a.Remote.Compare(b.Remote) })
	return ids
}

// read takes every whole request the connections hold.
func (w *workServer) read() {
	for c := w.ln.TryAccept(); c != nil; c = w.ln.TryAccept() {
		w.conns[c.ID()] = &workConn{c: c}
	}
	var buf [4096]byte
	for _, id := range w.ids() {
		wc := w.conns[id]
		if wc.moving {
			continue
		}
		for {
			n, err := wc.c.TryRead(buf[:])
			wc.part = append(wc.part, buf[:n]...)
			for len(wc.part) >= reqLen {
				var r request
				r.id = id
				copy(r.req[:], wc.part)
				wc.part = wc.part[reqLen:]
				w.queue = append(w.queue, r)
				wc.requests++
			}
			if n == 0 || err != nil {
				break
			}
		}
	}
}

// work finishes the request in service at now and starts the next.
func (w *workServer) work(now time.Duration) {
	if w.busy && now >= w.doneAt {
		w.busy = false
		if wc := w.conns[w.cur.id]; wc != nil {
			wc.c.TryWrite(w.cur.req[:]) //nolint:errcheck // 8 bytes fit
		}
	}
	if !w.busy && len(w.queue) > 0 {
		w.cur, w.queue = w.queue[0], w.queue[1:]
		w.busy, w.doneAt = true, now+service
	}
}

// decide runs the governor and starts the move it chooses.
func (w *workServer) decide(now time.Duration, rk *skewRack) {
	st := w.srv.Engine.Stats()
	sig := policy.Signal{Now: now, Own: float64(w.inflight()), Min: float64(st.MinWorkload), HaveMin: st.HeartbeatReplies > 0}
	var ids []tcp.ID
	c, ok := w.gov.Step(sig, func() []policy.Candidate {
		var cs []policy.Candidate
		for _, id := range w.ids() {
			wc := w.conns[id]
			if wc.moving || (w.busy && w.cur.id == id) || !wc.c.Established() {
				continue // quiescent points only: not while a request of it is in service
			}
			ids = append(ids, id)
			cs = append(cs, policy.Candidate{Index: len(ids) - 1, Moved: wc.moved, Ever: wc.everMoved, Requests: wc.requests})
		}
		return cs
	})
	if !ok {
		return
	}
	id := ids[c.Index]
	wc := w.conns[id]
	// Its queued requests leave with it, as its application state.
	var state []byte
	kept := w.queue[:0]
	for _, r := range w.queue {
		if r.id == id {
			state = append(state, r.req[:]...)
		} else {
			kept = append(kept, r)
		}
	}
	w.queue = kept
	state = append(state, wc.part...)
	wc.moving = true
	err := w.srv.Engine.Start(id, func() ([]byte, error) { return state, nil }, func(out migrate.Outcome) {
		wc.moving = false
		if out.Result == migrate.ResultStayed {
			for i := 0; i+reqLen <= len(state); i += reqLen {
				var r request
				r.id = id
				copy(r.req[:], state[i:])
				w.queue = append(w.queue, r)
			}
			return
		}
		if out.Result == migrate.ResultMoved {
			rk.moves++
		}
		delete(w.conns, id)
	})
	if err != nil {
		wc.moving = false
		w.queue = append(w.queue, requestsOf(id, state)...)
	}
}

func requestsOf(id tcp.ID, state []byte) []request {
	var rs []request
	for i := 0; i+reqLen <= len(state); i += reqLen {
		var r request
		r.id = id
		copy(r.req[:], state[i:])
		rs = append(rs, r)
	}
	return rs
}

// skewRack is the simulated rack with the application and its clients.
type skewRack struct {
	r        *migratetest.Rack
	servers  []*workServer
	conns    []*stack.Conn
	rng      *rand.Rand
	nextArr  time.Duration
	nextTick time.Duration
	sent     map[uint64]time.Duration
	seq      uint64
	lat      []time.Duration
	partial  map[*stack.Conn][]byte
	moves    int
}

// timers is a portless node that runs the arrivals, the workers and the
// policies on the virtual clock.
type timers struct{ k *skewRack }

func (timers) Deliver(sim.Time, *sim.Port, []byte) {}
func (t timers) Advance(now sim.Time)              { t.k.advance(now) }
func (t timers) NextDeadline() (sim.Time, bool) {
	k := t.k
	d := min(k.nextArr, k.nextTick)
	for _, w := range k.servers {
		if w.busy {
			d = min(d, w.doneAt)
		}
	}
	return d, true
}

func (k *skewRack) advance(now time.Duration) {
	for now >= k.nextArr && k.nextArr < simFor {
		c := k.conns[k.rng.IntN(len(k.conns))]
		var b [reqLen]byte
		k.seq++
		binary.BigEndian.PutUint64(b[:], k.seq)
		k.sent[k.seq] = k.nextArr
		c.TryWrite(b[:]) //nolint:errcheck // the send buffer holds it
		k.nextArr += time.Duration(k.rng.ExpFloat64() / simRate * float64(time.Second))
	}
	if k.nextArr >= simFor {
		k.nextArr = 1 << 62
	}
	for _, w := range k.servers {
		w.work(now)
	}
	if now >= k.nextTick {
		for _, w := range k.servers {
			if w.gov != nil {
				w.decide(now, k)
			}
		}
		k.nextTick = now + time.Millisecond
	}
}

// readResponses times every whole answer the client has.
func (k *skewRack) readResponses(now time.Duration) {
	var buf [4096]byte
	for _, c := range k.conns {
		for {
			n, _ := c.TryRead(buf[:])
			if n == 0 {
				break
			}
			p := append(k.partial[c], buf[:n]...)
			for len(p) >= reqLen {
				id := binary.BigEndian.Uint64(p)
				if at, ok := k.sent[id]; ok {
					if at >= simWarmup {
						k.lat = append(k.lat, now-at)
					}
					delete(k.sent, id)
				}
				p = p[reqLen:]
			}
			k.partial[c] = p
		}
	}
}

type skewOutcome struct {
	p99     time.Duration
	n       int
	moves   int
	pending int
	trace   [32]byte
}

func runSimSkew(t *testing.T, seed uint64, balance bool) skewOutcome {
	t.Helper()
	k := &skewRack{sent: map[uint64]time.Duration{}, partial: map[*stack.Conn][]byte{}, rng: rand.New(rand.NewPCG(seed, 42))}
	r, err := migratetest.New(migratetest.Config{Seed: seed, Servers: 3, Link: sim.LinkConfig{Delay: 5 * time.Microsecond},
		Engine:   migrate.Config{HeartbeatPeriod: time.Millisecond},
		Workload: func(i int) uint32 { return uint32(k.servers[i].inflight()) }})
	if err != nil {
		t.Fatal(err)
	}
	k.r = r
	for _, srv := range r.Servers {
		ln, err := srv.Host.Stack.Listen(workPort)
		if err != nil {
			t.Fatal(err)
		}
		w := &workServer{srv: srv, ln: ln, conns: map[tcp.ID]*workConn{}}
		if balance {
			p, _ := policy.NewThreshold(4, 1)
			if w.gov, err = policy.NewGovernor(p, policy.Busiest{}, 20*time.Millisecond, 1, 300*time.Millisecond, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.Engine.HandleRestored(workPort, func(c *stack.Conn, state []byte) {
			w.conns[c.ID()] = &workConn{c: c, moved: r.Sim.Now(), everMoved: true}
			w.queue = append(w.queue, requestsOf(c.ID(), state)...)
		}); err != nil {
			t.Fatal(err)
		}
		srv.Host.OnStep(func(sim.Time) { w.read() })
		k.servers = append(k.servers, w)
	}
	for range simConns {
		c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), workPort))
		if err != nil {
			t.Fatal(err)
		}
		k.conns = append(k.conns, c)
	}
	r.Client.OnStep(func(now sim.Time) { k.readResponses(now) })
	if err := r.Sim.RunUntil(r.Sim.Now() + 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := r.Sim.Now()
	k.nextArr, k.nextTick = start, start
	tn := r.Sim.AddNode("timers")
	tn.SetHandler(timers{k})
	if err := r.Sim.RunUntil(start + simFor + 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(r.HarmfulRSTs) > 0 {
		t.Fatalf("RSTs toward the client: %v", r.HarmfulRSTs)
	}
	slices.Sort(k.lat)
	if len(k.lat) < 100 {
		t.Fatalf("only %d answers", len(k.lat))
	}
	return skewOutcome{p99: k.lat[len(k.lat)*99/100], n: len(k.lat), moves: k.moves, pending: len(k.sent), trace: r.Sim.TraceHash()}
}

func TestSimulatedHotServerSkew(t *testing.T) {
	off := runSimSkew(t, 1, false)
	on := runSimSkew(t, 1, true)
	t.Logf("p99 %v without migration (%d answers), %v with the threshold policy (%d answers, %d moves)", off.p99, off.n, on.p99, on.n, on.moves)
	if on.moves == 0 {
		t.Fatal("the policy moved nothing")
	}
	if on.p99*10 > off.p99 {
		t.Errorf("p99 %v with the threshold policy, %v without: want at least 10x lower", on.p99, off.p99)
	}
	if on.pending != 0 {
		t.Errorf("%d requests never answered with the policy", on.pending)
	}
	again := runSimSkew(t, 1, true)
	if again != on {
		t.Errorf("the same seed gave another run: %+v then %+v", on, again)
	}
	if other := runSimSkew(t, 2, true); other.trace == on.trace {
		t.Error("another seed gave the same trace")
	}
}
