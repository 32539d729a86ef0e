package control_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/control"
)

// bitstringRegisters refuses, per update, a register write whose data is
// not a bitstring, and applies the Write's other updates, as Stratum's
// BF-RT does ("Only bitstring registers data types are supported.").
var bitstringRegisters = grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	w, ok := req.(*p4v1.WriteRequest)
	if !ok {
		return next(ctx, req)
	}
	var keep []*p4v1.Update
	refused := map[int]bool{}
	for i, u := range w.GetUpdates() {
		if re := u.GetEntity().GetRegisterEntry(); re != nil && re.GetData().GetBitstring() == nil {
			refused[i] = true
			continue
		}
		keep = append(keep, u)
	}
	if len(refused) == 0 {
		return next(ctx, req)
	}
	if len(keep) > 0 {
		applied := &p4v1.WriteRequest{DeviceId: w.GetDeviceId(), ElectionId: w.GetElectionId(), Updates: keep, Atomicity: w.GetAtomicity()}
		if _, err := next(ctx, applied); err != nil {
			return nil, err
		}
	}
	st := &spb.Status{Code: int32(codes.Unknown), Message: "Write failure."}
	for i := range w.GetUpdates() {
		e := &p4v1.Error{}
		if refused[i] {
			e = &p4v1.Error{CanonicalCode: int32(codes.Internal), Message: "Only bitstring registers data types are supported."}
		}
		a, _ := anypb.New(e)
		st.Details = append(st.Details, a)
	}
	return nil, status.ErrorProto(st)
})

// countRegisterWrites counts the register updates the server is sent.
func countRegisterWrites(n *atomic.Int64) grpc.ServerOption {
	return grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if w, ok := req.(*p4v1.WriteRequest); ok {
			for _, u := range w.GetUpdates() {
				if u.GetEntity().GetRegisterEntry() != nil {
					n.Add(1)
				}
			}
		}
		return next(ctx, req)
	})
}

// TestDeployOnBitstringRegisterServer: the first deploy of a fresh
// pipeline succeeds on a server that takes only bitstring register data
// (Stratum on a Tofino): the commit empties min_workload, so a program
// without one writes no register. A program with one fails naming it and
// saying it can be dropped, and Changes does not claim it was written.
func TestDeployOnBitstringRegisterServer(t *testing.T) {
	var regWrites atomic.Int64
	pipe, d := server(t, bitstringRegisters, countRegisterWrites(&regWrites))
	c := dial(t, d, 1)
	ctx := context.Background()
	ch, err := c.Deploy(ctx, rack(), control.PipelineOptions{})
	if err != nil {
		t.Fatalf("first deploy on a bitstring-register server: %v", err)
	}
	if !ch.Committed || ch.Inserted != 9 || ch.MinWorkload || regWrites.Load() != 0 {
		t.Errorf("first deploy: %v, %d register writes; want committed, 9 inserted, no min_workload write", ch, regWrites.Load())
	}
	if h, l := pipe.ReadMinWorkload(); h != ([4]byte{}) || l != pipeline.EmptyLoad {
		t.Errorf("min_workload after the commit = %v %d, want empty", h, l)
	}

	prog := rack()
	prog.Hosts = append(prog.Hosts, control.Host{Addr: netip.MustParseAddr("10.77.0.13"), Port: 2, MAC: mustMAC("02:00:00:00:00:0d")})
	prog.MinWorkload = &control.Workload{Holder: netip.MustParseAddr("10.77.0.11"), Load: 4}
	ch, err = c.Deploy(ctx, prog, control.PipelineOptions{})
	if err == nil {
		t.Fatal("a min_workload write to a bitstring-register server succeeded")
	}
	for _, want := range []string{"MODIFY min_workload {10.77.0.11, 4}", "Only bitstring", "take only bitstring register data", "drop min_workload from the program",
		"this Write's updates not listed were applied", "the 2 updates before it were applied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if ch.MinWorkload || strings.Contains(ch.String(), "min_workload written") {
		t.Errorf("Changes = %v after a failed min_workload write", ch)
	}
	if ch.Inserted != 2 {
		t.Errorf("Changes = %v, want the 2 inserted entries counted", ch)
	}
	if _, ok := pipe.ReadTables().Hosts[[4]byte{10, 77, 0, 13}]; !ok {
		t.Errorf("the tables were not written before the min_workload write")
	}
}

