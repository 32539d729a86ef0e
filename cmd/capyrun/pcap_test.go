package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/capygen/capygen/generated/pipeline"
	softswitch "github.com/capygen/capygen/runtime/switch"
)

var pcapPorts = []softswitch.PortConfig{{Name: "c1", ID: 0}, {Name: "s1", ID: 1}, {Name: "s2", ID: 9}}

// pcapCall is one call of capture and the block it must become.
type pcapCall struct {
	port  pipeline.Port
	out   bool
	frame []byte
	intf  int
	at    time.Time
}

// pcapCalls are n frames of varied lengths and contents over every port
// and direction, captured a microsecond apart from t0.
func pcapCalls(n int, t0 time.Time) []pcapCall {
	intf := map[pipeline.Port]int{0: 0, 1: 2, 9: 4}
	calls := make([]pcapCall, n)
	for i := range calls {
		pc := pcapPorts[i%len(pcapPorts)]
		frame := make([]byte, 60+(i*37)%1455)
		for j := range frame {
			frame[j] = byte(i*7 + j)
		}
		c := pcapCall{port: pc.ID, out: i%2 == 1, frame: frame, intf: intf[pc.ID], at: t0.Add(time.Duration(i) * time.Microsecond)}
		if c.out {
			c.intf++
		}
		calls[i] = c
	}
	return calls
}

// captureAll captures calls as the switch does: from one scratch buffer
// that is overwritten after each call, on a clock the calls set.
func captureAll(p *pcapWriter, calls []pcapCall) {
	var scratch []byte
	var at time.Time
	p.now = func() time.Time { return at }
	for _, c := range calls {
		scratch = append(scratch[:0], c.frame...)
		at = c.at
		p.capture(c.port, c.out, scratch)
		for i := range scratch {
			scratch[i] = 0xee
		}
	}
}

// readPcap reads every interface and packet of the pcapng file at path.
func readPcap(t *testing.T, path string) ([]pcapgo.NgInterface, []pcapCall) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s is not a pcapng file: %v", path, err)
	}
	var got []pcapCall
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: packet %d: %v", path, len(got), err)
		}
		if ci.CaptureLength != len(data) || ci.Length != len(data) {
			t.Errorf("packet %d: capture length %d, length %d for %d bytes", len(got), ci.CaptureLength, ci.Length, len(data))
		}
		got = append(got, pcapCall{frame: data, intf: ci.InterfaceIndex, at: ci.Timestamp})
	}
	var intfs []pcapgo.NgInterface
	for i := 0; ; i++ {
		intf, err := r.Interface(i)
		if err != nil {
			break
		}
		intfs = append(intfs, intf)
	}
	return intfs, got
}

// checkPackets compares what the file holds with the calls it should.
func checkPackets(t *testing.T, got []pcapCall, want []pcapCall) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("the file holds %d packets, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.intf != w.intf || !g.at.Equal(w.at) || !bytes.Equal(g.frame, w.frame) {
			t.Fatalf("packet %d: interface %d at %v, %d bytes; want interface %d at %v, %d bytes (same contents %v)",
				i, g.intf, g.at, len(g.frame), w.intf, w.at, len(w.frame), bytes.Equal(g.frame, w.frame))
		}
	}
}

// A capture through the writer goroutine is a valid pcapng file with an
// interface per port and direction and every frame, in order, with its
// capture time; flush makes the frames so far readable while the writer
// runs.
func TestPcapWriterWritesEveryFrame(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pcap")
	p, err := newPcapWriter(path, 256<<20, pcapPorts)
	if err != nil {
		t.Fatal(err)
	}
	calls := pcapCalls(3000, time.Unix(1700000000, 123456789))
	captureAll(p, calls[:1000])
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	_, got := readPcap(t, path)
	checkPackets(t, got, calls[:1000])

	captureAll(p, calls[1000:])
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	intfs, got := readPcap(t, path)
	checkPackets(t, got, calls)
	if p.skipped.Load() != 0 || p.droppedFrames() != 0 {
		t.Errorf("skipped %d, dropped %d frames, want none", p.skipped.Load(), p.droppedFrames())
	}
	want := []string{"c1:in", "c1:out", "s1:in", "s1:out", "s2:in", "s2:out"}
	if len(intfs) != len(want) {
		t.Fatalf("%d interfaces, want %d", len(intfs), len(want))
	}
	for i, intf := range intfs {
		if intf.Name != want[i] || intf.LinkType != layers.LinkTypeEthernet || intf.SnapLength != 65536 {
			t.Errorf("interface %d: %q link type %v snap length %d, want %q Ethernet 65536", i, intf.Name, intf.LinkType, intf.SnapLength, want[i])
		}
	}
	if err := p.flush(); err != nil {
		t.Errorf("flush after close: %v", err)
	}
}

