package spec

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strings"
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
			if k := ConstantIndexBits(d, l.Hash); k > 0 {
				warn(l.Hash.Pos, "directory.levels[%d].hash: poly %#x ends in %d zero bits, so %d of the %d index bits never change and only 2^%d of the 2^%d slots are used; use an odd polynomial",
					i, l.Hash.Poly, bits.TrailingZeros64(l.Hash.Poly), k, d.IndexBits, d.IndexBits-k, d.IndexBits)
			}
		}
	}
	if d := s.Directory; d != nil && d.DeletesOn("fin") {
		warn(d.Pos, "directory.delete_on: fin deletes the entry at the client's FIN, so the server's remaining segments of a half-closed migrated connection are no longer rewritten; use delete_on: [rst] if the application half-closes")
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
	sortDiagnostics(out)
	return out
}

// vetHashes warns when levels share a hash. With the authors' scheme (one
// hash for every level) keys that collide on level 0 collide on every
// level, so a slot index holds at most L keys and the extra levels add
// little; the warning prices it by inserting seeded random keys.
func vetHashes(d *Directory, warn func(Pos, string, ...any)) {
	same := map[int]int{} // level -> first level with the same hash
	for i, l := range d.Levels {
		for j := 0; j < i; j++ {
			if sameCRC(l.Hash, d.Levels[j].Hash) {
				same[i] = j
				break
			}
		}
	}
	if len(same) == 0 {
		return
	}
	distinct := distinctDirectory(d)
	cost := ""
	if distinct != nil {
		got, alt := Capacity1Pct(d), Capacity1Pct(distinct)
		cost = fmt.Sprintf("; the %d levels of 2^%d slots reach 1%% rejected inserts at %d seeded random client keys, against %d with a distinct hash per level (%.0f%% of the capacity lost)",
			len(d.Levels), d.IndexBits, got, alt, 100*float64(alt-got)/float64(alt))
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

func sameCRC(a, b *CRC) bool {
	return a.Width == b.Width && a.Poly == b.Poly && a.Reversed == b.Reversed && a.Init == b.Init && a.XorOut == b.XorOut
}

// standardCRCs are well-known CRCs of each width with distinct
// polynomials, used to price a same-hash scheme against distinct hashes.
var standardCRCs = map[int][]CRC{
	16: {
		{Name: "crc16_arc", Width: 16, Poly: 0x8005, Reversed: true},
		{Name: "crc16_xmodem", Width: 16, Poly: 0x1021},
		{Name: "crc16_dnp", Width: 16, Poly: 0x3D65, Reversed: true, XorOut: 0xFFFF},
		{Name: "crc16_t10_dif", Width: 16, Poly: 0x8BB7},
		{Name: "crc16_dect_r", Width: 16, Poly: 0x0589, XorOut: 0x0001},
		{Name: "crc16_teledisk", Width: 16, Poly: 0xA097},
		{Name: "crc16_cdma2000", Width: 16, Poly: 0xC867, Init: 0xFFFF},
		{Name: "crc16_profibus", Width: 16, Poly: 0x1DCF, Init: 0xFFFF, XorOut: 0xFFFF},
	},
	32: {
		{Name: "crc32", Width: 32, Poly: 0x04C11DB7, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
		{Name: "crc32c", Width: 32, Poly: 0x1EDC6F41, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
		{Name: "crc32d", Width: 32, Poly: 0xA833982B, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
		{Name: "crc32q", Width: 32, Poly: 0x814141AB},
		{Name: "crc32_autosar", Width: 32, Poly: 0xF4ACFB13, Reversed: true, Init: 0xFFFFFFFF, XorOut: 0xFFFFFFFF},
		{Name: "crc32_cdrom_edc", Width: 32, Poly: 0x8001801B, Reversed: true},
		{Name: "crc32_xfer", Width: 32, Poly: 0x000000AF},
		{Name: "crc32_mef", Width: 32, Poly: 0x741B8CD7, Reversed: true, Init: 0xFFFFFFFF},
	},
}

// distinctDirectory is d with every level given a different standard CRC
// of the first level's width; nil when there are not enough of them.
func distinctDirectory(d *Directory) *Directory {
	std := standardCRCs[d.Levels[0].Hash.Width]
	if len(std) < len(d.Levels) {
		return nil
	}
	alt := *d
	alt.Levels = make([]*Level, len(d.Levels))
	for i := range alt.Levels {
		c := std[i]
		alt.Levels[i] = &Level{Hash: &c}
	}
	return &alt
}

// Capacity1Pct inserts seeded random client keys (IPv4 address and port)
// into d with the write-if-empty policy through d's real hash functions,
// and returns how many were inserted when the rejected ones first exceed
// 1% of all inserts (counted from 100 inserts on, so one early collision
// does not decide). A directory that never gets there returns its slot
// count.
func Capacity1Pct(d *Directory) int {
	rng := rand.New(rand.NewPCG(1, 2))
	slots := d.Entries()
	taken := make([][]bool, len(d.Levels))
	for i := range taken {
		taken[i] = make([]bool, slots)
	}
	total := slots * len(d.Levels)
	failed := 0
	for n := 1; n <= total; n++ {
		// Random 48-bit keys; a repeat is vanishingly rare and would
		// count as an insert of the same key, which write-if-empty allows.
		ip, port := rng.Uint32(), uint16(rng.Uint32())
		addr := [4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}
		placed := false
		for l := range d.Levels {
			if idx := d.Index(l, addr, port); !taken[l][idx] {
				taken[l][idx] = true
				placed = true
				break
			}
		}
		if !placed {
			failed++
		}
		if n >= 100 && failed*100 > n {
			return n
		}
	}
	return total
}
