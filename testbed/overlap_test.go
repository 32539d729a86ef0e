package testbed

import (
	"strings"
	"testing"
)

// twoServers links a client to two servers; overlaps vary its addresses.
const twoServers = `version: 1
hosts:
  - {name: client, role: client}
  - {name: s1, role: server}
  - {name: s2, role: server}
links:
  - a: {host: client, iface: veth0, addr: 10.98.0.1/24}
    b: {host: s1, iface: veth0, addr: 10.98.0.2/24}
  - a: {host: client, iface: veth1, addr: 10.98.1.1/24}
    b: {host: s2, iface: veth0, addr: 10.98.1.2/24}
`

// TestParseOverlappingSubnets: a host with two interfaces in overlapping
// subnets routes them out of one, so the peer on the other is
// unreachable; Parse refuses it, naming both ends.
func TestParseOverlappingSubnets(t *testing.T) {
	if _, err := Parse("multi.yaml", []byte(twoServers)); err != nil {
		t.Fatalf("Parse(two subnets) = %v, want nil", err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"one subnet", "10.98.1.1/24}\n    b: {host: s2, iface: veth0, addr: 10.98.1.2/24}", "10.98.0.3/24}\n    b: {host: s2, iface: veth0, addr: 10.98.0.4/24}",
			`multi.yaml:9:43: links[1].a.addr: 10.98.0.3/24 overlaps 10.98.0.0/24, the subnet of client's veth0 (links[0].a.addr, line 7): the kernel would route both out of one interface, so a peer behind the other is unreachable; put this link in another subnet`},
		{"nested subnet", "10.98.0.1/24}\n    b: {host: s1, iface: veth0, addr: 10.98.0.2/24}", "10.98.0.1/16}\n    b: {host: s1, iface: veth0, addr: 10.98.0.2/16}",
			`multi.yaml:9:43: links[1].a.addr: 10.98.1.1/24 overlaps 10.98.0.0/16, the subnet of client's veth0 (links[0].a.addr, line 7): the kernel would route both out of one interface, so a peer behind the other is unreachable; put this link in another subnet`},
		// One link's two ends share a subnet by design; a link back to
		// the same host is reported once, as such.
		{"self link", "{host: s2, iface: veth0, addr: 10.98.1.2/24}", "{host: client, iface: veth2, addr: 10.98.1.2/24}",
			`multi.yaml:10:15: links[1].b.host: "client" is a's host too; a link joins two hosts, so put b on another host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(twoServers, tc.old, tc.new, 1)
			if src == twoServers {
				t.Fatalf("the edit changes nothing (no %q)", tc.old)
			}
			_, err := Parse("multi.yaml", []byte(src))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse(%s) =\n%v\nwant\n%s", tc.name, err, tc.want)
			}
		})
	}
}

// TestParseOctalMTU: YAML reads mtu: 01500 as octal 832; the topology
// loader refuses it instead of bringing up veths with that MTU.
func TestParseOctalMTU(t *testing.T) {
	src := strings.Replace(string(DefaultYAML()), "mtu: 1500", "mtu: 01500", 1)
	_, err := Parse("oct.yaml", []byte(src))
	want := `oct.yaml:25:10: links[0].mtu: 01500 is not a decimal or 0x hex integer (YAML reads a leading 0 as octal); write it in decimal or 0x hex, like mtu: 1500`
	if err == nil || err.Error() != want {
		t.Errorf("Parse(mtu: 01500) =\n%v\nwant\n%s", err, want)
	}
	if _, err := Parse("hex.yaml", []byte(strings.Replace(string(DefaultYAML()), "mtu: 1500", "mtu: 0x5dc", 1))); err != nil {
		t.Errorf("Parse(mtu: 0x5dc) = %v, want nil", err)
	}
}
