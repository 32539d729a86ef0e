package p4rt

import (
	"context"
	"fmt"
	"strings"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// Write applies a batch of updates, in order. With CONTINUE_ON_ERROR (the
// default) every update is tried; with ROLLBACK_ON_ERROR a failure undoes
// the ones before it. When any update fails the call returns UNKNOWN with
// one p4.v1.Error per update in the status details, in order (P4Runtime
// 12.3). While a config is saved and not committed, the updates change
// the state COMMIT will realize, not the forwarding state.
func (s *Server) Write(_ context.Context, req *p4v1.WriteRequest) (*p4v1.WriteResponse, error) {
	// P4Runtime 12's order: NOT_FOUND, PERMISSION_DENIED, then
	// FAILED_PRECONDITION, before anything else of the request.
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return nil, err
	}
	if err := checkRole(req.GetRole()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPrimary(req.GetElectionId(), "write"); err != nil {
		return nil, err
	}
	if !s.configured() {
		return nil, status.Error(codes.FailedPrecondition, "no forwarding pipeline is set; send SetForwardingPipelineConfig (VERIFY_AND_COMMIT) before writing")
	}
	atomicity := req.GetAtomicity()
	switch atomicity {
	case p4v1.WriteRequest_CONTINUE_ON_ERROR, p4v1.WriteRequest_ROLLBACK_ON_ERROR:
	case p4v1.WriteRequest_DATAPLANE_ATOMIC:
		return nil, status.Error(codes.Unimplemented, "DATAPLANE_ATOMIC is not supported; use CONTINUE_ON_ERROR or ROLLBACK_ON_ERROR")
	default:
		return nil, status.Errorf(codes.InvalidArgument, "atomicity %v is unknown; use CONTINUE_ON_ERROR or ROLLBACK_ON_ERROR", atomicity)
	}
	w := s.writer(s.current())
	errs := make([]*opError, len(req.Updates))
	failed := false
	for i, u := range req.Updates {
		errs[i] = w.update(u)
		if errs[i] != nil {
			failed = true
			if atomicity == p4v1.WriteRequest_ROLLBACK_ON_ERROR {
				w.rollback()
				// What was applied before the failure is undone, and
				// what comes after it is not tried: each says so (the
				// specification leaves their code to the server).
				for j := range req.Updates {
					if j != i && errs[j] == nil {
						errs[j] = errorf(codes.Aborted, "update %d was not applied: update %d failed and the batch is ROLLBACK_ON_ERROR", j, i)
					}
				}
				break
			}
		}
	}
	if s.pending != nil {
		// COMMIT replays what was applied.
		for i, u := range req.Updates {
			if errs[i] == nil {
				s.queue = append(s.queue, proto.Clone(u).(*p4v1.Update))
			}
		}
	}
	if !failed {
		return &p4v1.WriteResponse{}, nil
	}
	return nil, batchError(errs, "update", "updates")
}

// batchError is the status of a batch with failures: UNKNOWN, with one
// p4.v1.Error per item, an empty one (OK) for those that succeeded. Its
// message names the first failures too, for a client that prints only
// the message.
func batchError(errs []*opError, item, items string) error {
	const shown = 3
	n := 0
	var first []string
	for i, e := range errs {
		if e == nil {
			continue
		}
		n++
		// An update aborted by another's failure is that failure's echo.
		if e.code != codes.Aborted && len(first) < shown {
			first = append(first, fmt.Sprintf("%s %d: %v: %s", item, i, e.code, e.msg))
		}
	}
	msg := fmt.Sprintf("%d of %d %s failed: %s", n, len(errs), items, strings.Join(first, "; "))
	if more := n - len(first); more > 0 && len(first) == shown {
		msg += fmt.Sprintf("; and %d more", more)
	}
	st := status.New(codes.Unknown, msg+fmt.Sprintf(" (the details hold one p4.v1.Error per %s, in order)", item))
	p := st.Proto()
	for _, e := range errs {
		pe := &p4v1.Error{}
		if e != nil {
			pe = &p4v1.Error{CanonicalCode: int32(e.code), Message: e.msg}
		}
		a, err := anypb.New(pe)
		if err != nil {
			return status.Errorf(codes.Internal, "pack a p4.v1.Error: %v", err)
		}
		p.Details = append(p.Details, a)
	}
	return status.ErrorProto(p)
}

// writer applies one batch to a state and remembers how to undo it.
type writer struct {
	b  *binding
	st *fwdState
	// ts is the tables as the batch found them; rows each table's
	// entries as the batch has made them so far.
	ts   pipeline.Tables
	rows map[uint32]rows
	undo []func()
}

// writer starts a batch on st.
func (s *Server) writer(st *fwdState) *writer {
	return &writer{b: s.bind, st: st, ts: st.pipe.ReadTables(), rows: map[uint32]rows{}}
}

func (w *writer) rollback() {
	for i := len(w.undo) - 1; i >= 0; i-- {
		w.undo[i]()
	}
	w.undo = nil
}

// update applies one update.
func (w *writer) update(u *p4v1.Update) *opError {
	typ := u.GetType()
	if typ != p4v1.Update_INSERT && typ != p4v1.Update_MODIFY && typ != p4v1.Update_DELETE {
		return errorf(codes.InvalidArgument, "update type %v is unknown; use INSERT, MODIFY or DELETE", typ)
	}
	e := u.GetEntity()
	switch x := e.GetEntity().(type) {
	case *p4v1.Entity_TableEntry:
		return w.table(typ, x.TableEntry)
	case *p4v1.Entity_RegisterEntry:
		return w.register(typ, x.RegisterEntry)
	case *p4v1.Entity_CounterEntry:
		return w.counter(typ, x.CounterEntry)
	case nil:
		return errorf(codes.InvalidArgument, "the update has no entity")
	default:
		return errorf(codes.Unimplemented, "entity %T is not supported by this switch (tables, registers and the drop counter are)", x)
	}
}

// unknownID is the error of an id the p4info lacks: INVALID_ARGUMENT, as
// PI's and Stratum's servers answer (0 is never valid, P4Runtime 8.1.1).
func unknownID(kind string, id uint32) *opError {
	if id == 0 {
		return errorf(codes.InvalidArgument, "%s id 0 is not a valid P4 object id; give one from the p4info", kind)
	}
	return errorf(codes.InvalidArgument, "%s id %d is not in the p4info", kind, id)
}

func (w *writer) table(typ p4v1.Update_Type, e *p4v1.TableEntry) *opError {
	t, ok := w.b.tables[e.GetTableId()]
	if !ok {
		return unknownID("table", e.GetTableId())
	}
	if e.GetIsDefaultAction() {
		// P4Runtime 9.1.3: no INSERT or DELETE of the default entry; a
		// const one may not be modified either.
		if typ != p4v1.Update_MODIFY {
			return errorf(codes.InvalidArgument, "table %s: %v of the default entry; only MODIFY applies to it", t.name, typ)
		}
		if len(e.GetMatch()) > 0 || e.GetPriority() != 0 {
			return errorf(codes.InvalidArgument, "table %s: the default entry has no match fields and priority 0", t.name)
		}
		return errorf(codes.PermissionDenied, "table %s: the default action is const (%s) and cannot be changed", t.name, t.missName)
	}
	if e.GetIsConst() {
		return errorf(codes.InvalidArgument, "table %s: is_const is set; it is read-only and must be false in a write", t.name)
	}
	if t.keyless {
		// Every action of the table is default-only: no entry can exist.
		if typ == p4v1.Update_DELETE {
			return errorf(codes.NotFound, "table %s: no entry to delete; it has no match fields and holds only its const default entry", t.name)
		}
		return errorf(codes.InvalidArgument, "table %s: %v of an entry; the table has no match fields and holds only its const default entry (%s), which cannot be changed", t.name, typ, t.missName)
	}
	key, err := t.entryKey(e)
	if err != nil {
		return err
	}
	rows, ok := w.rows[t.id]
	if !ok {
		rows = w.b.tableRows(t, w.ts)
		w.rows[t.id] = rows
	}
	old, exists := rows[key]
	mk := metaKey{t.id, key}
	oldMeta := w.st.meta[mk]
	restoreMeta := func() {
		if oldMeta.zero() {
			delete(w.st.meta, mk)
		} else {
			w.st.meta[mk] = oldMeta
		}
	}
	if typ == p4v1.Update_DELETE {
		// Only the key counts: anything else is ignored (P4Runtime 9.1).
		if !exists {
			return errorf(codes.NotFound, "table %s: no entry for %s to delete", t.name, t.keyString(key))
		}
		if err := w.b.deleteRow(w.st.pipe, t, key); err != nil {
			return errorf(codeOf(err), "table %s entry %s: %v", t.name, t.keyString(key), err)
		}
		delete(w.st.meta, mk)
		delete(rows, key)
		w.undo = append(w.undo, func() { _ = w.b.setRow(w.st.pipe, t, key, old); restoreMeta() })
		return nil
	}
	if typ == p4v1.Update_INSERT && exists {
		return errorf(codes.AlreadyExists, "table %s: an entry for %s exists; MODIFY it, or DELETE it first", t.name, t.keyString(key))
	}
	if typ == p4v1.Update_MODIFY && !exists {
		return errorf(codes.NotFound, "table %s: no entry for %s to modify; INSERT it", t.name, t.keyString(key))
	}
	if e.GetPriority() != 0 {
		return errorf(codes.InvalidArgument, "table %s: priority %d on an exact-match table; leave it 0", t.name, e.GetPriority())
	}
	if e.GetMeterConfig() != nil || e.GetCounterData() != nil || e.GetMeterCounterData() != nil {
		return errorf(codes.InvalidArgument, "table %s has no direct meters or counters; leave meter_config, counter_data and meter_counter_data unset", t.name)
	}
	if e.GetIdleTimeoutNs() != 0 || e.GetTimeSinceLastHit() != nil {
		return errorf(codes.InvalidArgument, "table %s does not support idle timeout; leave idle_timeout_ns and time_since_last_hit unset", t.name)
	}
	params, err := t.entryParams(e)
	if err != nil {
		return err
	}
	if typ == p4v1.Update_INSERT && int64(len(rows)) >= t.size {
		return errorf(codes.ResourceExhausted, "table %s is full (%d entries); delete one, or raise its size in the spec", t.name, t.size)
	}
	if err := w.b.setRow(w.st.pipe, t, key, params); err != nil {
		return errorf(codeOf(err), "table %s entry %s: %v", t.name, t.keyString(key), err)
	}
	if m := metaOf(e); m.zero() {
		delete(w.st.meta, mk)
	} else {
		w.st.meta[mk] = m
	}
	if exists {
		w.undo = append(w.undo, func() { _ = w.b.setRow(w.st.pipe, t, key, old); restoreMeta() })
	} else {
		w.undo = append(w.undo, func() { _ = w.b.deleteRow(w.st.pipe, t, key); restoreMeta() })
	}
	rows[key] = params
	return nil
}

// register writes one cell, or every cell when the entry has no index
// (a wildcard write, which is how a directory level is cleared at once).
func (w *writer) register(typ p4v1.Update_Type, e *p4v1.RegisterEntry) *opError {
	r, ok := w.b.registers[e.GetRegisterId()]
	if !ok {
		return unknownID("register", e.GetRegisterId())
	}
	if typ != p4v1.Update_MODIFY {
		return errorf(codes.InvalidArgument, "register %s: %v; register cells are only ever MODIFYed", r.name, typ)
	}
	lo, hi, err := r.cells(e)
	if err != nil {
		return err
	}
	c, err := r.cellOf(e)
	if err != nil {
		return err
	}
	old := make([]cell, 0, hi-lo)
	for i := lo; i < hi; i++ {
		o, rerr := readCell(w.st.pipe, r, i)
		if rerr == nil {
			rerr = writeCell(w.st.pipe, r, i, c)
		}
		if rerr != nil {
			for j, o := range old {
				_ = writeCell(w.st.pipe, r, lo+j, o)
			}
			return errorf(codeOf(rerr), "register %s[%d]: %v", r.name, i, rerr)
		}
		old = append(old, o)
	}
	w.undo = append(w.undo, func() {
		for j, o := range old {
			_ = writeCell(w.st.pipe, r, lo+j, o)
		}
	})
	return nil
}

// counter sets drop counter cells (MODIFY only, P4Runtime 9.3.2): the
// pipeline's counters only ever grow, so the server moves the base it
// reads them from. No index sets every cell; no data changes nothing.
func (w *writer) counter(typ p4v1.Update_Type, e *p4v1.CounterEntry) *opError {
	d := w.b.drops
	if e.GetCounterId() != d.id {
		return unknownID("counter", e.GetCounterId())
	}
	if typ != p4v1.Update_MODIFY {
		return errorf(codes.InvalidArgument, "counter %s: %v; counter cells are only ever MODIFYed", d.name, typ)
	}
	lo, hi := 0, int(d.size)
	if e.GetIndex() != nil {
		i, err := checkIndex("counter "+d.name, e.GetIndex().GetIndex(), d.size)
		if err != nil {
			return err
		}
		lo, hi = i, i+1
	}
	if e.GetData() == nil {
		return nil
	}
	if e.GetData().GetByteCount() != 0 {
		return errorf(codes.InvalidArgument, "counter %s counts packets; leave byte_count 0", d.name)
	}
	v := e.GetData().GetPacketCount()
	if v < 0 {
		return errorf(codes.InvalidArgument, "counter %s: packet_count %d is negative", d.name, v)
	}
	old := w.st.base
	now := dropCells(w.st.pipe.Counters())
	for i := lo; i < hi; i++ {
		w.st.base.set(i, now[i]-uint64(v))
	}
	w.undo = append(w.undo, func() { w.st.base = old })
	return nil
}
