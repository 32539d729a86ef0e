package p4rt_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/p4rt"
)

const device = p4rt.DefaultDeviceID

// bench is a server over a fresh pipeline, reached through bufconn.
type bench struct {
	t    *testing.T
	pipe *pipeline.Pipeline
	srv  *p4rt.Server
	cli  p4v1.P4RuntimeClient
	conn *grpc.ClientConn
	lis  *bufconn.Listener
}

func newBench(t *testing.T) *bench {
	t.Helper()
	pipe := pipeline.New()
	srv, err := p4rt.New(p4rt.Config{Pipeline: pipe})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	b := &bench{t: t, pipe: pipe, srv: srv, lis: lis}
	t.Cleanup(g.Stop)
	b.conn = b.dial()
	b.cli = p4v1.NewP4RuntimeClient(b.conn)
	return b
}

// dial opens another connection to the server, closed at the test's end.
func (b *bench) dial(opts ...grpc.DialOption) *grpc.ClientConn {
	b.t.Helper()
	opts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return b.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	conn, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { conn.Close() })
	return conn
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func eid(low uint64) *p4v1.Uint128 { return &p4v1.Uint128{Low: low} }

// stream is one client's StreamChannel.
type stream struct {
	t      *testing.T
	s      p4v1.P4Runtime_StreamChannelClient
	cancel context.CancelFunc
	id     uint64
}

// open starts a stream and sends its arbitration with election id low
// (0: unset).
func (b *bench) open(low uint64) *stream {
	b.t.Helper()
	return b.openOn(b.cli, low)
}

// openOn is open through cli.
func (b *bench) openOn(cli p4v1.P4RuntimeClient, low uint64) *stream {
	b.t.Helper()
	c, cancel := context.WithCancel(context.Background())
	s, err := cli.StreamChannel(c)
	if err != nil {
		b.t.Fatal(err)
	}
	st := &stream{t: b.t, s: s, cancel: cancel, id: low}
	b.t.Cleanup(cancel)
	arb := &p4v1.MasterArbitrationUpdate{DeviceId: device}
	if low != 0 {
		arb.ElectionId = eid(low)
	}
	if err := s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: arb}}); err != nil {
		b.t.Fatal(err)
	}
	return st
}

// next waits for the stream's next arbitration update and returns its
// status code and election id.
func (s *stream) next() (codes.Code, *p4v1.Uint128) {
	s.t.Helper()
	type got struct {
		m   *p4v1.StreamMessageResponse
		err error
	}
	ch := make(chan got, 1)
	go func() {
		m, err := s.s.Recv()
		ch <- got{m, err}
	}()
	select {
	case g := <-ch:
		if g.err != nil {
			s.t.Fatalf("stream %d: Recv: %v", s.id, g.err)
		}
		a := g.m.GetArbitration()
		if a == nil {
			s.t.Fatalf("stream %d: got %v, want an arbitration update", s.id, g.m)
		}
		return codes.Code(a.GetStatus().GetCode()), a.GetElectionId()
	case <-time.After(5 * time.Second):
		s.t.Fatalf("stream %d: no arbitration update in 5s", s.id)
	}
	return 0, nil
}

// expect checks the next update's code and election id.
func (s *stream) expect(code codes.Code, highest uint64) {
	s.t.Helper()
	c, id := s.next()
	if c != code || id.GetLow() != highest || id.GetHigh() != 0 {
		s.t.Fatalf("stream %d: arbitration update %v election id %v, want %v election id %d", s.id, c, id, code, highest)
	}
}

// recvErr waits for the stream to end with an error.
func (s *stream) recvErr() error {
	s.t.Helper()
	for {
		_, err := s.s.Recv()
		if err != nil {
			return err
		}
	}
}

// primary opens the primary stream (election id 10) and commits the
// generated pipeline with cookie 7.
func (b *bench) primary() *stream {
	b.t.Helper()
	s := b.open(10)
	s.expect(codes.OK, 10)
	b.commit(10, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT, b.config(7))
	return s
}

