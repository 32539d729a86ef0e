package repair

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// sampleDump is a valid Dump with queues of the given lengths, half the
// send queue unsent.
func sampleDump(sendLen, recvLen int) Dump {
	q := func(n int, seed byte) []byte {
		if n == 0 {
			return nil
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)*7 + seed
		}
		return b
	}
	return Dump{
		Local:     netip.MustParseAddrPort("10.78.0.1:7000"),
		Remote:    netip.MustParseAddrPort("10.78.0.2:40000"),
		State:     StateEstablished,
		SendSeq:   0xfffffff0, // queues that wrap the sequence space
		RecvSeq:   12345,
		SendQueue: q(sendLen, 1),
		Unsent:    uint32(sendLen / 2),
		RecvQueue: q(recvLen, 2),
		Options:   OptTimestamps | OptSACK | OptWindowScale,
		SndWscale: 7, RcvWscale: 9,
		MSS:       1448,
		Timestamp: 0xdeadbeef,
		Window:    Window{SndWl1: 12000, SndWnd: 65535, MaxWindow: 70000, RcvWnd: 64000, RcvWup: 12000},
		SndBuf:    46080, RcvBuf: 131072,
	}
}

func TestEncodingRoundTrip(t *testing.T) {
	v6 := sampleDump(0, 0)
	v6.Local = netip.MustParseAddrPort("[2001:db8::1]:443")
	v6.Remote = netip.MustParseAddrPort("[2001:db8::2]:50000")
	v6.Options, v6.SndWscale, v6.RcvWscale, v6.Timestamp = 0, 0, 0, 0
	for name, d := range map[string]Dump{
		"ipv4 queued": sampleDump(3000, 1000),
		"idle":        sampleDump(0, 0),
		"ipv6 plain":  v6,
	} {
		t.Run(name, func(t *testing.T) {
			b, err := d.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != d.encodedLen() {
				t.Errorf("encoded %d bytes, encodedLen says %d", len(b), d.encodedLen())
			}
			var got Dump
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, d) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, d)
			}
			// AppendBinary appends.
			pre := []byte("xyz")
			b2, _ := d.AppendBinary(pre)
			if !bytes.Equal(b2[:3], pre) || !bytes.Equal(b2[3:], b) {
				t.Error("AppendBinary does not append the same encoding")
			}
		})
	}
}

func TestDecodeRefusesTruncated(t *testing.T) {
	d := sampleDump(300, 200)
	b, _ := d.MarshalBinary()
	for n := range len(b) {
		var got Dump
		err := got.UnmarshalBinary(b[:n])
		if !errors.Is(err, ErrBadDump) {
			t.Fatalf("%d of %d bytes: %v, want ErrBadDump", n, len(b), err)
		}
		if !reflect.DeepEqual(got, Dump{}) {
			t.Fatalf("%d of %d bytes: refused decode changed the Dump", n, len(b))
		}
	}
	var got Dump
	err := got.UnmarshalBinary(b[:len(b)-100])
	if !strings.Contains(err.Error(), "receive queue: truncated") {
		t.Errorf("cut in the receive queue: %v", err)
	}
	err = got.UnmarshalBinary(append(b[:len(b):len(b)], 0))
	if !errors.Is(err, ErrBadDump) || !strings.Contains(err.Error(), "after the end") {
		t.Errorf("trailing byte: %v", err)
	}
}

// Every single-bit flip anywhere is refused: CRC-32C catches all of them.
func TestDecodeRefusesCorrupt(t *testing.T) {
	d := sampleDump(64, 32)
	b, _ := d.MarshalBinary()
	for i := range b {
		for bit := range 8 {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			var got Dump
			if err := got.UnmarshalBinary(c); !errors.Is(err, ErrBadDump) {
				t.Fatalf("flip of bit %d in byte %d accepted (%v)", bit, i, err)
			}
		}
	}
	c := bytes.Clone(b)
	c[len(c)-20] ^= 0x40 // inside the receive queue
	var got Dump
	if err := got.UnmarshalBinary(c); err == nil || !strings.Contains(err.Error(), "crc32c") {
		t.Errorf("queue corruption: %v, want a checksum error", err)
	}
	c = bytes.Clone(b)
	c[4] = 9
	if err := got.UnmarshalBinary(c); err == nil || !strings.Contains(err.Error(), "version: 9") {
		t.Errorf("version 9: %v", err)
	}
	if err := got.UnmarshalBinary([]byte("GIF89a..........")); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Errorf("not a dump: %v", err)
	}
}

