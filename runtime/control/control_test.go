package control_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/control"
	"github.com/capygen/capygen/runtime/p4rt"
)

// server starts a P4Runtime server over a fresh pipeline and returns a
// dial option that reaches it.
func server(t *testing.T, opts ...grpc.ServerOption) (*pipeline.Pipeline, grpc.DialOption) {
	t.Helper()
	pipe := pipeline.New()
	srv, err := p4rt.New(p4rt.Config{Pipeline: pipe})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer(opts...)
	srv.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return pipe, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })
}

func dial(t *testing.T, d grpc.DialOption, election uint64) *control.Client {
	t.Helper()
	c, err := control.Dial(context.Background(), "passthrough:///bufnet", control.Options{ElectionID: election, DialOptions: []grpc.DialOption{d}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustMAC(s string) control.MAC {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return control.MAC(m)
}

type p4Info = p4configv1.P4Info

func rack() *control.Program {
	return &control.Program{
		Ports: []control.Port{{ID: 0, Role: "client"}, {ID: 1, Role: "server"}, {ID: 2, Role: "server"}},
		Hosts: []control.Host{
			{Addr: netip.MustParseAddr("10.77.0.1"), Port: 0, MAC: mustMAC("02:00:00:00:00:01")},
			{Addr: netip.MustParseAddr("10.77.0.11"), Port: 1, MAC: mustMAC("02:00:00:00:00:0b")},
			{Addr: netip.MustParseAddr("10.77.0.12"), Port: 2, MAC: mustMAC("02:00:00:00:00:0c")},
		},
	}
}

// Deploy a rack, read it back equal through P4Runtime and in the
// pipeline; deploy again and nothing changes.
func TestDeployReadBack(t *testing.T) {
	pipe, d := server(t)
	c := dial(t, d, 1)
	ctx := context.Background()
	prog := rack()
	ch, err := c.Deploy(ctx, prog, control.PipelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No min_workload write: the program sets none, and the commit
	// emptied the register (checked below).
	if !ch.Committed || ch.Inserted != 9 || ch.Modified+ch.Deleted != 0 || ch.MinWorkload {
		t.Errorf("first deploy: %v, want committed, 9 inserted (3 roles, 3 hosts, 3 MACs), min_workload not written", ch)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prog.Ports, st.Ports); diff != "" {
		t.Errorf("ports read back (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(prog.Hosts, st.Hosts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("hosts read back (-want +got):\n%s", diff)
	}
	if len(st.L2) != 3 || st.L2["02:00:00:00:00:0c"] != 2 {
		t.Errorf("l2 read back = %v", st.L2)
	}
	if !st.Empty || st.MinWorkload.Load != pipeline.EmptyLoad {
		t.Errorf("min_workload = %+v empty %t, want the empty register", st.MinWorkload, st.Empty)
	}
	if ts := pipe.ReadTables(); len(ts.PortRoles) != 3 || ts.PortRoles[1] != pipeline.RoleServer || ts.Hosts[[4]byte{10, 77, 0, 12}].Port != 2 {
		t.Errorf("pipeline tables = %+v", ts)
	}

	// The same deploy again: nothing to do, the live min_workload kept.
	pipe.WriteMinWorkload([4]byte{10, 77, 0, 11}, 3)
	ch, err = c.Deploy(ctx, prog, control.PipelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ch != (control.Changes{}) {
		t.Errorf("second deploy: %v, want no change", ch)
	}
	if h, l := pipe.ReadMinWorkload(); h != [4]byte{10, 77, 0, 11} || l != 3 {
		t.Errorf("a redeploy wrote min_workload: %v %d", h, l)
	}

	// A changed rack: a host moves port, one goes, one comes.
	prog.Hosts[1].Port = 2
	prog.Hosts = append(prog.Hosts[:2], control.Host{Addr: netip.MustParseAddr("10.77.0.13"), Port: 1, MAC: mustMAC("02:00:00:00:00:0d")})
	ch, err = c.Deploy(ctx, prog, control.PipelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Committed || ch.Inserted != 2 || ch.Modified != 2 || ch.Deleted != 2 {
		t.Errorf("changed deploy: %v, want 2 inserted, 2 modified, 2 deleted", ch)
	}
	ts := pipe.ReadTables()
	if _, ok := ts.Hosts[[4]byte{10, 77, 0, 12}]; ok || ts.Hosts[[4]byte{10, 77, 0, 11}].Port != 2 || ts.Hosts[[4]byte{10, 77, 0, 13}].Port != 1 {
		t.Errorf("hosts after the change = %v", ts.Hosts)
	}
}

// TestDeployAsStratumWrites: a deploy works against a server that, like
// Stratum and PI, takes only CONTINUE_ON_ERROR writes, and never puts a
// delete in the same Write as the updates it makes room for (a server may
// apply one Write's updates in any order).
func TestDeployAsStratumWrites(t *testing.T) {
	var writes [][]p4v1.Update_Type
	stratum := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		if w, ok := req.(*p4v1.WriteRequest); ok {
			if w.GetAtomicity() != p4v1.WriteRequest_CONTINUE_ON_ERROR {
				return nil, status.Error(codes.InvalidArgument, "only CONTINUE_ON_ERROR is supported")
			}
			var types []p4v1.Update_Type
			for _, u := range w.GetUpdates() {
				types = append(types, u.GetType())
			}
			writes = append(writes, types)
		}
		return next(ctx, req)
	})
	_, d := server(t, stratum)
	c := dial(t, d, 1)
	ctx := context.Background()
	prog := rack()
	if _, err := c.Deploy(ctx, prog, control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	prog.Hosts[1].Port = 2
	prog.Hosts = append(prog.Hosts[:2], control.Host{Addr: netip.MustParseAddr("10.77.0.13"), Port: 1, MAC: mustMAC("02:00:00:00:00:0d")})
	writes = nil
	ch, err := c.Deploy(ctx, prog, control.PipelineOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Deleted == 0 || ch.Inserted == 0 {
		t.Fatalf("changed deploy: %v, want deletes and inserts", ch)
	}
	sawOther := false
	for i, types := range writes {
		dels := 0
		for _, ty := range types {
			if ty == p4v1.Update_DELETE {
				dels++
			}
		}
		switch {
		case dels > 0 && dels < len(types):
			t.Errorf("write %d mixes deletes with other updates: %v", i, types)
		case dels > 0 && sawOther:
			t.Errorf("write %d deletes after inserts or modifies were sent: %v", i, writes)
		case dels == 0:
			sawOther = true
		}
	}
}

// State shows the directory's entries and its occupancy per level.
func TestStateDirectory(t *testing.T) {
	pipe, d := server(t)
	c := dial(t, d, 1)
	ctx := context.Background()
	if _, err := c.Deploy(ctx, rack(), control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	e := pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 77, 0, 1}, ClientPort: 40000, Origin: [4]byte{10, 77, 0, 11}, Target: [4]byte{10, 77, 0, 12}}
	pipe.WriteDirectory(pipeline.Levels-1, 77, e)
	pipe.Process(make([]byte, 60), 9) // a port without a role: unknown_port
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := control.DirEntry{Level: pipeline.Levels - 1, Index: 77, Client: netip.MustParseAddrPort("10.77.0.1:40000"),
		Origin: netip.MustParseAddr("10.77.0.11"), Target: netip.MustParseAddr("10.77.0.12")}
	if len(st.Entries) != 1 || st.Entries[0] != want {
		t.Errorf("entries = %+v, want %+v", st.Entries, want)
	}
	if st.Levels[pipeline.Levels-1].Used != 1 || st.Levels[0].Used != 0 && pipeline.Levels > 1 {
		t.Errorf("levels = %+v", st.Levels)
	}
	if st.Drops["unknown_port"] != 1 {
		t.Errorf("drops = %v, want unknown_port 1", st.Drops)
	}
	out := st.String()
	for _, want := range []string{"client 10.77.0.1:40000", "origin 10.77.0.11", "target 10.77.0.12", "unknown_port 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("State.String() lacks %q:\n%s", want, out)
		}
	}
}

// A second controller with a lower election id is told who is primary.
func TestNotPrimary(t *testing.T) {
	_, d := server(t)
	dial(t, d, 5)
	_, err := control.Dial(context.Background(), "passthrough:///bufnet", control.Options{ElectionID: 2, DialOptions: []grpc.DialOption{d}, Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "election id 2 is not the primary") || !strings.Contains(err.Error(), "the primary's election id is 5") ||
		!strings.Contains(err.Error(), "election id 0") {
		t.Fatalf("Dial as a backup = %v, want an error naming both election ids and the read-only way", err)
	}
}

// TestObserveNeedsNoStream: an observer (election id 0) reads without
// opening the stream, where a server may refuse an arbitration without an
// election id (Stratum does).
func TestObserveNeedsNoStream(t *testing.T) {
	stratum := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		return next(srv, electionChecked{ss})
	})
	_, d := server(t, stratum)
	prog := rack()
	if _, err := dial(t, d, 1).Deploy(context.Background(), prog, control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := control.Dial(context.Background(), "passthrough:///bufnet", control.Options{Observe: true, DialOptions: []grpc.DialOption{d}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prog.Ports, st.Ports); diff != "" {
		t.Errorf("ports the observer read (-want +got):\n%s", diff)
	}
}

// electionChecked refuses an arbitration without an election id, as
// Stratum's StreamChannel does.
type electionChecked struct{ grpc.ServerStream }

func (s electionChecked) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if r, ok := m.(*p4v1.StreamMessageRequest); ok && r.GetArbitration() != nil && r.GetArbitration().GetElectionId().GetHigh() == 0 && r.GetArbitration().GetElectionId().GetLow() == 0 {
		return status.Error(codes.InvalidArgument, "Invalid election ID.")
	}
	return nil
}

// Every name resolves through the p4info; an unknown one fails, named.
func TestUnknownNames(t *testing.T) {
	_, d := server(t)
	for _, c := range []struct {
		edit func(*p4Info)
		want string
	}{
		{func(i *p4Info) { i.Tables[0].Preamble.Name = "SwitchIngress.ports" }, "no table " + p4.TablePortRole},
		{func(i *p4Info) { i.Tables[1].MatchFields[0].Name = "hdr.ipv4.dst" }, "table " + p4.TableIPv4Host + " has no match field " + p4.KeyIPv4Host},
		{func(i *p4Info) {
			for _, a := range i.Actions {
				if a.Preamble.Name == p4.ActionSetHost {
					a.Params[1].Name = "mac"
				}
			}
		}, "action " + p4.ActionSetHost + " has no parameter dst_mac"},
		{func(i *p4Info) { i.Registers = i.Registers[1:] }, "no register " + p4.DirKeyRegisters[0]},
		{func(i *p4Info) { i.Counters = nil }, "no counter " + p4.CounterDrops},
	} {
		info, _ := p4.P4Info()
		c.edit(info)
		_, err := control.Dial(context.Background(), "passthrough:///bufnet", control.Options{P4Info: info, DialOptions: []grpc.DialOption{d}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Dial with an edited p4info = %v, want %q", err, c.want)
		}
	}
}

// A bad program is refused before anything is written, every problem named.
func TestProgramErrors(t *testing.T) {
	_, err := control.ParseProgram("rack.yaml", []byte(`
ports:
  - {id: 1, role: server}
  - {id: 1, role: router}
hosts:
  - {addr: 10.77.0.11, port: 4, mac: "02:00:00:00:00:0b"}
  - {addr: 10.77.0.11, port: 1, mac: "01:00:5e:00:00:01"}
`))
	if !errors.Is(err, control.ErrProgram) {
		t.Fatalf("ParseProgram = %v, want ErrProgram", err)
	}
	for _, want := range []string{`role "router" is not client or server`, "id 1 is ports[0]'s too", "port 4 has no ports entry", "addr 10.77.0.11 is hosts[0]'s too", "is not a unicast Ethernet address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := control.ParseProgram("x.yaml", []byte("ports: []\nswitches: 3\n")); err == nil || !strings.Contains(err.Error(), "switches") {
		t.Errorf("unknown field: %v", err)
	}
	p, err := control.ParseProgram("rt.yaml", rack().YAML())
	if err != nil || len(p.Hosts) != 3 || p.Hosts[2].MAC.String() != "02:00:00:00:00:0c" {
		t.Errorf("a program's YAML does not read back: %v %+v", err, p)
	}
}

// TestRecompiledBinaryIsPushed: the same spec compiled again (another
// device config) is committed, where the same spec and binary are not.
func TestRecompiledBinaryIsPushed(t *testing.T) {
	_, d := server(t)
	c := dial(t, d, 1)
	ctx := context.Background()
	for i, tc := range []struct {
		config string
		want   bool
	}{{"tofino.bin v1", true}, {"tofino.bin v1", false}, {"tofino.bin v2", true}} {
		committed, err := c.SetPipeline(ctx, control.PipelineOptions{DeviceConfig: []byte(tc.config)})
		if err != nil {
			t.Fatal(err)
		}
		if committed != tc.want {
			t.Errorf("push %d (%s): committed %v, want %v", i, tc.config, committed, tc.want)
		}
	}
}

// TestStateRefusesBitstringPairs: a server that serves a struct-valued
// register cell as one bitstring (Stratum's BfRt wrapper does) makes
// State fail naming the register, instead of reading an empty directory.
func TestStateRefusesBitstringPairs(t *testing.T) {
	flatten := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		return next(srv, structsFlattened{ss})
	})
	_, d := server(t, flatten)
	c := dial(t, d, 1)
	if _, err := c.Deploy(context.Background(), rack(), control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.State(context.Background())
	if err == nil || !strings.Contains(err.Error(), "dir0_key") || !strings.Contains(err.Error(), "struct-valued registers") {
		t.Fatalf("State = %v, want an error naming dir0_key and struct-valued registers", err)
	}
}

// structsFlattened sends register cells whose data is a struct as one
// bitstring.
type structsFlattened struct{ grpc.ServerStream }

func (s structsFlattened) SendMsg(m any) error {
	if r, ok := m.(*p4v1.ReadResponse); ok {
		for _, e := range r.GetEntities() {
			if re := e.GetRegisterEntry(); re != nil && re.GetData().GetStruct() != nil {
				re.Data = &p4v1.P4Data{Data: &p4v1.P4Data_Bitstring{Bitstring: []byte{0}}}
			}
		}
	}
	return s.ServerStream.SendMsg(m)
}

// TestStateReadsPerRegister: State reads each directory register once,
// however many slots are used (a hardware switch syncs its registers for
// every Read; it read two cells a used slot).
func TestStateReadsPerRegister(t *testing.T) {
	var reads atomic.Int64
	count := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if strings.HasSuffix(info.FullMethod, "/Read") {
			reads.Add(1)
		}
		return next(srv, ss)
	})
	pipe, d := server(t, count)
	c := dial(t, d, 1)
	if _, err := c.Deploy(context.Background(), rack(), control.PipelineOptions{}); err != nil {
		t.Fatal(err)
	}
	const used = 200
	for i := range used {
		pipe.WriteDirectory(i%pipeline.Levels, 100+i, pipeline.Entry{Valid: true, ClientIP: [4]byte{10, 77, 1, byte(i)}, ClientPort: uint16(40000 + i),
			Origin: [4]byte{10, 77, 0, 11}, Target: [4]byte{10, 77, 0, 12}})
	}
	reads.Store(0)
	st, err := c.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != used {
		t.Fatalf("%d entries, want %d", len(st.Entries), used)
	}
	// Three tables, then each level's key, origin and target, then
	// min_workload and the drop counter.
	if n, most := reads.Load(), int64(3+3*pipeline.Levels+2); n > most {
		t.Errorf("State made %d Reads for %d used slots, want at most %d", n, used, most)
	}
}
