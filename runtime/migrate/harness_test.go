package migrate_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/generated/tcpmig"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	"github.com/capygen/capygen/runtime/tcp"
)

// switchNode runs generated/pipeline as a simulator node, and answers ARP
// for the switch's control address as the software switch does.
type switchNode struct {
	n      *sim.Node
	p      *pipeline.Pipeline
	ports  map[*sim.Port]pipeline.Port
	byID   []*sim.Port
	ctl    netip.Addr
	ctlMAC [6]byte
	buf    []byte
	// in and out, when set, see every frame before and after the pipeline
	// and may drop it (return true): the fault injection of the tests.
	in, out func(port pipeline.Port, f []byte) bool
	// rst, when set, sees every TCP RST that enters the switch.
	rst func(f []byte)
}

func (w *switchNode) Deliver(_ sim.Time, in *sim.Port, frame []byte) {
	if w.answerARP(in, frame) {
		return
	}
	if w.rst != nil && len(frame) >= 54 && frame[12] == 8 && frame[13] == 0 && frame[23] == 6 && frame[14+20+13]&0x04 != 0 {
		w.rst(frame)
	}
	if w.in != nil && w.in(w.ports[in], frame) {
		return
	}
	f := append(w.buf[:0], frame...)
	w.buf = f
	r := w.p.Process(f, w.ports[in])
	switch r.Verdict {
	case pipeline.Forward, pipeline.Reply:
		if w.out != nil && w.out(r.Egress, f) {
			return
		}
		w.byID[r.Egress].Send(f) //nolint:errcheck // a closed port drops
	case pipeline.Flood:
		for _, p := range w.byID {
			if p != in {
				p.Send(f) //nolint:errcheck
			}
		}
	}
}

func (w *switchNode) answerARP(in *sim.Port, f []byte) bool {
	if len(f) < 42 || f[12] != 0x08 || f[13] != 0x06 || f[21] != 1 || netip.AddrFrom4([4]byte(f[38:42])) != w.ctl {
		return false
	}
	r := make([]byte, 42)
	copy(r[0:6], f[6:12])
	copy(r[6:12], w.ctlMAC[:])
	copy(r[12:22], f[12:22])
	r[21] = 2
	copy(r[22:28], w.ctlMAC[:])
	copy(r[28:32], f[38:42])
	copy(r[32:38], f[22:28])
	copy(r[38:42], f[28:32])
	in.Send(r) //nolint:errcheck
	return true
}

func (*switchNode) Advance(sim.Time)               {}
func (*switchNode) NextDeadline() (sim.Time, bool) { return 0, false }

// rack is a client and servers behind the switch, in the simulator.
type rack struct {
	s       *sim.Sim
	sw      *switchNode
	client  *sim.Host
	servers []*server
	links   []*sim.Link
	// harmfulRSTs counts RSTs sent toward the client while its connection
	// was still open. A RST answering a late duplicate after the close
	// (the client in TIME-WAIT) is plain TCP and not counted.
	harmfulRSTs []string
}

var (
	clientAddr = netip.MustParsePrefix("10.77.0.1/24")
	ctlAddr    = netip.MustParseAddr("10.77.0.254")
)

func serverAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(11 + i)}), 24)
}

// server is one server host with its engine and echo applications.
type server struct {
	h    *sim.Host
	e    *migrate.Engine
	ln   *stack.Listener
	apps map[tcp.ID]*echoApp
	recs []migrate.Record
	// parked servers accept connections but never read or write them.
	parked bool
}

