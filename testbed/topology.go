// Package testbed brings up and tears down capygen's network-namespace
// testbed: one namespace per host of a topology, veth pairs between them,
// addresses and links up, and the offloads that AF_XDP on veth cannot
// live with turned off.
//
// A session by hand, with the default topology (testbed/default.yaml):
//
//	capyrun testbed up -name demo          # capy-demo-client, capy-demo-server
//	ip netns exec capy-demo-server capyrun serve -addr 10.77.0.2/24 -iface veth0 &
//	ip netns exec capy-demo-client curl -s http://10.77.0.2/ping
//	ip netns exec capy-demo-client ping -c 3 10.77.0.2
//	capyrun testbed down -name demo
//
// The migration testbed (testbed/migration.yaml, Migration) puts capygen's
// software switch between two kernel clients and three servers, and
// starts the processes itself (the hosts' run keys):
//
//	capyrun testbed up -topology testbed/migration.yaml -name mig   # stays up until Ctrl-C
//	ip netns exec capy-mig-client curl -s http://10.77.0.11/ping  # through the switch
//	ip netns exec capy-mig-client ping -c 3 10.77.0.254           # the switch itself
//	kill -USR1 <switch pid>        # its report goes to $TMPDIR/capygen-testbed-mig/sw.log
//
// With -detach, up returns and 'capyrun testbed down -name mig' stops the
// processes (by PID) and prints the switch's last report. From Go,
// Topology.UpWith does the same, with extra arguments per role or host
// (Options.Args, Options.HostArgs).
//
// Hosts whose stack is "kernel" get their addresses on the kernel
// interface. Hosts whose stack is "bypass" do not: capygen's stack owns
// the interface through AF_XDP and takes the address itself (capyrun serve
// -addr), so the kernel there never answers for it. A host with run:
// switch runs capyrun switch on all its interfaces instead: their roles
// come from the hosts they lead to, the switch's host table from those
// hosts' addresses and MACs. AF_XDP frames bypass nftables and tc, so
// faults on switch-to-server links come from the switch's own seeded
// injector (capyrun switch -loss, -dup, -delay).
//
// By default every veth has checksum and segmentation offloads off (see
// Link.Offloads), and IPv6 is disabled in every namespace.
//
// The package's tests run capyrun against real Linux peers and need root,
// iproute2, ethtool, curl, ping and nftables (wrk for the benchmarks);
// they skip, saying which, when something is missing:
//
//	go test ./testbed/...                       # builds ./cmd/capyrun once
//	CAPYRUN_BIN=/path/capyrun go test ./testbed/... # or uses a prebuilt one
//	go test -run '^$' -bench . ./testbed/...     # kernel vs bypass, switch vs veth, with ratios
package testbed

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/capygen/capygen/internal/yamlstrict"
)

//go:embed default.yaml
var defaultYAML []byte

//go:embed migration.yaml
var migrationYAML []byte

//go:embed kernel.yaml
var kernelYAML []byte

// DefaultYAML is the embedded default topology file.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// MigrationYAML is the embedded migration topology file
// (testbed/migration.yaml).
func MigrationYAML() []byte { return slices.Clone(migrationYAML) }

// KernelYAML is the embedded kernel-mode migration topology file
// (testbed/kernel.yaml): migration.yaml's with kernel servers.
func KernelYAML() []byte { return slices.Clone(kernelYAML) }

// Errors of the package. A bad topology file gives one line per problem,
// "file:line:col: key: problem; what to change", wrapping ErrTopology.
var (
	ErrTopology = errors.New("testbed: invalid topology")
	ErrNotRoot  = errors.New("testbed: needs root (network namespaces, veths, XDP)")
	ErrTool     = errors.New("testbed: required tool missing")
	ErrNoHost   = errors.New("testbed: no such host")
	ErrDown     = errors.New("testbed: testbed is down")
)

// Roles and stacks a host may have.
const (
	RoleClient = "client"
	RoleServer = "server"
	RoleSwitch = "switch"

	StackKernel = "kernel"
	StackBypass = "bypass"

	// RunServe and RunSwitch are the processes a host may run.
	RunServe  = "serve"
	RunSwitch = "switch"
)

// Topology is a parsed, validated topology file.
type Topology struct {
	Version int    `yaml:"version"`
	MACs    string `yaml:"macs"` // "derived" (default) or "kernel"
	Hosts   []Host `yaml:"hosts"`
	Links   []Link `yaml:"links"`

	source string
}

