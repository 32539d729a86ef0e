package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/capygen/capygen/cmd/internal/cli"
)

// notInTheGenerator are the import paths capygen must not link: the
// runtime and the testbed, and what they bring (AF_XDP, eBPF, netlink).
// They are capyrun's. The P4Runtime client (runtime/control, for capygen
// deploy) and the small runtime under the generated code are pure Go and
// link none of those: they are allowed.
var notInTheGenerator = []string{
	"github.com/capygen/capygen/runtime",
	"github.com/capygen/capygen/testbed",
	"github.com/asavie/xdp",
	"github.com/cilium/ebpf",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
}

// The generator builds without the runtime, so `go tool capygen` stays light.
func TestGeneratorLinksNoRuntime(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list -deps . needs the go tool: %v", err)
	}
	deps := strings.Fields(string(out))
	var bad []string
	for _, p := range deps {
		if allowedInTheGenerator(p) {
			continue
		}
		for _, no := range notInTheGenerator {
			if p == no || strings.HasPrefix(p, no+"/") {
				bad = append(bad, p)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("go list -deps ./cmd/capygen has %d packages of the runtime (move what needs them to cmd/capyrun; go mod why -m shows the chain):\n%s",
			len(bad), strings.Join(bad, "\n"))
	}
	t.Logf("capygen links %d packages", len(deps))
}

func allowedInTheGenerator(p string) bool {
	for _, ok := range []string{
		"github.com/capygen/capygen/runtime/control",
		"github.com/capygen/capygen/runtime/genrt",
		"github.com/capygen/capygen/runtime/internal/checksum",
		"github.com/capygen/capygen/runtime/internal/bytestring",
	} {
		if p == ok || strings.HasPrefix(p, ok+"/") {
			return true
		}
	}
	return false
}

func TestCommands(t *testing.T) {
	if got := prog.Names(); !slices.Equal(got, cli.CapygenCommands) {
		t.Errorf("capygen's commands = %v, want cli.CapygenCommands %v", got, cli.CapygenCommands)
	}
}

// A runtime command run on the generator names the binary that has it.
func TestMovedCommands(t *testing.T) {
	for _, name := range []string{"serve", "switch", "testbed", "migrate", "demo"} {
		var stderr bytes.Buffer
		code := prog.Run([]string{name, "-addr", "10.77.0.2/24"}, &stderr)
		want := "capygen " + name + ": moved to capyrun; run `go run ./cmd/capyrun " + name + " ...`\n"
		if code != 2 || stderr.String() != want {
			t.Errorf("capygen %s = exit %d, %q, want exit 2, %q", name, code, stderr.String(), want)
		}
	}
}
