// Package testbed brings up and tears down capygen's network-namespace
// testbed: one namespace per host of a topology, veth pairs between them,
// addresses and links up, and the offloads that AF_XDP on veth cannot
// live with turned off.
//
// A session by hand, with the default topology (testbed/default.yaml):
//
//	capygen testbed up -name demo          # capy-demo-client, capy-demo-server
//	ip netns exec capy-demo-server capygen serve -addr 10.77.0.2/24 -iface veth0 &
//	ip netns exec capy-demo-client curl -s http://10.77.0.2/ping
//	ip netns exec capy-demo-client ping -c 3 10.77.0.2
//	capygen testbed down -name demo
//
// Hosts whose stack is "kernel" get their addresses on the kernel
// interface. Hosts whose stack is "bypass" do not: capygen's stack owns
// the interface through AF_XDP and takes the address itself (capygen serve
// -addr), so the kernel there never answers for it.
//
// By default every veth has checksum and segmentation offloads off (see
// Link.Offloads), and IPv6 is disabled in every namespace.
//
// The package's tests run capygen against real Linux peers and need root,
// iproute2, ethtool, curl, ping and nftables (wrk for the benchmarks);
// they skip, saying which, when something is missing:
//
//	go test ./testbed/...                       # builds ./cmd/capygen once
//	CAPYGEN_BIN=/path/capygen go test ./testbed/... # or uses a prebuilt one
//	go test -run '^$' -bench . ./testbed/...     # kernel vs bypass, with ratios
package testbed

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML is the embedded default topology file.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Errors from loading a topology; messages name the file and the entry.
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
	Addr string `yaml:"addr"`
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

// Load reads and validates a topology file.
func Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load topology: %w", err)
	}
	return Parse(path, data)
}

// Parse validates topology data; name is used in messages.
func Parse(name string, data []byte) (*Topology, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var t Topology
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s: the file is empty; it must be a mapping starting with version: 1", ErrTopology, name)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrTopology, name, err)
	}
	t.source = name
	if err := t.validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
var ifaceRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.]{0,14}$`)

func (t *Topology) validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if t.Version != 1 {
		bad("version: %d, want 1", t.Version)
	}
	switch t.MACs {
	case "":
		t.MACs = "derived"
	case "derived", "kernel":
	default:
		bad("macs: %q, want derived or kernel", t.MACs)
	}
	if len(t.Hosts) == 0 {
		bad("hosts: none; a testbed needs at least one host")
	}
	hosts := map[string]*Host{}
	for i := range t.Hosts {
		h := &t.Hosts[i]
		at := fmt.Sprintf("hosts[%d]", i)
		if !nameRE.MatchString(h.Name) {
			bad("%s.name: %q must be 1-16 lower-case letters and digits, starting with a letter (it becomes part of a namespace name)", at, h.Name)
		} else if hosts[h.Name] != nil {
			bad("%s.name: %q is used twice", at, h.Name)
		} else {
			hosts[h.Name] = h
		}
		switch h.Role {
		case RoleClient, RoleServer, RoleSwitch:
		default:
			bad("%s (%s).role: %q, want client, server or switch", at, h.Name, h.Role)
		}
		switch h.Stack {
		case "":
			h.Stack = StackKernel
		case StackKernel, StackBypass:
		default:
			bad("%s (%s).stack: %q, want kernel or bypass", at, h.Name, h.Stack)
		}
	}
	ifaces := map[string]bool{}
	addrs := map[netip.Addr]string{}
	for i := range t.Links {
		l := &t.Links[i]
		at := fmt.Sprintf("links[%d]", i)
		if l.MTU == 0 {
			l.MTU = 1500
		}
		if l.MTU < 576 || l.MTU > 9000 {
			bad("%s.mtu: %d outside 576..9000", at, l.MTU)
		}
		var pfx [2]netip.Prefix
		for j, e := range []*End{&l.A, &l.B} {
			eat := fmt.Sprintf("%s.%c", at, "ab"[j])
			if hosts[e.Host] == nil {
				bad("%s.host: %q is not a host of this topology", eat, e.Host)
			}
			if !ifaceRE.MatchString(e.Iface) {
				bad("%s.iface: %q must be 1-15 letters, digits, '_' or '.', starting with a letter", eat, e.Iface)
			} else if key := e.Host + "/" + e.Iface; ifaces[key] {
				bad("%s.iface: %s already has an interface %q", eat, e.Host, e.Iface)
			} else {
				ifaces[key] = true
			}
			if e.Addr == "" {
				if h := hosts[e.Host]; h != nil && h.Role != RoleSwitch {
					bad("%s.addr: missing; only switch ports may go without an address", eat)
				}
				continue
			}
			p, err := netip.ParsePrefix(e.Addr)
			if err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
				bad("%s.addr: %q must be an IPv4 prefix like 10.77.0.1/24 (length 8..30)", eat, e.Addr)
				continue
			}
			if p.Addr() == p.Masked().Addr() {
				bad("%s.addr: %q is the network address, not a host address", eat, e.Addr)
				continue
			}
			if other, ok := addrs[p.Addr()]; ok {
				bad("%s.addr: %s is already used by %s", eat, p.Addr(), other)
			}
			addrs[p.Addr()] = e.Host
			pfx[j] = p
		}
		if l.A.Host == l.B.Host && l.A.Host != "" {
			bad("%s: both ends are on host %q; a link joins two hosts", at, l.A.Host)
		}
		if pfx[0].IsValid() && pfx[1].IsValid() && pfx[0].Masked() != pfx[1].Masked() {
			bad("%s: %s and %s are not in the same subnet", at, pfx[0], pfx[1])
		}
	}
	// Derived MACs are 40 bits of a hash: a clash is unlikely, but two
	// interfaces with one MAC on a link would be a baffling failure.
	macs := map[string]string{}
	for _, l := range t.Links {
		for _, e := range []End{l.A, l.B} {
			if m := t.mac(e); m != nil {
				if other, ok := macs[m.String()]; ok && other != e.Host+"/"+e.Iface {
					bad("%s/%s: derived MAC %s clashes with %s; rename one interface or use macs: kernel", e.Host, e.Iface, m, other)
				}
				macs[m.String()] = e.Host + "/" + e.Iface
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s:\n  %s", ErrTopology, t.source, strings.Join(errs, "\n  "))
	}
	return nil
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