func newRack(seed uint64, nServers int, link sim.LinkConfig, ecfg migrate.Config) (*rack, error) {
	s := sim.New(sim.Config{Seed: seed})
	r := &rack{s: s}
	sw := &switchNode{p: pipeline.New(), ports: map[*sim.Port]pipeline.Port{}, ctl: ctlAddr, ctlMAC: [6]byte{2, 0, 0, 0, 0xfe, 0xfe}}
	sw.n = s.AddNode("switch")
	sw.n.SetHandler(sw)
	r.sw = sw
	attach := func(name string, i int, addr netip.Prefix, role pipeline.Role) (*sim.Host, error) {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}
		h, err := s.AddHost(name, mac, 1500, stack.Config{Addr: addr, Seed: seed*100 + uint64(i), ARPRetries: 20, ARPRetry: 5 * time.Millisecond, ARPQueue: 4096})
		if err != nil {
			return nil, err
		}
		p, err := sw.n.AddPort(net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}, 1500)
		if err != nil {
			return nil, err
		}
		l, err := s.Connect(h.Port, p, link)
		if err != nil {
			return nil, err
		}
		r.links = append(r.links, l)
		id := pipeline.Port(i)
		sw.ports[p] = id
		sw.byID = append(sw.byID, p)
		if err := sw.p.SetPortRole(id, role); err != nil {
			return nil, err
		}
		if err := sw.p.SetHost(addr.Addr().As4(), id, [6]byte(mac)); err != nil {
			return nil, err
		}
		return h, sw.p.SetL2([6]byte(mac), id)
	}
	var err error
	if r.client, err = attach("client", 0, clientAddr, pipeline.RoleClient); err != nil {
		return nil, err
	}
	sw.rst = func(f []byte) {
		dst := netip.AddrFrom4([4]byte(f[30:34]))
		if dst != clientAddr.Addr() {
			return
		}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(f[26:30])), uint16(f[34])<<8|uint16(f[35]))
		port := uint16(f[36])<<8 | uint16(f[37])
		for _, id := range r.client.Stack.Conns() {
			if id.Local.Port() != port {
				continue
			}
			if st := r.client.Stack.LookupConn(id).TCP().State(); st != tcp.StateTimeWait && st != tcp.StateClosed {
				r.harmfulRSTs = append(r.harmfulRSTs, fmt.Sprintf("%v: RST from %v to client port %d in %v", s.Now(), src, port, st))
			}
		}
	}
	for i := range nServers {
		h, err := attach(fmt.Sprint("server", i), i+1, serverAddr(i), pipeline.RoleServer)
		if err != nil {
			return nil, err
		}
		cfg := ecfg
		cfg.Switch = ctlAddr
		cfg.Seed = seed*7 + uint64(i) + 1
		cfg.Clock = func() int64 { return int64(s.Now()) }
		srv := &server{h: h, apps: map[tcp.ID]*echoApp{}}
		cfg.OnRecord = func(rec migrate.Record) { srv.recs = append(srv.recs, rec) }
		if srv.e, err = migrate.New(h.Stack, cfg); err != nil {
			return nil, err
		}
		if srv.ln, err = h.Stack.Listen(80); err != nil {
			return nil, err
		}
		srv.e.HandleRestored(80, func(c *stack.Conn, state []byte) {
			srv.apps[c.ID()] = &echoApp{conn: c, pending: append([]byte(nil), state...)}
		})
		h.OnStep(func(sim.Time) { srv.step() })
		r.servers = append(r.servers, srv)
	}
	return r, nil
}

// step accepts new connections and runs every echo application.
func (srv *server) step() {
	for c := srv.ln.TryAccept(); c != nil; c = srv.ln.TryAccept() {
		srv.apps[c.ID()] = &echoApp{conn: c}
	}
	if srv.parked {
		return
	}
	ids := make([]tcp.ID, 0, len(srv.apps))
	for id := range srv.apps {
		ids = append(ids, id)
	}
	sortIDs(ids) // map order is random; a seed must fix the run
	for _, id := range ids {
		a := srv.apps[id]
		if a == nil {
			continue
		}
		if err := a.step(); err != nil {
			if errors.Is(err, stack.ErrDetached) {
				continue // frozen for a migration; the outcome decides
			}
			delete(srv.apps, id)
		}
		if a.conn.Done() {
			delete(srv.apps, id)
		}
	}
}

// echoApp echoes what it reads; pending (read, not yet written back) is
// its application state and moves with the connection.
type echoApp struct {
	conn    *stack.Conn
	pending []byte
	moving  bool
	buf     [16 << 10]byte
}

func (a *echoApp) state() ([]byte, error) { return append([]byte(nil), a.pending...), nil }

func (a *echoApp) step() error {
	if a.moving {
		return nil
	}
	for {
		if len(a.pending) > 0 {
			n, err := a.conn.TryWrite(a.pending)
			a.pending = a.pending[n:]
			if err != nil {
				return err
			}
			if len(a.pending) > 0 {
				return nil
			}
		}
		n, err := a.conn.TryRead(a.buf[:])
		a.pending = append(a.pending, a.buf[:n]...)
		if err == io.EOF {
			if len(a.pending) == 0 {
				a.conn.Close()
			}
			return nil
		}
		if err != nil || n == 0 {
			return err
		}
	}
}

