package pipeline

import (
	"bytes"
	"testing"
)

// The directory entry is a lease (gen/SWITCH.md step 4): once a key has an
// entry, only its target answering again or its holder handing it over
// may rewrite it, and a PREPARE_MIG resent for a migration in progress goes
// to the entry's target, not to whichever server is least loaded now.

// staleReply checks that frame, an ACK that lost the lease, came back to
// its sender as REJECTED: addresses swapped, the rest of the header kept,
// every checksum valid.
func (e *env) staleReply(frame, out []byte, r Result, in Port) {
	e.t.Helper()
	e.want(r, reply(in))
	d := checkFrame(e.t, out)
	stage, fields := e.migOf(d)
	if stage != "rejected" {
		e.t.Fatalf("stale ACK left as %s, want rejected", stage)
	}
	sent := checkFrame(e.t, frame)
	if addr(d.ip.SrcIP) != addr(sent.ip.DstIP) || addr(d.ip.DstIP) != addr(sent.ip.SrcIP) ||
		d.udp.SrcPort != sent.udp.DstPort || d.udp.DstPort != sent.udp.SrcPort ||
		!bytes.Equal(d.eth.SrcMAC, sent.eth.DstMAC) || !bytes.Equal(d.eth.DstMAC, sent.eth.SrcMAC) {
		e.t.Errorf("REJECTED %s:%d -> %s:%d, want the ACK's addresses swapped", d.ip.SrcIP, d.udp.SrcPort, d.ip.DstIP, d.udp.DstPort)
	}
	_, was := e.migOf(sent)
	for _, f := range []string{"origin_ip", e.s.Directory.Key[0], e.s.Directory.Key[1], "load"} {
		if fields[f] != was[f] {
			e.t.Errorf("REJECTED %s = %#x, the ACK had %#x", f, fields[f], was[f])
		}
	}
}

// entryOf returns the key's entry, failing when it is not in the directory.
func (e *env) entryOf(k clientKey) Entry {
	e.t.Helper()
	_, en, ok := e.p.Lookup(k.ip, k.port)
	if !ok {
		e.t.Fatalf("%s is not in the directory", k)
	}
	return en
}

// (a) The origin A's PREPARE went out twice and the copies were steered to
// two servers, B and C (the least-loaded server changed in between). Both
// ACK with LOAD. B's ACK installs the entry and goes on to A; C's finds the
// entry naming B and does not go to B: it is stale, comes back to C as
// REJECTED (C frees its buffer), and neither the entry nor A sees it.
func TestTwoTargetsOneWins(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.heartbeatReply(ipB, portB, 10)
	r, out := e.run(e.prepare(ipA), portA)
	e.want(r, fwd(portB))
	e.heartbeatReply(ipC, portC, 5)
	r, out2 := e.run(e.prepare(ipA), portA) // the resend: no entry yet, so min_workload
	e.want(r, fwd(portC))
	if addr(checkFrame(t, out).ip.DstIP) != ipB || addr(checkFrame(t, out2).ip.DstIP) != ipC {
		t.Fatalf("the PREPARE copies did not go to B and C")
	}

	e.migrate(ipB, ipA, k.ip, k.port, portB)
	before := e.entryOf(k)
	frame := e.ack(ipC, ipA, k.ip, k.port, true)
	r, out = e.run(frame, portC)
	e.staleReply(frame, out, r, portC)
	if got := e.entryOf(k); got != before || got.Target != ipB || got.Origin != ipA {
		t.Errorf("entry after the stale ACK = %+v, want %+v (target B)", got, before)
	}
	if got := e.copies(k); len(got) != 1 {
		t.Errorf("key on levels %v, want one", got)
	}
	if got := e.requestGoesTo(k); got != ipB {
		t.Errorf("the client's segment goes to %s, want B (one target)", ipString(got))
	}
	c := e.p.Counters()
	if c.StaleAcks != 1 || c.Inserts != 1 || c.Rejects != 0 {
		t.Errorf("Counters() = %+v, want 1 insert, 1 stale ACK, no reject", c)
	}
	// C repeats its ACK (its REJECTED was lost): refused again.
	r, out = e.run(frame, portC)
	e.staleReply(frame, out, r, portC)
	if got := e.p.Counters().StaleAcks; got != 2 {
		t.Errorf("StaleAcks = %d after the repeat, want 2", got)
	}
}

