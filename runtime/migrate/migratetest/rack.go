// Package migratetest runs migrations in the deterministic simulator: a rack
// of a client host and servers behind the software switch (the generated
// pipeline), each server with a migration engine and echo applications, and
// client streams that check every byte that comes back. runtime/migrate's
// failure-path tests and runtime/sim's seeded soak use it, as net/http's
// tests use httptest.
package migratetest

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
	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/sim"
	"github.com/capygen/capygen/runtime/stack"
	softswitch "github.com/capygen/capygen/runtime/switch"
	"github.com/capygen/capygen/runtime/tcp"
)

// Addresses of the rack: the client, server i, the switch's control address.
var (
	ClientAddr = netip.MustParsePrefix("10.77.0.1/24")
	Control    = netip.MustParseAddr("10.77.0.254")
)

// ServerAddr is server i's prefix (10.77.0.11 and up).
func ServerAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, 0, byte(11 + i)}), 24)
}

// Filter sees a frame at a switch port and drops it by returning true.
type Filter func(port pipeline.Port, frame []byte) bool

// Rack is a client and servers behind the switch, in the simulator.
type Rack struct {
	Sim      *sim.Sim
	Switch   *softswitch.Switch
	Pipeline *pipeline.Pipeline
	Client   *sim.Host
	Servers  []*Server
	Links    []*sim.Link
	// In and Out, when set, see every frame entering the switch and every
	// frame it sends, and may drop it: the tests' fault injection.
	In, Out Filter
	// HarmfulRSTs lists RSTs sent toward the client while its connection
	// was open. A RST answering a late duplicate after the close (the
	// client in TIME-WAIT) is plain TCP and not listed.
	HarmfulRSTs []string

	node *softswitch.Node[*sim.Port]
	ids  map[*sim.Port]pipeline.Port
}

// Server is one server host with its engine and echo applications.
type Server struct {
	Host     *sim.Host
	Engine   *migrate.Engine
	Listener *stack.Listener
	Apps     map[tcp.ID]*Echo
	Records  []migrate.Record
	// Parked servers accept connections but never read or write them.
	Parked bool
}

// Config shapes a rack.
type Config struct {
	Seed    uint64
	Servers int
	Link    sim.LinkConfig
	// Engine is every server's engine config; Switch, Seed, Clock and
	// OnRecord are set by the rack. A nil Clock takes the simulator's
	// virtual time; RealClock measures Work on the real monotonic clock.
	Engine    migrate.Config
	RealClock bool
	// Workload, if set, is server i's heartbeat workload (the engine's
	// Config.Workload): a test's own load metric.
	Workload func(server int) uint32
	// Tune, if set, adjusts server i's stack and engine configs, for
	// racks whose servers differ (a target with a smaller restore cap).
	Tune func(server int, st *stack.Config, e *migrate.Config)
}

// ingress is the switch's simulator handler with the rack's filters.
type ingress struct{ r *Rack }

func (h ingress) Deliver(now sim.Time, p *sim.Port, frame []byte) {
	r := h.r
	r.watchRST(frame)
	if r.In != nil && r.In(r.ids[p], frame) {
		return
	}
	r.node.Deliver(now, p, frame)
}
func (h ingress) Advance(now sim.Time)           { h.r.node.Advance(now) }
func (h ingress) NextDeadline() (sim.Time, bool) { return h.r.node.NextDeadline() }

// egress is a switch port's endpoint with the rack's Out filter.
type egress struct {
	link.Endpoint
	r  *Rack
	id pipeline.Port
}

func (e egress) Send(frame []byte) error {
	if e.r.Out != nil && e.r.Out(e.id, frame) {
		return nil
	}
	return e.Endpoint.Send(frame)
}

// Inject hands the switch a frame as if it arrived on port, bypassing In.
func (r *Rack) Inject(port pipeline.Port, frame []byte) {
	for p, id := range r.ids {
		if id == port {
			r.node.Deliver(r.Sim.Now(), p, frame)
			return
		}
	}
}

