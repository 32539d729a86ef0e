package testbed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
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

func TestParseRejects(t *testing.T) {
	base := `version: 1
hosts:
  - {name: client, role: client, stack: kernel}
  - {name: server, role: server, stack: bypass}
  - {name: sw, role: switch}
links:
  - a: {host: client, iface: veth0, addr: 10.77.0.1/24}
    b: {host: server, iface: veth0, addr: 10.77.0.2/24}
`
	if _, err := Parse("base.yaml", []byte(base)); err != nil {
		t.Fatalf("Parse(base) = %v, want nil", err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"unknown key", "version: 1", "version: 1\ncolour: blue", "field colour not found"},
		{"version", "version: 1", "version: 2", "version: 2, want 1"},
		{"role", "role: client", "role: router", `role: "router"`},
		{"stack", "stack: bypass", "stack: dpdk", `stack: "dpdk"`},
		{"duplicate host", "name: sw", "name: server", `"server" is used twice`},
		{"host name", "name: sw", "name: Sw-1", `"Sw-1" must be`},
		{"unknown host", "host: server, iface", "host: nobody, iface", `"nobody" is not a host`},
		{"iface name", "iface: veth0, addr: 10.77.0.2", "iface: averyveryverylongname, addr: 10.77.0.2", "must be 1-15"},
		{"bad prefix", "10.77.0.2/24", "10.77.0.300/24", "must be an IPv4 prefix"},
		{"ipv6", "10.77.0.2/24", "fd00::2/64", "must be an IPv4 prefix"},
		{"network address", "10.77.0.2/24", "10.77.0.0/24", "network address"},
		{"same address", "10.77.0.2/24", "10.77.0.1/24", "already used"},
		{"subnets", "10.77.0.2/24", "10.77.1.2/24", "not in the same subnet"},
		{"self link", "host: server, iface: veth0", "host: client, iface: veth1", "both ends are on host"},
		{"missing addr", ", addr: 10.77.0.2/24}", "}", "missing"},
		{"empty file", base, "", "the file is empty"},
		{"mtu", "addr: 10.77.0.2/24}\n", "addr: 10.77.0.2/24}\n    mtu: 100000\n", "mtu: 100000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.old, tc.new, 1)
			if src == base {
				t.Fatalf("test case does not change the base (no %q)", tc.old)
			}
			_, err := Parse("bad.yaml", []byte(src))
			if !errors.Is(err, ErrTopology) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.yaml") {
				t.Errorf("Parse(%s) = %v, want ErrTopology naming bad.yaml and saying %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("/nonexistent/topology.yaml"); err == nil || !strings.Contains(err.Error(), "/nonexistent/topology.yaml") {
		t.Errorf("Load(missing) = %v, want an error naming the file", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("version: 1\nhosts: []\n"))
	f.Add([]byte("version: 1\nhosts:\n  - {name: a, role: switch}\nlinks:\n  - {a: {host: a, iface: x}, b: {host: a, iface: y}}\n"))
	f.Add([]byte("{{{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		topo, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !errors.Is(err, ErrTopology) {
				t.Fatalf("Parse error %v does not wrap ErrTopology", err)
			}
			return
		}
		for _, h := range topo.Hosts {
			topo.Interfaces(h.Name)
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
