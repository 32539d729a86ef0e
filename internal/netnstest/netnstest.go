// Package netnstest builds throwaway network namespaces and veth pairs
// for tests that need real kernel peers, and always tears them down with
// t.Cleanup (deleting a namespace deletes the veths in it). Names carry
// the test process's id and a random part, so concurrent runs never
// collide, and stay within the 15-byte interface-name limit.
package netnstest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NeedRoot skips tb, saying why, unless it runs as root with iproute2.
func NeedRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs the ip command (iproute2)")
	}
}

// Run runs a command and fails tb with its output when it fails.
func Run(tb testing.TB, argv ...string) string {
	tb.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// Tag is unique per test process and call.
func Tag() string { return fmt.Sprintf("%d%03d", os.Getpid()%100000, rand.IntN(1000)) }

// NewNS creates a namespace with loopback up and IPv6 off (no router
// solicitations or MLD reports in the way), deleted when tb ends.
func NewNS(tb testing.TB, name string) string {
	tb.Helper()
	Run(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	Run(tb, "ip", "-n", name, "link", "set", "lo", "up")
	Run(tb, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return name
}

// VethPair makes veth a in namespace nsA and its peer b in nsB, up.
func VethPair(tb testing.TB, nsA, a, nsB, b string) {
	tb.Helper()
	Run(tb, "ip", "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
	Run(tb, "ip", "-n", nsA, "link", "set", a, "up")
	Run(tb, "ip", "-n", nsB, "link", "set", b, "up")
}

// InNS runs fn on a thread switched into namespace ns. Sockets made by fn
// stay in ns after the thread switches back.
func InNS(tb testing.TB, ns string, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("open own netns: %v", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("open netns %s: %v", ns, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("enter netns %s: %v", ns, err)
	}
	defer func() {
		// A thread that cannot return stays locked, and Go retires it
		// when this goroutine ends instead of reusing it elsewhere.
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	fn()
}

// TCPCounter reads one counter of the Tcp: lines of /proc/net/snmp in ns
// (OutRsts, EstabResets, ...).
func TCPCounter(tb testing.TB, ns, name string) int64 {
	tb.Helper()
	out := Run(tb, "ip", "netns", "exec", ns, "cat", "/proc/net/snmp")
	var head []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if head == nil {
			head = f
			continue
		}
		for i := range head {
			if head[i] == name && i < len(f) {
				var v int64
				fmt.Sscan(f[i], &v)
				return v
			}
		}
	}
	tb.Fatalf("no Tcp counter %s in %s's /proc/net/snmp", name, ns)
	return 0
}
