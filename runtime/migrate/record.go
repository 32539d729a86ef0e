package migrate

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Monotonic reads CLOCK_MONOTONIC in nanoseconds. Every process and network
// namespace of a machine shares that clock, so the origin's and the
// target's records of one migration can be subtracted. It is read through
// Go's monotonic time (the vDSO, tens of nanoseconds) from one anchor taken
// with clock_gettime at start: a system call per reading would cost more
// than the phases it times.
func Monotonic() int64 { return monoAnchor + int64(time.Since(monoBase)) }

var monoBase, monoAnchor = func() (time.Time, int64) {
	var ts unix.Timespec
	base := time.Now()
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return base, 0 // never on Linux; records then start at 0
	}
	return base, ts.Nano()
}()

// Role says which side of a migration a record is from.
type Role string

// Roles.
const (
	RoleOrigin Role = "origin"
	RoleTarget Role = "target"
)

// Phase is a point of a migration, timed on the clock of Config.Clock.
type Phase uint8

// Phases, in the order they happen. The origin records the first six, the
// target the rest.
const (
	PhasePrepareSent      Phase = iota // origin: PREPARE_MIG sent
	PhaseAckReceived                   // origin: PREPARE_MIG_ACK received
	PhaseFrozen                        // origin: connection taken out of the stack
	PhaseSerialized                    // origin: TCP and application state serialized
	PhaseStateSent                     // origin: every CONN_STATE fragment sent
	PhaseStateAcked                    // origin: CONN_STATE_ACK received
	PhasePrepareReceived               // target: PREPARE_MIG received
	PhaseAckSent                       // target: PREPARE_MIG_ACK sent
	PhaseStateReassembled              // target: the whole state reassembled
	PhaseRestored                      // target: connection restored and filed
	PhaseReplayed                      // target: held segments replayed
	PhaseStateAckSent                  // target: CONN_STATE_ACK sent
	NumPhases
)

var phaseNames = [NumPhases]string{
	"prepare_sent", "ack_received", "frozen", "serialized", "state_sent", "state_acked",
	"prepare_received", "ack_sent", "state_reassembled", "restored", "replayed", "state_ack_sent",
}

