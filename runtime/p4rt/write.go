package p4rt

import (
	"context"
	"fmt"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// Write applies a batch of updates, in order. With CONTINUE_ON_ERROR (the
// default) every update is tried; with ROLLBACK_ON_ERROR a failure undoes
// the ones before it. When any update fails the call returns UNKNOWN with
// one p4.v1.Error per update in the status details, in order.
func (s *Server) Write(_ context.Context, req *p4v1.WriteRequest) (*p4v1.WriteResponse, error) {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return nil, err
	}
	if err := checkRole(req.GetRole()); err != nil {
		return nil, err
	}
	atomicity := req.GetAtomicity()
	switch atomicity {
	case p4v1.WriteRequest_CONTINUE_ON_ERROR, p4v1.WriteRequest_ROLLBACK_ON_ERROR:
	case p4v1.WriteRequest_DATAPLANE_ATOMIC:
		return nil, status.Error(codes.Unimplemented, "DATAPLANE_ATOMIC is not supported; use CONTINUE_ON_ERROR or ROLLBACK_ON_ERROR")
	default:
		return nil, status.Errorf(codes.InvalidArgument, "atomicity %v is unknown", atomicity)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPrimary(req.GetElectionId(), "write"); err != nil {
		return nil, err
	}
	if s.config == nil {
		return nil, status.Error(codes.FailedPrecondition, "no forwarding pipeline is committed; send SetForwardingPipelineConfig (VERIFY_AND_COMMIT) before writing")
	}
	w := &writer{b: s.bind, p: s.pipe, ts: s.pipe.ReadTables(), rows: map[uint32]rows{}}
	errs := make([]*opError, len(req.Updates))
	failed := false
	for i, u := range req.Updates {
		errs[i] = w.update(u)
		if errs[i] != nil {
			failed = true
			if atomicity == p4v1.WriteRequest_ROLLBACK_ON_ERROR {
				w.rollback()
				// What was applied before the failure is undone, and
				// what comes after it is not tried: each says so.
				for j := range req.Updates {
					if j != i && errs[j] == nil {
						errs[j] = errorf(codes.Aborted, "update %d was not applied: update %d failed and the batch is ROLLBACK_ON_ERROR", j, i)
					}
				}
				break
			}
		}
	}
	if !failed {
		return &p4v1.WriteResponse{}, nil
	}
	return nil, batchError(errs)
}

// batchError is the status of a batch with failures: UNKNOWN, with one
// p4.v1.Error per update (OK for those that were applied).
func batchError(errs []*opError) error {
	n := 0
	for _, e := range errs {
		if e != nil {
			n++
		}
	}
	st := status.New(codes.Unknown, fmt.Sprintf("%d of %d updates failed; the details hold one p4.v1.Error per update, in order", n, len(errs)))
	p := st.Proto()
	for _, e := range errs {
		pe := &p4v1.Error{CanonicalCode: int32(codes.OK)}
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

// writer applies one batch and remembers how to undo it.
type writer struct {
	b *binding
	p *pipeline.Pipeline
	// ts is the tables as the batch found them; rows each table's
	// entries as the batch has made them so far.
	ts   pipeline.Tables
	rows map[uint32]rows
	undo []func()
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
		return errorf(codes.Unimplemented, "counter %d: writing counters is not supported; read them and take differences", x.CounterEntry.GetCounterId())
	case nil:
		return errorf(codes.InvalidArgument, "the update has no entity")
	default:
		return errorf(codes.Unimplemented, "entity %T is not supported by this switch (tables and registers are)", x)
	}
}

func (w *writer) table(typ p4v1.Update_Type, e *p4v1.TableEntry) *opError {
	t, ok := w.b.tables[e.GetTableId()]
	if !ok {
		return errorf(codes.NotFound, "table id %d is not in the p4info", e.GetTableId())
	}
	if e.GetIsDefaultAction() {
		return errorf(codes.PermissionDenied, "table %s: the default action is const (miss) and cannot be changed", t.name)
	}
	if e.GetPriority() != 0 {
		return errorf(codes.InvalidArgument, "table %s: priority %d on an exact-match table; leave it 0", t.name, e.GetPriority())
	}
	if e.GetMeterConfig() != nil || e.GetCounterData() != nil || e.GetMeterCounterData() != nil {
		return errorf(codes.InvalidArgument, "table %s has no direct meters or counters; leave meter_config, counter_data and meter_counter_data unset", t.name)
	}
	if e.GetIdleTimeoutNs() != 0 || e.GetTimeSinceLastHit() != nil {
		return errorf(codes.InvalidArgument, "table %s does not support idle timeout; leave idle_timeout_ns unset", t.name)
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
	switch typ {
	case p4v1.Update_INSERT, p4v1.Update_MODIFY:
		if typ == p4v1.Update_INSERT && exists {
			return errorf(codes.AlreadyExists, "table %s: an entry for %s exists; MODIFY it, or DELETE it first", t.name, t.keyString(key))
		}
		if typ == p4v1.Update_MODIFY && !exists {
			return errorf(codes.NotFound, "table %s: no entry for %s to modify; INSERT it", t.name, t.keyString(key))
		}
		params, err := t.entryParams(e)
		if err != nil {
			return err
		}
		if typ == p4v1.Update_INSERT && int64(len(rows)) >= t.size {
			return errorf(codes.ResourceExhausted, "table %s is full (%d entries); delete one, or raise its size in the spec", t.name, t.size)
		}
		if err := w.b.setRow(w.p, t, key, params); err != nil {
			return errorf(codeOf(err), "table %s entry %s: %v", t.name, t.keyString(key), err)
		}
		if exists {
			w.undo = append(w.undo, func() { _ = w.b.setRow(w.p, t, key, old) })
		} else {
			w.undo = append(w.undo, func() { _ = w.b.deleteRow(w.p, t, key) })
		}
		rows[key] = params
	case p4v1.Update_DELETE:
		if !exists {
			return errorf(codes.NotFound, "table %s: no entry for %s to delete", t.name, t.keyString(key))
		}
		if err := w.b.deleteRow(w.p, t, key); err != nil {
			return errorf(codeOf(err), "table %s entry %s: %v", t.name, t.keyString(key), err)
		}
		w.undo = append(w.undo, func() { _ = w.b.setRow(w.p, t, key, old) })
		delete(rows, key)
	}
	return nil
}

func (w *writer) register(typ p4v1.Update_Type, e *p4v1.RegisterEntry) *opError {
	r, ok := w.b.registers[e.GetRegisterId()]
	if !ok {
		return errorf(codes.NotFound, "register id %d is not in the p4info", e.GetRegisterId())
	}
	if typ != p4v1.Update_MODIFY {
		return errorf(codes.InvalidArgument, "register %s: %v; register cells are only ever MODIFYed", r.name, typ)
	}
	i, err := r.index(e)
	if err != nil {
		return err
	}
	c, err := r.cellOf(e)
	if err != nil {
		return err
	}
	old, rerr := readCell(w.p, r, i)
	if rerr != nil {
		return errorf(codeOf(rerr), "register %s[%d]: %v", r.name, i, rerr)
	}
	if werr := writeCell(w.p, r, i, c); werr != nil {
		return errorf(codeOf(werr), "register %s[%d]: %v", r.name, i, werr)
	}
	w.undo = append(w.undo, func() { _ = writeCell(w.p, r, i, old) })
	return nil
}
