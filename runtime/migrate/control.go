package migrate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// The control protocol lets another process (capyrun migrate) trigger
// migrations on a running server and read its records: one JSON request per
// line, one JSON reply per line, over a unix socket.

// ControlRequest is one request.
type ControlRequest struct {
	// Op is "migrate", "stats", "records" or "sessions".
	Op string `json:"op"`
	// Conn selects what "migrate" moves: a client address "ip:port", "all"
	// or "random".
	Conn string `json:"conn,omitempty"`
	// Wait makes "migrate" of one connection answer after the migration
	// ended, with its outcome.
	Wait bool `json:"wait,omitempty"`
	// Since skips the first Since records of "records".
	Since int `json:"since,omitempty"`
}

// ControlReply is one reply.
type ControlReply struct {
	Err       string   `json:"error,omitempty"`
	Requested int      `json:"requested,omitempty"`
	Conns     []string `json:"conns,omitempty"`
	Result    string   `json:"result,omitempty"`
	// Reason says why a waited-for migration did not move the connection:
	// the error its attempt ended with, or why none could start.
	Reason  string   `json:"reason,omitempty"`
	Stats   *Stats   `json:"stats,omitempty"`
	Records []Record `json:"records,omitempty"`
}

// ServeControl answers control requests on ln until ctx ends or ln fails.
func (e *Engine) ServeControl(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("migrate: control socket: %w", err)
		}
		go e.serveControlConn(ctx, c)
	}
}

func (e *Engine) serveControlConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), 1<<20)
	enc := json.NewEncoder(c)
	for sc.Scan() {
		var req ControlRequest
		var rep ControlReply
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			rep.Err = fmt.Sprintf("request %q is not JSON: %v", sc.Bytes(), err)
		} else {
			rep = e.control(ctx, req)
		}
		if enc.Encode(rep) != nil {
			return
		}
	}
}

func (e *Engine) control(ctx context.Context, req ControlRequest) ControlReply {
	var rep ControlReply
	switch req.Op {
	case "stats":
		st := e.Stats()
		rep.Stats = &st
	case "records":
		recs := e.Records()
		if req.Since > 0 && req.Since <= len(recs) {
			recs = recs[req.Since:]
		} else if req.Since > len(recs) {
			recs = nil
		}
		rep.Records = recs
	case "sessions":
		for _, id := range e.Sessions() {
			rep.Conns = append(rep.Conns, id.Remote.String())
		}
	case "migrate":
		switch req.Conn {
		case "all":
			rep.Requested = e.RequestAll()
		case "random":
			if id, ok := e.RequestRandom(); ok {
				rep.Requested = 1
				rep.Conns = []string{id.Remote.String()}
			}
		default:
			client, err := netip.ParseAddrPort(req.Conn)
			if err != nil {
				rep.Err = fmt.Sprintf("migrate: conn %q: want the client's ip:port, all or random", req.Conn)
				break
			}
			id, ok := e.sessionFor(client)
			if !ok {
				rep.Err = fmt.Sprintf("migrate: no migratable connection from %v here", client)
				break
			}
			e.mu.Lock()
			s := e.sessions[id]
			e.mu.Unlock()
			var before uint64
			if s != nil {
				s.mu.Lock()
				before = s.ends
				s.mu.Unlock()
			}
			if err := e.Request(id); err != nil {
				rep.Err = err.Error()
				break
			}
			rep.Requested = 1
			rep.Conns = []string{client.String()}
			if req.Wait {
				rep.Result, rep.Reason = waitOutcome(ctx, s, before)
			}
		}
	default:
		rep.Err = fmt.Sprintf("unknown op %q: want migrate, stats, records or sessions", req.Op)
	}
	return rep
}

func (e *Engine) sessionFor(client netip.AddrPort) (tcp.ID, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.sessions {
		if id.Remote == client {
			return id, true
		}
	}
	return tcp.ID{}, false
}

// waitOutcome waits (up to 5 s) until the session s has ended the
// attempt after its first before, and names its outcome, not an earlier
// attempt's, with the reason when it did not move. An attempt that could
// not start (the connection not movable now) stayed.
func waitOutcome(ctx context.Context, s *Session, before uint64) (result, reason string) {
	if s == nil {
		return ResultMoved.String(), ""
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 5000 && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		s.mu.Lock()
		ends, last, lastErr := s.ends, s.last, s.lastErr
		moved := s.moved
		s.mu.Unlock()
		if ends > before || moved {
			switch {
			case lastErr != nil:
				return ResultStayed.String(), lastErr.Error()
			case last.Result == 0:
				return ResultStayed.String(), ""
			case last.Err != nil:
				return last.Result.String(), last.Err.Error()
			}
			return last.Result.String(), ""
		}
		time.Sleep(time.Millisecond)
	}
	return "pending", "the connection reached no quiescent point (its application's Checkpoint) in 5 s"
}

// ErrControl wraps a server's refusal of a control request.
var ErrControl = errors.New("migrate: control request refused")

// Control sends one request on a control connection and reads its reply.
func Control(c net.Conn, req ControlRequest) (ControlReply, error) {
	var rep ControlReply
	b, err := json.Marshal(req)
	if err != nil {
		return rep, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return rep, fmt.Errorf("migrate: control: %w", err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return rep, fmt.Errorf("migrate: control reply: %w", err)
	}
	if err := json.Unmarshal(line, &rep); err != nil {
		return rep, fmt.Errorf("migrate: control reply %q: %w", line, err)
	}
	if rep.Err != "" {
		return rep, fmt.Errorf("%w: %s", ErrControl, rep.Err)
	}
	return rep, nil
}