// A stale ACK sent without a UDP checksum is answered without one; the
// entry is kept.
func TestStaleAckWithoutUDPChecksum(t *testing.T) {
	e := newEnv(t)
	e.migrate(ipB, ipA, ipClient, cport, portB)
	frame := e.ack(ipC, ipA, ipClient, cport, true)
	frame[40], frame[41] = 0, 0
	r, out := e.run(frame, portC)
	e.want(r, reply(portC))
	if out[40] != 0 || out[41] != 0 {
		t.Errorf("UDP checksum %#02x%02x in the REJECTED, want 0 (none)", out[40], out[41])
	}
	if got := e.entryOf(clientKey{ipClient, cport}); got.Target != ipB {
		t.Errorf("entry target %s, want B", ipString(got.Target))
	}
}

// (b) B's ACK installed the entry but was lost on its way to A; A resends
// its PREPARE, which now goes to B (the entry's target), and B ACKs again.
// The repeat is idempotent: it goes on to A and leaves the entry as it was.
func TestRepeatedAckFromTheTarget(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	before := e.entryOf(k)
	frame := e.ack(ipB, ipA, k.ip, k.port, true)
	r, out := e.run(frame, portB)
	e.want(r, fwd(portA))
	if !bytes.Equal(out[6:], frame[6:]) {
		t.Errorf("the repeated ACK was changed past the Ethernet destination")
	}
	if got := e.entryOf(k); got != before {
		t.Errorf("entry after the repeat = %+v, want %+v", got, before)
	}
	if c := e.p.Counters(); c.Inserts != 2 || c.StaleAcks != 0 {
		t.Errorf("Counters() = %+v, want 2 inserts (the repeat rewrites the same entry) and no stale ACK", c)
	}
}

// (c) B holds the connection (origin A) and moves it on to C: C's ACK
// answers B's PREPARE, so it goes to B, the entry's target: a hand-over.
// The entry names C, the origin stays A, and a late ACK from B's own
// earlier migration (to A) no longer passes.
func TestRemigrationByTheHolder(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	e.remigrate(ipC, ipB, ipA, k.ip, k.port, portC)
	if got := e.entryOf(k); got.Target != ipC || got.Origin != ipA {
		t.Fatalf("entry after the hand-over = %+v, want target C, origin A", got)
	}
	if got := e.requestGoesTo(k); got != ipC {
		t.Errorf("request goes to %s, want C", ipString(got))
	}
	r, out := e.run(tcpFrame(t, ipC, k.ip, svport, k.port, "PA", []byte("ok")), portC)
	e.want(r, fwd(portClient))
	if got := addr(checkFrame(t, out).ip.SrcIP); got != ipA {
		t.Errorf("C's response leaves as %s, want A", ipString(got))
	}
	// B's first ACK, repeated late: B no longer holds the lease.
	frame := e.ack(ipB, ipA, k.ip, k.port, true)
	r, out = e.run(frame, portB)
	e.staleReply(frame, out, r, portB)
	if got := e.entryOf(k); got.Target != ipC {
		t.Errorf("a late ACK from B re-targeted the entry to %s", ipString(got.Target))
	}
	if c := e.p.Counters(); c.Inserts != 2 || c.StaleAcks != 1 {
		t.Errorf("Counters() = %+v, want 2 inserts, 1 stale ACK", c)
	}
}

// (d) The connection comes home: B holds it (origin A), A is now the least
// loaded, B's PREPARE goes to A, and A's ACK to B hands the entry back to
// A. Requests and responses then pass with A's own address. B's PREPARE
// had also reached C; C's ACK to B finds the entry naming A: stale.
func TestRemigrationBackToTheOrigin(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	e.heartbeatReply(ipA, portA, 1)
	r, out := e.run(e.prepareFrom(ipB, ipA, k.ip, k.port), portB)
	e.want(r, fwd(portA))
	if got := addr(checkFrame(t, out).ip.DstIP); got != ipA {
		t.Fatalf("B's PREPARE went to %s, want A (the least loaded)", ipString(got))
	}
	e.remigrate(ipA, ipB, ipA, k.ip, k.port, portA)
	if got := e.entryOf(k); got.Target != ipA || got.Origin != ipA {
		t.Fatalf("entry after coming home = %+v, want target A, origin A", got)
	}
	if got := e.requestGoesTo(k); got != ipA {
		t.Errorf("request goes to %s, want A", ipString(got))
	}
	r, out = e.run(tcpFrame(t, ipA, k.ip, svport, k.port, "PA", []byte("home")), portA)
	e.want(r, fwd(portClient))
	if got := addr(checkFrame(t, out).ip.SrcIP); got != ipA {
		t.Errorf("A's response leaves as %s, want A", ipString(got))
	}
	frame := e.ackTo(ipC, ipB, ipA, k.ip, k.port, true)
	r, out = e.run(frame, portC)
	e.staleReply(frame, out, r, portC)
	if got := e.entryOf(k); got.Target != ipA {
		t.Errorf("entry target %s after C's ACK, want A", ipString(got.Target))
	}
}

