package app_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/capygen/capygen/runtime/link"
)

// tap records a one-line summary of the last TCP and TCPMig frames an
// endpoint sends and receives, for the diagnosis of a failed test.
type tap struct {
	link.Endpoint
	name string
	mu   sync.Mutex
	ring []tapped
	next int
	n    int
}

// tapped is a frame's headers, kept raw: formatting them on the data path
// would slow it down.
type tapped struct {
	at   time.Time
	dir  byte
	n    int
	head [80]byte
}

const tapKeep = 3000

// heartbeat reports a TCPMig HEARTBEAT_UPDATE or its response.
func heartbeat(f []byte) bool {
	if len(f) < 14+20+8+20 || f[12] != 0x08 || f[13] != 0x00 || f[14+9] != 17 {
		return false
	}
	l4 := f[14+int(f[14]&0xf)*4:]
	if len(l4) < 8+20 || binary.BigEndian.Uint16(l4[2:]) != 7071 && binary.BigEndian.Uint16(l4) != 7071 {
		return false
	}
	return l4[8+18]>>4 >= 12
}

func newTap(ep link.Endpoint, name string) *tap {
	return &tap{Endpoint: ep, name: name, ring: make([]tapped, tapKeep)}
}

func (t *tap) record(dir byte, f []byte) {
	if heartbeat(f) {
		return // every 2 ms: they would flush the ring
	}
	t.mu.Lock()
	r := &t.ring[t.next]
	r.at, r.dir, r.n = time.Now(), dir, copy(r.head[:], f)
	t.next = (t.next + 1) % tapKeep
	t.n++
	t.mu.Unlock()
}

func (t *tap) Send(f []byte) error {
	t.record('>', f)
	return t.Endpoint.Send(f)
}

func (t *tap) Receive(timeout time.Duration, fn func([]byte)) (int, error) {
	return t.Endpoint.Receive(timeout, func(f []byte) {
		t.record('<', f)
		fn(f)
	})
}

// dump returns the frames recorded, oldest first.
func (t *tap) dump() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d frames recorded, the last %d:\n", t.name, t.n, min(t.n, tapKeep))
	for i := range tapKeep {
		r := t.ring[(t.next+i)%tapKeep]
		if s := summarize(r.head[:r.n]); s != "" {
			fmt.Fprintf(&b, "%s %s %c %s\n", r.at.Format("05.000000"), t.name, r.dir, s)
		}
	}
	return b.String()
}

// summarize describes an IPv4 TCP segment or UDP datagram.
func summarize(f []byte) string {
	if len(f) < 34 || f[12] != 0x08 || f[13] != 0x00 {
		return ""
	}
	ip := f[14:]
	ihl := int(ip[0]&0xf) * 4
	if len(ip) < ihl+8 {
		return ""
	}
	src := fmt.Sprintf("%d.%d.%d.%d", ip[12], ip[13], ip[14], ip[15])
	dst := fmt.Sprintf("%d.%d.%d.%d", ip[16], ip[17], ip[18], ip[19])
	total := int(binary.BigEndian.Uint16(ip[2:]))
	f = f[:min(len(f), 80)]
	l4 := ip[ihl:]
	switch ip[9] {
	case 6:
		if len(l4) < 20 {
			return ""
		}
		off := int(l4[12]>>4) * 4
		flags := ""
		for i, c := range "FSRPAU" {
			if l4[13]&(1<<i) != 0 {
				flags += string(c)
			}
		}
		return fmt.Sprintf("tcp %s:%d>%s:%d %s seq=%d ack=%d win=%d len=%d",
			src, binary.BigEndian.Uint16(l4), dst, binary.BigEndian.Uint16(l4[2:]), flags,
			binary.BigEndian.Uint32(l4[4:]), binary.BigEndian.Uint32(l4[8:]), binary.BigEndian.Uint16(l4[14:]), total-ihl-off)
	case 17:
		if len(l4) < 8+19 || binary.BigEndian.Uint16(l4[2:]) != 7071 && binary.BigEndian.Uint16(l4) != 7071 {
			return ""
		}
		stage := l4[8+18] >> 4
		if stage >= 12 {
			return "" // heartbeats
		}
		return fmt.Sprintf("udp %s>%s tcpmig stage=%d frag=%d", src, dst, stage, binary.BigEndian.Uint16(l4[8+16:]))
	}
	return ""
}
