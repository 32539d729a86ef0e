package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/capygen/capygen/cmd/internal/cli"
	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/control"
	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/metrics"
	"github.com/capygen/capygen/runtime/p4rt"
	softswitch "github.com/capygen/capygen/runtime/switch"
)

func init() {
	prog.Register("switch", "run the software switch (the generated pipeline) on AF_XDP ports", runSwitch)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type switchFlags struct {
	metricsAddr   string
	pcap          string
	pcapMax       int64
	ports, faults listFlag
	dropStages    listFlag
	control       string

	p4runtime, p4runtimeSocket string
	program                    string
	device                     uint64
	// served are the P4Runtime listeners' addresses, as bound:
	// -program dials one of them.
	served []net.Addr
	// faces is what each port faces, from its -port ROLE.
	faces []pipeline.Role

	loss, dup, delay   float64
	delayMin, delayMax time.Duration
	faultPorts         string
	faultDir           string
	seed               uint64

	report      string
	reportEvery time.Duration

	mode    string
	frames  int
	replace bool
	spin    time.Duration
}

const switchUsage = `usage: capyrun switch -port IFACE:ROLE[:ID] [-port ...] [-program FILE] [flags]

Runs the software switch in this network namespace: every frame received on
a port goes through the generated pipeline (gen/SWITCH.md), and the verdict
is carried out on the ports, each an AF_XDP socket on its interface. Like a
Tofino, it is configured only through P4Runtime (runtime/p4rt): it serves
P4Runtime on -p4runtime (and -p4runtime-socket), and its tables start empty
until a controller (capygen deploy, or -program here) pushes the pipeline
and writes the port roles, hosts and min_workload. It prints "ready" once
every port is open and P4Runtime is served, a report on SIGUSR1 and on exit
(SIGINT, SIGTERM), each followed by a "switch-report-json {...}" line.

Example (the migration testbed's switch namespace):

  capyrun switch -port c1:client -port s1:server -port s2:server \
      -control 10.77.0.254 -p4runtime-socket /tmp/sw.sock -program rack.yaml \
      -loss 0.01 -dup 0.01 -fault-ports server

A port's ROLE says what it faces, for -fault-ports and the printout; the
port_role table itself is written through P4Runtime (the program's ports).

-drop-stage loses chosen TCPMig messages deterministically: -drop-stage
prepare_mig:1 drops the first PREPARE_MIG, conn_state:1@2 the first
CONN_STATE fragment with index 2, conn_state_ack:all every CONN_STATE_ACK,
and conn_state_ack:all+1 every one after the first (a first migration
succeeds, the next loses its ACKs).

flags:
`

// switchFlagSet defines capyrun switch's flags on f.
func switchFlagSet(f *switchFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("capyrun switch", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), switchUsage)
		fs.PrintDefaults()
	}
	fs.Var(&f.ports, "port", "a port, `IFACE:ROLE[:ID]`: the interface AF_XDP takes over, what it faces (client or server), and the pipeline port id (default: its position); repeat per port")
	fs.StringVar(&f.control, "control", "", "the switch's own `ADDR[,MAC]`: it answers ARP and ping for it, so servers can send TCPMig to it")
	fs.StringVar(&f.p4runtime, "p4runtime", ":9559", "TCP `address` of the P4Runtime server (empty: none)")
	fs.StringVar(&f.p4runtimeSocket, "p4runtime-socket", "", "also serve P4Runtime on this unix `socket` (a controller outside the namespace reaches it)")
	fs.Uint64Var(&f.device, "device-id", p4rt.DefaultDeviceID, "the P4Runtime device `id`")
	fs.StringVar(&f.program, "program", "", "deploy this program `file` (ports, hosts, min_workload; capygen deploy's format) through the switch's own P4Runtime server before it is ready")
	fs.Float64Var(&f.loss, "loss", 0, "fault: `probability` that a frame is dropped, on the -fault-ports in -fault-dir")
	fs.Float64Var(&f.dup, "dup", 0, "fault: `probability` that a frame is duplicated")
	fs.Float64Var(&f.delay, "delay", 0, "fault: `probability` that a frame is held back for -delay-min..-delay-max")
	fs.DurationVar(&f.delayMin, "delay-min", 0, "fault: shortest hold-back of a delayed frame")
	fs.DurationVar(&f.delayMax, "delay-max", time.Millisecond, "fault: longest hold-back of a delayed frame")
	fs.StringVar(&f.faultPorts, "fault-ports", "server", "`ports` the -loss/-dup/-delay faults apply to: server, client, all, or IFACE[,IFACE...]")
	fs.StringVar(&f.faultDir, "fault-dir", "both", "`direction` of the faults: ingress (frames from the port), egress (frames to it) or both")
	fs.Var(&f.faults, "fault", "per-port faults, `IFACE:loss=P,dup=P,delay=P,delay-min=D,delay-max=D,dir=both`, replacing the global ones on that port; repeatable")
	fs.Var(&f.dropStages, "drop-stage", "drop TCPMig datagrams of one stage, `STAGE:COUNT[@FRAGMENT][+PASS][/egress]`: the first COUNT (or all) after PASS went through, as they reach the switch (/egress: as they leave it), e.g. prepare_mig:1, conn_state:1@2, conn_state_ack:all, conn_state_ack:all+1; repeatable")
	fs.Uint64Var(&f.seed, "seed", 1, "`seed` of the fault injector: equal seeds give equal faults for equal traffic")
	fs.StringVar(&f.pcap, "pcap", "", "write every frame the switch receives and sends to this pcapng `file`, an interface per port and direction (TCPMig decodes with generated/wireshark/tcpmig.lua)")
	fs.Int64Var(&f.pcapMax, "pcap-max", 256<<20, "stop writing -pcap at this many `bytes`")
	fs.StringVar(&f.metricsAddr, "metrics", "", "serve Prometheus /metrics on this kernel `address` in our namespace, e.g. 127.0.0.1:9100")
	fs.StringVar(&f.report, "report", "", "rewrite the JSON report to `file` every -report-every, on SIGUSR1 and on exit")
	fs.DurationVar(&f.reportEvery, "report-every", time.Second, "`interval` of -report rewrites (0: only on SIGUSR1 and exit)")
	fs.StringVar(&f.mode, "mode", "", "XDP attach `mode`: native, generic or empty for native then generic")
	fs.IntVar(&f.frames, "frames", 0, "UMEM `frames` per port (power of two; 0 for the link default)")
	fs.BoolVar(&f.replace, "replace-xdp", false, "take over interfaces that already have an XDP program (e.g. left by a killed switch)")
	fs.DurationVar(&f.spin, "spin", 0, "how long the switch keeps checking its ports' rings after the last frame before it sleeps in poll (0 for 20µs)")
	return fs
}

