package control

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	p4v1 "github.com/p4lang/p4runtime/go/p4/v1"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/internal/bytestring"
)

// State is what a person wants to see of a running switch, read through
// P4Runtime alone.
type State struct {
	Ports []Port `json:"ports"`
	Hosts []Host `json:"hosts"`
	// L2 is the l2_forward entries: MAC -> port.
	L2 map[string]uint32 `json:"l2"`
	// Levels is the directory's occupancy, level by level.
	Levels []Level `json:"levels"`
	// Entries is every valid directory entry, by level and index.
	Entries []DirEntry `json:"entries"`
	// MinWorkload is the register; Empty when its holder is zero.
	MinWorkload Workload `json:"min_workload"`
	Empty       bool     `json:"min_workload_empty"`
	// Drops counts dropped frames by reason since the pipeline was
	// committed; StaleAcks is cell 0, PREPARE_MIG_ACKs answered REJECTED.
	Drops     map[string]int64 `json:"drops"`
	StaleAcks int64            `json:"stale_acks"`
}

// Level is one directory level's occupancy.
type Level struct {
	Level int   `json:"level"`
	Used  int   `json:"used"`
	Slots int64 `json:"slots"`
}

// DirEntry is one valid directory slot: the client's connection and the
// server it addresses (origin) and the one serving it now (target).
type DirEntry struct {
	Level  int            `json:"level"`
	Index  int64          `json:"index"`
	Client netip.AddrPort `json:"client"`
	Origin netip.Addr     `json:"origin"`
	Target netip.Addr     `json:"target"`
}

// keyValid is the high half of a used key cell's port word (gen/SWITCH.md).
const keyValid = 1 << 16

// State reads the tables, the directory, min_workload and the drops.
func (c *Client) State(ctx context.Context) (*State, error) {
	x := c.ids
	st := &State{L2: map[string]uint32{}, Drops: map[string]int64{}}
	tables, err := c.read(ctx, tableQuery(x.portRole.id), tableQuery(x.ipv4Host.id), tableQuery(x.l2.id))
	if err != nil {
		return nil, err
	}
	for _, e := range tables {
		te := e.GetTableEntry()
		key := bytestring.Uint(te.GetMatch()[0].GetExact().GetValue())
		params := map[uint32]uint64{}
		for _, p := range te.GetAction().GetAction().GetParams() {
			params[p.GetParamId()] = bytestring.Uint(p.GetValue())
		}
		switch te.GetTableId() {
		case x.portRole.id:
			role := fmt.Sprintf("role(%d)", params[x.portRole.params[0]])
			for name, v := range roles {
				if v == params[x.portRole.params[0]] {
					role = name
				}
			}
			st.Ports = append(st.Ports, Port{ID: uint32(key), Role: role})
		case x.ipv4Host.id:
			st.Hosts = append(st.Hosts, Host{Addr: netip.AddrFrom4(bytestring.IPv4(key)), Port: uint32(params[x.ipv4Host.params[0]]), MAC: MAC(macSlice(params[x.ipv4Host.params[1]]))})
		case x.l2.id:
			st.L2[net.HardwareAddr(macSlice(key)).String()] = uint32(params[x.l2.params[0]])
		}
	}
	slices.SortFunc(st.Ports, func(a, b Port) int { return int(a.ID) - int(b.ID) })
	slices.SortFunc(st.Hosts, func(a, b Host) int { return a.Addr.Compare(b.Addr) })
	for l := range x.dirKey {
		keys, err := c.read(ctx, &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{RegisterId: x.dirKey[l]}}})
		if err != nil {
			return nil, err
		}
		lv := Level{Level: l, Slots: x.dirSlots}
		var used []int64
		cells := map[int64][2]uint64{}
		for _, e := range keys {
			re := e.GetRegisterEntry()
			ip, port, err := c.members(re, fmt.Sprintf("dir%d_key", l))
			if err != nil {
				return nil, err
			}
			if port&keyValid != 0 {
				lv.Used++
				used = append(used, re.GetIndex().GetIndex())
				cells[re.GetIndex().GetIndex()] = [2]uint64{ip, port}
			}
		}
		st.Levels = append(st.Levels, lv)
		if len(used) == 0 {
			continue
		}
		// One wildcard read a register, not one a used slot: a hardware
		// switch syncs its registers for every Read (Stratum does), and a
		// full directory has thousands of slots.
		var ips [2]map[int64]uint64 // origin, target by index
		for j, reg := range [2]struct {
			id   uint32
			name string
		}{{x.dirOrigin[l], "origin"}, {x.dirTarget[l], "target"}} {
			cells, err := c.read(ctx, &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{RegisterId: reg.id}}})
			if err != nil {
				return nil, err
			}
			ips[j] = make(map[int64]uint64, len(used))
			for _, e := range cells {
				re := e.GetRegisterEntry()
				ips[j][re.GetIndex().GetIndex()] = bytestring.Uint(re.GetData().GetBitstring())
			}
		}
		for _, i := range used {
			origin, ok1 := ips[0][i]
			target, ok2 := ips[1][i]
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("control: %s: the reads of dir%d_origin and dir%d_target have no cell %d, which dir%d_key uses", c.target, l, l, i, l)
			}
			k := cells[i]
			st.Entries = append(st.Entries, DirEntry{Level: l, Index: i,
				Client: netip.AddrPortFrom(netip.AddrFrom4(bytestring.IPv4(k[0])), uint16(k[1])),
				Origin: netip.AddrFrom4(bytestring.IPv4(origin)), Target: netip.AddrFrom4(bytestring.IPv4(target))})
		}
	}
	mw, err := c.read(ctx, &p4v1.Entity{Entity: &p4v1.Entity_RegisterEntry{RegisterEntry: &p4v1.RegisterEntry{RegisterId: x.minWorkload, Index: &p4v1.Index{Index: 0}}}})
	if err != nil {
		return nil, err
	}
	if len(mw) == 1 {
		h, load, err := c.members(mw[0].GetRegisterEntry(), "min_workload")
		if err != nil {
			return nil, err
		}
		st.MinWorkload = Workload{Holder: netip.AddrFrom4(bytestring.IPv4(h)), Load: uint32(load)}
		st.Empty = h == 0
	}
	drops, err := c.read(ctx, &p4v1.Entity{Entity: &p4v1.Entity_CounterEntry{CounterEntry: &p4v1.CounterEntry{CounterId: x.drops}}})
	if err != nil {
		return nil, err
	}
	for _, e := range drops {
		ce := e.GetCounterEntry()
		i, n := ce.GetIndex().GetIndex(), ce.GetData().GetPacketCount()
		if i == 0 {
			st.StaleAcks = n
			continue
		}
		st.Drops[pipeline.DropReason(i).String()] = n
	}
	return st, nil
}

