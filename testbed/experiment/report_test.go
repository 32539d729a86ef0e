package experiment

import (
	"bytes"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed/loadgen"
)

func fakeSkew() *SkewResult {
	cfg := DefaultSkew()
	cfg.Patterns, cfg.Modes = []string{"hot", "heavy"}, []string{"off", "threshold", "logistic", "oracle"}
	res := &SkewResult{Config: cfg, Start: time.Unix(1e9, 0), Took: time.Minute}
	p99 := map[string]time.Duration{"off": 4 * time.Second, "threshold": 9 * time.Millisecond, "logistic": 8 * time.Millisecond, "oracle": 7 * time.Millisecond}
	for _, pat := range cfg.Patterns {
		for _, m := range cfg.Modes {
			run := SkewRun{Pattern: pat, Mode: m, P50: time.Millisecond, P99: p99[m], P999: 2 * p99[m], Sent: 100, Answered: 100, PerServer: []int{10, 10, 10}}
			for i := range 8 {
				run.Series = append(run.Series, loadgen.Bin{Start: time.Duration(i) * 250 * time.Millisecond, Count: 10, P50: time.Millisecond, P99: p99[m]})
			}
			run.Series = append(run.Series, loadgen.Bin{Start: 2 * time.Second}) // an empty bin
			res.Runs = append(res.Runs, run)
		}
	}
	return res
}

func TestHeadlineIsOffOverTheBestPolicy(t *testing.T) {
	ratio, best, ok := fakeSkew().Headline()
	if !ok || best != "logistic" || ratio != 500 {
		t.Errorf("headline %v %q %v, want 500x by logistic (the oracle is not a policy)", ratio, best, ok)
	}
	if _, _, ok := (&SkewResult{}).Headline(); ok {
		t.Error("a headline with no runs")
	}
	// A policy that answered nothing, or lost requests, is not the best,
	// however short its p99.
	for _, lost := range []SkewRun{
		{Answered: 0, Failed: 100, P99: 0},
		{Answered: 10, Failed: 90, P99: time.Millisecond},
	} {
		res := fakeSkew()
		for i, r := range res.Runs {
			if r.Pattern == "hot" && r.Mode == "logistic" {
				res.Runs[i].Answered, res.Runs[i].Failed, res.Runs[i].P99 = lost.Answered, lost.Failed, lost.P99
			}
		}
		if ratio, best, ok := res.Headline(); !ok || best != "threshold" || ratio < 444 || ratio > 445 {
			t.Errorf("with logistic answering %d of 100: headline %v %q %v, want about 444x by threshold", lost.Answered, ratio, best, ok)
		}
	}
}

func TestWriteSkew(t *testing.T) {
	dir := t.TempDir()
	files, err := WriteSkew(dir, fakeSkew(), "capyrun experiment skew -test")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"skew.json", "skew.csv", "skew_series.csv", "skew_hot_p99.png", "skew_hot_p99.svg", "skew_p99_by_mode.png", "skew_p99_by_mode.svg", "README.md"} {
		b, err := os.ReadFile(filepath.Join(dir, want))
		if err != nil {
			t.Errorf("%s: %v (wrote %v)", want, err, files)
			continue
		}
		switch filepath.Ext(want) {
		case ".png":
			if _, err := png.Decode(bytes.NewReader(b)); err != nil {
				t.Errorf("%s is no PNG: %v", want, err)
			}
		case ".svg":
			if !bytes.Contains(b, []byte("<svg")) {
				t.Errorf("%s is no SVG", want)
			}
		}
	}
	report, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	for _, want := range []string{"500.0x the best policy's (logistic)", "![skew_hot_p99.png](skew_hot_p99.png)", "`capyrun experiment skew -test`", "| hot | off | 1.00 | 4000.00 |"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "skew.csv"))
	if lines := strings.Count(string(csv), "\n"); lines != 1+8 {
		t.Errorf("skew.csv has %d lines, want a header and 8 runs", lines)
	}
}

