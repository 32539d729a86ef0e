package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/capygen/capygen/runtime/control"
)

// readyRE is the line capyrun serve and capyrun switch print once they
// carry traffic.
var readyRE = regexp.MustCompile(`(?m)^ready$`)

const defaultReadyTimeout = 30 * time.Second

// startProcesses starts the run process of every host that has one:
// switches first, since servers' first ARP goes through them, then
// servers, all started before any is waited for. UpWith has made their
// RunDir.
func (tb *Testbed) startProcesses(ctx context.Context, opts Options) error {
	bin := opts.Binary
	var started []*Proc
	for _, kind := range []string{RunSwitch, RunServe} {
		started = started[:0]
		for _, h := range tb.Topology.Hosts {
			if h.Run != kind {
				continue
			}
			if bin == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("host %s: find the capyrun executable for run: %s: %w (set Options.Binary)", h.Name, h.Run, err)
				}
				bin = exe
			}
			argv, err := tb.RunArgv(h.Name, bin)
			if err != nil {
				return err
			}
			argv = append(argv, opts.Args[h.Role]...)
			argv = append(argv, opts.Args[h.Name]...)
			if opts.HostArgs != nil {
				argv = append(argv, opts.HostArgs(tb, h)...)
			}
			log := ""
			if opts.LogDir != "" {
				log = filepath.Join(opts.LogDir, h.Name+".log")
			}
			p, err := tb.start(h.Name, log, true, argv)
			if err != nil {
				return err
			}
			tb.mu.Lock()
			tb.byHost[h.Name] = p
			tb.mu.Unlock()
			started = append(started, p)
		}
		for _, p := range started {
			if err := waitReady(ctx, p, opts.ReadyTimeout); err != nil {
				return err
			}
		}
		if kind == RunSwitch {
			if err := tb.deploySwitches(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitReady waits for p's "ready" line, its exit, ctx's end or timeout.
func waitReady(ctx context.Context, p *Proc, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultReadyTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if readyRE.MatchString(p.Output()) {
			return nil
		}
		select {
		case <-p.done:
			if readyRE.MatchString(p.Output()) {
				return nil
			}
			return fmt.Errorf("host %s: %s exited (%v) before it was ready:\n%s", p.Host, p.Argv[1], p.err, p.Output())
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("host %s: %s printed no \"ready\" within %v:\n%s", p.Host, p.Argv[1], timeout, p.Output())
		case <-tick.C:
		}
	}
}

// Proc returns the run process Up started on host, or nil.
func (tb *Testbed) Proc(host string) *Proc {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.byHost[host]
}

// RunArgv is the command line (bin first) of host's run process, before
// Options.Args: capyrun serve on the host's addressed interface, or
// capyrun switch with a -port per interface (its role is the peer's),
// a -host per peer address (with its derived MAC, or with macs: kernel
// the one the kernel reports) and the control address; then the host's
// args.
func (tb *Testbed) RunArgv(host, bin string) ([]string, error) {
	h, ok := tb.Topology.Host(host)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoHost, host)
	}
	var argv []string
	switch h.Run {
	case RunServe:
		for _, ifc := range tb.Topology.Interfaces(host) {
			if ifc.Prefix.IsValid() {
				argv = []string{bin, "serve", "-addr", ifc.Prefix.String(), "-iface", ifc.Name}
				if h.Stack == StackKernel {
					argv = append(argv, "-kernel")
				}
				break
			}
		}
		if argv == nil {
			return nil, fmt.Errorf("host %s: run: serve needs an interface with an address", host)
		}
		// Behind a switch with a control address, a server migrates: its
		// engine talks TCPMig to that address, capyrun migrate finds it on
		// its control socket, and its records go beside the logs.
		for _, sh := range tb.Topology.Hosts {
			if sh.Role == RoleSwitch && sh.Control != "" {
				argv = append(argv, "-switch", strings.SplitN(sh.Control, ",", 2)[0],
					"-control", ControlSocket(tb.Tag, host), "-records", RecordsFile(tb.Tag, host), "-echo", "7")
				break
			}
		}
	case RunSwitch:
		ports, err := tb.switchPorts(host)
		if err != nil {
			return nil, err
		}
		argv = []string{bin, "switch"}
		for _, p := range ports {
			argv = append(argv, "-port", p.iface+":"+p.faces)
		}
		// Its tables are written through P4Runtime, on this socket, once
		// it is ready (deploySwitches).
		argv = append(argv, "-p4runtime-socket", P4RuntimeSocket(tb.Tag, host))
		if h.Control != "" {
			argv = append(argv, "-control", h.Control)
		}
	default:
		return nil, fmt.Errorf("host %s runs no process (no run key)", host)
	}
	return append(argv, h.Args...), nil
}