func runSwitch(args []string) error {
	var f switchFlags
	fs := switchFlagSet(&f)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if f.pcap != "" && f.pcapMax <= 0 {
		return fmt.Errorf("-pcap-max %d: want a positive size in bytes; every frame would be skipped", f.pcapMax)
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	// Signals are caught before the first port opens: a SIGTERM during
	// bring-up (a bind retrying for seconds) would otherwise kill the
	// process before the deferred Closes ran, and leave the ports' XDP
	// programs attached, their queues black holes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	// Open every port before the switch exists; close them all on the way
	// out whatever happened, so no interface keeps a dead XDP program.
	var eps []*link.XDP
	defer func() {
		for _, ep := range eps {
			ep.Close()
		}
	}()
	for i := range cfg.Ports {
		if ctx.Err() != nil {
			return errors.New("interrupted while opening the ports")
		}
		ep, err := link.OpenXDP(cfg.Ports[i].Name, link.XDPOptions{Mode: f.mode, Frames: f.frames, Replace: f.replace, Spin: f.spin})
		if err != nil {
			return fmt.Errorf("-port %s: %w", cfg.Ports[i].Name, err)
		}
		eps = append(eps, ep)
		cfg.Ports[i].Endpoint = ep
	}
	cfg.Spin = f.spin
	if cfg.Spin == 0 {
		cfg.Spin = link.DefaultSpin
	}
	var pw *pcapWriter
	if f.pcap != "" {
		pw, err = newPcapWriter(f.pcap, f.pcapMax, cfg.Ports)
		if err != nil {
			return err
		}
		defer func() {
			if err := pw.close(); err != nil {
				fmt.Fprintf(os.Stderr, "capyrun switch: -pcap %s: %v\n", f.pcap, err)
			}
		}()
		cfg.Capture = pw.capture
		fmt.Printf("capturing to %s\n", f.pcap)
	}
	sw, err := softswitch.New(cfg)
	if err != nil {
		return err
	}
	for i, pc := range cfg.Ports {
		fmt.Printf("port %-8s id %-3d %-6s mac %s, AF_XDP %s mode%s\n", pc.Name, pc.ID, f.faces[i], eps[i].MAC(), eps[i].Mode(), faultNote(pc.Fault, f.seed))
	}
	if c := cfg.Control; c.Addr.IsValid() {
		fmt.Printf("control address %s (mac %s)\n", c.Addr, sw.ControlMAC())
	}
	stopP4RT, err := f.serveP4Runtime(sw)
	if err != nil {
		return err
	}
	defer stopP4RT()
	for _, d := range cfg.StageDrops {
		fmt.Printf("stage drop %s\n", d)
	}

	if ctx.Err() != nil {
		return errors.New("interrupted while starting")
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if f.metricsAddr != "" {
		reg := metrics.NewRegistry()
		if _, err := metrics.NewSwitch(reg, sw); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return fmt.Errorf("-metrics: %w", err)
		}
		go metrics.ServeListener(runCtx, ln, reg) //nolint:errcheck // ends with the switch
		fmt.Printf("metrics on http://%s/metrics\n", f.metricsAddr)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- sw.Run(runCtx) }()
	if f.program != "" {
		if err := f.deployProgram(ctx); err != nil {
			cancel()
			<-runErr
			return err
		}
	}
	fmt.Println("ready")

	var tick <-chan time.Time
	if f.report != "" && f.reportEvery > 0 {
		t := time.NewTicker(f.reportEvery)
		defer t.Stop()
		tick = t.C
	}
	report := func(print bool) error {
		r := sw.Report()
		if print {
			fmt.Printf("%sswitch-report-json %s\n", r, r.JSON())
		}
		if f.report != "" {
			return writeFileAtomic(f.report, append(r.JSON(), '\n'))
		}
		return nil
	}
	for {
		select {
		case <-usr1:
			if err := report(true); err != nil {
				fmt.Fprintf(os.Stderr, "capyrun switch: -report: %v\n", err)
			}
			if pw != nil {
				if err := pw.flush(); err != nil { // so the capture can be read now
					fmt.Fprintf(os.Stderr, "capyrun switch: -pcap: %v\n", err)
				}
			}
		case <-tick:
			if err := report(false); err != nil {
				fmt.Fprintf(os.Stderr, "capyrun switch: -report: %v\n", err)
			}
		case err := <-runErr:
			// A port failed: report what the switch did up to then.
			report(true)
			return err
		case <-ctx.Done():
			cancel()
			err := <-runErr
			if rerr := report(true); rerr != nil {
				err = errors.Join(err, fmt.Errorf("-report: %w", rerr))
			}
			return err
		}
	}
}

// writeFileAtomic replaces path with data, so a reader never sees half a
// report.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".switch-report-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

func faultNote(f softswitch.Fault, seed uint64) string {
	if f.Zero() {
		return ""
	}
	var parts []string
	for _, d := range []struct {
		name string
		r    softswitch.Rates
	}{{"ingress", f.Ingress}, {"egress", f.Egress}} {
		if !d.r.Zero() {
			parts = append(parts, fmt.Sprintf("%s loss %g dup %g delay %g (%v..%v)", d.name, d.r.Loss, d.r.Dup, d.r.Delay, d.r.DelayMin, d.r.DelayMax))
		}
	}
	return fmt.Sprintf(", faults (seed %d): %s", seed, strings.Join(parts, "; "))
}

// config turns the flags into a switch config whose ports have no
// endpoints yet; every error names the flag and value to change.
func (f *switchFlags) config() (softswitch.Config, error) {
	var cfg softswitch.Config
	if len(f.ports) == 0 {
		return cfg, fmt.Errorf("no ports; give at least one -port IFACE:ROLE, e.g. -port veth0:client")
	}
	byName := map[string]int{}
	for i, v := range f.ports {
		pc, err := parsePort(v, i)
		if err != nil {
			return cfg, err
		}
		if _, dup := byName[pc.Name]; dup {
			return cfg, fmt.Errorf("-port %q: interface %s is already a port; give each interface one -port", v, pc.Name)
		}
		byName[pc.Name] = i
		cfg.Ports = append(cfg.Ports, pc)
	}
	if f.control != "" {
		addr, mac, _ := strings.Cut(f.control, ",")
		a, err := netip.ParseAddr(addr)
		if err != nil || !a.Is4() {
			return cfg, fmt.Errorf("-control %q: %q is not an IPv4 address; write it like 10.77.0.254 or 10.77.0.254,02:ca:70:00:00:fe", f.control, addr)
		}
		cfg.Control.Addr = a
		if mac != "" {
			if cfg.Control.MAC, err = net.ParseMAC(mac); err != nil {
				return cfg, fmt.Errorf("-control %q: MAC %q: %v", f.control, mac, err)
			}
		}
	}
	cfg.Seed = f.seed

	global := softswitch.Rates{Loss: f.loss, Dup: f.dup, Delay: f.delay, DelayMin: f.delayMin, DelayMax: f.delayMax}
	if !global.Zero() {
		in, out, err := parseDir(f.faultDir)
		if err != nil {
			return cfg, fmt.Errorf("-fault-dir %q: %w", f.faultDir, err)
		}
		sel, err := selectPorts(f.faultPorts, cfg.Ports, byName)
		if err != nil {
			return cfg, err
		}
		for _, i := range sel {
			if in {
				cfg.Ports[i].Fault.Ingress = global
			}
			if out {
				cfg.Ports[i].Fault.Egress = global
			}
		}
	}
	for _, v := range f.faults {
		i, fault, err := parseFault(v, byName)
		if err != nil {
			return cfg, err
		}
		cfg.Ports[i].Fault = fault
	}
	for _, v := range f.dropStages {
		d, err := softswitch.ParseStageDrop(v)
		if err != nil {
			return cfg, fmt.Errorf("-drop-stage: %w", err)
		}
		cfg.StageDrops = append(cfg.StageDrops, d)
	}
	// What a port faces chose its faults; port_role is the control
	// plane's to write.
	f.faces = make([]pipeline.Role, len(cfg.Ports))
	for i := range cfg.Ports {
		f.faces[i], cfg.Ports[i].Role = cfg.Ports[i].Role, 0
	}
	return cfg, nil
}

// parsePort reads IFACE:ROLE[:ID]; the id defaults to the position.
func parsePort(v string, pos int) (softswitch.PortConfig, error) {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" {
		return softswitch.PortConfig{}, fmt.Errorf("-port %q: want IFACE:ROLE or IFACE:ROLE:ID, like veth0:client or s1:server:5", v)
	}
	pc := softswitch.PortConfig{Name: parts[0], ID: pipeline.Port(pos)}
	switch parts[1] {
	case "client":
		pc.Role = pipeline.RoleClient
	case "server":
		pc.Role = pipeline.RoleServer
	default:
		return pc, fmt.Errorf("-port %q: role %q is not client or server", v, parts[1])
	}
	if len(parts) == 3 {
		id, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil || id >= pipeline.MaxPorts {
			return pc, fmt.Errorf("-port %q: id %q is not a port id in 0..%d", v, parts[2], pipeline.MaxPorts-1)
		}
		pc.ID = pipeline.Port(id)
	}
	return pc, nil
}