// New builds a rack: the client on switch port 0, server i on port i+1.
func New(cfg Config) (*Rack, error) {
	s := sim.New(sim.Config{Seed: cfg.Seed})
	r := &Rack{Sim: s, Pipeline: pipeline.New(), ids: map[*sim.Port]pipeline.Port{}}
	swNode := s.AddNode("switch")
	var ports []softswitch.PortConfig
	var hosts []softswitch.Host
	engines := make([]migrate.Config, cfg.Servers)
	attach := func(name string, i int, addr netip.Prefix, role pipeline.Role) (*sim.Host, error) {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}
		// Buffers stay at 256 KiB, as capyrun serve keeps them on
		// servers that migrate: a migration moves the queues whole.
		scfg := stack.Config{Addr: addr, Seed: cfg.Seed*100 + uint64(i),
			ARPRetries: 20, ARPRetry: 5 * time.Millisecond, ARPQueue: 4096,
			TCP: tcp.Config{SendBufferMax: tcp.DefaultBuffer, RecvBufferMax: tcp.DefaultBuffer}}
		if role == pipeline.RoleServer {
			engines[i-1] = cfg.Engine
			if cfg.Tune != nil {
				cfg.Tune(i-1, &scfg, &engines[i-1])
			}
		}
		h, err := s.AddHost(name, mac, 1500, scfg)
		if err != nil {
			return nil, err
		}
		p, err := swNode.AddPort(net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}, 1500)
		if err != nil {
			return nil, err
		}
		l, err := s.Connect(h.Port, p, cfg.Link)
		if err != nil {
			return nil, err
		}
		r.Links = append(r.Links, l)
		id := pipeline.Port(i)
		r.ids[p] = id
		ports = append(ports, softswitch.PortConfig{ID: id, Name: name, Role: role, Endpoint: egress{p, r, id}})
		hosts = append(hosts, softswitch.Host{Addr: addr.Addr(), Port: id, MAC: mac})
		return h, nil
	}
	var err error
	if r.Client, err = attach("client", 0, ClientAddr, pipeline.RoleClient); err != nil {
		return nil, err
	}
	var hs []*sim.Host
	for i := range cfg.Servers {
		h, err := attach(fmt.Sprint("server", i), i+1, ServerAddr(i), pipeline.RoleServer)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	if r.Switch, err = softswitch.New(softswitch.Config{Ports: ports, Hosts: hosts, Control: softswitch.Control{Addr: Control},
		Seed: cfg.Seed, Pipeline: r.Pipeline}); err != nil {
		return nil, err
	}
	r.node = softswitch.NewNode(r.Switch, r.ids)
	swNode.SetHandler(ingress{r})
	for i, h := range hs {
		srv := &Server{Host: h, Apps: map[tcp.ID]*Echo{}}
		ecfg := engines[i]
		ecfg.Switch = Control
		ecfg.Seed = cfg.Seed*7 + uint64(i) + 1
		if !cfg.RealClock {
			ecfg.Clock = func() int64 { return int64(s.Now()) }
		}
		ecfg.OnRecord = func(rec migrate.Record) { srv.Records = append(srv.Records, rec) }
		if cfg.Workload != nil {
			ecfg.Workload = func() uint32 { return cfg.Workload(i) }
		}
		if srv.Engine, err = migrate.New(h.Stack, ecfg); err != nil {
			return nil, err
		}
		if srv.Listener, err = h.Stack.Listen(80); err != nil {
			return nil, err
		}
		if err := srv.Engine.HandleRestored(80, func(c *stack.Conn, state []byte) {
			srv.Apps[c.ID()] = &Echo{Conn: c, Pending: append([]byte(nil), state...)}
		}); err != nil {
			return nil, err
		}
		h.OnStep(func(sim.Time) { srv.Step() })
		r.Servers = append(r.Servers, srv)
	}
	return r, nil
}

// watchRST records RSTs toward the client that find its connection open.
func (r *Rack) watchRST(f []byte) {
	if len(f) < 54 || f[12] != 8 || f[13] != 0 || f[23] != 6 || f[14+20+13]&0x04 == 0 {
		return
	}
	if netip.AddrFrom4([4]byte(f[30:34])) != ClientAddr.Addr() {
		return
	}
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(f[26:30])), uint16(f[34])<<8|uint16(f[35]))
	port := uint16(f[36])<<8 | uint16(f[37])
	for _, id := range r.Client.Stack.Conns() {
		if id.Local.Port() != port {
			continue
		}
		if st := r.Client.Stack.LookupConn(id).TCP().State(); st != tcp.StateTimeWait && st != tcp.StateClosed {
			r.HarmfulRSTs = append(r.HarmfulRSTs, fmt.Sprintf("%v: RST from %v to client port %d in %v", r.Sim.Now(), src, port, st))
		}
	}
}

// ServerID is the client connection c as server k files it.
func ServerID(k int, c *stack.Conn) tcp.ID {
	return tcp.ID{Local: netip.AddrPortFrom(ServerAddr(k).Addr(), 80), Remote: c.ID().Local}
}

// Holders counts the servers that hold the client connection c.
func (r *Rack) Holders(c *stack.Conn) int {
	n := 0
	for k, srv := range r.Servers {
		if srv.Host.Stack.LookupConn(ServerID(k, c)) != nil {
			n++
		}
	}
	return n
}

// Step accepts new connections and runs every echo application, in a
// fixed order (map order is random; a seed must fix the run).
func (srv *Server) Step() {
	for c := srv.Listener.TryAccept(); c != nil; c = srv.Listener.TryAccept() {
		srv.Apps[c.ID()] = &Echo{Conn: c}
	}
	if srv.Parked {
		return
	}
	for _, id := range srv.ids() {
		a := srv.Apps[id]
		if a == nil {
			continue
		}
		if err := a.Step(); err != nil {
			if errors.Is(err, stack.ErrDetached) {
				continue // frozen for a migration; the outcome decides
			}
			delete(srv.Apps, id)
		}
		if a.Conn.Done() {
			delete(srv.Apps, id)
		}
	}
}

