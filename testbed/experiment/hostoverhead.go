package experiment

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed"
)

// Paths are the two ways a connection moves: capygen's userspace stack
// (testbed/migration.yaml) and the Linux kernel's through TCP_REPAIR
// (testbed/kernel.yaml), with the same switch and TCPMig engine.
var Paths = []string{"bypass", "kernel"}

// HostOverheadConfig is Figures 4 and 5: idle keep-alive connections moved
// between the three servers, on each path.
type HostOverheadConfig struct {
	Paths []string
	// Conns idle connections are moved, in rounds, until Migrations have
	// moved on each path.
	Conns, Migrations int
	Binary            string                                                   `json:"-"`
	Progress          func(run, runs int, name string, done, of time.Duration) `json:"-"`
}

// DefaultHostOverhead moves 10,000 connections on each path, as the paper.
func DefaultHostOverhead() HostOverheadConfig {
	return HostOverheadConfig{Paths: Paths, Conns: 20, Migrations: 10000}
}

// Steps are the phases inside the engine's handlers, in order, each named
// by the phase it ends: what Figure 4 breaks the host overhead into.
var Steps = []struct {
	Name     string
	From, To migrate.Phase
	Target   bool
}{
	{"prepare (target)", migrate.PhasePrepareReceived, migrate.PhaseAckSent, true},
	{"freeze", migrate.PhaseAckReceived, migrate.PhaseFrozen, false},
	{"serialize", migrate.PhaseFrozen, migrate.PhaseSerialized, false},
	{"send state", migrate.PhaseSerialized, migrate.PhaseStateSent, false},
	{"restore", migrate.PhaseStateReassembled, migrate.PhaseRestored, true},
	{"replay held", migrate.PhaseRestored, migrate.PhaseReplayed, true},
	{"ack state", migrate.PhaseReplayed, migrate.PhaseStateAckSent, true},
}

// PathResult is one path's migrations.
type PathResult struct {
	Path string
	// Host is each migration's host overhead (origin plus target work),
	// sorted.
	Host []time.Duration
	// StepMean and StepP99 are Steps' mean and p99, in Steps' order.
	StepMean, StepP99 []time.Duration
	// HostSteps are the host's own sub-steps (the kernel's TCP_REPAIR
	// calls), by name: the mean over every time the step ran.
	HostSteps map[string]time.Duration
	// StateBytes is the median serialized state.
	StateBytes int
}

// HostOverheadResult is the whole experiment.
type HostOverheadResult struct {
	// Command is what ran it (kept when -from draws it again).
	Command string
	Config  HostOverheadConfig
	Paths   []PathResult
	Start   time.Time
	Took    time.Duration
}

// Empty reports whether res holds no paths: a run that ended before its
// first has nothing to write over an earlier result.
func (res *HostOverheadResult) Empty() bool { return len(res.Paths) == 0 }

// HostOverhead runs Figures 4 and 5 on the testbed.
func HostOverhead(ctx context.Context, cfg HostOverheadConfig) (*HostOverheadResult, error) {
	if cfg.Paths == nil {
		cfg.Paths = Paths
	}
	for _, p := range cfg.Paths {
		if !slices.Contains(Paths, p) {
			return nil, fmt.Errorf("experiment: unknown path %q; use %s", p, strings.Join(Paths, ", "))
		}
	}
	if cfg.Conns < 1 || cfg.Migrations < 1 {
		return nil, fmt.Errorf("experiment: %d connections and %d migrations; want at least one of each", cfg.Conns, cfg.Migrations)
	}
	if err := testbed.CheckTools("ip"); err != nil {
		return nil, err
	}
	res := &HostOverheadResult{Config: cfg, Start: time.Now()}
	for i, p := range cfg.Paths {
		pr, err := hostOverheadPath(ctx, &cfg, p, i+1, len(cfg.Paths))
		if err != nil {
			return res, fmt.Errorf("experiment: host overhead, %s path: %w", p, err)
		}
		res.Paths = append(res.Paths, *pr)
	}
	res.Took = time.Since(res.Start)
	return res, nil
}

