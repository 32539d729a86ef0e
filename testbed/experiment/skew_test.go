package experiment

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/capygen/capygen/testbed"
)

// TestSkewOnTheTestbed is a short hot-server run on the netns testbed:
// migrations happen under the threshold policy, no request fails, p99
// falls, and every server's and the switch's /metrics parse with
// Prometheus's text parser and say what happened.
func TestSkewOnTheTestbed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veths")
	}
	if err := testbed.CheckTools("ip", "ethtool"); err != nil {
		t.Skip(err)
	}
	bin := filepath.Join(t.TempDir(), "capyrun")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/capygen/capygen/cmd/capyrun").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/capyrun: %v\n%s", err, out)
	}
	cfg := DefaultSkew()
	cfg.Patterns, cfg.Modes = []string{"hot"}, []string{"off", "threshold"}
	cfg.Conns, cfg.Rate, cfg.Duration, cfg.Warmup = 15, 1200, 5*time.Second, 2*time.Second
	cfg.Binary = bin
	cfg.ServerArgs = []string{"-metrics", "127.0.0.1:9100"}
	cfg.SwitchArgs = []string{"-metrics", "127.0.0.1:9100"}
	cfg.Check = func(tb *testbed.Testbed, run SkewRun) error {
		moved := 0.0
		for _, s := range servers {
			fams, err := scrape(tb, s.name)
			if err != nil {
				return err
			}
			v, err := sample(fams, "capygen_migrations_total", "result", "moved")
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			moved += v
			if _, err := sample(fams, "capygen_held_segment_drops_total", "", ""); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if run.Mode == "threshold" {
				if _, err := sample(fams, "capygen_load", "metric", "inflight"); err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
			}
		}
		if uint64(moved) != run.Moves {
			return fmt.Errorf("/metrics count %v moves, the control sockets %d", moved, run.Moves)
		}
		fams, err := scrape(tb, "sw")
		if err != nil {
			return err
		}
		if _, err := sample(fams, "capygen_directory_entries", "level", "0"); err != nil {
			return fmt.Errorf("sw: %w", err)
		}
		hb, err := sample(fams, "capygen_switch_heartbeats_total", "", "")
		if err != nil || hb == 0 {
			return fmt.Errorf("sw: heartbeats %v, %v", hb, err)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := Skew(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", SkewSummary(res))
	off, on := res.Runs[0], res.Runs[1]
	for _, r := range res.Runs {
		if r.Failed != 0 || r.Dropped != 0 || r.Answered != r.Sent {
			t.Errorf("%s: %d sent, %d answered, %d failed, %d dropped: %q", r.Mode, r.Sent, r.Answered, r.Failed, r.Dropped, r.Errors)
		}
	}
	if on.Moves == 0 {
		t.Error("the threshold policy moved nothing")
	}
	if on.P99 >= off.P99 {
		t.Errorf("p99 %v with the threshold policy, %v without", on.P99, off.P99)
	}
}

// scrape reads host's /metrics on 127.0.0.1:9100 in its namespace.
func scrape(tb *testbed.Testbed, host string) (map[string]*dto.MetricFamily, error) {
	c := &http.Client{Transport: &http.Transport{DialContext: tb.DialContext(host)}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://127.0.0.1:9100/metrics")
	if err != nil {
		return nil, fmt.Errorf("%s /metrics: %w", host, err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s /metrics: %w", host, err)
	}
	return fams, nil
}

// sample sums family name's samples whose label has value (any, with an
// empty label).
func sample(fams map[string]*dto.MetricFamily, name, label, value string) (float64, error) {
	f := fams[name]
	if f == nil {
		return 0, fmt.Errorf("no %s in /metrics", name)
	}
	sum, found := 0.0, false
	for _, m := range f.Metric {
		ok := label == ""
		for _, l := range m.Label {
			if l.GetName() == label && l.GetValue() == value {
				ok = true
			}
		}
		if !ok {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	if !found {
		return 0, fmt.Errorf("%s has no sample with %s=%q", name, label, value)
	}
	return sum, nil
}
