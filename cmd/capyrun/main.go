// Command capyrun runs what capygen generates: the network-namespace
// testbed, capygen's TCP/IP stack serving HTTP (serve), the software switch
// running the generated pipeline (switch), live migrations (migrate) and
// the end-to-end demo.
//
//	capyrun testbed up -topology testbed/migration.yaml -name mig -detach
//	capyrun migrate -testbed mig -host s1 -all
//	capyrun testbed down -name mig
//
// It is a binary of its own, not part of capygen, so that the generator
// builds without the runtime: these commands link AF_XDP, eBPF and netlink,
// and generating code (go tool capygen, go:generate) should not pay for
// them. The name says the split: capygen generates, capyrun runs. The
// testbed starts capyrun serve and capyrun switch from this same
// executable in each namespace.
package main

import (
	"fmt"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/gen"
)

var prog = &cli.Program{Name: "capyrun", Sibling: "capygen", SiblingCommands: cli.CapygenCommands}

func init() {
	prog.Register("version", "print the capygen version this runtime was built from", func([]string) error {
		fmt.Println("capyrun", gen.Version)
		return nil
	})
}

func main() { prog.Main() }
