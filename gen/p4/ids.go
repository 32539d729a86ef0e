package p4

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sort"

	p4configv1 "github.com/p4lang/p4runtime/go/p4/config/v1"
)

// ErrIDs is wrapped when P4Runtime IDs cannot be assigned.
var ErrIDs = errors.New("cannot assign P4Runtime ids")

// idSpace is the number of distinct low-24-bit ids.
const idSpace = 1 << 24

// idTable holds the P4Runtime id of every control-plane object.
//
// Tables and actions: the object kind's prefix (p4info.proto's P4Ids: 0x01
// action, 0x02 table) in the top byte and 24 bits from the FNV-1a hash of
// the fully qualified name below it, so ids only depend on names; the
// program carries them as @ids, which every compiler keeps. A collision (or
// a zero) is resolved by probing upwards, with objects taken in name order,
// so the result is deterministic; it only fails when all 2^24 values are
// taken.
//
// Registers and counters: bf-p4c's Tofino back end ignores an @id on an
// extern instance and names it under the pipeline instance
// (pipe.SwitchIngress.dir0_key), so their ids are computed as it computes
// them (p4c control-plane/p4RuntimeSymbolTable.cpp, computeIdsForSymbols):
// the prefix (0x12 counter, 0x16 register, --p4runtime-force-std-externs)
// over the low 24 bits of the Jenkins one-at-a-time hash of that name,
// probing upwards past taken ids, names in order. The p4info is then the
// one bf-p4c writes, ids and names alike.
type idTable struct {
	byName map[string]uint32
	kind   map[string]p4configv1.P4Ids_Prefix
}

type named struct {
	kind p4configv1.P4Ids_Prefix
	name string
}

// pipeInstance is the program's Pipeline instance (Switch(pipe) main),
// under which bf-p4c names extern instances when hashing their ids.
const pipeInstance = "pipe"

// annotated reports whether objects of kind carry an @id in the program.
func annotated(kind p4configv1.P4Ids_Prefix) bool {
	return kind == p4configv1.P4Ids_TABLE || kind == p4configv1.P4Ids_ACTION
}

func assignIDs(objs []named) (*idTable, error) {
	sorted := append([]named(nil), objs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	t := &idTable{byName: map[string]uint32{}, kind: map[string]p4configv1.P4Ids_Prefix{}}
	taken := map[uint32]string{}
	for _, o := range sorted {
		if prev, dup := t.kind[o.name]; dup {
			return nil, fmt.Errorf("%w: two objects are named %s (%v and %v)", ErrIDs, o.name, prev, o.kind)
		}
		t.kind[o.name] = o.kind
		if !annotated(o.kind) {
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(o.name))
		low := h.Sum32() & (idSpace - 1)
		for probes := 0; low == 0 || taken[low] != ""; probes++ {
			if probes >= idSpace {
				return nil, fmt.Errorf("%w: no free id for %s", ErrIDs, o.name)
			}
			low = (low + 1) & (idSpace - 1)
		}
		taken[low] = o.name
		t.byName[o.name] = uint32(o.kind)<<24 | low
	}
	// Externs, as p4c: every @id is taken before any hash is probed.
	used := map[uint32]bool{}
	for _, id := range t.byName {
		used[id] = true
	}
	for _, o := range sorted {
		if annotated(o.kind) {
			continue
		}
		v := jenkinsOneAtATime(pipeInstance + "." + o.name)
		id := uint32(o.kind)<<24 | v&(idSpace-1)
		for probes := 0; used[id]; probes++ {
			if probes >= idSpace {
				return nil, fmt.Errorf("%w: no free id for %s", ErrIDs, o.name)
			}
			v++
			id = uint32(o.kind)<<24 | v&(idSpace-1)
		}
		used[id] = true
		t.byName[o.name] = id
	}
	return t, nil
}

// jenkinsOneAtATime is p4c's name hash for P4Runtime ids
// (P4RuntimeSymbolTable::jenkinsOneAtATimeHash).
func jenkinsOneAtATime(s string) uint32 {
	var h uint32
	for i := 0; i < len(s); i++ {
		h += uint32(s[i])
		h += h << 10
		h ^= h >> 6
	}
	h += h << 3
	h ^= h >> 11
	h += h << 15
	return h
}

// id returns the full P4Runtime id of an object.
func (t *idTable) id(name string) (uint32, error) {
	id, ok := t.byName[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s is not a control-plane object of the program", ErrIDs, name)
	}
	return id, nil
}

// annotation is the @id the P4 program carries: the full id, for tables
// and actions only (bf-p4c ignores one on an extern, with a warning).
func (t *idTable) annotation(name string) (string, error) {
	id, err := t.id(name)
	if err != nil {
		return "", err
	}
	if !annotated(t.kind[name]) {
		return "", fmt.Errorf("%w: %s is an extern: bf-p4c ignores an @id on it, and its id is computed from its name", ErrIDs, name)
	}
	return fmt.Sprintf("@id(0x%08X)", id), nil
}
