package testbed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestDefaultTopology(t *testing.T) {
	topo := Default()
	if len(topo.Hosts) != 2 || len(topo.Links) != 1 {
		t.Fatalf("Default() has %d hosts and %d links, want 2 and 1", len(topo.Hosts), len(topo.Links))
	}
	c, ok := topo.Host("client")
	if !ok || c.Role != RoleClient || c.Stack != StackKernel {
		t.Errorf("client host = %+v, %v, want role client on the kernel stack", c, ok)
	}
	s, ok := topo.Host("server")
	if !ok || s.Role != RoleServer || s.Stack != StackBypass {
		t.Errorf("server host = %+v, %v, want role server on the bypass stack", s, ok)
	}
	ifs := topo.Interfaces("server")
	if len(ifs) != 1 || ifs[0].Name != "veth0" || ifs[0].Prefix != netip.MustParsePrefix("10.77.0.2/24") || ifs[0].Peer != "client" || ifs[0].MTU != 1500 {
		t.Fatalf("Interfaces(server) = %+v, want veth0 10.77.0.2/24 to client, mtu 1500", ifs)
	}
	mac := ifs[0].MAC
	if len(mac) != 6 || mac[0]&0x02 == 0 || mac[0]&0x01 != 0 {
		t.Errorf("derived MAC %v is not locally administered unicast", mac)
	}
	if again := Default().Interfaces("server")[0].MAC; !bytes.Equal(again, mac) {
		t.Errorf("derived MAC changed between loads: %v then %v", mac, again)
	}
	if other := topo.Interfaces("client")[0].MAC; bytes.Equal(other, mac) {
		t.Errorf("client and server got the same MAC %v", mac)
	}
}

