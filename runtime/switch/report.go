package softswitch

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	pipeline "github.com/capygen/capygen/generated/pipeline"
	"github.com/capygen/capygen/runtime/link"
)

// Report is a snapshot of the switch's counters and registers. Its JSON
// form (JSON, or encoding/json) is what capyrun switch writes; String is
// the same for people.
type Report struct {
	// Now is the switch's clock: the latest time Deliver or Advance were
	// given under the simulator; under Run, time since Run started.
	Now      time.Duration  `json:"now_ns"`
	Ports    []PortReport   `json:"ports"`
	Verdicts VerdictReport  `json:"verdicts"`
	Pipeline PipelineReport `json:"pipeline"`
	// Directory is the number of valid slots per level.
	Directory []LevelReport `json:"directory"`
	// Entries are the directory's valid slots (at most MaxReportEntries,
	// by level and index); EntriesOmitted counts the rest.
	Entries        []EntryReport  `json:"entries,omitempty"`
	EntriesOmitted int            `json:"entries_omitted,omitempty"`
	MinWorkload    WorkloadReport `json:"min_workload"`
	Control        *ControlReport `json:"control,omitempty"`
	// Held is the number of frames delay faults hold right now.
	Held int `json:"held"`
	// StageDrops are the targeted TCPMig drops (Config.StageDrops), in
	// their order.
	StageDrops []StageDropReport `json:"stage_drops,omitempty"`
}

// StageDropReport is one StageDrop and what it did.
type StageDropReport struct {
	// Rule is the drop as ParseStageDrop reads it (prepare_mig:1).
	Rule  string `json:"rule"`
	Stage string `json:"stage"`
	// Seen counts the datagrams that matched the rule, Dropped those it
	// dropped.
	Seen    uint64 `json:"seen"`
	Dropped uint64 `json:"dropped"`
}

// PortReport is one port's traffic and faults.
type PortReport struct {
	ID       pipeline.Port `json:"id"`
	Name     string        `json:"name"`
	Role     string        `json:"role"`
	RxFrames uint64        `json:"rx_frames"`
	RxBytes  uint64        `json:"rx_bytes"`
	TxFrames uint64        `json:"tx_frames"`
	TxBytes  uint64        `json:"tx_bytes"`
	// TxErrors counts frames the endpoint refused (too large, closed);
	// they are not in TxFrames.
	TxErrors uint64 `json:"tx_errors"`
	// FlushErrors counts failed kicks of a batching endpoint. Its frames
	// were counted in TxFrames when queued; how many of them the failure
	// lost is the link's TxDropped.
	FlushErrors uint64 `json:"flush_errors"`
	// Ingress and Egress count injected faults.
	Ingress FaultReport `json:"ingress_faults"`
	Egress  FaultReport `json:"egress_faults"`
	// Link is the endpoint's own view, when it keeps one (AF_XDP,
	// memory): RxDropped there is frames lost before the switch saw them.
	Link *LinkReport `json:"link,omitempty"`
}

// FaultReport counts one direction's injected faults.
type FaultReport struct {
	Dropped    uint64 `json:"dropped"`
	Duplicated uint64 `json:"duplicated"`
	Delayed    uint64 `json:"delayed"`
	// Overflow counts delayed frames dropped because MaxHeld were held.
	Overflow uint64 `json:"overflow"`
}

// LinkReport is an endpoint's link.Stats.
type LinkReport struct {
	RxFrames  uint64 `json:"rx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	TxFrames  uint64 `json:"tx_frames"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxDropped uint64 `json:"tx_dropped"`
}

// VerdictReport counts what happened to frames the pipeline processed
// (copies made by ingress duplication count twice).
type VerdictReport struct {
	Processed uint64 `json:"processed"`
	Forwarded uint64 `json:"forwarded"`
	Flooded   uint64 `json:"flooded"`
	Replied   uint64 `json:"replied"`
	// Dropped is the pipeline's drops; Pipeline.Drops has the reasons.
	Dropped uint64 `json:"dropped"`
	// NoEgress counts Forwards to a port id with no endpoint.
	NoEgress uint64 `json:"no_egress"`
	// UnknownIngress counts frames delivered on a port id with no endpoint.
	UnknownIngress uint64 `json:"unknown_ingress"`
}

