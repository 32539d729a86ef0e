package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/control"
	softswitch "github.com/capygen/capygen/runtime/switch"
)

// Tests of the migration testbed (testbed/migration.yaml): Linux kernel
// clients reach capygen servers through capygen's software switch, which
// runs the generated pipeline on AF_XDP ports in its own namespace.

// upMigration brings the migration topology up with its processes
// (capyrun switch, capyrun serve on each server; args appended per role
// or host) and registers its tear-down, which checks nothing is left and,
// when the test failed, logs what every process said.
func upMigration(t testing.TB, opts Options) *Testbed {
	t.Helper()
	return upTopology(t, Migration(), opts)
}

// upTopology is upMigration for another migration topology (Kernel).
func upTopology(t testing.TB, topo *Topology, opts Options) *Testbed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts.Binary = capyrun(t)
	bed, err := topo.UpWith(ctx, opts)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := bed.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
		if t.Failed() {
			for _, h := range bed.Topology.Hosts {
				if p := bed.Proc(h.Name); p != nil {
					t.Logf("%s (%s) said:\n%s", h.Name, h.Run, p.Output())
				}
			}
		}
		assertGone(t, bed.Tag)
		// The servers' migration records: kept for a failed test to read,
		// removed otherwise (tens of MB after thousands of moves).
		if t.Failed() {
			t.Logf("migration records kept in %s", RunDir(bed.Tag))
		} else {
			os.RemoveAll(RunDir(bed.Tag))
		}
	})
	return bed
}

var switchReportRE = regexp.MustCompile(`(?m)^switch-report-json (\{.*\})$`)

// switchReport asks the switch for its report (SIGUSR1) and parses the
// JSON line it prints.
func switchReport(t testing.TB, bed *Testbed) softswitch.Report {
	t.Helper()
	p := bed.Proc("sw")
	before := len(switchReportRE.FindAllString(p.Output(), -1))
	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatalf("signal the switch (pid %d): %v", p.PID(), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := switchReportRE.FindAllStringSubmatch(p.Output(), -1); len(m) > before {
			var r softswitch.Report
			if err := json.Unmarshal([]byte(m[len(m)-1][1]), &r); err != nil {
				t.Fatalf("switch report %s: %v", m[len(m)-1][1], err)
			}
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the switch printed no report within 10s of SIGUSR1:\n%s", p.Output())
	return softswitch.Report{}
}

// download fetches n bytes of /bytes with curl from host and checks
// their sha256.
func download(t *testing.T, bed *Testbed, host, addr string, n int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "download")
	url := fmt.Sprintf("http://%s/bytes?n=%d", addr, n)
	if _, err := bed.Exec(host, "curl", "-sS", "--fail", "-m", "90", "-o", path, url); err != nil {
		t.Error(err)
		return
	}
	if got, want := sha256File(t, path), PayloadSHA256(n); got != want {
		t.Errorf("%s: curl %s: sha256 %s, want %s", host, url, got, want)
	}
}

func ping(t *testing.T, bed *Testbed, host, addr string) {
	t.Helper()
	out, err := bed.Exec(host, "ping", "-c", "5", "-i", "0.05", "-W", "2", addr)
	if err != nil || !strings.Contains(string(out), " 0% packet loss") {
		t.Errorf("%s: ping %s: %v\n%s", host, addr, err, out)
	}
}

var migrationServers = []string{"10.77.0.11", "10.77.0.12", "10.77.0.13"}

// TestMigrationTestbed: kernel curl and ping from the clients reach every
// server through the switch, byte for byte, the switch answers for its
// control address, and its report accounts for the traffic with no drop.
func TestMigrationTestbed(t *testing.T) {
	needNetns(t, "curl", "ping")
	bed := upMigration(t, Options{})

	for _, addr := range append(migrationServers, "10.77.0.254") {
		ping(t, bed, "client", addr)
	}
	ping(t, bed, "client2", "10.77.0.12")
	for _, addr := range migrationServers {
		download(t, bed, "client", addr, bulk)
	}
	// Both clients at once, to two servers.
	var wg sync.WaitGroup
	for host, addr := range map[string]string{"client": "10.77.0.11", "client2": "10.77.0.13"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			download(t, bed, host, addr, bulk)
		}()
	}
	wg.Wait()

	r := switchReport(t, bed)
	t.Logf("switch report:\n%s", r)
	for _, p := range r.Ports {
		if p.RxFrames == 0 || p.TxFrames == 0 {
			t.Errorf("port %s moved rx %d tx %d frames, want traffic both ways on every port", p.Name, p.RxFrames, p.TxFrames)
		}
		if p.TxErrors != 0 || p.FlushErrors != 0 {
			t.Errorf("port %s: %d transmit errors, %d failed flushes", p.Name, p.TxErrors, p.FlushErrors)
		}
		if p.Link != nil && (p.Link.RxDropped != 0 || p.Link.TxDropped != 0) {
			t.Errorf("port %s: the AF_XDP socket dropped rx %d tx %d frames", p.Name, p.Link.RxDropped, p.Link.TxDropped)
		}
	}
	// Five 10 MiB downloads are at least 5*10 MiB/1448 data segments.
	if min := uint64(5 * bulk / 1448); r.Verdicts.Forwarded < min {
		t.Errorf("forwarded %d frames, want at least the %d segments of the downloads", r.Verdicts.Forwarded, min)
	}
	if r.Drops() != 0 || r.Verdicts.NoEgress != 0 || r.Verdicts.UnknownIngress != 0 || r.FaultDrops() != 0 {
		t.Errorf("unexpected drops: pipeline %v, no-egress %d, unknown ingress %d, faults %d",
			r.Pipeline.Drops, r.Verdicts.NoEgress, r.Verdicts.UnknownIngress, r.FaultDrops())
	}
	if r.Verdicts.Flooded == 0 {
		t.Error("nothing was flooded: the clients' ARP requests should have been")
	}
	if r.Control == nil || r.Control.ARPReplies == 0 || r.Control.EchoReplies < 5 {
		t.Errorf("control = %+v, want the client's ARP and 5 pings of 10.77.0.254 answered", r.Control)
	}
	for _, p := range r.Ports {
		if want := map[bool]string{true: "client", false: "server"}[strings.HasPrefix(p.Name, "c")]; p.Role != want {
			t.Errorf("port %s role %q, want %q as the deploy wrote it", p.Name, p.Role, want)
		}
	}
	checkP4Runtime(t, bed)
}

