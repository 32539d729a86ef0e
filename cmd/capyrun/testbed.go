package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/testbed"
)

func init() {
	prog.Register("testbed", "bring the netns testbed up or down", runTestbed)
}

func runTestbed(args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return fmt.Errorf("want 'testbed up [-topology file] [-name tag]' or 'testbed down -name tag'")
	}
	fs := flag.NewFlagSet("capyrun testbed "+args[0], flag.ContinueOnError)
	name := fs.String("name", "", "the testbed `tag`: namespaces are capy-<tag>-<host> (up picks one when empty)")
	var topo *string
	var detach *bool
	if args[0] == "up" {
		topo = fs.String("topology", "", "topology `file` (default: the embedded testbed/default.yaml)")
		detach = fs.Bool("detach", false, "with hosts that run processes: return once they are ready and leave them running (down stops them); otherwise up stays until Ctrl-C, then takes everything down")
	}
	if err := cli.Parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if args[0] == "down" {
		if *name == "" {
			return fmt.Errorf("down needs -name tag (the tag 'testbed up' printed)")
		}
		if err := testbed.CheckTag(*name); err != nil {
			return err
		}
		nss, err := testbed.Namespaces(*name)
		if err != nil {
			return err
		}
		if err := testbed.DownTag(*name); err != nil {
			return err
		}
		if len(nss) == 0 {
			fmt.Printf("testbed %s: nothing to remove\n", *name)
		} else {
			fmt.Printf("testbed %s: removed %s\n", *name, strings.Join(nss, ", "))
		}
		printLastReports(testbed.RunDir(*name))
		return nil
	}
	return testbedUp(*topo, *name, *detach)
}

// printLastReports prints the final switch report of every process log
// in dir (left by up -detach; the processes wrote them when down stopped
// them), and says where the logs are.
func printLastReports(dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) == 0 {
		return
	}
	for _, l := range logs {
		// Only files the processes wrote, not a symlink someone left.
		if st, err := os.Lstat(l); err != nil || !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if i := strings.LastIndex(string(b), "switch report at "); i >= 0 {
			rep, _, _ := strings.Cut(string(b[i:]), "switch-report-json ")
			fmt.Printf("%s, last report:\n%s", strings.TrimSuffix(filepath.Base(l), ".log"), indent(rep))
		}
	}
	fmt.Printf("process logs: %s\n", dir)
}

func testbedUp(topoPath, tag string, detach bool) (err error) {
	topo := testbed.Default()
	if topoPath != "" {
		if topo, err = testbed.Load(topoPath); err != nil {
			return err
		}
	}
	// Ctrl-C during bring-up cancels it; Up then removes what it made.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if tag == "" {
		tag = testbed.NewTag()
	}
	// Before the tag goes into any path (testbed.RunDir).
	if err := testbed.CheckTag(tag); err != nil {
		return err
	}
	opts := testbed.Options{Tag: tag}
	var runs []testbed.Host
	for _, h := range topo.Hosts {
		if h.Run != "" {
			runs = append(runs, h)
		}
	}
	if len(runs) > 0 {
		// The processes write their own log files, so they can outlive
		// this command (-detach) and down can show the switch's report.
		// UpWith makes the directory, refusing one someone else made.
		opts.LogDir = testbed.RunDir(tag)
	}
	tb, err := topo.UpWith(ctx, opts)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted; everything created was removed")
		}
		return err
	}
	defer func() {
		// Printing cannot fail in a way worth leaving namespaces for, but
		// a panic here must not leave a half-described testbed behind.
		if p := recover(); p != nil {
			tb.Down()
			panic(p)
		}
	}()
	fmt.Printf("testbed %s is up:\n", tb.Tag)
	var server, client string
	for _, h := range topo.Hosts {
		ifs, err := tb.Interfaces(h.Name)
		if err != nil {
			tb.Down()
			return err
		}
		fmt.Printf("  %-8s %-7s %-6s namespace %s\n", h.Name, h.Role, h.Stack, tb.Namespace(h.Name))
		for _, ifc := range ifs {
			addr := "-"
			if ifc.Prefix.IsValid() {
				addr = ifc.Prefix.String()
			}
			owner := "kernel"
			switch {
			case h.Run == testbed.RunSwitch:
				owner = "capyrun switch"
			case h.Stack == testbed.StackBypass:
				owner = "capyrun serve"
			}
			fmt.Printf("           %-8s %-17s %-15s (to %s; address owned by %s)\n", ifc.Name, ifc.MAC, addr, ifc.Peer, owner)
			if h.Role == testbed.RoleServer && h.Stack == testbed.StackBypass && server == "" && ifc.Prefix.IsValid() {
				server = fmt.Sprintf("ip netns exec %s capyrun serve -addr %s -iface %s", tb.Namespace(h.Name), ifc.Prefix, ifc.Name)
				client = ifc.Prefix.Addr().String()
			}
		}
	}
	if len(runs) > 0 {
		return testbedRunning(ctx, tb, runs, detach)
	}
	fmt.Println("\nuse it:")
	if server != "" {
		fmt.Printf("  %s &\n", server)
		for _, h := range topo.Hosts {
			if h.Role == testbed.RoleClient {
				fmt.Printf("  ip netns exec %s curl -s http://%s/ping\n", tb.Namespace(h.Name), client)
				fmt.Printf("  ip netns exec %s ping -c 3 %s\n", tb.Namespace(h.Name), client)
				break
			}
		}
	}
	fmt.Printf("  ip netns exec %s <command>   # any host\n", tb.Namespace(topo.Hosts[0].Name))
	fmt.Printf("  capyrun testbed down -name %s\n", tb.Tag)
	return nil
}

