package kernel

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/capygen/capygen/runtime/repair"
	"github.com/capygen/capygen/runtime/tcp"
)

// prober sends the keep-alive probes that follow an abort's RST, as the
// userspace stack's Stack.AbortDetached does. The kernel's own RST carries
// the sequence number the socket knew, and the client drops it when the
// target served it meanwhile (every CONN_STATE_ACK lost); the socket is
// gone after it, so the probes are built from the dump and sent through a
// raw socket. The client answers a probe with its RCV.NXT, the server it
// knows (the RST cleared the switch's entry) has no socket for it, and the
// kernel there answers with a RST the client accepts.
type prober struct {
	fd int // SOCK_RAW, IPPROTO_RAW: we write the IPv4 header

	mu     sync.Mutex
	closed bool
}

func newProber() (*prober, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("kernel: a raw socket for the keep-alive probes after an abort: %w (it needs CAP_NET_RAW)", err)
	}
	return &prober{fd: fd}, nil
}

// probe sends the keep-alive probe of the connection d dumped at dumpedAt,
// now, after each of tcp.AbortProbesAfter, and probeLater from now if that
// is not 0 (migrate.Frozen.Abort). It keeps what the probes need, not d,
// whose queues may be megabytes.
func (p *prober) probe(d *repair.Dump, dumpedAt time.Time, probeLater time.Duration) {
	pr := probeOf(d, dumpedAt)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.sendLocked(&pr)
	times := tcp.AbortProbesAfter[:]
	if probeLater > 0 {
		times = append(times[:len(times):len(times)], probeLater)
	}
	for _, after := range times {
		// One that fires after close sends nothing (and never writes to
		// a descriptor number reused meanwhile).
		time.AfterFunc(after, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if !p.closed {
				p.sendLocked(&pr)
			}
		})
	}
}

// sendLocked sends one probe; p.mu is held. A probe that cannot leave is
// not worth an error: the next one tries again, and the client's own
// timeout ends the connection at worst.
func (p *prober) sendLocked(pr *keepAlive) {
	pkt, err := pr.packet(time.Since(pr.dumpedAt))
	if err != nil {
		return
	}
	// Without waiting: the engine's lock may be held (Frozen.Abort), and a
	// full socket buffer must not stall it.
	unix.Sendto(p.fd, pkt, unix.MSG_DONTWAIT, &unix.SockaddrInet4{Addr: pr.remote.Addr().As4()}) //nolint:errcheck // see above
}

func (p *prober) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	unix.Close(p.fd)
}

// keepAlive is what a connection's keep-alive probe is made of, from the
// address the client knows to the client (tcp.KeepAliveSegment).
type keepAlive struct {
	local, remote netip.AddrPort
	sndUna, ack   uint32
	window        uint16
	hasTS         bool
	ts            uint32    // the socket's TSval clock at dumpedAt
	dumpedAt      time.Time // when the dump read the clocks
}

func probeOf(d *repair.Dump, dumpedAt time.Time) keepAlive {
	wnd := d.Window.RcvWnd
	if d.Options&repair.OptWindowScale != 0 {
		wnd >>= d.RcvWscale
	}
	return keepAlive{
		local: d.Local, remote: d.Remote,
		sndUna: d.SendSeq - uint32(len(d.SendQueue)), ack: d.RecvSeq,
		window: uint16(min(wnd, 0xffff)),
		hasTS:  d.Options&repair.OptTimestamps != 0, ts: d.Timestamp,
		dumpedAt: dumpedAt,
	}
}

// packet builds the IPv4 packet of the probe sent since after the dump.
// Its timestamp is the socket's clock then, plus the head start a
// restored socket's clock has (repair.TimestampSlack) and one tick for
// rounding, so that it passes the client's PAWS. Its TSecr is 0: the dump
// has no TS.Recent.
func (k *keepAlive) packet(since time.Duration) ([]byte, error) {
	if !k.local.Addr().Is4() || !k.remote.Addr().Is4() {
		return nil, fmt.Errorf("kernel: a keep-alive probe from %v to %v: IPv4 only", k.local, k.remote)
	}
	seg := tcp.KeepAliveSegment(k.local.Port(), k.remote.Port(), k.sndUna, k.ack, k.window)
	if k.hasTS {
		seg.HasTS, seg.TSVal = true, k.ts+uint32(since/time.Millisecond)+repair.TimestampSlack+1
	}
	ip := &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: k.local.Addr().AsSlice(), DstIP: k.remote.Addr().AsSlice(),
	}
	buf := gopacket.NewSerializeBuffer()
	body := gopacket.Payload(tcp.AppendSegment(nil, k.local.Addr(), k.remote.Addr(), &seg))
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, body); err != nil {
		return nil, fmt.Errorf("kernel: building the keep-alive probe of %v-%v: %w", k.local, k.remote, err)
	}
	return buf.Bytes(), nil
}
