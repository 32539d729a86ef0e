package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/capygen/capygen/runtime/link"
	"github.com/capygen/capygen/runtime/tcp"
)

var (
	addrA = netip.MustParsePrefix("10.77.0.1/24")
	addrB = netip.MustParsePrefix("10.77.0.2/24")
)

// newRunningPair connects two stacks with an in-memory pipe and runs both
// event loops until the test ends.
func newRunningPair(t *testing.T, mod func(*Config)) (a, b *Stack) {
	t.Helper()
	ea, eb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	return runPair(t, ea, eb, mod)
}

// runPair runs stacks A and B on two ends of one link until the test ends.
func runPair(t *testing.T, ea, eb link.Endpoint, mod func(*Config)) (a, b *Stack) {
	t.Helper()
	ca, cb := Config{Addr: addrA, Seed: 11}, Config{Addr: addrB, Seed: 22}
	ca.TCP.InitialRTO, cb.TCP.InitialRTO = 200*time.Millisecond, 200*time.Millisecond
	if mod != nil {
		mod(&ca)
		mod(&cb)
	}
	var err error
	if a, err = New(ca, ea); err != nil {
		t.Fatal(err)
	}
	if b, err = New(cb, eb); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*Stack{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		ea.Close()
		eb.Close()
	})
	return a, b
}

// acceptReadAll listens on port of b, accepts one connection and reads it
// to EOF; the channel gets what it read (nil if Accept failed).
func acceptReadAll(t *testing.T, b *Stack, port uint16) <-chan []byte {
	return acceptServe(t, b, port, func(c *Conn, got chan<- []byte) {
		all, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("ReadAll: %v", err)
		}
		got <- all
	})
}

// acceptServe listens on port of b and hands the one connection it
// accepts to serve, on a goroutine, with a channel (of two) for what serve
// reads; it gets nil if Accept fails. The connection is closed after.
func acceptServe(t *testing.T, b *Stack, port uint16, serve func(c *Conn, got chan<- []byte)) <-chan []byte {
	t.Helper()
	ln, err := b.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 2)
	go func() {
		c, err := ln.AcceptConn(nil)
		if err != nil {
			t.Errorf("Accept: %v", err)
			got <- nil
			return
		}
		defer c.Close()
		serve(c, got)
	}()
	return got
}

// acceptReadReply listens on port of b, accepts one connection, reads n
// bytes from it and answers "done"; the channel gets what it read.
func acceptReadReply(t *testing.T, b *Stack, port uint16, n int) <-chan []byte {
	return acceptServe(t, b, port, func(c *Conn, got chan<- []byte) {
		buf := make([]byte, n)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Errorf("ReadFull: %v", err)
		}
		if _, err := c.Write([]byte("done")); err != nil {
			t.Errorf("Write: %v", err)
		}
		got <- buf
	})
}

