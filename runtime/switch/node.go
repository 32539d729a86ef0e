package softswitch

import (
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
)

// Node drives a Switch as a simulator node whose ports are of type P:
// with P = *sim.Port it is a sim.Handler, so a simulation can put the
// real pipeline between its hosts without this package importing the
// simulator:
//
//	node := s.AddNode("switch")
//	p0, _ := node.AddPort(mac0, 1500) // ... and connect it
//	sw, _ := softswitch.New(softswitch.Config{Ports: []softswitch.PortConfig{{ID: 0, Role: pipeline.RoleClient, Endpoint: p0}}})
//	node.SetHandler(softswitch.NewNode(sw, map[*sim.Port]pipeline.Port{p0: 0}))
type Node[P comparable] struct {
	sw  *Switch
	ids map[P]pipeline.Port
}

// NewNode maps each simulator port to the switch port it is.
func NewNode[P comparable](sw *Switch, ids map[P]pipeline.Port) *Node[P] {
	return &Node[P]{sw: sw, ids: ids}
}

// Switch is the switch the node drives.
func (n *Node[P]) Switch() *Switch { return n.sw }

// Deliver hands the switch a frame that arrived on p. A port missing
// from the map counts as an unknown ingress.
func (n *Node[P]) Deliver(now time.Duration, p P, frame []byte) {
	id, ok := n.ids[p]
	if !ok {
		id = pipeline.MaxPorts
	}
	n.sw.Deliver(now, id, frame)
}

// Advance releases held frames due by now.
func (n *Node[P]) Advance(now time.Duration) { n.sw.Advance(now) }

// NextDeadline is when the next held frame is due.
func (n *Node[P]) NextDeadline() (time.Duration, bool) { return n.sw.NextDeadline() }