// PipelineReport is pipeline.Counters with drop reasons by name.
type PipelineReport struct {
	Drops   map[string]uint64 `json:"drops"`
	Hits    uint64            `json:"hits"`
	Inserts uint64            `json:"inserts"`
	// The rejects, by reason: Rejects are PREPARE_MIG_ACKs refused for
	// a full directory, StaleAcks those refused by the lease (another
	// target holds the entry), PrepareRejects PREPARE_MIGs with no
	// least-loaded server to steer to.
	Rejects        uint64 `json:"rejects"`
	StaleAcks      uint64 `json:"stale_acks"`
	PrepareRejects uint64 `json:"prepare_rejects"`
	PrepareResends uint64 `json:"prepare_resends"`
	Deletes        uint64 `json:"deletes"`
	Heartbeats     uint64 `json:"heartbeats"`
}

// LevelReport is one directory level's occupancy.
type LevelReport struct {
	Level int `json:"level"`
	Valid int `json:"valid"`
	Slots int `json:"slots"`
}

// EntryReport is one valid directory slot: the client's connection, the
// server it addresses (origin) and the one serving it now (target).
type EntryReport struct {
	Level  int    `json:"level"`
	Index  int    `json:"index"`
	Client string `json:"client"`
	Origin string `json:"origin"`
	Target string `json:"target"`
}

// MaxReportEntries bounds the directory entries a Report lists.
const MaxReportEntries = 256

// WorkloadReport is the min_workload register.
type WorkloadReport struct {
	// Holder is empty when the register is (holder 0).
	Holder string `json:"holder,omitempty"`
	Load   uint32 `json:"load"`
	Empty  bool   `json:"empty"`
}

// ControlReport is the control address and what the switch answered.
type ControlReport struct {
	Addr string `json:"addr"`
	MAC  string `json:"mac"`
	// ARPReplies and EchoReplies count requests answered; Consumed
	// counts other ARP frames sent to the control MAC, taken off the wire.
	ARPReplies  uint64 `json:"arp_replies"`
	EchoReplies uint64 `json:"echo_replies"`
	Consumed    uint64 `json:"consumed"`
}