// switchPort is one port of a switch host: its interface, pipeline port
// id (its position, as capyrun switch numbers -port flags), what it
// faces and the far end of its link.
type switchPort struct {
	iface string
	id    uint32
	faces string
	far   End
}

// switchPorts lists host's ports in link order.
func (tb *Testbed) switchPorts(host string) ([]switchPort, error) {
	var ports []switchPort
	for _, l := range tb.Topology.Links {
		me, far := l.A, l.B
		if far.Host == host {
			me, far = far, me
		}
		if me.Host != host {
			continue
		}
		peer, _ := tb.Topology.Host(far.Host)
		if peer.Role != RoleClient && peer.Role != RoleServer {
			return nil, fmt.Errorf("host %s: port %s leads to %s, whose role %q is neither client nor server", host, me.Iface, far.Host, peer.Role)
		}
		ports = append(ports, switchPort{iface: me.Iface, id: uint32(len(ports)), faces: peer.Role, far: far})
	}
	return ports, nil
}

// SwitchProgram is what the control plane writes into the switch on
// host: each port's role (the role of the host it leads to), each
// addressed host behind it with its MAC (derived, or with macs: kernel
// the one the kernel reports); no min_workload, which the commit empties.
func (tb *Testbed) SwitchProgram(host string) (*control.Program, error) {
	return tb.switchProgram(context.Background(), host)
}

// switchProgram is SwitchProgram bounded by ctx.
func (tb *Testbed) switchProgram(ctx context.Context, host string) (*control.Program, error) {
	ports, err := tb.switchPorts(host)
	if err != nil {
		return nil, err
	}
	prog := &control.Program{}
	for _, p := range ports {
		prog.Ports = append(prog.Ports, control.Port{ID: p.id, Role: p.faces, Name: p.iface})
		if p.far.Addr == "" {
			continue
		}
		mac := tb.Topology.mac(p.far)
		if mac == nil {
			// macs: kernel: only the kernel knows.
			pifs, err := tb.interfaces(ctx, p.far.Host)
			if err != nil {
				return nil, err
			}
			for _, pi := range pifs {
				if pi.Name == p.far.Iface {
					mac = pi.MAC
				}
			}
		}
		prog.Hosts = append(prog.Hosts, control.Host{Addr: netip.MustParsePrefix(p.far.Addr).Addr(), Port: p.id, MAC: control.MAC(mac)})
	}
	return prog, prog.Check()
}

// P4RuntimeSocket is where the switch on host serves P4Runtime.
func P4RuntimeSocket(tag, host string) string { return filepath.Join(RunDir(tag), host+".p4rt.sock") }

// deploySwitches deploys every running switch's program through its
// P4Runtime socket: the testbed has no other way into a switch.
func (tb *Testbed) deploySwitches(ctx context.Context) error {
	for _, h := range tb.Topology.Hosts {
		if h.Run != RunSwitch {
			continue
		}
		if err := tb.deploy(ctx, h.Name, nil); err != nil {
			return err
		}
	}
	return nil
}

// SetMinWorkload writes the min_workload register of the switch on host
// through P4Runtime, as an operator steering the next PREPARE_MIG would:
// the register then moves only as the spec's heartbeats move it.
func (tb *Testbed) SetMinWorkload(ctx context.Context, host string, w control.Workload) error {
	return tb.deploy(ctx, host, &w)
}

// deploy makes the switch on host hold its program, and writes
// min_workload when w is not nil (nil leaves the live register alone,
// unless the pipeline is committed anew).
func (tb *Testbed) deploy(ctx context.Context, host string, w *control.Workload) error {
	prog, err := tb.switchProgram(ctx, host)
	if err != nil {
		return fmt.Errorf("host %s: %w", host, err)
	}
	prog.MinWorkload = w
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := control.Dial(dctx, "unix://"+P4RuntimeSocket(tb.Tag, host), control.Options{})
	if err != nil {
		return fmt.Errorf("host %s: deploy: %w", host, err)
	}
	defer c.Close()
	if _, err := c.Deploy(dctx, prog, control.PipelineOptions{}); err != nil {
		return fmt.Errorf("host %s: deploy: %w", host, err)
	}
	return nil
}
