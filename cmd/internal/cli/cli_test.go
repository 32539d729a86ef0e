package cli

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func testProgram(got *[]string) *Program {
	p := &Program{Name: "gen", Sibling: "run", SiblingCommands: []string{"serve", "version"}, Moved: true}
	p.Register("version", "print the version", func(args []string) error { *got = args; return nil })
	p.Register("diff", "show drift", func([]string) error { return ExitError{Code: 1} })
	p.Register("fail", "fail", func([]string) error { return errors.New("no spec") })
	p.Register("diags", "fail with diagnostics", func([]string) error {
		return errors.New("x.yaml:1:1: a: bad; fix it\nx.yaml:2:1: b: bad; fix it")
	})
	return p
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string // a prefix
	}{
		{[]string{"version", "-x"}, 0, ""},
		{[]string{"diff"}, 1, ""},
		{[]string{"fail"}, 1, "gen fail: no spec\n"},
		{[]string{"diags"}, 1, "x.yaml:1:1: a: bad; fix it\nx.yaml:2:1: b: bad; fix it\n"},
		{[]string{"serve", "-addr", "x"}, 2, "gen serve: moved to run; run `go run ./cmd/run serve ...`\n"},
		{[]string{"nope"}, 2, "gen: unknown command \"nope\"\n\nusage: gen <command> [flags]\n"},
		{nil, 2, "usage: gen <command> [flags]\n\ncommands:\n  diags      fail with diagnostics\n  diff       show drift\n  fail       fail\n  version    print the version\n\nrun has serve.\n"},
	} {
		var got []string
		var stderr bytes.Buffer
		code := testProgram(&got).Run(tc.args, &stderr)
		if code != tc.code || !strings.HasPrefix(stderr.String(), tc.stderr) || (tc.stderr == "" && stderr.Len() > 0) {
			t.Errorf("Run(%q) = exit %d, stderr %q, want exit %d, stderr starting %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	var got []string
	testProgram(&got).Run([]string{"version", "-x", "y"}, &bytes.Buffer{})
	if strings.Join(got, " ") != "-x y" {
		t.Errorf("version got args %q, want the ones after its name", got)
	}
}

// Without Moved, the sibling's commands are named as its own.
func TestSiblingCommand(t *testing.T) {
	p := &Program{Name: "run", Sibling: "gen", SiblingCommands: []string{"generate"}}
	var stderr bytes.Buffer
	if code := p.Run([]string{"generate"}, &stderr); code != 2 || stderr.String() != "run generate: is a gen command; run `go run ./cmd/gen generate ...`\n" {
		t.Errorf("Run(generate) = exit %d, %q", code, stderr.String())
	}
}

// A subcommand's -h is exit 0, and a bad flag exit 2, each printed once
// (by the flag package) and not again as the command's error.
func TestParseExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		once string
	}{
		{[]string{"flags", "-h"}, 0, "Usage of flags"},
		{[]string{"flags", "-bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"flags", "-n", "x"}, 2, `invalid value "x" for flag -n`},
		{[]string{"flags", "-n", "3"}, 0, ""},
	} {
		var stderr bytes.Buffer
		p := &Program{Name: "gen"}
		p.Register("flags", "parse flags", func(args []string) error {
			fs := flag.NewFlagSet("flags", flag.ContinueOnError)
			fs.SetOutput(&stderr)
			fs.Int("n", 0, "a number")
			return Parse(fs, args)
		})
		code := p.Run(tc.args, &stderr)
		out := stderr.String()
		if code != tc.code || tc.once != "" && strings.Count(out, tc.once) != 1 || strings.Contains(out, "help requested") || tc.once == "" && out != "" {
			t.Errorf("Run(%q) = exit %d, stderr %q; want exit %d, %q once", tc.args, code, out, tc.code, tc.once)
		}
	}
}
