package pipeline

import (
	"fmt"
	"math/rand"
	"testing"
)

type clientKey struct {
	ip   [4]byte
	port uint16
}

func (k clientKey) String() string { return fmt.Sprintf("%s:%d", ipString(k.ip), k.port) }

// copies lists the levels whose slot for k holds k.
func (e *env) copies(k clientKey) []int {
	e.t.Helper()
	var levels []int
	for l := 0; l < Levels; l++ {
		en, err := e.p.ReadDirectory(l, int(mustIndex(e.t, l, k.ip, k.port)))
		if err != nil {
			e.t.Fatal(err)
		}
		if en.Valid && en.ClientIP == k.ip && en.ClientPort == k.port {
			levels = append(levels, l)
		}
	}
	return levels
}

// requestGoesTo sends a data segment from the client k to A and returns
// the server it leaves for, checking the rewrite is consistent.
func (e *env) requestGoesTo(k clientKey) [4]byte {
	e.t.Helper()
	r, out := e.run(tcpFrame(e.t, k.ip, ipA, k.port, svport, "A", nil), portClient)
	dst := addr(checkFrame(e.t, out).ip.DstIP)
	e.want(r, fwd(e.p.hostPort(dst)))
	return dst
}

func (e *env) addClients(keys []clientKey) {
	e.t.Helper()
	for _, k := range keys {
		if err := e.p.SetHost(k.ip, portClient, macOf(portClient)); err != nil {
			e.t.Fatal(err)
		}
	}
}

// closing is the flags of a client segment that deletes its key.
func closing(t *testing.T) string {
	t.Helper()
	switch {
	case DeleteOnFIN:
		return "FA"
	case DeleteOnRST:
		return "RA"
	}
	t.Skip("delete_on is empty: nothing deletes an entry")
	return ""
}

// levelZeroPair returns two keys with the same level-0 slot and different
// level-1 slots.
func levelZeroPair(t *testing.T, e *env) (clientKey, clientKey) {
	t.Helper()
	keys := collidingKeys(e.s, []int{0}, 0x0a4d_0002_9c40, 64)
	if keys == nil {
		t.Skip("no keys collide on level 0")
	}
	k0 := clientKey{}
	k0.ip, k0.port = keyOf(keys[0])
	for _, k := range keys[1:] {
		ip, port := keyOf(k)
		if e.s.Directory.Index(1, ip, port) != e.s.Directory.Index(1, k0.ip, k0.port) && ip != ([4]byte{}) {
			return k0, clientKey{ip, port}
		}
	}
	t.Skip("every key colliding on level 0 also collides on level 1")
	return clientKey{}, clientKey{}
}

// TestStaleCopyAfterDelete is the scenario that made a deleted
// connection's old target come back: K sits on level 1 because L holds its
// level-0 slot; L is deleted; K is migrated again and now lands on level 0.
// The level-1 copy must go with that insert, so K's FIN leaves nothing
// behind and K's later segments are not sent to the old target.
func TestStaleCopyAfterDelete(t *testing.T) {
	e := newEnv(t)
	if Levels < 2 {
		t.Skip("one directory level")
	}
	fin := closing(t)
	l, k := levelZeroPair(t, e)
	e.addClients([]clientKey{l, k})
	e.migrate(ipB, ipA, l.ip, l.port, portB)
	e.migrate(ipB, ipA, k.ip, k.port, portB)
	if got := e.copies(k); len(got) != 1 || got[0] != 1 {
		t.Fatalf("K on levels %v, want [1]", got)
	}
	// L closes: its level-0 slot empties.
	e.run(tcpFrame(t, l.ip, ipA, l.port, svport, fin, nil), portClient)
	if got := e.copies(l); len(got) != 0 {
		t.Fatalf("L still on levels %v after FIN", got)
	}
	// B moves K on to C (C's ACK goes to B, the holder): level 0 takes it,
	// and the level-1 copy goes.
	e.remigrate(ipC, ipB, ipA, k.ip, k.port, portC)
	if got := e.copies(k); len(got) != 1 || got[0] != 0 {
		t.Fatalf("after re-migration K on levels %v, want [0] only", got)
	}
	if got := e.requestGoesTo(k); got != ipC {
		t.Fatalf("K's request goes to %s, want C", ipString(got))
	}
	// K closes: nothing of it may remain, so its next segment goes to the
	// address the client used, not to the old target B.
	e.run(tcpFrame(t, k.ip, ipA, k.port, svport, fin, nil), portClient)
	if got := e.copies(k); len(got) != 0 {
		t.Fatalf("after FIN K still on levels %v", got)
	}
	if got := e.requestGoesTo(k); got != ipA {
		t.Fatalf("after FIN K's request goes to %s, want A (unrewritten)", ipString(got))
	}
}