// Host is one network namespace.
type Host struct {
	Name  string `yaml:"name"`
	Role  string `yaml:"role"`
	Stack string `yaml:"stack"`
	// Run is the process Up starts in the namespace: RunServe (capyrun
	// serve on the host's one addressed interface), RunSwitch (capyrun
	// switch on every interface, with the hosts behind them) or "" for none.
	Run string `yaml:"run,omitempty"`
	// Args are appended to that process's command line (Options.Args adds
	// more at Up), e.g. the switch's fault flags.
	Args []string `yaml:"args,omitempty"`
	// Control is the software switch's own IPv4 address (run: switch
	// only): it answers ARP and ping for it, and servers send TCPMig to it.
	Control string `yaml:"control,omitempty"`
}

// Link is a veth pair between two hosts.
type Link struct {
	A   End `yaml:"a"`
	B   End `yaml:"b"`
	MTU int `yaml:"mtu"` // default 1500
	// Offloads keeps the veths' checksum and segmentation offloads on.
	// Off by default, because a kernel peer with tx checksum offload
	// leaves TCP checksums for a NIC to fill in, and over veth nobody
	// does: measured here, every segment from curl reached the AF_XDP
	// stack with a bad checksum and was dropped. TSO/GSO would also hand
	// it segments larger than the MTU.
	Offloads bool `yaml:"offloads"`
}

// End is one side of a link.
type End struct {
	Host  string `yaml:"host"`
	Iface string `yaml:"iface"`
	// Addr is the interface's IPv4 prefix, e.g. 10.77.0.1/24 (optional
	// for switch ports).
	Addr string `yaml:"addr,omitempty"`
}

// Interface is a resolved link end, as brought up.
type Interface struct {
	Host   string
	Name   string
	MAC    net.HardwareAddr // nil when the kernel picks it
	Prefix netip.Prefix     // invalid when the end has no address
	MTU    int
	Peer   string // host at the other end
}

// Default returns the embedded default topology.
func Default() *Topology {
	t, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		// The embedded file is tested; failing here is a build defect.
		panic(err)
	}
	return t
}

// Migration returns the embedded migration topology: two kernel
// clients, the software switch and three servers on capygen's stack.
func Migration() *Topology {
	t, err := Parse("migration.yaml", migrationYAML)
	if err != nil {
		panic(err)
	}
	return t
}

// Kernel is the embedded kernel-mode migration topology: Migration's with
// its servers on the Linux kernel stack.
func Kernel() *Topology {
	t, err := Parse("kernel.yaml", kernelYAML)
	if err != nil {
		panic(err)
	}
	return t
}

// Load reads and validates a topology file.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load topology: %w", err)
	}
	return Parse(path, data)
}

