package p4rt

import (
	"context"
	"errors"
	"fmt"
	"sync"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	p4 "github.com/capygen/capygen/generated/p4"
	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// APIVersion is the P4Runtime version Capabilities reports: that of the
// p4runtime module the server is built with.
const APIVersion = "1.5.0"

// DefaultDeviceID is the device id a Config without one serves; 1 is
// what Stratum and most controllers use by default.
const DefaultDeviceID = 1

// Config configures a Server.
type Config struct {
	// Pipeline is the switch's pipeline; the server is its control plane.
	Pipeline *pipeline.Pipeline
	// DeviceID is the P4Runtime device id (default DefaultDeviceID).
	DeviceID uint64
}

// Server is a P4Runtime server over one pipeline. Register it on a
// grpc.Server with Register, or use Serve.
type Server struct {
	p4v1.UnimplementedP4RuntimeServer

	pipe   *pipeline.Pipeline
	device uint64
	bind   *binding

	// mu orders the control plane: arbitration, the pipeline config and
	// writes take it; a Read takes it shared while it reads, so it sees
	// the state between two writes (P4Runtime 13.3: a Read locks out
	// writes). The data plane never takes it.
	mu      sync.RWMutex
	clients map[*client]struct{}
	primary *client
	// seen is the highest election id a primary has had.
	seen electionID
	// saved is a config verified and saved but not committed; config the
	// committed one (nil before the first commit). Reads and writes are
	// served once either is set.
	saved, config *p4v1.ForwardingPipelineConfig
	// live is the forwarding state of pipe, the switch's pipeline.
	live *fwdState
	// pending, while a config is saved, is the state COMMIT will realize:
	// a fresh pipeline (cleared, as a loaded program's) with the writes
	// since the save, which queue holds to replay on the live pipeline
	// at COMMIT. VERIFY_AND_SAVE leaves the forwarding state unmodified
	// (P4Runtime 14), so those writes go here, and Reads, which refer to
	// the saved config, see them too (read-write symmetry).
	pending *fwdState
	queue   []*p4v1.Update
}

// fwdState is a forwarding state the server writes and reads: a
// pipeline, with what its tables do not hold.
type fwdState struct {
	pipe *pipeline.Pipeline
	// meta is what the pipeline's tables do not hold of an entry: its
	// controller_metadata and metadata, returned by Read as the
	// specification asks.
	meta map[metaKey]entryMeta
	// base is the pipeline's counters at the last commit, which starts
	// the drop counter over as a newly loaded program's would.
	base countersBase
}

// current is the state writes and reads refer to: the saved config's
// while there is one, else the live one. s.mu is held.
func (s *Server) current() *fwdState {
	if s.pending != nil {
		return s.pending
	}
	return s.live
}

// New returns a server for cfg's pipeline, bound through the generated
// p4info.
func New(cfg Config) (*Server, error) {
	if cfg.Pipeline == nil {
		return nil, errors.New("p4rt: Config.Pipeline is nil; give the switch's pipeline")
	}
	if cfg.DeviceID == 0 {
		cfg.DeviceID = DefaultDeviceID
	}
	info, err := p4.P4Info()
	if err != nil {
		return nil, fmt.Errorf("p4rt: %w", err)
	}
	b, err := bind(info)
	if err != nil {
		return nil, fmt.Errorf("p4rt: the generated p4info and the pipeline model disagree (regenerate both with capygen generate): %w", err)
	}
	return &Server{pipe: cfg.Pipeline, device: cfg.DeviceID, bind: b, clients: map[*client]struct{}{},
		live: &fwdState{pipe: cfg.Pipeline, meta: map[metaKey]entryMeta{}}}, nil
}

// Register adds the P4Runtime service to g.
func (s *Server) Register(g *grpc.Server) { p4v1.RegisterP4RuntimeServer(g, s) }

// DeviceID is the device id the server answers to.
func (s *Server) DeviceID() uint64 { return s.device }

// Capabilities reports the P4Runtime version, server-wide (device id 0)
// or for this device.
func (s *Server) Capabilities(_ context.Context, req *p4v1.CapabilitiesRequest) (*p4v1.CapabilitiesResponse, error) {
	if id := req.GetDeviceId(); id != 0 {
		if err := s.checkDevice(id); err != nil {
			return nil, err
		}
	}
	return &p4v1.CapabilitiesResponse{P4RuntimeApiVersion: APIVersion}, nil
}

// checkDevice refuses a request for another device.
func (s *Server) checkDevice(id uint64) error {
	if id != s.device {
		return status.Errorf(codes.NotFound, "device id %d is unknown; this switch is device %d", id, s.device)
	}
	return nil
}

// checkRole refuses a role other than the default one: the switch knows
// no other (P4Runtime 12: an unknown role is NOT_FOUND).
func checkRole(role string) error {
	if role != "" {
		return status.Errorf(codes.NotFound, "role %q is unknown: this switch has only the default role (leave role empty)", role)
	}
	return nil
}

// configured reports whether reads and writes may be served: a config is
// committed, or verified and saved (P4Runtime 14: later requests refer to
// a saved config). s.mu is held.
func (s *Server) configured() bool { return s.config != nil || s.saved != nil }

// checkPrimary refuses a write-class request whose election id is not the
// primary's. s.mu is held.
func (s *Server) checkPrimary(id *p4v1.Uint128, what string) error {
	if s.primary == nil {
		return status.Errorf(codes.PermissionDenied, "%s with election id %s: there is no primary client; open a StreamChannel and arbitrate first", what, electionString(id))
	}
	if !s.primary.election.equal(id) {
		return status.Errorf(codes.PermissionDenied, "%s with election id %s: the primary's election id is %s; only the primary may %s", what, electionString(id), s.primary.election, what)
	}
	return nil
}

// SetForwardingPipelineConfig verifies, saves and commits a pipeline. The
// switch runs the program it was generated with, so verifying is checking
// that the p4info is that program's.
func (s *Server) SetForwardingPipelineConfig(_ context.Context, req *p4v1.SetForwardingPipelineConfigRequest) (*p4v1.SetForwardingPipelineConfigResponse, error) {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return nil, err
	}
	if err := checkRole(req.GetRole()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPrimary(req.GetElectionId(), "set the forwarding pipeline"); err != nil {
		return nil, err
	}
	act := req.GetAction()
	switch act {
	case p4v1.SetForwardingPipelineConfigRequest_VERIFY, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE, p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT:
		if err := s.verify(req.GetConfig()); err != nil {
			return nil, err
		}
		cfg := proto.Clone(req.GetConfig()).(*p4v1.ForwardingPipelineConfig)
		switch act {
		case p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_SAVE:
			// COMMIT replays the writes since the last save: a new save
			// starts them over.
			s.saved = cfg
			s.pending, s.queue = &fwdState{pipe: pipeline.New(), meta: map[metaKey]entryMeta{}}, nil
		case p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT:
			// The writes since a save go with it.
			s.commit(cfg)
			s.saved, s.pending, s.queue = nil, nil, nil
		}
	case p4v1.SetForwardingPipelineConfigRequest_COMMIT:
		if req.GetConfig() != nil {
			return nil, status.Error(codes.InvalidArgument, "COMMIT takes no config: it commits the saved one; send VERIFY_AND_COMMIT to commit this one")
		}
		if s.saved == nil {
			return nil, status.Error(codes.NotFound, "COMMIT: no config is saved; send VERIFY_AND_SAVE first, or use VERIFY_AND_COMMIT")
		}
		queue := s.queue
		s.commit(s.saved)
		s.saved, s.pending, s.queue = nil, nil, nil
		if err := s.replay(queue); err != nil {
			return nil, err
		}
	case p4v1.SetForwardingPipelineConfigRequest_RECONCILE_AND_COMMIT:
		return nil, status.Error(codes.Unimplemented, "RECONCILE_AND_COMMIT is not supported; use VERIFY_AND_COMMIT (which clears the forwarding state)")
	default:
		return nil, status.Errorf(codes.InvalidArgument, "action %v: give VERIFY, VERIFY_AND_SAVE, VERIFY_AND_COMMIT or COMMIT", act)
	}
	return &p4v1.SetForwardingPipelineConfigResponse{}, nil
}

// replay applies the updates written since the save to the live state,
// as COMMIT realizes the saved config (P4Runtime 14). They succeeded, in
// this order, on the same cleared state, so none should fail here. s.mu
// is held.
func (s *Server) replay(queue []*p4v1.Update) error {
	w := s.writer(s.live)
	for i, u := range queue {
		if err := w.update(u); err != nil {
			return status.Errorf(codes.Internal, "COMMIT: replaying update %d of %d written since the save failed (a server bug: the config is committed but may lack the writes made after the save; write them again): %s", i, len(queue), err.msg)
		}
	}
	return nil
}

// verify checks that cfg's p4info is the generated one: first the spec
// fingerprint, which names what to regenerate, then the whole p4info.
func (s *Server) verify(cfg *p4v1.ForwardingPipelineConfig) error {
	info := cfg.GetP4Info()
	if info == nil {
		return status.Error(codes.InvalidArgument, "the config has no p4info; send generated/p4/"+p4.P4InfoFile)
	}
	if got := info.GetPkgInfo().GetVersion(); got != p4.Fingerprint {
		return status.Errorf(codes.InvalidArgument,
			"the p4info is of spec fingerprint %q (pkg_info.version) but this switch runs spec fingerprint %q: deploy the p4info generated with the switch, or rebuild the switch from the same spec",
			got, p4.Fingerprint)
	}
	if !proto.Equal(info, s.bind.info) {
		return status.Errorf(codes.InvalidArgument,
			"the p4info carries spec fingerprint %q but differs from the one generated from it (edited by hand?): deploy generated/p4/%s as generated",
			p4.Fingerprint, p4.P4InfoFile)
	}
	return nil
}

// commit makes cfg the running pipeline. Loading a program resets its
// forwarding state: every table entry and register cell, and the
// counters start over. s.mu is held.
func (s *Server) commit(cfg *p4v1.ForwardingPipelineConfig) {
	l := s.live
	ts := l.pipe.ReadTables()
	for _, id := range s.bind.tableOrder {
		t := s.bind.tables[id]
		for key := range s.bind.tableRows(t, ts) {
			// The entry was just read; a delete cannot miss.
			_ = s.bind.deleteRow(l.pipe, t, key)
		}
	}
	l.pipe.ClearDirectory()
	_ = l.pipe.WriteMinWorkload([4]byte{}, 0)
	l.base = baseOf(l.pipe.Counters())
	clear(l.meta)
	s.config = cfg
}

// GetForwardingPipelineConfig returns the committed config, or the part
// of it that ResponseType asks for.
func (s *Server) GetForwardingPipelineConfig(_ context.Context, req *p4v1.GetForwardingPipelineConfigRequest) (*p4v1.GetForwardingPipelineConfigResponse, error) {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return nil, err
	}
	s.mu.RLock()
	cfg := s.config
	s.mu.RUnlock()
	if cfg == nil {
		// The specification's answer for a switch with no known config:
		// OK, with the config unset (P4Runtime 15).
		return &p4v1.GetForwardingPipelineConfigResponse{}, nil
	}
	out := &p4v1.ForwardingPipelineConfig{Cookie: cfg.GetCookie()}
	switch rt := req.GetResponseType(); rt {
	case p4v1.GetForwardingPipelineConfigRequest_ALL:
		out.P4Info, out.P4DeviceConfig = cfg.GetP4Info(), cfg.GetP4DeviceConfig()
	case p4v1.GetForwardingPipelineConfigRequest_COOKIE_ONLY:
	case p4v1.GetForwardingPipelineConfigRequest_P4INFO_AND_COOKIE:
		out.P4Info = cfg.GetP4Info()
	case p4v1.GetForwardingPipelineConfigRequest_DEVICE_CONFIG_AND_COOKIE:
		out.P4DeviceConfig = cfg.GetP4DeviceConfig()
	default:
		return nil, status.Errorf(codes.InvalidArgument, "response_type %v is unknown; use ALL, COOKIE_ONLY, P4INFO_AND_COOKIE or DEVICE_CONFIG_AND_COOKIE", rt)
	}
	return &p4v1.GetForwardingPipelineConfigResponse{Config: proto.Clone(out).(*p4v1.ForwardingPipelineConfig)}, nil
}

// P4Info is the p4info the server checks pipelines against.
func (s *Server) P4Info() *p4configv1.P4Info {
	return proto.Clone(s.bind.info).(*p4configv1.P4Info)
}
