// Package link moves Ethernet frames between a stack and the world: an
// AF_XDP socket on a real (or veth) interface (optionally transmitting
// through AF_PACKET with the kernel's segmentation offload), or memory for
// simulation.
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

// Batcher is an Endpoint that can transmit frames in bursts: Queue
// places a frame in the transmit ring without asking the kernel to send
// it, and Flush (or the next Send) sends everything queued with as few
// system calls as the kernel allows. A sender that emits several frames in
// a row (a TCP window) pays one kick instead of one per frame. A Batcher's
// Send, Queue and Flush are safe for concurrent use: the stack queues
// under its lock and flushes after releasing it.
type Batcher interface {
	Endpoint
	// Queue is Send without the kick. It does not keep frame.
	Queue(frame []byte) error
	// Flush transmits every queued frame.
	Flush() error
}

// UDPSegmenter is a Batcher that queues a train of UDP datagrams to one
// destination as one frame, which the kernel or the NIC cuts into the
// datagrams (UDP GSO, as QUIC senders use it): the sender builds one set
// of headers and computes no checksum per datagram. The migration engine
// sends a connection's state, dozens of datagrams, this way.
type UDPSegmenter interface {
	Batcher
	// MaxUDPSegments is how many datagrams one frame may carry now; 0
	// when the link cannot cut trains (the caller sends one by one).
	MaxUDPSegments() int
	// QueueUDPSegments queues frame: Ethernet, IPv4 without options, UDP,
	// and the datagrams' payloads back to back, segSize bytes each but the
	// last (1 to segSize bytes), at least two. The IPv4 total length and
	// the UDP length cover the whole train; the link sets the checksums.
	// It does not keep frame.
	QueueUDPSegments(frame []byte, segSize int) error
}

// TCPSegmenter is a Batcher that queues a run of one TCP stream's
// segments as one frame, which the kernel or the NIC cuts into the
// segments (TSO/GSO, as a kernel TCP sender hands them over): the sender
// builds one set of headers per run instead of one per segment and
// computes no payload checksum. The stack joins a window's segments so.
type TCPSegmenter interface {
	Batcher
	// MaxTCPSegments is how many segments one frame may carry now; 0
	// when the link cannot cut TCP runs (the caller sends one by one).
	MaxTCPSegments() int
	// TakeTCPSegments queues a run: head (Ethernet, IPv4 without
	// options, TCP with its options, and the start of the payload)
	// followed by the slices of payload, which make the segments'
	// payloads back to back, mss bytes each but the last (1 to mss
	// bytes), at least two. Every segment gets head's headers with its
	// own sequence number; the flags are ACK, and PSH, which only the
	// last segment keeps. The IPv4 total length covers the whole run; the
	// link sets the checksums.
	//
	// The link may keep head and payload, uncopied, until the run has
	// left. The caller must not touch head again, and builds its next run
	// in spare (of length 0), an array the link has finished with: head's
	// own when it was not kept (an error among the reasons), or one taken
	// before and sent since; nil when the link has none to give. The
	// payload's bytes must stay as they are, and their arrays must not be
	// reused, until TCPRunsSent says the run has ended.
	TakeTCPSegments(head []byte, payload [][]byte, mss int) (spare []byte, err error)
	// TCPRunsSent reports how many runs TakeTCPSegments has taken, and up
	// to which of them every run has left (or was dropped): a run is
	// numbered by the taken count just after it was taken.
	TCPRunsSent() (taken, ended uint64)
}

// Waker is an Endpoint whose Receive another goroutine can cut short: an
// event loop that sleeps in Receive takes work posted to it without
// waiting for a frame or its timeout.
type Waker interface {
	Endpoint
	// Wake makes the Receive in progress, or else the next one, return
	// promptly, with whatever frames are there (perhaps none); a wake may
	// also end one later Receive early. Any goroutine may call it.
	Wake()
}

// ErrClosed is returned by an Endpoint used after Close.
var ErrClosed = errors.New("link: endpoint closed")
