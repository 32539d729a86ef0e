package p4rt

import (
	"fmt"
	"sync"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// electionID is a 128-bit election id; set is false for a client that
// gave none (a backup that can never be primary).
type electionID struct {
	hi, lo uint64
	set    bool
}

func electionOf(u *p4v1.Uint128) electionID {
	if u == nil {
		return electionID{}
	}
	return electionID{u.GetHigh(), u.GetLow(), true}
}

func (e electionID) less(o electionID) bool {
	if !e.set || !o.set {
		return !e.set && o.set
	}
	return e.hi < o.hi || (e.hi == o.hi && e.lo < o.lo)
}

// equal reports whether u is this (set) id.
func (e electionID) equal(u *p4v1.Uint128) bool {
	return e.set && u != nil && u.GetHigh() == e.hi && u.GetLow() == e.lo
}

func (e electionID) proto() *p4v1.Uint128 {
	if !e.set {
		return nil
	}
	return &p4v1.Uint128{High: e.hi, Low: e.lo}
}

func (e electionID) String() string {
	if !e.set {
		return "(unset)"
	}
	if e.hi == 0 {
		return fmt.Sprint(e.lo)
	}
	return fmt.Sprintf("%#x%016x", e.hi, e.lo)
}

func electionString(u *p4v1.Uint128) string { return electionOf(u).String() }

// client is one arbitrated StreamChannel.
type client struct {
	stream p4v1.P4Runtime_StreamChannelServer
	// sendMu serializes Sends (gRPC allows one sender at a time): the
	// sender goroutine's arbitration updates and the handler's stream
	// errors.
	sendMu   sync.Mutex
	election electionID // s.mu guards it

	// box is the mailbox of arbitration updates: the newest one not yet
	// sent. announce overwrites it under s.mu and never waits, so a client
	// that stops reading holds up only its own sender goroutine, never
	// announce, another client or the control plane. An update it
	// overwrites is dropped: each update tells the whole outcome, so the
	// newest is all a client needs.
	boxMu sync.Mutex
	box   *p4v1.StreamMessageResponse
	// wake has one slot: the box was filled. done is closed by leave to
	// stop the sender; stopped by the sender as it returns.
	wake, done, stopped chan struct{}
}

func newClient(stream p4v1.P4Runtime_StreamChannelServer) *client {
	return &client{stream: stream, wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
}

func (c *client) send(m *p4v1.StreamMessageResponse) {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	// A failed send means the stream is going; its Recv ends the loop.
	_ = c.stream.Send(m)
}

// post puts m in c's mailbox, over any update not yet sent.
func (c *client) post(m *p4v1.StreamMessageResponse) {
	c.boxMu.Lock()
	c.box = m
	c.boxMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the sender is woken already and will take m
	}
}

// sender sends c's arbitration updates until leave closes done.
func (c *client) sender() {
	defer close(c.stopped)
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		select {
		case <-c.done:
			return
		default:
		}
		c.boxMu.Lock()
		m := c.box
		c.box = nil
		c.boxMu.Unlock()
		if m != nil {
			c.send(m)
		}
	}
}

// StreamChannel arbitrates: the first message must be a
// MasterArbitrationUpdate for this device; the stream with the highest
// election id is the primary. Every client hears of each change of
// primary; when the primary's stream ends, the next-highest takes over.
func (s *Server) StreamChannel(stream p4v1.P4Runtime_StreamChannelServer) error {
	c := newClient(stream)
	joined := false
	defer func() { s.leave(c, joined) }()
	for {
		req, err := stream.Recv()
		if err != nil {
			// The client closed its side or went away: it leaves.
			return nil
		}
		arb := req.GetArbitration()
		if arb == nil {
			if !joined {
				return status.Error(codes.FailedPrecondition, "the first StreamChannel message must be a MasterArbitrationUpdate")
			}
			s.streamMessage(c, req)
			continue
		}
		if err := s.arbitrate(c, arb, joined); err != nil {
			return err
		}
		if !joined {
			// The client is in s.clients now: announce may post to it.
			go c.sender()
		}
		joined = true
	}
}

// streamMessage answers a stream message other than arbitration with a
// StreamError (P4Runtime 16.6): PERMISSION_DENIED unless c is the
// primary (only the primary does packet I/O), else UNIMPLEMENTED, as
// this switch has no CPU port for packet I/O and no digests.
func (s *Server) streamMessage(c *client, req *p4v1.StreamMessageRequest) {
	s.mu.RLock()
	primary := s.primary == c
	s.mu.RUnlock()
	e := &p4v1.StreamError{}
	what := "this message"
	switch x := req.GetUpdate().(type) {
	case *p4v1.StreamMessageRequest_Packet:
		e.Details, what = &p4v1.StreamError_PacketOut{PacketOut: &p4v1.PacketOutError{PacketOut: x.Packet}}, "packet out"
	case *p4v1.StreamMessageRequest_DigestAck:
		e.Details, what = &p4v1.StreamError_DigestListAck{DigestListAck: &p4v1.DigestListAckError{DigestListAck: x.DigestAck}}, "digest list ack"
	default:
		e.Details = &p4v1.StreamError_Other{Other: &p4v1.StreamOtherError{Other: req.GetOther()}}
	}
	if !primary {
		c.send(streamError(codes.PermissionDenied, what+": only the primary may send it", e))
		return
	}
	c.send(streamError(codes.Unimplemented, what+": not supported by this switch (no packet I/O, no digests)", e))
}