// Parse validates topology data; name is used in messages. Every problem
// is reported, sorted by position, one per line as
// "name:line:col: key: problem; what to change"; the error wraps
// ErrTopology.
func Parse(name string, data []byte) (*Topology, error) {
	d := &decoder{yamlstrict.Decoder{File: name, Kind: "topology", Start: "start it with version: 1, then hosts and links"}}
	t := d.topology(data)
	if err := d.Err(ErrTopology); err != nil {
		return nil, err
	}
	t.source = name
	return t, nil
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
var ifaceRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.]{0,14}$`)

// hostAt is a host as read, with where its name is, for messages about
// later uses of the name.
type hostAt struct {
	Host
	path string
	name *yaml.Node
	// run, args and control are the nodes of those keys, for the checks
	// that need the links (processes).
	run, args, control *yaml.Node
	controlAddr        netip.Addr // valid once control parsed
}

// endAt is a link end as read, with the nodes its checks blame.
type endAt struct {
	End
	path              string
	host, iface, addr *yaml.Node
	prefix            netip.Prefix // valid once addr passed every check
	unique            bool         // iface is valid and new on its host
	peer              *endAt       // the link's other end, when it read
}

// decoder reads a topology file: its methods are the topology's schema,
// and yamlstrict walks the YAML and collects the diagnostics.
type decoder struct{ yamlstrict.Decoder }

// topology decodes and checks the whole document. The result is only
// meaningful when no diagnostic was recorded.
func (d *decoder) topology(data []byte) *Topology {
	root := d.Document(data)
	if root == nil {
		return nil
	}
	o := d.Object(root, "", "", "version", "macs", "hosts", "links")
	t := &Topology{MACs: "derived"}
	if v, n := o.Int("version", "version: 1"); n != nil {
		if v != 1 {
			d.Errorf(n, "version", "%d is not supported; set version: 1", v)
		} else {
			t.Version = 1
		}
	}
	o.Require("version", "add version: 1 as the first line")
	if s, n := o.Str("macs", "macs: derived"); n != nil {
		if s != "derived" && s != "kernel" {
			d.Errorf(n, "macs", "%q is not a MAC mode; use derived or kernel", s)
		}
		t.MACs = s
	}
	hs := d.hosts(t, o)
	ends, addrs := d.links(t, o, hs)
	d.processes(hs, ends, addrs)
	return t
}

// hostSet is what links check host names against.
type hostSet struct {
	byName map[string]*hostAt // well-named hosts
	names  []string           // their names, in file order
	// named holds every name given, valid or not, and complete says that
	// every host had one: a link naming a host outside the set is only
	// reported when the hosts themselves read cleanly, so one broken
	// host entry does not also break every link to it.
	named    map[string]bool
	complete bool
}

// hosts decodes the hosts list into t.
func (d *decoder) hosts(t *Topology, o *yamlstrict.Object) *hostSet {
	hs := &hostSet{byName: map[string]*hostAt{}, named: map[string]bool{}}
	items, list := o.List("hosts", "write one host per item, like - {name: client, role: client}")
	o.Require("hosts", "add a list of hosts, like hosts: [{name: client, role: client}]")
	if list != nil && len(items) == 0 {
		d.Errorf(list, "hosts", "is empty; a testbed needs at least one host, like - {name: client, role: client}")
	}
	hs.complete = len(items) > 0
	for i, n := range items {
		ho := d.Object(n, yamlstrict.Index("hosts", i), "write it like {name: client, role: client}", "name", "role", "stack", "run", "args", "control")
		if ho.Bad() {
			hs.complete = false
			continue
		}
		h := &hostAt{Host: Host{Stack: StackKernel}, path: ho.Path()}
		if s, n := ho.Str("name", "name: client"); n == nil {
			hs.complete = false
		} else {
			h.Name = s
			hs.named[s] = true
			if !nameRE.MatchString(s) {
				d.Errorf(n, ho.Sub("name"), "%q is not a host name; use 1-16 lower-case letters and digits, starting with a letter (it becomes part of a namespace name)", s)
			} else if prev := hs.byName[s]; prev != nil {
				d.Errorf(n, ho.Sub("name"), "%q is already the name of %s (line %d); rename one", s, prev.path, prev.name.Line)
			} else {
				h.name = n
				hs.byName[s] = h
				hs.names = append(hs.names, s)
			}
		}
		ho.Require("name", "add a name, like name: client")
		if s, n := ho.Str("role", "role: client"); n != nil {
			switch s {
			case RoleClient, RoleServer, RoleSwitch:
				// Left empty otherwise, so a bad role does not also
				// bring "missing addr" complaints about its ports.
				h.Role = s
			default:
				d.Errorf(n, ho.Sub("role"), "%q is not a role; use client, server or switch", s)
			}
		}
		ho.Require("role", "add role: client, server or switch")
		if s, n := ho.Str("stack", "stack: kernel"); n != nil {
			if s != StackKernel && s != StackBypass {
				d.Errorf(n, ho.Sub("stack"), "%q is not a stack; use kernel or bypass", s)
			}
			h.Stack = s
		}
		if s, n := ho.Str("run", "run: serve"); n != nil {
			h.run = n
			if s != RunServe && s != RunSwitch {
				d.Errorf(n, ho.Sub("run"), "%q is not a process; use serve or switch, or leave run out", s)
			} else {
				h.Run = s
			}
		}
		if items, n := ho.List("args", "write the arguments as a list, like args: [-loss, 0.01]"); n != nil {
			h.args = n
			for j, a := range items {
				if a.Kind != yaml.ScalarNode || yamlstrict.IsNull(a) {
					d.Errorf(a, yamlstrict.Index(ho.Sub("args"), j), "want a command-line argument, got %s; write it like -loss or 0.01", yamlstrict.Describe(a))
					continue
				}
				h.Args = append(h.Args, a.Value)
			}
		}
		if s, n := ho.Str("control", "control: 10.77.0.254"); n != nil {
			h.control = n
			if a, err := netip.ParseAddr(s); err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
				d.Errorf(n, ho.Sub("control"), "%q is not a unicast IPv4 address; write it like 10.77.0.254 (no prefix)", s)
			} else {
				h.Control, h.controlAddr = s, a
			}
		}
		t.Hosts = append(t.Hosts, h.Host)
	}
	return hs
}

// processes checks run, args and control against the host's role, stack
// and links: what Up will start must be able to start.
func (d *decoder) processes(hosts *hostSet, ends []*endAt, addrs map[netip.Addr]*endAt) {
	byHost := map[string][]*endAt{}
	for _, e := range ends {
		byHost[e.Host] = append(byHost[e.Host], e)
	}
	serveStack := map[bool]string{} // the first server of each stack (kernel: true)
	mixedSaid := false
	for _, name := range hosts.names {
		h := hosts.byName[name]
		if h.args != nil && h.Run == "" && h.run == nil {
			d.Errorf(h.args, h.path+".args", "given, but the host runs no process to pass them to; add run: serve or run: switch, or remove args")
		}
		if h.control != nil && h.Run != RunSwitch {
			d.Errorf(h.control, h.path+".control", "only a host with run: switch has a control address; add run: switch or remove control")
		}
		if h.Run == "" {
			continue
		}
		if h.Stack != StackBypass && h.Run == RunSwitch {
			d.Errorf(h.run, h.path+".run", "switch runs the software switch over AF_XDP, which needs stack: bypass; add stack: bypass to %s", name)
		}
		mine := byHost[name]
		switch h.Run {
		case RunServe:
			if h.Role != RoleServer {
				d.Errorf(h.run, h.path+".run", "serve runs a server, which needs role: server; change the role or the run")
			}
			// The switch steers a migration to any server: one stack for all.
			if other, ok := serveStack[h.Stack != StackKernel]; ok && !mixedSaid {
				d.Errorf(h.run, h.path+".run", "%s serves on the %s stack and %s does not; the switch steers a migration to any server, and kernel and bypass servers cannot exchange connections: give every server one stack (or use two testbeds)", name, h.Stack, other)
				mixedSaid = true
			}
			if _, ok := serveStack[h.Stack == StackKernel]; !ok {
				serveStack[h.Stack == StackKernel] = name
			}
			var addressed []*endAt
			for _, e := range mine {
				if e.Addr != "" {
					addressed = append(addressed, e)
				}
			}
			if len(addressed) != 1 {
				d.Errorf(h.run, h.path+".run", "serve takes one addressed interface and %s has %d; give the host exactly one link end with an addr", name, len(addressed))
			}
		case RunSwitch:
			if h.Role != "" && h.Role != RoleSwitch {
				d.Errorf(h.run, h.path+".run", "switch runs the software switch, which needs role: switch; change the role or the run")
			}
			if len(mine) == 0 {
				d.Errorf(h.run, h.path+".run", "switch has no ports: %s has no links; link it to clients and servers", name)
			}
			var subnets []netip.Prefix
			for _, e := range mine {
				if e.addr != nil {
					d.Errorf(e.addr, e.path+".addr", "%s is on a port of %s, which runs the software switch: its ports have no address (it answers only for its control address); remove addr", e.Addr, name)
				}
				if e.peer == nil {
					continue
				}
				if p := hosts.byName[e.peer.Host]; p != nil && p.Role == RoleSwitch {
					d.Errorf(e.peer.host, e.peer.path+".host", "%q is a switch; a port of the software switch leads to a client or a server (its port role)", e.peer.Host)
				}
				if e.peer.prefix.IsValid() && !slices.Contains(subnets, e.peer.prefix.Masked()) {
					subnets = append(subnets, e.peer.prefix.Masked())
				}
			}
			a := h.controlAddr
			if !a.IsValid() {
				continue
			}
			if prev := addrs[a]; prev != nil {
				d.Errorf(h.control, h.path+".control", "%s is already used by %s (%s, line %d); pick an address no interface has", a, prev.Host, prev.path, prev.addr.Line)
				continue
			}
			inside := len(subnets) == 0
			for _, p := range subnets {
				if p.Contains(a) && a != p.Addr() && a != broadcast(p) {
					inside = true
				}
			}
			if !inside {
				names := make([]string, len(subnets))
				for i, p := range subnets {
					names[i] = p.String()
				}
				d.Errorf(h.control, h.path+".control", "%s is not a host address of the subnets the switch's ports lead to (%s); hosts could not ARP for it, so pick one inside", a, strings.Join(names, ", "))
			}
		}
	}
}

// links decodes the links list into t and checks interfaces, addresses
// and derived MACs across all of them.
func (d *decoder) links(t *Topology, o *yamlstrict.Object, hosts *hostSet) ([]*endAt, map[netip.Addr]*endAt) {
	items, _ := o.List("links", "write one link per item, like - {a: {host: client, iface: veth0, addr: 10.77.0.1/24}, b: {...}}")
	ifaces := map[string]*endAt{} // by host/iface
	addrs := map[netip.Addr]*endAt{}
	var ends []*endAt
	for i, n := range items {
		lo := d.Object(n, yamlstrict.Index("links", i), "write it with keys a and b, like a: {host: client, iface: veth0, addr: 10.77.0.1/24}", "a", "b", "mtu", "offloads")
		if lo.Bad() {
			continue
		}
		l := Link{MTU: 1500}
		if v, n := lo.Int("mtu", "mtu: 1500"); n != nil {
			if v < 576 || v > 9000 {
				d.Errorf(n, lo.Sub("mtu"), "%d is outside 576..9000 (the IPv4 minimum to jumbo frames); pick an MTU in that range", v)
			} else {
				l.MTU = int(v)
			}
		}
		l.Offloads, _ = lo.Bool("offloads", "offloads: true")
		var pair [2]*endAt
		for j, key := range []string{"a", "b"} {
			pair[j] = d.end(lo, key, hosts, ifaces, addrs)
			lo.Require(key, "add "+key+": {host: ..., iface: ..., addr: ...}")
			if pair[j] != nil {
				ends = append(ends, pair[j])
			}
		}
		a, b := pair[0], pair[1]
		if a != nil && b != nil {
			if a.Host != "" && a.Host == b.Host {
				d.Errorf(b.host, b.path+".host", "%q is a's host too; a link joins two hosts, so put b on another host", b.Host)
			}
			if a.prefix.IsValid() && b.prefix.IsValid() && a.prefix.Masked() != b.prefix.Masked() {
				d.Errorf(b.addr, b.path+".addr", "%s is not in a's subnet %s; put both ends of a link in one subnet", b.prefix, a.prefix.Masked())
			}
			l.A, l.B = a.End, b.End
			a.peer, b.peer = b, a
		}
		t.Links = append(t.Links, l)
	}
	// A host with two interfaces in overlapping subnets gets two routes
	// for them and uses one: a peer behind the other is unreachable.
	addressed := map[string][]*endAt{}
	for _, e := range ends {
		if !e.prefix.IsValid() || e.Host == "" {
			continue
		}
		for _, prev := range addressed[e.Host] {
			if prev.peer != e && prev.prefix.Masked().Overlaps(e.prefix.Masked()) {
				d.Errorf(e.addr, e.path+".addr", "%s overlaps %s, the subnet of %s's %s (%s, line %d): the kernel would route both out of one interface, so a peer behind the other is unreachable; put this link in another subnet",
					e.prefix, prev.prefix.Masked(), e.Host, prev.Iface, prev.path+".addr", prev.addr.Line)
				break
			}
		}
		addressed[e.Host] = append(addressed[e.Host], e)
	}
	if t.MACs != "derived" {
		return ends, addrs
	}
	// Derived MACs are 40 bits of a hash: a clash is unlikely, but two
	// interfaces with one MAC on a link would be a baffling failure.
	macs := map[string]*endAt{}
	for _, e := range ends {
		if !e.unique {
			continue
		}
		m := t.mac(e.End).String()
		if prev := macs[m]; prev != nil {
			d.Errorf(e.iface, e.path+".iface", "derived MAC %s of %s/%s clashes with %s/%s (%s, line %d); rename one interface or set macs: kernel",
				m, e.Host, e.Iface, prev.Host, prev.Iface, prev.path, prev.iface.Line)
			continue
		}
		macs[m] = e
	}
	return ends, addrs
}

// end decodes and checks one end of a link; nil when it is absent or not
// a mapping.
func (d *decoder) end(lo *yamlstrict.Object, key string, hosts *hostSet, ifaces map[string]*endAt, addrs map[netip.Addr]*endAt) *endAt {
	eo := lo.Object(key, "write it like {host: client, iface: veth0, addr: 10.77.0.1/24}", "host", "iface", "addr")
	if eo == nil || eo.Bad() {
		return nil
	}
	e := &endAt{path: eo.Path()}
	var h *hostAt
	if s, n := eo.Str("host", "host: client"); n != nil {
		e.Host, e.host = s, n
		if h = hosts.byName[s]; h == nil && hosts.complete && !hosts.named[s] {
			d.Errorf(n, eo.Sub("host"), "%q is not a host of this topology; use one of %s", s, strings.Join(hosts.names, ", "))
		}
	}
	eo.Require("host", "add the host this end is on, like host: client")
	if s, n := eo.Str("iface", "iface: veth0"); n != nil {
		e.Iface, e.iface = s, n
		if !ifaceRE.MatchString(s) {
			d.Errorf(n, eo.Sub("iface"), "%q is not an interface name; use 1-15 letters, digits, '_' or '.', starting with a letter", s)
		} else if k := e.Host + "/" + s; e.Host != "" && ifaces[k] != nil {
			prev := ifaces[k]
			d.Errorf(n, eo.Sub("iface"), "%s already has an interface %q (%s, line %d); rename one", e.Host, s, prev.path, prev.iface.Line)
		} else if e.Host != "" {
			ifaces[k] = e
			e.unique = true
		}
	}
	eo.Require("iface", "add the interface name, like iface: veth0")
	s, n := eo.Str("addr", "addr: 10.77.0.1/24")
	if n == nil {
		if h != nil && h.Role != "" && h.Role != RoleSwitch {
			eo.Require("addr", "add an IPv4 prefix like 10.77.0.1/24 (only switch ports may go without one)")
		}
		return e
	}
	e.Addr, e.addr = s, n
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
		d.Errorf(n, eo.Sub("addr"), "%q is not an IPv4 prefix of length 8..30; write it like 10.77.0.1/24", s)
		return e
	}
	first, last := p.Masked().Addr(), broadcast(p)
	switch p.Addr() {
	case first:
		d.Errorf(n, eo.Sub("addr"), "%s is the network address of %s; use a host address such as %s", s, p.Masked(), netip.PrefixFrom(first.Next(), p.Bits()))
		return e
	case last:
		d.Errorf(n, eo.Sub("addr"), "%s is the broadcast address of %s; use a host address such as %s", s, p.Masked(), netip.PrefixFrom(last.Prev(), p.Bits()))
		return e
	}
	if prev := addrs[p.Addr()]; prev != nil {
		d.Errorf(n, eo.Sub("addr"), "%s is already used by %s (%s, line %d); pick another address", p.Addr(), prev.Host, prev.path, prev.addr.Line)
		return e
	}
	addrs[p.Addr()] = e
	e.prefix = p
	return e
}

// broadcast returns the last address of an IPv4 prefix.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// Host returns the named host.
func (t *Topology) Host(name string) (Host, bool) {
	for _, h := range t.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// Interfaces lists the interfaces of host, in link order.
func (t *Topology) Interfaces(host string) []Interface {
	var out []Interface
	for _, l := range t.Links {
		for j, e := range []End{l.A, l.B} {
			if e.Host != host {
				continue
			}
			peer := l.B.Host
			if j == 1 {
				peer = l.A.Host
			}
			ifc := Interface{Host: host, Name: e.Iface, MTU: l.MTU, Peer: peer, MAC: t.mac(e)}
			if e.Addr != "" {
				ifc.Prefix = netip.MustParsePrefix(e.Addr)
			}
			out = append(out, ifc)
		}
	}
	return out
}

// mac derives a locally administered unicast MAC from the host and
// interface names, or returns nil when the kernel should pick.
func (t *Topology) mac(e End) net.HardwareAddr {
	if t.MACs == "kernel" {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte(e.Host + "/" + e.Iface))
	s := h.Sum(nil)
	mac := net.HardwareAddr{0x02, s[0], s[1], s[2], s[3], s[4]}
	return mac
}
