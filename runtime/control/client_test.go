package control_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/capygen/capygen/runtime/control"
)

// silentListener accepts TCP connections and never speaks HTTP/2, as a
// wrong port or a hung server does.
func silentListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback TCP here: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return l.Addr().String()
}

// TestDialBoundedWhileStreamOpens: Options.Timeout and ctx bound the
// opening of the stream, not only the wait for the arbitration answer
// (gRPC alone waits 20 s for an HTTP/2 handshake).
func TestDialBoundedWhileStreamOpens(t *testing.T) {
	addr := silentListener(t)

	start := time.Now()
	_, err := control.Dial(context.Background(), addr, control.Options{Timeout: 300 * time.Millisecond})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Dial with Timeout 300ms took %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "no answer within the timeout 300ms") {
		t.Errorf("Dial with Timeout 300ms = %v, want an error naming %s and the timeout", err, addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = control.Dial(ctx, addr, control.Options{Timeout: time.Minute})
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Dial with a 300ms ctx took %v", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) {
		t.Errorf("Dial with a 300ms ctx = %v, want context.DeadlineExceeded naming %s", err, addr)
	}
}

// arbitrationAnswer rewrites the server's arbitration answers.
type arbitrationAnswer struct {
	grpc.ServerStream
	code     codes.Code
	election uint64
}

func (s arbitrationAnswer) SendMsg(m any) error {
	if a := m.(*p4v1.StreamMessageResponse).GetArbitration(); a != nil {
		a.Status.Code, a.Status.Message = int32(s.code), "rewritten"
		a.ElectionId = &p4v1.Uint128{Low: s.election}
	}
	return s.ServerStream.SendMsg(m)
}

// TestNotPrimaryByCode: NOT_FOUND (no primary, and an id below the
// highest seen) asks for an id at least that high; ALREADY_EXISTS says
// another controller is primary.
func TestNotPrimaryByCode(t *testing.T) {
	for _, c := range []struct {
		code     codes.Code
		want     []string
		wantNot  string
		election uint64
	}{
		{codes.NotFound, []string{"election id 1 is not the primary", "has no primary", "has seen election id 5", "Give election id 5 or higher", "election id 0"}, "Another controller", 5},
		{codes.AlreadyExists, []string{"the primary's election id is 5", "Another controller runs this switch", "an id above its"}, "has no primary", 5},
	} {
		rewrite := grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			return next(srv, arbitrationAnswer{ss, c.code, c.election})
		})
		_, d := server(t, rewrite)
		_, err := control.Dial(context.Background(), "passthrough:///bufnet", control.Options{ElectionID: 1, DialOptions: []grpc.DialOption{d}, Timeout: 5 * time.Second})
		if err == nil {
			t.Fatalf("%v: Dial succeeded", c.code)
		}
		for _, want := range c.want {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v: error lacks %q:\n%v", c.code, want, err)
			}
		}
		if strings.Contains(err.Error(), c.wantNot) {
			t.Errorf("%v: error says %q:\n%v", c.code, c.wantNot, err)
		}
	}
}
