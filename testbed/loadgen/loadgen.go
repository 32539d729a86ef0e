// Package loadgen is an open-loop HTTP/1.1 load generator over a fixed set
// of keep-alive connections: the Caladan-style client of the Capybara
// paper's experiments.
//
// Arrivals are Poisson at a set rate, drawn ahead of time from a seed
// (Schedule), and each goes to one connection, uniformly or by a weight
// that may change over time (a spike that moves between servers). A
// request is written when it arrives, whatever the answers so far
// (pipelined on its connection), so a slow server makes requests queue
// and the latency shows it: each is measured from its scheduled arrival
// to its answer, which avoids coordinated omission. Latencies go to HDR
// histograms, overall and per time bin.
package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Config is one run.
type Config struct {
	// Conns is how many keep-alive connections; Dial opens connection i.
	Conns int
	Dial  func(ctx context.Context, i int) (net.Conn, error)
	// Rate is the mean arrival rate over all connections, per second.
	Rate float64
	// Duration is how long arrivals come; Warmup is how long at the start
	// their latencies are not recorded.
	Duration, Warmup time.Duration
	// Weight, if set, is connection i's relative share of the arrivals at
	// time t; nil: all equal.
	Weight func(t time.Duration, i int) float64
	// Path is an arrival's request path on connection i, drawn with rng
	// (the schedule's): the place for a service time, say.
	Path func(rng *rand.Rand, i int) string
	// Host is the requests' Host header.
	Host string
	// Seed draws the arrivals, their connections and their paths.
	Seed uint64
	// Bin is the time series' bin width (0: 250 ms).
	Bin time.Duration
	// MaxOutstanding bounds a connection's arrivals waiting to be written,
	// and apart from those its requests written and not yet answered; an
	// arrival beyond it is dropped and counted (0: 10,000).
	MaxOutstanding int
	// Drain bounds the wait for the last answers after the last arrival
	// (0: 10 s); requests still unanswered then fail.
	Drain time.Duration
	// BeforeClose, if set, runs after the last answer (or the drain's
	// end), while the connections are still open.
	BeforeClose func()
}

// Arrival is one scheduled request.
type Arrival struct {
	At   time.Duration // since the start
	Conn int
	Path string
}

// Schedule draws cfg's arrivals: the same seed, the same schedule.
func Schedule(cfg Config) ([]Arrival, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x10ad))
	var out []Arrival
	w := make([]float64, cfg.Conns)
	// Time adds up in float seconds: a gap far beyond the run, at a tiny
	// rate, would overflow a Duration and wrap to a negative time.
	end := cfg.Duration.Seconds()
	for ts := 0.0; ; {
		ts += rng.ExpFloat64() / cfg.Rate
		if ts >= end {
			return out, nil
		}
		t := time.Duration(ts * float64(time.Second))
		i := rng.IntN(cfg.Conns)
		if cfg.Weight != nil {
			i = pick(rng, w, func(i int) float64 { return cfg.Weight(t, i) })
		}
		path := "/"
		if cfg.Path != nil {
			path = cfg.Path(rng, i)
		}
		out = append(out, Arrival{At: t, Conn: i, Path: path})
	}
}

// pick draws an index in proportion to weight (all zero: uniform).
func pick(rng *rand.Rand, w []float64, weight func(int) float64) int {
	sum := 0.0
	for i := range w {
		w[i] = max(0, weight(i))
		sum += w[i]
	}
	if !(sum > 0) {
		return rng.IntN(len(w))
	}
	x := rng.Float64() * sum
	for i, v := range w {
		if x < v {
			return i
		}
		x -= v
	}
	return len(w) - 1
}

func (c *Config) check() error {
	switch {
	case c.Conns < 1:
		return fmt.Errorf("loadgen: %d connections; want at least 1", c.Conns)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("loadgen: rate %v per second; want a positive, finite rate", c.Rate)
	case c.Duration <= 0 || c.Warmup < 0 || c.Warmup >= c.Duration:
		return fmt.Errorf("loadgen: duration %v with warm-up %v; want 0 <= warm-up < duration", c.Duration, c.Warmup)
	case c.Rate*c.Duration.Seconds() > 50e6:
		return fmt.Errorf("loadgen: %v/s for %v is over 50 million requests; shorten the run", c.Rate, c.Duration)
	}
	return nil
}

