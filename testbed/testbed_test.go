package testbed

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// needNetns skips unless the test can create namespaces.
func needNetns(tb testing.TB, tools ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces and veths")
	}
	if err := CheckTools(append([]string{"ip", "ethtool"}, tools...)...); err != nil {
		tb.Skip(err)
	}
}

// up brings topo up and registers its tear-down, which also checks that
// nothing of it is left.
func up(tb testing.TB, topo *Topology) *Testbed {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var opts Options
	for _, h := range topo.Hosts {
		if h.Run != "" {
			// The hosts' processes are capygen's, not this test binary's.
			opts.Binary = capyrun(tb)
		}
	}
	bed, err := topo.UpWith(ctx, opts)
	if err != nil {
		tb.Fatalf("Up: %v", err)
	}
	tb.Cleanup(func() {
		if err := bed.Down(); err != nil {
			tb.Errorf("Down: %v", err)
		}
		assertGone(tb, bed.Tag)
	})
	return bed
}

// assertGone checks that no namespace of tag exists and that none of the
// root namespace's links mention it.
func assertGone(tb testing.TB, tag string) {
	tb.Helper()
	if nss, err := Namespaces(tag); err != nil || len(nss) > 0 {
		tb.Errorf("after Down, namespaces %v (err %v) of testbed %s are left", nss, err, tag)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil || strings.Contains(string(out), NamespacePrefix+tag+"-") {
		tb.Errorf("ip netns list still shows testbed %s (err %v):\n%s", tag, err, out)
	}
	out, err = exec.Command("ip", "-o", "link").Output()
	if err != nil || strings.Contains(string(out), NamespacePrefix+tag) {
		tb.Errorf("ip link still shows testbed %s (err %v):\n%s", tag, err, out)
	}
}

// TestDownAll: DownAll, which TestMain's signal handler runs before the
// binary exits, takes down every testbed still up (no test of this
// package runs in parallel, so it is only this one's).
func TestDownAll(t *testing.T) {
	needNetns(t)
	bed := up(t, Default())
	if err := DownAll(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, bed.Tag)
}

func TestUpDown(t *testing.T) {
	needNetns(t)
	bed := up(t, Default())
	nss, err := Namespaces(bed.Tag)
	if err != nil || len(nss) != 2 {
		t.Fatalf("Namespaces(%s) = %v, %v, want client and server", bed.Tag, nss, err)
	}
	// The kernel host has its address; the bypass host leaves it to
	// capygen's stack.
	out, err := bed.Exec("client", "ip", "-o", "-4", "addr", "show", "dev", "veth0")
	if err != nil || !strings.Contains(string(out), "10.77.0.1/24") {
		t.Errorf("client veth0 addresses = %q, %v, want 10.77.0.1/24", out, err)
	}
	out, err = bed.Exec("server", "ip", "-o", "-4", "addr", "show", "dev", "veth0")
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("server (bypass) veth0 addresses = %q, %v, want none", out, err)
	}
	ifs, err := bed.Interfaces("server")
	if err != nil || len(ifs) != 1 || ifs[0].MAC.String() != Default().Interfaces("server")[0].MAC.String() {
		t.Errorf("Interfaces(server) = %+v, %v, want veth0 with the derived MAC", ifs, err)
	}
	out, err = bed.Exec("client", "ethtool", "-k", "veth0")
	if err != nil || !strings.Contains(string(out), "tx-checksumming: off") || !strings.Contains(string(out), "generic-segmentation-offload: off") {
		t.Errorf("client veth0 offloads still on (err %v):\n%s", err, out)
	}
	if _, err := bed.Exec("nohost", "true"); !errors.Is(err, ErrNoHost) {
		t.Errorf("Exec on an unknown host = %v, want ErrNoHost", err)
	}

	// A process that exits while a child of its own keeps its output
	// open is done within the wait delay, not when the child ends.
	defer func(d time.Duration) { cmdWaitDelay = d }(cmdWaitDelay)
	cmdWaitDelay = 500 * time.Millisecond
	g, err := bed.Start("client", "sh", "-c", "sleep 60 & echo started")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		t.Errorf("sh exited but Done is not closed 10 s later: its child holds the output pipe")
	}

	// A background process is stopped by Down.
	p, err := bed.Start("client", "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.Down(); err != nil {
		t.Fatalf("Down = %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Errorf("sleep (pid %d) still running after Down", p.PID())
	}
	if _, err := bed.Start("client", "true"); !errors.Is(err, ErrDown) {
		t.Errorf("Start after Down = %v, want ErrDown", err)
	}
	if err := bed.Down(); err != nil {
		t.Errorf("second Down = %v, want nil", err)
	}
	assertGone(t, bed.Tag)
}

