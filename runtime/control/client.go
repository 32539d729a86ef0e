package control

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"time"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	p4 "github.com/capygen/capygen/generated/p4"
)

// Options configure a Client.
type Options struct {
	// DeviceID is the switch's P4Runtime device id (default 1).
	DeviceID uint64
	// ElectionID is this client's election id; it must be the highest of
	// the connected clients to write (default 1).
	ElectionID uint64
	// Observe makes the client a backup without an election id: it may
	// read (State) while another controller is primary, never write.
	Observe bool
	// P4Info is the p4info to resolve names through and to push; nil is
	// the generated one (generated/p4). A Tofino deploy may give bf-p4c's
	// own p4info: names resolve the same.
	P4Info *p4configv1.P4Info
	// DialOptions are added to the gRPC dial (tests use bufconn).
	DialOptions []grpc.DialOption
	// Timeout bounds opening the stream and the arbitration (default
	// 10s), as ctx does.
	Timeout time.Duration
}

// Client is a P4Runtime controller of one switch: the primary of its
// default role for as long as it is open.
type Client struct {
	conn     *grpc.ClientConn
	rt       p4v1.P4RuntimeClient
	device   uint64
	election *p4v1.Uint128
	stream   p4v1.P4Runtime_StreamChannelClient
	cancel   context.CancelFunc
	info     *p4configv1.P4Info
	ids      *ids
	target   string
	// givenInfo is true when Options.P4Info named the p4info.
	givenInfo bool
}

// Dial connects to target (host:port, or for a socket unix:///abs/path or
// unix:path, which may be relative) and arbitrates; it fails unless this
// client becomes the primary.
func Dial(ctx context.Context, target string, opt Options) (*Client, error) {
	if opt.DeviceID == 0 {
		opt.DeviceID = 1
	}
	if opt.ElectionID == 0 && !opt.Observe {
		opt.ElectionID = 1
	}
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Second
	}
	info := opt.P4Info
	if info == nil {
		var err error
		if info, err = p4.P4Info(); err != nil {
			return nil, err
		}
	}
	x, err := resolve(info)
	if err != nil {
		return nil, err
	}
	dial := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opt.DialOptions...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("control: %s: %w", target, err)
	}
	c := &Client{conn: conn, rt: p4v1.NewP4RuntimeClient(conn), device: opt.DeviceID,
		election: &p4v1.Uint128{Low: opt.ElectionID}, info: info, ids: x, target: target, givenInfo: opt.P4Info != nil}
	if opt.Observe {
		// Reads need neither the stream nor an election id (P4Runtime
		// 11), and a server may refuse an unset one on the stream
		// (Stratum does): an observer only reads.
		c.election, c.cancel = nil, func() {}
		return c, nil
	}
	if err := c.arbitrate(ctx, opt.Timeout); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// arbitrate opens the stream and waits to hear that this client is the
// primary. ctx and timeout bound all of it, the stream's opening too: a
// port that accepts TCP but never speaks HTTP/2 would hold it for gRPC's
// 20 s connect timeout.
func (c *Client) arbitrate(ctx context.Context, timeout time.Duration) error {
	// The stream outlives ctx (it keeps the primary role until Close), so
	// its context is not derived from ctx; tctx's end cancels it until the
	// arbitration is done.
	sctx, cancel := context.WithCancel(context.Background())
	tctx, tcancel := context.WithTimeout(ctx, timeout)
	defer tcancel()
	unbind := context.AfterFunc(tctx, cancel)
	fail := func(what string, err error) error {
		cancel()
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("control: %s: %s: %w", c.target, what, ctx.Err())
		case tctx.Err() != nil:
			return fmt.Errorf("control: %s: %s: no answer within the timeout %v: is a P4Runtime server listening there? (if it is only slow, give a longer timeout)", c.target, what, timeout)
		}
		return fmt.Errorf("control: %s: %s: %w", c.target, what, err)
	}
	s, err := c.rt.StreamChannel(sctx)
	if err != nil {
		return fail("open StreamChannel", err)
	}
	c.stream, c.cancel = s, cancel
	if err := s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
		DeviceId: c.device, ElectionId: c.election}}}); err != nil {
		return fail("send arbitration", err)
	}
	m, err := s.Recv()
	if err != nil {
		return fail("arbitration", err)
	}
	if !unbind() {
		// tctx ended as the answer came: the stream is cancelled.
		return fail("arbitration", context.Canceled)
	}
	a := m.GetArbitration()
	if a == nil {
		cancel()
		return fmt.Errorf("control: %s: the switch answered the arbitration with %v", c.target, m)
	}
	if code := codes.Code(a.GetStatus().GetCode()); code != codes.OK && c.election != nil {
		cancel()
		return c.notPrimary(code, a)
	}
	// Drain the stream, so the server's later updates never block it.
	go func() {
		for {
			if _, err := s.Recv(); err != nil {
				return
			}
		}
	}()
	return nil
}

