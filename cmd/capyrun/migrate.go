package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed"
)

func init() {
	prog.Register("migrate", "move live connections of a running capyrun serve, or summarize migration records", runMigrate)
}

type migrateFlags struct {
	control, tag, host string
	conn               string
	all, random, wait  bool
	every, dur         time.Duration
	max                int
	records, summary   bool
	jsonOut            bool
	timeout            time.Duration
}

// request sends one request on c and reads its reply, within f.timeout:
// a server that stopped answering (stopped, or its event loop stuck)
// fails the command instead of hanging it.
func (f migrateFlags) request(c net.Conn, sock string, req migrate.ControlRequest) (migrate.ControlReply, error) {
	c.SetDeadline(time.Now().Add(f.timeout)) //nolint:errcheck // a unix socket takes deadlines
	rep, err := migrate.Control(c, req)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return rep, fmt.Errorf("control socket %s: no reply to %q within -timeout %v (is the server stuck? give a longer -timeout if it is only slow)", sock, req.Op, f.timeout)
	}
	return rep, err
}

func runMigrate(args []string) error {
	fs := flag.NewFlagSet("capyrun migrate", flag.ContinueOnError)
	var f migrateFlags
	fs.StringVar(&f.control, "control", "", "the server's control `socket` (capyrun serve -control)")
	fs.StringVar(&f.tag, "testbed", "", "the testbed `tag`; with -host, finds the server's control socket")
	fs.StringVar(&f.host, "host", "", "the server `host` of the testbed (e.g. s1)")
	fs.StringVar(&f.conn, "conn", "", "move the connection from this client `ip:port`")
	fs.BoolVar(&f.all, "all", false, "move every migratable connection")
	fs.BoolVar(&f.random, "random", false, "move one migratable connection, chosen at random")
	fs.BoolVar(&f.wait, "wait", false, "with -conn: wait for the migration's outcome")
	fs.DurationVar(&f.every, "every", 0, "repeat the request every `interval` (with -all or -random)")
	fs.DurationVar(&f.dur, "for", 10*time.Second, "with -every: stop after this `duration`")
	fs.IntVar(&f.max, "max", 1000000, "with -every: stop after this many `requests`")
	fs.BoolVar(&f.records, "records", false, "print the server's migration records (JSON lines)")
	fs.BoolVar(&f.summary, "summary", false, "summarize the records in the files given as arguments (or the server's) as per-phase times")
	fs.BoolVar(&f.jsonOut, "json", false, "with -summary: print JSON")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on a server that does not answer a request (with -wait, its migration's outcome) within this `duration`")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := checkMigrateFlags(fs, f); err != nil {
		return err
	}
	if f.summary && fs.NArg() > 0 {
		recs, err := readRecordFiles(fs.Args())
		if err != nil {
			return err
		}
		return printSummary(os.Stdout, recs, f.jsonOut)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (files are for -summary)", fs.Args())
	}
	if f.timeout <= 0 {
		return fmt.Errorf("-timeout %v: want a positive duration", f.timeout)
	}
	sock, err := f.socket()
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("unix", sock, f.timeout)
	if err != nil {
		return fmt.Errorf("control socket %s: %w (is capyrun serve running with -control, or -switch in a testbed?)", sock, err)
	}
	defer c.Close()
	switch {
	case f.records || f.summary:
		rep, err := f.request(c, sock, migrate.ControlRequest{Op: "records"})
		if err != nil {
			return err
		}
		if f.summary {
			return printSummary(os.Stdout, rep.Records, f.jsonOut)
		}
		enc := json.NewEncoder(os.Stdout)
		for _, r := range rep.Records {
			enc.Encode(r) //nolint:errcheck // stdout
		}
		return nil
	case f.conn != "":
		rep, err := f.request(c, sock, migrate.ControlRequest{Op: "migrate", Conn: f.conn, Wait: f.wait})
		if err != nil {
			return err
		}
		fmt.Printf("requested %s", f.conn)
		if rep.Result != "" {
			fmt.Printf(": %s", rep.Result)
		}
		if rep.Reason != "" {
			fmt.Printf(" (%s)", rep.Reason)
		}
		fmt.Println()
		return nil
	case f.all || f.random:
		if f.all && f.random {
			return fmt.Errorf("-all and -random: choose one")
		}
		which := "all"
		if f.random {
			which = "random"
		}
		return repeatMigrate(c, sock, which, f)
	}
	return fmt.Errorf("say what to do: -conn ip:port, -all, -random, -records or -summary")
}

