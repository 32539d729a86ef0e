package pipeline

import (
	"bytes"
	"testing"

	"github.com/google/gopacket/layers"
)

// needRelease skips a test when the spec names no directory.release.
func needRelease(t *testing.T) {
	t.Helper()
	if Release == "" {
		t.Skip("no directory.release: no message clears entries")
	}
}

// swapped is what the switch makes of a datagram it sends back: Ethernet,
// IPv4 and UDP sources and destinations exchanged, every other byte
// (checksums included: each sum covers both halves) as it was.
func swapped(frame []byte) []byte {
	out := append([]byte(nil), frame...)
	for _, r := range [][2]int{{0, 6}, {26, 4}, {34, 2}} {
		at, n := r[0], r[1]
		copy(out[at:at+n], frame[at+n:at+2*n])
		copy(out[at+n:at+2*n], frame[at:at+n])
	}
	return out
}

// TestReleaseClearsEveryLevel: the release message from a server runs
// key_clear on every level (here the key is on all of them, as the control
// plane may write it), empties their addr cells, counts the deletes, and
// goes back to its sender as the acknowledgement; other keys stay, and the
// client's next segment is no longer rewritten.
func TestReleaseClearsEveryLevel(t *testing.T) {
	needRelease(t)
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	other := clientKey{ipClient, cport + 1}
	e.migrate(ipC, ipA, other.ip, other.port, portC)
	for l, target := range [][4]byte{ipB, ipC, ipB, ipC, ipB, ipC, ipB, ipC}[:Levels] {
		en := Entry{Valid: true, ClientIP: k.ip, ClientPort: k.port, Origin: ipA, Target: target}
		if err := e.p.WriteDirectory(l, int(mustIndex(t, l, k.ip, k.port)), en); err != nil {
			t.Fatal(err)
		}
	}
	before := e.p.Counters()
	frame := e.connClosed(ipB, ipA, k.ip, k.port)
	r, out := e.run(frame, portB)
	e.want(r, reply(portB))
	if !bytes.Equal(out, swapped(frame)) {
		t.Errorf("echo\n% x\nwant the datagram with addresses swapped\n% x", out, swapped(frame))
	}
	d := checkFrame(t, out)
	stage, fields := e.migOf(d)
	if stage != Release || fields[e.s.Directory.Key[0]] != ipU64(k.ip) || fields[e.s.Directory.Key[1]] != uint64(k.port) {
		t.Errorf("echo is %s naming %v, want %s naming %s", stage, fields, Release, k)
	}
	if addr(d.ip.DstIP) != ipB || addr(d.ip.SrcIP) != ipA || d.udp.DstPort != 40001 || d.udp.SrcPort != layers.UDPPort(e.s.Transport.UDPPort) {
		t.Errorf("echo %s:%d -> %s:%d, want back to B's port 40001", d.ip.SrcIP, d.udp.SrcPort, d.ip.DstIP, d.udp.DstPort)
	}
	if got := e.copies(k); len(got) != 0 {
		t.Errorf("after %s the key is still on levels %v", Release, got)
	}
	for l := 0; l < Levels; l++ {
		if got, _ := e.p.ReadDirectory(l, int(mustIndex(t, l, k.ip, k.port))); got.Valid && got.ClientPort == k.port {
			t.Errorf("level %d slot reads %+v after the release", l, got)
		}
	}
	c := e.p.Counters()
	if c.Deletes-before.Deletes != uint64(Levels) || c.Hits != before.Hits {
		t.Errorf("Counters() = %+v, want %d more deletes and no hit", c, Levels)
	}
	if got := e.requestGoesTo(other); got != ipC {
		t.Errorf("another port of the same client now goes to %s, want C (untouched)", ipString(got))
	}
	if got := e.requestGoesTo(k); got != ipA {
		t.Errorf("after the release the request goes to %s, want A (unrewritten)", ipString(got))
	}
	// A retry (the echo was lost) finds nothing and is answered the same.
	r, out = e.run(frame, portB)
	e.want(r, reply(portB))
	if !bytes.Equal(out, swapped(frame)) {
		t.Errorf("echo of the retry differs from the first")
	}
	if got := e.p.Counters().Deletes; got != c.Deletes {
		t.Errorf("a retry counted %d more deletes", got-c.Deletes)
	}
}

// TestReleaseWithoutUDPChecksum: a release sent without a UDP checksum is
// echoed without one; with one, it stays valid (checkFrame above).
func TestReleaseWithoutUDPChecksum(t *testing.T) {
	needRelease(t)
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frame := e.connClosed(ipB, ipA, ipClient, cport)
	frame[40], frame[41] = 0, 0
	r, out := e.run(frame, portB)
	e.want(r, reply(portB))
	if out[40] != 0 || out[41] != 0 {
		t.Errorf("UDP checksum %#02x%02x in the echo, want 0 (none)", out[40], out[41])
	}
	if _, _, ok := e.p.Lookup(ipClient, cport); ok {
		t.Errorf("the release without a checksum left the entry")
	}
}

