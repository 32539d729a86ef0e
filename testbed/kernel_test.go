package testbed

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/runtime/migrate"
)

// TestKernelRestoreRefused: the kernel refuses a restore (the connection's
// address pair is taken on every other server: a repair-mode socket
// squats on it, so the restore's connect fails with EADDRNOTAVAIL). The
// target refuses the state and sends no CONN_STATE_ACK, the origin gives
// up as the spec says (abort_connection: the connection is reset), and no
// server is left with a socket for the connection: never two live ones.
func TestKernelRestoreRefused(t *testing.T) {
	needNetns(t, "curl", "iptables", "ss")
	bed := upTopology(t, Kernel(), Options{Args: map[string][]string{RoleServer: {"-sndbuf", "262144"}}})
	srv := dialServers(t, bed)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "download")
	done := make(chan curlResult, 1)
	go func() {
		done <- runCurl(ctx, bed, "client", "-m", "20", "--limit-rate", "2M", "-o", path, fmt.Sprintf("http://%s/bytes?n=%d", originIP, 64<<20))
	}()
	conn := srv.waitSession(t, "s1", clientIP)
	client := netip.MustParseAddrPort(conn)

	var squatters []func()
	for _, h := range []string{"s2", "s3"} {
		host, _ := bed.Topology.Host(h)
		var local netip.Addr
		for _, ifc := range bed.Topology.Interfaces(host.Name) {
			if ifc.Prefix.IsValid() {
				local = ifc.Prefix.Addr()
			}
		}
		var fd int
		err := bed.InNamespace(h, func() (err error) {
			fd, err = squat(netip.AddrPortFrom(local, 80), client)
			return err
		})
		if err != nil {
			t.Fatalf("squatting on %v:80-%v on %s: %v", local, client, h, err)
		}
		squatters = append(squatters, func() { unix.Close(fd) }) // in repair mode: closes silently
	}
	defer func() {
		for _, f := range squatters {
			f()
		}
	}()

	rep := srv.migrateConn(t, "s1", conn)
	r := <-done
	if r.err == nil {
		t.Errorf("curl finished the download, want it reset by the abort")
	}
	t.Logf("migrate: %s; curl: %v", rep.Result, strings.TrimSpace(r.out))

	// The records tell how it ended (the control reply may come before
	// the end on a loaded machine: "pending").
	var aborted, refused int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		aborted, refused = 0, 0
		for _, rec := range srv.records(t) {
			if rec.Client != client {
				continue
			}
			switch {
			case rec.Role == migrate.RoleOrigin && rec.Result == migrate.ResultAborted.String():
				aborted++
			case rec.Role == migrate.RoleTarget && rec.Result == "refused":
				refused++
				if !strings.Contains(rec.Err, "connect") {
					t.Errorf("refused restore's error %q does not name the connect step", rec.Err)
				}
			}
		}
		if (aborted > 0 && refused > 0) || time.Now().After(deadline) {
			break
		}
	}
	if aborted == 0 {
		t.Errorf("no origin record of %v ended aborted (the spec's give-up after a refused restore); the control reply said %q", client, rep.Result)
	}
	if refused == 0 {
		t.Errorf("no target refused the state of %v", client)
	}
	for _, f := range squatters {
		f()
	}
	squatters = nil
	for _, h := range []string{"s1", "s2", "s3"} {
		out, err := bed.Exec(h, "ss", "-tnH", "state", "all", "dst", client.String())
		if err != nil {
			t.Fatalf("ss on %s: %v", h, err)
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			t.Errorf("%s still has a socket for %v after the abort:\n%s", h, client, s)
		}
	}
}

// squat takes the address pair local-remote with a repair-mode socket:
// connected without a SYN, so nothing reaches remote.
func squat(local, remote netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, step := range []func() error{
		func() error { return unix.SetsockoptInt(fd, unix.SOL_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON) },
		func() error {
			return unix.Bind(fd, &unix.SockaddrInet4{Port: int(local.Port()), Addr: local.Addr().As4()})
		},
		func() error {
			return unix.Connect(fd, &unix.SockaddrInet4{Port: int(remote.Port()), Addr: remote.Addr().As4()})
		},
	} {
		if err := step(); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// TestKernelMigrateFailures is TestMigrateFailures' aborts between kernel-
// mode servers: the origin gives up on a state whose CONN_STATE or
// CONN_STATE_ACK never gets through, and the client must take a reset at
// once. With the ACKs lost, the target served the client meanwhile, so the
// origin socket's own RST is out of the client's window: the probes that
// follow it (probe.go) draw the reset the client takes. Also the abort of
// a connection that had just moved from s1, whose tombstone the abort's
// conn_aborted ends.
func TestKernelMigrateFailures(t *testing.T) {
	needNetns(t, "curl", "tcpdump")
	for _, tc := range []failure{
		{rule: "conn_state:all@3", result: "aborted", rstSlack: 200 * time.Millisecond},
		{rule: "conn_state_ack:all", result: "aborted", rstSlack: 200 * time.Millisecond},
		{rule: "conn_state_ack:all+1", result: "aborted", rstSlack: 200 * time.Millisecond, afterAMove: true},
	} {
		t.Run(tc.rule, func(t *testing.T) { migrationFailure(t, Kernel(), tc) })
	}
}
