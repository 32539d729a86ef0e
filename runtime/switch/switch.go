package softswitch

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/internal/timerq"
	"github.com/capygen/capygen/runtime/link"
)

// Switch runs the pipeline on its ports. Deliver, Advance, NextDeadline,
// Run and Report are safe for concurrent use.
type Switch struct {
	cfg Config
	p   *pipeline.Pipeline

	mu      sync.Mutex
	ports   [pipeline.MaxPorts]*port // by pipeline port id
	list    []*port                  // config order: flood order, report order
	ctl     *control
	held    timerq.Queue[time.Duration, heldFrame]
	free    [][]byte // buffers of released held frames
	scratch []byte   // the frame the pipeline rewrites in place
	dirty   []*port  // ports with frames queued on their Batcher
	now     time.Duration
	clock   func() time.Duration // Run's clock while it runs
	running bool
	wake    chan struct{} // Run's timer: a held frame may be due sooner
	ctr     verdictCounters
	// stageDrops are Config.StageDrops with their counters.
	stageDrops []*stageDrop
}

// port is one switch port and its counters; fields are guarded by
// Switch.mu.
type port struct {
	id      pipeline.Port
	name    string
	ep      link.Endpoint
	batch   link.Batcher // ep, when it can queue frames
	queued  bool         // frames queued on batch since the last Flush
	in, out faulter
	c       portCounters
}

type portCounters struct {
	rxFrames, rxBytes, txFrames, txBytes, txErrors, flushErrors uint64
	unknownEgress                                               uint64
}

type verdictCounters struct {
	processed, forwarded, flooded, replied, dropped uint64
	noEgress, unknownIngress                        uint64
}

// control is the switch's own address and what it answered.
type control struct {
	ip       [4]byte
	mac      [6]byte
	arp      uint64 // ARP requests answered
	echo     uint64 // ICMP echo requests answered
	consumed uint64 // other frames to the control MAC the switch took (ARP replies)
}

// New validates cfg, writes its tables into the pipeline and returns the
// switch. It does no I/O.
func New(cfg Config) (*Switch, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	s := &Switch{cfg: cfg, p: cfg.Pipeline, wake: make(chan struct{}, 1)}
	if s.p == nil {
		s.p = pipeline.New()
	}
	for i, pc := range cfg.Ports {
		p := &port{id: pc.ID, name: pc.Name, ep: pc.Endpoint}
		p.batch, _ = pc.Endpoint.(link.Batcher)
		p.in = newFaulter(pc.Fault.Ingress, cfg.Seed, pc.ID, 0)
		p.out = newFaulter(pc.Fault.Egress, cfg.Seed, pc.ID, 1)
		if pc.Role == 0 {
			// The control plane writes it.
		} else if err := s.p.SetPortRole(pc.ID, pc.Role); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrConfig, portLabel(i, pc), err)
		}
		s.ports[pc.ID] = p
		s.list = append(s.list, p)
	}
	for i, h := range cfg.Hosts {
		if err := s.p.SetHost(h.Addr.As4(), h.Port, [6]byte(h.MAC)); err != nil {
			return nil, fmt.Errorf("%w: hosts[%d] (%v): %w", ErrConfig, i, h.Addr, err)
		}
		if err := s.p.SetL2([6]byte(h.MAC), h.Port); err != nil {
			return nil, fmt.Errorf("%w: hosts[%d] (%v) MAC %v: %w", ErrConfig, i, h.Addr, h.MAC, err)
		}
	}
	if w := cfg.MinWorkload; w != nil {
		var holder [4]byte
		if w.Holder.IsValid() {
			holder = w.Holder.As4()
		}
		if err := s.p.WriteMinWorkload(holder, w.Load); err != nil {
			return nil, fmt.Errorf("%w: MinWorkload {%v, %d}: %w", ErrConfig, w.Holder, w.Load, err)
		}
	}
	if cfg.Control.Addr.IsValid() {
		s.ctl = &control{ip: cfg.Control.Addr.As4(), mac: [6]byte(cfg.Control.MAC)}
	}
	for _, d := range cfg.StageDrops {
		s.stageDrops = append(s.stageDrops, &stageDrop{StageDrop: d})
	}
	return s, nil
}