func TestSkewConfigRefusesBadInput(t *testing.T) {
	for _, c := range []struct {
		change func(*SkewConfig)
		want   string
	}{
		{func(c *SkewConfig) { c.Patterns = []string{"warm"} }, `unknown skew pattern "warm"`},
		{func(c *SkewConfig) { c.Modes = []string{"greedy"} }, `unknown mode "greedy"`},
		{func(c *SkewConfig) { c.Conns = 2 }, "at least one per server"},
		{func(c *SkewConfig) { c.Service = 0 }, "service time 0s"},
		{func(c *SkewConfig) { c.Workers = 0 }, "0 workers"},
		{func(c *SkewConfig) { c.Rate = -5 }, "-rate -5"},
		{func(c *SkewConfig) { c.Rate = math.Inf(1) }, "-rate +Inf"},
		{func(c *SkewConfig) { c.Rate = math.NaN() }, "-rate NaN"},
		{func(c *SkewConfig) { c.Duration, c.Warmup = 2, 0 }, "-duration 2ns"},
		{func(c *SkewConfig) { c.Warmup = time.Hour }, "-warmup 1h0m0s"},
		{func(c *SkewConfig) { c.Warmup = -time.Second }, "-warmup -1s"},
		{func(c *SkewConfig) { c.Rate = 0.01 }, "at least one request"},
	} {
		cfg := DefaultSkew()
		c.change(&cfg)
		if err := cfg.check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}

func TestBoundedParetoHasItsMean(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sum, n, maxv := 0.0, 200000, int64(0)
	for range n {
		v := boundedPareto(rng, 1000)
		sum += float64(v)
		maxv = max(maxv, v)
	}
	if mean := sum / float64(n); mean < 800 || mean > 1050 {
		t.Errorf("mean %v µs, want about 1000 (a little less: the cut)", mean)
	}
	if maxv > 50000 {
		t.Errorf("max %d µs, want the cut at 50x the mean", maxv)
	}
}

func TestWriteHostOverhead(t *testing.T) {
	var ms []migrate.Migration
	for i := range 100 {
		var o, tg migrate.Record
		o.Role, tg.Role = migrate.RoleOrigin, migrate.RoleTarget
		base := int64(1000)
		for p := migrate.PhasePrepareSent; p <= migrate.PhaseStateAcked; p++ {
			o.At[p] = base + int64(p)*1000 + int64(i)
		}
		for p := migrate.PhasePrepareReceived; p < migrate.NumPhases; p++ {
			tg.At[p] = base + int64(p)*1000
		}
		o.Work, tg.Work = time.Duration(10+i)*time.Microsecond, 5*time.Microsecond
		o.StateBytes = 100
		tg.Steps = []migrate.Step{{Name: "repair on", Dur: 2 * time.Microsecond}}
		ms = append(ms, migrate.Migration{Origin: o, Target: tg})
	}
	res := &HostOverheadResult{Config: DefaultHostOverhead(), Start: time.Unix(1e9, 0)}
	res.Paths = append(res.Paths, *summarizePath("bypass", ms), *summarizePath("kernel", ms))
	if p := res.Paths[0]; p.StepMean[1] != time.Microsecond || p.HostSteps["repair on"] != 2*time.Microsecond || len(p.Host) != 100 {
		t.Errorf("summary %+v: want the freeze step's 1 µs, the host step's 2 µs and 100 migrations", p)
	}
	dir := t.TempDir()
	if _, err := WriteHostOverhead(dir, res, "capyrun experiment fig4 -test"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"fig4.png", "fig4.svg", "fig5.png", "fig5.svg", "fig4.csv", "fig5.csv", "fig4_host_steps.csv", "README.md", "hostoverhead.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	report, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(report), "1.0x the bypass path's") || !strings.Contains(string(report), "repair on 2.0") {
		t.Errorf("report:\n%s", report)
	}
}

func TestWriteFig1(t *testing.T) {
	cfg := DefaultFig1()
	res := &Fig1Result{Config: cfg, Start: time.Unix(1e9, 0)}
	for _, r := range cfg.Rates {
		for i, d := range cfg.Delays {
			res.Points = append(res.Points, Fig1Point{Rate: r, Delay: d, P50: time.Millisecond, P99: time.Duration(10+i) * time.Millisecond, Answered: 100, Moves: 10000})
		}
	}
	res.Points[0].Moves = 9000
	dir := t.TempDir()
	if _, err := WriteFig1(dir, res, "capyrun experiment fig1 -test"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"fig1.png", "fig1.svg", "fig1.csv", "fig1.json", "README.md"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	report, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(report), "9000 of the 10000 migrations asked for moved") {
		t.Errorf("the report does not say a point fell short:\n%s", report)
	}
}

func TestRecordCommand(t *testing.T) {
	var ran string
	if got := recordCommand(&ran, "capyrun experiment skew"); got != "`capyrun experiment skew`" || ran != "capyrun experiment skew" {
		t.Errorf("a run: %q, kept %q", got, ran)
	}
	if got := recordCommand(&ran, "capyrun experiment skew -from skew.json"); got != "`capyrun experiment skew` (plots and report drawn again by `capyrun experiment skew -from skew.json`)" || ran != "capyrun experiment skew" {
		t.Errorf("a replot: %q, kept %q", got, ran)
	}
}

// A run or bin with no answers has no latency: its cells are empty and
// its table shows "-", not the histogram's 0 ms.
func TestNoAnswersHaveNoLatency(t *testing.T) {
	res := fakeSkew()
	res.Runs[1].Answered, res.Runs[1].Failed, res.Runs[1].P50, res.Runs[1].P99, res.Runs[1].P999 = 0, 100, 0, 0, 0
	dir := t.TempDir()
	if _, err := WriteSkew(dir, res, "capyrun experiment skew -test"); err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "skew.csv"))
	if err != nil {
		t.Fatal(err)
	}
	want := res.Runs[1].Pattern + "," + res.Runs[1].Mode + ",,,,100,0,100,"
	if !strings.Contains(string(csv), want) {
		t.Errorf("skew.csv lacks %q:\n%s", want, csv)
	}
	series, err := os.ReadFile(filepath.Join(dir, "skew_series.csv"))
	if err != nil || !strings.Contains(string(series), ",2.000,0,,,,") {
		t.Errorf("skew_series.csv's empty bin has latencies (err %v):\n%s", err, series)
	}
	if s := SkewSummary(res); !regexp.MustCompile(res.Runs[1].Mode + `\s+-\s+-\s+-\s+0 `).MatchString(s) {
		t.Errorf("summary shows a latency for a run with no answers:\n%s", s)
	}
}