// checkMigrateFlags refuses two actions at once, and a modifier its
// action does not take: either was silently dropped, and -conn X -records
// moved nothing.
func checkMigrateFlags(fs *flag.FlagSet, f migrateFlags) error {
	var actions []string
	for _, a := range []struct {
		name string
		on   bool
	}{{"-conn", f.conn != ""}, {"-all", f.all}, {"-random", f.random}, {"-records", f.records}, {"-summary", f.summary}} {
		if a.on {
			actions = append(actions, a.name)
		}
	}
	if len(actions) > 1 {
		return fmt.Errorf("%s: choose one", strings.Join(actions, " and "))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case f.wait && f.conn == "":
		return fmt.Errorf("-wait waits for one migration's outcome: only with -conn")
	case set["every"] && !f.all && !f.random:
		return fmt.Errorf("-every repeats -all or -random: add one of them")
	case f.every < 0:
		return fmt.Errorf("-every %v: want a positive interval", f.every)
	case (set["for"] || set["max"]) && f.every == 0:
		return fmt.Errorf("-for and -max bound -every's repeats: add -every")
	case f.jsonOut && !f.summary:
		return fmt.Errorf("-json prints -summary as JSON: add -summary")
	}
	return nil
}

func (f migrateFlags) socket() (string, error) {
	switch {
	case f.control != "" && f.tag != "":
		return "", fmt.Errorf("-control and -testbed: give one")
	case f.control != "":
		return f.control, nil
	case f.tag != "" && f.host != "":
		return testbed.ControlSocket(f.tag, f.host), nil
	case f.tag != "":
		return "", fmt.Errorf("-testbed %s needs -host (the server, e.g. s1)", f.tag)
	}
	return "", fmt.Errorf("which server? give -control socket, or -testbed tag -host name")
}

// repeatMigrate sends the request once, or every f.every until f.dur or
// f.max requests or Ctrl-C.
func repeatMigrate(c net.Conn, sock, which string, f migrateFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.every < 0 || f.dur < 0 || f.max < 1 {
		return fmt.Errorf("-every %v, -for %v, -max %d: want non-negative durations and at least one request", f.every, f.dur, f.max)
	}
	deadline := time.Now().Add(f.dur)
	total, n := 0, 0
	for {
		rep, err := f.request(c, sock, migrate.ControlRequest{Op: "migrate", Conn: which})
		if err != nil {
			return err
		}
		total += rep.Requested
		n++
		if f.every == 0 || n >= f.max || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(f.every):
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Printf("%d requests, %d migrations requested\n", n, total)
	return nil
}

func readRecordFiles(paths []string) ([]migrate.Record, error) {
	var recs []migrate.Record
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var r migrate.Record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s:%d: not a migration record: %v", p, line, err)
			}
			recs = append(recs, r)
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return recs, nil
}

// printSummary pairs origin and target records and prints the per-phase
// table: p50, p99, mean and max of each step and of the whole.
func printSummary(w io.Writer, recs []migrate.Record, asJSON bool) error {
	ms := migrate.Pair(recs)
	s := migrate.SummarizeMigrations(ms)
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	origins, stayed, aborted := 0, 0, 0
	for _, r := range recs {
		if r.Role != migrate.RoleOrigin {
			continue
		}
		origins++
		switch r.Result {
		case migrate.ResultStayed.String():
			stayed++
		case migrate.ResultAborted.String():
			aborted++
		}
	}
	fmt.Fprintf(w, "%d migrations started, %d moved (paired with their target's record), %d stayed, %d aborted\n",
		origins, s.Migrations, stayed, aborted)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tp50\tp99\tmean\tmax\t")
	row := func(name string, d migrate.Dist) {
		fmt.Fprintf(tw, "%s\t%v\t%v\t%v\t%v\t\n", name, us(d.P50), us(d.P99), us(d.Mean), us(d.Max))
	}
	for _, p := range s.Phases {
		row(p.From.String()+" → "+p.To.String(), p.Dist)
	}
	row("host overhead (origin+target work)", s.HostOverhead)
	row("  origin work", s.OriginWork)
	row("  target work", s.TargetWork)
	for _, st := range s.Steps {
		row(fmt.Sprintf("    %s step %s", st.Role, st.Name), st.Dist)
	}
	row("blackout (frozen → replayed)", s.Blackout)
	row("end to end (prepare → state ack)", s.EndToEnd)
	return tw.Flush()
}

// us prints a duration in microseconds with one decimal.
func us(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/1e3)
}
