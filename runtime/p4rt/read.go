package p4rt

import (
	"slices"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readBatch bounds the entities of one ReadResponse, so a read of a whole
// directory level (2^16 cells) stays far below gRPC's 4 MiB message limit.
const readBatch = 4096

// Read streams the entities the request names. A zero id is a wildcard
// (every table, register or counter); a table entry without match fields
// is every entry of its table, a register or counter entry without an
// index every cell. Entries come in key or index order.
func (s *Server) Read(req *p4v1.ReadRequest, stream p4v1.P4Runtime_ReadServer) error {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return err
	}
	if err := checkRole(req.GetRole()); err != nil {
		return err
	}
	s.mu.Lock()
	committed := s.config != nil
	base := s.base
	s.mu.Unlock()
	if !committed {
		return status.Error(codes.FailedPrecondition, "no forwarding pipeline is committed; send SetForwardingPipelineConfig (VERIFY_AND_COMMIT) before reading")
	}
	r := &reader{s: s, base: base, stream: stream}
	for _, e := range req.GetEntities() {
		var err error
		switch x := e.GetEntity().(type) {
		case *p4v1.Entity_TableEntry:
			err = r.tables(x.TableEntry)
		case *p4v1.Entity_RegisterEntry:
			err = r.registers(x.RegisterEntry)
		case *p4v1.Entity_CounterEntry:
			err = r.counters(x.CounterEntry)
		case nil:
			err = status.Error(codes.InvalidArgument, "an entity of the read request is empty; set table_entry, register_entry or counter_entry")
		default:
			err = status.Errorf(codes.Unimplemented, "reading %T is not supported by this switch (tables, registers and counters are)", x)
		}
		if err != nil {
			return err
		}
	}
	return r.flush()
}

// reader batches a Read's entities into responses.
type reader struct {
	s      *Server
	base   countersBase
	stream p4v1.P4Runtime_ReadServer
	batch  []*p4v1.Entity
}

func (r *reader) add(e *p4v1.Entity) error {
	r.batch = append(r.batch, e)
	if len(r.batch) >= readBatch {
		return r.flush()
	}
	return nil
}

func (r *reader) flush() error {
	if len(r.batch) == 0 {
		return nil
	}
	err := r.stream.Send(&p4v1.ReadResponse{Entities: r.batch})
	r.batch = nil
	return err
}

func (r *reader) tables(q *p4v1.TableEntry) error {
	b := r.s.bind
	ids := b.tableOrder
	if q.GetTableId() != 0 {
		if _, ok := b.tables[q.GetTableId()]; !ok {
			return status.Errorf(codes.NotFound, "table id %d is not in the p4info", q.GetTableId())
		}
		ids = []uint32{q.GetTableId()}
	} else if len(q.GetMatch()) > 0 || q.GetIsDefaultAction() {
		return status.Error(codes.InvalidArgument, "a read of every table (table_id 0) cannot name match fields or the default entry")
	}
	ts := r.s.pipe.ReadTables()
	for _, id := range ids {
		t := b.tables[id]
		if q.GetIsDefaultAction() {
			if len(q.GetMatch()) > 0 {
				return status.Errorf(codes.InvalidArgument, "table %s: the default entry has no match fields", t.name)
			}
			if err := r.add(&p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: t.defaultEntry()}}); err != nil {
				return err
			}
			continue
		}
		rows := b.tableRows(t, ts)
		keys := make([]uint64, 0, len(rows))
		if len(q.GetMatch()) > 0 {
			key, err := t.entryKey(q)
			if err != nil {
				return status.Error(err.code, err.msg)
			}
			if _, ok := rows[key]; ok {
				keys = append(keys, key)
			}
		} else {
			for k := range rows {
				keys = append(keys, k)
			}
			slices.Sort(keys)
		}
		for _, k := range keys {
			if err := r.add(&p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: t.tableEntry(k, rows[k])}}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) registers(q *p4v1.RegisterEntry) error {
	b := r.s.bind
	ids := b.regOrder
	if q.GetRegisterId() != 0 {
		if _, ok := b.registers[q.GetRegisterId()]; !ok {
			return status.Errorf(codes.NotFound, "register id %d is not in the p4info", q.GetRegisterId())
		}
		ids = []uint32{q.GetRegisterId()}
	} else if q.GetIndex() != nil {
		return status.Error(codes.InvalidArgument, "a read of every register (register_id 0) cannot name an index")
	}
	for _, id := range ids {
		reg := b.registers[id]
		lo, hi := 0, int(reg.size)
		if q.GetIndex() != nil {
			i, err := reg.index(q)
			if err != nil {
				return status.Error(err.code, err.msg)
			}
			lo, hi = i, i+1
		}
		for i := lo; i < hi; i++ {
			c, err := readCell(r.s.pipe, reg, i)
			if err != nil {
				return status.Errorf(codes.Internal, "register %s[%d]: %v", reg.name, i, err)
			}
			if err := r.add(&p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: reg.registerEntry(i, c)}}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) counters(q *p4v1.CounterEntry) error {
	d := r.s.bind.drops
	if id := q.GetCounterId(); id != 0 && id != d.id {
		return status.Errorf(codes.NotFound, "counter id %d is not in the p4info", id)
	}
	cells := r.base.since(r.s.pipe.Counters())
	lo, hi := int64(0), d.size
	if q.GetIndex() != nil {
		i := q.GetIndex().GetIndex()
		if i < 0 || i >= d.size {
			return status.Errorf(codes.OutOfRange, "counter %s: index %d is outside 0..%d", d.name, i, d.size-1)
		}
		lo, hi = i, i+1
	}
	for i := lo; i < hi; i++ {
		e := &p4v1.CounterEntry{CounterId: d.id, Index: &p4v1.Index{Index: i}, Data: &p4v1.CounterData{PacketCount: int64(cells[i])}}
		if err := r.add(&p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: e}}); err != nil {
			return err
		}
	}
	return nil
}
