package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/capygen/capygen/generated/pipeline"
	softswitch "github.com/capygen/capygen/runtime/switch"
)

// pcapQueue is how many frames capture may hold for the writer.
const pcapQueue = 4096

// pcapWriter is capyrun switch -pcap: every frame the switch receives and
// sends, in a pcapng file with an interface per port and direction
// ("s1:in", "s1:out"), so a forwarded frame shows twice, as on a real
// switch's mirror of every port. Read it with tshark -X
// lua_script:generated/wireshark/tcpmig.lua. It stops writing at its size
// bound and counts what it left out.
//
// The switch calls capture under its lock, so capture only copies the
// frame and its time into a bounded queue, which a goroutine of the
// writer's own writes to the file in order. When the file falls behind
// and the queue is full, capture drops the frame and counts it rather
// than hold up forwarding. close writes out everything queued first: a
// normal shutdown loses no frame.
type pcapWriter struct {
	f    *os.File
	w    *pcapgo.NgWriter      // the writer goroutine's once started
	intf map[pipeline.Port]int // the port's "in" interface; "out" is the next
	now  func() time.Time

	q        chan pcapFrame
	flushReq chan chan error
	done     chan struct{} // closed when the writer goroutine has returned
	pool     sync.Pool     // *[]byte, frame copies

	mu      sync.Mutex // the queue's sending side: capture and close
	closed  bool
	left    int64  // bytes it may still write
	dropped uint64 // the queue was full, or the writer closed

	skipped atomic.Uint64 // over the size bound, or after a write error
	failed  atomic.Bool   // err is set
	err     error         // the writer goroutine's; read after a flush reply or done
}

// pcapFrame is one captured frame on its way to the file.
type pcapFrame struct {
	ci   gopacket.CaptureInfo
	data *[]byte
}

func newPcapWriter(path string, maxBytes int64, ports []softswitch.PortConfig) (*pcapWriter, error) {
	p, err := openPcapWriter(path, maxBytes, ports, pcapQueue)
	if err != nil {
		return nil, err
	}
	p.start()
	return p, nil
}

// openPcapWriter creates the file and writes its header; capture queues
// frames from then on, and start starts writing them.
func openPcapWriter(path string, maxBytes int64, ports []softswitch.PortConfig, queue int) (*pcapWriter, error) {
	if len(ports) == 0 {
		return nil, fmt.Errorf("-pcap %s: the switch has no ports to capture", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-pcap: %w", err)
	}
	p := &pcapWriter{f: f, left: maxBytes, intf: map[pipeline.Port]int{ports[0].ID: 0}, now: time.Now,
		q: make(chan pcapFrame, queue), flushReq: make(chan chan error), done: make(chan struct{})}
	name := func(pc softswitch.PortConfig, dir string) pcapgo.NgInterface {
		return pcapgo.NgInterface{Name: pc.Name + ":" + dir, Description: fmt.Sprintf("capyrun switch port %d, frames %s", pc.ID, dir),
			LinkType: layers.LinkTypeEthernet, SnapLength: 65536}
	}
	p.w, err = pcapgo.NewNgWriterInterface(f, name(ports[0], "in"), pcapgo.DefaultNgWriterOptions)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("-pcap %s: %w", path, err)
	}
	for i, pc := range ports {
		if i > 0 {
			id, err := p.w.AddInterface(name(pc, "in"))
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("-pcap %s: %w", path, err)
			}
			p.intf[pc.ID] = id
		}
		if _, err := p.w.AddInterface(name(pc, "out")); err != nil {
			f.Close()
			return nil, fmt.Errorf("-pcap %s: %w", path, err)
		}
	}
	// The header goes out now: a capture killed before its first flush
	// would otherwise leave an empty file, which no reader takes.
	if err := p.w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("-pcap %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("-pcap %s: %w", path, err)
	}
	p.left -= fi.Size()
	return p, nil
}

// start starts the goroutine that writes the queue to the file.
func (p *pcapWriter) start() { go p.run() }

// capture is the switch's Config.Capture. It runs under the switch's
// lock: it copies the frame into the queue, or counts it out.
func (p *pcapWriter) capture(port pipeline.Port, out bool, frame []byte) {
	idx := p.intf[port]
	if out {
		idx++
	}
	ci := gopacket.CaptureInfo{Timestamp: p.now(), CaptureLength: len(frame), Length: len(frame), InterfaceIndex: idx}
	n := int64(32 + (len(frame)+3)&^3) // an enhanced packet block: overhead and data padded to 4 bytes
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed.Load() || n > p.left {
		p.skipped.Add(1)
		return
	}
	if p.closed {
		p.dropped++
		return
	}
	data := p.copyFrame(frame)
	select {
	case p.q <- pcapFrame{ci: ci, data: data}:
		p.left -= n
	default:
		p.pool.Put(data)
		p.dropped++
	}
}

// copyFrame copies frame into a buffer from the pool.
func (p *pcapWriter) copyFrame(frame []byte) *[]byte {
	b, _ := p.pool.Get().(*[]byte)
	if b == nil || cap(*b) < len(frame) {
		nb := make([]byte, 0, max(len(frame), 2048))
		b = &nb
	}
	*b = append((*b)[:0], frame...)
	return b
}

// run writes the queue to the file until close closes it, then flushes.
func (p *pcapWriter) run() {
	defer close(p.done)
	for {
		select {
		case fr, ok := <-p.q:
			if !ok {
				p.flushFile()
				return
			}
			p.write(fr)
			if len(p.q) == 0 {
				// Out to the file when the queue runs dry, so that a
				// reader (or a kill) sees every frame written so far.
				p.flushFile()
			}
		case reply := <-p.flushReq:
			// Every frame queued before the request is among these.
			for n := len(p.q); n > 0; n-- {
				fr, ok := <-p.q
				if !ok {
					break
				}
				p.write(fr)
			}
			p.flushFile()
			reply <- p.err
		}
	}
}

func (p *pcapWriter) write(fr pcapFrame) {
	if p.err != nil {
		p.skipped.Add(1)
	} else if err := p.w.WritePacket(fr.ci, *fr.data); err != nil {
		p.err = err
		p.failed.Store(true)
	}
	p.pool.Put(fr.data)
}

func (p *pcapWriter) flushFile() {
	if err := p.w.Flush(); err != nil && p.err == nil {
		p.err = err
		p.failed.Store(true)
	}
}

// flush writes out every frame captured so far, so a reader of the file
// sees them, and reports a write error.
func (p *pcapWriter) flush() error {
	reply := make(chan error, 1)
	select {
	case p.flushReq <- reply:
		return <-reply
	case <-p.done:
		return p.err
	}
}

// close writes out what is queued, flushes and closes the file; it
// reports a write error and the frames the size bound left out or the
// full queue dropped.
func (p *pcapWriter) close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.q)
	}
	p.mu.Unlock()
	<-p.done
	err := p.err
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if n := p.skipped.Load(); n > 0 {
		fmt.Printf("pcap: %d frames left out over -pcap-max\n", n)
	}
	if n := p.droppedFrames(); n > 0 {
		fmt.Printf("pcap: %d frames dropped: the file fell behind the switch (a queue of %d frames)\n", n, cap(p.q))
	}
	return err
}

// droppedFrames is how many frames the full queue (or a capture after
// close) dropped.
func (p *pcapWriter) droppedFrames() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dropped
}
