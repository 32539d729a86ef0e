package p4rt

import (
	"bytes"
	"slices"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// readBatch bounds the entities of one ReadResponse, so a read of a whole
// directory level (2^16 cells) stays far below gRPC's 4 MiB message limit.
const readBatch = 4096

// Read streams the entities the request names. A zero id is a wildcard
// (every table, register or counter); a table entry without match fields
// is every entry of its table, a register or counter entry without an
// index every cell; a table query's action id, priority,
// controller_metadata and metadata, when not zero, filter the entries.
// Entries come in key or index order. A query that fails does not stop
// the others: the call then ends UNKNOWN with one p4.v1.Error per query
// (P4Runtime 13.3).
//
// Every query is read with writes locked out (s.mu shared), so a Read sees
// the state between two Writes, never part of one (P4Runtime 13.3, 13.4);
// the entities are sent after the lock is released, so a client slow to
// read holds up no write.
func (s *Server) Read(req *p4v1.ReadRequest, stream p4v1.P4Runtime_ReadServer) error {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return err
	}
	if err := checkRole(req.GetRole()); err != nil {
		return err
	}
	parts, errs, err := s.readQueries(req.GetEntities())
	if err != nil {
		return err
	}
	out := &readStream{stream: stream}
	for _, p := range parts {
		p(out.add)
		if out.err != nil {
			return out.err
		}
	}
	if err := out.flush(); err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return batchError(errs, "read query", "read queries")
		}
	}
	return nil
}

// part is what one query read, as entities to send; it holds copies, so
// it runs after s.mu is released.
type part func(add func(*p4v1.Entity))

// readQueries reads every query under s.mu: its entities (none for a
// query that failed) and its error.
func (s *Server) readQueries(queries []*p4v1.Entity) ([]part, []*opError, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.configured() {
		return nil, nil, status.Error(codes.FailedPrecondition, "no forwarding pipeline is set; send SetForwardingPipelineConfig (VERIFY_AND_COMMIT) before reading")
	}
	r := &reader{b: s.bind, st: s.current()}
	parts := make([]part, 0, len(queries))
	errs := make([]*opError, len(queries))
	for i, e := range queries {
		var p part
		switch x := e.GetEntity().(type) {
		case *p4v1.Entity_TableEntry:
			p, errs[i] = r.tables(x.TableEntry)
		case *p4v1.Entity_RegisterEntry:
			p, errs[i] = r.registers(x.RegisterEntry)
		case *p4v1.Entity_CounterEntry:
			p, errs[i] = r.counters(x.CounterEntry)
		case nil:
			errs[i] = errorf(codes.InvalidArgument, "entity %d of the read request is empty; set table_entry, register_entry or counter_entry", i)
		default:
			errs[i] = errorf(codes.Unimplemented, "reading %T is not supported by this switch (tables, registers and counters are)", x)
		}
		if errs[i] == nil && p != nil {
			parts = append(parts, p)
		}
	}
	return parts, errs, nil
}

// readStream batches a Read's entities into responses.
type readStream struct {
	stream p4v1.P4Runtime_ReadServer
	batch  []*p4v1.Entity
	err    error
}

func (r *readStream) add(e *p4v1.Entity) {
	r.batch = append(r.batch, e)
	if len(r.batch) >= readBatch && r.err == nil {
		r.err = r.flush()
	}
}

func (r *readStream) flush() error {
	if len(r.batch) == 0 || r.err != nil {
		return r.err
	}
	err := r.stream.Send(&p4v1.ReadResponse{Entities: r.batch})
	r.batch = nil
	return err
}

// reader reads queries from one state; s.mu is held.
type reader struct {
	b  *binding
	st *fwdState
	ts *pipeline.Tables // read once, by the first table query
}

func unknownReadID(kind string, id uint32) *opError {
	return errorf(codes.InvalidArgument, "%s id %d is not in the p4info", kind, id)
}

func (r *reader) tablesNow() pipeline.Tables {
	if r.ts == nil {
		ts := r.st.pipe.ReadTables()
		r.ts = &ts
	}
	return *r.ts
}