// TestDeleteClearsEveryLevel: a FIN removes the key wherever it is, even
// from two levels at once (as the control plane may have written them);
// the segment is rewritten by the first.
func TestDeleteClearsEveryLevel(t *testing.T) {
	e := newEnv(t)
	if Levels < 2 {
		t.Skip("one directory level")
	}
	fin := closing(t)
	k := clientKey{ipClient, cport}
	for l, target := range [][4]byte{ipB, ipC} {
		en := Entry{Valid: true, ClientIP: k.ip, ClientPort: k.port, Origin: ipA, Target: target}
		if err := e.p.WriteDirectory(l, int(mustIndex(t, l, k.ip, k.port)), en); err != nil {
			t.Fatal(err)
		}
	}
	r, out := e.run(tcpFrame(t, k.ip, ipA, k.port, svport, fin, nil), portClient)
	e.want(r, fwd(portB))
	if got := addr(checkFrame(t, out).ip.DstIP); got != ipB {
		t.Errorf("closing segment rewritten to %s, want level 0's target B", ipString(got))
	}
	if got := e.copies(k); len(got) != 0 {
		t.Errorf("after %s the key is still on levels %v", fin, got)
	}
	if c := e.p.Counters(); c.Deletes != 2 || c.Hits != 1 {
		t.Errorf("Counters() = %+v, want 2 deletes, 1 hit", c)
	}
}

// TestDirectoryMatchesMap drives random inserts, re-migrations and
// deletes (from either side) over keys that collide heavily, and checks
// after every step that the switch routes every key as a plain map says,
// that a key is on one level at most, and that an insert is refused only
// when every level's slot holds another key.
func TestDirectoryMatchesMap(t *testing.T) {
	e := newEnv(t)
	var keys []clientKey
	add := func(ks []uint64) {
		for _, k := range ks {
			ip, port := keyOf(k)
			if ip != ([4]byte{}) {
				keys = append(keys, clientKey{ip, port})
			}
		}
	}
	// Keys sharing a level-0 slot, and keys sharing every level's slot,
	// so collisions, level fall-back and rejects all happen.
	add(collidingKeys(e.s, []int{0}, 0x0a4d_0003_9c40, 6))
	add(collidingKeys(e.s, allLevels(), 0x0a4d_0004_1f90, Levels+2))
	keys = append(keys, clientKey{ipClient, cport})
	e.addClients(keys)

	steps := 3000
	if testing.Short() {
		steps = 500
	}
	r := rand.New(rand.NewSource(7))
	want := map[clientKey][4]byte{}
	servers := []struct {
		ip   [4]byte
		port Port
	}{{ipB, portB}, {ipC, portC}}
	var rejects, deletes, stale, handovers int
	for step := 0; step < steps; step++ {
		k := keys[r.Intn(len(keys))]
		var what string
		switch op := r.Intn(10); {
		case op < 5:
			s := servers[r.Intn(len(servers))]
			// An ACK to the origin A (a first migration, or a stale ACK
			// when another target holds the key), or to the holder that
			// moves the key on (a re-migration).
			dst := ipA
			if cur, held := want[k]; held && r.Intn(2) == 0 {
				dst = cur
				handovers++
			}
			what = fmt.Sprintf("ACK %s from %s to %s", k, ipString(s.ip), ipString(dst))
			// What gen/SWITCH.md says, from the slots before the ACK: the
			// first level whose slot is empty takes the key; the first
			// that holds it decides by the lease; else every level holds
			// another key and the ACK is refused.
			outcome := "rejected"
			for l := 0; l < Levels; l++ {
				en, _ := e.p.ReadDirectory(l, int(mustIndex(t, l, k.ip, k.port)))
				if !en.Valid {
					outcome = "insert"
					break
				}
				if en.ClientIP == k.ip && en.ClientPort == k.port {
					outcome = "stale"
					if en.Target == s.ip || en.Target == dst {
						outcome = "insert"
					}
					break
				}
			}
			res, out := e.run(e.ackTo(s.ip, dst, ipA, k.ip, k.port, true), s.port)
			stage, _ := e.migOf(checkFrame(t, out))
			switch outcome {
			case "stale":
				// The lease: the entry stays, REJECTED goes back.
				e.want(res, reply(s.port))
				if stage != "rejected" {
					t.Fatalf("step %d: %s: a stale ACK left as %s, want rejected back to its sender", step, what, stage)
				}
				stale++
			case "rejected":
				e.want(res, fwd(e.p.hostPort(dst)))
				if stage != "rejected" {
					t.Fatalf("step %d: %s: every level holds another key, yet the ACK left as %s", step, what, stage)
				}
				if _, held := want[k]; held {
					t.Fatalf("step %d: %s: refused although the key is in the directory", step, what)
				}
				rejects++
			default:
				e.want(res, fwd(e.p.hostPort(dst)))
				if stage != "prepare_mig_ack" {
					t.Fatalf("step %d: %s: left as %s, want the ACK on to %s", step, what, stage, ipString(dst))
				}
				want[k] = s.ip
			}
		case op < 7 && Release != "":
			// The server holding the connection (any server when none
			// does: the release is idempotent) reports it finished.
			from := ipB
			if cur, ok := want[k]; ok {
				from = cur
			}
			what = fmt.Sprintf("%s %s from %s", Release, k, ipString(from))
			res, _ := e.run(e.connClosed(from, ipA, k.ip, k.port), e.p.hostPort(from))
			e.want(res, reply(e.p.hostPort(from)))
			delete(want, k)
			deletes++
		case op < 8 && DeleteOnFIN:
			what = fmt.Sprintf("client FIN %s", k)
			e.run(tcpFrame(t, k.ip, ipA, k.port, svport, "FA", nil), portClient)
			delete(want, k)
			deletes++
		case DeleteOnRST:
			what = fmt.Sprintf("server RST %s", k)
			from := ipB
			if cur, ok := want[k]; ok {
				from = cur
			}
			e.run(tcpFrame(t, from, k.ip, svport, k.port, "R", nil), e.p.hostPort(from))
			delete(want, k)
			deletes++
		default:
			continue
		}
		for _, c := range keys {
			if got := e.copies(c); len(got) > 1 {
				t.Fatalf("step %d (%s): %s on levels %v, want one at most", step, what, c, got)
			}
			dst, ok := want[c]
			if !ok {
				dst = ipA
			}
			if got := e.requestGoesTo(c); got != dst {
				t.Fatalf("step %d (%s): %s's request goes to %s, want %s", step, what, c, ipString(got), ipString(dst))
			}
		}
	}
	if rejects == 0 || deletes == 0 || stale == 0 || handovers == 0 {
		t.Errorf("%d steps made %d rejects, %d deletes, %d stale ACKs and %d hand-overs; the test needs all", steps, rejects, deletes, stale, handovers)
	}
	if c := e.p.Counters(); c.StaleAcks != uint64(stale) || c.Rejects != uint64(rejects) {
		t.Errorf("Counters() = %+v, want %d stale ACKs and %d rejects", c, stale, rejects)
	}
}