// Report takes a snapshot. It reads every directory slot (2^IndexBits per
// level) through the pipeline's control API, a few milliseconds, without
// holding up traffic.
func (s *Switch) Report() Report {
	s.mu.Lock()
	if s.clock != nil {
		s.setNow(s.clock())
	}
	r := Report{
		Now:  s.now,
		Held: s.held.Len(),
		Verdicts: VerdictReport{
			Processed: s.ctr.processed, Forwarded: s.ctr.forwarded, Flooded: s.ctr.flooded,
			Replied: s.ctr.replied, Dropped: s.ctr.dropped, NoEgress: s.ctr.noEgress,
			UnknownIngress: s.ctr.unknownIngress,
		},
	}
	roles := s.p.ReadTables().PortRoles
	for _, p := range s.list {
		role := "none"
		if r, ok := roles[p.id]; ok {
			role = r.String()
		}
		r.Ports = append(r.Ports, PortReport{
			ID: p.id, Name: p.name, Role: role,
			RxFrames: p.c.rxFrames, RxBytes: p.c.rxBytes,
			TxFrames: p.c.txFrames, TxBytes: p.c.txBytes, TxErrors: p.c.txErrors, FlushErrors: p.c.flushErrors,
			Ingress: p.in.c.report(), Egress: p.out.c.report(),
		})
	}
	for _, d := range s.stageDrops {
		r.StageDrops = append(r.StageDrops, StageDropReport{Rule: d.String(), Stage: d.Stage.String(), Seen: d.seen, Dropped: d.dropped})
	}
	if c := s.ctl; c != nil {
		r.Control = &ControlReport{
			Addr: netip.AddrFrom4(c.ip).String(), MAC: s.ControlMAC().String(),
			ARPReplies: c.arp, EchoReplies: c.echo, Consumed: c.consumed,
		}
	}
	s.mu.Unlock()

	// Endpoint stats may take a system call (AF_XDP's XDP_STATISTICS):
	// read them outside the lock.
	for i, p := range s.list {
		if st, ok := p.ep.(interface{ Stats() link.Stats }); ok {
			ls := st.Stats()
			r.Ports[i].Link = &LinkReport{
				RxFrames: ls.RxFrames, RxBytes: ls.RxBytes, RxDropped: ls.RxDropped,
				TxFrames: ls.TxFrames, TxBytes: ls.TxBytes, TxDropped: ls.TxDropped,
			}
		}
	}
	c := s.p.Counters()
	r.Pipeline = PipelineReport{
		Drops: map[string]uint64{}, Hits: c.Hits, Inserts: c.Inserts, Rejects: c.Rejects,
		StaleAcks: c.StaleAcks, PrepareRejects: c.PrepareRejects, PrepareResends: c.PrepareResends,
		Deletes: c.Deletes, Heartbeats: c.Heartbeats,
	}
	for reason, n := range c.Drops {
		if pipeline.DropReason(reason) != pipeline.DropNone {
			r.Pipeline.Drops[pipeline.DropReason(reason).String()] = n
		}
	}
	for l := range pipeline.Levels {
		lr := LevelReport{Level: l, Slots: pipeline.Slots}
		for i := range pipeline.Slots {
			if e, err := s.p.ReadDirectory(l, i); err == nil && e.Valid {
				lr.Valid++
				if len(r.Entries) >= MaxReportEntries {
					r.EntriesOmitted++
					continue
				}
				r.Entries = append(r.Entries, EntryReport{Level: l, Index: i,
					Client: netip.AddrPortFrom(netip.AddrFrom4(e.ClientIP), e.ClientPort).String(),
					Origin: netip.AddrFrom4(e.Origin).String(), Target: netip.AddrFrom4(e.Target).String()})
			}
		}
		r.Directory = append(r.Directory, lr)
	}
	holder, load := s.p.ReadMinWorkload()
	r.MinWorkload = WorkloadReport{Load: load, Empty: holder == [4]byte{}}
	if !r.MinWorkload.Empty {
		r.MinWorkload.Holder = netip.AddrFrom4(holder).String()
	}
	return r
}

func (c faultCounters) report() FaultReport {
	return FaultReport{Dropped: c.dropped, Duplicated: c.duplicated, Delayed: c.delayed, Overflow: c.overflow}
}

// JSON is the report as one line of JSON.
func (r Report) JSON() []byte {
	b, err := json.Marshal(r)
	if err != nil {
		// Every field is a number, a string, a slice or a map of them.
		panic(fmt.Sprintf("softswitch: marshal report: %v", err))
	}
	return b
}

// Drops is the pipeline's total drops.
func (r Report) Drops() uint64 {
	var n uint64
	for _, v := range r.Pipeline.Drops {
		n += v
	}
	return n
}

// FaultDrops is the frames the fault injector dropped, on every port and
// in both directions, overflows and stage drops included.
func (r Report) FaultDrops() uint64 {
	var n uint64
	for _, p := range r.Ports {
		n += p.Ingress.Dropped + p.Egress.Dropped + p.Ingress.Overflow + p.Egress.Overflow
	}
	return n + r.StageDropped()
}

// StageDropped is the TCPMig datagrams the stage drops dropped.
func (r Report) StageDropped() uint64 {
	var n uint64
	for _, d := range r.StageDrops {
		n += d.Dropped
	}
	return n
}

// StageDrop returns the report of the stage drop whose rule is rule.
func (r Report) StageDrop(rule string) (StageDropReport, bool) {
	for _, d := range r.StageDrops {
		if d.Rule == rule {
			return d, true
		}
	}
	return StageDropReport{}, false
}

// Port returns the report of the port named name.
func (r Report) Port(name string) (PortReport, bool) {
	for _, p := range r.Ports {
		if p.Name == name {
			return p, true
		}
	}
	return PortReport{}, false
}

