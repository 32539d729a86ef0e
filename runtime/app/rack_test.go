package app_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/app"
	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/load"
	"github.com/capygen/capygen/runtime/migrate"
	"github.com/capygen/capygen/runtime/stack"
	softswitch "github.com/capygen/capygen/runtime/switch"
	"github.com/capygen/capygen/runtime/tcp"
)

// rack is a client and servers behind the software switch, on in-memory
// links, in real time: every stack runs its event loop (stack.Run) and
// the switch its own (Run), as they do over AF_XDP.
type rack struct {
	t       *testing.T
	client  *stack.Stack
	servers []*server
	sw      *softswitch.Switch
	logs    *syncBuffer
	taps    []*tap

	mu       sync.Mutex
	requests []app.RequestLog // from every server's OnRequest
}

type server struct {
	st   *stack.Stack
	eng  *migrate.Engine
	addr netip.Addr
	http *app.HTTPServer
	echo *app.Echo
}

var (
	clientPrefix = netip.MustParsePrefix("10.78.0.1/24")
	controlAddr  = netip.MustParseAddr("10.78.0.254")
)

const (
	httpPort = 80
	echoPort = 7
)

func serverPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 78, 0, byte(11 + i)}), 24)
}

// syncBuffer collects the servers' error logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newRack starts a client and n servers, each serving app.HTTPServer on
// port 80 (with handler for the paths no route takes) and app.Echo on
// port 7.
func newRack(t *testing.T, n int, handler http.Handler) *rack {
	t.Helper()
	return newRackWith(t, n, rackOptions{handler: func(int) http.Handler { return handler }})
}

// rackOptions vary newRackWith's servers.
type rackOptions struct {
	// handler is server i's handler for the paths no route takes.
	handler func(i int) http.Handler
	// meters, if set, is given server i's engine config to change and
	// returns its HTTPServer.Load.
	meters func(i int, cfg *migrate.Config) *load.Meter
}

func newRackWith(t *testing.T, n int, o rackOptions) *rack {
	t.Helper()
	r := &rack{t: t, logs: &syncBuffer{}}
	logger := log.New(r.logs, "", log.Lmicroseconds)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var stacks []*stack.Stack
	var links []*link.Memory
	var ports []softswitch.PortConfig
	var hosts []softswitch.Host
	addHost := func(i int, pfx netip.Prefix, role pipeline.Role) *stack.Stack {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i + 1)}
		host, port := link.NewPipe(mac, net.HardwareAddr{2, 0xaa, 0, 0, 0, byte(i + 1)}, 1500)
		links = append(links, host, port)
		tp := newTap(host, pfx.Addr().String())
		r.taps = append(r.taps, tp)
		st, err := stack.New(stack.Config{Addr: pfx, ARPQueue: 4096, Seed: uint64(i + 1)}, tp)
		if err != nil {
			t.Fatal(err)
		}
		stacks = append(stacks, st)
		ports = append(ports, softswitch.PortConfig{ID: pipeline.Port(i), Name: fmt.Sprint("port", i), Role: role, Endpoint: port})
		hosts = append(hosts, softswitch.Host{Addr: pfx.Addr(), Port: pipeline.Port(i), MAC: mac})
		return st
	}
	r.client = addHost(0, clientPrefix, pipeline.RoleClient)
	for i := range n {
		st := addHost(i+1, serverPrefix(i), pipeline.RoleServer)
		cfg := migrate.Config{Switch: controlAddr, HeartbeatPeriod: 2 * time.Millisecond}
		var meter *load.Meter
		if o.meters != nil {
			meter = o.meters(i, &cfg)
		}
		eng, err := migrate.New(st, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.servers = append(r.servers, &server{st: st, eng: eng, addr: serverPrefix(i).Addr(),
			http: &app.HTTPServer{Engine: eng, Handler: o.handler(i), ErrorLog: logger, OnRequest: r.logRequest, Load: meter},
			echo: &app.Echo{Engine: eng, ErrorLog: logger, InterruptWrites: true}})
	}
	sw, err := softswitch.New(softswitch.Config{Ports: ports, Hosts: hosts, Control: softswitch.Control{Addr: controlAddr}, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.sw = sw
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := sw.Run(ctx); err != nil {
			t.Errorf("switch: %v", err)
		}
	}()
	for _, st := range stacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.Run(ctx); err != nil {
				t.Errorf("stack %v: %v", st.Addr(), err)
			}
		}()
	}
	for _, s := range r.servers {
		hl, err := s.st.Listen(httpPort)
		if err != nil {
			t.Fatal(err)
		}
		el, err := s.st.Listen(echoPort)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); s.http.Serve(hl) }()
		go func() { defer wg.Done(); s.echo.Serve(el) }()
	}
	t.Cleanup(func() {
		for _, s := range r.servers {
			s.eng.Close()
		}
		for _, st := range stacks {
			st.Close() // closes the listeners: Serve returns
		}
		cancel()
		wg.Wait()
		for _, l := range links {
			l.Close()
		}
		if logs := r.logs.String(); logs != "" && !t.Failed() {
			t.Errorf("the servers logged errors:\n%s", logs)
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", r.logs)
			for i, s := range r.servers {
				t.Logf("server %d: engine %+v\nhttp %+v echo %+v\nstack:\n%v", i, s.eng.Stats(), s.http.Stats(), s.echo.Stats(), s.st.Counters())
			}
			t.Logf("switch: %s", r.sw.Report())
			for _, tp := range r.taps {
				t.Logf("%s", tp.dump())
			}
		}
	})
	return r
}

func (r *rack) logRequest(l app.RequestLog) {
	r.mu.Lock()
	r.requests = append(r.requests, l)
	r.mu.Unlock()
}

// requestLogs returns the requests served so far, in the order they ended.
func (r *rack) requestLogs() []app.RequestLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]app.RequestLog(nil), r.requests...)
}

// moved is the migrations that moved a connection, over all servers.
func (r *rack) moved() int {
	n := 0
	for _, s := range r.servers {
		n += int(s.eng.Stats().Moved)
	}
	return n
}

// mover asks the server holding each connection to migrate it, every
// period: Engine.RequestAll on every server (only the server holding a
// connection has its session, so this is "whichever server holds it").
// With a dwell, a connection is asked only once it has been on its server
// that long (-app.dwell, for experiments).
func (r *rack) mover(period, dwell time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		seen := make([]map[tcp.ID]time.Time, len(r.servers))
		for i := range seen {
			seen[i] = map[tcp.ID]time.Time{}
		}
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if dwell <= 0 {
				for _, s := range r.servers {
					s.eng.RequestAll()
				}
				continue
			}
			now := time.Now()
			for i, s := range r.servers {
				ids := s.eng.Sessions()
				live := make(map[tcp.ID]time.Time, len(ids))
				for _, id := range ids {
					first, ok := seen[i][id]
					if !ok {
						first = now
					}
					live[id] = first
					if now.Sub(first) >= dwell {
						s.eng.Request(id) //nolint:errcheck // it may have just left
					}
				}
				seen[i] = live
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *rack) httpClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: r.client.DialContext, DisableCompression: true, MaxIdleConnsPerHost: 1},
		Timeout:   15 * time.Second,
	}
}

// url names a path on server 0: the address the client knows, wherever
// the connection is served.
func (r *rack) url(path string) string {
	return fmt.Sprintf("http://%v:%d%s", r.servers[0].addr, httpPort, path)
}
