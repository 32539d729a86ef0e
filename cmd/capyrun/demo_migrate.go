package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/testbed"
)

// demoServers are the migration testbed's servers (testbed/migration.yaml).
var demoServers = []string{"s1", "s2", "s3"}

// demoControlTimeout bounds one control request of the demo's mover.
const demoControlTimeout = 10 * time.Second

// demoMigration downloads size bytes with the Linux kernel's curl from s1
// while the connection hops between the three servers every interval, then
// checks the sha256 and shows the per-phase times, the switch's directory
// counters and which server held the connection at the end.
func demoMigration(ctx context.Context, size int64, rate string, interval time.Duration, minHops int) error {
	fmt.Println("\n== 3. live TCP migration: curl downloads while its connection hops between three servers")
	if err := testbed.CheckTools("ip", "curl", "ping", "sha256sum"); err != nil {
		return err
	}
	topo := testbed.Migration()
	tb, err := topo.UpWith(ctx, testbed.Options{})
	if err != nil {
		return err
	}
	defer tearDown(tb)
	fmt.Printf("testbed %s up: client (Linux) -- capyrun switch (generated pipeline, AF_XDP) -- s1, s2, s3 (capygen stack, migration engine)\n", tb.Tag)

	out, err := tb.ExecContext(ctx, "client", "ping", "-q", "-c", "50", "-i", "0.01", "10.77.0.11")
	if err != nil {
		return fmt.Errorf("ping through the switch: %v\n%s", err, out)
	}
	rtt := regexp.MustCompile(`= ([0-9.]+)/([0-9.]+)/`).FindStringSubmatch(string(out))
	if rtt != nil {
		fmt.Printf("[client] $ ping -c 50 10.77.0.11   # through the switch: rtt min/avg %s/%s ms\n", rtt[1], rtt[2])
	}

	ctl := map[string]net.Conn{}
	for _, h := range demoServers {
		c, err := testbed.DialControl(tb.Tag, h)
		if err != nil {
			return err
		}
		defer c.Close()
		ctl[h] = c
	}

	url := fmt.Sprintf("http://10.77.0.11/bytes?n=%d", size)
	line := fmt.Sprintf("curl -sS --max-time 300 --limit-rate %s %s | sha256sum", rate, url)
	fmt.Printf("\n[client] $ %s\n  # meanwhile every %v: capyrun migrate -testbed %s -host sN -all, on each server\n", line, interval, tb.Tag)
	cmd, err := tb.Command(ctx, "client", "sh", "-c", line)
	if err != nil {
		return err
	}
	var cout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cout, &cout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var curlErr error
loop:
	for {
		select {
		case curlErr = <-done:
			break loop
		case <-ctx.Done():
			cmd.Process.Kill() //nolint:errcheck // our own child, by PID
			<-done
			return ctx.Err()
		case <-tick.C:
			for _, h := range demoServers {
				// A stuck server must not hang the demo past Ctrl-C.
				ctl[h].SetDeadline(time.Now().Add(demoControlTimeout)) //nolint:errcheck // a unix socket takes deadlines
				if _, err := migrate.Control(ctl[h], migrate.ControlRequest{Op: "migrate", Conn: "all"}); err != nil {
					return fmt.Errorf("%s: no answer to migrate -all within %v: %w", h, demoControlTimeout, err)
				}
			}
		}
	}
	elapsed := time.Since(start)
	fmt.Print(indent(cout.String()))
	if curlErr != nil {
		return fmt.Errorf("curl: %v", curlErr)
	}
	want := testbed.PayloadSHA256(size)
	if !strings.Contains(cout.String(), want) {
		return fmt.Errorf("download: sha256 differs from the server's %s", want)
	}
	fmt.Printf("  sha256 matches the server's: %s (%d MiB in %v)\n", want, size>>20, elapsed.Round(time.Millisecond))

	// Let the servers' last records and releases land, then collect.
	time.Sleep(300 * time.Millisecond)
	var recs []migrate.Record
	by := map[string][]migrate.Record{}
	moved := uint64(0)
	for _, h := range demoServers {
		rep, err := migrate.Control(ctl[h], migrate.ControlRequest{Op: "records"})
		if err != nil {
			return fmt.Errorf("%s: %w", h, err)
		}
		recs = append(recs, rep.Records...)
		by[h] = rep.Records
		st, err := migrate.Control(ctl[h], migrate.ControlRequest{Op: "stats"})
		if err != nil {
			return fmt.Errorf("%s: %w", h, err)
		}
		moved += st.Stats.Moved
		fmt.Printf("  %s: moved out %d, took in %d, stayed %d, aborted %d, retries %d, client segments held %d and replayed %d\n",
			h, st.Stats.Moved, st.Stats.Accepted, st.Stats.Stayed, st.Stats.Aborted, st.Stats.Retries, st.Stats.Held, st.Stats.Replayed)
	}
	fmt.Printf("\nthe connection hopped %d times during the download\n\n", moved)
	if err := printSummary(os.Stdout, recs, false); err != nil {
		return err
	}
	fmt.Printf("\nat the end the connection was held by %s\n", finalHolder(by))

	// The switch's counters: stopping it prints its last report.
	if p := tb.Proc("sw"); p != nil {
		rep := p.Stop(5 * time.Second)
		fmt.Println("\nthe switch's counters (its exit report):")
		for _, l := range strings.Split(rep, "\n") {
			t := strings.TrimSpace(l)
			if strings.HasPrefix(t, "pipeline") || strings.HasPrefix(t, "directory") || strings.HasPrefix(t, "drops") ||
				strings.HasPrefix(t, "min_workload") {
				fmt.Println("  " + t)
			}
		}
	}
	if moved < uint64(minHops) {
		return fmt.Errorf("the connection hopped only %d times, fewer than %d: the download was too fast for -migrate-every %v; lower it or the -rate", moved, minHops, interval)
	}
	return nil
}

// finalHolder names the server that restored the connection last (records
// by server), or s1 if it never moved.
func finalHolder(by map[string][]migrate.Record) string {
	holder, at := "", int64(0)
	for h, recs := range by {
		for _, r := range recs {
			if r.Role == migrate.RoleTarget && r.Result == "accepted" && r.At[migrate.PhaseRestored] > at {
				holder, at = h, r.At[migrate.PhaseRestored]
			}
		}
	}
	if holder == "" {
		return "s1 (10.77.0.11): it never moved"
	}
	i := slices.Index(demoServers, holder)
	return fmt.Sprintf("%s (10.77.0.%d), serving it under the client's view of 10.77.0.11", holder, 11+i)
}