// Pipeline is the pipeline the switch drives; its control plane (tables,
// directory, min_workload) may be read and written while traffic flows.
func (s *Switch) Pipeline() *pipeline.Pipeline { return s.p }

// ControlMAC is the MAC the switch answers for its control address, or nil.
func (s *Switch) ControlMAC() net.HardwareAddr {
	if s.ctl == nil {
		return nil
	}
	return net.HardwareAddr(s.ctl.mac[:])
}

// Deliver hands the switch a frame that arrived on port in at now (any
// monotonic time base, the same for every call). The frame is only read:
// the switch copies it before the pipeline rewrites it. Frames leave
// through their egress endpoints before Deliver returns, unless a delay
// fault holds them until a later Advance.
func (s *Switch) Deliver(now time.Duration, in pipeline.Port, frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setNow(now)
	s.ingress(in, frame)
	s.flush()
}

// Advance sends (or, for ingress delays, processes) every held frame due
// at or before now.
func (s *Switch) Advance(now time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setNow(now)
	s.release()
	s.flush()
}

// NextDeadline is when the next held frame is due, if any.
func (s *Switch) NextDeadline() (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, _, ok := s.held.Peek()
	return at, ok
}

// setNow moves the switch's clock; it never goes back.
func (s *Switch) setNow(now time.Duration) {
	if now > s.now {
		s.now = now
	}
}

// ingress takes a frame received on in through the port's ingress faults.
func (s *Switch) ingress(in pipeline.Port, frame []byte) {
	var p *port
	if int(in) < len(s.ports) {
		p = s.ports[in]
	}
	if p == nil {
		s.ctr.unknownIngress++
		return
	}
	p.c.rxFrames++
	p.c.rxBytes += uint64(len(frame))
	if s.cfg.Capture != nil {
		s.cfg.Capture(in, false, frame)
	}
	s.faults(p, frame, true)
}

// process runs one received frame through the control address and the
// pipeline, and carries out the verdict.
func (s *Switch) process(in *port, frame []byte) {
	f := append(s.scratch[:0], frame...)
	s.scratch = f
	if s.ctl != nil && s.controlFrame(f) {
		s.egress(in, f)
		return
	}
	if s.ctl != nil && len(f) >= 14 && [6]byte(f[0:6]) == s.ctl.mac && binary.BigEndian.Uint16(f[12:14]) == etherTypeARP {
		// An ARP reply (or any ARP) unicast to the switch: the switch
		// never asks, so it only takes it off the wire.
		s.ctl.consumed++
		return
	}
	s.ctr.processed++
	r := s.p.Process(f, in.id)
	switch r.Verdict {
	case pipeline.Forward:
		out := s.ports[r.Egress]
		if out == nil {
			// ipv4_host or l2_forward names a port the switch has no
			// endpoint for: written by a control plane after New.
			s.ctr.noEgress++
			return
		}
		s.ctr.forwarded++
		s.egress(out, f)
	case pipeline.Reply:
		s.ctr.replied++
		s.egress(in, f)
	case pipeline.Flood:
		s.ctr.flooded++
		for _, out := range s.list {
			if out != in {
				s.egress(out, f)
			}
		}
	default:
		s.ctr.dropped++
	}
}

// egress sends f out of p through the port's egress faults.
func (s *Switch) egress(p *port, f []byte) { s.faults(p, f, false) }

// faults passes f through one direction of p's faults (stage drops,
// duplicates, delays) and carries out each copy not held back: processed
// on ingress, sent on egress. Held copies come back through release.
func (s *Switch) faults(p *port, f []byte, ingress bool) {
	if len(s.stageDrops) > 0 && s.dropStage(f, !ingress) {
		return
	}
	fc := &p.out
	if ingress {
		fc = &p.in
	}
	for range fc.copies() {
		if d, ok := fc.delay(); ok {
			s.hold(d, p, ingress, f)
			continue
		}
		if ingress {
			s.process(p, f)
		} else {
			s.send(p, f)
		}
	}
}

