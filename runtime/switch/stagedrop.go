package softswitch

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/capygen/capygen/generated/tcpmig"
)

// StageDrop is a targeted fault: it drops TCPMig datagrams of one stage,
// the first Count of them or all (after the first Pass), so a test can
// lose exactly the message of a migration it means to (a PREPARE_MIG, one
// CONN_STATE fragment, the second migration's CONN_STATE_ACKs)
// where the seeded Rates could only lose a share of everything. It is
// deterministic: the switch counts the matching datagrams in the order it
// receives them.
//
// A datagram is TCPMig as the pipeline recognises it (gen/SWITCH.md step
// 4): IPv4 without options, not a fragment, UDP to tcpmig.UDPPort, the
// whole header in the frame with its magic. The stage and the fragment
// index are read from the header; the checksum is not checked.
type StageDrop struct {
	// Stage is the stage to drop (tcpmig.StagePrepareMig, ...).
	Stage tcpmig.Stage
	// Count is how many matching datagrams are dropped: the first Count
	// the switch sees; DropAll (-1) drops every one.
	Count int
	// Pass is how many matching datagrams go through before the drops
	// begin: 1 spares a first migration and hits the next.
	Pass int
	// OnlyFragment restricts the drop to datagrams whose fragment_index
	// is Fragment (CONN_STATE fragments; other stages always carry 0).
	OnlyFragment bool
	Fragment     uint16
	// Egress drops the datagram as it leaves the switch, after the
	// pipeline acted on it (a PREPARE_MIG_ACK has then installed the
	// directory entry: a loss between the switch and the receiver), and
	// matches the stage the pipeline gave it. The default drops it as it
	// arrives, before the pipeline sees it (a loss between the sender and
	// the switch).
	Egress bool
}

// DropAll as a StageDrop's Count drops every matching datagram.
const DropAll = -1

// String is the drop in the form ParseStageDrop reads:
// STAGE:COUNT[@FRAGMENT][+PASS][/egress], COUNT a number or all.
func (d StageDrop) String() string {
	var b strings.Builder
	b.WriteString(d.Stage.String())
	b.WriteByte(':')
	if d.Count == DropAll {
		b.WriteString("all")
	} else {
		b.WriteString(strconv.Itoa(d.Count))
	}
	if d.OnlyFragment {
		fmt.Fprintf(&b, "@%d", d.Fragment)
	}
	if d.Pass > 0 {
		fmt.Fprintf(&b, "+%d", d.Pass)
	}
	if d.Egress {
		b.WriteString("/egress")
	}
	return b.String()
}

// ParseStageDrop reads STAGE:COUNT[@FRAGMENT][+PASS][/egress]: the stage by
// its spec name (prepare_mig, conn_state, ...) or number, COUNT a positive
// number or all (or -1), FRAGMENT a fragment index, PASS how many matching
// datagrams go through first. For example prepare_mig:1, conn_state_ack:all,
// conn_state:1@2, conn_state_ack:all+1, prepare_mig_ack:1/egress.
func ParseStageDrop(v string) (StageDrop, error) {
	var d StageDrop
	bad := func(format string, a ...any) (StageDrop, error) {
		return StageDrop{}, fmt.Errorf("stage drop %q: %s; write STAGE:COUNT[@FRAGMENT][+PASS][/egress] like prepare_mig:1, conn_state:1@2 or conn_state_ack:all+1",
			v, fmt.Sprintf(format, a...))
	}
	rest := v
	if r, ok := strings.CutSuffix(rest, "/egress"); ok {
		rest, d.Egress = r, true
	} else if r, ok := strings.CutSuffix(rest, "/ingress"); ok {
		rest = r
	}
	if r, pass, ok := strings.Cut(rest, "+"); ok {
		n, err := strconv.Atoi(pass)
		if err != nil || n < 0 {
			return bad("pass %q is not a count of datagrams, 0 or more", pass)
		}
		rest, d.Pass = r, n
	}
	if r, frag, ok := strings.Cut(rest, "@"); ok {
		n, err := strconv.ParseUint(frag, 10, 16)
		if err != nil {
			return bad("fragment %q is not an index in 0..65535", frag)
		}
		rest, d.OnlyFragment, d.Fragment = r, true, uint16(n)
	}
	name, count, ok := strings.Cut(rest, ":")
	if !ok {
		return bad("no COUNT")
	}
	st, err := parseStage(name)
	if err != nil {
		return bad("%v", err)
	}
	d.Stage = st
	switch count {
	case "all", "-1":
		d.Count = DropAll
	default:
		n, err := strconv.Atoi(count)
		if err != nil || n <= 0 {
			return bad("count %q is not a positive number, all or -1", count)
		}
		d.Count = n
	}
	return d, nil
}

// parseStage reads a stage by its spec name or its value.
func parseStage(name string) (tcpmig.Stage, error) {
	var names []string
	for v := tcpmig.Stage(0); v < 16; v++ {
		if !v.Valid() {
			continue
		}
		if v.String() == name || strconv.Itoa(int(v)) == name {
			return v, nil
		}
		names = append(names, v.String())
	}
	return 0, fmt.Errorf("stage %q is not one of %s (or their values)", name, strings.Join(names, ", "))
}

// stageDrop is a StageDrop with its counters; guarded by Switch.mu.
type stageDrop struct {
	StageDrop
	seen, dropped uint64
}

// tcpmigStage returns the stage and fragment index of the TCPMig datagram
// in the Ethernet frame f, and false when f carries none.
func tcpmigStage(f []byte) (tcpmig.Stage, uint16, bool) {
	const eth, ip, udp = 14, 20, 8
	if len(f) < eth+ip+udp+tcpmig.HeaderLen || binary.BigEndian.Uint16(f[12:14]) != etherTypeIPv4 {
		return 0, 0, false
	}
	h := f[eth:]
	if h[0] != 0x45 || h[9] != 17 || binary.BigEndian.Uint16(h[6:8])&0x3fff != 0 {
		return 0, 0, false
	}
	if binary.BigEndian.Uint16(h[ip+2:ip+4]) != tcpmig.UDPPort {
		return 0, 0, false
	}
	m := tcpmig.TCPMig(h[ip+udp:])
	if m.Magic() != tcpmig.MagicValue {
		return 0, 0, false
	}
	return m.Stage(), m.FragmentIndex(), true
}

// dropStage reports whether a stage drop takes f (on egress when egress is
// set), and counts it.
func (s *Switch) dropStage(f []byte, egress bool) bool {
	st, frag, ok := tcpmigStage(f)
	if !ok {
		return false
	}
	for _, d := range s.stageDrops {
		if d.Egress != egress || d.Stage != st || d.OnlyFragment && d.Fragment != frag {
			continue
		}
		d.seen++
		if d.seen > uint64(d.Pass) && (d.Count == DropAll || d.dropped < uint64(d.Count)) {
			d.dropped++
			return true
		}
	}
	return false
}

func checkStageDrops(p *problems, drops []StageDrop) {
	for i, d := range drops {
		label := fmt.Sprintf("StageDrops[%d] (%v)", i, d)
		if !d.Stage.Valid() {
			p.addf("%s: stage %d is not a TCPMig stage; use a tcpmig.Stage constant", label, d.Stage)
		}
		if d.Count == 0 || d.Count < DropAll {
			p.addf("%s: Count %d drops nothing; give a positive count, or DropAll (-1) for every one", label, d.Count)
		}
		if d.Pass < 0 {
			p.addf("%s: Pass %d is negative; give how many matching datagrams go through first, 0 or more", label, d.Pass)
		}
	}
}
