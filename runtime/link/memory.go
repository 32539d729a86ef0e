package link

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Frame-size errors shared by every endpoint.
var (
	// ErrFrameTooShort is returned by Send for a frame shorter than an
	// Ethernet header.
	ErrFrameTooShort = errors.New("link: frame shorter than an ethernet header")
	// ErrFrameTooLarge is returned by Send for a frame longer than the
	// endpoint's MTU plus the Ethernet header.
	ErrFrameTooLarge = errors.New("link: frame larger than mtu")
	// ErrBadConfig is returned by constructors given unusable parameters.
	ErrBadConfig = errors.New("link: bad configuration")
)

// EthernetHeaderLen is the length of an untagged Ethernet II header; MTU
// counts the bytes after it.
const EthernetHeaderLen = 14

// Stats counts what an endpoint moved. Dropped frames are ones the
// endpoint itself had to discard (full queue or ring), not ones the
// far side discarded.
type Stats struct {
	RxFrames, RxBytes uint64
	TxFrames, TxBytes uint64
	// RxDropped counts frames lost before the owner could receive them
	// (queue full, or the kernel found no free fill-ring frame).
	RxDropped uint64
	// TxDropped counts frames Send accepted but could not hand on (no
	// free transmit frame, or nobody on the other end).
	TxDropped uint64
}

// DefaultPipeQueue is how many frames each direction of a pipe holds
// before it drops: about a bandwidth-delay product of a fast LAN.
const DefaultPipeQueue = 1024

// Memory is one end of an in-memory Ethernet cable made by NewPipe. Frames
// sent on one end are received on the other, in order, and dropped (and
// counted) when the receiver's queue is full, like a NIC ring.
type Memory struct {
	mac  net.HardwareAddr
	mtu  int
	in   chan []byte // frames waiting for this end's Receive
	peer *Memory

	done      chan struct{}
	wake      chan struct{} // Wake's token, one at most
	closeOnce sync.Once

	rxFrames, rxBytes, rxDropped atomic.Uint64
	txFrames, txBytes, txDropped atomic.Uint64
}

var _ Waker = (*Memory)(nil)

// NewPipe returns the two ends of an in-memory link with the given MACs
// and MTU, each end queueing up to DefaultPipeQueue frames. It panics
// only on programmer error; use NewPipeQueue to check parameters.
func NewPipe(macA, macB net.HardwareAddr, mtu int) (*Memory, *Memory) {
	a, b, err := NewPipeQueue(macA, macB, mtu, DefaultPipeQueue)
	if err != nil {
		// The signature has no error; an invalid MAC or MTU is a bug in
		// the caller's constants, not a runtime condition.
		panic(err)
	}
	return a, b
}

// NewPipeQueue is NewPipe with an explicit per-direction queue length.
func NewPipeQueue(macA, macB net.HardwareAddr, mtu, queue int) (*Memory, *Memory, error) {
	if len(macA) != 6 || len(macB) != 6 {
		return nil, nil, fmt.Errorf("%w: pipe macs %q and %q must both be 6-byte ethernet addresses", ErrBadConfig, macA, macB)
	}
	if mtu < 68 || mtu > 65535 {
		return nil, nil, fmt.Errorf("%w: pipe mtu %d outside 68..65535", ErrBadConfig, mtu)
	}
	if queue < 1 {
		return nil, nil, fmt.Errorf("%w: pipe queue %d must be at least 1", ErrBadConfig, queue)
	}
	a := &Memory{mac: append(net.HardwareAddr(nil), macA...), mtu: mtu, in: make(chan []byte, queue), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	b := &Memory{mac: append(net.HardwareAddr(nil), macB...), mtu: mtu, in: make(chan []byte, queue), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	a.peer, b.peer = b, a
	return a, b, nil
}

// MAC implements Endpoint.
func (m *Memory) MAC() net.HardwareAddr { return m.mac }

// MTU implements Endpoint.
func (m *Memory) MTU() int { return m.mtu }

// Send implements Endpoint. A frame sent to a closed peer is dropped
// silently, as on a cable whose far end is unplugged.
func (m *Memory) Send(frame []byte) error {
	if m.closed() {
		return ErrClosed
	}
	if err := checkFrame(frame, m.mtu); err != nil {
		return err
	}
	m.txFrames.Add(1)
	m.txBytes.Add(uint64(len(frame)))
	p := m.peer
	if p.closed() {
		m.txDropped.Add(1)
		return nil
	}
	select {
	case p.in <- append([]byte(nil), frame...):
	default:
		p.rxDropped.Add(1)
	}
	return nil
}

// Receive implements Endpoint. It delivers every frame already queued,
// waiting up to timeout for the first one.
func (m *Memory) Receive(timeout time.Duration, fn func(frame []byte)) (int, error) {
	if m.closed() {
		return 0, ErrClosed
	}
	var first []byte
	select {
	case first = <-m.in:
	default:
		if timeout <= 0 {
			return 0, nil
		}
		t := time.NewTimer(timeout)
		select {
		case first = <-m.in:
			t.Stop()
		case <-t.C:
			return 0, nil
		case <-m.wake:
			t.Stop()
			return 0, nil
		case <-m.done:
			t.Stop()
			return 0, ErrClosed
		}
	}
	n := 0
	deliver := func(f []byte) {
		m.rxFrames.Add(1)
		m.rxBytes.Add(uint64(len(f)))
		fn(f)
		n++
	}
	deliver(first)
	// Bound the batch so a fast sender cannot keep Receive from returning.
	for n < cap(m.in) {
		select {
		case f := <-m.in:
			deliver(f)
		default:
			return n, nil
		}
	}
	return n, nil
}

// Wake implements Waker.
func (m *Memory) Wake() {
	select {
	case m.wake <- struct{}{}:
	default: // a wake is already pending
	}
}

// Close implements Endpoint.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() { close(m.done) })
	return nil
}

// Stats returns the endpoint's counters.
func (m *Memory) Stats() Stats {
	return Stats{
		RxFrames: m.rxFrames.Load(), RxBytes: m.rxBytes.Load(), RxDropped: m.rxDropped.Load(),
		TxFrames: m.txFrames.Load(), TxBytes: m.txBytes.Load(), TxDropped: m.txDropped.Load(),
	}
}

func (m *Memory) closed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

func checkFrame(frame []byte, mtu int) error {
	if len(frame) < EthernetHeaderLen {
		return fmt.Errorf("%w: %d bytes", ErrFrameTooShort, len(frame))
	}
	if len(frame) > mtu+EthernetHeaderLen {
		return fmt.Errorf("%w: %d-byte frame, mtu %d allows %d", ErrFrameTooLarge, len(frame), mtu, mtu+EthernetHeaderLen)
	}
	return nil
}