// When the writer is behind and the queue is full, capture drops and
// counts frames instead of waiting; close still writes everything that
// was queued, and a capture after close is counted, not a panic.
func TestPcapWriterDropsWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pcap")
	p, err := openPcapWriter(path, 256<<20, pcapPorts, 4)
	if err != nil {
		t.Fatal(err)
	}
	calls := pcapCalls(10, time.Unix(1700000000, 0))
	captureAll(p, calls) // the writer has not started: 4 fit
	if n := p.droppedFrames(); n != 6 {
		t.Errorf("dropped %d frames, want 6", n)
	}
	p.start()
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	_, got := readPcap(t, path)
	checkPackets(t, got, calls[:4])
	captureAll(p, calls[:1])
	if n := p.droppedFrames(); n != 7 {
		t.Errorf("after a capture past close, dropped %d frames, want 7", n)
	}
}

// -pcap-max bounds the file: frames past it are left out and counted.
func TestPcapWriterSizeBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pcap")
	calls := pcapCalls(10, time.Unix(1700000000, 0))
	// The bound counts the file's header, and each block's padding.
	empty, err := newPcapWriter(path, 1<<20, pcapPorts)
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	bound := fi.Size()
	for _, c := range calls[:3] {
		bound += int64(32 + (len(c.frame)+3)&^3)
	}
	p, err := newPcapWriter(path, bound, pcapPorts)
	if err != nil {
		t.Fatal(err)
	}
	captureAll(p, calls)
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	_, got := readPcap(t, path)
	checkPackets(t, got, calls[:3])
	if n := p.skipped.Load(); n != 7 {
		t.Errorf("left out %d frames, want 7", n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > bound {
		t.Errorf("the file is %d bytes (%v), over -pcap-max %d", fi.Size(), err, bound)
	}
}

// The file is readable while the capture goes on, and after a kill: the
// header and the frames are flushed when the queue runs dry, not only at
// close.
func TestPcapWriterFlushesWhileCapturing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pcap")
	p, err := newPcapWriter(path, 1<<20, pcapPorts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	calls := pcapCalls(3, time.Unix(1700000000, 0))
	captureAll(p, calls)
	var got int
	for deadline := time.Now().Add(5 * time.Second); got < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got = 0
		if r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions); err == nil {
			for {
				if _, _, err := r.ReadPacketData(); err != nil {
					break
				}
				got++
			}
		}
		f.Close()
	}
	if got != 3 {
		t.Errorf("the open capture's file shows %d of 3 frames after 5 s", got)
	}
}

// Captures from the switch's goroutine race flushes from the main one
// (capyrun switch's SIGUSR1); run with -race.
func TestPcapWriterConcurrentFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sw.pcap")
	p, err := newPcapWriter(path, 256<<20, pcapPorts)
	if err != nil {
		t.Fatal(err)
	}
	calls := pcapCalls(20000, time.Unix(1700000000, 0))
	var wg sync.WaitGroup
	wg.Go(func() {
		var mu sync.Mutex // the switch's lock
		for _, c := range calls {
			mu.Lock()
			p.capture(c.port, c.out, c.frame)
			mu.Unlock()
		}
	})
	for range 20 {
		if err := p.flush(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	_, got := readPcap(t, path)
	if dropped := p.droppedFrames(); uint64(len(got))+dropped != uint64(len(calls)) {
		t.Errorf("%d frames in the file and %d dropped, want %d in all", len(got), dropped, len(calls))
	}
	t.Logf("%d frames written, %d dropped", len(got), p.droppedFrames())
}
