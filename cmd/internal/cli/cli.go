// Package cli is the subcommand dispatch that capygen and capyrun share.
// Each subcommand lives in its own file and registers itself in init, so
// a binary grows without touching its main.go.
//
// The two binaries are one tool split at a build boundary: capygen (the
// generator) must not link the runtime, so each binary knows the other's
// commands by name only, and running one on the wrong binary says which
// binary has it.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// The commands of each binary, sorted, so that either can point at the other;
// each binary's tests check that it registers exactly its list.
var (
	CapygenCommands = []string{"deploy", "diff", "experiment", "generate", "plan", "version", "vet"}
	CapyrunCommands = []string{"demo", "experiment", "migrate", "serve", "switch", "testbed", "version"}
)

// ExitError carries an exit status without printing anything more (diff
// uses it: drift is exit 1, already reported).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Parse parses a subcommand's flags. The flag package has printed what
// was wrong and the usage already: -h is exit 0, any other mistake a
// usage error (exit 2), and neither is printed again.
func Parse(fs *flag.FlagSet, args []string) error {
	switch err := fs.Parse(args); {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return ExitError{Code: 0}
	default:
		return ExitError{Code: 2}
	}
}

// ParseNoArgs is Parse for a command that takes only flags: an argument
// left over (a spec path without -spec) is a usage error, not ignored.
func ParseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Sprintf("unexpected arguments %q: this command takes only flags (see -h)", fs.Args())}
	}
	return nil
}

// UsageError is a mistake in a command's arguments: printed, exit 2.
type UsageError struct{ Msg string }

func (e UsageError) Error() string { return e.Msg }

// Program is one binary's set of subcommands.
type Program struct {
	// Name is the binary's name, as users type it.
	Name string
	// Sibling is the other binary and SiblingCommands its commands:
	// running one of them here names the binary that has it. Moved says
	// they used to be this binary's ("moved to capyrun").
	Sibling         string
	SiblingCommands []string
	Moved           bool

	commands map[string]command
}

type command struct {
	summary string
	run     func(args []string) error
}

// Register adds the subcommand name; run gets the arguments after it.
func (p *Program) Register(name, summary string, run func(args []string) error) {
	if p.commands == nil {
		p.commands = map[string]command{}
	}
	p.commands[name] = command{summary: summary, run: run}
}

// Names lists the registered subcommands, sorted.
func (p *Program) Names() []string {
	names := make([]string, 0, len(p.commands))
	for n := range p.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (p *Program) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", p.Name)
	for _, n := range p.Names() {
		fmt.Fprintf(w, "  %-10s %s\n", n, p.commands[n].summary)
	}
	if p.Sibling != "" {
		fmt.Fprintf(w, "\n%s has %s.\n", p.Sibling, strings.Join(p.elsewhere(), ", "))
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags.\n", p.Name)
}

// elsewhere lists the sibling's commands that this binary does not have.
func (p *Program) elsewhere() []string {
	var out []string
	for _, n := range p.SiblingCommands {
		if _, ok := p.commands[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// Main runs the subcommand named by os.Args[1] and exits with its status.
func (p *Program) Main() {
	os.Exit(p.Run(os.Args[1:], os.Stderr))
}

// Run runs the subcommand args[0] with the rest of args, prints its error
// to stderr and returns the exit status: 0, 1 for a failure, 2 for a
// usage error.
func (p *Program) Run(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		p.usage(stderr)
		return 2
	}
	name := args[0]
	c, ok := p.commands[name]
	if !ok {
		if slices.Contains(p.elsewhere(), name) {
			where := "is a " + p.Sibling + " command"
			if p.Moved {
				where = "moved to " + p.Sibling
			}
			fmt.Fprintf(stderr, "%s %s: %s; run `go run ./cmd/%s %s ...`\n", p.Name, name, where, p.Sibling, name)
			return 2
		}
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", p.Name, name)
		p.usage(stderr)
		return 2
	}
	err := c.run(args[1:])
	if err == nil {
		return 0
	}
	if e, ok := err.(ExitError); ok {
		return e.Code
	}
	if e, ok := err.(UsageError); ok {
		fmt.Fprintf(stderr, "%s %s: %s\n", p.Name, name, e.Msg)
		return 2
	}
	// Diagnostics lists (file:line:col per line) print as they are, so
	// every line starts with its position; one-line errors get the command.
	if msg := err.Error(); strings.Contains(msg, "\n") && strings.Contains(strings.SplitN(msg, "\n", 2)[0], ":") {
		fmt.Fprintln(stderr, msg)
	} else {
		fmt.Fprintf(stderr, "%s %s: %v\n", p.Name, name, err)
	}
	return 1
}
