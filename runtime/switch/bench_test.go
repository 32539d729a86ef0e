package softswitch

import (
	"net"
	"net/netip"
	"testing"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/link"
)

// discard is an endpoint that drops what it is sent.
type discard struct{ n int }

func (d *discard) MAC() net.HardwareAddr                            { return macS1 }
func (d *discard) MTU() int                                         { return 1500 }
func (d *discard) Send([]byte) error                                { d.n++; return nil }
func (d *discard) Receive(time.Duration, func([]byte)) (int, error) { return 0, link.ErrClosed }
func (d *discard) Close() error                                     { return nil }

// BenchmarkDeliver is the switch's own cost per frame (copy, pipeline,
// verdict, counters), without a link: client->server segments of 64 and
// 1514 bytes.
func BenchmarkDeliver(b *testing.B) {
	for _, size := range []int{64, 1514} {
		b.Run(map[int]string{64: "64B", 1514: "1514B"}[size], func(b *testing.B) {
			out := &discard{}
			sw, err := New(Config{
				Ports: []PortConfig{
					{ID: pClient, Role: pipeline.RoleClient, Endpoint: &discard{}},
					{ID: pS1, Role: pipeline.RoleServer, Endpoint: out},
				},
				Hosts: []Host{{Addr: ipS1, Port: pS1, MAC: macS1}},
			})
			if err != nil {
				b.Fatal(err)
			}
			f := tcpFrame(b, macClient, macS1, netip.AddrPortFrom(ipClient, 40000), netip.AddrPortFrom(ipS1, 80), false, make([]byte, max(0, size-54)))
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				sw.Deliver(time.Duration(i), pClient, f)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
			if out.n != b.N {
				b.Fatalf("forwarded %d of %d frames", out.n, b.N)
			}
		})
	}
}
