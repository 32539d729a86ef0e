package p4rt_test

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// rearbitrate sends an arbitration update with election id low on s.
func (s *stream) rearbitrate(low uint64, role *p4v1.Role) error {
	return s.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Arbitration{Arbitration: &p4v1.MasterArbitrationUpdate{
		DeviceId: device, ElectionId: eid(low), Role: role}}})
}

// drain reads s until it ends.
func (s *stream) drain() {
	go func() {
		for {
			if _, err := s.s.Recv(); err != nil {
				return
			}
		}
	}()
}

// stalledBackup opens a backup (election id 1) on a connection with a
// fixed 64 KiB window that never reads its stream, and fills the stream:
// its packet-outs are answered with StreamErrors carrying them, 240 KiB
// of them, so the server blocks sending to it. It returns once the
// backup's handler is seen stuck in that send.
func stalledBackup(b *bench) *stream {
	b.t.Helper()
	small := p4v1.NewP4RuntimeClient(b.dial(grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16)))
	backup := b.openOn(small, 1)
	go func() { // it blocks too once the server stops reading
		for i := 0; i < 4; i++ {
			if backup.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Packet{Packet: &p4v1.PacketOut{Payload: make([]byte, 60<<10)}}}) != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for stuck := 0; stuck < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatal("the backup's stream never filled")
		}
		if goroutines(streamMessageFn) == 1 {
			stuck++
		} else {
			stuck = 0
		}
	}
	return backup
}

// A backup that stops reading holds up no other client's arbitration
// updates: each of six new primaries hears it is primary within a second.
func TestStalledBackupHoldsUpNoArbitrationUpdate(t *testing.T) {
	b := newBench(t)
	stalledBackup(b)
	p := b.open(2)
	p.drain()
	for i := uint64(0); i < 6; i++ {
		id := 100 + i
		c := b.open(id)
		got := make(chan *p4v1.StreamMessageResponse, 1)
		go func() {
			m, _ := c.s.Recv()
			got <- m
		}()
		select {
		case m := <-got:
			if a := m.GetArbitration(); codes.Code(a.GetStatus().GetCode()) != codes.OK || a.GetElectionId().GetLow() != id {
				t.Errorf("new primary %d heard %v, want OK with election id %d", id, m, id)
			}
		case <-time.After(time.Second):
			t.Fatalf("new primary %d: no arbitration update within 1s while a backup does not read", id)
		}
	}
}

// goroutines counts the goroutines with fn in their stack.
func goroutines(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return bytes.Count(buf, []byte(fn+"("))
}

// waitGoroutines waits until want goroutines run fn.
func waitGoroutines(t *testing.T, fn string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := goroutines(fn)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines run %s, want %d", n, fn, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	senderFn        = "p4rt.(*client).sender"
	handlerFn       = "p4rt.(*Server).StreamChannel"
	streamMessageFn = "p4rt.(*Server).streamMessage"
)

// Each arbitrated stream has one sender goroutine for its updates, and
// however the stream ends (the client cancels or half-closes, the server
// ends it with an error, or the client had stopped reading) the sender
// and the handler stop.
func TestStreamEndStopsItsSender(t *testing.T) {
	b := newBench(t)
	// Goroutines of earlier tests' servers stop once their streams do.
	waitGoroutines(t, senderFn, 0)
	waitGoroutines(t, handlerFn, 0)

	backup := stalledBackup(b)
	primary := b.open(2)
	primary.drain()
	var s [4]*stream
	for i := range s {
		s[i] = b.open(uint64(10 + i))
		s[i].next()
	}
	waitGoroutines(t, senderFn, 6)

	s[0].cancel()
	if err := s[1].s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s[2].rearbitrate(12, &p4v1.Role{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s[2].recvErr(), codes.FailedPrecondition, "a stream's role cannot change")
	if err := s[3].rearbitrate(2, nil); err != nil { // the primary's election id
		t.Fatal(err)
	}
	wantCode(t, s[3].recvErr(), codes.InvalidArgument, "election id 2 is already another client's")
	backup.cancel() // its sender is blocked sending
	primary.cancel()
	waitGoroutines(t, senderFn, 0)
	waitGoroutines(t, handlerFn, 0)
}

// A live stream's role cannot change (P4Runtime 5.3): a re-arbitration
// with another role ends the stream FAILED_PRECONDITION, and the others
// hear of the new primary.
func TestRoleChangeOnLiveStreamEndsIt(t *testing.T) {
	b := newBench(t)
	p := b.open(4)
	p.expect(codes.OK, 4)
	q := b.open(3)
	q.expect(codes.AlreadyExists, 4)
	if err := p.rearbitrate(4, &p4v1.Role{Name: "sdn"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, p.recvErr(), codes.FailedPrecondition, `role "sdn": this stream has the default role`)
	q.expect(codes.OK, 3)
}
