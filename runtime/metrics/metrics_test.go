package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/capygen/capygen/runtime/metrics"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/migrate/migratetest"
	"github.com/capygen/capygen/runtime/sim"
)

// scrape serves reg over HTTP and parses the answer with Prometheus's
// text parser, as a Prometheus server would.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no %s in /metrics", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s has no sample with labels %v", name, want)
	return 0
}

// TestServerAndSwitchMetrics moves a connection back and forth in the
// simulated rack and reads both servers' and the switch's metrics.
func TestServerAndSwitchMetrics(t *testing.T) {
	r, err := migratetest.New(migratetest.Config{Seed: 1, Servers: 2, Link: sim.LinkConfig{Delay: 5 * time.Microsecond},
		Engine: migrate.Config{HeartbeatPeriod: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	regs := make([]*prometheus.Registry, 2)
	ms := make([]*metrics.Server, 2)
	for i, srv := range r.Servers {
		regs[i] = prometheus.NewRegistry()
		if ms[i], err = metrics.NewServer(regs[i], srv.Engine, nil); err != nil {
			t.Fatal(err)
		}
	}
	swReg := prometheus.NewRegistry()
	if _, err := metrics.NewSwitch(swReg, r.Switch); err != nil {
		t.Fatal(err)
	}
	c, err := r.Client.Stack.Connect(netip.AddrPortFrom(migratetest.ServerAddr(0).Addr(), 80))
	if err != nil {
		t.Fatal(err)
	}
	run := func(d time.Duration) {
		if err := r.Sim.RunUntil(r.Sim.Now() + d); err != nil {
			t.Fatal(err)
		}
	}
	run(5 * time.Millisecond)
	if !c.Established() {
		t.Fatal("no connection")
	}
	const moves = 4
	for i := range moves {
		run(3 * time.Millisecond)
		at := i % 2
		done := false
		if err := r.Servers[at].Engine.Start(migratetest.ServerID(at, c), nil, func(migrate.Outcome) { done = true }); err != nil {
			t.Fatal(err)
		}
		for n := 0; !done && n < 1000; n++ {
			run(100 * time.Microsecond)
		}
	}
	// The connection is back at server 0: server 1 refuses to start it.
	if err := r.Servers[1].Engine.Start(migratetest.ServerID(1, c), nil, func(migrate.Outcome) {}); !errors.Is(err, migrate.ErrNoConn) {
		t.Fatalf("Start at a server the connection left: %v, want ErrNoConn", err)
	}
	for i, srv := range r.Servers {
		for _, rec := range srv.Records {
			ms[i].Observe(rec)
		}
	}
	moved := 0.0
	for i := range r.Servers {
		fams := scrape(t, regs[i])
		moved += value(t, fams, "capygen_migrations_total", map[string]string{"role": "origin", "result": "moved"})
		if n := value(t, fams, "capygen_heartbeats_total", nil); n == 0 {
			t.Errorf("server %d: no heartbeats counted", i)
		}
		if n := value(t, fams, "capygen_migration_work_seconds", map[string]string{"role": "origin"}); n != moves/2 {
			t.Errorf("server %d: %v origin work samples, want %d", i, n, moves/2)
		}
		if n := value(t, fams, "capygen_migration_phase_seconds", map[string]string{"role": "target", "phase": "restored"}); n != moves/2 {
			t.Errorf("server %d: %v restore phase samples, want %d", i, n, moves/2)
		}
		if n := value(t, fams, "capygen_migrations_total", map[string]string{"role": "origin", "result": "not_started"}); n != float64(i) {
			t.Errorf("server %d: %v starts refused, want %d", i, n, i)
		}
		value(t, fams, "capygen_held_segment_drops_total", nil)
		value(t, fams, "capygen_directory_upkeep_total", map[string]string{"event": "tombstone_ended"})
		value(t, fams, "capygen_reported_min_workload", nil)
	}
	if moved != moves {
		t.Errorf("%v moves counted, want %d", moved, moves)
	}
	fams := scrape(t, swReg)
	if n := value(t, fams, "capygen_directory_entries", map[string]string{"level": "0"}) + value(t, fams, "capygen_directory_entries", map[string]string{"level": "1"}); n != 1 {
		t.Errorf("%v directory entries, want the moved connection's 1", n)
	}
	if n := value(t, fams, "capygen_directory_inserts_total", nil); n < moves {
		t.Errorf("%v directory inserts, want at least %d", n, moves)
	}
	value(t, fams, "capygen_switch_rejects_total", map[string]string{"reason": "directory_full"})
	if n := value(t, fams, "capygen_switch_heartbeats_total", nil); n == 0 {
		t.Error("the switch counted no heartbeats")
	}
	if f := fams["capygen_switch_min_workload"]; f == nil || len(f.Metric) != 1 {
		t.Errorf("min workload holder: %v", f)
	}
}