func (p Phase) String() string {
	if p < NumPhases {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", p)
}

// Record is one server's account of one migration.
type Record struct {
	Role   Role
	Origin netip.AddrPort // the connection's address as the client knows it
	Client netip.AddrPort
	// Epoch names the migration among the connection's (the TCPMig epoch).
	Epoch uint8
	// Peer is the target (origin's record) or the sending server (target's).
	Peer   netip.Addr
	Result string // moved, stayed, aborted; accepted, abandoned, refused
	Err    string
	// Start is when the machine was made, and At each phase's time, both on
	// Config.Clock in nanoseconds; 0 is a phase not reached. A phase that
	// repeats (a resend) keeps its first time.
	Start int64
	At    [NumPhases]int64
	// Work is the time this server spent in migration work: the engine's
	// handlers from entry to exit, not the time spent waiting on the
	// network. Origin's plus target's is the migration's host overhead.
	Work       time.Duration
	Retries    int
	StateBytes int // serialized state (origin)
	Fragments  int // CONN_STATE fragments per send (origin)
	Held       int // client segments held (target)
	// HeldOverflow counts segments dropped over the hold bounds.
	HeldOverflow int
	// Steps are the host's own sub-steps, in the order they ran, with
	// their durations: none on the userspace stack; TCP_REPAIR's on the
	// kernel (repair on, queue dumps, refills, repair off...).
	Steps []Step
}

// Step is one host-specific sub-step of a migration and its duration.
type Step struct {
	Name string
	Dur  time.Duration
}

// step records a host sub-step; it is the Host's steps callback.
func (r *Record) step(name string, d time.Duration) {
	r.Steps = append(r.Steps, Step{name, d})
}

func newRecord(role Role, k key, start int64) Record {
	return Record{
		Role:   role,
		Origin: netip.AddrPortFrom(netip.AddrFrom4(k.originIP), k.originPort),
		Client: netip.AddrPortFrom(netip.AddrFrom4(k.clientIP), k.clientPort),
		Epoch:  k.epoch,
		Start:  start,
	}
}

func (r *Record) mark(p Phase, t int64) {
	if r.At[p] == 0 {
		r.At[p] = t
	}
}

// Latency is the end-to-end time of an origin's record: PREPARE_MIG sent
// to CONN_STATE_ACK received; false if the migration did not get there.
func (r *Record) Latency() (time.Duration, bool) {
	a, b := r.At[PhasePrepareSent], r.At[PhaseStateAcked]
	if a == 0 || b == 0 {
		return 0, false
	}
	return time.Duration(b - a), true
}

// Blackout is how long the connection served nobody: the origin froze it
// (Frozen) until the target replayed the held segments (Replayed). It needs
// both servers' records of one migration.
func Blackout(origin, target *Record) (time.Duration, bool) {
	a, b := origin.At[PhaseFrozen], target.At[PhaseReplayed]
	if a == 0 || b == 0 || b < a {
		return 0, false
	}
	return time.Duration(b - a), true
}

// recordJSON is a Record as JSON lines carry it: phases by name, times
// in nanoseconds since the record's start.
type recordJSON struct {
	Role         Role             `json:"role"`
	Origin       string           `json:"origin"`
	Client       string           `json:"client"`
	Epoch        uint8            `json:"epoch"`
	Peer         string           `json:"peer,omitempty"`
	Result       string           `json:"result"`
	Err          string           `json:"error,omitempty"`
	Start        int64            `json:"start_ns"`
	Phases       map[string]int64 `json:"phases_ns"`
	WorkNS       int64            `json:"work_ns"`
	Retries      int              `json:"retries,omitempty"`
	StateBytes   int              `json:"state_bytes,omitempty"`
	Fragments    int              `json:"fragments,omitempty"`
	Held         int              `json:"held,omitempty"`
	HeldOverflow int              `json:"held_overflow,omitempty"`
	Steps        []stepJSON       `json:"steps,omitempty"`
}

type stepJSON struct {
	Name string `json:"name"`
	NS   int64  `json:"ns"`
}

// MarshalJSON writes the record with named phases relative to Start.
func (r Record) MarshalJSON() ([]byte, error) { return r.AppendJSON(nil), nil }

// phasesByName are the phases in their names' order: the order in which
// JSON lines list them (encoding/json's, for a map).
var phasesByName = func() [NumPhases]Phase {
	var ps [NumPhases]Phase
	for i := range ps {
		ps[i] = Phase(i)
	}
	slices.SortFunc(ps[:], func(a, b Phase) int { return strings.Compare(phaseNames[a], phaseNames[b]) })
	return ps
}()

// AppendJSON appends the record as MarshalJSON writes it (the fields of
// recordJSON, in its order), without reflection or a map: a server writes
// one per migration, thousands a second, on the CPUs its event loop uses.
func (r Record) AppendJSON(b []byte) []byte {
	b = append(b, `{"role":`...)
	b = appendJSONString(b, string(r.Role))
	b = append(b, `,"origin":`...)
	b = appendJSONString(b, r.Origin.String())
	b = append(b, `,"client":`...)
	b = appendJSONString(b, r.Client.String())
	b = append(b, `,"epoch":`...)
	b = strconv.AppendUint(b, uint64(r.Epoch), 10)
	if r.Peer.IsValid() {
		b = append(b, `,"peer":`...)
		b = appendJSONString(b, r.Peer.String())
	}
	b = append(b, `,"result":`...)
	b = appendJSONString(b, r.Result)
	if r.Err != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.Err)
	}
	b = append(b, `,"start_ns":`...)
	b = strconv.AppendInt(b, r.Start, 10)
	b = append(b, `,"phases_ns":{`...)
	first := true
	for _, p := range phasesByName {
		if r.At[p] == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, phaseNames[p]...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, r.At[p]-r.Start, 10)
	}
	b = append(b, `},"work_ns":`...)
	b = strconv.AppendInt(b, int64(r.Work), 10)
	for _, f := range []struct {
		name string
		n    int
	}{{"retries", r.Retries}, {"state_bytes", r.StateBytes}, {"fragments", r.Fragments}, {"held", r.Held}, {"held_overflow", r.HeldOverflow}} {
		if f.n != 0 {
			b = append(b, `,"`...)
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = strconv.AppendInt(b, int64(f.n), 10)
		}
	}
	if len(r.Steps) > 0 {
		b = append(b, `,"steps":[`...)
		for i, st := range r.Steps {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendJSONString(b, st.Name)
			b = append(b, `,"ns":`...)
			b = strconv.AppendInt(b, int64(st.Dur), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendJSONString appends s quoted as encoding/json quotes it. Plain
// printable ASCII, what records hold but for some error texts, is copied
// as it is; anything else goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (r *Record) UnmarshalJSON(b []byte) error {
	var j recordJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var err error
	*r = Record{Role: j.Role, Epoch: j.Epoch, Result: j.Result, Err: j.Err, Start: j.Start, Work: time.Duration(j.WorkNS),
		Retries: j.Retries, StateBytes: j.StateBytes, Fragments: j.Fragments, Held: j.Held, HeldOverflow: j.HeldOverflow}
	if r.Origin, err = netip.ParseAddrPort(j.Origin); err != nil {
		return fmt.Errorf("migrate: record origin %q: %w", j.Origin, err)
	}
	if r.Client, err = netip.ParseAddrPort(j.Client); err != nil {
		return fmt.Errorf("migrate: record client %q: %w", j.Client, err)
	}
	for _, st := range j.Steps {
		r.Steps = append(r.Steps, Step{st.Name, time.Duration(st.NS)})
	}
	if j.Peer != "" {
		if r.Peer, err = netip.ParseAddr(j.Peer); err != nil {
			return fmt.Errorf("migrate: record peer %q: %w", j.Peer, err)
		}
	}
	for name, t := range j.Phases {
		i := slices.Index(phaseNames[:], name)
		if i < 0 {
			return fmt.Errorf("migrate: record phase %q is not one of %v", name, phaseNames)
		}
		r.At[i] = r.Start + t
	}
	return nil
}

// Migration is one migration seen from both sides: the origin's record and
// the target's.
type Migration struct {
	Origin, Target Record
}

// HostOverhead is the origin's plus the target's migration work.
func (m *Migration) HostOverhead() time.Duration { return m.Origin.Work + m.Target.Work }

// Pair matches origin records with the target records of the same
// migrations: same connection and epoch, and the target's PREPARE_MIG
// arrived between the origin's PREPARE and its CONN_STATE_ACK. Unmatched
// records are left out. Both lists may come from any number of servers.
func Pair(records []Record) []Migration {
	var origins, targets []Record
	for _, r := range records {
		switch {
		case r.Role == RoleOrigin && r.Result == ResultMoved.String():
			origins = append(origins, r)
		case r.Role == RoleTarget && r.Result == "accepted":
			targets = append(targets, r)
		}
	}
	type conn struct {
		origin, client netip.AddrPort
		epoch          uint8
	}
	byConn := map[conn][]int{}
	for i, t := range targets {
		k := conn{t.Origin, t.Client, t.Epoch}
		byConn[k] = append(byConn[k], i)
	}
	used := make([]bool, len(targets))
	var out []Migration
	for _, o := range origins {
		// From the machine's start, not the PREPARE's mark: a host that
		// transmits inside the send (the kernel's) may have the target
		// receive the PREPARE before the origin marks it sent.
		lo, hi := o.At[PhasePrepareSent], o.At[PhaseStateAcked]
		if o.Start != 0 {
			lo = o.Start
		}
		for _, i := range byConn[conn{o.Origin, o.Client, o.Epoch}] {
			t := targets[i]
			if !used[i] && t.At[PhasePrepareReceived] >= lo && t.At[PhasePrepareReceived] <= hi {
				used[i] = true
				out = append(out, Migration{Origin: o, Target: t})
				break
			}
		}
	}
	return out
}

// Dist summarizes a set of durations.
type Dist struct {
	N                   int
	Mean, P50, P99, Max time.Duration
}

// Quantile is the p-quantile (0 < p <= 1) of sorted ds by nearest rank,
// as Summarize's P50 and P99; 0 for none.
func Quantile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// p*n in floating point may land just above a whole rank (0.55*100
	// is 55.000000000000007): snap it back before the ceiling.
	r := p * float64(len(sorted))
	if rr := math.Round(r); math.Abs(r-rr) < 1e-9*max(1, r) {
		r = rr
	}
	i := int(math.Ceil(r)) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Summarize returns the distribution of ds (which it sorts).
func Summarize(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	slices.Sort(ds)
	var sum float64
	for _, d := range ds {
		sum += float64(d)
	}
	q := func(p float64) time.Duration { return Quantile(ds, p) }
	return Dist{N: len(ds), Mean: time.Duration(sum / float64(len(ds))), P50: q(0.50), P99: q(0.99), Max: ds[len(ds)-1]}
}

func (d Dist) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v mean=%v max=%v", d.N, d.P50, d.P99, d.Mean, d.Max)
}

// Summary is the per-phase and whole-migration distributions of paired
// migrations.
type Summary struct {
	Migrations   int
	HostOverhead Dist // origin work + target work
	OriginWork   Dist
	TargetWork   Dist
	EndToEnd     Dist // PREPARE sent to CONN_STATE_ACK received
	Blackout     Dist // frozen to replayed
	// Phases holds, for each phase after the first, the time from the
	// previous phase of the migration's timeline.
	Phases []PhaseDist
	// Steps are the hosts' own sub-steps (Record.Steps: TCP_REPAIR's on
	// the kernel path, none on the userspace stack), by role and name, in
	// the order they first appear.
	Steps []StepDist
}

// StepDist is the distribution of one host sub-step.
type StepDist struct {
	Role Role
	Name string
	Dist Dist
}

// PhaseDist is the distribution of one step of the timeline.
type PhaseDist struct {
	From, To Phase
	Dist     Dist
}

// timeline is the order phases happen in across both servers.
var timeline = []Phase{
	PhasePrepareSent, PhasePrepareReceived, PhaseAckSent, PhaseAckReceived, PhaseFrozen, PhaseSerialized,
	PhaseStateSent, PhaseStateReassembled, PhaseRestored, PhaseReplayed, PhaseStateAckSent, PhaseStateAcked,
}

// Summarize computes the distributions of ms.
func SummarizeMigrations(ms []Migration) Summary {
	s := Summary{Migrations: len(ms)}
	var host, ow, tw, e2e, bo []time.Duration
	steps := make([][]time.Duration, len(timeline)-1)
	for i := range ms {
		m := &ms[i]
		host = append(host, m.HostOverhead())
		ow = append(ow, m.Origin.Work)
		tw = append(tw, m.Target.Work)
		if d, ok := m.Origin.Latency(); ok {
			e2e = append(e2e, d)
		}
		if d, ok := Blackout(&m.Origin, &m.Target); ok {
			bo = append(bo, d)
		}
		at := func(p Phase) int64 {
			if p <= PhaseStateAcked {
				return m.Origin.At[p]
			}
			return m.Target.At[p]
		}
		for j := 1; j < len(timeline); j++ {
			a, b := at(timeline[j-1]), at(timeline[j])
			if a != 0 && b != 0 {
				steps[j-1] = append(steps[j-1], time.Duration(b-a))
			}
		}
	}
	type stepKey struct {
		role Role
		name string
	}
	var order []stepKey
	byStep := map[stepKey][]time.Duration{}
	for i := range ms {
		for _, r := range []*Record{&ms[i].Origin, &ms[i].Target} {
			for _, st := range r.Steps {
				k := stepKey{r.Role, st.Name}
				if _, ok := byStep[k]; !ok {
					order = append(order, k)
				}
				byStep[k] = append(byStep[k], st.Dur)
			}
		}
	}
	for _, k := range order {
		s.Steps = append(s.Steps, StepDist{Role: k.role, Name: k.name, Dist: Summarize(byStep[k])})
	}
	s.HostOverhead, s.OriginWork, s.TargetWork = Summarize(host), Summarize(ow), Summarize(tw)
	s.EndToEnd, s.Blackout = Summarize(e2e), Summarize(bo)
	for j := 1; j < len(timeline); j++ {
		s.Phases = append(s.Phases, PhaseDist{From: timeline[j-1], To: timeline[j], Dist: Summarize(steps[j-1])})
	}
	return s
}