// send hands f to p's endpoint, queued when it batches; flush kicks it.
func (s *Switch) send(p *port, f []byte) {
	if s.cfg.Capture != nil {
		s.cfg.Capture(p.id, true, f)
	}
	var err error
	if p.batch != nil {
		err = p.batch.Queue(f)
		if err == nil && !p.queued {
			p.queued = true
			s.dirty = append(s.dirty, p)
		}
	} else {
		err = p.ep.Send(f)
	}
	if err != nil {
		p.c.txErrors++
		return
	}
	p.c.txFrames++
	p.c.txBytes += uint64(len(f))
}

// flush transmits what send queued on batching endpoints, and reports
// how many ports it kicked.
func (s *Switch) flush() int {
	n := len(s.dirty)
	for _, p := range s.dirty {
		p.queued = false
		if err := p.batch.Flush(); err != nil {
			p.c.flushErrors++
		}
	}
	s.dirty = s.dirty[:0]
	return n
}

// hold keeps a copy of f for d: on ingress it is processed when due, on
// egress sent.
func (s *Switch) hold(d time.Duration, p *port, ingress bool, f []byte) {
	fc := &p.out
	if ingress {
		fc = &p.in
	}
	if s.held.Len() >= s.cfg.MaxHeld {
		fc.c.overflow++
		return
	}
	var buf []byte
	if n := len(s.free); n > 0 {
		buf, s.free = s.free[n-1], s.free[:n-1]
	}
	at := s.now + d
	s.held.Push(at, heldFrame{port: p, ingress: ingress, frame: append(buf[:0], f...)})
	if next, _, _ := s.held.Peek(); next == at {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// release processes or sends every held frame due by s.now, in (time,
// arrival) order.
func (s *Switch) release() {
	for at, _, ok := s.held.Peek(); ok && at <= s.now; at, _, ok = s.held.Peek() {
		_, h, _ := s.held.Pop()
		if h.ingress {
			s.process(h.port, h.frame)
		} else {
			s.send(h.port, h.frame)
		}
		s.free = append(s.free, h.frame)
	}
}

const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
)

// controlFrame answers, in place, an ARP request or an ICMP echo request
// for the control address, and reports whether it did; the answer goes
// back out of the ingress port. Everything else, TCPMig to the control
// address included, is the pipeline's.
func (s *Switch) controlFrame(f []byte) bool {
	if len(f) < 14 {
		return false
	}
	c := s.ctl
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherTypeARP:
		// Ethernet/IPv4 ARP request whose target is the control address.
		a := f[14:]
		if len(a) < 28 || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 ||
			a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:8]) != 1 || [4]byte(a[24:28]) != c.ip {
			return false
		}
		var sha [6]byte
		var spa [4]byte
		copy(sha[:], a[8:14])
		copy(spa[:], a[14:18])
		copy(f[0:6], sha[:])
		copy(f[6:12], c.mac[:])
		binary.BigEndian.PutUint16(a[6:8], 2)
		copy(a[8:14], c.mac[:])
		copy(a[14:18], c.ip[:])
		copy(a[18:24], sha[:])
		copy(a[24:28], spa[:])
		c.arp++
		return true
	case etherTypeIPv4:
		ip := f[14:]
		// IPv4 without options, not a fragment, ICMP, to the control
		// address, carrying an echo request (type 8, code 0).
		if len(ip) < 28 || ip[0] != 0x45 || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 || ip[9] != 1 ||
			[4]byte(ip[16:20]) != c.ip {
			return false
		}
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if total < 28 || total > len(ip) || inetChecksum(ip[:20]) != 0 {
			return false
		}
		icmp := ip[20:total]
		if icmp[0] != 8 || icmp[1] != 0 || inetChecksum(icmp) != 0 {
			return false
		}
		copy(f[0:6], f[6:12])
		copy(f[6:12], c.mac[:])
		copy(ip[16:20], ip[12:16])
		copy(ip[12:16], c.ip[:])
		ip[8] = 64
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], inetChecksum(ip[:20]))
		icmp[0] = 0
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:4], inetChecksum(icmp))
		c.echo++
		return true
	}
	return false
}

// inetChecksum is the Internet checksum of b (0 when b holds a valid sum).
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
