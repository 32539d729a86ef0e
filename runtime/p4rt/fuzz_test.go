package p4rt

import (
	"context"
	"testing"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// fuzzServer is a server with a committed pipeline and a primary of
// election id 1, without a stream: the fuzzers reach the entity code.
func fuzzServer(t testing.TB) *Server {
	s, err := New(Config{Pipeline: pipeline.New()})
	if err != nil {
		t.Fatal(err)
	}
	s.primary = &client{election: electionID{0, 1, true}}
	s.clients[s.primary] = struct{}{}
	s.config = &p4v1.ForwardingPipelineConfig{P4Info: s.P4Info()}
	return s
}

// seedWrites are valid requests of each kind, as the fuzzers' seeds.
func seedWrites(s *Server) []*p4v1.WriteRequest {
	b := s.bind
	role := &p4v1.TableEntry{TableId: b.portRole, Match: []*p4v1.FieldMatch{{FieldId: 1, FieldMatchType: &p4v1.FieldMatch_Exact_{Exact: &p4v1.FieldMatch_Exact{Value: []byte{1}}}}},
		Action: &p4v1.TableAction{Type: &p4v1.TableAction_Action{Action: &p4v1.Action{ActionId: b.tables[b.portRole].action, Params: []*p4v1.Action_Param{{ParamId: 1, Value: []byte{2}}}}}}}
	reg := &p4v1.RegisterEntry{RegisterId: b.regOrder[0], Index: &p4v1.Index{Index: 5}, Data: &p4v1.P4Data{Data: &p4v1.P4Data_Struct{Struct: &p4v1.P4StructLike{Members: []*p4v1.P4Data{
		{Data: &p4v1.P4Data_Bitstring{Bitstring: []byte{10, 0, 0, 1}}}, {Data: &p4v1.P4Data_Bitstring{Bitstring: []byte{1, 0, 80}}}}}}}}
	te := func(e *p4v1.TableEntry) *p4v1.Entity {
		return &p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: e}}
	}
	return []*p4v1.WriteRequest{
		{Updates: []*p4v1.Update{{Type: p4v1.Update_INSERT, Entity: te(role)}}},
		{Atomicity: p4v1.WriteRequest_ROLLBACK_ON_ERROR, Updates: []*p4v1.Update{
			{Type: p4v1.Update_INSERT, Entity: te(role)},
			{Type: p4v1.Update_MODIFY, Entity: &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: reg}}},
			{Type: p4v1.Update_DELETE, Entity: te(role)},
			{Type: p4v1.Update_DELETE, Entity: te(role)},
		}},
	}
}

// state is what a write may change, for the rollback check.
type state struct {
	tables       pipeline.Tables
	holder       [4]byte
	load         uint32
	cells        map[[3]int][2]uint64
	regs         map[uint32]*register
	cellsChecked [][3]int
}

func snapshot(s *Server, req *p4v1.WriteRequest) state {
	st := state{tables: s.pipe.ReadTables(), cells: map[[3]int][2]uint64{}}
	st.holder, st.load = s.pipe.ReadMinWorkload()
	for _, u := range req.GetUpdates() {
		re := u.GetEntity().GetRegisterEntry()
		r, ok := s.bind.registers[re.GetRegisterId()]
		if !ok || re.GetIndex() == nil || re.GetIndex().GetIndex() < 0 || re.GetIndex().GetIndex() >= r.size {
			continue
		}
		c, _ := readCell(s.pipe, r, int(re.GetIndex().GetIndex()))
		st.cells[[3]int{int(r.id), int(re.GetIndex().GetIndex())}] = c
	}
	return st
}

func (a state) equal(s *Server) bool {
	b := s.pipe.ReadTables()
	if len(a.tables.PortRoles) != len(b.PortRoles) || len(a.tables.Hosts) != len(b.Hosts) || len(a.tables.L2) != len(b.L2) {
		return false
	}
	for k, v := range a.tables.PortRoles {
		if b.PortRoles[k] != v {
			return false
		}
	}
	for k, v := range a.tables.Hosts {
		if b.Hosts[k] != v {
			return false
		}
	}
	for k, v := range a.tables.L2 {
		if b.L2[k] != v {
			return false
		}
	}
	if h, l := s.pipe.ReadMinWorkload(); h != a.holder || l != a.load {
		return false
	}
	for k, v := range a.cells {
		c, _ := readCell(s.pipe, s.bind.registers[uint32(k[0])], k[1])
		if c != v {
			return false
		}
	}
	return true
}

// Write requests from random bytes never panic the server, never grow a
// table past its size, and a ROLLBACK_ON_ERROR batch that fails leaves
// the pipeline as it was.
func FuzzWrite(f *testing.F) {
	s := fuzzServer(f)
	for _, r := range seedWrites(s) {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &p4v1.WriteRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		s := fuzzServer(t)
		// Reach the entity code: the right device, the primary's id.
		req.DeviceId, req.ElectionId, req.Role = s.device, &p4v1.Uint128{Low: 1}, ""
		before := snapshot(s, req)
		_, err := s.Write(context.Background(), req)
		ts := s.pipe.ReadTables()
		if len(ts.PortRoles) > pipeline.PortTableSize || len(ts.Hosts) > pipeline.HostTableSize || len(ts.L2) > pipeline.L2TableSize {
			t.Fatalf("tables past their sizes: %d %d %d", len(ts.PortRoles), len(ts.Hosts), len(ts.L2))
		}
		if err != nil && req.GetAtomicity() == p4v1.WriteRequest_ROLLBACK_ON_ERROR && !before.equal(s) {
			t.Fatalf("a failed ROLLBACK_ON_ERROR batch changed the pipeline: %v", err)
		}
	})
}

// readSink collects a Read's responses.
type readSink struct {
	grpc.ServerStream
	n int
}

func (r *readSink) Send(m *p4v1.ReadResponse) error { r.n += len(m.Entities); return nil }

// Read requests from random bytes never panic the server.
func FuzzRead(f *testing.F) {
	s := fuzzServer(f)
	for _, r := range []*p4v1.ReadRequest{
		{Entities: []*p4v1.Entity{{Entity: &p4v1.Entity_TableEntry{TableEntry: &p4v1.TableEntry{}}}}},
		{Entities: []*p4v1.Entity{{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{RegisterId: s.bind.regOrder[0], Index: &p4v1.Index{Index: 3}}}}}},
		{Entities: []*p4v1.Entity{{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{}}}}},
	} {
		b, _ := proto.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &p4v1.ReadRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		// Whole-register wildcards read 2^16 cells each: fine, but keep
		// each fuzz input cheap by reading one register at most.
		for _, e := range req.Entities {
			if re := e.GetRegisterEntry(); re != nil && re.GetRegisterId() == 0 {
				re.RegisterId = s.bind.regOrder[len(s.bind.regOrder)-1]
			}
		}
		req.DeviceId, req.Role = s.device, ""
		_ = s.Read(req, &readSink{})
	})
}
