package link

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

func frameN(dst, src net.HardwareAddr, n int, seq byte) []byte {
	f := make([]byte, n)
	copy(f, dst)
	copy(f[6:], src)
	f[12], f[13] = 0x88, 0xb5 // IEEE local experimental ethertype
	for i := EthernetHeaderLen; i < n; i++ {
		f[i] = seq
	}
	return f
}

func TestPipeDeliversInOrder(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	if !bytes.Equal(a.MAC(), macA) || !bytes.Equal(b.MAC(), macB) || a.MTU() != 1500 {
		t.Fatalf("pipe ends = %v/%v mtu %d, want %v/%v mtu 1500", a.MAC(), b.MAC(), a.MTU(), macA, macB)
	}
	for i := range 10 {
		f := frameN(macB, macA, 60+i, byte(i))
		if err := a.Send(f); err != nil {
			t.Fatalf("Send(frame %d) = %v, want nil", i, err)
		}
		f[20] = 0xff // Send must not keep the caller's buffer
	}
	var got [][]byte
	n, err := b.Receive(time.Second, func(f []byte) { got = append(got, append([]byte(nil), f...)) })
	if err != nil || n != 10 {
		t.Fatalf("Receive = %d, %v, want 10, nil", n, err)
	}
	for i, f := range got {
		if want := frameN(macB, macA, 60+i, byte(i)); !bytes.Equal(f, want) {
			t.Errorf("frame %d = %x, want %x", i, f, want)
		}
	}
	if s := a.Stats(); s.TxFrames != 10 {
		t.Errorf("sender TxFrames = %d, want 10", s.TxFrames)
	}
	if s := b.Stats(); s.RxFrames != 10 || s.RxDropped != 0 {
		t.Errorf("receiver stats = %+v, want 10 received, 0 dropped", s)
	}
}

func TestPipeDropsWhenFull(t *testing.T) {
	a, b, err := NewPipeQueue(macA, macB, 1500, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if err := a.Send(frameN(macB, macA, 64, byte(i))); err != nil {
			t.Fatalf("Send(%d) = %v, want nil (a full queue drops, it does not fail)", i, err)
		}
	}
	var seqs []byte
	n, err := b.Receive(0, func(f []byte) { seqs = append(seqs, f[EthernetHeaderLen]) })
	if err != nil || n != 4 || !bytes.Equal(seqs, []byte{0, 1, 2, 3}) {
		t.Fatalf("Receive = %d %v seqs %v, want the first 4 frames", n, err, seqs)
	}
	if s := b.Stats(); s.RxDropped != 3 {
		t.Errorf("RxDropped = %d, want 3", s.RxDropped)
	}
}

func TestPipeReceiveTimeoutAndClose(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	start := time.Now()
	n, err := b.Receive(20*time.Millisecond, func([]byte) { t.Error("callback on empty pipe") })
	if n != 0 || err != nil {
		t.Fatalf("Receive on empty pipe = %d, %v, want 0, nil", n, err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("Receive returned after %v, want about the 20ms timeout", d)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Receive(10*time.Second, func([]byte) {})
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Receive after Close = %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake a blocked Receive")
	}
	if err := b.Send(frameN(macA, macB, 64, 0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}
	// The live end keeps working; its frames fall on the floor.
	if err := a.Send(frameN(macB, macA, 64, 0)); err != nil {
		t.Errorf("Send to a closed peer = %v, want nil", err)
	}
	if s := a.Stats(); s.TxDropped != 1 {
		t.Errorf("TxDropped after sending to a closed peer = %d, want 1", s.TxDropped)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestPipeFrameLimits(t *testing.T) {
	a, _ := NewPipe(macA, macB, 100)
	for _, tc := range []struct {
		n    int
		want error
	}{{13, ErrFrameTooShort}, {14, nil}, {114, nil}, {115, ErrFrameTooLarge}} {
		if err := a.Send(make([]byte, tc.n)); !errors.Is(err, tc.want) {
			t.Errorf("Send(%d bytes) = %v, want %v", tc.n, err, tc.want)
		}
	}
}

func TestNewPipeQueueRejects(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b       net.HardwareAddr
		mtu, queue int
	}{
		{"short mac", net.HardwareAddr{1, 2}, macB, 1500, 8},
		{"tiny mtu", macA, macB, 10, 8},
		{"no queue", macA, macB, 1500, 0},
	} {
		if _, _, err := NewPipeQueue(tc.a, tc.b, tc.mtu, tc.queue); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewPipeQueue(%s) = %v, want ErrBadConfig", tc.name, err)
		}
	}
}

// Send and Receive run concurrently, as the stack's transmit path and
// event loop do; run with -race.
func TestPipeConcurrent(t *testing.T) {
	a, b := NewPipe(macA, macB, 1500)
	defer a.Close()
	defer b.Close()
	const total = 5000
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range total {
			a.Send(frameN(macB, macA, 64, byte(i)))
			if i%256 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range total {
			b.Send(frameN(macA, macB, 64, byte(i)))
		}
	}()
	var gotA, gotB int
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		nb, _ := b.Receive(time.Millisecond, func([]byte) {})
		na, _ := a.Receive(time.Millisecond, func([]byte) {})
		gotA += na
		gotB += nb
		if uint64(gotA)+a.Stats().RxDropped == total && uint64(gotB)+b.Stats().RxDropped == total {
			break
		}
	}
	wg.Wait()
	if uint64(gotB)+b.Stats().RxDropped != total || uint64(gotA)+a.Stats().RxDropped != total {
		t.Fatalf("received+dropped = %d+%d and %d+%d, want %d each", gotB, b.Stats().RxDropped, gotA, a.Stats().RxDropped, total)
	}
}

func BenchmarkPipe(b *testing.B) {
	x, y := NewPipe(macA, macB, 1500)
	f := frameN(macB, macA, 1514, 1)
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		x.Send(f)
		y.Receive(time.Second, func([]byte) {})
	}
}