func (r *reader) tables(q *p4v1.TableEntry) (part, *opError) {
	b := r.b
	f, err := b.filterOf(q)
	if err != nil {
		return nil, err
	}
	ids := b.tableOrder
	if q.GetTableId() != 0 {
		if _, ok := b.tables[q.GetTableId()]; !ok {
			return nil, unknownReadID("table", q.GetTableId())
		}
		ids = []uint32{q.GetTableId()}
	} else if len(q.GetMatch()) > 0 || q.GetIsDefaultAction() || f.filters() {
		// P4Runtime 9.1.6: with table_id 0 no other filter can be used.
		return nil, errorf(codes.InvalidArgument, "a read of every table (table_id 0) takes no other filter; give a table_id to filter by match, is_default_action, action, priority, controller_metadata or metadata")
	}
	var out []*p4v1.TableEntry
	for _, id := range ids {
		t := b.tables[id]
		if q.GetIsDefaultAction() {
			if len(q.GetMatch()) > 0 {
				return nil, errorf(codes.InvalidArgument, "table %s: the default entry has no match fields", t.name)
			}
			if e := t.defaultEntry(); f.keep(e) {
				out = append(out, e)
			}
			continue
		}
		if t.keyless {
			// It holds its default entry only.
			if len(q.GetMatch()) > 0 {
				return nil, errorf(codes.InvalidArgument, "table %s has no match fields; leave match empty (set is_default_action to read its const default entry)", t.name)
			}
			continue
		}
		rows := b.tableRows(t, r.tablesNow())
		keys := make([]uint64, 0, len(rows))
		if len(q.GetMatch()) > 0 {
			// One entry; none when it does not exist.
			key, err := t.entryKey(q)
			if err != nil {
				return nil, err
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
			if e := t.tableEntry(k, rows[k], r.st.meta[metaKey{t.id, k}]); f.keep(e) {
				out = append(out, e)
			}
		}
	}
	return func(add func(*p4v1.Entity)) {
		for _, e := range out {
			add(&p4v1.Entity{Entity: &p4v1.Entity_TableEntry{TableEntry: e}})
		}
	}, nil
}

// tableFilter is what a table read filters entries by besides the table
// and the match; a zero value is a wildcard (P4Runtime 9.1.6).
type tableFilter struct {
	action     uint32
	priority   int32
	controller uint64
	metadata   []byte
}

// filterOf reads q's filters. Only an action id filters (P4Runtime 9.1.6:
// no parameter values, no action profile members or groups).
func (b *binding) filterOf(q *p4v1.TableEntry) (tableFilter, *opError) {
	//nolint:staticcheck // controller_metadata is deprecated but still a filter.
	f := tableFilter{priority: q.GetPriority(), controller: q.GetControllerMetadata(), metadata: q.GetMetadata()}
	switch a := q.GetAction().GetType().(type) {
	case nil:
	case *p4v1.TableAction_Action:
		id := a.Action.GetActionId()
		if len(a.Action.GetParams()) > 0 {
			return f, errorf(codes.InvalidArgument, "the read's action filter gives parameters; a read filters by action_id only, so leave params empty")
		}
		if _, ok := b.actions[id]; !ok {
			if id == 0 {
				return f, errorf(codes.InvalidArgument, "the read's action filter has action id 0; give an action id from the p4info, or leave action unset to read entries of any action")
			}
			return f, errorf(codes.InvalidArgument, "the read's action filter: action id %d is not in the p4info", id)
		}
		f.action = id
	default:
		return f, errorf(codes.InvalidArgument, "the read's action filter is a %T; this switch's tables have no action profiles, so filter by action.action_id", a)
	}
	return f, nil
}

// filters reports whether f filters anything.
func (f tableFilter) filters() bool {
	return f.action != 0 || f.priority != 0 || f.controller != 0 || len(f.metadata) > 0
}

// keep reports whether e passes f.
func (f tableFilter) keep(e *p4v1.TableEntry) bool {
	//nolint:staticcheck // controller_metadata is deprecated but still a filter.
	return (f.action == 0 || e.GetAction().GetAction().GetActionId() == f.action) &&
		(f.priority == 0 || e.GetPriority() == f.priority) &&
		(f.controller == 0 || e.GetControllerMetadata() == f.controller) &&
		(len(f.metadata) == 0 || bytes.Equal(e.GetMetadata(), f.metadata))
}

func (r *reader) registers(q *p4v1.RegisterEntry) (part, *opError) {
	b := r.b
	ids := b.regOrder
	if q.GetRegisterId() != 0 {
		if _, ok := b.registers[q.GetRegisterId()]; !ok {
			return nil, unknownReadID("register", q.GetRegisterId())
		}
		ids = []uint32{q.GetRegisterId()}
	} else if q.GetIndex() != nil {
		return nil, errorf(codes.InvalidArgument, "a read of every register (register_id 0) cannot name an index")
	}
	// The cells are copied under s.mu; their entities are built later.
	type span struct {
		reg   *register
		lo    int
		cells []cell
	}
	var spans []span
	for _, id := range ids {
		reg := b.registers[id]
		lo, hi, err := reg.cells(q)
		if err != nil {
			return nil, err
		}
		sp := span{reg, lo, make([]cell, hi-lo)}
		for i := lo; i < hi; i++ {
			c, err := readCell(r.st.pipe, reg, i)
			if err != nil {
				return nil, errorf(codes.Internal, "register %s[%d]: %v", reg.name, i, err)
			}
			sp.cells[i-lo] = c
		}
		spans = append(spans, sp)
	}
	return func(add func(*p4v1.Entity)) {
		for _, sp := range spans {
			for j, c := range sp.cells {
				add(&p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: sp.reg.registerEntry(sp.lo+j, c)}})
			}
		}
	}, nil
}

func (r *reader) counters(q *p4v1.CounterEntry) (part, *opError) {
	d := r.b.drops
	if id := q.GetCounterId(); id != 0 && id != d.id {
		return nil, unknownReadID("counter", id)
	}
	cells := r.st.base.since(r.st.pipe.Counters())
	lo, hi := 0, int(d.size)
	if q.GetIndex() != nil {
		i, err := checkIndex("counter "+d.name, q.GetIndex().GetIndex(), d.size)
		if err != nil {
			return nil, err
		}
		lo, hi = i, i+1
	}
	return func(add func(*p4v1.Entity)) {
		for i := lo; i < hi; i++ {
			e := &p4v1.CounterEntry{CounterId: d.id, Index: &p4v1.Index{Index: int64(i)}, Data: &p4v1.CounterData{PacketCount: int64(cells[i])}}
			add(&p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: e}})
		}
	}, nil
}
