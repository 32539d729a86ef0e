package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/capygen/capygen/testbed"
)

func init() {
	register("testbed", "bring the netns testbed up or down", runTestbed)
}

func runTestbed(args []string) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return fmt.Errorf("want 'testbed up [-topology file] [-name tag]' or 'testbed down -name tag'")
	}
	fs := flag.NewFlagSet("capygen testbed "+args[0], flag.ContinueOnError)
	name := fs.String("name", "", "the testbed `tag`: namespaces are capy-<tag>-<host> (up picks one when empty)")
	var topo *string
	if args[0] == "up" {
		topo = fs.String("topology", "", "topology `file` (default: the embedded testbed/default.yaml)")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if args[0] == "down" {
		if *name == "" {
			return fmt.Errorf("down needs -name tag (the tag 'testbed up' printed)")
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
		return nil
	}
	return testbedUp(*topo, *name)
}

func testbedUp(topoPath, tag string) (err error) {
	topo := testbed.Default()
	if topoPath != "" {
		if topo, err = testbed.Load(topoPath); err != nil {
			return err
		}
	}
	// Ctrl-C during bring-up cancels it; Up then removes what it made.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var tb *testbed.Testbed
	if tag == "" {
		tb, err = topo.Up(ctx)
	} else {
		tb, err = topo.UpTagged(ctx, tag)
	}
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
			if h.Stack == testbed.StackBypass {
				owner = "capygen serve"
			}
			fmt.Printf("           %-8s %-17s %-15s (to %s; address owned by %s)\n", ifc.Name, ifc.MAC, addr, ifc.Peer, owner)
			if h.Role == testbed.RoleServer && h.Stack == testbed.StackBypass && server == "" && ifc.Prefix.IsValid() {
				server = fmt.Sprintf("ip netns exec %s capygen serve -addr %s -iface %s", tb.Namespace(h.Name), ifc.Prefix, ifc.Name)
				client = ifc.Prefix.Addr().String()
			}
		}
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
	fmt.Printf("  capygen testbed down -name %s\n", tb.Tag)
	return nil
}