// migrate starts moving one of srv's connections; it reports false when
// none can move now.
func (srv *server) migrate(pick int, onDone func(migrate.Outcome)) bool {
	ids := make([]tcp.ID, 0, len(srv.apps))
	for id, a := range srv.apps {
		if !a.moving && a.conn.Established() && !a.conn.Done() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return false
	}
	sortIDs(ids) // map order is random: sort for a deterministic pick
	id := ids[pick%len(ids)]
	a := srv.apps[id]
	err := srv.e.Start(id, a.state, func(out migrate.Outcome) {
		a.moving = false
		// The connection may have come back already, with a new app.
		if out.Result != migrate.ResultStayed && srv.apps[id] == a {
			delete(srv.apps, id)
		}
		if onDone != nil {
			onDone(out)
		}
	})
	if err != nil {
		return false
	}
	// The application may run until the freeze (its state is taken then),
	// but not after: the detached connection refuses it anyway.
	return true
}

func sortIDs(ids []tcp.ID) {
	slices.SortFunc(ids, func(a, b tcp.ID) int { return a.Remote.Compare(b.Remote) })
}

// stream is one client connection that sends data and checks the echo.
type stream struct {
	conn   *stack.Conn
	data   []byte
	sent   int
	got    int
	closed bool
	err    error
	// window bounds the bytes sent and not yet echoed (0: no bound), and
	// with it the state a migration moves.
	window int
	buf    [32 << 10]byte
}

func (st *stream) step() {
	if st.closed {
		return
	}
	if st.err != nil || !st.conn.Established() {
		if err := st.conn.Err(); err != nil && st.err == nil {
			st.err = fmt.Errorf("client connection %v: %w", st.conn.ID(), err)
		}
		return
	}
	if st.sent < len(st.data) && (st.window == 0 || st.sent-st.got < st.window) {
		n, err := st.conn.TryWrite(st.data[st.sent:min(len(st.data), st.sent+4<<10)])
		st.sent += n
		if err != nil {
			st.err = fmt.Errorf("client write %v: %w", st.conn.ID(), err)
			return
		}
	}
	for {
		n, err := st.conn.TryRead(st.buf[:])
		if n > 0 {
			if st.got+n > len(st.data) || !bytes.Equal(st.buf[:n], st.data[st.got:st.got+n]) {
				st.err = fmt.Errorf("client %v: echo bytes %d..%d differ from what was sent (lost, duplicated or reordered)", st.conn.ID(), st.got, st.got+n)
				return
			}
			st.got += n
		}
		if err != nil && err != io.EOF {
			st.err = fmt.Errorf("client read %v: %w", st.conn.ID(), err)
		}
		if n == 0 || err != nil {
			break
		}
	}
	if st.got == len(st.data) && !st.closed {
		st.closed = true
		st.conn.Close()
	}
}

func (st *stream) done() bool { return st.got == len(st.data) }

// holders counts the servers that hold the client connection c.
func (r *rack) holders(c *stack.Conn) int {
	n := 0
	for i, srv := range r.servers {
		id := tcp.ID{Local: netip.AddrPortFrom(serverAddr(i).Addr(), 80), Remote: c.ID().Local}
		if srv.h.Stack.LookupConn(id) != nil {
			n++
		}
	}
	return n
}

// stageOf returns the TCPMig stage of frame, if it is TCPMig, and its
// fragment index.
func stageOf(f []byte) (tcpmig.Stage, uint16, bool) {
	const udp = 14 + 20
	if len(f) < udp+8+tcpmig.HeaderLen || f[12] != 8 || f[13] != 0 || f[23] != 17 {
		return 0, 0, false
	}
	if uint16(f[udp+2])<<8|uint16(f[udp+3]) != tcpmig.UDPPort {
		return 0, 0, false
	}
	h := tcpmig.TCPMig(f[udp+8:])
	if h.Validate() != nil {
		return 0, 0, false
	}
	return h.Stage(), h.FragmentIndex(), true
}

var _ = time.Millisecond