func portNames(ports []softswitch.PortConfig) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.Name
	}
	return strings.Join(s, ", ")
}

// selectPorts reads -fault-ports: a role, all, or interface names.
func selectPorts(v string, ports []softswitch.PortConfig, byName map[string]int) ([]int, error) {
	var sel []int
	for i, p := range ports {
		switch {
		case v == "all", v == "server" && p.Role == pipeline.RoleServer, v == "client" && p.Role == pipeline.RoleClient:
			sel = append(sel, i)
		}
	}
	if v == "all" || v == "server" || v == "client" {
		return sel, nil
	}
	for _, name := range strings.Split(v, ",") {
		i, ok := byName[name]
		if !ok {
			return nil, fmt.Errorf("-fault-ports %q: %q is not server, client, all or a -port interface (ports: %s)", v, name, portNames(ports))
		}
		sel = append(sel, i)
	}
	return sel, nil
}

func parseDir(v string) (ingress, egress bool, err error) {
	switch v {
	case "both":
		return true, true, nil
	case "ingress":
		return true, false, nil
	case "egress":
		return false, true, nil
	}
	return false, false, fmt.Errorf("want ingress, egress or both")
}

// parseFault reads IFACE:key=value,... for one port.
func parseFault(v string, byName map[string]int) (int, softswitch.Fault, error) {
	var fault softswitch.Fault
	name, spec, ok := strings.Cut(v, ":")
	i, known := byName[name]
	if !ok || !known {
		return 0, fault, fmt.Errorf("-fault %q: want IFACE:loss=P,dup=P,delay=P,delay-min=D,delay-max=D,dir=DIR with IFACE a -port interface", v)
	}
	r := softswitch.Rates{DelayMax: time.Millisecond}
	dir := "both"
	for _, kv := range strings.Split(spec, ",") {
		k, val, ok := strings.Cut(kv, "=")
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("%q is not key=value", kv)
		case k == "loss":
			r.Loss, err = strconv.ParseFloat(val, 64)
		case k == "dup":
			r.Dup, err = strconv.ParseFloat(val, 64)
		case k == "delay":
			r.Delay, err = strconv.ParseFloat(val, 64)
		case k == "delay-min":
			r.DelayMin, err = time.ParseDuration(val)
		case k == "delay-max":
			r.DelayMax, err = time.ParseDuration(val)
		case k == "dir":
			dir = val
		default:
			err = fmt.Errorf("unknown key %q; use loss, dup, delay, delay-min, delay-max or dir", k)
		}
		if err != nil {
			return 0, fault, fmt.Errorf("-fault %q: %v", v, err)
		}
	}
	in, out, err := parseDir(dir)
	if err != nil {
		return 0, fault, fmt.Errorf("-fault %q: dir %q: %w", v, dir, err)
	}
	if in {
		fault.Ingress = r
	}
	if out {
		fault.Egress = r
	}
	return i, fault, nil
}

