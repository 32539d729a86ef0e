// Command capygen generates the TCPMig codecs, migration state machines,
// switch pipeline model and Tofino P4 program from one spec, and runs the
// testbed that deploys them.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// command is one subcommand. Each lives in its own file and registers
// itself in init, so the CLI grows without touching this file.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// exitError carries an exit status without printing anything more (diff
// uses it: drift is exit 1, already reported).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func usage() {
	fmt.Fprintln(os.Stderr, "usage: capygen <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'capygen <command> -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "capygen: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := c.run(os.Args[2:]); err != nil {
		if e, ok := err.(exitError); ok {
			os.Exit(e.code)
		}
		// Diagnostics lists (file:line:col per line) print as they are, so
		// every line starts with its position; one-line errors get the command.
		if msg := err.Error(); strings.Contains(msg, "\n") && strings.Contains(strings.SplitN(msg, "\n", 2)[0], ":") {
			fmt.Fprintln(os.Stderr, msg)
		} else {
			fmt.Fprintf(os.Stderr, "capygen %s: %v\n", os.Args[1], err)
		}
		os.Exit(1)
	}
}