func (b *bench) config(cookie uint64) *p4v1.ForwardingPipelineConfig {
	info, err := p4.P4Info()
	if err != nil {
		b.t.Fatal(err)
	}
	return &p4v1.ForwardingPipelineConfig{P4Info: info, Cookie: &p4v1.ForwardingPipelineConfig_Cookie{Cookie: cookie}}
}

func (b *bench) setPipeline(election uint64, act p4v1.SetForwardingPipelineConfigRequest_Action, cfg *p4v1.ForwardingPipelineConfig) error {
	_, err := b.cli.SetForwardingPipelineConfig(ctx(b.t), &p4v1.SetForwardingPipelineConfigRequest{
		DeviceId: device, ElectionId: eid(election), Action: act, Config: cfg})
	return err
}

func (b *bench) commit(election uint64, act p4v1.SetForwardingPipelineConfigRequest_Action, cfg *p4v1.ForwardingPipelineConfig) {
	b.t.Helper()
	if err := b.setPipeline(election, act, cfg); err != nil {
		b.t.Fatalf("SetForwardingPipelineConfig(%v): %v", act, err)
	}
}

// write sends updates as election id 10.
func (b *bench) write(atomicity p4v1.WriteRequest_Atomicity, updates ...*p4v1.Update) error {
	_, err := b.cli.Write(ctx(b.t), &p4v1.WriteRequest{DeviceId: device, ElectionId: eid(10), Updates: updates, Atomicity: atomicity})
	return err
}

// read collects every entity a read returns.
func (b *bench) read(entities ...*p4v1.Entity) ([]*p4v1.Entity, error) {
	rs, err := b.cli.Read(ctx(b.t), &p4v1.ReadRequest{DeviceId: device, Entities: entities})
	if err != nil {
		return nil, err
	}
	var out []*p4v1.Entity
	for {
		r, err := rs.Recv()
		if err != nil {
			if status.Code(err) == codes.OK || err.Error() == "EOF" {
				return out, nil
			}
			return out, err
		}
		out = append(out, r.Entities...)
	}
}

func (b *bench) mustRead(entities ...*p4v1.Entity) []*p4v1.Entity {
	b.t.Helper()
	out, err := b.read(entities...)
	if err != nil {
		b.t.Fatalf("Read: %v", err)
	}
	return out
}

// ids resolves the generated names, as a client would.
type ids struct {
	portRole, ipv4Host, l2                          uint32
	setRole, setHost, setPort, miss, noRoute        uint32
	dirKey, dirTarget, dirOrigin, dirPort           [p4.Levels]uint32
	minWorkload, drops                              uint32
	portRoleSize, ipv4HostSize, dirSlots, dropCells int64
}

func resolve(t *testing.T) ids {
	info, err := p4.P4Info()
	if err != nil {
		t.Fatal(err)
	}
	var x ids
	for _, tb := range info.Tables {
		switch tb.Preamble.Name {
		case p4.TablePortRole:
			x.portRole, x.portRoleSize = tb.Preamble.Id, tb.Size
		case p4.TableIPv4Host:
			x.ipv4Host, x.ipv4HostSize = tb.Preamble.Id, tb.Size
		case p4.TableL2Forward:
			x.l2 = tb.Preamble.Id
		}
	}
	for _, a := range info.Actions {
		switch a.Preamble.Name {
		case p4.ActionSetRole:
			x.setRole = a.Preamble.Id
		case p4.ActionSetHost:
			x.setHost = a.Preamble.Id
		case p4.ActionSetPort:
			x.setPort = a.Preamble.Id
		case p4.ActionMiss:
			x.miss = a.Preamble.Id
		case p4.ActionNoRoute:
			x.noRoute = a.Preamble.Id
		}
	}
	for _, r := range info.Registers {
		for l := range p4.Levels {
			if r.Preamble.Name == p4.DirKeyRegisters[l] {
				x.dirKey[l], x.dirSlots = r.Preamble.Id, int64(r.Size)
			}
			if r.Preamble.Name == p4.DirTargetRegisters[l] {
				x.dirTarget[l] = r.Preamble.Id
			}
			if r.Preamble.Name == p4.DirOriginRegisters[l] {
				x.dirOrigin[l] = r.Preamble.Id
			}
			if r.Preamble.Name == p4.DirPortRegisters[l] {
				x.dirPort[l] = r.Preamble.Id
			}
		}
		if r.Preamble.Name == p4.RegisterMinWorkload {
			x.minWorkload = r.Preamble.Id
		}
	}
	for _, c := range info.Counters {
		if c.Preamble.Name == p4.CounterDrops {
			x.drops, x.dropCells = c.Preamble.Id, c.Size
		}
	}
	return x
}

