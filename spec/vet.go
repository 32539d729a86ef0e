package spec

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/capygen/capygen/internal/yamlstrict"
)

// Vet returns warnings about a valid spec: choices that are legal but cost
// capacity or correctness in ways an author may not intend. Positions
// point at what to change.
func Vet(s *Spec) []Diagnostic {
	var out []Diagnostic
	warn := func(p Pos, format string, a ...any) {
		out = append(out, Diagnostic{Pos: p, Msg: "warning: " + fmt.Sprintf(format, a...)})
	}
	if d := s.Directory; d != nil && len(d.Levels) > 1 {
		vetHashes(d, warn)
	}
	if d := s.Directory; d != nil {
		for i, l := range d.Levels {
			switch k := ConstantIndexBits(d, l.Hash); {
			case l.Hash.Poly == 0:
				// Load refuses it; a spec built in code can still have it.
				warn(l.Hash.Pos, "directory.levels[%d].hash: poly 0x0 is zero, so the CRC of every key is its init value and every key lands in one slot; use an odd polynomial", i)
			case k > 0:
				warn(l.Hash.Pos, "directory.levels[%d].hash: poly %#x ends in %d zero bits, so %d of the %d index bits never change and only 2^%d of the 2^%d slots are used; use an odd polynomial",
					i, l.Hash.Poly, bits.TrailingZeros64(l.Hash.Poly), k, d.IndexBits, d.IndexBits-k, d.IndexBits)
			}
		}
	}
	if d := s.Directory; d != nil && len(d.DeleteOn) == 0 && d.Release == "" {
		warn(d.deleteOnPos(), "directory.delete_on: is empty and there is no directory.release, so no entry is ever deleted: entries pile up with every migration until each level's slot is taken and every new migration is REJECTED (the authors' switch had this bug); use delete_on: [rst] with release: %s", MessageConnClosed)
	}
	if d := s.Directory; d != nil && len(d.DeleteOn) > 0 && !d.DeletesOn("fin") && d.Release == "" {
		warn(d.deleteOnPos(), "directory.delete_on: without fin and without directory.release, the entry of a migrated connection that closes with FIN is never deleted: entries pile up until every new migration is REJECTED; add release: %s (the server reports each finished connection) or delete on fin", MessageConnClosed)
	}
	if d := s.Directory; d != nil && d.DeletesOn("fin") {
		warn(d.deleteOnPos(), "directory.delete_on: fin deletes the entry at the client's FIN, so the server's remaining segments of a half-closed migrated connection are no longer rewritten; use delete_on: [rst] with release: %s if the application half-closes", MessageConnClosed)
	}
	if h := s.Header; h != nil && len(h.Fields) > 0 && !slices.ContainsFunc(h.Fields, func(f *Field) bool { return f.HasConst }) {
		warn(h.Pos, "header: no field is a constant, so the switch takes every datagram to UDP port %d as TCPMig, and drops a client's as spoofed control; add a magic such as {name: magic, bits: 32, const: 0xCAFEDEAD}", s.Transport.UDPPort)
	}
	if w := s.Workload; w != nil && w.AgeStep == 0 {
		warn(w.Pos, "workload: age_step is 0, so a least-loaded server that dies stays the switch's minimum, and every PREPARE goes to it, until a smaller load is reported, which may be never; add age_step: 1 (gen/SWITCH.md)")
	}
	if p := s.Transport.UDPPort; p != 0 && p < 1024 {
		warn(s.Transport.udpPortPos(), "transport.udp_port: %d is a well-known port (below 1024): servers need privileges to bind it and it may clash with a system service, whose datagrams the switch then parses as TCPMig; use a port of 1024 or above, like 7071", p)
	}
	for _, m := range s.Machines {
		used := map[*Action]bool{}
		handled := map[*Event]bool{}
		for _, t := range m.Transitions {
			handled[t.On] = true
			for _, a := range t.Actions {
				used[a] = true
			}
		}
		for _, ig := range m.Ignores {
			handled[ig.On] = true
		}
		for _, st := range m.States {
			if to := st.Timeout; to != nil {
				used[to.Resend] = true
				for _, a := range to.GiveUp {
					used[a] = true
				}
			}
		}
		for _, a := range m.Actions {
			if !used[a] {
				warn(a.Pos, "machines.%s.actions.%s: no transition or timeout does it; remove it or use it", m.Name, a.Name)
			}
		}
		for _, ev := range m.Events {
			if !handled[ev] && ev.Name != TimeoutEvent {
				warn(ev.Pos, "machines.%s.events.%s: no state handles or ignores it, so it is an error in every state; add a transition or remove it", m.Name, ev.Name)
			}
		}
		for _, st := range m.States {
			if st.Final || st.Timeout != nil {
				continue
			}
			leaves := false
			for _, t := range m.Transitions {
				if t.From == st && t.To != st {
					leaves = true
				}
			}
			if !leaves {
				warn(st.Pos, "machines.%s.states.%s: no transition or timeout leaves this non-final state, so a machine can stay in it forever; add a timeout, a way out, or mark it final", m.Name, st.Name)
			}
		}
	}
	yamlstrict.Sort(out)
	return out
}