// Bin is one time bin's latencies, by arrival time.
type Bin struct {
	Start           time.Duration
	Count           int64
	P50, P99, P999  time.Duration
	Failed, Dropped int64
}

// Result is a run's outcome.
type Result struct {
	// Latency holds every recorded latency, in microseconds.
	Latency *hdrhistogram.Histogram
	Series  []Bin
	// Sent were written; Answered got a whole answer with status 200;
	// Failed got an error status, a broken connection or no answer in
	// time; Dropped found their connection's MaxOutstanding full.
	Sent, Answered, Failed, Dropped int64
	// Errors are the first few failures, for the report.
	Errors []string
}

// Quantile is the latency at q (0 to 1) of the recorded requests.
func (r *Result) Quantile(q float64) time.Duration {
	return time.Duration(r.Latency.ValueAtQuantile(q*100)) * time.Microsecond
}

// newHist holds latencies up to maxUS: a run's length and its drain, the
// longest an answer can take before the connections close.
func newHist(maxUS int64) *hdrhistogram.Histogram { return hdrhistogram.New(1, maxUS, 3) }

// recorder collects latencies from the connections' readers.
type recorder struct {
	mu      sync.Mutex
	cfg     *Config
	maxUS   int64 // the histograms' bound
	res     *Result
	bins    []*hdrhistogram.Histogram
	binFail []int64
	binDrop []int64
}

func (r *recorder) bin(at time.Duration) int {
	return min(int(at/r.cfg.Bin), len(r.bins)-1)
}

func (r *recorder) ok(at, lat time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Answered++
	if at < r.cfg.Warmup {
		return
	}
	us := min(max(lat.Microseconds(), 1), r.maxUS)
	r.res.Latency.RecordValue(us) //nolint:errcheck // clamped into range
	r.bins[r.bin(at)].RecordValue(us)
}

func (r *recorder) fail(at time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Failed++
	r.binFail[r.bin(at)]++
	if len(r.res.Errors) < 8 {
		r.res.Errors = append(r.res.Errors, fmt.Sprintf("request at %v: %v", at.Round(time.Microsecond), err))
	}
}

func (r *recorder) drop(at time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Dropped++
	r.binDrop[r.bin(at)]++
}

// conn is one keep-alive connection: its writer sends arrivals in order,
// its reader matches answers to them in the same order.
type conn struct {
	c        net.Conn
	arrivals chan Arrival // to the writer
	sent     chan time.Duration
	dead     atomic.Bool
}