// serveP4Runtime starts the switch's P4Runtime server on -p4runtime and
// -p4runtime-socket; the returned func stops it and removes the socket.
func (f *switchFlags) serveP4Runtime(sw *softswitch.Switch) (func(), error) {
	srv, err := p4rt.New(p4rt.Config{Pipeline: sw.Pipeline(), DeviceID: f.device})
	if err != nil {
		return nil, err
	}
	g := grpc.NewServer()
	srv.Register(g)
	var lis []net.Listener
	stop := func() {
		g.Stop()
		for _, l := range lis {
			l.Close()
		}
		if f.p4runtimeSocket != "" {
			os.Remove(f.p4runtimeSocket)
		}
	}
	if f.p4runtime != "" {
		l, err := net.Listen("tcp", f.p4runtime)
		if err != nil {
			return nil, fmt.Errorf("-p4runtime %s: %w (pick another address, or -p4runtime '' for none)", f.p4runtime, err)
		}
		lis = append(lis, l)
	}
	if f.p4runtimeSocket != "" {
		// A socket left by a killed switch would refuse the bind.
		if fi, err := os.Lstat(f.p4runtimeSocket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(f.p4runtimeSocket)
		}
		l, err := net.Listen("unix", f.p4runtimeSocket)
		if err != nil {
			stop()
			return nil, fmt.Errorf("-p4runtime-socket %s: %w", f.p4runtimeSocket, err)
		}
		lis = append(lis, l)
	}
	if len(lis) == 0 && f.program != "" {
		return nil, errors.New("-program needs a P4Runtime server to deploy through; give -p4runtime or -p4runtime-socket")
	}
	f.served = nil
	for _, l := range lis {
		f.served = append(f.served, l.Addr())
		go g.Serve(l)
		fmt.Printf("p4runtime on %s %s (device %d, p4info %s, spec fingerprint %s)\n", l.Addr().Network(), l.Addr(), srv.DeviceID(), p4.P4InfoFile, p4.Fingerprint)
	}
	return stop, nil
}

