package softswitch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/link"
)

// ErrConfig is wrapped by every error New returns for a bad Config; the
// message names the field and says what to change.
var ErrConfig = errors.New("softswitch: invalid config")

// Config configures a Switch.
type Config struct {
	// Ports are the switch's ports, at least one.
	Ports []PortConfig
	// Hosts fill ipv4_host (Addr -> Port, MAC) and l2_forward (MAC -> Port).
	Hosts []Host
	// Control, when its Addr is valid, is the switch's own address: the
	// switch answers ARP and ICMP echo for it on every port.
	Control Control
	// MinWorkload, when non-nil, is written to the min_workload register;
	// otherwise it keeps its initial value (empty: holder 0, EmptyLoad).
	MinWorkload *Workload
	// Seed drives every fault decision; equal seeds and equal traffic
	// give equal faults.
	Seed uint64
	// MaxHeld bounds the frames held back by delay faults; a frame that
	// would exceed it is dropped and counted as an overflow (default 4096).
	MaxHeld int
	// PollInterval is the longest a port's Receive waits under Run before
	// checking the context (default 10ms). Frames wake it sooner.
	PollInterval time.Duration
	// Spin is how long Run's one loop (ports with descriptors) keeps
	// checking the ports' rings after the last frame before it sleeps in
	// poll; 0 sleeps at once.
	Spin time.Duration
	// Pipeline is the pipeline to drive; nil makes a new one. Passing one
	// lets a control plane (tests, a P4Runtime server) share it.
	Pipeline *pipeline.Pipeline
	// StageDrops drop TCPMig datagrams of chosen stages on every port,
	// the first N or all (StageDrop); a datagram is dropped by the first
	// rule that matches it and has drops left.
	StageDrops []StageDrop
	// Capture, when set, sees every frame a port receives (out false),
	// before faults and the pipeline, and every frame the switch sends out
	// of a port (out true), under the switch's lock (keep it short); the
	// frame is valid only during the call. capyrun switch -pcap writes
	// them.
	Capture func(port pipeline.Port, out bool, frame []byte)
}

// PortConfig is one switch port.
type PortConfig struct {
	// ID is the pipeline's port id, below pipeline.MaxPorts.
	ID pipeline.Port
	// Name labels the port in reports and errors (default "port<ID>").
	Name string
	// Role, when set, is written to port_role: pipeline.RoleClient or
	// pipeline.RoleServer. Zero leaves the port's role to the control
	// plane (P4Runtime, runtime/p4rt), as on a Tofino; until it writes
	// one, the port's frames are dropped unknown_port.
	Role pipeline.Role
	// Endpoint carries the port's frames. The caller owns it (and closes
	// it after Run returns).
	Endpoint link.Endpoint
	// Fault injects loss, duplication and delay on the port; zero is none.
	Fault Fault
}

// Host is one ipv4_host entry, and the l2_forward entry of its MAC.
type Host struct {
	Addr netip.Addr
	Port pipeline.Port
	MAC  net.HardwareAddr
}

// Control is the switch's own address, like a Tofino's CPU port: the
// switch answers ARP requests and ICMP echo requests for Addr itself.
type Control struct {
	// Addr is an IPv4 address; the zero Addr means no control address.
	Addr netip.Addr
	// MAC is the address the switch answers with (default 02:ca:70 and
	// the last three bytes of Addr).
	MAC net.HardwareAddr
}

// Workload is a value of the min_workload register.
type Workload struct {
	// Holder is the least-loaded server; the zero Addr (or 0.0.0.0)
	// empties the register.
	Holder netip.Addr
	Load   uint32
}

// Fault is the fault injection of one port, per direction. Ingress
// faults apply to frames the port receives, before the pipeline; egress
// faults to frames the switch sends out of it.
type Fault struct {
	Ingress, Egress Rates
}

// Rates are the faults of one direction. Each frame is first dropped
// with probability Loss; a frame that survives is doubled with
// probability Dup (on ingress the pipeline then sees it twice); each copy
// is held back with probability Delay, for a time drawn uniformly from
// [DelayMin, DelayMax], which also reorders it behind later frames.
type Rates struct {
	Loss, Dup, Delay   float64
	DelayMin, DelayMax time.Duration
}