func hostOverheadPath(ctx context.Context, cfg *HostOverheadConfig, path string, run, runs int) (*PathResult, error) {
	topo := testbed.Migration()
	if path == "kernel" {
		topo = testbed.Kernel()
	}
	upCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tb, err := topo.UpWith(upCtx, testbed.Options{Binary: cfg.Binary})
	if err != nil {
		return nil, err
	}
	defer tb.Discard() //nolint:errcheck // the records were read or not needed; a failed tear-down is reported by the next Up's leftovers check
	dial := tb.DialContext("client")
	var conns []*keepAlive
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range cfg.Conns {
		c, err := dialKeepAlive(ctx, dial, servers[0].addr)
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
	}
	start := time.Now()
	report := func(moved int) {
		if cfg.Progress != nil {
			// The bar counts migrations as seconds: done/of is the share.
			cfg.Progress(run, runs, path, time.Duration(moved)*time.Second, time.Duration(cfg.Migrations)*time.Second)
		}
	}
	moved, idle := 0, 0
	for moved < cfg.Migrations {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		before, err := rackStats(tb)
		if err != nil {
			return nil, err
		}
		requested := 0
		for _, s := range servers {
			rep, err := control(tb, s.name, migrate.ControlRequest{Op: "migrate", Conn: "all"})
			if err != nil {
				return nil, err
			}
			requested += rep.Requested
		}
		// The round is over when every migration it asked for has ended
		// (moved, stayed or aborted).
		deadline := time.Now().Add(5 * time.Second)
		now := before
		for time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // the polls are control requests the servers answer
			if now, err = rackStats(tb); err != nil {
				return nil, err
			}
			if ended(now)-ended(before) >= uint64(requested) {
				break
			}
		}
		if a := now.Aborted - before.Aborted; a > 0 {
			return nil, fmt.Errorf("%d migrations aborted after %d moves: connections were reset", a, moved)
		}
		moved += int(now.Moved - before.Moved)
		if now.Moved == before.Moved {
			if idle++; idle == 3 {
				return nil, fmt.Errorf("no connection moved in 3 rounds after %d moves (%d asked in the last)", moved, requested)
			}
		} else {
			idle = 0
		}
		report(moved)
	}
	for i, c := range conns {
		if err := c.ping(); err != nil {
			return nil, fmt.Errorf("connection %d after %d moves: %w", i, moved, err)
		}
	}
	// The records files are complete once the servers have exited.
	for _, s := range servers {
		tb.Proc(s.name).Stop(10 * time.Second)
	}
	var recs []migrate.Record
	for _, s := range servers {
		r, err := readRecords(testbed.RecordsFile(tb.Tag, s.name))
		if err != nil {
			return nil, err
		}
		recs = append(recs, r...)
	}
	ms := migrate.Pair(recs)
	if len(ms) == 0 {
		return nil, fmt.Errorf("no paired migration records after %d moves in %v", moved, time.Since(start))
	}
	return summarizePath(path, ms), nil
}

func summarizePath(path string, ms []migrate.Migration) *PathResult {
	pr := &PathResult{Path: path, HostSteps: map[string]time.Duration{}}
	var state []int
	stepCount := map[string]int{}
	for _, m := range ms {
		pr.Host = append(pr.Host, m.HostOverhead())
		state = append(state, m.Origin.StateBytes)
		for _, r := range []migrate.Record{m.Origin, m.Target} {
			for _, st := range r.Steps {
				pr.HostSteps[st.Name] += st.Dur
				stepCount[st.Name]++
			}
		}
	}
	for name, d := range pr.HostSteps {
		pr.HostSteps[name] = d / time.Duration(stepCount[name])
	}
	slices.Sort(pr.Host)
	slices.Sort(state)
	pr.StateBytes = state[len(state)/2]
	for _, st := range Steps {
		var ds []time.Duration
		var sum time.Duration
		for _, m := range ms {
			r := m.Origin
			if st.Target {
				r = m.Target
			}
			if r.At[st.From] == 0 || r.At[st.To] == 0 {
				continue
			}
			d := time.Duration(r.At[st.To] - r.At[st.From])
			ds = append(ds, d)
			sum += d
		}
		if len(ds) == 0 {
			pr.StepMean, pr.StepP99 = append(pr.StepMean, 0), append(pr.StepP99, 0)
			continue
		}
		slices.Sort(ds)
		pr.StepMean = append(pr.StepMean, sum/time.Duration(len(ds)))
		pr.StepP99 = append(pr.StepP99, migrate.Quantile(ds, 0.99))
	}
	return pr
}

// Mean is the mean host overhead.
func (p *PathResult) Mean() time.Duration {
	var sum time.Duration
	for _, d := range p.Host {
		sum += d
	}
	return sum / time.Duration(max(len(p.Host), 1))
}

// movedTotal is the moves of every server.
func movedTotal(tb *testbed.Testbed) (uint64, error) {
	st, err := rackStats(tb)
	return st.Moved, err
}

// rackStats sums the servers' outgoing migrations by outcome.
func rackStats(tb *testbed.Testbed) (migrate.Stats, error) {
	var sum migrate.Stats
	for _, s := range servers {
		st, err := engineStats(tb, s.name)
		if err != nil {
			return sum, err
		}
		sum.Moved += st.Moved
		sum.Stayed += st.Stayed
		sum.Aborted += st.Aborted
	}
	return sum, nil
}

// ended counts the outgoing migrations that ended.
func ended(st migrate.Stats) uint64 { return st.Moved + st.Stayed + st.Aborted }

func readRecords(path string) ([]migrate.Record, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // a server that took part in nothing
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []migrate.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var r migrate.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// keepAlive is an idle keep-alive HTTP connection from the client.
type keepAlive struct {
	net.Conn
	br *bufio.Reader
}

func dialKeepAlive(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), addr string) (*keepAlive, error) {
	c, err := dial(ctx, "tcp4", net.JoinHostPort(addr, "80"))
	if err != nil {
		return nil, err
	}
	k := &keepAlive{Conn: c, br: bufio.NewReader(c)}
	if err := k.ping(); err != nil {
		c.Close()
		return nil, err
	}
	return k, nil
}

// ping asks GET /ping and reads the answer.
func (k *keepAlive) ping() error {
	k.SetDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck // a TCP conn
	if _, err := fmt.Fprint(k, "GET /ping HTTP/1.1\r\nHost: capygen\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /ping: %s", resp.Status)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