// A huge queue length is refused before anything is allocated for it.
func TestDecodeBoundsQueue(t *testing.T) {
	d := sampleDump(0, 0)
	b, _ := d.MarshalBinary()
	// The send queue length field sits 12 bytes from the end
	// (send len, recv len, crc).
	i := len(b) - 12
	b[i], b[i+1], b[i+2], b[i+3] = 0xff, 0xff, 0xff, 0xff
	var got Dump
	err := got.UnmarshalBinary(b)
	if err == nil || !strings.Contains(err.Error(), "send queue: 4294967295 bytes, above") {
		t.Errorf("huge send queue: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for name, c := range map[string]struct {
		mut   func(d *Dump)
		field string
	}{
		"no local":          {func(d *Dump) { d.Local = netip.AddrPort{} }, "local address"},
		"unspecified":       {func(d *Dump) { d.Remote = netip.MustParseAddrPort("0.0.0.0:1") }, "remote address"},
		"port 0":            {func(d *Dump) { d.Local = netip.MustParseAddrPort("10.0.0.1:0") }, "local address"},
		"mapped":            {func(d *Dump) { d.Local = netip.MustParseAddrPort("[::ffff:10.0.0.1]:1") }, "local address"},
		"families":          {func(d *Dump) { d.Remote = netip.MustParseAddrPort("[2001:db8::1]:1") }, "remote address"},
		"listen":            {func(d *Dump) { d.State = 10 }, "state"},
		"unknown option":    {func(d *Dump) { d.Options = 8 }, "options"},
		"wscale 15":         {func(d *Dump) { d.RcvWscale = 15 }, "window scale"},
		"wscale w/o option": {func(d *Dump) { d.Options &^= OptWindowScale }, "window scale"},
		"ts w/o option":     {func(d *Dump) { d.Options &^= OptTimestamps }, "timestamp"},
		"mss":               {func(d *Dump) { d.MSS = 87 }, "mss"},
		"unsent":            {func(d *Dump) { d.Unsent = uint32(len(d.SendQueue) + 1) }, "unsent"},
		"send queue":        {func(d *Dump) { d.SendQueue = make([]byte, MaxQueueLen+1) }, "send queue"},
	} {
		d := sampleDump(10, 10)
		c.mut(&d)
		err := d.Validate()
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want a FormatError on %q", name, err, c.field)
		}
		if _, err := d.MarshalBinary(); err == nil {
			t.Errorf("%s: encoded an invalid dump", name)
		}
	}
	if s := State(6).String(); s != "TIME_WAIT" {
		t.Errorf("State(6) = %s", s)
	}
}

// FuzzUnmarshalBinary: the decoder never panics, and what it accepts is
// exactly what the encoder would write for the decoded Dump.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, d := range []Dump{sampleDump(0, 0), sampleDump(40, 17), sampleDump(5, 0)} {
		b, err := d.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("CPYR\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Dump
		if err := d.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrBadDump) {
				t.Fatalf("error %v is not ErrBadDump", err)
			}
			return
		}
		again, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded dump does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded and re-encoded differs from the input")
		}
	})
}

// A snd_wl1 past the receive window's right edge is clamped to it (the
// kernel refuses it otherwise); one inside it, or behind it, is kept.
func TestRestoreWindowClampsSndWl1(t *testing.T) {
	for _, c := range []struct {
		name              string
		wl1, rcvNxt, rwnd uint32
		want              uint32
	}{
		{"past a closed window", 1312006299, 1311984579, 0, 1311984579},
		{"past an open window", 1000, 100, 500, 600},
		{"inside the window", 300, 100, 500, 300},
		{"behind rcv_nxt", 50, 100, 0, 50},
		{"across the wrap", 10, 0xFFFFFFF0, 0, 0xFFFFFFF0},
	} {
		d := &Dump{RecvSeq: c.rcvNxt, Window: Window{SndWl1: c.wl1, RcvWnd: c.rwnd, SndWnd: 7, MaxWindow: 9, RcvWup: c.rcvNxt}}
		w := restoreWindow(d)
		if w.SndWl1 != c.want || w.SndWnd != 7 || w.MaxWindow != 9 || w.RcvWnd != c.rwnd || w.RcvWup != c.rcvNxt {
			t.Errorf("%s: restoreWindow = %+v, want snd_wl1 %d and the rest as dumped", c.name, w, c.want)
		}
	}
}

// With bytes in flight, the restored send window starts closed (the
// client's ACK of them sets it, by the slow path) and snd_wl1 goes before
// rcv_nxt, so a segment at rcv_nxt that acknowledges nothing new sets it
// too. With none in flight, the dumped window stays.
func TestRestoreWindowClosedWithBytesInFlight(t *testing.T) {
	for _, c := range []struct {
		name             string
		queue, unsent    int
		wl1, rcvNxt      uint32
		wantWnd, wantWl1 uint32
	}{
		{"in flight", 3000, 1000, 100, 100, 0, 99},
		{"in flight, snd_wl1 behind", 3000, 0, 50, 100, 0, 50},
		{"in flight, snd_wl1 past the edge", 3000, 0, 1000, 100, 0, 99},
		{"all unsent", 3000, 3000, 100, 100, 20000, 100},
		{"nothing queued", 0, 0, 100, 100, 20000, 100},
	} {
		d := &Dump{RecvSeq: c.rcvNxt, SendQueue: make([]byte, c.queue), Unsent: uint32(c.unsent),
			Window: Window{SndWl1: c.wl1, SndWnd: 20000, MaxWindow: 30000, RcvWnd: 500, RcvWup: c.rcvNxt}}
		w := restoreWindow(d)
		if w.SndWnd != c.wantWnd || w.SndWl1 != c.wantWl1 || w.MaxWindow != 30000 || w.RcvWnd != 500 || w.RcvWup != c.rcvNxt {
			t.Errorf("%s: restoreWindow = %+v, want snd_wnd %d, snd_wl1 %d, the rest as dumped", c.name, w, c.wantWnd, c.wantWl1)
		}
	}
}