// Zero reports whether r injects nothing.
func (r Rates) Zero() bool { return r.Loss == 0 && r.Dup == 0 && r.Delay == 0 }

// Zero reports whether f injects nothing in either direction.
func (f Fault) Zero() bool { return f.Ingress.Zero() && f.Egress.Zero() }

const (
	defaultMaxHeld = 4096
	defaultPoll    = 10 * time.Millisecond
)

// problems collects every config problem, so one New reports them all.
type problems []string

func (p *problems) addf(format string, a ...any) { *p = append(*p, fmt.Sprintf(format, a...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &configError{p}
}

// configError lists the problems of a Config, one per line.
type configError struct{ lines []string }

func (e *configError) Error() string {
	if len(e.lines) == 1 {
		return "softswitch: config: " + e.lines[0]
	}
	return "softswitch: config:\n  " + strings.Join(e.lines, "\n  ")
}

func (e *configError) Unwrap() error { return ErrConfig }

// portLabel names ports[i] in messages.
func portLabel(i int, pc PortConfig) string {
	if pc.Name != "" {
		return fmt.Sprintf("ports[%d] (%q)", i, pc.Name)
	}
	return fmt.Sprintf("ports[%d] (id %d)", i, pc.ID)
}

// check validates c and fills in defaults; it returns the config to use.
func (c Config) check() (Config, error) {
	var p problems
	if len(c.Ports) == 0 {
		p.addf("no ports; give the switch at least one PortConfig")
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = defaultMaxHeld
	} else if c.MaxHeld < 0 {
		p.addf("MaxHeld %d is negative; use 0 for the default (%d)", c.MaxHeld, defaultMaxHeld)
	}
	if c.PollInterval == 0 {
		c.PollInterval = defaultPoll
	} else if c.PollInterval < 0 {
		p.addf("PollInterval %v is negative; use 0 for the default (%v)", c.PollInterval, defaultPoll)
	}
	if c.Spin < 0 {
		p.addf("Spin %v is negative; use 0 to sleep in poll as soon as the rings are empty", c.Spin)
	}
	ids := map[pipeline.Port]int{}
	names := map[string]int{}
	ports := make([]PortConfig, len(c.Ports))
	for i, pc := range c.Ports {
		label := portLabel(i, pc)
		if int(pc.ID) >= pipeline.MaxPorts {
			p.addf("%s: id %d is outside 0..%d (pipeline.MaxPorts); pick a smaller id", label, pc.ID, pipeline.MaxPorts-1)
		} else if j, dup := ids[pc.ID]; dup {
			p.addf("%s: id %d is already %s; give each port its own id", label, pc.ID, portLabel(j, c.Ports[j]))
		} else {
			ids[pc.ID] = i
		}
		if pc.Name == "" {
			pc.Name = fmt.Sprintf("port%d", pc.ID)
		}
		if j, dup := names[pc.Name]; dup {
			p.addf("%s: name %q is already %s's; give each port its own name", label, pc.Name, portLabel(j, c.Ports[j]))
		} else {
			names[pc.Name] = i
		}
		if pc.Role != 0 && pc.Role != pipeline.RoleClient && pc.Role != pipeline.RoleServer {
			p.addf("%s: role %v is not client or server; set Role to pipeline.RoleClient or pipeline.RoleServer, or 0 to leave it to the control plane", label, pc.Role)
		}
		if pc.Endpoint == nil {
			p.addf("%s: no Endpoint; give the port the link.Endpoint that carries its frames", label)
		}
		checkRates(&p, label+": Fault.Ingress", pc.Fault.Ingress)
		checkRates(&p, label+": Fault.Egress", pc.Fault.Egress)
		ports[i] = pc
	}
	c.Ports = ports
	addrs := map[netip.Addr]int{}
	macs := map[string]int{}
	for i, h := range c.Hosts {
		label := fmt.Sprintf("hosts[%d] (%v)", i, h.Addr)
		if !h.Addr.Is4() || h.Addr.IsUnspecified() {
			p.addf("%s: address %v is not a usable IPv4 address; write it like 10.77.0.11", label, h.Addr)
		} else if j, dup := addrs[h.Addr]; dup {
			p.addf("%s: address %v is already hosts[%d]'s; one entry per address", label, h.Addr, j)
		} else {
			addrs[h.Addr] = i
		}
		if _, ok := ids[h.Port]; !ok {
			p.addf("%s: port %d is not one of the switch's ports (%s); use a configured port id", label, h.Port, portIDs(ports))
		}
		if err := unicastMAC(h.MAC); err != nil {
			p.addf("%s: MAC %v %v; give the host's interface address, like 02:00:00:00:00:0b", label, h.MAC, err)
		} else if j, dup := macs[h.MAC.String()]; dup && c.Hosts[j].Port != h.Port {
			// One MAC behind two ports would make l2_forward disagree
			// with ipv4_host; the same MAC twice on one port is a host
			// with two addresses, which is fine.
			p.addf("%s: MAC %v is already hosts[%d]'s on port %d; a MAC lives behind one port", label, h.MAC, j, c.Hosts[j].Port)
		} else if !dup {
			macs[h.MAC.String()] = i
		}
	}
	if c.Control.Addr.IsValid() {
		a := c.Control.Addr
		if !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
			p.addf("Control.Addr %v is not a unicast IPv4 address; write it like 10.77.0.254", a)
		} else if j, dup := addrs[a]; dup {
			p.addf("Control.Addr %v is hosts[%d]'s address too; give the switch an address no host has", a, j)
		}
		if len(c.Control.MAC) == 0 {
			// The default MAC is made of the IPv4 address; any other
			// address is refused above and gets none.
			if a.Is4() {
				b := a.As4()
				c.Control.MAC = net.HardwareAddr{0x02, 0xca, 0x70, b[1], b[2], b[3]}
			}
		} else if err := unicastMAC(c.Control.MAC); err != nil {
			p.addf("Control.MAC %v %v; use a locally administered unicast MAC like 02:ca:70:00:00:fe, or leave it empty", c.Control.MAC, err)
		}
		if j, dup := macs[c.Control.MAC.String()]; dup {
			p.addf("Control.MAC %v is hosts[%d]'s MAC too; pick another", c.Control.MAC, j)
		}
	} else if len(c.Control.MAC) > 0 {
		p.addf("Control.MAC %v is set without Control.Addr; set the address too, or clear the MAC", c.Control.MAC)
	}
	checkStageDrops(&p, c.StageDrops)
	if w := c.MinWorkload; w != nil && w.Holder.IsValid() && !w.Holder.Is4() {
		p.addf("MinWorkload.Holder %v is not an IPv4 address; use a server's address, or the zero Addr to empty the register", w.Holder)
	}
	return c, p.err()
}

func checkRates(p *problems, label string, r Rates) {
	for _, v := range []struct {
		name string
		v    float64
	}{{"Loss", r.Loss}, {"Dup", r.Dup}, {"Delay", r.Delay}} {
		if !(v.v >= 0 && v.v <= 1) {
			p.addf("%s.%s %v is not a probability; use a value in [0, 1] (0.01 is 1%%)", label, v.name, v.v)
		}
	}
	switch {
	case r.DelayMin < 0 || r.DelayMax < 0:
		p.addf("%s: DelayMin %v and DelayMax %v must not be negative", label, r.DelayMin, r.DelayMax)
	case r.DelayMin > r.DelayMax:
		p.addf("%s: DelayMin %v is above DelayMax %v; swap them", label, r.DelayMin, r.DelayMax)
	case r.Delay > 0 && r.DelayMax == 0:
		p.addf("%s: Delay %v holds frames back for DelayMax 0; set DelayMax (and DelayMin) to how long", label, r.Delay)
	}
}

func unicastMAC(m net.HardwareAddr) error {
	switch {
	case len(m) != 6:
		return fmt.Errorf("is not a 6-byte Ethernet address")
	case m[0]&1 != 0:
		return fmt.Errorf("is a multicast address")
	case [6]byte(m) == [6]byte{}:
		return fmt.Errorf("is all zero")
	}
	return nil
}

func portIDs(ports []PortConfig) string {
	s := make([]string, len(ports))
	for i, pc := range ports {
		s[i] = fmt.Sprintf("%d %s", pc.ID, pc.Name)
	}
	return strings.Join(s, ", ")
}