// An ACK addressed to the server the entry names is that server handing
// the connection over: the lease has no epoch, so it cannot tell a stale
// ACK from an earlier migration that was addressed to the same server
// (here B's first ACK to A, arriving after the connection came back to A).
// Such an ACK must have been delayed across a whole migration and back
// (gen/SWITCH.md); this pins what happens then.
func TestLateAckToTheHolderPasses(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	e.remigrate(ipA, ipB, ipA, k.ip, k.port, portA)
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	if got := e.entryOf(k); got.Target != ipB {
		t.Errorf("entry target %s, want B", ipString(got.Target))
	}
}

// (e) A PREPARE_MIG whose key has an entry naming another server than its
// sender belongs to a migration in progress (A resends it: B's ACK was
// lost after the switch installed the entry). It goes to the entry's
// target B, whatever min_workload says, so B ACKs again and no second
// target appears; even an empty register or one naming A itself does not
// turn it into REJECTED.
func TestPrepareResendGoesToTheEntrysTarget(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	for _, tc := range []struct {
		name   string
		holder [4]byte
	}{
		{"another server is the least loaded", ipC},
		{"no server reported", [4]byte{}},
		{"the sender is the least loaded", ipA},
	} {
		if err := e.p.WriteMinWorkload(tc.holder, 1); err != nil {
			t.Fatal(err)
		}
		frame := e.prepare(ipA)
		r, out := e.run(frame, portA)
		e.want(r, fwd(portB))
		d := checkFrame(t, out)
		if got := addr(d.ip.DstIP); got != ipB {
			t.Errorf("%s: the resent PREPARE goes to %s, want B (the entry's target)", tc.name, ipString(got))
		}
		if stage, f := e.migOf(d); stage != "prepare_mig" || f["origin_ip"] != ipU64(ipA) {
			t.Errorf("%s: the resent PREPARE left as %s %v", tc.name, stage, f)
		}
		if m := macOf(portB); !bytes.Equal(d.eth.DstMAC, m[:]) {
			t.Errorf("%s: dst MAC %s, want B's", tc.name, d.eth.DstMAC)
		}
	}
	// B answers it: a repeat, on to A.
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	if c := e.p.Counters(); c.PrepareResends != 3 || c.PrepareRejects != 0 || c.StaleAcks != 0 {
		t.Errorf("Counters() = %+v, want 3 resends, no PREPARE reject, no stale ACK", c)
	}
	// Without a UDP checksum the steered PREPARE keeps none.
	frame := e.prepare(ipA)
	frame[40], frame[41] = 0, 0
	r, out := e.run(frame, portA)
	e.want(r, fwd(portB))
	if out[40] != 0 || out[41] != 0 {
		t.Errorf("UDP checksum %#02x%02x after steering, want 0 (none)", out[40], out[41])
	}
	// Another client port of the same client has no entry: min_workload.
	if err := e.p.WriteMinWorkload(ipC, 1); err != nil {
		t.Fatal(err)
	}
	r, _ = e.run(e.prepareFrom(ipA, ipA, k.ip, k.port+1), portA)
	e.want(r, fwd(portC))
}

// (f) A PREPARE_MIG from the server the entry names is its holder moving
// the connection on: min_workload decides as for a first migration, and
// REJECTED answers it when the holder is itself the least loaded or no
// server reported.
func TestPrepareFromTheHolder(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	e.heartbeatReply(ipC, portC, 3)
	r, out := e.run(e.prepareFrom(ipB, ipA, k.ip, k.port), portB)
	e.want(r, fwd(portC))
	if got := addr(checkFrame(t, out).ip.DstIP); got != ipC {
		t.Errorf("the holder's PREPARE goes to %s, want C (the least loaded)", ipString(got))
	}
	for _, tc := range []struct {
		name   string
		holder [4]byte
	}{{"the holder is the least loaded", ipB}, {"no server reported", [4]byte{}}} {
		if err := e.p.WriteMinWorkload(tc.holder, 1); err != nil {
			t.Fatal(err)
		}
		r, out := e.run(e.prepareFrom(ipB, ipA, k.ip, k.port), portB)
		e.want(r, reply(portB))
		if stage, _ := e.migOf(checkFrame(t, out)); stage != "rejected" {
			t.Errorf("%s: the holder's PREPARE answered %s, want rejected", tc.name, stage)
		}
	}
	if c := e.p.Counters(); c.PrepareResends != 0 || c.PrepareRejects != 2 {
		t.Errorf("Counters() = %+v, want no resend and 2 PREPARE rejects", c)
	}
	if got := e.entryOf(k); got.Target != ipB {
		t.Errorf("a PREPARE changed the entry: %+v", got)
	}
}