// deployProgram deploys -program through the switch's own P4Runtime
// server, as capygen deploy would from outside.
func (f *switchFlags) deployProgram(ctx context.Context) error {
	prog, err := control.LoadProgram(f.program)
	if err != nil {
		return fmt.Errorf("-program: %w", err)
	}
	target, err := dialTarget(f.served)
	if err != nil {
		return fmt.Errorf("-program %s: %w", f.program, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := control.Dial(dctx, target, control.Options{DeviceID: f.device})
	if err != nil {
		return fmt.Errorf("-program: %w", err)
	}
	defer c.Close()
	ch, err := c.Deploy(dctx, prog, control.PipelineOptions{})
	if err != nil {
		return fmt.Errorf("-program %s: %w", f.program, err)
	}
	fmt.Printf("program %s deployed: %v\n", f.program, ch)
	return nil
}

// dialTarget is the gRPC target of one of the switch's own P4Runtime
// listeners, the socket first: the address actually bound, so a
// -p4runtime on one address or on port 0 is reached, and "unix:" with
// the path as given, which gRPC reads relative to the working directory
// ("unix://" takes only an absolute path).
func dialTarget(served []net.Addr) (string, error) {
	for _, a := range served {
		if a.Network() == "unix" {
			return "unix:" + a.String(), nil
		}
	}
	for _, a := range served {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			continue
		}
		// A wildcard listener is reached on loopback.
		if ap.Addr().IsUnspecified() {
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port())
		}
		return ap.String(), nil
	}
	return "", errors.New("the switch serves P4Runtime nowhere to deploy it through; give -p4runtime or -p4runtime-socket")
}