// vetHashes warns when levels share a hash. With the authors' scheme (one
// hash for every level) keys that collide on level 0 collide on every
// level, so a slot index holds at most L keys and the extra levels add
// little; the warning prices it with MeasureCapacity, the figures
// `capygen plan` prints for the same shape (authors@1% and capacity@1%
// when every level shares the hash).
func vetHashes(d *Directory, warn func(Pos, string, ...any)) {
	same := map[int]int{} // level -> first level with the same hash
	for i, l := range d.Levels {
		for j := 0; j < i; j++ {
			if SameCRC(l.Hash, d.Levels[j].Hash) {
				same[i] = j
				break
			}
		}
	}
	if len(same) == 0 {
		return
	}
	cost := ""
	if got, alt, names, err := sameHashCost(d); err == nil {
		cost = fmt.Sprintf("; the %d levels of 2^%d slots hold %d entries when 1%% of inserts are rejected, against %d with a distinct hash per level (%s; %.0f%% of the capacity lost; capygen plan measures the same)",
			len(d.Levels), d.IndexBits, got, alt, strings.Join(names, ", "), 100*float64(alt-got)/float64(alt))
	}
	// Point at the first level that repeats an earlier level's hash.
	at, path := d.Pos, "directory.levels"
	for i := range d.Levels {
		if _, ok := same[i]; ok {
			at, path = d.Levels[i].Hash.Pos, fmt.Sprintf("directory.levels[%d].hash", i)
			break
		}
	}
	if len(same) == len(d.Levels)-1 {
		warn(at, "%s: every level uses the same hash %s, so keys that collide on one level collide on all of them and the extra levels add almost nothing%s; give each level its own polynomial",
			path, d.Levels[0].Hash.Name, cost)
		return
	}
	var pairs []string
	for i := range d.Levels {
		if j, ok := same[i]; ok {
			pairs = append(pairs, fmt.Sprintf("%d and %d", j, i))
		}
	}
	warn(at, "%s: levels %s use the same hash, so a key that collides on one collides on the other%s; give each level its own polynomial",
		path, strings.Join(pairs, "; "), cost)
}

// sameHashCost measures d as it is and with a distinct hash per level
// (LevelHashes), with CapacitySeed, and names the distinct hashes.
func sameHashCost(d *Directory) (got, alt int, names []string, err error) {
	own := make([]*CRC, len(d.Levels))
	for i, l := range d.Levels {
		own[i] = l.Hash
	}
	if got, err = MeasureCapacity(own, d.IndexBits, CapacitySeed); err != nil {
		return 0, 0, nil, err
	}
	distinct, err := LevelHashes(d, len(d.Levels), d.IndexBits)
	if err != nil {
		return 0, 0, nil, err
	}
	if alt, err = MeasureCapacity(distinct, d.IndexBits, CapacitySeed); err != nil {
		return 0, 0, nil, err
	}
	for _, c := range distinct {
		names = append(names, c.Name)
	}
	return got, alt, names, nil
}

// ConstantIndexBits is how many of d's index bits c can never change. The
// CRC register shifts left and XORs the polynomial, so when the polynomial
// ends in k zero bits the register's low k bits stay what the first shift
// made them (zero); the index takes the low IndexBits bits of the output,
// which reflection (reversed) takes from the register's top instead.
func ConstantIndexBits(d *Directory, c *CRC) int {
	if c.Poly == 0 {
		return d.IndexBits
	}
	k := bits.TrailingZeros64(c.Poly)
	if !c.Reversed {
		return min(k, d.IndexBits)
	}
	return max(0, d.IndexBits-(c.Width-k))
}

// deleteOnPos is where delete_on is written, else the directory.
func (d *Directory) deleteOnPos() Pos {
	if d.DeleteOnPos.Line > 0 {
		return d.DeleteOnPos
	}
	return d.Pos
}

// udpPortPos is where udp_port is written, else the transport section.
func (t *Transport) udpPortPos() Pos {
	if t.UDPPortPos.Line > 0 {
		return t.UDPPortPos
	}
	return t.Pos
}