// (g) The one-copy invariant holds with the lease: a stale ACK for a key
// that sits below another client's slot leaves it where it is; the level
// that decides a stale ACK still clears a deeper copy of the key; a
// hand-over re-targets the key where it is.
func TestLeaseKeepsOneCopy(t *testing.T) {
	e := newEnv(t)
	if Levels < 2 {
		t.Skip("one directory level")
	}
	l, k := levelZeroPair(t, e)
	e.addClients([]clientKey{l, k})
	e.migrate(ipC, ipA, l.ip, l.port, portC)
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	if got := e.copies(k); len(got) != 1 || got[0] != 1 {
		t.Fatalf("K on levels %v, want [1]", got)
	}
	// C's stale ACK for K: level 0 holds L (another key), level 1 holds K
	// for B: refused, nothing moves.
	frame := e.ack(ipC, ipA, k.ip, k.port, true)
	r, out := e.run(frame, portC)
	e.staleReply(frame, out, r, portC)
	if got := e.copies(k); len(got) != 1 || got[0] != 1 || e.entryOf(k).Target != ipB {
		t.Errorf("after the stale ACK K on levels %v with %+v, want level 1, target B", got, e.entryOf(k))
	}
	if got := e.entryOf(l); got.Target != ipC {
		t.Errorf("L's entry changed: %+v", got)
	}
	// B hands K over to C: re-targeted on level 1.
	e.remigrate(ipC, ipB, ipA, k.ip, k.port, portC)
	if got := e.copies(k); len(got) != 1 || got[0] != 1 || e.entryOf(k).Target != ipC {
		t.Errorf("after the hand-over K on levels %v with %+v, want level 1, target C", got, e.entryOf(k))
	}

	// A second copy, as the control plane may write one: K on every level,
	// level 0 naming B. A stale ACK is decided on level 0, and the deeper
	// copies go all the same.
	m := clientKey{ipClient, cport}
	for lv := 0; lv < Levels; lv++ {
		target := [][4]byte{ipB, ipC}[min(lv, 1)]
		en := Entry{Valid: true, ClientIP: m.ip, ClientPort: m.port, Origin: ipA, Target: target}
		if err := e.p.WriteDirectory(lv, int(mustIndex(t, lv, m.ip, m.port)), en); err != nil {
			t.Fatal(err)
		}
	}
	frame = e.ack(ipC, ipA, m.ip, m.port, true)
	r, out = e.run(frame, portC)
	e.staleReply(frame, out, r, portC)
	if got := e.copies(m); len(got) != 1 || got[0] != 0 {
		t.Errorf("after a stale ACK the key is on levels %v, want [0] only", got)
	}
	if got := e.requestGoesTo(m); got != ipB {
		t.Errorf("request goes to %s, want B", ipString(got))
	}
}

// The lease is checked where the key is found. A fresh insert into an
// empty slot on a level above the key's copy is not checked: that slot is
// written before the copy is reached, each register being accessed once
// per packet (gen/SWITCH.md, "Why these choices"). It needs the slot above
// to empty between the two ACKs of one migration; this pins what happens
// then: the later ACK takes the key, and the copy goes.
func TestFreshSlotAboveTheKeyIsNotLeaseChecked(t *testing.T) {
	e := newEnv(t)
	if Levels < 2 {
		t.Skip("one directory level")
	}
	if !DeleteOnRST {
		t.Skip("nothing but the release would empty the slot above")
	}
	l, k := levelZeroPair(t, e)
	e.addClients([]clientKey{l, k})
	e.migrate(ipC, ipA, l.ip, l.port, portC)
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	e.run(tcpFrame(t, l.ip, ipA, l.port, svport, "RA", nil), portClient) // L's slot empties
	e.migrate(ipC, ipA, k.ip, k.port, portC)
	if got := e.copies(k); len(got) != 1 || got[0] != 0 || e.entryOf(k).Target != ipC {
		t.Errorf("K on levels %v with %+v, want level 0 only, target C", got, e.entryOf(k))
	}
}
