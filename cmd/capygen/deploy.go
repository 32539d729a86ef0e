package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/capygen/capygen/cmd/internal/cli"
	"github.com/capygen/capygen/runtime/control"
)

func init() {
	prog.Register("deploy", "push the generated pipeline to a P4Runtime switch, program its tables, show its state", runDeploy)
}

const deployUsage = `usage: capygen deploy -target ADDR [-program FILE] [-show] [flags]

Deploys the generated switch program over P4Runtime to any P4Runtime server:
the software switch (capyrun switch serves it) or a Tofino's switch OS.
It becomes the primary controller, pushes the pipeline (VERIFY_AND_COMMIT,
skipped when the switch already runs the same p4info and cookie), and with
-program makes the tables hold exactly the program: port roles, hosts (and
the L2 entries of their MACs) and min_workload if it gives one. With
-pipeline=false nothing is pushed: -program writes the tables of the
pipeline the switch runs, through the p4info read from the switch (a
-p4info given must be that one). -show prints what the switch holds: its
tables, the directory's occupancy per level and entries (client -> origin,
target), min_workload and the drops by reason.

ADDR is host:port (the software switch listens on :9559) or unix:///path.

A program file:

  ports:
    - {id: 0, role: client}
    - {id: 1, role: server}
  hosts:
    - {addr: 10.77.0.1, port: 0, mac: "02:00:00:00:00:01"}
    - {addr: 10.77.0.11, port: 1, mac: "02:00:00:00:00:0b"}
  min_workload: {holder: 0.0.0.0, load: 0}   # optional; left out, a commit empties it

flags:
`

func runDeploy(args []string) error {
	fs := flag.NewFlagSet("capygen deploy", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), deployUsage)
		fs.PrintDefaults()
	}
	target := fs.String("target", "", "the P4Runtime server, `host:port` or unix:///path")
	programFile := fs.String("program", "", "make the tables hold this program `file` (YAML)")
	push := fs.Bool("pipeline", true, "push the pipeline (false: leave the running one; -program then writes its tables through the p4info read from the switch)")
	force := fs.Bool("force", false, "commit the pipeline even if the switch runs it already (clears every table and register)")
	show := fs.Bool("show", false, "print the switch's state at the end")
	asJSON := fs.Bool("json", false, "print the state as JSON")
	device := fs.Uint64("device-id", 1, "the switch's P4Runtime device `id`")
	election := fs.Uint64("election", 1, "this controller's election `id`; another controller with a higher one is primary (0: observe, read only, with -show -pipeline=false)")
	p4infoFile := fs.String("p4info", "", "resolve names through and push this p4info `file` (text or binary) instead of generated/p4's, e.g. bf-p4c's")
	deviceConfig := fs.String("device-config", "", "the target's device config `file` (a Tofino's bf-p4c binary as its P4Runtime server wants it)")
	cookie := fs.Uint64("cookie", 0, "the pipeline's `cookie` (0: the spec fingerprint)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *timeout <= 0 {
		return fmt.Errorf("-timeout %v: want a positive duration (60s)", *timeout)
	}
	if *asJSON && !*show {
		return errors.New("-json prints -show's state as JSON: add -show")
	}
	if *target == "" {
		return errors.New("-target is required: the switch's P4Runtime address, like 127.0.0.1:9559 or unix:///tmp/sw.p4rt.sock")
	}
	if !*push && *programFile == "" && !*show {
		return errors.New("-pipeline=false with neither -program nor -show does nothing")
	}
	opt := control.Options{DeviceID: *device, ElectionID: *election, Observe: *election == 0, Timeout: *timeout}
	if opt.Observe && (*push || *programFile != "") {
		return errors.New("-election 0 observes: it cannot push the pipeline or a program; add -pipeline=false and leave out -program, or give an election id")
	}
	if *p4infoFile != "" {
		info, err := readP4Info(*p4infoFile)
		if err != nil {
			return err
		}
		opt.P4Info = info
	}
	if *p4infoFile != "" && *push && *deviceConfig == "" {
		return errors.New("-p4info without -device-config: a hardware switch takes a p4info with the binary it was compiled with (for Stratum on a Tofino, bf_pipeline_builder's pipeline.bin; see the README); add -device-config FILE, or -pipeline=false to program the tables of the pipeline it runs")
	}
	popt := control.PipelineOptions{Cookie: *cookie, Force: *force}
	if *deviceConfig != "" {
		b, err := os.ReadFile(*deviceConfig)
		if err != nil {
			return fmt.Errorf("-device-config: %w", err)
		}
		popt.DeviceConfig = b
	}
	var program *control.Program
	if *programFile != "" {
		p, err := control.LoadProgram(*programFile)
		if err != nil {
			return err
		}
		program = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// An error from a deadline says which flag set it.
	late := func(err error) error {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("%w (not done within -timeout %v: check that %s answers, or raise -timeout)", err, *timeout, *target)
		}
		return err
	}
	c, err := control.Dial(ctx, *target, opt)
	if err != nil {
		return late(err)
	}
	defer c.Close()
	if v, err := c.Capabilities(ctx); err == nil {
		if opt.Observe {
			fmt.Printf("%s: P4Runtime %s, observing (no election id)\n", *target, v)
		} else {
			fmt.Printf("%s: P4Runtime %s, primary with election id %d\n", *target, v, *election)
		}
	}
	switch {
	case program != nil:
		var ch control.Changes
		if *push {
			ch, err = c.Deploy(ctx, program, popt)
		} else {
			ch, err = c.DeployTables(ctx, program)
		}
		if errors.Is(err, control.ErrProgram) {
			return fmt.Errorf("-program %s: %w", *programFile, err)
		}
		if err != nil {
			return late(err)
		}
		fmt.Println(ch)
	case *push:
		committed, err := c.SetPipeline(ctx, popt)
		if err != nil {
			return late(err)
		}
		if committed {
			fmt.Println("pipeline committed (tables and registers are empty: give -program to fill them)")
		} else {
			fmt.Println("pipeline already running")
		}
	}
	if *show {
		st, err := c.State(ctx)
		if err != nil {
			return late(err)
		}
		if *asJSON {
			b, _ := json.Marshal(st)
			fmt.Println(string(b))
		} else {
			fmt.Print(st)
		}
	}
	return nil
}

// readP4Info reads a p4info file, binary (.bin, .pb) or text.
func readP4Info(path string) (*p4configv1.P4Info, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-p4info: %w", err)
	}
	info := &p4configv1.P4Info{}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".bin", ".pb":
		err = proto.Unmarshal(b, info)
	default:
		err = prototext.Unmarshal(b, info)
	}
	if err != nil {
		return nil, fmt.Errorf("-p4info %s: not a p4info (text, or binary as .bin/.pb): %w", path, err)
	}
	return info, nil
}