func (srv *Server) ids() []tcp.ID {
	ids := make([]tcp.ID, 0, len(srv.Apps))
	for id := range srv.Apps {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b tcp.ID) int { return a.Remote.Compare(b.Remote) })
	return ids
}

// Migrate starts moving connection id away, with its echo application's
// state; the application stays away from it until the outcome (then the
// rack drops it unless it stayed).
func (srv *Server) Migrate(id tcp.ID, onDone func(migrate.Outcome)) error {
	a := srv.Apps[id]
	if a == nil {
		return fmt.Errorf("no application for %v", id)
	}
	return srv.Engine.Start(id, a.State, func(out migrate.Outcome) {
		// The connection may have come back already, with a new app.
		if out.Result != migrate.ResultStayed && srv.Apps[id] == a {
			delete(srv.Apps, id)
		}
		if onDone != nil {
			onDone(out)
		}
	})
}

// MigrateAny starts moving one of srv's connections, the pick-th in address
// order; false when none can move now.
func (srv *Server) MigrateAny(pick int, onDone func(migrate.Outcome)) bool {
	var ids []tcp.ID
	for _, id := range srv.ids() {
		if a := srv.Apps[id]; a.Conn.Established() && !a.Conn.Done() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return false
	}
	return srv.Migrate(ids[pick%len(ids)], onDone) == nil
}

// Echo echoes what it reads; Pending (read, not yet written back) is its
// application state and moves with the connection.
type Echo struct {
	Conn    *stack.Conn
	Pending []byte
	buf     [16 << 10]byte
}

// State is the echo application's get-state.
func (a *Echo) State() ([]byte, error) { return append([]byte(nil), a.Pending...), nil }

// Step echoes what can be echoed now.
func (a *Echo) Step() error {
	for {
		if len(a.Pending) > 0 {
			n, err := a.Conn.TryWrite(a.Pending)
			a.Pending = a.Pending[n:]
			if err != nil {
				return err
			}
			if len(a.Pending) > 0 {
				return nil
			}
		}
		n, err := a.Conn.TryRead(a.buf[:])
		a.Pending = append(a.Pending, a.buf[:n]...)
		if err == io.EOF {
			if len(a.Pending) == 0 {
				a.Conn.Close()
			}
			return nil
		}
		if err != nil || n == 0 {
			return err
		}
	}
}

// Stream is one client connection that sends data and checks the echo.
type Stream struct {
	Conn   *stack.Conn
	Data   []byte
	Sent   int
	Got    int
	Closed bool
	Err    error
	// Window bounds the bytes sent and not yet echoed (0: no bound), and
	// with it the state a migration moves.
	Window int
	buf    [32 << 10]byte
}

// Step sends what fits, reads and checks the echo, and closes when done.
func (st *Stream) Step() {
	if st.Closed {
		return
	}
	if st.Err != nil || !st.Conn.Established() {
		if err := st.Conn.Err(); err != nil && st.Err == nil {
			st.Err = fmt.Errorf("client connection %v: %w", st.Conn.ID(), err)
		}
		return
	}
	if st.Sent < len(st.Data) && (st.Window == 0 || st.Sent-st.Got < st.Window) {
		n, err := st.Conn.TryWrite(st.Data[st.Sent:min(len(st.Data), st.Sent+4<<10)])
		st.Sent += n
		if err != nil {
			st.Err = fmt.Errorf("client write %v: %w", st.Conn.ID(), err)
			return
		}
	}
	for {
		n, err := st.Conn.TryRead(st.buf[:])
		if n > 0 {
			if st.Got+n > len(st.Data) || !bytes.Equal(st.buf[:n], st.Data[st.Got:st.Got+n]) {
				st.Err = fmt.Errorf("client %v: echo bytes %d..%d differ from what was sent (lost, duplicated or reordered)", st.Conn.ID(), st.Got, st.Got+n)
				return
			}
			st.Got += n
		}
		if err != nil && err != io.EOF {
			st.Err = fmt.Errorf("client read %v: %w", st.Conn.ID(), err)
		}
		if n == 0 || err != nil {
			break
		}
	}
	if st.Got == len(st.Data) && !st.Closed {
		st.Closed = true
		st.Conn.Close()
	}
}

// Done reports whether every byte came back.
func (st *Stream) Done() bool { return st.Got == len(st.Data) }

// StageOf returns the TCPMig stage of frame, if it is TCPMig, and its
// fragment index.
func StageOf(f []byte) (tcpmig.Stage, uint16, bool) {
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
