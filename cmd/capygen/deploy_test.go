package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/p4rt"
)

// switchServer is our P4Runtime server in front of a fresh pipeline, on
// loopback, stopped with the test; target is its address.
func switchServer(t *testing.T) (pipe *pipeline.Pipeline, target string) {
	t.Helper()
	pipe = pipeline.New()
	srv, err := p4rt.New(p4rt.Config{Pipeline: pipe})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP here: %v", err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return pipe, lis.Addr().String()
}

// capygen deploy against a P4Runtime server on loopback: the program's
// entries land in the switch's pipeline.
func TestDeployCommand(t *testing.T) {
	pipe, target := switchServer(t)
	dir := t.TempDir()
	program := filepath.Join(dir, "rack.yaml")
	os.WriteFile(program, []byte(`ports:
  - {id: 0, role: client}
  - {id: 1, role: server}
hosts:
  - {addr: 10.77.0.1, port: 0, mac: "02:00:00:00:00:01"}
  - {addr: 10.77.0.11, port: 1, mac: "02:00:00:00:00:0b"}
min_workload: {holder: 10.77.0.11, load: 4}
`), 0o644)
	var stderr bytes.Buffer
	if code := prog.Run([]string{"deploy", "-target", target, "-program", program, "-show"}, &stderr); code != 0 {
		t.Fatalf("capygen deploy = exit %d: %s", code, stderr.String())
	}
	ts := pipe.ReadTables()
	if ts.PortRoles[1] != pipeline.RoleServer || ts.Hosts[[4]byte{10, 77, 0, 11}].Port != 1 || len(ts.L2) != 2 {
		t.Errorf("pipeline tables after deploy = %+v", ts)
	}
	if h, l := pipe.ReadMinWorkload(); h != [4]byte{10, 77, 0, 11} || l != 4 {
		t.Errorf("min_workload = %v %d, want 10.77.0.11 4", h, l)
	}

	// An observer reads while the switch has no primary, or another one.
	stderr.Reset()
	if code := prog.Run([]string{"deploy", "-target", target, "-election", "0", "-pipeline=false", "-show"}, &stderr); code != 0 {
		t.Errorf("capygen deploy -election 0 -show = exit %d: %s", code, stderr.String())
	}

	// Errors name what to change.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy"}, "-target is required"},
		{[]string{"deploy", "-target", target, "-program", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{[]string{"deploy", "-target", target, "-p4info", program}, "-p4info " + program + ": not a p4info"},
		{[]string{"deploy", "-target", target, "-pipeline=false"}, "does nothing"},
		{[]string{"deploy", "-target", target, "-p4info", filepath.Join("..", "..", "generated", "p4", "capybara.p4info.txtpb")}, "-p4info without -device-config"},
		{[]string{"deploy", "-target", target, "-election", "0", "-show"}, "-election 0 observes"},
		{[]string{"deploy", "-target", target, "-timeout", "0s"}, "-timeout 0s: want a positive duration"},
		{[]string{"deploy", "-target", target, "-json"}, "-json prints -show's state"},
		{[]string{"deploy", "-target", target, "-timeout", "1ns", "-show"}, "not done within -timeout 1ns"},
	} {
		stderr.Reset()
		if code := prog.Run(c.args, &stderr); code == 0 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("capygen %q = exit %d, %q; want an error saying %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// -pipeline=false -program writes the tables of the pipeline the switch
// runs, without a commit (what the -p4info error advises); with no
// pipeline running it says to push one.
func TestDeployTablesOnly(t *testing.T) {
	pipe, target := switchServer(t)
	dir := t.TempDir()
	program := filepath.Join(dir, "rack.yaml")
	os.WriteFile(program, []byte("ports:\n  - {id: 0, role: client}\n  - {id: 1, role: server}\n"), 0o644)
	info := filepath.Join("..", "..", "generated", "p4", "capybara.p4info.txtpb")
	tablesOnly := []string{"deploy", "-target", target, "-p4info", info, "-program", program, "-pipeline=false"}

	var stderr bytes.Buffer
	if code := prog.Run(tablesOnly, &stderr); code == 0 || !strings.Contains(stderr.String(), "runs no pipeline") {
		t.Errorf("-pipeline=false -program with no pipeline = exit %d, %q; want an error saying the switch runs none", code, stderr.String())
	}
	stderr.Reset()
	if code := prog.Run([]string{"deploy", "-target", target}, &stderr); code != 0 {
		t.Fatalf("push the pipeline: exit %d: %s", code, stderr.String())
	}
	// The advice of the -p4info error, followed: no commit, so the live
	// min_workload stays.
	stderr.Reset()
	if code := prog.Run([]string{"deploy", "-target", target, "-p4info", info, "-program", program}, &stderr); code == 0 || !strings.Contains(stderr.String(), "-pipeline=false to program the tables") {
		t.Fatalf("-p4info without -device-config = exit %d, %q", code, stderr.String())
	}
	pipe.WriteMinWorkload([4]byte{10, 77, 0, 11}, 3)
	stderr.Reset()
	if code := prog.Run(tablesOnly, &stderr); code != 0 {
		t.Fatalf("capygen %q = exit %d: %s", tablesOnly, code, stderr.String())
	}
	if ts := pipe.ReadTables(); len(ts.PortRoles) != 2 || ts.PortRoles[1] != pipeline.RoleServer {
		t.Errorf("port roles after -pipeline=false -program = %v", ts.PortRoles)
	}
	if h, l := pipe.ReadMinWorkload(); h != [4]byte{10, 77, 0, 11} || l != 3 {
		t.Errorf("min_workload = %v %d: -pipeline=false committed the pipeline", h, l)
	}

	// A value too wide for the p4info is refused naming the file.
	os.WriteFile(program, []byte("ports:\n  - {id: 600, role: client}\n"), 0o644)
	stderr.Reset()
	if code := prog.Run(tablesOnly, &stderr); code == 0 || !strings.Contains(stderr.String(), "-program "+program) || !strings.Contains(stderr.String(), "ports[0] id: 600 does not fit") {
		t.Errorf("a port id of 600 = exit %d, %q; want an error naming the file and ports[0]", code, stderr.String())
	}
}
