package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/tcpmig"
	softswitch "github.com/capygen/capygen/runtime/switch"
)

// switchConfig parses args as capyrun switch does, up to the config.
func switchConfig(t *testing.T, args ...string) (softswitch.Config, error) {
	t.Helper()
	var f switchFlags
	fs := switchFlagSet(&f)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.config()
}

func TestSwitchFlags(t *testing.T) {
	cfg, err := switchConfig(t,
		"-port", "c1:client", "-port", "s1:server", "-port", "s2:server:9",
		"-control", "10.77.0.254",
		"-loss", "0.01", "-dup", "0.02", "-seed", "9",
		"-fault", "c1:delay=0.5,delay-min=1ms,delay-max=2ms,dir=egress")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Ports) != 3 || cfg.Ports[0].ID != 0 || cfg.Ports[1].ID != 1 || cfg.Ports[2].ID != 9 || cfg.Ports[2].Name != "s2" {
		t.Errorf("ports = %+v, want c1 0, s1 1, s2 9", cfg.Ports)
	}
	// port_role, the hosts and min_workload are P4Runtime's to write.
	for _, pc := range cfg.Ports {
		if pc.Role != 0 {
			t.Errorf("port %s role %v: the flags wrote port_role, a back door around P4Runtime", pc.Name, pc.Role)
		}
	}
	if len(cfg.Hosts) != 0 || cfg.MinWorkload != nil {
		t.Errorf("hosts %v, min workload %v: the flags wrote tables", cfg.Hosts, cfg.MinWorkload)
	}
	if cfg.Control.Addr != netip.MustParseAddr("10.77.0.254") || cfg.Seed != 9 {
		t.Errorf("control %v, seed %d", cfg.Control, cfg.Seed)
	}
	server := softswitch.Rates{Loss: 0.01, Dup: 0.02, DelayMax: time.Millisecond}
	if f := cfg.Ports[1].Fault; f.Ingress != server || f.Egress != server {
		t.Errorf("server port faults = %+v, want %+v both ways", f, server)
	}
	if f := cfg.Ports[0].Fault; !f.Ingress.Zero() || f.Egress != (softswitch.Rates{Delay: 0.5, DelayMin: time.Millisecond, DelayMax: 2 * time.Millisecond}) {
		t.Errorf("client port faults = %+v, want the -fault egress delay only", f)
	}
	// The flags make a config the switch accepts (endpoints aside).
	for i := range cfg.Ports {
		cfg.Ports[i].Endpoint = nullEndpoint{}
	}
	if _, err := softswitch.New(cfg); err != nil {
		t.Errorf("softswitch.New(flags' config) = %v", err)
	}
}

func TestSwitchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no ports; give at least one -port IFACE:ROLE, e.g. -port veth0:client"},
		{[]string{"-port", "c1"}, `-port "c1": want IFACE:ROLE or IFACE:ROLE:ID, like veth0:client or s1:server:5`},
		{[]string{"-port", "c1:router"}, `-port "c1:router": role "router" is not client or server`},
		{[]string{"-port", "c1:client:600"}, `-port "c1:client:600": id "600" is not a port id in 0..511`},
		{[]string{"-port", "c1:client", "-port", "c1:server"}, `-port "c1:server": interface c1 is already a port; give each interface one -port`},
		{[]string{"-port", "c1:client", "-control", "switch"}, `-control "switch": "switch" is not an IPv4 address; write it like 10.77.0.254 or 10.77.0.254,02:ca:70:00:00:fe`},
		{[]string{"-port", "c1:client", "-loss", "0.1", "-fault-ports", "s9"}, `-fault-ports "s9": "s9" is not server, client, all or a -port interface (ports: c1)`},
		{[]string{"-port", "c1:client", "-loss", "0.1", "-fault-dir", "up"}, `-fault-dir "up": want ingress, egress or both`},
		{[]string{"-port", "c1:client", "-fault", "c1:loss=x"}, `-fault "c1:loss=x": strconv.ParseFloat: parsing "x": invalid syntax`},
		{[]string{"-port", "c1:client", "-fault", "c1:jitter=1ms"}, `-fault "c1:jitter=1ms": unknown key "jitter"; use loss, dup, delay, delay-min, delay-max or dir`},
		{[]string{"-port", "c1:client", "-fault", "c2:loss=0.1"}, `-fault "c2:loss=0.1": want IFACE:loss=P,dup=P,delay=P,delay-min=D,delay-max=D,dir=DIR with IFACE a -port interface`},
		{[]string{"-port", "c1:client", "-drop-stage", "prepare:1"}, `-drop-stage: stage drop "prepare:1": stage "prepare" is not one of rejected, prepare_mig, prepare_mig_ack, conn_state, conn_state_ack, conn_closed, conn_aborted, heartbeat_update, heartbeat_response (or their values); write STAGE:COUNT[@FRAGMENT][+PASS][/egress] like prepare_mig:1, conn_state:1@2 or conn_state_ack:all+1`},
	} {
		_, err := switchConfig(t, tc.args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("capyrun switch %q = %v, want %s", tc.args, err, tc.want)
		}
	}
	// A probability out of range is the switch's to refuse, naming the port.
	cfg, err := switchConfig(t, "-port", "s1:server", "-loss", "2")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Ports[0].Endpoint = nullEndpoint{}
	if _, err := softswitch.New(cfg); !errors.Is(err, softswitch.ErrConfig) {
		t.Errorf("New with -loss 2 = %v, want ErrConfig", err)
	}
}

