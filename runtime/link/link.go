// Package link moves Ethernet frames between a stack and the world: an
// AF_XDP socket on a real (or veth) interface, or memory for simulation.
package link

import (
	"errors"
	"net"
	"time"
)

// Endpoint is one network attachment. Send may be called while another
// goroutine is inside Receive; neither may be called concurrently with
// itself.
type Endpoint interface {
	// MAC is the endpoint's Ethernet address.
	MAC() net.HardwareAddr
	// MTU is the largest IP packet the endpoint carries (frame minus the
	// 14-byte Ethernet header).
	MTU() int
	// Send transmits one Ethernet frame. It does not keep frame.
	Send(frame []byte) error
	// Receive waits up to timeout for frames and calls fn for each one
	// received, returning how many. A frame is valid only during fn.
	Receive(timeout time.Duration, fn func(frame []byte)) (int, error)
	// Close releases the endpoint. Receive then returns ErrClosed.
	Close() error
}

// ErrClosed is returned by an Endpoint used after Close.
var ErrClosed = errors.New("link: endpoint closed")
