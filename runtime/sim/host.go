package sim

import (
	"fmt"
	"net"

	"github.com/capygen/capygen/runtime/stack"
)

// Host is a node running a stack.Stack on one port.
type Host struct {
	*Node
	Port  *Port
	Stack *stack.Stack
}

// AddHost adds a node with one port (mac, mtu) and a stack on it.
// Applications hook in with OnStep and use the stack's non-blocking calls
// (Connect, TryAccept, TryRead, TryWrite); blocking calls would wait for
// a clock that only the simulator moves.
func (s *Sim) AddHost(name string, mac net.HardwareAddr, mtu int, cfg stack.Config) (*Host, error) {
	n := s.AddNode(name)
	p, err := n.AddPort(mac, mtu)
	if err != nil {
		return nil, err
	}
	st, err := stack.New(cfg, p)
	if err != nil {
		return nil, fmt.Errorf("sim: host %s: %w", name, err)
	}
	h := &Host{Node: n, Port: p, Stack: st}
	n.SetHandler(stackHandler{st})
	return h, nil
}

// stackHandler drives a stack through the Handler interface.
type stackHandler struct{ st *stack.Stack }

func (h stackHandler) Deliver(now Time, _ *Port, frame []byte) { h.st.Input(now, frame) }
func (h stackHandler) Advance(now Time)                        { h.st.Advance(now) }
func (h stackHandler) NextDeadline() (Time, bool)              { return h.st.NextDeadline() }