// -drop-stage, repeated, becomes the switch's StageDrops in order.
func TestSwitchDropStageFlag(t *testing.T) {
	cfg, err := switchConfig(t, "-port", "s1:server", "-drop-stage", "prepare_mig:1", "-drop-stage", "conn_state:1@2", "-drop-stage", "conn_state_ack:all/egress")
	if err != nil {
		t.Fatal(err)
	}
	want := []softswitch.StageDrop{
		{Stage: tcpmig.StagePrepareMig, Count: 1},
		{Stage: tcpmig.StageConnState, Count: 1, OnlyFragment: true, Fragment: 2},
		{Stage: tcpmig.StageConnStateAck, Count: softswitch.DropAll, Egress: true},
	}
	if len(cfg.StageDrops) != len(want) {
		t.Fatalf("StageDrops = %+v, want %+v", cfg.StageDrops, want)
	}
	for i := range want {
		if cfg.StageDrops[i] != want[i] {
			t.Errorf("StageDrops[%d] = %+v, want %+v", i, cfg.StageDrops[i], want[i])
		}
	}
	cfg.Ports[0].Endpoint = nullEndpoint{}
	if _, err := softswitch.New(cfg); err != nil {
		t.Errorf("New = %v", err)
	}
}

// nullEndpoint stands in for an AF_XDP port in config tests.
type nullEndpoint struct{}

func (nullEndpoint) MAC() net.HardwareAddr                            { return net.HardwareAddr{2, 0, 0, 0, 0, 1} }
func (nullEndpoint) MTU() int                                         { return 1500 }
func (nullEndpoint) Send([]byte) error                                { return nil }
func (nullEndpoint) Receive(time.Duration, func([]byte)) (int, error) { return 0, nil }
func (nullEndpoint) Close() error                                     { return nil }

// flagSwitch is the software switch capyrun switch would build from args
// (parsed into f), its one port on an endpoint that drops everything.
func flagSwitch(t *testing.T, f *switchFlags, args ...string) *softswitch.Switch {
	t.Helper()
	if err := switchFlagSet(f).Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Ports[0].Endpoint = nullEndpoint{}
	sw, err := softswitch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sw
}

// -program deploys through the switch's own P4Runtime socket: after it,
// the pipeline holds the program, and nothing else wrote it.
func TestSwitchProgramFlag(t *testing.T) {
	dir := t.TempDir()
	program := filepath.Join(dir, "rack.yaml")
	os.WriteFile(program, []byte("ports:\n  - {id: 0, role: server}\nhosts:\n  - {addr: 10.77.0.11, port: 0, mac: \"02:00:00:00:00:0b\"}\n"), 0o644)
	f := switchFlags{}
	sw := flagSwitch(t, &f, "-port", "s1:server", "-p4runtime", "", "-p4runtime-socket", filepath.Join(dir, "sw.sock"), "-program", program)
	if n := len(sw.Pipeline().ReadTables().PortRoles); n != 0 {
		t.Fatalf("%d port roles before the deploy: the flags wrote port_role", n)
	}
	stop, err := f.serveP4Runtime(sw)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := f.deployProgram(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := sw.Pipeline().ReadTables()
	if len(ts.PortRoles) != 1 || len(ts.Hosts) != 1 || len(ts.L2) != 1 {
		t.Errorf("tables after -program = %+v", ts)
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, "sw.sock")); !os.IsNotExist(err) {
		t.Errorf("the P4Runtime socket outlived the switch: %v", err)
	}
}

// -program dials the listener the switch bound: a -p4runtime on one
// address or on port 0, or a relative -p4runtime-socket.
func TestSwitchProgramDialsWhatItServes(t *testing.T) {
	dir := t.TempDir()
	program := filepath.Join(dir, "rack.yaml")
	os.WriteFile(program, []byte("ports:\n  - {id: 0, role: server}\n"), 0o644)
	deploy := func(t *testing.T, args ...string) {
		t.Helper()
		f := switchFlags{}
		sw := flagSwitch(t, &f, append([]string{"-port", "s1:server", "-program", program}, args...)...)
		stop, err := f.serveP4Runtime(sw)
		if err != nil {
			t.Skipf("serve P4Runtime on %q: %v", args, err)
		}
		defer stop()
		if err := f.deployProgram(context.Background()); err != nil {
			t.Fatalf("capyrun switch %q -program: %v", args, err)
		}
		if n := len(sw.Pipeline().ReadTables().PortRoles); n != 1 {
			t.Errorf("capyrun switch %q -program: %d port roles, want 1", args, n)
		}
	}
	t.Run("port 0", func(t *testing.T) { deploy(t, "-p4runtime", "127.0.0.1:0") })
	t.Run("wildcard", func(t *testing.T) { deploy(t, "-p4runtime", ":0") })
	t.Run("one address", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 here: %v", err)
		}
		addr := l.Addr().String()
		l.Close()
		deploy(t, "-p4runtime", addr)
	})
	t.Run("relative socket", func(t *testing.T) {
		t.Chdir(t.TempDir())
		deploy(t, "-p4runtime", "", "-p4runtime-socket", "sw.sock")
	})
}
