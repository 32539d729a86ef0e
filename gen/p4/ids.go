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
// An id is the object kind's prefix (p4info.proto's P4Ids: 0x01 action,
// 0x02 table, 0x12 counter, 0x16 register) in the top byte and 24 bits
// from the FNV-1a hash of the fully qualified name below it, so ids only
// depend on names. The low 24 bits are kept unique over ALL objects, not
// only per kind, so they stay unique whichever prefix a compiler puts on
// an extern (see the package doc). A collision (or a zero) is resolved by
// probing upwards, with objects taken in name order, so the result is
// deterministic; it only fails when all 2^24 values are taken.
type idTable struct {
	byName map[string]uint32
	kind   map[string]p4configv1.P4Ids_Prefix
}

type named struct {
	kind p4configv1.P4Ids_Prefix
	name string
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
		t.kind[o.name] = o.kind
	}
	return t, nil
}

// id returns the full P4Runtime id of an object.
func (t *idTable) id(name string) (uint32, error) {
	id, ok := t.byName[name]
	if !ok {
		return 0, fmt.Errorf("%w: %s is not a control-plane object of the program", ErrIDs, name)
	}
	return id, nil
}

// annotation is the @id the P4 program carries: the full id for tables and
// actions, the low 24 bits for externs (registers, counters), whose prefix
// the compiler sets.
func (t *idTable) annotation(name string) (string, error) {
	id, err := t.id(name)
	if err != nil {
		return "", err
	}
	switch t.kind[name] {
	case p4configv1.P4Ids_TABLE, p4configv1.P4Ids_ACTION:
		return fmt.Sprintf("@id(0x%08X)", id), nil
	default:
		return fmt.Sprintf("@id(0x%06X)", id&(idSpace-1)), nil
	}
}
