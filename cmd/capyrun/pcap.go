package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/capygen/capygen/generated/pipeline"
	softswitch "github.com/capygen/capygen/runtime/switch"
)

// pcapWriter is capyrun switch -pcap: every frame the switch receives and
// sends, in a pcapng file with an interface per port and direction
// ("s1:in", "s1:out"), so a forwarded frame shows twice, as on a real
// switch's mirror of every port. Read it with tshark -X
// lua_script:generated/wireshark/tcpmig.lua. It stops writing at its size
// bound and counts what it left out.
type pcapWriter struct {
	mu      sync.Mutex
	f       *os.File
	w       *pcapgo.NgWriter
	intf    map[pipeline.Port]int // the port's "in" interface; "out" is the next
	left    int64                 // bytes it may still write
	skipped uint64
	err     error
}

func newPcapWriter(path string, maxBytes int64, ports []softswitch.PortConfig) (*pcapWriter, error) {
	if len(ports) == 0 {
		return nil, fmt.Errorf("-pcap %s: the switch has no ports to capture", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-pcap: %w", err)
	}
	p := &pcapWriter{f: f, left: maxBytes, intf: map[pipeline.Port]int{ports[0].ID: 0}}
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
	return p, nil
}

// capture is the switch's Config.Capture. It writes under the switch's
// lock, through a buffer: a capture slows forwarding, as on any switch
// that mirrors every port, and it is off unless asked for.
func (p *pcapWriter) capture(port pipeline.Port, out bool, frame []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int64(32 + len(frame)) // an enhanced packet block's overhead and data
	if p.err != nil || n > p.left {
		p.skipped++
		return
	}
	p.left -= n
	idx := p.intf[port]
	if out {
		idx++
	}
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), CaptureLength: len(frame), Length: len(frame), InterfaceIndex: idx}
	if err := p.w.WritePacket(ci, frame); err != nil {
		p.err = err
	}
}

// flush writes what is buffered, so a reader of the file sees it.
func (p *pcapWriter) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.w.Flush(); err != nil && p.err == nil {
		p.err = err
	}
	return p.err
}

// close flushes and closes the file; it reports a write error and the
// frames the size bound left out.
func (p *pcapWriter) close() error {
	err := p.flush()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	if p.skipped > 0 {
		fmt.Printf("pcap: %d frames left out over -pcap-max\n", p.skipped)
	}
	return err
}