// checkP4Runtime reads the switch through P4Runtime alone, as an observer
// beside the testbed: its tables hold the topology's program, a server
// holds min_workload (the heartbeats), no frame was dropped, and the
// directory's occupancy is the switch report's.
func checkP4Runtime(t *testing.T, bed *Testbed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := control.Dial(ctx, "unix://"+P4RuntimeSocket(bed.Tag, "sw"), control.Options{Observe: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("switch state through P4Runtime:\n%s", st)
	prog, err := bed.SwitchProgram("sw")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Ports) != len(prog.Ports) || len(st.Hosts) != len(prog.Hosts) || len(st.L2) != len(prog.Hosts) {
		t.Errorf("P4Runtime reads %d ports, %d hosts, %d MACs; the program has %d ports and %d hosts",
			len(st.Ports), len(st.Hosts), len(st.L2), len(prog.Ports), len(prog.Hosts))
	}
	for i, p := range prog.Ports {
		if i < len(st.Ports) && (st.Ports[i].ID != p.ID || st.Ports[i].Role != p.Role) {
			t.Errorf("port %d reads %+v, want %+v", i, st.Ports[i], p)
		}
	}
	if st.Empty || !slices.Contains(migrationServers, st.MinWorkload.Holder.String()) {
		t.Errorf("min_workload = %+v (empty %t), want a server's heartbeat in it", st.MinWorkload, st.Empty)
	}
	for reason, n := range st.Drops {
		if n != 0 {
			t.Errorf("P4Runtime drop counter %s = %d, want 0", reason, n)
		}
	}
	r := switchReport(t, bed)
	for l, lv := range st.Levels {
		if lv.Used != r.Directory[l].Valid {
			t.Errorf("directory level %d: %d used through P4Runtime, %d in the report", l, lv.Used, r.Directory[l].Valid)
		}
	}
}

// TestMigrationTestbedFaults: with the switch dropping and duplicating 1%
// of the frames on its server ports, both ways (AF_XDP links have no
// other fault point), downloads still arrive intact.
func TestMigrationTestbedFaults(t *testing.T) {
	needNetns(t, "curl")
	// The switch also rewrites a JSON report file: HostArgs gives the
	// switch its path once the testbed is up.
	reportPath := filepath.Join(t.TempDir(), "switch.json")
	bed := upMigration(t, Options{
		Args: map[string][]string{RoleSwitch: {"-loss", "0.01", "-dup", "0.01", "-fault-ports", "server", "-seed", "3"}},
		HostArgs: func(tb *Testbed, h Host) []string {
			if h.Run == RunSwitch {
				return []string{"-report", reportPath, "-report-every", "50ms"}
			}
			return nil
		},
	})
	if argv := bed.Proc("sw").Argv; !strings.Contains(strings.Join(argv, " "), "-loss 0.01 -dup 0.01 -fault-ports server -seed 3 -report "+reportPath) {
		t.Errorf("switch argv %q lacks the role's args then the host's", argv)
	}
	download(t, bed, "client", "10.77.0.11", bulk)
	download(t, bed, "client2", "10.77.0.13", bulk)
	r := switchReport(t, bed)
	t.Logf("switch report:\n%s", r)
	for _, name := range []string{"s1", "s3"} {
		p, _ := r.Port(name)
		if p.Ingress.Dropped == 0 || p.Egress.Dropped == 0 || p.Ingress.Duplicated == 0 || p.Egress.Duplicated == 0 {
			t.Errorf("port %s faults: ingress %+v egress %+v; want drops and duplicates both ways", name, p.Ingress, p.Egress)
		}
	}
	for _, name := range []string{"c1", "c2"} {
		if p, _ := r.Port(name); p.Ingress != (softswitch.FaultReport{}) || p.Egress != (softswitch.FaultReport{}) {
			t.Errorf("client port %s has faults %+v %+v; -fault-ports server should spare it", name, p.Ingress, p.Egress)
		}
	}
	if r.Drops() != 0 {
		t.Errorf("pipeline drops %v under faults, want none (faults are not pipeline drops)", r.Pipeline.Drops)
	}
	// The report file follows within a few of its 50ms rewrites.
	var file softswitch.Report
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(reportPath); err == nil && json.Unmarshal(b, &file) == nil && file.Verdicts.Forwarded >= r.Verdicts.Forwarded {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if file.Verdicts.Forwarded < r.Verdicts.Forwarded {
		t.Errorf("report file %s shows %d forwarded, want at least the %d of the SIGUSR1 report", reportPath, file.Verdicts.Forwarded, r.Verdicts.Forwarded)
	}
}

// capyrun testbed up -detach starts the migration testbed's processes
// and returns; down stops them by PID, prints the switch's last report
// and leaves nothing but the logs.
func TestCLIMigrationDetach(t *testing.T) {
	needNetns(t, "ping")
	bin := capyrun(t)
	tag := "cm" + strconv.Itoa(os.Getpid()%1000000)
	t.Cleanup(func() {
		DownTag(tag)
		os.RemoveAll(RunDir(tag))
	})
	path := filepath.Join(t.TempDir(), "migration.yaml")
	if err := os.WriteFile(path, MigrationYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "testbed", "up", "-topology", path, "-name", tag, "-detach").CombinedOutput()
	if err != nil {
		t.Fatalf("capyrun testbed up -detach: %v\n%s", err, out)
	}
	for _, want := range []string{"capyrun switch -port c1:client", "capyrun serve -addr 10.77.0.13/24", "kill -USR1", "capyrun testbed down -name " + tag} {
		if !strings.Contains(string(out), want) {
			t.Errorf("up -detach output lacks %q:\n%s", want, out)
		}
	}
	// Still running after up returned.
	bed := &Testbed{Topology: Migration(), Tag: tag}
	if out, err := bed.Exec("client", "ping", "-c", "2", "-i", "0.1", "-W", "2", "10.77.0.12"); err != nil {
		t.Errorf("ping through the detached testbed: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "testbed", "down", "-name", tag).CombinedOutput()
	if err != nil {
		t.Fatalf("capyrun testbed down: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sw, last report:") || !strings.Contains(string(out), "switch report at") {
		t.Errorf("down did not print the switch's last report:\n%s", out)
	}
	assertGone(t, tag)
	if logs, _ := filepath.Glob(filepath.Join(RunDir(tag), "*.log")); len(logs) != 4 {
		t.Errorf("logs %v, want one per process (sw, s1, s2, s3)", logs)
	}
}