func exact(v ...byte) []*p4v1.FieldMatch {
	return []*p4v1.FieldMatch{{FieldId: 1, FieldMatchType: &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: v}}}}
}

func action(id uint32, params ...[]byte) *p4v1.TableAction {
	a := &p4v1.Action{ActionId: id}
	for i, p := range params {
		a.Params = append(a.Params, &p4v1.Action_Param{ParamId: uint32(i + 1), Value: p})
	}
	return &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: a}}
}

func tableUpdate(typ p4v1.Update_Type, e *p4v1.TableEntry) *p4v1.Update {
	return &p4v1.Update{Type: typ, Entity: &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: e}}}
}

func tableQuery(e *p4v1.TableEntry) *p4v1.Entity {
	return &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: e}}
}

func registerUpdate(typ p4v1.Update_Type, id uint32, index int64, a, b []byte) *p4v1.Update {
	return &p4v1.Update{Type: typ, Entity: &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{
		RegisterId: id, Index: &p4v1.Index{Index: index},
		Data: &p4v1.P4Data{Data: &p4v1.P4Data_Struct{Struct: &p4v1.P4StructLike{Members: []*p4v1.P4Data{
			{Data: &p4v1.P4Data_Bitstring{Bitstring: a}}, {Data: &p4v1.P4Data_Bitstring{Bitstring: b}},
		}}}},
	}}}}
}

// scalarUpdate is a MODIFY of one cell of a bit<W> register.
func scalarUpdate(id uint32, index int64, v []byte) *p4v1.Update {
	return &p4v1.Update{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{
		RegisterId: id, Index: &p4v1.Index{Index: index}, Data: &p4v1.P4Data{Data: &p4v1.P4Data_Bitstring{Bitstring: v}}}}}}
}

// details returns the per-update errors of a failed Write.
func details(t *testing.T, err error) []*p4v1.Error {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unknown {
		t.Fatalf("Write error %v, want an UNKNOWN status with per-update details", err)
	}
	var out []*p4v1.Error
	for _, d := range st.Proto().Details {
		e := &p4v1.Error{}
		if err := d.UnmarshalTo(e); err != nil {
			t.Fatalf("detail %v is not a p4.v1.Error: %v", d, err)
		}
		out = append(out, e)
	}
	return out
}

// wantCode checks an error's code and that its message says want.
func wantCode(t *testing.T, err error, code codes.Code, want string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), want) {
		t.Fatalf("error %v, want %v saying %q", err, code, want)
	}
}

func clone[M proto.Message](m M) M { return proto.Clone(m).(M) }

// wantQueryError checks a Read of one failing query: UNKNOWN with one
// p4.v1.Error of code saying want (P4Runtime 13.3), and a status message
// that says want too, for a client that prints only the message.
func wantQueryError(t *testing.T, err error, code codes.Code, want string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.Unknown || len(st.Details()) != 1 {
		t.Fatalf("error %v with %d details, want UNKNOWN with one p4.v1.Error", err, len(st.Details()))
	}
	e, ok := st.Details()[0].(*p4v1.Error)
	if !ok || codes.Code(e.GetCanonicalCode()) != code || !strings.Contains(e.GetMessage(), want) {
		t.Fatalf("detail %v, want a p4.v1.Error %v saying %q", st.Details()[0], code, want)
	}
	if !strings.Contains(st.Message(), want) {
		t.Fatalf("status message %q does not say %q", st.Message(), want)
	}
}
