package sim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// natSwitch is a tiny model of the Capybara switch for one connection: it
// forwards by IPv4 destination, and once moved it sends the client's
// segments for origin to target and rewrites target's replies to come
// from origin, fixing checksums. ARP is flooded.
type natSwitch struct {
	n       *Node
	ports   map[netip.Addr]*Port
	macs    map[netip.Addr][6]byte
	client  netip.AddrPort
	origin  netip.AddrPort
	target  netip.Addr
	moved   bool
	scratch []byte
}

func (s *natSwitch) Deliver(_ Time, in *Port, frame []byte) {
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		for _, p := range s.n.Ports() {
			if p != in {
				p.Send(frame)
			}
		}
		return
	}
	f := append(s.scratch[:0], frame...)
	ip := f[14:]
	hl := int(ip[0]&0xf) * 4
	src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	if s.moved && ip[9] == 6 && len(ip) >= hl+20 {
		seg := ip[hl:binary.BigEndian.Uint16(ip[2:4])]
		sp, dp := binary.BigEndian.Uint16(seg[0:2]), binary.BigEndian.Uint16(seg[2:4])
		switch {
		case netip.AddrPortFrom(src, sp) == s.client && netip.AddrPortFrom(dst, dp) == s.origin:
			dst = s.target
		case src == s.target && sp == s.origin.Port() && netip.AddrPortFrom(dst, dp) == s.client:
			src = s.origin.Addr()
		}
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		seg[16], seg[17] = 0, 0
		binary.BigEndian.PutUint16(seg[16:18], inetChecksum(seg, pseudo(src, dst, len(seg))))
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:12], inetChecksum(ip[:hl], 0))
	}
	out := s.ports[dst]
	if out == nil {
		return
	}
	mac := s.macs[dst]
	copy(f[0:6], mac[:])
	out.Send(f)
	s.scratch = f
}
func (*natSwitch) Advance(Time)               {}
func (*natSwitch) NextDeadline() (Time, bool) { return 0, false }

func pseudo(src, dst netip.Addr, n int) uint32 {
	s, d := src.As4(), dst.As4()
	return uint32(binary.BigEndian.Uint16(s[0:2])) + uint32(binary.BigEndian.Uint16(s[2:4])) +
		uint32(binary.BigEndian.Uint16(d[0:2])) + uint32(binary.BigEndian.Uint16(d[2:4])) + 6 + uint32(n)
}

func inetChecksum(b []byte, sum uint32) uint16 {
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

// echoApp is a server application: it echoes what it reads. pending is
// read but not yet written back; it moves with the connection.
type echoApp struct {
	conn    *stack.Conn
	pending []byte
	echoed  int
	buf     [16 << 10]byte
}

func (e *echoApp) step() error {
	for {
		if len(e.pending) > 0 {
			n, err := e.conn.TryWrite(e.pending)
			e.pending = e.pending[n:]
			e.echoed += n
			if err != nil {
				return err
			}
			if len(e.pending) > 0 {
				return nil
			}
		}
		n, err := e.conn.TryRead(e.buf[:])
		e.pending = append(e.pending, e.buf[:n]...)
		if err == io.EOF {
			if len(e.pending) == 0 {
				e.conn.Close()
			}
			return nil
		}
		if err != nil || n == 0 {
			return err
		}
	}
}

// TestMigrationHooks moves a live echo connection from one stack to
// another mid-stream with DetachConn, a tcp snapshot, AdoptConn and the
// interceptor, under a switch that rewrites addresses, over lossy links.
// It is the path runtime/migrate will automate.
func TestMigrationHooks(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		if err := migrateOnce(t, seed); err != nil {
			t.Fatalf("seed %d: %v\n\treplay: go test ./runtime/sim -run TestMigrationHooks", seed, err)
		}
	}
}