// notPrimary explains an arbitration answer other than OK by its code
// (P4Runtime, "Client Arbitration Notifications"): ALREADY_EXISTS, another
// client is primary; NOT_FOUND, there is no primary, and this id is below
// the highest one seen, which the answer carries and which an id needs to
// reach to become primary.
func (c *Client) notPrimary(code codes.Code, a *p4v1.MasterArbitrationUpdate) error {
	head := fmt.Sprintf("control: %s: election id %s is not the primary (%v: %s)", c.target, electionText(c.election), code, a.GetStatus().GetMessage())
	const look = "to only look, use election id 0 (capygen deploy -election 0 -pipeline=false -show)"
	seen := electionText(a.GetElectionId())
	switch {
	case code == codes.AlreadyExists:
		return fmt.Errorf("%s; the primary's election id is %s. Another controller runs this switch: %s; to take over from it, an id above its",
			head, seen, look)
	case code == codes.NotFound && a.GetElectionId() != nil:
		return fmt.Errorf("%s: the switch has no primary, but has seen election id %s, and only an id at least that high becomes primary. "+
			"Give election id %s or higher (one no connected controller uses); %s", head, seen, seen, look)
	case code == codes.NotFound:
		return fmt.Errorf("%s: the switch has no primary and names no election id that would become one; give a higher election id; %s", head, look)
	}
	return fmt.Errorf("%s; the switch's highest election id is %s. A backup is answered ALREADY_EXISTS (another primary) or NOT_FOUND (no primary), not %v: "+
		"check the server's arbitration; %s", head, seen, code, look)
}

// Close gives up the primary role and closes the connection.
func (c *Client) Close() error {
	c.cancel()
	return c.conn.Close()
}

// P4Info is the p4info the client resolves names through.
func (c *Client) P4Info() *p4configv1.P4Info { return c.info }

// Capabilities returns the server's P4Runtime version.
func (c *Client) Capabilities(ctx context.Context) (string, error) {
	r, err := c.rt.Capabilities(ctx, &p4v1.CapabilitiesRequest{})
	if err != nil {
		return "", fmt.Errorf("control: %s: Capabilities: %w", c.target, err)
	}
	return r.GetP4RuntimeApiVersion(), nil
}

// PipelineOptions say how to push the pipeline.
type PipelineOptions struct {
	// DeviceConfig is the target-specific binary (for a Tofino, bf-p4c's
	// output packed as the switch's P4Runtime server wants it); the
	// software switch ignores it.
	DeviceConfig []byte
	// Cookie identifies the pushed config; 0 takes the p4info's spec
	// fingerprint as a number, mixed with a hash of DeviceConfig if there
	// is one, so a re-deploy of the same spec and binary is seen, and a
	// recompiled binary of the same spec is pushed.
	Cookie uint64
	// Force commits even when the switch already runs this config (a
	// commit clears every table and register).
	Force bool
}

// SetPipeline pushes the p4info (VERIFY_AND_COMMIT) unless the switch
// already runs the same cookie and p4info; it says whether it committed.
func (c *Client) SetPipeline(ctx context.Context, opt PipelineOptions) (bool, error) {
	cookie := opt.Cookie
	if cookie == 0 {
		cookie = fingerprintCookie(c.info.GetPkgInfo().GetVersion())
		if len(opt.DeviceConfig) > 0 {
			sum := sha256.Sum256(opt.DeviceConfig)
			cookie ^= binary.BigEndian.Uint64(sum[:8])
		}
	}
	if !opt.Force {
		r, err := c.rt.GetForwardingPipelineConfig(ctx, &p4v1.GetForwardingPipelineConfigRequest{DeviceId: c.device,
			ResponseType: p4v1.GetForwardingPipelineConfigRequest_P4INFO_AND_COOKIE})
		if err == nil && r.GetConfig().GetCookie().GetCookie() == cookie && proto.Equal(r.GetConfig().GetP4Info(), c.info) {
			return false, nil
		}
		if err != nil && status.Code(err) != codes.FailedPrecondition {
			return false, fmt.Errorf("control: %s: GetForwardingPipelineConfig: %w", c.target, err)
		}
	}
	_, err := c.rt.SetForwardingPipelineConfig(ctx, &p4v1.SetForwardingPipelineConfigRequest{
		DeviceId: c.device, ElectionId: c.election, Action: p4v1.SetForwardingPipelineConfigRequest_VERIFY_AND_COMMIT,
		Config: &p4v1.ForwardingPipelineConfig{P4Info: c.info, P4DeviceConfig: opt.DeviceConfig,
			Cookie: &p4v1.ForwardingPipelineConfig_Cookie{Cookie: cookie}},
	})
	if err != nil {
		return false, fmt.Errorf("control: %s: SetForwardingPipelineConfig: %w", c.target, err)
	}
	return true, nil
}