// members reads a register cell's two bitstring members. Another shape is
// an error, not zeros, which would pass for an empty cell: Stratum on a
// Tofino serves struct-valued registers as one bitstring (its BfRt
// wrapper reads a single data field), and -show cannot read them there.
func (c *Client) members(re *p4v1.RegisterEntry, name string) (uint64, uint64, error) {
	m := re.GetData().GetStruct().GetMembers()
	if len(m) != 2 || m[0].GetBitstring() == nil || m[1].GetBitstring() == nil {
		return 0, 0, fmt.Errorf("control: %s: %s[%d] reads as %v, not a pair of bitstrings; this server does not serve struct-valued registers (Stratum's BfRt does not), so the directory and min_workload cannot be read through it",
			c.target, name, re.GetIndex().GetIndex(), re.GetData())
	}
	return bytestring.Uint(m[0].GetBitstring()), bytestring.Uint(m[1].GetBitstring()), nil
}

// String prints the state for people.
func (s *State) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ports:")
	for _, p := range s.Ports {
		fmt.Fprintf(&b, " %d=%s", p.ID, p.Role)
	}
	fmt.Fprintf(&b, "\nhosts:\n")
	for _, h := range s.Hosts {
		fmt.Fprintf(&b, "  %-15s port %-3d mac %s\n", h.Addr, h.Port, h.MAC)
	}
	fmt.Fprintf(&b, "directory:")
	for _, l := range s.Levels {
		fmt.Fprintf(&b, " level %d %d/%d", l.Level, l.Used, l.Slots)
	}
	fmt.Fprintln(&b)
	for _, e := range s.Entries {
		fmt.Fprintf(&b, "  [%d:%5d] client %-21s origin %-15s target %s\n", e.Level, e.Index, e.Client, e.Origin, e.Target)
	}
	if s.Empty {
		fmt.Fprintf(&b, "min_workload: empty (load %#x)\n", s.MinWorkload.Load)
	} else {
		fmt.Fprintf(&b, "min_workload: holder %s load %d\n", s.MinWorkload.Holder, s.MinWorkload.Load)
	}
	reasons := make([]string, 0, len(s.Drops))
	for r := range s.Drops {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	fmt.Fprintf(&b, "drops:")
	for _, r := range reasons {
		fmt.Fprintf(&b, " %s %d", r, s.Drops[r])
	}
	fmt.Fprintf(&b, "; rejected stale acks %d\n", s.StaleAcks)
	return b.String()
}
