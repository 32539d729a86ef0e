package control

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Program is what the control plane writes into a switch: the roles of
// its ports, the hosts behind them (ipv4_host, and l2_forward for their
// MACs) and, if set, a min_workload value (a commit empties the register).
type Program struct {
	Ports []Port `yaml:"ports"`
	Hosts []Host `yaml:"hosts"`
	// MinWorkload, when set, is written to the register at each deploy; a
	// zero holder writes the empty register (holder 0, the empty load).
	// nil writes nothing: a commit already empties it (its P4 initial
	// value, gen/SWITCH.md), and otherwise heartbeats keep it.
	MinWorkload *Workload `yaml:"min_workload,omitempty"`
}

// Port is one port_role entry.
type Port struct {
	// ID is the switch's port id (the data plane port, as the switch's
	// port map or the Tofino's dev port numbers it).
	ID uint32 `yaml:"id" json:"id"`
	// Role is "client" or "server".
	Role string `yaml:"role" json:"role"`
	// Name labels the port in messages; it is not written.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
}

// Host is one ipv4_host entry and the l2_forward entry of its MAC.
type Host struct {
	Addr netip.Addr `yaml:"addr" json:"addr"`
	Port uint32     `yaml:"port" json:"port"`
	MAC  MAC        `yaml:"mac" json:"mac"`
}

// Workload is a min_workload value.
type Workload struct {
	Holder netip.Addr `yaml:"holder" json:"holder"`
	Load   uint32     `yaml:"load" json:"load"`
}

// MAC is an Ethernet address that reads and writes as 02:00:00:00:00:0b.
type MAC net.HardwareAddr

func (m MAC) String() string { return net.HardwareAddr(m).String() }

// MarshalYAML writes the colon form.
func (m MAC) MarshalYAML() (any, error) { return m.String(), nil }

// UnmarshalYAML reads the colon form.
func (m *MAC) UnmarshalYAML(n *yaml.Node) error {
	if err := m.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalText writes the colon form, so JSON has it too (a []byte would
// be base64).
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads the colon form.
func (m *MAC) UnmarshalText(b []byte) error {
	hw, err := net.ParseMAC(string(b))
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("mac %q is not an Ethernet address like 02:00:00:00:00:0b", b)
	}
	*m = MAC(hw)
	return nil
}

// Roles are the port_role values of gen/SWITCH.md.
var roles = map[string]uint64{"client": 1, "server": 2}

// ErrProgram is wrapped by every error Check returns.
var ErrProgram = errors.New("control: invalid program")

// Check reports every problem of p at once, each naming the entry and
// what to change.
func (p *Program) Check() error {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	ports := map[uint32]int{}
	for i, pt := range p.Ports {
		if _, ok := roles[pt.Role]; !ok {
			add("ports[%d] (id %d): role %q is not client or server", i, pt.ID, pt.Role)
		}
		if j, dup := ports[pt.ID]; dup {
			add("ports[%d]: id %d is ports[%d]'s too; one entry per port", i, pt.ID, j)
		}
		ports[pt.ID] = i
	}
	addrs := map[netip.Addr]int{}
	macs := map[string]int{}
	for i, h := range p.Hosts {
		if !h.Addr.Is4() || h.Addr.IsUnspecified() {
			add("hosts[%d]: addr %v is not a usable IPv4 address; write it like 10.77.0.11", i, h.Addr)
		} else if j, dup := addrs[h.Addr]; dup {
			add("hosts[%d]: addr %v is hosts[%d]'s too; one entry per address", i, h.Addr, j)
		}
		addrs[h.Addr] = i
		if _, ok := ports[h.Port]; !ok {
			add("hosts[%d] (%v): port %d has no ports entry; add it to ports with its role", i, h.Addr, h.Port)
		}
		if len(h.MAC) != 6 || h.MAC[0]&1 != 0 || bytes.Equal(h.MAC, make([]byte, 6)) {
			add("hosts[%d] (%v): mac %v is not a unicast Ethernet address", i, h.Addr, h.MAC)
		} else if j, dup := macs[h.MAC.String()]; dup && p.Hosts[j].Port != h.Port {
			add("hosts[%d] (%v): mac %v is hosts[%d]'s on port %d; a MAC lives behind one port", i, h.Addr, h.MAC, j, p.Hosts[j].Port)
		} else if !dup {
			macs[h.MAC.String()] = i
		}
	}
	if w := p.MinWorkload; w != nil && w.Holder.IsValid() && !w.Holder.Is4() {
		add("min_workload: holder %v is not an IPv4 address", w.Holder)
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("%w:\n  %s", ErrProgram, strings.Join(probs, "\n  "))
}

// l2 is the l2_forward entries the hosts imply: each MAC once.
func (p *Program) l2() []Host {
	var out []Host
	seen := map[string]bool{}
	for _, h := range p.Hosts {
		if !seen[h.MAC.String()] {
			seen[h.MAC.String()] = true
			out = append(out, h)
		}
	}
	return out
}

// LoadProgram reads a program file (YAML, fields as Program's tags).
func LoadProgram(path string) (*Program, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("program: %w", err)
	}
	return ParseProgram(path, data)
}

// ParseProgram reads a program from YAML; name labels errors. The file
// holds one document: an empty file is refused rather than read as an
// empty program, which would delete every entry.
func ParseProgram(name string, data []byte) (*Program, error) {
	const fields = "fields: ports [{id, role}], hosts [{addr, port, mac}], min_workload {holder, load}"
	var first yaml.Node
	if err := yaml.Unmarshal(data, &first); err == nil && (len(first.Content) == 0 || isNull(first.Content[0])) {
		return nil, fmt.Errorf("program %s: the file holds no program (no YAML document, or an empty one); write its ports and hosts (%s), or ports: [] to empty the tables on purpose", name, fields)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Program
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("program %s: %w (%s)", name, err, fields)
	}
	// A second document would be ignored, and its hosts then deleted; an
	// empty one (a trailing ---) is harmless.
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("program %s: after the first document: %w", name, err)
		}
		if len(next.Content) > 0 && !isNull(next.Content[0]) {
			return nil, fmt.Errorf("program %s: line %d: a second YAML document starts here; a program is one document, so move what it holds into the first and remove this ---", name, next.Line)
		}
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("program %s: %w", name, err)
	}
	return &p, nil
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// YAML writes p as a program file.
func (p *Program) YAML() []byte {
	out, _ := yaml.Marshal(p)
	return out
}
