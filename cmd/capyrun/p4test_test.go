package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/capygen/capygen/cmd/internal/specload"
	"github.com/capygen/capygen/gen"
	"github.com/capygen/capygen/gen/genfile"
)

// p4diagRE matches a p4c diagnostic line: [--Wwarn=...] or [--Werror=...],
// or a bare "error:"/"warning:".
var p4diagRE = regexp.MustCompile(`(?mi)\[--W|\berror\b|\bwarning\b`)

// The P4 of the default spec and of the demo's other budgets passes p4c's
// front and mid end (p4test) for its target, without a warning. p4c is
// not a Debian package: build p4test by hand from p4lang/p4c (issue 9) and point
// CAPYGEN_P4TEST at it and CAPYGEN_P4INCLUDE at the directories (a list,
// like PATH) with tna.p4 (p4c's backends/tofino/bf-p4c/p4include) and,
// when p4test runs from its build tree, core.p4 (p4c's p4include).
// Without them the test says so and skips.
func TestP4testAcceptsTheDemoBudgets(t *testing.T) {
	p4test, inc := os.Getenv("CAPYGEN_P4TEST"), os.Getenv("CAPYGEN_P4INCLUDE")
	if p4test == "" {
		if p, err := exec.LookPath("p4test"); err == nil {
			p4test = p
		}
	}
	if p4test == "" || inc == "" {
		t.Skip("no p4c here: set CAPYGEN_P4TEST to a p4test binary and CAPYGEN_P4INCLUDE to p4c's backends/tofino/bf-p4c/p4include:p4include to check the generated P4")
	}
	// A list, like PATH: p4c's own p4include (core.p4) too, when p4test
	// runs from its build tree and does not find it by itself.
	var incArgs []string
	found := false
	for _, d := range filepath.SplitList(inc) {
		incArgs = append(incArgs, "-I", d)
		if _, err := os.Stat(filepath.Join(d, "tna.p4")); err == nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("CAPYGEN_P4INCLUDE=%s has no directory with tna.p4 (p4c's backends/tofino/bf-p4c/p4include)", inc)
	}
	spec := filepath.Join("..", "..", "spec", "capybara.yaml")
	for _, b := range demoBudgets {
		s, err := specload.Load(spec, b.sets)
		if err != nil {
			t.Fatalf("%s: %v", b.title, err)
		}
		files, err := gen.Generate(s, genfile.Options{})
		if err != nil {
			// The over-budget example is refused before any P4 exists.
			t.Logf("%s: not generated (%v)", b.title, firstLine(err))
			continue
		}
		dir := t.TempDir()
		if _, err := gen.Write(dir, files); err != nil {
			t.Fatal(err)
		}
		prog := filepath.Join(dir, "p4", s.Name+".p4")
		args := append([]string{"--arch", s.Target.Arch, "-D__TARGET_TOFINO__=" + strconv.Itoa(s.Target.TofinoVersion)}, incArgs...)
		cmd := exec.Command(p4test, append(args, prog)...)
		out, err := cmd.CombinedOutput()
		if err != nil || p4diagRE.Match(out) {
			t.Errorf("%s: %s: %v\n%s", b.title, cmd, err, out)
			continue
		}
		t.Logf("%s: p4test --arch %s (Tofino %d): clean", b.title, s.Target.Arch, s.Target.TofinoVersion)
	}
}

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}