// Run dials the connections, sends the schedule in real time and waits
// for the answers. It fails when a connection cannot be opened, and with
// ctx's error (and the result so far) when ctx ends first; a request's
// failure is counted in the result.
func Run(ctx context.Context, cfg Config) (_ *Result, err error) {
	if cfg.Dial == nil {
		return nil, errors.New("loadgen: Config.Dial is nil")
	}
	sched, err := Schedule(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Bin <= 0 {
		cfg.Bin = 250 * time.Millisecond
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = 10000
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.Host == "" {
		cfg.Host = "loadgen"
	}
	nbins := int((cfg.Duration + cfg.Bin - 1) / cfg.Bin)
	maxUS := (cfg.Duration + cfg.Drain + time.Second).Microseconds()
	rec := &recorder{cfg: &cfg, maxUS: maxUS, res: &Result{Latency: newHist(maxUS)}, bins: make([]*hdrhistogram.Histogram, nbins),
		binFail: make([]int64, nbins), binDrop: make([]int64, nbins)}
	for i := range rec.bins {
		rec.bins[i] = newHist(maxUS)
	}
	// A connection's queues need room for its own arrivals at most: at
	// MaxOutstanding each, thousands of connections would take gigabytes.
	perConn := make([]int, cfg.Conns)
	for _, a := range sched {
		perConn[a.Conn]++
	}
	conns := make([]*conn, cfg.Conns)
	for i := range conns {
		c, err := cfg.Dial(ctx, i)
		if err != nil {
			for _, o := range conns[:i] {
				o.c.Close()
			}
			return nil, fmt.Errorf("loadgen: dialing connection %d: %w", i, err)
		}
		room := min(cfg.MaxOutstanding, perConn[i]+1)
		conns[i] = &conn{c: c, arrivals: make(chan Arrival, room), sent: make(chan time.Duration, room)}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range conns {
		wg.Add(2)
		go func() { defer wg.Done(); c.write(&cfg, rec) }()
		go func() { defer wg.Done(); c.read(start, rec) }()
	}
	for _, a := range sched {
		if d := time.Until(start.Add(a.At)); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			rec.fail(a.At, ctx.Err())
			continue
		}
		c := conns[a.Conn]
		if c.dead.Load() {
			rec.fail(a.At, errors.New("its connection broke earlier"))
			continue
		}
		select {
		case c.arrivals <- a:
		default:
			rec.drop(a.At)
		}
	}
	for _, c := range conns {
		close(c.arrivals)
	}
	// The last answers, within Drain; then the connections close, and what
	// is still unanswered fails.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.Drain):
	case <-ctx.Done():
	}
	if cfg.BeforeClose != nil {
		cfg.BeforeClose()
	}
	for _, c := range conns {
		c.c.Close()
	}
	<-done
	res := rec.res
	defer func() {
		// Interrupted: what was measured, and why it stops.
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	for i, h := range rec.bins {
		res.Series = append(res.Series, Bin{Start: time.Duration(i) * cfg.Bin, Count: h.TotalCount(),
			P50: us(h.ValueAtQuantile(50)), P99: us(h.ValueAtQuantile(99)), P999: us(h.ValueAtQuantile(99.9)),
			Failed: rec.binFail[i], Dropped: rec.binDrop[i]})
	}
	return res, nil
}

func us(v int64) time.Duration { return time.Duration(v) * time.Microsecond }

// write sends each arrival's request; the reader learns its arrival time
// first, so that answers match in order.
func (c *conn) write(cfg *Config, rec *recorder) {
	defer close(c.sent)
	bw := bufio.NewWriter(c.c)
	for a := range c.arrivals {
		if c.dead.Load() {
			rec.fail(a.At, errors.New("its connection broke earlier"))
			continue
		}
		if len(c.sent) == cap(c.sent) {
			// The reader waits for answers to what is written: flush before
			// waiting for it.
			if err := bw.Flush(); err != nil {
				c.dead.Store(true)
			}
		}
		c.sent <- a.At
		rec.mu.Lock()
		rec.res.Sent++
		rec.mu.Unlock()
		fmt.Fprintf(bw, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", a.Path, cfg.Host)
		// Flush each arrival unless the next is already waiting: pipelined
		// requests go out together, none waits for a later one.
		if len(c.arrivals) == 0 {
			if err := bw.Flush(); err != nil {
				c.dead.Store(true)
			}
		}
	}
	bw.Flush() //nolint:errcheck // the reader sees the connection's end
}

// read matches answers to the arrivals the writer sent, in order.
func (c *conn) read(start time.Time, rec *recorder) {
	br := bufio.NewReader(c.c)
	for at := range c.sent {
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			c.dead.Store(true)
			if errors.Is(err, net.ErrClosed) {
				err = errors.New("no answer before the run closed the connection (Drain)")
			}
			rec.fail(at, err)
			// The connection is done: every later request fails too.
			for at := range c.sent {
				rec.fail(at, errors.New("its connection broke earlier"))
			}
			return
		}
		if resp.StatusCode != http.StatusOK {
			// An answer, but a refusal: the connection goes on.
			rec.fail(at, fmt.Errorf("status %s", resp.Status))
			continue
		}
		rec.ok(at, time.Since(start)-at)
	}
}