// String renders the report as aligned text: a port table, then one
// line each for verdicts, pipeline counters, drops, directory,
// min_workload and the control address.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "switch report at %v\n", r.Now.Round(time.Microsecond))
	fmt.Fprintf(&b, "  %-8s %-3s %-6s %10s %12s %10s %12s %-11s  %-20s %-20s %s\n",
		"port", "id", "role", "rx", "rx bytes", "tx", "tx bytes", "txerr/flush", "ingress drop/dup/dly", "egress drop/dup/dly", "link rx-dropped/tx-dropped")
	for _, p := range r.Ports {
		lnk := "-"
		if p.Link != nil {
			lnk = fmt.Sprintf("%d/%d", p.Link.RxDropped, p.Link.TxDropped)
		}
		fmt.Fprintf(&b, "  %-8s %-3d %-6s %10d %12d %10d %12d %-11s  %-20s %-20s %s\n",
			p.Name, p.ID, p.Role, p.RxFrames, p.RxBytes, p.TxFrames, p.TxBytes, fmt.Sprintf("%d/%d", p.TxErrors, p.FlushErrors),
			p.Ingress.short(), p.Egress.short(), lnk)
	}
	v := r.Verdicts
	fmt.Fprintf(&b, "  verdicts: processed %d forwarded %d flooded %d replied %d dropped %d no-egress %d unknown-ingress %d\n",
		v.Processed, v.Forwarded, v.Flooded, v.Replied, v.Dropped, v.NoEgress, v.UnknownIngress)
	pc := r.Pipeline
	fmt.Fprintf(&b, "  pipeline: hits %d inserts %d deletes %d heartbeats %d prepare-resends %d\n",
		pc.Hits, pc.Inserts, pc.Deletes, pc.Heartbeats, pc.PrepareResends)
	fmt.Fprintf(&b, "  rejects: directory full %d, stale ack (lease) %d, no least-loaded server %d\n",
		pc.Rejects, pc.StaleAcks, pc.PrepareRejects)
	b.WriteString("  drops:")
	for reason := pipeline.DropNone + 1; int(reason) < pipeline.NumDropReasons; reason++ {
		fmt.Fprintf(&b, " %s %d", reason, pc.Drops[reason.String()])
	}
	b.WriteString("\n  directory:")
	for _, l := range r.Directory {
		fmt.Fprintf(&b, " level %d %d/%d", l.Level, l.Valid, l.Slots)
	}
	for _, e := range r.Entries {
		fmt.Fprintf(&b, "\n    [%d:%5d] client %-21s origin %-15s target %s", e.Level, e.Index, e.Client, e.Origin, e.Target)
	}
	if r.EntriesOmitted > 0 {
		fmt.Fprintf(&b, "\n    ... and %d more", r.EntriesOmitted)
	}
	if r.MinWorkload.Empty {
		fmt.Fprintf(&b, "\n  min_workload: empty (load %#x)\n", r.MinWorkload.Load)
	} else {
		fmt.Fprintf(&b, "\n  min_workload: holder %s load %d\n", r.MinWorkload.Holder, r.MinWorkload.Load)
	}
	if c := r.Control; c != nil {
		fmt.Fprintf(&b, "  control %s (%s): arp replies %d, echo replies %d, consumed %d\n", c.Addr, c.MAC, c.ARPReplies, c.EchoReplies, c.Consumed)
	}
	if r.Held > 0 {
		fmt.Fprintf(&b, "  held by delay faults: %d\n", r.Held)
	}
	for _, d := range r.StageDrops {
		fmt.Fprintf(&b, "  stage drop %s: dropped %d of %d seen\n", d.Rule, d.Dropped, d.Seen)
	}
	return b.String()
}

func (f FaultReport) short() string {
	s := fmt.Sprintf("%d/%d/%d", f.Dropped, f.Duplicated, f.Delayed)
	if f.Overflow > 0 {
		s += fmt.Sprintf(" +%d overflow", f.Overflow)
	}
	return s
}
