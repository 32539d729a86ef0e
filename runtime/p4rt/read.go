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
// index every cell. Entries come in key or index order. A query that
// fails does not stop the others: the call then ends UNKNOWN with one
// p4.v1.Error per query (P4Runtime 13.3).
func (s *Server) Read(req *p4v1.ReadRequest, stream p4v1.P4Runtime_ReadServer) error {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return err
	}
	if err := checkRole(req.GetRole()); err != nil {
		return err
	}
	s.mu.Lock()
	configured := s.configured()
	base := s.base
	meta := make(map[metaKey]entryMeta, len(s.meta))
	for k, v := range s.meta {
		meta[k] = v
	}
	s.mu.Unlock()
	if !configured {
		return status.Error(codes.FailedPrecondition, "no forwarding pipeline is set; send SetForwardingPipelineConfig (VERIFY_AND_COMMIT) before reading")
	}
	r := &reader{s: s, base: base, meta: meta, stream: stream}
	errs := make([]*opError, len(req.GetEntities()))
	failed := false
	for i, e := range req.GetEntities() {
		switch x := e.GetEntity().(type) {
		case *p4v1.Entity_TableEntry:
			errs[i] = r.tables(x.TableEntry)
		case *p4v1.Entity_RegisterEntry:
			errs[i] = r.registers(x.RegisterEntry)
		case *p4v1.Entity_CounterEntry:
			errs[i] = r.counters(x.CounterEntry)
		case nil:
			errs[i] = errorf(codes.InvalidArgument, "entity %d of the read request is empty; set table_entry, register_entry or counter_entry", i)
		default:
			errs[i] = errorf(codes.Unimplemented, "reading %T is not supported by this switch (tables, registers and counters are)", x)
		}
		if r.sendErr != nil {
			return r.sendErr
		}
		failed = failed || errs[i] != nil
	}
	if err := r.flush(); err != nil {
		return err
	}
	if failed {
		if len(errs) == 1 {
			// One query: its own error says it best.
			return status.Error(errs[0].code, errs[0].msg)
		}
		return batchError(errs, "read queries")
	}
	return nil
}

// reader batches a Read's entities into responses.
type reader struct {
	s       *Server
	base    countersBase
	meta    map[metaKey]entryMeta
	stream  p4v1.P4Runtime_ReadServer
	batch   []*p4v1.Entity
	sendErr error
}

func (r *reader) add(e *p4v1.Entity) {
	r.batch = append(r.batch, e)
	if len(r.batch) >= readBatch && r.sendErr == nil {
		r.sendErr = r.flush()
	}
}

func (r *reader) flush() error {
	if len(r.batch) == 0 || r.sendErr != nil {
		return r.sendErr
	}
	err := r.stream.Send(&p4v1.ReadResponse{Entities: r.batch})
	r.batch = nil
	return err
}

func unknownReadID(kind string, id uint32) *opError {
	return errorf(codes.InvalidArgument, "%s id %d is not in the p4info", kind, id)
}

func (r *reader) tables(q *p4v1.TableEntry) *opError {
	b := r.s.bind
	ids := b.tableOrder
	if q.GetTableId() != 0 {
		if _, ok := b.tables[q.GetTableId()]; !ok {
			return unknownReadID("table", q.GetTableId())
		}
		ids = []uint32{q.GetTableId()}
	} else if len(q.GetMatch()) > 0 || q.GetIsDefaultAction() {
		return errorf(codes.InvalidArgument, "a read of every table (table_id 0) cannot name match fields or the default entry")
	}
	ts := r.s.pipe.ReadTables()
	for _, id := range ids {
		t := b.tables[id]
		if q.GetIsDefaultAction() {
			if len(q.GetMatch()) > 0 {
				return errorf(codes.InvalidArgument, "table %s: the default entry has no match fields", t.name)
			}
			r.add(&p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: t.defaultEntry()}})
			continue
		}
		rows := b.tableRows(t, ts)
		keys := make([]uint64, 0, len(rows))
		if len(q.GetMatch()) > 0 {
			// One entry; none when it does not exist.
			key, err := t.entryKey(q)
			if err != nil {
				return err
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
			r.add(&p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: t.tableEntry(k, rows[k], r.meta[metaKey{t.id, k}])}})
		}
	}
	return nil
}

func (r *reader) registers(q *p4v1.RegisterEntry) *opError {
	b := r.s.bind
	ids := b.regOrder
	if q.GetRegisterId() != 0 {
		if _, ok := b.registers[q.GetRegisterId()]; !ok {
			return unknownReadID("register", q.GetRegisterId())
		}
		ids = []uint32{q.GetRegisterId()}
	} else if q.GetIndex() != nil {
		return errorf(codes.InvalidArgument, "a read of every register (register_id 0) cannot name an index")
	}
	for _, id := range ids {
		reg := b.registers[id]
		lo, hi, err := reg.cells(q)
		if err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			c, err := readCell(r.s.pipe, reg, i)
			if err != nil {
				return errorf(codes.Internal, "register %s[%d]: %v", reg.name, i, err)
			}
			r.add(&p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: reg.registerEntry(i, c)}})
		}
	}
	return nil
}

func (r *reader) counters(q *p4v1.CounterEntry) *opError {
	d := r.s.bind.drops
	if id := q.GetCounterId(); id != 0 && id != d.id {
		return unknownReadID("counter", id)
	}
	cells := r.base.since(r.s.pipe.Counters())
	lo, hi := 0, int(d.size)
	if q.GetIndex() != nil {
		i, err := checkIndex("counter "+d.name, q.GetIndex().GetIndex(), d.size)
		if err != nil {
			return err
		}
		lo, hi = i, i+1
	}
	for i := lo; i < hi; i++ {
		e := &p4v1.CounterEntry{CounterId: d.id, Index: &p4v1.Index{Index: int64(i)}, Data: &p4v1.CounterData{PacketCount: int64(cells[i])}}
		r.add(&p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: e}})
	}
	return nil
}