// streamError wraps a StreamError with its code and message.
func streamError(code codes.Code, msg string, e *p4v1.StreamError) *p4v1.StreamMessageResponse {
	e.CanonicalCode, e.Message = int32(code), msg
	return &p4v1.StreamMessageResponse{Update: &p4v1.StreamMessageResponse_Error{Error: e}}
}

// arbitrate handles one MasterArbitrationUpdate from c (P4Runtime 5.3);
// joined says c arbitrated before on this stream.
func (s *Server) arbitrate(c *client, arb *p4v1.MasterArbitrationUpdate, joined bool) error {
	if arb.GetDeviceId() != s.device {
		if joined {
			return status.Errorf(codes.FailedPrecondition, "arbitration for device %d on a stream of device %d; open another stream", arb.GetDeviceId(), s.device)
		}
		return status.Errorf(codes.NotFound, "device id %d is unknown; this switch is device %d", arb.GetDeviceId(), s.device)
	}
	if r := arb.GetRole(); r != nil {
		switch {
		case (r.GetName() != "" || r.GetId() != 0) && joined:
			// A live stream keeps its role, the default one (P4Runtime 5.3).
			return status.Errorf(codes.FailedPrecondition, "role %q: this stream has the default role, and a stream's role cannot change; close it and open another stream to change role", r.GetName())
		case r.GetName() != "" || r.GetId() != 0:
			return status.Errorf(codes.Unimplemented, "role %q: only the default role (leave role unset) is supported", r.GetName())
		case r.GetConfig() != nil:
			return status.Error(codes.InvalidArgument, "role.config: the default role has full pipeline access and takes no config; leave it unset")
		}
	}
	id := electionOf(arb.GetElectionId())
	s.mu.Lock()
	defer s.mu.Unlock()
	if id.set {
		for o := range s.clients {
			if o != c && o.election == id {
				return status.Errorf(codes.InvalidArgument, "election id %s is already another client's; each client needs its own", id)
			}
		}
	}
	c.election = id
	old := s.primary
	s.clients[c] = struct{}{}
	s.elect()
	if s.primary != old || s.primary == c {
		// A new primary, a primary that stays (a re-arbitration still
		// tells everyone, P4Runtime 5.3) or one that stepped down.
		s.announce(nil)
		return nil
	}
	// No change of primary: only c hears, of where it stands.
	s.announce(c)
	return nil
}

// leave removes c; if it was the primary, the next-highest takes over
// and every client hears. Then it stops c's sender (started once c
// joined) and waits for it, so nothing sends on the stream after its
// handler returns. The wait is bounded (leaveWait): a Send in flight to a
// client that neither reads nor cancels (it half-closed) ends only when
// gRPC ends the stream, which it does once the handler returns.
func (s *Server) leave(c *client, joined bool) {
	s.mu.Lock()
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		if s.primary == c {
			s.elect()
			s.announce(nil)
		}
	}
	s.mu.Unlock()
	if joined {
		close(c.done)
		t := time.NewTimer(leaveWait)
		defer t.Stop()
		select {
		case <-c.stopped:
		case <-t.C:
		}
	}
}

// leaveWait bounds how long a leaving stream waits for its sender.
const leaveWait = time.Second

// elect makes the connected client with the highest set election id the
// primary. s.mu is held.
//
// This departs from P4Runtime 5.3 on purpose, as PI's server does: the
// specification keeps the highest id ever seen, so when the primary goes
// the switch has none until a client arbitrates again with an id at least
// that high; here the next-highest connected client takes over at once,
// so a standby controller keeps the switch programmable without racing.
func (s *Server) elect() {
	s.primary = nil
	for c := range s.clients {
		if c.election.set && (s.primary == nil || s.primary.election.less(c.election)) {
			s.primary = c
		}
	}
	if s.primary != nil && s.seen.less(s.primary.election) {
		s.seen = s.primary.election
	}
}

// reported is the election id arbitration updates carry: the primary's,
// or with no primary the highest a primary ever had, or unset when there
// was never one (P4Runtime 5.4).
func (s *Server) reported() electionID {
	if s.primary != nil {
		return s.primary.election
	}
	return s.seen
}

// announce posts the arbitration outcome to to, or to every client when
// to is nil: OK to the primary, ALREADY_EXISTS to the others while there
// is a primary, NOT_FOUND when there is none. s.mu is held; posting never
// waits (client.post), and posting under s.mu keeps each mailbox holding
// the newest outcome.
func (s *Server) announce(to *client) {
	h := s.reported()
	for c := range s.clients {
		if to != nil && c != to {
			continue
		}
		st := &spb.Status{Code: int32(codes.OK), Message: "you are the primary"}
		switch {
		case s.primary == nil:
			st = &spb.Status{Code: int32(codes.NotFound), Message: "there is no primary"}
		case c != s.primary:
			st = &spb.Status{Code: int32(codes.AlreadyExists), Message: fmt.Sprintf("the primary has election id %s", s.primary.election)}
		}
		c.post(&p4v1.StreamMessageResponse{Update: &p4v1.StreamMessageResponse_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
			DeviceId: s.device, ElectionId: h.proto(), Status: st,
		}}})
	}
}