// writeAndClose writes data on c and closes it, and checks that got, the
// receiver's channel, gets the same bytes within 20 s.
func writeAndClose(t *testing.T, c *Conn, data []byte, got <-chan []byte) {
	t.Helper()
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	if err := c.Close(); err != nil { // data written before Close must arrive
		t.Fatal(err)
	}
	select {
	case all := <-got:
		if !bytes.Equal(all, data) {
			t.Fatalf("received %d bytes, not the %d sent", len(all), len(data))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("transfer did not finish in 20s: frames queued and never flushed?")
	}
}

// waitLocked polls cond under s's lock every millisecond until it holds,
// for at most 5 s: the way to know another goroutine is blocked on the
// stack (its wait channel is made).
func waitLocked(t *testing.T, s *Stack, what string, cond func() bool) {
	t.Helper()
	for range 5000 {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("waited 5 s for %s", what)
}

// dialB dials port on stack B's address from a.
func dialB(t *testing.T, a *Stack, port uint16) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, netip.AddrPortFrom(addrB.Addr(), port))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestTCPTransfer(t *testing.T) {
	a, b := newRunningPair(t, nil)
	data := randomBytes(1, 4<<20)
	got := acceptReadAll(t, b, 5001)
	c := dialB(t, a, 5001)
	writeAndClose(t, c, data, got)
	if ca, cb := a.Counters(), b.Counters(); ca.TCPOut == 0 || cb.TCPIn == 0 || ca.ARPRequestsOut != 1 || cb.ARPRepliesOut != 1 {
		t.Errorf("counters A:\n%vB:\n%v", ca, cb)
	}
	if la, ra := c.LocalAddr().String(), c.RemoteAddr().String(); ra != "10.77.0.2:5001" || la[:10] != "10.77.0.1:" {
		t.Errorf("addrs = %s -> %s", la, ra)
	}
}

// TestManyConns runs concurrent echo sessions through one listener.
func TestManyConns(t *testing.T) {
	a, b := newRunningPair(t, nil)
	ln, err := b.Listen(7)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	const conns, size = 64, 64 << 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := a.Dial(ctx, netip.AddrPortFrom(addrB.Addr(), 7))
			if err != nil {
				errs <- fmt.Errorf("conn %d: dial: %w", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			data := randomBytes(uint64(i), size)
			go func() {
				c.Write(data)
				c.CloseWrite()
			}()
			back, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(back, data) {
				errs <- fmt.Errorf("conn %d: echoed %d of %d bytes, equal %v, err %v", i, len(back), size, bytes.Equal(back, data), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ln.Close()
}

func TestHTTP(t *testing.T) {
	a, b := newRunningPair(t, nil)
	body := randomBytes(7, 1<<20)
	ln, err := b.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: a.DialContext}, Timeout: 20 * time.Second}
	for i := range 3 { // keep-alive reuses the connection
		resp, err := client.Get("http://10.77.0.2/blob")
		if err != nil {
			t.Fatalf("GET %d: %v", i, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || sha256.Sum256(got) != sha256.Sum256(body) {
			t.Fatalf("GET %d: status %d, %d bytes, err %v; want 200 and the 1 MiB body", i, resp.StatusCode, len(got), err)
		}
	}
}

func TestDialRefused(t *testing.T) {
	a, b := newRunningPair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Dial(ctx, netip.AddrPortFrom(addrB.Addr(), 4444))
	if !errors.Is(err, tcp.ErrRefused) {
		t.Fatalf("Dial to a port without listener = %v, want tcp.ErrRefused", err)
	}
	if c := b.Counters(); c.RSTOut != 1 || c.TCPNoConn != 1 {
		t.Errorf("B counters rst.out %d no_conn %d, want 1 and 1", c.RSTOut, c.TCPNoConn)
	}
	if c := a.Counters(); c.RSTIn != 1 {
		t.Errorf("A rst.in = %d, want 1", c.RSTIn)
	}
}

func TestDialErrors(t *testing.T) {
	a, _ := newRunningPair(t, func(c *Config) { c.ARPRetry = 20 * time.Millisecond; c.ARPRetries = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cases := []struct {
		addr string
		want error
	}{
		{"192.0.2.1:80", ErrNoRoute},          // off-link, no gateway
		{"10.77.0.1:80", ErrNoRoute},          // ourselves
		{"10.77.0.2:0", ErrBadAddr},           // no port
		{"10.77.0.255:80", ErrBadAddr},        // broadcast
		{"10.77.0.99:80", ErrHostUnreachable}, // nobody answers ARP
	}
	for _, tc := range cases {
		if _, err := a.Dial(ctx, netip.MustParseAddrPort(tc.addr)); !errors.Is(err, tc.want) {
			t.Errorf("Dial(%s) = %v, want %v", tc.addr, err, tc.want)
		}
	}
	short, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if _, err := a.Dial(short, netip.MustParseAddrPort("10.77.0.98:80")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial with an expiring context = %v, want context.DeadlineExceeded", err)
	}
	if _, err := a.DialContext(ctx, "udp", "10.77.0.2:80"); !errors.Is(err, ErrBadAddr) {
		t.Errorf(`DialContext("udp") = %v, want ErrBadAddr`, err)
	}
	if _, err := a.DialContext(ctx, "tcp", "example.com:80"); !errors.Is(err, ErrBadAddr) {
		t.Errorf("DialContext(hostname) = %v, want ErrBadAddr", err)
	}
	if n := len(a.Conns()); n != 0 {
		t.Errorf("failed dials left %d connections in the table", n)
	}
}

func TestListenErrors(t *testing.T) {
	_, b := newRunningPair(t, nil)
	ln, err := b.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Listen(80); !errors.Is(err, ErrPortInUse) {
		t.Errorf("second Listen(80) = %v, want ErrPortInUse", err)
	}
	if _, err := b.Listen(0); !errors.Is(err, ErrBadAddr) {
		t.Errorf("Listen(0) = %v, want ErrBadAddr", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := b.Listen(80); err != nil {
		t.Errorf("Listen after Close: %v", err)
	}
	if ln.Addr().String() != "10.77.0.2:80" {
		t.Errorf("Addr() = %v", ln.Addr())
	}
}

func TestDeadlines(t *testing.T) {
	a, b := newRunningPair(t, func(c *Config) { c.TCP.SendBuffer, c.TCP.RecvBuffer = 16<<10, 16<<10 })
	ln, _ := b.Listen(9)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := a.Dial(context.Background(), netip.AddrPortFrom(addrB.Addr(), 9))
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	defer peer.Close()

	// Read deadline on an idle connection.
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err = c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past deadline = %v, want a timeout net.Error wrapping os.ErrDeadlineExceeded", err)
	}
	if d := time.Since(start); d < 25*time.Millisecond || d > 2*time.Second {
		t.Errorf("Read returned after %v, want about 30ms", d)
	}
	// A deadline moved into the past wakes a blocked Read (net/http relies on it).
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read after SetReadDeadline(past) = %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("SetReadDeadline(past) did not wake the blocked Read")
	}
	// Write deadline: the peer never reads, so buffers fill up.
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := c.Write(make([]byte, 1<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == 0 || n >= 1<<20 {
		t.Errorf("Write into a full pipe = %d, %v; want a partial write and os.ErrDeadlineExceeded", n, err)
	}
	// Clearing the deadline and reading on the other side drains it.
	c.SetWriteDeadline(time.Time{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close = %v, want net.ErrClosed", err)
	}
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	all, err := io.ReadAll(peer)
	if err != nil || len(all) != n {
		t.Errorf("peer read %d bytes, err %v; want the %d written before the deadline", len(all), err, n)
	}
}

// TestDetachAdopt moves a live server connection out of the stack and back
// in, holding its segments meanwhile with the interceptor, the way the
// migration layer will.
func TestDetachAdopt(t *testing.T) {
	a, b := newRunningPair(t, nil)
	ln, _ := b.Listen(7)
	accepted := make(chan *Conn, 2)
	go func() {
		for {
			c, err := ln.AcceptConn(nil)
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	c, err := a.Dial(context.Background(), netip.AddrPortFrom(addrB.Addr(), 7))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	srv := <-accepted
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	echo := func(srv *Conn, msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(srv, buf); err != nil {
			t.Fatalf("server read: %v", err)
		}
		srv.Write(buf)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Fatalf("client read %q, %v; want %q", buf, err, msg)
		}
	}
	echo(srv, "before")

	var mu sync.Mutex
	var held [][]byte
	id := srv.ID()
	b.SetTCPInterceptor(func(now tcp.Time, got tcp.ID, seg *tcp.Segment, raw []byte) bool {
		if got != id {
			return false
		}
		mu.Lock()
		held = append(held, append([]byte(nil), raw...))
		mu.Unlock()
		return true
	})
	tc, err := b.DetachConn(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Read(make([]byte, 1)); !errors.Is(err, ErrDetached) {
		t.Errorf("Read on a detached conn = %v, want ErrDetached", err)
	}
	if _, err := b.DetachConn(id); !errors.Is(err, ErrNoConn) {
		t.Errorf("second DetachConn = %v, want ErrNoConn", err)
	}
	// While detached the client's data is held, not answered with RST.
	if _, err := c.Write([]byte("during")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(held)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	// Move the state through a snapshot, as migration would.
	snap := tc.AppendSnapshot(nil, b.Now())
	restored, err := tcp.Restore(b.Config().TCP, snap, b.Now())
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := b.AdoptConn(restored); err != nil {
		t.Fatal(err)
	}
	if err := b.AdoptConn(restored); !errors.Is(err, ErrConnExists) {
		t.Errorf("second AdoptConn = %v, want ErrConnExists", err)
	}
	b.SetTCPInterceptor(nil)
	mu.Lock()
	for _, f := range held {
		b.Input(b.Now(), f)
	}
	mu.Unlock()
	srv2 := <-accepted
	srv2.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 6)
	if _, err := io.ReadFull(srv2, buf); err != nil || string(buf) != "during" {
		t.Fatalf("adopted conn read %q, %v; want the held data", buf, err)
	}
	srv2.Write(buf)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	echo(srv2, "after")
	if c := b.Counters(); c.TCPIntercepted == 0 || c.RSTOut != 0 {
		t.Errorf("intercepted %d rst.out %d, want >0 and 0", c.TCPIntercepted, c.RSTOut)
	}

	// The detached state's new owner may reuse it for another connection:
	// the old handle must answer without it.
	*tc = tcp.Conn{}
	if got := srv.TCP(); got != nil {
		t.Errorf("detached handle's TCP() = %p, want nil", got)
	}
	if got := srv.Origin(); got != id.Local {
		t.Errorf("detached handle's Origin() = %v, want %v", got, id.Local)
	}
	if got := srv.Queued(); got != 0 {
		t.Errorf("detached handle's Queued() = %d, want 0", got)
	}
	if _, err := srv.Write([]byte("x")); !errors.Is(err, ErrDetached) {
		t.Errorf("Write on a detached conn = %v, want ErrDetached", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close on a detached conn: %v", err)
	}
	echo(srv2, "still")
}

func TestAdoptConnAddresses(t *testing.T) {
	_, b := newRunningPair(t, nil)
	remote := netip.MustParseAddrPort("10.77.0.1:40000")
	tc := tcp.Dial(b.Config().TCP, tcp.ID{Local: netip.AddrPortFrom(addrB.Addr(), 99), Remote: remote}, 1, 0)
	if err := b.AdoptConn(tc); !errors.Is(err, ErrNoListener) {
		t.Errorf("AdoptConn without listener = %v, want ErrNoListener", err)
	}
	ln, err := b.Listen(99)
	if err != nil {
		t.Fatal(err)
	}
	// Migrated in from 10.77.0.3: filed under our address, same port.
	moved := tcp.Dial(b.Config().TCP, tcp.ID{Local: netip.MustParseAddrPort("10.77.0.3:99"), Remote: remote}, 1, 0)
	if err := b.AdoptConn(moved); err != nil {
		t.Fatalf("AdoptConn of a connection from another server: %v", err)
	}
	c, err := ln.AcceptConn(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (tcp.ID{Local: netip.AddrPortFrom(addrB.Addr(), 99), Remote: remote}); c.ID() != want {
		t.Errorf("adopted ID = %v, want %v", c.ID(), want)
	}
	if _, err := b.DetachConn(c.ID()); err != nil {
		t.Errorf("DetachConn(adopted ID): %v", err)
	}
	bad := tcp.Dial(b.Config().TCP, tcp.ID{Local: netip.MustParseAddrPort("10.77.0.3:99"), Remote: netip.MustParseAddrPort("10.77.0.1:0")}, 1, 0)
	if err := b.AdoptConn(bad); !errors.Is(err, ErrBadAddr) {
		t.Errorf("AdoptConn with remote port 0 = %v, want ErrBadAddr", err)
	}
}

// BenchmarkPipeTransfer is stack-to-stack throughput through both event
// loops over an in-memory link: 1 MiB per op on one connection.
func BenchmarkPipeTransfer(b *testing.B) {
	ea, eb := link.NewPipe(net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}, 1500)
	a, _ := New(Config{Addr: addrA, Seed: 1}, ea)
	s, _ := New(Config{Addr: addrB, Seed: 2}, eb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	go s.Run(ctx)
	ln, _ := s.Listen(9)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
	}()
	c, err := a.Dial(ctx, netip.AddrPortFrom(addrB.Addr(), 9))
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.Close()
}

// TestHookWakesWaitersWhenItReturns: a goroutine blocked in Accept is
// woken when the UDP handler that adopted its connection returns (the
// migration engine's restore runs so, and the wake-up, a futex call, is
// not its work), not inside it, and it is woken then, never lost.
func TestHookWakesWaitersWhenItReturns(t *testing.T) {
	a, b := newRunningPair(t, nil)
	ln, err := b.Listen(99)
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Bool
	done := make(chan error, 1)
	go func() {
		_, err := ln.AcceptConn(nil)
		accepted.Store(true)
		done <- err
	}()
	// The goroutine must be waiting before the hook, or there is nobody
	// to wake: wait until the listener has a waiter.
	waitLocked(t, b, "Accept to start waiting", func() bool { return ln.wake.ch != nil })
	remote := netip.MustParseAddrPort("10.77.0.1:40000")
	tc := tcp.Dial(b.Config().TCP, tcp.ID{Local: netip.AddrPortFrom(addrB.Addr(), 99), Remote: remote}, 1, 0)
	handled := make(chan struct{})
	if err := b.HandleUDP(7, func(_, _ netip.AddrPort, _ []byte) {
		defer close(handled)
		if err := b.AdoptConn(tc); err != nil {
			t.Errorf("AdoptConn: %v", err)
			return
		}
		time.Sleep(30 * time.Millisecond)
		if accepted.Load() {
			t.Error("Accept returned inside the handler that adopted its connection")
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.SendUDP(netip.AddrPortFrom(addrA.Addr(), 7), netip.AddrPortFrom(addrB.Addr(), 7), []byte("go")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not run")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept was not woken when the handler returned")
	}
}

// A goroutine blocked in Read (as net/http keeps one on every connection)
// sleeps through a bulk write on the same connection: the ACKs that free
// the send buffer wake the writer, not the reader. Data for the reader
// still wakes it.
func TestBulkWriteLeavesReaderAsleep(t *testing.T) {
	a, b := newRunningPair(t, nil)
	data := randomBytes(7, 4<<20) // sixteen times the first send buffer: the writer blocks
	got := acceptReadReply(t, b, 5002, len(data))
	c := dialB(t, a, 5002)
	defer c.Close()
	reply := make(chan string, 1)
	go func() {
		p := make([]byte, 16)
		n, err := c.Read(p)
		if err != nil {
			t.Errorf("Read: %v", err)
		}
		reply <- string(p[:n])
	}()
	var asleep chan struct{} // the reader's wait channel
	waitLocked(t, a, "Read to start waiting", func() bool { asleep = c.rwake.ch; return asleep != nil })
	if n, err := c.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	a.mu.Lock()
	same := c.rwake.ch == asleep
	a.mu.Unlock()
	if !same {
		t.Error("the blocked reader was woken while only ACKs arrived")
	}
	select {
	case buf := <-got:
		if !bytes.Equal(buf, data) {
			t.Fatal("the receiver read other bytes than were written")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the transfer did not finish")
	}
	select {
	case r := <-reply:
		if r != "done" {
			t.Fatalf("the reader got %q, want %q", r, "done")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("data for the reader did not wake it")
	}
}

// Close unblocks a Read and a Write waiting on the connection, as
// net.Conn requires (net/http closes a connection under its background
// reader so): both return net.ErrClosed at once, with no data or FIN from
// the peer, which here accepts and neither reads nor writes.
func TestCloseWakesBlockedReadAndWrite(t *testing.T) {
	a, b := newRunningPair(t, func(c *Config) { c.TCP.RecvBuffer, c.TCP.SendBuffer = 16<<10, 16<<10 })
	hold := make(chan struct{})
	defer close(hold)
	acceptServe(t, b, 5003, func(c *Conn, got chan<- []byte) { <-hold })
	c := dialB(t, a, 5003)
	errs := make(chan error, 2)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errs <- err
	}()
	go func() {
		_, err := c.Write(make([]byte, 1<<20)) // the peer's window closes long before
		errs <- err
	}()
	// Both must be waiting before the Close, or it proves nothing.
	waitLocked(t, a, "Read and Write to start waiting", func() bool { return c.rwake.ch != nil && c.wwake.ch != nil })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("a blocked call returned %v after Close, want net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Close left a Read or a Write blocked")
		}
	}
}