func TestKernelMACs(t *testing.T) {
	topo, err := Parse("k.yaml", []byte(strings.Replace(string(DefaultYAML()), "macs: derived", "macs: kernel", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if mac := topo.Interfaces("client")[0].MAC; mac != nil {
		t.Errorf("with macs: kernel, Interfaces gave MAC %v, want none", mac)
	}
}

// parseBase is the valid topology TestParseRejects and FuzzParse vary.
const parseBase = `version: 1
hosts:
  - {name: client, role: client, stack: kernel}
  - {name: server, role: server, stack: bypass}
  - {name: sw, role: switch}
links:
  - a: {host: client, iface: veth0, addr: 10.77.0.1/24}
    b: {host: server, iface: veth0, addr: 10.77.0.2/24}
`

// threeHosts is the hosts section of parseBase, for cases that replace it.
const threeHosts = "hosts:\n  - {name: client, role: client, stack: kernel}\n  - {name: server, role: server, stack: bypass}\n  - {name: sw, role: switch}\n"

// rejects are edits of parseBase and the exact error each must give.
var rejects = []struct {
	name, old, new, want string
}{
	{"unknown key", "version: 1", "version: 1\ncolour: blue",
		`bad.yaml:2:1: colour: unknown key; allowed keys are version, macs, hosts, links`},
	{"version", "version: 1", "version: 2",
		`bad.yaml:1:10: version: 2 is not supported; set version: 1`},
	{"role", "role: client", "role: router",
		`bad.yaml:3:26: hosts[0].role: "router" is not a role; use client, server or switch`},
	{"stack", "stack: bypass", "stack: dpdk",
		`bad.yaml:4:41: hosts[1].stack: "dpdk" is not a stack; use kernel or bypass`},
	{"duplicate host", "name: sw", "name: server",
		`bad.yaml:5:12: hosts[2].name: "server" is already the name of hosts[1] (line 4); rename one`},
	{"host name", "name: sw", "name: Sw-1",
		`bad.yaml:5:12: hosts[2].name: "Sw-1" is not a host name; use 1-16 lower-case letters and digits, starting with a letter (it becomes part of a namespace name)`},
	{"unknown host", "host: server, iface", "host: nobody, iface",
		`bad.yaml:8:15: links[0].b.host: "nobody" is not a host of this topology; use one of client, server, sw`},
	{"iface name", "iface: veth0, addr: 10.77.0.2", "iface: averyveryverylongname, addr: 10.77.0.2",
		`bad.yaml:8:30: links[0].b.iface: "averyveryverylongname" is not an interface name; use 1-15 letters, digits, '_' or '.', starting with a letter`},
	{"bad prefix", "10.77.0.2/24", "10.77.0.300/24",
		`bad.yaml:8:43: links[0].b.addr: "10.77.0.300/24" is not an IPv4 prefix of length 8..30; write it like 10.77.0.1/24`},
	{"ipv6", "10.77.0.2/24", "fd00::2/64",
		`bad.yaml:8:43: links[0].b.addr: "fd00::2/64" is not an IPv4 prefix of length 8..30; write it like 10.77.0.1/24`},
	{"network address", "10.77.0.2/24", "10.77.0.0/24",
		`bad.yaml:8:43: links[0].b.addr: 10.77.0.0/24 is the network address of 10.77.0.0/24; use a host address such as 10.77.0.1/24`},
	{"broadcast address", "10.77.0.2/24", "10.77.0.255/24",
		`bad.yaml:8:43: links[0].b.addr: 10.77.0.255/24 is the broadcast address of 10.77.0.0/24; use a host address such as 10.77.0.254/24`},
	{"same address", "10.77.0.2/24", "10.77.0.1/24",
		`bad.yaml:8:43: links[0].b.addr: 10.77.0.1 is already used by client (links[0].a, line 7); pick another address`},
	{"subnets", "10.77.0.2/24", "10.77.1.2/24",
		`bad.yaml:8:43: links[0].b.addr: 10.77.1.2/24 is not in a's subnet 10.77.0.0/24; put both ends of a link in one subnet`},
	{"self link", "host: server, iface: veth0", "host: client, iface: veth1",
		`bad.yaml:8:15: links[0].b.host: "client" is a's host too; a link joins two hosts, so put b on another host`},
	{"interface twice", "host: server, iface: veth0", "host: client, iface: veth0",
		"bad.yaml:8:15: links[0].b.host: \"client\" is a's host too; a link joins two hosts, so put b on another host\n" +
			`bad.yaml:8:30: links[0].b.iface: client already has an interface "veth0" (links[0].a, line 7); rename one`},
	{"missing addr", ", addr: 10.77.0.2/24}", "}",
		`bad.yaml:8:8: links[0].b: missing key addr; add an IPv4 prefix like 10.77.0.1/24 (only switch ports may go without one)`},
	{"empty file", parseBase, "",
		`bad.yaml:1:1: the file is empty; start it with version: 1, then hosts and links`},
	{"comments only", parseBase, "# nothing here\n",
		`bad.yaml:1:1: the file is empty; start it with version: 1, then hosts and links`},
	{"empty document", parseBase, "---\n",
		`bad.yaml:1:1: the document is empty; start it with version: 1, then hosts and links`},
	{"root list", parseBase, "- version: 1\n",
		`bad.yaml:1:1: the file holds a list, not a mapping; start it with version: 1, then hosts and links`},
	{"root scalar", parseBase, "hello\n",
		`bad.yaml:1:1: the file holds "hello", not a mapping; start it with version: 1, then hosts and links`},
	{"yaml syntax", "role: switch}", "role: switch",
		`bad.yaml:5:1: yaml: did not find expected ',' or '}'; fix the YAML syntax`},
	{"second document", "addr: 10.77.0.2/24}\n", "addr: 10.77.0.2/24}\n---\nversion: 1\n",
		`bad.yaml:9:1: a second YAML document starts here; a topology file holds one, so remove it`},
	{"mtu", "addr: 10.77.0.2/24}\n", "addr: 10.77.0.2/24}\n    mtu: 100000\n",
		`bad.yaml:9:10: links[0].mtu: 100000 is outside 576..9000 (the IPv4 minimum to jumbo frames); pick an MTU in that range`},
	{"wrong type hosts", threeHosts, "hosts: 5\n",
		`bad.yaml:2:8: hosts: want a list, got the integer 5; write one host per item, like - {name: client, role: client}`},
	{"wrong type mtu", "addr: 10.77.0.2/24}\n", "addr: 10.77.0.2/24}\n    mtu: big\n",
		`bad.yaml:9:10: links[0].mtu: want an integer, got "big"; write it like mtu: 1500`},
	{"wrong type offloads", "addr: 10.77.0.2/24}\n", "addr: 10.77.0.2/24}\n    offloads: 1\n",
		`bad.yaml:9:15: links[0].offloads: want true or false, got the integer 1; write it like offloads: true`},
	{"wrong type name", "name: sw", "name: [sw]",
		`bad.yaml:5:12: hosts[2].name: want a string, got a list; write it like name: client`},
	{"wrong type version", "version: 1", "version: 1.0",
		`bad.yaml:1:10: version: want an integer, got the number 1.0; write it like version: 1`},
	{"integer beyond 64 bits", "version: 1", "version: 0xffffffffffffffff",
		`bad.yaml:1:10: version: 0xffffffffffffffff is not an integer of at most 64 bits; write it like version: 1`},
	{"end not a mapping", "b: {host: server, iface: veth0, addr: 10.77.0.2/24}", "b: [server, veth0]",
		`bad.yaml:8:8: links[0].b: want a mapping, got a list; write it like {host: client, iface: veth0, addr: 10.77.0.1/24}`},
	{"unknown key in link end", "addr: 10.77.0.2/24}", "addr: 10.77.0.2/24, mac: 02:00:00:00:00:01}",
		`bad.yaml:8:57: links[0].b.mac: unknown key; allowed keys are host, iface, addr`},
	{"duplicate yaml key", "role: server, stack: bypass", "role: server, stack: bypass, role: client",
		`bad.yaml:4:49: hosts[1].role: duplicate key (first at line 4); remove one`},
	{"missing version", "version: 1\n", "",
		`bad.yaml:1:1: version: missing; add version: 1 as the first line`},
	{"missing hosts", threeHosts, "",
		`bad.yaml:1:1: hosts: missing; add a list of hosts, like hosts: [{name: client, role: client}]`},
	{"no hosts", threeHosts, "hosts: []\n",
		`bad.yaml:2:8: hosts: is empty; a testbed needs at least one host, like - {name: client, role: client}`},
	{"missing role", "{name: sw, role: switch}", "{name: sw}",
		`bad.yaml:5:5: hosts[2]: missing key role; add role: client, server or switch`},
	{"role without value", "{name: sw, role: switch}", "{name: sw, role: }",
		`bad.yaml:5:22: hosts[2].role: has no value; add role: client, server or switch`},
	{"missing link end", "    b: {host: server, iface: veth0, addr: 10.77.0.2/24}\n", "",
		`bad.yaml:7:5: links[0]: missing key b; add b: {host: ..., iface: ..., addr: ...}`},
	{"macs", "version: 1", "version: 1\nmacs: random",
		`bad.yaml:2:7: macs: "random" is not a MAC mode; use derived or kernel`},
	{"alias", "role: server, stack: bypass}", "role: server, stack: bypass}\n  - &x {name: x, role: client}\n  - *x",
		`bad.yaml:6:5: hosts[3]: YAML aliases are not supported; write the value out`},
	// macs is checked before hosts but comes last in the file, and the
	// self link is found after b's iface.
	{"errors sorted by position", parseBase, strings.Replace(strings.Replace(parseBase, "stack: kernel", "stack: dpdk", 1), "server, iface", "client, iface", 1) + "macs: random\n",
		"bad.yaml:3:41: hosts[0].stack: \"dpdk\" is not a stack; use kernel or bypass\n" +
			"bad.yaml:8:15: links[0].b.host: \"client\" is a's host too; a link joins two hosts, so put b on another host\n" +
			"bad.yaml:8:30: links[0].b.iface: client already has an interface \"veth0\" (links[0].a, line 7); rename one\n" +
			`bad.yaml:9:7: macs: "random" is not a MAC mode; use derived or kernel`},
	// puda2mq and p18e4y48 were searched for: on host sw their derived
	// MACs collide.
	{"derived MAC clash", "links:\n", "  - {name: sw2, role: switch}\nlinks:\n  - a: {host: sw, iface: puda2mq}\n    b: {host: sw2, iface: e0}\n  - a: {host: sw, iface: p18e4y48}\n    b: {host: sw2, iface: e1}\n",
		`bad.yaml:10:26: links[1].a.iface: derived MAC 02:2d:4c:ca:14:83 of sw/p18e4y48 clashes with sw/puda2mq (links[0].a, line 8); rename one interface or set macs: kernel`},
	// Processes a host runs (run, args, control).
	{"run value", "role: server, stack: bypass}", "role: server, stack: bypass, run: daemon}",
		`bad.yaml:4:54: hosts[1].run: "daemon" is not a process; use serve or switch, or leave run out`},
	{"serve on a client", "role: client, stack: kernel}", "role: client, stack: kernel, run: serve}",
		`bad.yaml:3:54: hosts[0].run: serve runs a server, which needs role: server; change the role or the run`},
	{"switch run on a server", "role: server, stack: bypass}", "role: server, stack: bypass, run: switch}",
		"bad.yaml:4:54: hosts[1].run: switch runs the software switch, which needs role: switch; change the role or the run\n" +
			`bad.yaml:8:43: links[0].b.addr: 10.77.0.2/24 is on a port of server, which runs the software switch: its ports have no address (it answers only for its control address); remove addr`},
	{"switch without links", "role: switch}", "role: switch, stack: bypass, run: switch}",
		`bad.yaml:5:50: hosts[2].run: switch has no ports: sw has no links; link it to clients and servers`},
	{"args without run", "role: server, stack: bypass}", "role: server, stack: bypass, args: [-x]}",
		`bad.yaml:4:55: hosts[1].args: given, but the host runs no process to pass them to; add run: serve or run: switch, or remove args`},
	{"args item", "role: server, stack: bypass}", "role: server, stack: bypass, run: serve, args: [[a], -b, 0.5]}",
		`bad.yaml:4:68: hosts[1].args[0]: want a command-line argument, got a list; write it like -loss or 0.01`},
	{"args not a list", "role: server, stack: bypass}", "role: server, stack: bypass, run: serve, args: 5}",
		`bad.yaml:4:67: hosts[1].args: want a list, got the integer 5; write the arguments as a list, like args: [-loss, 0.01]`},
	{"control without switch", "role: switch}", "role: switch, control: 10.77.0.254}",
		`bad.yaml:5:39: hosts[2].control: only a host with run: switch has a control address; add run: switch or remove control`},
	{"control prefix", "role: server, stack: bypass}", "role: server, stack: bypass, control: 10.77.0.254/24}",
		"bad.yaml:4:58: hosts[1].control: \"10.77.0.254/24\" is not a unicast IPv4 address; write it like 10.77.0.254 (no prefix)\n" +
			"bad.yaml:4:58: hosts[1].control: only a host with run: switch has a control address; add run: switch or remove control"},
}

// starBase is a valid topology with a software switch between a client
// and a server; switchRejects vary it.
const starBase = `version: 1
hosts:
  - {name: client, role: client, stack: kernel}
  - {name: sw, role: switch, stack: bypass, run: switch, control: 10.77.0.254}
  - {name: s1, role: server, stack: bypass, run: serve}
links:
  - a: {host: client, iface: veth0, addr: 10.77.0.1/24}
    b: {host: sw, iface: p0}
  - a: {host: sw, iface: p1}
    b: {host: s1, iface: veth0, addr: 10.77.0.2/24}
`

var switchRejects = []struct {
	name, old, new, want string
}{
	{"control taken", "control: 10.77.0.254", "control: 10.77.0.1",
		`star.yaml:4:67: hosts[1].control: 10.77.0.1 is already used by client (links[0].a, line 7); pick an address no interface has`},
	{"control outside", "control: 10.77.0.254", "control: 10.78.0.254",
		`star.yaml:4:67: hosts[1].control: 10.78.0.254 is not a host address of the subnets the switch's ports lead to (10.77.0.0/24); hosts could not ARP for it, so pick one inside`},
	{"control broadcast", "control: 10.77.0.254", "control: 10.77.0.255",
		`star.yaml:4:67: hosts[1].control: 10.77.0.255 is not a host address of the subnets the switch's ports lead to (10.77.0.0/24); hosts could not ARP for it, so pick one inside`},
	{"switch port address", "b: {host: sw, iface: p0}", "b: {host: sw, iface: p0, addr: 10.77.0.9/24}",
		`star.yaml:8:36: links[0].b.addr: 10.77.0.9/24 is on a port of sw, which runs the software switch: its ports have no address (it answers only for its control address); remove addr`},
	{"switch needs bypass", "stack: bypass, run: switch", "stack: kernel, run: switch",
		`star.yaml:4:50: hosts[1].run: switch runs the software switch over AF_XDP, which needs stack: bypass; add stack: bypass to sw`},
	{"switch to switch", "{name: s1, role: server, stack: bypass, run: serve}", "{name: s1, role: switch, stack: bypass}",
		`star.yaml:10:15: links[1].b.host: "s1" is a switch; a port of the software switch leads to a client or a server (its port role)`},
	{"servers of two stacks", "  - {name: s1, role: server, stack: bypass, run: serve}\n", "  - {name: s1, role: server, stack: bypass, run: serve}\n  - {name: s2, role: server, stack: kernel, run: serve}\n",
		"star.yaml:6:50: hosts[3].run: s2 serves on the kernel stack and s1 does not; the switch steers a migration to any server, and kernel and bypass servers cannot exchange connections: give every server one stack (or use two testbeds)\n" +
			`star.yaml:6:50: hosts[3].run: serve takes one addressed interface and s2 has 0; give the host exactly one link end with an addr`},
	{"serve without address", "b: {host: s1, iface: veth0, addr: 10.77.0.2/24}", "b: {host: s1, iface: veth0}",
		"star.yaml:5:50: hosts[2].run: serve takes one addressed interface and s1 has 0; give the host exactly one link end with an addr\n" +
			`star.yaml:10:8: links[1].b: missing key addr; add an IPv4 prefix like 10.77.0.1/24 (only switch ports may go without one)`},
}

func TestParseSwitchRejects(t *testing.T) {
	if _, err := Parse("star.yaml", []byte(starBase)); err != nil {
		t.Fatalf("Parse(starBase) = %v, want nil", err)
	}
	for _, tc := range switchRejects {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(starBase, tc.old, tc.new, 1)
			if src == starBase {
				t.Fatalf("test case does not change the base (no %q)", tc.old)
			}
			_, err := Parse("star.yaml", []byte(src))
			if !errors.Is(err, ErrTopology) {
				t.Fatalf("Parse(%s) = %v, want an error wrapping ErrTopology", tc.name, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Parse(%s) =\n%s\nwant\n%s", tc.name, got, tc.want)
			}
		})
	}
}

func TestMigrationTopologyFile(t *testing.T) {
	topo := Migration()
	if len(topo.Hosts) != 6 || len(topo.Links) != 5 {
		t.Fatalf("Migration() has %d hosts and %d links, want 6 and 5", len(topo.Hosts), len(topo.Links))
	}
	sw, _ := topo.Host("sw")
	if sw.Role != RoleSwitch || sw.Stack != StackBypass || sw.Run != RunSwitch || sw.Control != "10.77.0.254" {
		t.Errorf("sw = %+v, want the software switch with control 10.77.0.254", sw)
	}
	want := map[string]string{"s1": "10.77.0.11/24", "s2": "10.77.0.12/24", "s3": "10.77.0.13/24", "client": "10.77.0.1/24", "client2": "10.77.0.2/24"}
	for name, addr := range want {
		h, _ := topo.Host(name)
		ifs := topo.Interfaces(name)
		if len(ifs) != 1 || ifs[0].Prefix.String() != addr || ifs[0].Peer != "sw" {
			t.Errorf("%s interfaces = %+v, want %s to sw", name, ifs, addr)
		}
		if (h.Role == RoleServer) != (h.Run == RunServe && h.Stack == StackBypass) {
			t.Errorf("%s = %+v: servers run serve on the bypass stack, clients run nothing on the kernel's", name, h)
		}
	}
}

// RunArgv derives the switch's ports from the links; its tables are
// the program SwitchProgram derives, written through P4Runtime.
func TestRunArgv(t *testing.T) {
	tb := &Testbed{Topology: Migration(), Tag: "x"}
	argv, err := tb.RunArgv("sw", "/bin/capyrun")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/bin/capyrun", "switch",
		"-port", "c1:client", "-port", "c2:client", "-port", "s1:server", "-port", "s2:server", "-port", "s3:server",
		"-p4runtime-socket", P4RuntimeSocket("x", "sw"), "-control", "10.77.0.254"}
	if !reflect.DeepEqual(argv, want) {
		t.Errorf("RunArgv(sw) =\n%q\nwant\n%q", argv, want)
	}
	prog, err := tb.SwitchProgram("sw")
	if err != nil {
		t.Fatal(err)
	}
	mac := func(host string) string { return tb.Topology.Interfaces(host)[0].MAC.String() }
	var got []string
	for _, p := range prog.Ports {
		got = append(got, fmt.Sprintf("%d %s %s", p.ID, p.Name, p.Role))
	}
	for _, h := range prog.Hosts {
		got = append(got, fmt.Sprintf("%v %d %v", h.Addr, h.Port, h.MAC))
	}
	wantProg := []string{"0 c1 client", "1 c2 client", "2 s1 server", "3 s2 server", "4 s3 server",
		"10.77.0.1 0 " + mac("client"), "10.77.0.2 1 " + mac("client2"), "10.77.0.11 2 " + mac("s1"), "10.77.0.12 3 " + mac("s2"), "10.77.0.13 4 " + mac("s3")}
	if !reflect.DeepEqual(got, wantProg) {
		t.Errorf("SwitchProgram(sw) =\n%q\nwant\n%q", got, wantProg)
	}
	// Behind a switch with a control address, servers migrate.
	argv, err = tb.RunArgv("s2", "capyrun")
	if want := []string{"capyrun", "serve", "-addr", "10.77.0.12/24", "-iface", "veth0",
		"-switch", "10.77.0.254", "-control", ControlSocket(tb.Tag, "s2"), "-records", RecordsFile(tb.Tag, "s2"), "-echo", "7"}; err != nil || !reflect.DeepEqual(argv, want) {
		t.Errorf("RunArgv(s2) = %q, %v, want %q", argv, err, want)
	}
	if _, err := tb.RunArgv("client", "capyrun"); err == nil {
		t.Error("RunArgv(client), a host without run, succeeded")
	}
	// The topology's args come last.
	topo, err := Parse("args.yaml", []byte(strings.Replace(starBase, "run: serve}", "run: serve, args: [-http, ':8080']}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	argv, _ = (&Testbed{Topology: topo, Tag: "x"}).RunArgv("s1", "capyrun")
	if want := []string{"capyrun", "serve", "-addr", "10.77.0.2/24", "-iface", "veth0",
		"-switch", "10.77.0.254", "-control", ControlSocket("x", "s1"), "-records", RecordsFile("x", "s1"), "-echo", "7",
		"-http", ":8080"}; !reflect.DeepEqual(argv, want) {
		t.Errorf("RunArgv(s1 with args) = %q, want %q", argv, want)
	}
}

func TestParseRejects(t *testing.T) {
	if _, err := Parse("base.yaml", []byte(parseBase)); err != nil {
		t.Fatalf("Parse(base) = %v, want nil", err)
	}
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(parseBase, tc.old, tc.new, 1)
			if src == parseBase {
				t.Fatalf("test case does not change the base (no %q)", tc.old)
			}
			_, err := Parse("bad.yaml", []byte(src))
			if !errors.Is(err, ErrTopology) {
				t.Fatalf("Parse(%s) = %v, want an error wrapping ErrTopology", tc.name, err)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("Parse(%s) =\n%s\nwant\n%s", tc.name, got, tc.want)
			}
		})
	}
}

func TestKernelMACsAllowDerivedClash(t *testing.T) {
	// The clash above is only a clash when MACs are derived.
	for _, tc := range rejects {
		if tc.name != "derived MAC clash" {
			continue
		}
		src := strings.Replace(strings.Replace(parseBase, tc.old, tc.new, 1), "version: 1", "version: 1\nmacs: kernel", 1)
		if _, err := Parse("kernel.yaml", []byte(src)); err != nil {
			t.Errorf("Parse with macs: kernel = %v, want nil", err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("/nonexistent/topology.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent/topology.yaml") {
		t.Errorf("Load(missing) = %v, want an error naming the file", err)
	}
}

func TestLoadPositionsErrorsInTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(parseBase, "role: server,", "role: router,", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:4:26: hosts[1].role: "router" is not a role; use client, server or switch`
	if !errors.Is(err, ErrTopology) || err.Error() != want {
		t.Errorf("Load(%s) = %v, want %s", path, err, want)
	}
}

// positioned is what every line of a Parse error must look like.
var positioned = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*:[1-9][0-9]*: [^\n]+; [^\n]+$`)

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte(parseBase))
	f.Add([]byte("version: 1\nhosts: []\n"))
	f.Add([]byte("version: 1\nhosts:\n  - {name: a, role: switch}\nlinks:\n  - {a: {host: a, iface: x}, b: {host: a, iface: y}}\n"))
	f.Add([]byte("{{{"))
	f.Add(MigrationYAML())
	for _, tc := range rejects {
		f.Add([]byte(strings.Replace(parseBase, tc.old, tc.new, 1)))
	}
	for _, tc := range switchRejects {
		f.Add([]byte(strings.Replace(starBase, tc.old, tc.new, 1)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrTopology) {
				t.Fatalf("Parse error %v does not wrap ErrTopology", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !positioned.MatchString(line) {
					t.Fatalf("Parse error line %q is not file:line:col: problem; what to change", line)
				}
			}
			return
		}
		for _, h := range topo.Hosts {
			topo.Interfaces(h.Name)
		}
		// A valid topology written back out must read the same.
		out, err := yaml.Marshal(topo)
		if err != nil {
			t.Fatalf("yaml.Marshal(%+v) = %v", topo, err)
		}
		again, err := Parse("fuzz.yaml", out)
		if err != nil {
			t.Fatalf("Parse(Marshal(topology)) = %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, topo) {
			t.Fatalf("Parse(Marshal(topology)) = %+v, want %+v", again, topo)
		}
	})
}

func TestPayloadIsDeterministicAcrossReadSizes(t *testing.T) {
	const n = 100003
	want, err := io.ReadAll(Payload(n))
	if err != nil || len(want) != n {
		t.Fatalf("ReadAll(Payload(%d)) = %d bytes, %v", n, len(want), err)
	}
	for _, chunk := range []int{1, 3, 7, 8, 9, 4096, 65537} {
		var got []byte
		r := Payload(n)
		buf := make([]byte, chunk)
		for {
			k, err := r.Read(buf)
			got = append(got, buf[:k]...)
			if err == io.EOF {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("reading in %d-byte chunks gives a different stream", chunk)
		}
	}
	short, _ := io.ReadAll(Payload(1000))
	if !bytes.Equal(short, want[:1000]) {
		t.Error("Payload(1000) is not a prefix of Payload(100003)")
	}
	sum := sha256.Sum256(want)
	if got := PayloadSHA256(n); got != hex.EncodeToString(sum[:]) {
		t.Errorf("PayloadSHA256(%d) = %s, want %x", n, got, sum)
	}
	// Pin the stream: the server and clients built from other commits
	// must agree on what /bytes sends.
	if got, want := PayloadSHA256(10<<20), "09a062a4ae991588577036143e6bab406a554def6244befee033f4b948689e0a"; got != want {
		t.Errorf("PayloadSHA256(10 MiB) = %s, want %s", got, want)
	}
	if zero, _ := io.ReadAll(Payload(0)); len(zero) != 0 {
		t.Errorf("Payload(0) gave %d bytes", len(zero))
	}
}

func BenchmarkPayload(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	buf := make([]byte, 32<<10)
	for b.Loop() {
		io.CopyBuffer(io.Discard, Payload(1<<20), buf)
	}
}