// A bring-up that fails halfway removes what it created.
func TestUpFailureCleansUp(t *testing.T) {
	needNetns(t)
	// "lo" passes validation but every namespace already has one, so the
	// link fails after both namespaces exist.
	topo, err := Parse("half.yaml", []byte(strings.Replace(string(DefaultYAML()), "{host: server, iface: veth0", "{host: server, iface: lo", 1)))
	if err != nil {
		t.Fatal(err)
	}
	tag := "h" + strconv.Itoa(os.Getpid())
	bed, err := topo.UpTagged(context.Background(), tag)
	if err == nil {
		bed.Down()
		t.Fatal("Up with a clashing interface name succeeded")
	}
	if !strings.Contains(err.Error(), "links[0]") {
		t.Errorf("Up error %v does not name the failing link", err)
	}
	assertGone(t, tag)

	// A cancelled context stops bring-up the same way.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Default().UpTagged(ctx, tag); !errors.Is(err, context.Canceled) {
		t.Errorf("Up with a cancelled context = %v, want context.Canceled", err)
	}
	assertGone(t, tag)
}

func TestUpRejectsBadTagAndDuplicates(t *testing.T) {
	needNetns(t)
	if _, err := Default().UpTagged(context.Background(), "Bad-Tag"); !errors.Is(err, ErrTopology) {
		t.Errorf("UpTagged(Bad-Tag) = %v, want ErrTopology", err)
	}
	bed := up(t, Default())
	if _, err := Default().UpTagged(context.Background(), bed.Tag); err == nil || !strings.Contains(err.Error(), "already up") {
		t.Errorf("second UpTagged(%s) = %v, want an 'already up' error", bed.Tag, err)
	}
}

// The migration topology: a client, a switch host and two servers, each
// server on its own switch port. Ports of the switch carry no address.
func TestUpSwitchTopology(t *testing.T) {
	needNetns(t)
	topo, err := Parse("star.yaml", []byte(`version: 1
hosts:
  - {name: client, role: client, stack: kernel}
  - {name: sw, role: switch, stack: bypass}
  - {name: s1, role: server, stack: bypass}
  - {name: s2, role: server, stack: bypass}
links:
  - a: {host: client, iface: veth0, addr: 10.77.0.1/24}
    b: {host: sw, iface: p0}
  - a: {host: sw, iface: p1}
    b: {host: s1, iface: veth0, addr: 10.77.0.2/24}
  - a: {host: sw, iface: p2}
    b: {host: s2, iface: veth0, addr: 10.77.0.3/24}
`))
	if err != nil {
		t.Fatal(err)
	}
	bed := up(t, topo)
	ifs, err := bed.Interfaces("sw")
	if err != nil || len(ifs) != 3 {
		t.Fatalf("Interfaces(sw) = %+v, %v, want 3 ports", ifs, err)
	}
	for i, ifc := range ifs {
		if ifc.Prefix.IsValid() {
			t.Errorf("switch port %s has address %s, want none", ifc.Name, ifc.Prefix)
		}
		if want := []string{"client", "s1", "s2"}[i]; ifc.Peer != want {
			t.Errorf("switch port %s leads to %s, want %s", ifc.Name, ifc.Peer, want)
		}
		// Carrier comes up asynchronously (linkwatch), so allow a moment.
		var out []byte
		for range 40 {
			if out, err = bed.Exec("sw", "cat", "/sys/class/net/"+ifc.Name+"/operstate"); err != nil || strings.TrimSpace(string(out)) == "up" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || strings.TrimSpace(string(out)) != "up" {
			t.Errorf("switch port %s operstate = %q, %v, want up", ifc.Name, out, err)
		}
	}
}