// The ratio's numerator is the kernel path's whatever order the run had
// the paths in: with -paths kernel,bypass it read 0.1x for a kernel ten
// times slower.
func TestKernelRatioFollowsThePathNames(t *testing.T) {
	paths := func(work time.Duration) []migrate.Migration {
		var ms []migrate.Migration
		for range 10 {
			var o, tg migrate.Record
			o.Work, tg.Work = work, work
			ms = append(ms, migrate.Migration{Origin: o, Target: tg})
		}
		return ms
	}
	res := &HostOverheadResult{Config: DefaultHostOverhead(), Start: time.Unix(1e9, 0)}
	res.Paths = append(res.Paths, *summarizePath("kernel", paths(100*time.Microsecond)), *summarizePath("bypass", paths(10*time.Microsecond)))
	dir := t.TempDir()
	if _, err := WriteHostOverhead(dir, res, "capyrun experiment fig4 -paths kernel,bypass"); err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(report), "10.0x the bypass path's; at p99 10.0x") {
		t.Errorf("report does not give the kernel 10x:\n%s", report)
	}
}

// The result's JSON is replaced whole, through a temporary file and a
// rename; a failed write leaves no temporary file behind.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	for _, want := range []string{"old", "new"} {
		if err := writeAtomic(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != want {
			t.Fatalf("the file holds %q, want %q", b, want)
		}
	}
	// A directory where the file should go: the rename fails (as root
	// too, where permissions would not).
	blocked := filepath.Join(dir, "blocked.json")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(blocked, []byte("cut")); err == nil || !strings.Contains(err.Error(), "blocked.json") {
		t.Fatalf("writing over a directory = %v, want an error naming it", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("%d entries in the directory, want r.json and blocked.json only: a temporary file was left", len(ents))
	}
}
