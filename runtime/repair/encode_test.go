package repair

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

func sampleDump() *Dump {
	return &Dump{
		Local:   netip.MustParseAddrPort("10.9.0.2:80"),
		Remote:  netip.MustParseAddrPort("10.9.0.1:40000"),
		SendSeq: 0xfffffff0, RecvSeq: 7,
		SendQueue: bytes.Repeat([]byte("s"), 300), RecvQueue: []byte("request"),
		Unsent: 100, MSS: 1448, Options: optSACK | optWscale | optTimestamps,
		SndWscale: 7, RcvWscale: 9, Timestamp: 123456,
		Window: Window{1, 2, 3, 4, 5}, HasWindow: true,
	}
}

func TestDumpRoundTrip(t *testing.T) {
	for _, d := range []*Dump{sampleDump(), {Local: netip.MustParseAddrPort("[fd00::2]:80"), Remote: netip.MustParseAddrPort("[fd00::1]:1"), MSS: 1220}} {
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Dump
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if got.SendQueue == nil && len(d.SendQueue) == 0 {
			got.SendQueue = d.SendQueue
		}
		if got.RecvQueue == nil && len(d.RecvQueue) == 0 {
			got.RecvQueue = d.RecvQueue
		}
		if !reflect.DeepEqual(&got, d) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, *d)
		}
	}
}

// TestDumpTruncatedRefused cuts a dump at every length: each prefix is
// refused with ErrDump, and the target Dump is left untouched.
func TestDumpTruncatedRefused(t *testing.T) {
	b, err := sampleDump().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < len(b); n++ {
		d := Dump{MSS: 42}
		if err := d.UnmarshalBinary(b[:n]); !errors.Is(err, ErrDump) {
			t.Fatalf("%d of %d bytes: %v, want ErrDump", n, len(b), err)
		}
		if d.MSS != 42 {
			t.Fatalf("%d bytes: a refused dump was applied partly", n)
		}
	}
	if err := new(Dump).UnmarshalBinary(append(b, 0)); !errors.Is(err, ErrDump) {
		t.Errorf("a trailing byte: %v, want ErrDump", err)
	}
}

func TestDumpRefusals(t *testing.T) {
	for name, c := range map[string]struct {
		edit func(*Dump)
		want string
	}{
		"unsent over queue": {func(d *Dump) { d.Unsent = 301 }, "301 unsent bytes of a 300-byte send queue"},
		"zero mss":          {func(d *Dump) { d.MSS = 0 }, "mss 0 is outside 1..65535"},
		"wscale":            {func(d *Dump) { d.SndWscale = 15 }, "RFC 7323 allows 0..14"},
		"families":          {func(d *Dump) { d.Remote = netip.MustParseAddrPort("[fd00::1]:1") }, "different families"},
		"no address":        {func(d *Dump) { d.Local = netip.AddrPort{} }, "must both be set"},
	} {
		d := sampleDump()
		c.edit(d)
		_, err := d.MarshalBinary()
		if !errors.Is(err, ErrDump) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
			t.Errorf("%s: %v, want ErrDump saying %q", name, err, c.want)
		}
		if _, err := Restore(d, d.Local, nil); !errors.Is(err, ErrDump) {
			t.Errorf("%s: Restore = %v, want ErrDump before any socket", name, err)
		}
	}
	b, _ := sampleDump().MarshalBinary()
	b[4] = 9
	if err := new(Dump).UnmarshalBinary(b); err == nil || !bytes.Contains([]byte(err.Error()), []byte("version 9")) {
		t.Errorf("version 9: %v", err)
	}
}

// FuzzUnmarshalDump: any input either decodes into a dump that encodes
// back to the same bytes, or is refused with ErrDump; never a panic.
func FuzzUnmarshalDump(f *testing.F) {
	b, _ := sampleDump().MarshalBinary()
	f.Add(b)
	f.Add([]byte("CPYR\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Dump
		if err := d.UnmarshalBinary(in); err != nil {
			if !errors.Is(err, ErrDump) {
				t.Fatalf("error %v does not wrap ErrDump", err)
			}
			return
		}
		out, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded dump does not encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs:\n% x\n% x", in, out)
		}
	})
}