// TestInsertSameIPOtherPort: key_insert returns the IP word of the slot,
// and a slot holding the client's IP is a win only when its dir<i>_port
// cell is the client's port; a slot of the same client on another port is
// another key, never overwritten.
func TestInsertSameIPOtherPort(t *testing.T) {
	e := newEnv(t)
	k := clientKey{ipClient, cport}
	other := Entry{Valid: true, ClientIP: ipClient, ClientPort: cport + 1, Origin: ipA, Target: ipC}
	for l := 0; l < Levels; l++ {
		if err := e.p.WriteDirectory(l, int(mustIndex(t, l, k.ip, k.port)), other); err != nil {
			t.Fatal(err)
		}
	}
	r, out := e.run(e.ack(ipB, ipA, k.ip, k.port, true), portB)
	e.want(r, fwd(portA))
	if stage, _ := e.migOf(checkFrame(t, out)); stage != "rejected" {
		t.Fatalf("ACK with every slot held by the same IP on another port became %s, want rejected", stage)
	}
	for l := 0; l < Levels; l++ {
		if got, _ := e.p.ReadDirectory(l, int(mustIndex(t, l, k.ip, k.port))); got != other {
			t.Errorf("level %d now holds %+v, want the other port's entry untouched", l, got)
		}
	}
	// The key itself on the last level: the earlier levels lose, the last
	// one wins as "same key" and is re-targeted, as C, its holder, hands
	// it over to B.
	last := Levels - 1
	own := Entry{Valid: true, ClientIP: k.ip, ClientPort: k.port, Origin: ipA, Target: ipC}
	if err := e.p.WriteDirectory(last, int(mustIndex(t, last, k.ip, k.port)), own); err != nil {
		t.Fatal(err)
	}
	e.remigrate(ipB, ipC, ipA, k.ip, k.port, portB)
	if l, en, ok := e.p.Lookup(k.ip, k.port); !ok || l != last || en.Target != ipB {
		t.Errorf("Lookup = %d, %+v, %v; want level %d re-targeted to B", l, en, ok, last)
	}
}
