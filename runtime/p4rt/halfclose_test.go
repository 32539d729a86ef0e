package p4rt_test

import (
	"testing"
	"time"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"
	"google.golang.org/grpc"
)

// A backup that half-closes its stream while its sender is blocked in
// Send (it stopped reading) does not pin the StreamChannel handler in
// leave: the wait for the sender is bounded, the handler returns, and
// gRPC ending the stream frees the sender.
func TestHalfCloseWithBlockedSenderFreesTheHandler(t *testing.T) {
	b := newBench(t)
	small := p4v1.NewP4RuntimeClient(b.dial(grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16)))
	backup := b.openOn(small, 1)
	// Fill the window with the handler's own StreamErrors, as long as its
	// Sends still return.
	for i := 0; i < 2; i++ {
		if err := backup.s.Send(&p4v1.StreamMessageRequest{Update: &p4v1.StreamMessageRequest_Packet{Packet: &p4v1.PacketOut{Payload: make([]byte, 60<<10)}}}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	t.Logf("handler in streamMessage: %d", goroutines(streamMessageFn))
	// Arbitration changes until the backup's sender is stuck sending.
	var opened []*stream
	n := 0
	stuck := func() bool {
		for i := 0; i < 5; i++ {
			if goroutines("p4rt.(*client).send") == 0 {
				return false
			}
			time.Sleep(20 * time.Millisecond)
		}
		return true
	}
	for id := uint64(100); id < 5000 && (id%20 != 0 || !stuck()); id++ {
		n++
		s := b.open(id)
		s.drain()
		opened = append(opened, s)
		if len(opened) > 50 { // keep the client count small
			opened[0].cancel()
			opened = opened[1:]
		}
	}
	t.Logf("backup sender in send: %d after %d opens", goroutines("p4rt.(*client).send"), n)
	if err := backup.s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	t.Logf("after CloseSend and 2s: goroutines in leave %d, senders in send %d", goroutines("p4rt.(*Server).leave"), goroutines("p4rt.(*client).send"))
	if goroutines("p4rt.(*Server).leave") > 0 {
		t.Errorf("the half-closed backup's handler is stuck in leave")
	}
}
