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
	// writes. The data plane never takes it.
	mu      sync.Mutex
	clients map[*client]struct{}
	primary *client
	// seen is the highest election id a primary has had.
	seen electionID
	// announced numbers arbitration updates, which are sent after mu is
	// released (announce): a client never takes an older one after a
	// newer.
	announced uint64
	// saved is a config verified and saved but not committed; config the
	// committed one (nil before the first commit). Reads and writes are
	// served once either is set.
	saved, config *p4v1.ForwardingPipelineConfig
	// meta is what the pipeline's tables do not hold of an entry: its
	// controller_metadata and metadata, returned by Read as the
	// specification asks.
	meta map[metaKey]entryMeta
	// base is the pipeline's counters at the last commit, which starts
	// the drop counter over as a newly loaded program's would.
	base countersBase
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
	return &Server{pipe: cfg.Pipeline, device: cfg.DeviceID, bind: b, clients: map[*client]struct{}{}, meta: map[metaKey]entryMeta{}}, nil
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
			s.saved = cfg
		case p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT:
			s.commit(cfg)
			s.saved = nil
		}
	case p4v1.SetForwardingPipelineConfigRequest_COMMIT:
		if req.GetConfig() != nil {
			return nil, status.Error(codes.InvalidArgument, "COMMIT takes no config: it commits the saved one; send VERIFY_AND_COMMIT to commit this one")
		}
		if s.saved == nil {
			return nil, status.Error(codes.NotFound, "COMMIT: no config is saved; send VERIFY_AND_SAVE first, or use VERIFY_AND_COMMIT")
		}
		// The writes since the save are kept: committing replays them.
		s.config, s.saved = s.saved, nil
	case p4v1.SetForwardingPipelineConfigRequest_RECONCILE_AND_COMMIT:
		return nil, status.Error(codes.Unimplemented, "RECONCILE_AND_COMMIT is not supported; use VERIFY_AND_COMMIT (which clears the forwarding state)")
	default:
		return nil, status.Errorf(codes.InvalidArgument, "action %v: give VERIFY, VERIFY_AND_SAVE, VERIFY_AND_COMMIT or COMMIT", act)
	}
	return &p4v1.SetForwardingPipelineConfigResponse{}, nil
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
	ts := s.pipe.ReadTables()
	for _, id := range s.bind.tableOrder {
		t := s.bind.tables[id]
		for key := range s.bind.tableRows(t, ts) {
			// The entry was just read; a delete cannot miss.
			_ = s.bind.deleteRow(s.pipe, t, key)
		}
	}
	s.pipe.ClearDirectory()
	_ = s.pipe.WriteMinWorkload([4]byte{}, 0)
	s.base = baseOf(s.pipe.Counters())
	clear(s.meta)
	s.config = cfg
}

// GetForwardingPipelineConfig returns the committed config, or the part
// of it that ResponseType asks for.
func (s *Server) GetForwardingPipelineConfig(_ context.Context, req *p4v1.GetForwardingPipelineConfigRequest) (*p4v1.GetForwardingPipelineConfigResponse, error) {
	if err := s.checkDevice(req.GetDeviceId()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	cfg := s.config
	s.mu.Unlock()
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