// TestWriteRefusedAsWhole: a Write the server refuses without per-update
// details applied none of its updates, and the later ones were not sent;
// the error says so, not that the unlisted ones were applied.
func TestWriteRefusedAsWhole(t *testing.T) {
	var deny atomic.Bool
	refuse := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if _, ok := req.(*p4v1.WriteRequest); ok && deny.Load() {
			return nil, status.Error(codes.PermissionDenied, "write with election id 1: the primary's election id is 9")
		}
		return next(ctx, req)
	})
	_, d := server(t, refuse)
	c := dial(t, d, 1)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, rack(), control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	// 2 deletes (10.77.0.12 and its MAC), then 3 modifies (port 2's
	// role, 10.77.0.11's port and its MAC's) and 2 inserts (10.77.0.13).
	prog := rack()
	prog.Hosts = prog.Hosts[:2]
	prog.Ports[2].Role = "client"
	prog.Hosts[1].Port = 2
	prog.Hosts = append(prog.Hosts, control.Host{Addr: netip.MustParseAddr("10.77.0.13"), Port: 1, MAC: mustMAC("02:00:00:00:00:0d")})
	deny.Store(true)
	_, err := c.Deploy(ctx, prog, control.PipelineOptions{})
	if err == nil {
		t.Fatal("Deploy succeeded with every Write refused")
	}
	for _, want := range []string{"PermissionDenied", "refused this Write as a whole: none of its 2 updates was applied", "the 5 after it were not sent", "deploy again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "not listed") || strings.Contains(err.Error(), "were applied") {
		t.Errorf("error says updates were applied:\n%v", err)
	}
}

// TestDeployChecksWidths: a port id wider than the p4info's field is
// refused before anything is written, naming the entry and the width.
func TestDeployChecksWidths(t *testing.T) {
	var rpcs atomic.Int64
	count := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		switch req.(type) {
		case *p4v1.WriteRequest, *p4v1.SetForwardingPipelineConfigRequest:
			rpcs.Add(1)
		}
		return next(ctx, req)
	})
	pipe, d := server(t, count)
	c := dial(t, d, 1)
	prog := rack()
	prog.Ports = append(prog.Ports, control.Port{ID: 600, Role: "server"})
	prog.Hosts = append(prog.Hosts, control.Host{Addr: netip.MustParseAddr("10.77.0.13"), Port: 600, MAC: mustMAC("02:00:00:00:00:0d")})
	if err := prog.Check(); err != nil {
		t.Fatalf("Check = %v; the width is the p4info's, not the program's", err)
	}
	_, err := c.Deploy(context.Background(), prog, control.PipelineOptions{})
	if !errors.Is(err, control.ErrProgram) {
		t.Fatalf("Deploy of port 600 = %v, want ErrProgram", err)
	}
	for _, want := range []string{"ports[3] id: 600 does not fit " + p4.TablePortRole + "'s key " + p4.KeyPortRole + ", bit<9> in the p4info (at most 511)",
		"hosts[3] (10.77.0.13) port: 600", "switch's port number"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if n := rpcs.Load(); n != 0 {
		t.Errorf("%d Write or SetForwardingPipelineConfig calls before the refusal, want none", n)
	}
	if ts := pipe.ReadTables(); len(ts.PortRoles)+len(ts.Hosts) != 0 {
		t.Errorf("tables written: %+v", ts)
	}
}

// TestDeployTables programs the tables of the running pipeline without a
// commit, through the p4info read from the switch; it refuses a switch
// with no pipeline, and a given p4info that is not the running one.
func TestDeployTables(t *testing.T) {
	pipe, d := server(t)
	c := dial(t, d, 1)
	ctx := context.Background()
	if _, err := c.DeployTables(ctx, rack()); err == nil || !strings.Contains(err.Error(), "runs no pipeline") {
		t.Errorf("DeployTables with no pipeline = %v, want an error saying the switch runs none", err)
	}
	if _, err := c.Deploy(ctx, rack(), control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	// Live state a commit would clear.
	pipe.WriteMinWorkload([4]byte{10, 77, 0, 11}, 3)
	pipe.WriteDirectory(0, 5, pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 77, 0, 1}, ClientPort: 40000, Origin: [4]byte{10, 77, 0, 11}, Target: [4]byte{10, 77, 0, 12}})

	// Another client, with the generated p4info given: the same as the
	// running one.
	info, _ := p4.P4Info()
	c2, err := control.Dial(ctx, "passthrough:///bufnet", control.Options{ElectionID: 2, P4Info: info, DialOptions: []grpc.DialOption{d}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	prog := rack()
	prog.Hosts[1].Port = 2
	ch, err := c2.DeployTables(ctx, prog)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Committed || ch.Modified != 2 || ch.Inserted+ch.Deleted != 0 {
		t.Errorf("DeployTables: %v, want 2 modified, no commit", ch)
	}
	if h, l := pipe.ReadMinWorkload(); h != [4]byte{10, 77, 0, 11} || l != 3 {
		t.Errorf("min_workload = %v %d: DeployTables cleared it", h, l)
	}
	if st, err := c2.State(ctx); err != nil || len(st.Entries) != 1 {
		t.Errorf("directory after DeployTables: %v, %v", st, err)
	}
	if ts := pipe.ReadTables(); ts.Hosts[[4]byte{10, 77, 0, 11}].Port != 2 {
		t.Errorf("hosts = %v", ts.Hosts)
	}

	other, _ := p4.P4Info()
	other.PkgInfo.Version = "0123456789abcdef"
	c3, err := control.Dial(ctx, "passthrough:///bufnet", control.Options{ElectionID: 3, P4Info: other, DialOptions: []grpc.DialOption{d}})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.DeployTables(ctx, prog); err == nil || !strings.Contains(err.Error(), "not the one of the pipeline the switch runs") ||
		!strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("DeployTables with another p4info = %v, want an error naming both versions", err)
	}
}