// testbedRunning tells how to use a testbed whose hosts run processes,
// then either returns (detach) or waits for Ctrl-C, SIGTERM or a process
// that dies, and takes everything down, printing what each process said
// last (the switch's report).
func testbedRunning(ctx context.Context, tb *testbed.Testbed, runs []testbed.Host, detach bool) (err error) {
	fmt.Println("\nrunning:")
	var target string
	for _, h := range runs {
		p := tb.Proc(h.Name)
		fmt.Printf("  %-8s pid %-7d %s\n", h.Name, p.PID(), strings.Join(append([]string{"capyrun"}, p.Argv[1:]...), " "))
		if h.Run == testbed.RunServe && target == "" {
			for _, ifc := range tb.Topology.Interfaces(h.Name) {
				if ifc.Prefix.IsValid() {
					target = ifc.Prefix.Addr().String()
				}
			}
		}
	}
	fmt.Printf("  logs in %s\n\nuse it:\n", testbed.RunDir(tb.Tag))
	for _, h := range tb.Topology.Hosts {
		if h.Role == testbed.RoleClient && target != "" {
			fmt.Printf("  ip netns exec %s curl -s http://%s/ping\n", tb.Namespace(h.Name), target)
			fmt.Printf("  ip netns exec %s ping -c 3 %s\n", tb.Namespace(h.Name), target)
			break
		}
	}
	for _, h := range runs {
		if h.Run == testbed.RunSwitch {
			fmt.Printf("  kill -USR1 %d   # the switch prints its report to %s\n", tb.Proc(h.Name).PID(), tb.Proc(h.Name).LogPath())
		}
	}
	if detach {
		fmt.Printf("  capyrun testbed down -name %s\n", tb.Tag)
		return nil
	}
	fmt.Println("\nCtrl-C takes it all down.")
	defer func() {
		p := recover()
		derr := tb.Down()
		for _, h := range runs {
			fmt.Printf("\n== %s (%s) said:\n%s", h.Name, h.Run, indent(tb.Proc(h.Name).Output()))
		}
		if derr != nil {
			err = errors.Join(err, derr)
		} else {
			fmt.Printf("testbed %s removed\n", tb.Tag)
		}
		if p != nil {
			panic(p)
		}
	}()
	died := make(chan *testbed.Proc, len(runs))
	for _, h := range runs {
		go func(p *testbed.Proc) {
			<-p.Done()
			died <- p
		}(tb.Proc(h.Name))
	}
	select {
	case <-ctx.Done():
		return nil
	case p := <-died:
		return fmt.Errorf("%s on %s exited (%v); taking the testbed down", p.Argv[1], p.Host, p.Err())
	}
}