func migrateOnce(t *testing.T, seed uint64) error {
	s := New(Config{Seed: seed})
	link := LinkConfig{Delay: 20 * time.Microsecond, Jitter: 10 * time.Microsecond, Loss: 0.02, Reorder: 0.02, Dup: 0.01}
	addrs := []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("10.77.0.2/24"), netip.MustParsePrefix("10.77.0.3/24")}
	sw := &natSwitch{ports: map[netip.Addr]*Port{}, macs: map[netip.Addr][6]byte{}}
	sw.n = s.AddNode("switch")
	sw.n.SetHandler(sw)
	hosts := make([]*Host, 3)
	for i, a := range addrs {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}
		h, err := s.AddHost(fmt.Sprint("h", i), mac, 1500, stack.Config{Addr: a, Seed: seed*10 + uint64(i), ARPRetries: 8})
		if err != nil {
			return err
		}
		p, _ := sw.n.AddPort(net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}, 1500)
		if _, err := s.Connect(h.Port, p, link); err != nil {
			return err
		}
		sw.ports[a.Addr()], sw.macs[a.Addr()] = p, [6]byte(mac)
		hosts[i] = h
	}
	client, origin, target := hosts[0], hosts[1], hosts[2]
	lnOrigin, _ := origin.Stack.Listen(80)
	lnTarget, _ := target.Stack.Listen(80)

	data := make([]byte, 192<<10)
	for i := range data {
		data[i] = byte(s.Rand().Uint32())
	}
	conn, err := client.Stack.Connect(netip.AddrPortFrom(addrs[1].Addr(), 80))
	if err != nil {
		return err
	}
	var sent int
	var back []byte
	var failure error
	buf := make([]byte, 32<<10)
	client.OnStep(func(Time) {
		if failure != nil || !conn.Established() {
			return
		}
		if sent < len(data) {
			n, err := conn.TryWrite(data[sent:min(len(data), sent+8<<10)])
			sent += n
			if err != nil {
				failure = err
			}
		}
		for {
			n, err := conn.TryRead(buf)
			back = append(back, buf[:n]...)
			if err != nil && err != io.EOF {
				failure = fmt.Errorf("client read: %w", err)
			}
			if n == 0 || err != nil {
				return
			}
		}
	})

	var app *echoApp
	held := 0
	origin.OnStep(func(Time) {
		if failure != nil || sw.moved {
			return
		}
		if app == nil {
			c := lnOrigin.TryAccept()
			if c == nil {
				return
			}
			app = &echoApp{conn: c}
		}
		if err := app.step(); err != nil {
			failure = fmt.Errorf("origin app: %w", err)
			return
		}
		if app.echoed < len(data)/3 {
			return
		}
		// Migrate now, all at this instant: take the connection out,
		// hold whatever still reaches the origin, flip the switch, and
		// rebuild the connection and its application on the target.
		id := app.conn.ID()
		origin.Stack.SetTCPInterceptor(func(_ tcp.Time, got tcp.ID, _ *tcp.Segment, _ []byte) bool {
			if got == id {
				held++ // late segments: the client retransmits them to the target
				return true
			}
			return false
		})
		tc, err := origin.Stack.DetachConn(id)
		if err != nil {
			failure = err
			return
		}
		snap := tc.AppendSnapshot(nil)
		sw.client, sw.origin, sw.target, sw.moved = id.Remote, id.Local, addrs[2].Addr(), true
		restored, err := tcp.Restore(target.Stack.Config().TCP, snap, target.Stack.Now())
		if err != nil {
			failure = err
			return
		}
		if err := target.Stack.AdoptConn(restored); err != nil {
			failure = err
			return
		}
		c := lnTarget.TryAccept()
		if c == nil {
			failure = fmt.Errorf("adopted connection not accepted on the target")
			return
		}
		app = &echoApp{conn: c, pending: app.pending, echoed: app.echoed}
	})
	target.OnStep(func(Time) {
		if failure == nil && sw.moved && app != nil {
			if err := app.step(); err != nil {
				failure = fmt.Errorf("target app: %w", err)
			}
		}
	})
	err = s.RunWhile(func() bool { return failure == nil && len(back) < len(data) }, 5*time.Minute)
	if failure != nil {
		return failure
	}
	if err != nil {
		return fmt.Errorf("%w: sent %d, echoed back %d of %d, moved %v", err, sent, len(back), len(data), sw.moved)
	}
	if !sw.moved || !bytes.Equal(back, data) {
		return fmt.Errorf("moved %v; echo equal %v (%d bytes)", sw.moved, bytes.Equal(back, data), len(back))
	}
	if c := target.Stack.Counters(); c.TCPOut == 0 || app.echoed != len(data) {
		return fmt.Errorf("target sent %d segments, app echoed %d of %d", c.TCPOut, app.echoed, len(data))
	}
	if c := origin.Stack.Counters(); c.RSTOut != 0 {
		return fmt.Errorf("origin sent %d RSTs; the interceptor should have claimed late segments", c.RSTOut)
	}
	return nil
}
