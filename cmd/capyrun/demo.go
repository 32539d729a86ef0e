package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/capygen/capygen/runtime/app"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/cmd/internal/specload"
	"github.com/capygen/capygen/gen"
	"github.com/capygen/capygen/gen/genfile"
	"github.com/capygen/capygen/gen/plan"
	"github.com/capygen/capygen/testbed"
	"github.com/capygen/capygen/testbed/experiment"
)

func init() {
	prog.Register("demo", "regenerate for three switch budgets, serve curl from net/http on our stack, then move a live download between three servers", runDemo)
}

// demoBudgets are the specs `make demo` regenerates: the authors' system
// and two other switch budgets, plus one that does not fit, to show the
// refusal.
var demoBudgets = []struct {
	title string
	sets  []string
}{
	{"the authors' system: Tofino-1, 2 levels x 16 bits", nil},
	// Two levels: a third needs three more stages than a Tofino-1 has.
	{"a small budget: Tofino-1, 2 levels x 14 bits in 8% of SRAM", []string{
		"directory.index_bits=14", "budget.sram=8%",
	}},
	// 15 bits: a Tofino-2 register spans at most 17 SRAM blocks (measured).
	{"a large budget: Tofino-2, 4 levels x 15 bits (32-bit CRCs) in 60% of SRAM over 20 stages", []string{
		"target=tofino2", "budget.sram=60%", "budget.stages=20", "directory.index_bits=15",
		"directory.levels.0.hash={name: crc32c, width: 32, poly: 0x1EDC6F41, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}",
		"directory.levels.1.hash={name: crc32_bzip2, width: 32, poly: 0x04C11DB7, reversed: false, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}",
		"directory.levels.2={hash: {name: crc32, width: 32, poly: 0x04C11DB7, reversed: true, init: 0xFFFFFFFF, xor_out: 0xFFFFFFFF}}",
		"directory.levels.3={hash: {name: crc32_mpeg2, width: 32, poly: 0x04C11DB7, reversed: false, init: 0xFFFFFFFF, xor_out: 0}}",
	}},
	{"over budget (refused): Tofino-1, 2 levels x 16 bits in 5% of SRAM", []string{
		"budget.sram=5%",
	}},
}

func runDemo(args []string) error {
	fs := flag.NewFlagSet("capyrun demo", flag.ContinueOnError)
	specPath := fs.String("spec", "spec/capybara.yaml", "the spec `file`")
	size := fs.Int64("size", 10<<20, "bytes curl downloads and uploads")
	skipTestbed := fs.Bool("no-testbed", false, "only the generator part (the testbed needs root)")
	migSize := fs.Int64("migrate-size", 256<<20, "bytes of the download that hops between servers")
	migRate := fs.String("rate", "32M", "curl's --limit-rate for that download, so it lasts long enough to hop")
	migEvery := fs.Duration("migrate-every", 40*time.Millisecond, "how often every server is asked to move its connections")
	minHops := fs.Int("min-hops", 50, "fail unless the connection hopped at least this many times")
	skewOut := fs.String("skew-out", "results/demo-skew", "the `directory` of the demo's skew experiment (plots, CSV, report)")
	skewFor := fs.Duration("skew-duration", 8*time.Second, "each skew run's length")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	// Every flag is checked here: the later steps come after minutes of
	// the earlier ones.
	skewCfg := demoSkewConfig(*skewFor)
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case *size <= 0 || *size > app.MaxBytes:
		return fmt.Errorf("-size %d: want 1 to %d bytes", *size, int64(app.MaxBytes))
	case *migSize <= 0 || *migSize > app.MaxBytes:
		return fmt.Errorf("-migrate-size %d: want 1 to %d bytes", *migSize, int64(app.MaxBytes))
	case !curlRate.MatchString(*migRate):
		return fmt.Errorf("-rate %q: want curl's --limit-rate form, a number with an optional k, m, g, t or p suffix (32M)", *migRate)
	case *migEvery <= 0:
		return fmt.Errorf("-migrate-every %v: want a positive interval (40ms)", *migEvery)
	case *minHops < 0:
		return fmt.Errorf("-min-hops %d: want 0 or more", *minHops)
	}
	if err := skewCfg.Validate(); err != nil {
		return fmt.Errorf("-skew-duration %v: %w", *skewFor, err)
	}
	if err := demoGenerate(*specPath); err != nil {
		return err
	}
	if *skipTestbed {
		return nil
	}
	if err := demoTestbed(*size); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demoMigration(ctx, *migSize, *migRate, *migEvery, *minHops); err != nil {
		return err
	}
	return demoSkew(ctx, *skewOut, skewCfg)
}

