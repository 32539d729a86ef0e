package pipeline

import (
	"sync"
	"testing"
)

// TestConcurrentUse drives the data plane and the control plane from
// several goroutines at once, as the software switch and its P4Runtime
// server do; run with -race it checks the model's locking.
func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frames := seedFrames(e)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			buf := make([]byte, 0, 128)
			for i := 0; i < 500; i++ {
				f := frames[(g+i)%len(frames)]
				buf = append(buf[:0], f...)
				e.p.Process(buf, []Port{portClient, portA, portB}[i%3])
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 500; i++ {
			_ = e.p.SetHost([4]byte{10, 99, byte(i >> 8), byte(i)}, portC, macOf(portC))
			_, _ = e.p.ReadDirectory(0, i)
			_ = e.p.WriteMinWorkload(ipC, uint32(i))
			_ = e.p.Counters()
			_, _, _ = e.p.Lookup(ipClient, cport)
		}
	}()
	wg.Wait()
	// Every goroutine sends heartbeats from server ports, whatever the
	// interleaving.
	if c := e.p.Counters(); c.Heartbeats == 0 {
		t.Errorf("no heartbeat answered under concurrent use: %+v", c)
	}
}