// TestReleaseRefused: a release from a port that is not a server's is
// spoofed_control, one whose UDP length is short of the header bad_tcpmig;
// neither touches the directory.
func TestReleaseRefused(t *testing.T) {
	needRelease(t)
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frame := e.connClosed(ipB, ipA, ipClient, cport)
	least := 8 + e.s.Header.Bytes + e.s.ReleaseMessage().PayloadBytes
	for _, tc := range []struct {
		name  string
		frame []byte
		in    Port
		want  Result
	}{
		{"from the client port", e.connClosed(ipClient, ipA, ipClient, cport), portClient, dropped(DropSpoofedControl)},
		{"from a port without a role", frame, portNoRole, dropped(DropUnknownPort)},
		{"UDP length one byte short", withUDPLen(frame, least-1), portB, dropped(DropBadTCPMig)},
		{"UDP length of the UDP header only", withUDPLen(frame, 8), portB, dropped(DropBadTCPMig)},
	} {
		before := e.p.Counters().Deletes
		if r, _ := e.run(tc.frame, tc.in); r != tc.want {
			t.Errorf("%s: Process = %+v, want %+v", tc.name, r, tc.want)
		}
		if _, en, ok := e.p.Lookup(ipClient, cport); !ok || en.Target != ipB {
			t.Fatalf("%s: the entry is gone (%+v, %v)", tc.name, en, ok)
		}
		if e.p.Counters().Deletes != before {
			t.Errorf("%s: counted a delete", tc.name)
		}
	}
	if got := e.requestGoesTo(clientKey{ipClient, cport}); got != ipB {
		t.Errorf("request goes to %s after refused releases, want B", ipString(got))
	}
}

// TestHalfClosedMigratedConnection is `nc -N` against a migrated server:
// the client's FIN does not end the entry (delete_on without fin), so the
// server's later segments still leave with the origin's address; the
// server's own FIN does not end it either; the release does, once the
// connection has finished. RST still deletes.
func TestHalfClosedMigratedConnection(t *testing.T) {
	if DeleteOnFIN {
		t.Skip("delete_on has fin: the client's FIN ends the entry")
	}
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	steps := []struct {
		name  string
		frame []byte
		in    Port
	}{
		{"client's request", tcpFrame(t, k.ip, ipA, k.port, svport, "PA", []byte("GET /")), portClient},
		{"client's FIN (half-close)", tcpFrame(t, k.ip, ipA, k.port, svport, "FA", nil), portClient},
		{"server's data after the client's FIN", tcpFrame(t, ipB, k.ip, svport, k.port, "PA", []byte("200 OK")), portB},
		{"server's FIN", tcpFrame(t, ipB, k.ip, svport, k.port, "FA", nil), portB},
		{"client's last ACK", tcpFrame(t, k.ip, ipA, k.port, svport, "A", nil), portClient},
	}
	for _, st := range steps {
		r, out := e.run(st.frame, st.in)
		d := checkFrame(t, out)
		if st.in == portClient {
			e.want(r, fwd(portB))
			if got := addr(d.ip.DstIP); got != ipB {
				t.Fatalf("%s: to %s, want the target B", st.name, ipString(got))
			}
		} else {
			e.want(r, fwd(portClient))
			if got := addr(d.ip.SrcIP); got != ipA {
				t.Fatalf("%s: leaves as %s, want the origin A (the client resets anything else)", st.name, ipString(got))
			}
		}
	}
	if c := e.p.Counters(); c.Deletes != 0 || c.Hits != uint64(len(steps)) {
		t.Errorf("Counters() = %+v, want %d hits and no delete", c, len(steps))
	}
	if Release != "" {
		r, _ := e.run(e.connClosed(ipB, ipA, k.ip, k.port), portB)
		e.want(r, reply(portB))
		if _, _, ok := e.p.Lookup(k.ip, k.port); ok {
			t.Errorf("the entry outlives the release")
		}
	}
	// A new migration of the same client port ends by RST instead.
	e.migrate(ipC, ipA, k.ip, k.port, portC)
	e.run(tcpFrame(t, k.ip, ipA, k.port, svport, "FA", nil), portClient)
	if !DeleteOnRST {
		return
	}
	r, out := e.run(tcpFrame(t, ipC, k.ip, svport, k.port, "RA", nil), portC)
	e.want(r, fwd(portClient))
	if got := addr(checkFrame(t, out).ip.SrcIP); got != ipA {
		t.Errorf("server's RST leaves as %s, want A", ipString(got))
	}
	if _, _, ok := e.p.Lookup(k.ip, k.port); ok {
		t.Errorf("RST after a half-close left the entry")
	}
}

// TestNoReleaseForwards: without directory.release a message of the
// release's shape is just another TCPMig message, forwarded unchanged.
func TestNoReleaseForwards(t *testing.T) {
	if Release != "" {
		t.Skip("directory.release is set")
	}
	e := newEnv(t)
	m := e.s.MessageByName("conn_closed")
	if m == nil {
		t.Skip("the spec has no conn_closed message")
	}
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frame := e.migFrame(ipB, ipA, mig{msg: m.Name, hdr: map[string]uint64{
		"origin_ip": ipU64(ipA), e.s.Directory.Key[0]: ipU64(ipClient), e.s.Directory.Key[1]: cport,
	}})
	r, out := e.run(frame, portB)
	e.want(r, fwd(portA))
	if !bytes.Equal(out[6:], frame[6:]) {
		t.Errorf("conn_closed without directory.release was changed past the Ethernet destination")
	}
	if _, _, ok := e.p.Lookup(ipClient, cport); !ok {
		t.Errorf("conn_closed without directory.release deleted the entry")
	}
}