// electionText prints a 128-bit election id: its low half alone when the
// high one is zero.
func electionText(id *p4v1.Uint128) string {
	if id.GetHigh() == 0 {
		return fmt.Sprint(id.GetLow())
	}
	return fmt.Sprintf("%d:%d (high:low)", id.GetHigh(), id.GetLow())
}

// fingerprintCookie reads a hex spec fingerprint as a number; another
// version string hashes to one.
func fingerprintCookie(v string) uint64 {
	var n uint64
	if _, err := fmt.Sscanf(v, "%x", &n); err == nil && n != 0 {
		return n
	}
	h := fnv.New64a()
	h.Write([]byte(v))
	return h.Sum64()
}

// write sends updates in batches, with CONTINUE_ON_ERROR: the one
// atomicity every P4Runtime server supports (P4Runtime 12.3; Stratum and
// PI refuse ROLLBACK_ON_ERROR). What succeeded before a failure stays; the
// error, a *writeFailure, lists each failed update. A server may apply a
// batch's updates in any order, so updates that depend on others go in a
// later call.
func (c *Client) write(ctx context.Context, updates []*p4v1.Update, describe func(int) string) error {
	const batch = 512
	for lo := 0; lo < len(updates); lo += batch {
		hi := min(lo+batch, len(updates))
		_, err := c.rt.Write(ctx, &p4v1.WriteRequest{DeviceId: c.device, ElectionId: c.election,
			Updates: updates[lo:hi], Atomicity: p4v1.WriteRequest_CONTINUE_ON_ERROR})
		if err != nil {
			return writeError("control: "+c.target+": Write", err, lo, hi, describe)
		}
	}
	return nil
}

// writeFailure is a Write call that failed: updates[lo:hi] of a write's.
type writeFailure struct {
	lo, hi int
	// detailed is true when the server named the failed updates (the
	// call's others were applied); false when it refused the call as a
	// whole.
	detailed bool
	err      error
}

func (w *writeFailure) Error() string { return w.err.Error() }
func (w *writeFailure) Unwrap() error { return w.err }

// writeError turns a Write's per-update details into lines naming each
// failed update.
func writeError(prefix string, err error, lo, hi int, describe func(int) string) *writeFailure {
	w := &writeFailure{lo: lo, hi: hi, err: fmt.Errorf("%s: %w", prefix, err)}
	st, ok := status.FromError(err)
	if !ok || len(st.Details()) == 0 {
		return w
	}
	var lines []string
	for i, d := range st.Details() {
		e, ok := d.(*p4v1.Error)
		if !ok || codes.Code(e.GetCanonicalCode()) == codes.OK || codes.Code(e.GetCanonicalCode()) == codes.Aborted {
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: %v: %s", describe(lo+i), codes.Code(e.GetCanonicalCode()), e.GetMessage()))
	}
	if len(lines) > 0 {
		w.detailed = true
		w.err = fmt.Errorf("%s: %w", prefix, errors.New(strings.Join(lines, "\n  ")))
	}
	return w
}

// read collects every entity a read of query returns.
func (c *Client) read(ctx context.Context, query ...*p4v1.Entity) ([]*p4v1.Entity, error) {
	rs, err := c.rt.Read(ctx, &p4v1.ReadRequest{DeviceId: c.device, Entities: query})
	if err != nil {
		return nil, fmt.Errorf("control: %s: Read: %w", c.target, err)
	}
	var out []*p4v1.Entity
	for {
		r, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("control: %s: Read: %w", c.target, err)
		}
		out = append(out, r.GetEntities()...)
	}
}

// names lists what a p4info holds of a kind, for an error.
func names[T interface{ GetPreamble() *p4configv1.Preamble }](xs []T) string {
	var out []string
	for _, x := range xs {
		out = append(out, x.GetPreamble().GetName())
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
