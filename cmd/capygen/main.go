// Command capygen generates the TCPMig codecs, migration state machines,
// switch pipeline model and Tofino P4 program from one spec:
//
//	capygen generate -spec spec/capybara.yaml -out generated
//	capygen diff | plan | vet | version
//
// It links the spec loader and the emitters only, never the runtime
// (AF_XDP, eBPF, netlink, the testbed), so `go tool capygen` and
// `go run .../cmd/capygen` from go:generate stay light; a test checks it
// with go list -deps. The commands that run what it generates (testbed,
// serve, switch, migrate, demo) are capyrun's (cmd/capyrun), and running
// one here says so; experiment runs capyrun's for you.
package main

import "github.com/capygen/capygen/cmd/internal/cli"

var prog = &cli.Program{Name: "capygen", Sibling: "capyrun", SiblingCommands: cli.CapyrunCommands, Moved: true}

func main() { prog.Main() }