// curlRate is curl's --limit-rate argument (it goes into a shell line).
var curlRate = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?[kKmMgGtTpP]?$`)

// demoSkewConfig is the demo's skew experiment, with runs of d.
func demoSkewConfig(d time.Duration) experiment.SkewConfig {
	cfg := experiment.DefaultSkew()
	cfg.Patterns, cfg.Modes = []string{"hot"}, []string{"off", "threshold"}
	cfg.Duration, cfg.Warmup = d, min(2*time.Second, d/4)
	return cfg
}

// demoSkew is the point of it all: under a hot-server skew, the p99 with
// migration off and with the threshold policy, and the plots.
func demoSkew(ctx context.Context, out string, cfg experiment.SkewConfig) error {
	fmt.Println("\n== 4. migration pays off: every connection lands on s1; p99 without migration and with the threshold policy")
	fmt.Printf("   capyrun experiment skew -patterns hot -modes off,threshold -duration %v -warmup %v -out %s\n", cfg.Duration, cfg.Warmup, out)
	fmt.Printf("   (%d connections, %.0f requests/s open-loop; each server works 1 request at a time, %v each: s1 alone gets %.0f%% of its capacity)\n",
		cfg.Conns, cfg.Rate, cfg.Service, 100*cfg.Rate*cfg.Service.Seconds()/float64(cfg.Workers))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	cfg.Progress = progress()
	res, runErr := experiment.Skew(ctx, cfg)
	fmt.Fprintln(os.Stderr)
	if res == nil || res.Empty() {
		return runErr
	}
	// What was measured is written before any verdict on it: a run with a
	// failed request, or one stopped early, is kept to look at.
	fmt.Print(experiment.SkewSummary(res))
	command := fmt.Sprintf("capyrun experiment skew -patterns hot -modes off,threshold -duration %v -warmup %v", cfg.Duration, cfg.Warmup)
	if runErr != nil {
		command += fmt.Sprintf(" (stopped early: %v)", runErr)
	}
	files, err := experiment.WriteSkew(out, res, command)
	if err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Printf("plots and report in %s/ (%s)\n", out, strings.Join(files, ", "))
	if runErr != nil {
		return runErr
	}
	for _, r := range res.Runs {
		if r.Failed+r.Dropped > 0 {
			return fmt.Errorf("skew %s: %d requests failed, %d dropped: %q (the runs are in %s)", r.Mode, r.Failed, r.Dropped, r.Errors, out)
		}
	}
	if ratio, _, ok := res.Headline(); !ok || ratio < 2 {
		return fmt.Errorf("the threshold policy did not cut the hot server's p99 (ratio %.1f)", ratio)
	}
	return nil
}

func demoGenerate(specPath string) error {
	fmt.Println("== 1. one spec, every artifact, three switch budgets")
	for i, b := range demoBudgets {
		fmt.Printf("\n-- %s\n", b.title)
		if len(b.sets) > 0 {
			fmt.Printf("   capygen generate -spec %s -set %s\n", specPath, strings.Join(b.sets, " -set "))
		}
		s, err := specload.Load(specPath, b.sets)
		if err != nil {
			return err
		}
		u, err := plan.Estimate(s)
		if err != nil {
			return err
		}
		plan.WriteUsage(os.Stdout, s, u)
		files, err := gen.Generate(s, genfile.Options{Version: gen.Version})
		if err != nil {
			if errors.Is(err, plan.ErrOverBudget) {
				fmt.Printf("refused as expected:\n  %v\n", err)
				continue
			}
			return err
		}
		dir, err := os.MkdirTemp("", fmt.Sprintf("capygen-demo-%d-", i))
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if _, err := gen.Write(dir, files); err != nil {
			return err
		}
		var total int
		for _, n := range files.Names() {
			total += len(files[n])
		}
		fmt.Printf("generated %d files (%d KiB): %s\n", len(files), total>>10, strings.Join(files.Names(), " "))
	}
	return nil
}

func demoTestbed(size int64) error {
	fmt.Println("\n== 2. net/http on capygen's userspace TCP/IP stack (AF_XDP) serving the Linux kernel's curl")
	if os.Geteuid() != 0 {
		return fmt.Errorf("the testbed creates network namespaces and attaches XDP, which needs root; run 'sudo make demo' (or 'capyrun demo -no-testbed' for the generator part)")
	}
	if err := testbed.CheckTools("ip", "curl", "ping"); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	topo := testbed.Default()
	tb, err := topo.Up(ctx)
	if err != nil {
		return err
	}
	// Tear-down runs on every path out, Ctrl-C included (ctx above).
	defer tearDown(tb)
	var client, server string
	var serverPrefix, serverIface string
	for _, h := range topo.Hosts {
		switch {
		case h.Role == testbed.RoleClient && client == "":
			client = h.Name
		case h.Role == testbed.RoleServer && h.Stack == testbed.StackBypass && server == "":
			ifs, err := tb.Interfaces(h.Name)
			if err != nil {
				return err
			}
			for _, ifc := range ifs {
				if ifc.Prefix.IsValid() {
					server, serverPrefix, serverIface = h.Name, ifc.Prefix.String(), ifc.Name
					break
				}
			}
		}
	}
	if client == "" || server == "" {
		return fmt.Errorf("the default topology needs a client host and a bypass server host with an address")
	}
	addr := strings.Split(serverPrefix, "/")[0]
	fmt.Printf("testbed %s up: %s (Linux kernel) <-> %s (capygen stack on %s, %s)\n", tb.Tag, client, server, serverIface, serverPrefix)

	proc, err := tb.Start(server, self, "serve", "-addr", serverPrefix, "-iface", serverIface, "-size", fmt.Sprint(size))
	if err != nil {
		return err
	}
	if _, err := proc.WaitOutput(regexp.MustCompile(`(?m)^ready$`), 15*time.Second); err != nil {
		return fmt.Errorf("capyrun serve did not start: %v\n%s", err, proc.Output())
	}
	defer func() { fmt.Printf("\ncapyrun serve's exit report:\n%s", indent(proc.Stop(5*time.Second))) }()
	for _, l := range strings.Split(proc.Output(), "\n") {
		if strings.Contains(l, "AF_XDP") || strings.HasPrefix(l, "serving") {
			fmt.Println("  " + l)
		}
	}

	steps := []struct {
		what string
		argv []string
	}{
		{"ping is answered by our ICMP", []string{"ping", "-c", "3", "-i", "0.2", "-W", "2", addr}},
		{"GET /ping", []string{"curl", "-sS", "--max-time", "10", "http://" + addr + "/ping"}},
		{fmt.Sprintf("download %d bytes, sha256 checked against the server's", size), []string{"sh", "-c",
			fmt.Sprintf("curl -sS --max-time 60 http://%s/bytes?n=%d | sha256sum", addr, size)}},
		{fmt.Sprintf("upload %d bytes; the server answers their sha256", size), []string{"sh", "-c",
			// The trap removes the file however the shell ends short of SIGKILL.
			fmt.Sprintf(`f=/tmp/capygen-demo-up.$$; trap 'rm -f "$f"' EXIT; trap 'exit 1' INT TERM HUP; head -c %d /dev/urandom > "$f" && sha256sum < "$f" && curl -sS --max-time 60 --data-binary @"$f" http://%s/upload; echo`, size, addr)}},
	}
	want := testbed.PayloadSHA256(size)
	for _, st := range steps {
		shown := strings.Join(st.argv, " ")
		if st.argv[0] == "sh" {
			shown = st.argv[2]
		}
		fmt.Printf("\n[%s] $ %s\n  # %s\n", client, shown, st.what)
		out, err := tb.ExecContext(ctx, client, st.argv...)
		fmt.Print(indent(string(out)))
		if err != nil {
			return fmt.Errorf("%s: %v", st.what, err)
		}
		if strings.HasPrefix(st.what, "download") && !strings.Contains(string(out), want) {
			return fmt.Errorf("download: sha256 differs from the server's %s", want)
		}
		if strings.HasPrefix(st.what, "upload") {
			sums := regexp.MustCompile(`[0-9a-f]{64}`).FindAllString(string(out), -1)
			if len(sums) != 2 || sums[0] != sums[1] {
				return fmt.Errorf("upload: client and server sha256 differ: %v", sums)
			}
			fmt.Println("  sha256 equal on both sides")
		}
	}
	if want != "" {
		fmt.Printf("  download sha256 %s matches the server's\n", want)
	}
	return nil
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

// tearDown removes a demo's testbed and says so; the demo defers it right
// after Up, so every path out removes the namespaces, Ctrl-C included.
func tearDown(tb *testbed.Testbed) {
	// The run directory goes too: the servers' records there, if any, were
	// read over their control sockets.
	if err := tb.Discard(); err != nil {
		fmt.Fprintf(os.Stderr, "capyrun demo: tear-down: %v\n", err)
		return
	}
	fmt.Printf("testbed %s removed\n", tb.Tag)
}
