package pipeline

import (
	"fmt"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/gen/genfile"
)

// emitPipeline writes pipeline.go: the package doc, the constants, the
// public types, the control plane and the data plane.
func (m *model) emitPipeline(f *jen.File) {
	s := m.s
	f.ImportName(binaryPkg, "binary")
	f.PackageComment(strings.Join([]string{
		fmt.Sprintf("Package pipeline is the Go model of the %s switch program: exactly the", s.Name),
		"semantics of gen/SWITCH.md (and of the generated P4), over packet bytes.",
		"",
		"Process takes an Ethernet frame and its ingress port, rewrites the frame in",
		"place and returns the verdict (Forward, Flood, Reply or Drop) with the egress",
		"port. It never panics and allocates nothing. The control plane (port roles,",
		"hosts, the L2 table, the directory and workload registers) is what",
		"P4Runtime writes and reads on the hardware switch.",
		"",
		"What does not vary with the spec (the frame layout, the rewrites with their",
		"incremental checksums, the exact-match tables) is runtime/genrt/pipe; the",
		"TCPMig header, its stages and lengths are the generated codec's.",
		"",
		"A Pipeline is safe for concurrent use: one mutex serialises Process and",
		"the control plane, as a switch pipeline sees one packet at a time. An",
		"uncontended lock costs a few nanoseconds per packet.",
	}, "\n"))

	m.emitConstants(f)
	m.emitTypes(f)
	m.emitControl(f)
	m.emitProcess(f)
}

func (m *model) emitConstants(f *jen.File) {
	s := m.s
	f.Comment("Fingerprint is the fingerprint of the spec this model was generated from;")
	f.Comment("a runtime refuses a P4 program or peer generated from another spec.")
	f.Const().Id("Fingerprint").Op("=").Lit(s.Fingerprint)
	f.Line()
	genfile.EnforceVersion(f)
	f.Line()
	f.Const().Defs(
		jen.Comment("Levels is the number of directory levels; each has its own CRC."),
		jen.Id("Levels").Op("=").Lit(len(m.levels)),
		jen.Comment("IndexBits is the directory hash width W: each level has 2^W slots."),
		jen.Id("IndexBits").Op("=").Lit(m.indexBits),
		jen.Comment("Slots is the number of slots per level."),
		jen.Id("Slots").Op("=").Lit(1).Op("<<").Id("IndexBits"),
		jen.Comment("UDPPort is the UDP destination port that carries TCPMig."),
		jen.Id("UDPPort").Op("=").Add(m.codecID("UDPPort")),
		jen.Comment("PortBits is the width of a switch port id on the target."),
		jen.Id("PortBits").Op("=").Lit(m.portBits),
		jen.Comment("MaxPorts bounds port ids: valid ports are 0..MaxPorts-1."),
		jen.Id("MaxPorts").Op("=").Lit(1).Op("<<").Id("PortBits"),
		jen.Comment("PortTableSize, HostTableSize and L2TableSize are the sizes of the"),
		jen.Comment("port_role, ipv4_host and l2_forward tables (spec tables.ports, tables.hosts, tables.l2)."),
		jen.Id("PortTableSize").Op("=").Lit(m.tables.Ports),
		jen.Id("HostTableSize").Op("=").Lit(m.tables.Hosts),
		jen.Id("L2TableSize").Op("=").Lit(m.tables.L2),
		jen.Comment("WorkloadBits is the width of the minimum-workload register's load."),
		jen.Id("WorkloadBits").Op("=").Lit(m.workloadBits),
		jen.Comment("EmptyLoad is the load of the empty min_workload register (holder 0): no"),
		jen.Comment("report is larger, so the first heartbeat takes it with the rule"),
		jen.Comment("holder == src || w < load, two comparisons (gen/SWITCH.md)."),
		jen.Id("EmptyLoad").Op("=").Op("0xFFFFFFFF"),
		jen.Comment("AgeStep is what another server's report that does not take min_workload"),
		jen.Comment("adds to the held load, saturating at EmptyLoad (spec workload.age_step;"),
		jen.Comment("0: none), so a holder that stops reporting is replaced in time."),
		jen.Id("AgeStep").Op("=").Lit(int(m.ageStep)),
		jen.Comment("DeleteOnRST and DeleteOnFIN say which TCP flags remove a directory"),
		jen.Comment("entry (spec directory.delete_on)."),
		jen.Id("DeleteOnRST").Op("=").Lit(m.deleteMask&tcpRST != 0),
		jen.Id("DeleteOnFIN").Op("=").Lit(m.deleteMask&tcpFIN != 0),
		jen.Comment("Release names the message whose arrival clears a connection's key from"),
		jen.Comment("every level and is echoed to its sender (spec directory.release); \"\""),
		jen.Comment("when no message does."),
		jen.Id("Release").Op("=").Lit(m.releaseName()),
	)
	f.Line()

	f.Const().Defs(
		jen.Comment("deleteFlags are the TCP flags that remove a directory entry."),
		jen.Id("deleteFlags").Op("=").Add(m.deleteFlags()),
		jen.Comment("indexMask keeps the low IndexBits bits of a CRC."),
		jen.Id("indexMask").Op("=").Id("Slots").Op("-").Lit(1),
		jen.Id("workloadMask").Op("=").Lit(1).Op("<<").Id("WorkloadBits").Op("-").Lit(1),
		jen.Commentf("migOff is where the %s header starts in a frame (after UDP), and", s.Header.Name),
		jen.Comment("migPayload where its message's payload starts."),
		jen.Id("migOff").Op("=").Add(pq("L4Off")).Op("+").Add(pq("UDPLen")),
		jen.Id("migPayload").Op("=").Id("migOff").Op("+").Add(m.codecID("HeaderLen")),
	)
	f.Line()
}

// enum emits a small uint8 enum with names and a String method.
func enum(f *jen.File, typ, doc string, zero string, vals [][3]string) {
	f.Comment(doc)
	f.Type().Id(typ).Uint8()
	f.Line()
	f.Const().DefsFunc(func(g *jen.Group) {
		for i, v := range vals {
			g.Comment(v[2])
			if i == 0 {
				if zero != "" {
					// The zero value stays invalid.
					g.Id(v[0]).Id(typ).Op("=").Iota().Op("+").Lit(1)
				} else {
					g.Id(v[0]).Id(typ).Op("=").Iota()
				}
				continue
			}
			g.Id(v[0])
		}
	})
	f.Line()
	f.Comment("String returns the name gen/SWITCH.md uses for v.")
	f.Func().Params(jen.Id("v").Id(typ)).Id("String").Params().String().Block(
		jen.Switch(jen.Id("v")).BlockFunc(func(g *jen.Group) {
			for _, v := range vals {
				g.Case(jen.Id(v[0])).Return(jen.Lit(v[1]))
			}
		}),
		jen.Return(jen.Qual("fmt", "Sprintf").Call(jen.Lit(typ+"(%d)"), jen.Uint8().Call(jen.Id("v")))),
	)
	f.Line()
}

func (m *model) emitTypes(f *jen.File) {
	f.Comment("Port is a switch port id, below MaxPorts.")
	f.Type().Id("Port").Uint16()
	f.Line()

	enum(f, "Role", "Role is what a port faces; the zero Role is no role.", "x", [][3]string{
		{"RoleClient", "client", "RoleClient ports face clients (port_role 1)."},
		{"RoleServer", "server", "RoleServer ports face servers, the only ones that may send TCPMig (port_role 2)."},
	})
	// Verdict's zero value is invalid: a Result always says what happened.
	enum(f, "Verdict", "Verdict is what happens to a frame; the zero Verdict is invalid.", "x", [][3]string{
		{"Forward", "forward", "Forward sends the frame out of Result.Egress (which may be the ingress: hairpin)."},
		{"Flood", "flood", "Flood sends the frame out of every port but the ingress (P4: multicast group 1)."},
		{"Reply", "reply", "Reply sends the frame back out of the ingress port (Result.Egress)."},
		{"Drop", "drop", "Drop discards the frame for Result.Drop."},
	})
	// The order is gen/SWITCH.md's, and the values those of the P4
	// program's drop_reason_t, so counters read over P4Runtime line up.
	enum(f, "DropReason", "DropReason says why a frame was dropped (counted per reason); the values\nare the P4 program's drop_reason_t.", "", [][3]string{
		{"DropNone", "none", "DropNone is the reason of a frame that was not dropped."},
		{"DropNoRoute", "no_route", "DropNoRoute: the IPv4 destination is not in ipv4_host."},
		{"DropSpoofedControl", "spoofed_control", "DropSpoofedControl: TCPMig from a port whose role is not server."},
		{"DropUnknownPort", "unknown_port", "DropUnknownPort: the ingress port has no role."},
		{"DropBadTCPMig", "bad_tcpmig", "DropBadTCPMig: a TCPMig datagram whose UDP length, or the frame, is shorter than the header plus its stage's fixed payload, or an unknown stage."},
		{"DropMalformed", "malformed", "DropMalformed: the frame ends inside an Ethernet, IPv4, TCP or UDP header (a parser error on the switch)."},
	})
	f.Comment("NumDropReasons sizes Counters.Drops.")
	f.Const().Id("NumDropReasons").Op("=").Int().Call(jen.Id("DropMalformed")).Op("+").Lit(1)
	f.Line()

	f.Comment("Result is the outcome of Process. Egress is the output port for Forward")
	f.Comment("and Reply, and the ingress port (the one to leave out) for Flood.")
	f.Type().Id("Result").Struct(
		jen.Id("Verdict").Id("Verdict"),
		jen.Id("Egress").Id("Port"),
		jen.Id("Drop").Id("DropReason"),
	)
	f.Line()

	f.Comment("Counters are the pipeline's counters since New.")
	f.Type().Id("Counters").Struct(
		jen.Comment("Drops counts dropped frames, indexed by DropReason."),
		jen.Id("Drops").Index(jen.Id("NumDropReasons")).Uint64(),
		jen.Comment("Hits counts TCP segments rewritten by a directory entry."),
		jen.Id("Hits").Uint64(),
		jen.Comment("Inserts counts PREPARE_MIG_ACKs with LOAD whose entry was written: into an empty"),
		jen.Comment("slot, or over the key's own entry by its target (a repeat) or for its holder (a re-migration)."),
		jen.Id("Inserts").Uint64(),
		jen.Comment("Rejects counts PREPARE_MIG_ACKs turned into REJECTED because every level was taken."),
		jen.Id("Rejects").Uint64(),
		jen.Comment("StaleAcks counts PREPARE_MIG_ACKs with LOAD refused because the key's entry names"),
		jen.Comment("another target that the ACK does not go to (the lease): answered REJECTED to their"),
		jen.Comment("sender. P4: cell 0 (DROP_NONE, which no drop uses) of the drops counter."),
		jen.Id("StaleAcks").Uint64(),
		jen.Comment("PrepareRejects counts PREPARE_MIGs answered REJECTED (no least-loaded server, or the sender is it)."),
		jen.Id("PrepareRejects").Uint64(),
		jen.Comment("PrepareResends counts PREPARE_MIGs steered to the target their key's entry already"),
		jen.Comment("names (a resend of a migration in progress) instead of to the least-loaded server."),
		jen.Id("PrepareResends").Uint64(),
		jen.Comment("Deletes counts entries removed by RST or FIN (delete_on) or by the release message (directory.release)."),
		jen.Id("Deletes").Uint64(),
		jen.Comment("Heartbeats counts heartbeat updates answered."),
		jen.Id("Heartbeats").Uint64(),
	)
	f.Line()

	f.Comment("Entry is one directory slot as the control plane reads and writes it.")
	f.Type().Id("Entry").Op("=").Add(pq("Entry"))
	f.Comment("KeyCell and AddrCell are the raw dir<i>_key cell and a slot's dir<i>_origin and dir<i>_target cells.")
	f.Type().Defs(
		jen.Id("KeyCell").Op("=").Add(pq("KeyCell")),
		jen.Id("AddrCell").Op("=").Add(pq("AddrCell")),
	)
	f.Comment("HostAction is an ipv4_host entry's set_host parameters.")
	f.Type().Id("HostAction").Struct(
		jen.Id("Port").Id("Port"),
		jen.Id("MAC").Add(mac6()),
	)
	f.Comment("Tables is a copy of the exact-match tables, keyed as they match.")
	f.Type().Id("Tables").Struct(
		jen.Comment("PortRoles is port_role: ingress port -> set_role."),
		jen.Id("PortRoles").Map(jen.Id("Port")).Id("Role"),
		jen.Comment("Hosts is ipv4_host: IPv4 destination -> set_host."),
		jen.Id("Hosts").Map(ip4()).Id("HostAction"),
		jen.Comment("L2 is l2_forward: Ethernet destination -> set_port."),
		jen.Id("L2").Map(mac6()).Id("Port"),
	)
	f.Line()

	f.Comment("Errors of the control plane (runtime/genrt/pipe's); each call wraps one")
	f.Comment("with the input it refused.")
	f.Var().Defs(
		jen.Comment("ErrTableFull: the table holds its spec size already."),
		jen.Id("ErrTableFull").Op("=").Add(pq("ErrTableFull")),
		jen.Comment("ErrNotFound: a delete names an entry the table does not hold."),
		jen.Id("ErrNotFound").Op("=").Add(pq("ErrNotFound")),
		jen.Comment("ErrOutOfRange: a port, role, level, index or load is outside its range."),
		jen.Id("ErrOutOfRange").Op("=").Add(pq("ErrOutOfRange")),
	)
	f.Line()

	f.Comment("host is an ipv4_host action: the egress port and the next hop's MAC.")
	f.Type().Id("host").Struct(jen.Id("port").Id("Port"), jen.Id("mac").Index(jen.Lit(6)).Byte())
	f.Line()

	f.Comment("Pipeline is the switch: its control-plane tables and its registers.")
	f.Type().Id("Pipeline").Struct(
		jen.Id("mu").Qual("sync", "Mutex"),
		jen.Line().Comment("roles is port_role, indexed by port."),
		jen.Id("roles").Add(pq("Ports")).Index(jen.Id("Role")),
		jen.Comment("hosts is ipv4_host, keyed by the IPv4 destination."),
		jen.Id("hosts").Add(pq("Table")).Index(jen.List(jen.Uint32(), jen.Id("host"))),
		jen.Comment("l2 is l2_forward, keyed by the Ethernet destination."),
		jen.Id("l2").Add(pq("Table")).Index(jen.List(jen.Index(jen.Lit(6)).Byte(), jen.Id("Port"))),
		jen.Line().Comment("dirKey is dir<i>_key; dirAddr holds dir<i>_origin and dir<i>_target."),
		jen.Id("dirKey").Index(jen.Id("Levels")).Index(jen.Id("Slots")).Add(pq("KeyCell")),
		jen.Id("dirAddr").Index(jen.Id("Levels")).Index(jen.Id("Slots")).Add(pq("AddrCell")),
		jen.Comment("dirPort is dir<i>_port: the insert's copy of the key's port, written"),
		jen.Comment("with a fresh key and never cleared (meaningful while the key cell holds an IP)."),
		jen.Id("dirPort").Index(jen.Id("Levels")).Index(jen.Id("Slots")).Uint16(),
		jen.Comment("holder and load are the min_workload register; empty is {0, EmptyLoad}."),
		jen.List(jen.Id("holder"), jen.Id("load")).Uint32(),
		jen.Line().Id("counters").Id("Counters"),
	)
	f.Line()
	f.Comment("New returns a pipeline with empty tables and registers (min_workload holds")
	f.Comment("its initial value {0, EmptyLoad}, as the P4 register does).")
	f.Func().Id("New").Params().Op("*").Id("Pipeline").Block(
		jen.Return(jen.Op("&").Id("Pipeline").Values(jen.Dict{
			jen.Id("roles"): pq("NewPorts").Index(jen.Id("Role")).Call(jen.Id("MaxPorts"), jen.Id("PortTableSize")),
			jen.Id("hosts"): pq("NewTable").Index(jen.List(jen.Uint32(), jen.Id("host"))).Call(jen.Lit("ipv4_host"), jen.Lit("tables.hosts"), jen.Id("HostTableSize")),
			jen.Id("l2"):    pq("NewTable").Index(jen.List(jen.Index(jen.Lit(6)).Byte(), jen.Id("Port"))).Call(jen.Lit("l2_forward"), jen.Lit("tables.l2"), jen.Id("L2TableSize")),
			jen.Id("load"):  jen.Id("EmptyLoad"),
		})),
	)
	f.Line()
}

// releaseName is directory.release's message, or "".
func (m *model) releaseName() string {
	if m.release == nil {
		return ""
	}
	return m.release.Name
}

// deleteFlags is the constant expression of the TCP flags in delete_on.
func (m *model) deleteFlags() *jen.Statement {
	var parts []*jen.Statement
	if m.deleteMask&tcpRST != 0 {
		parts = append(parts, pq("TCPRST"))
	}
	if m.deleteMask&tcpFIN != 0 {
		parts = append(parts, pq("TCPFIN"))
	}
	if len(parts) == 0 {
		return jen.Lit(0)
	}
	x := parts[0]
	for _, p := range parts[1:] {
		x = x.Op("|").Add(p)
	}
	return x
}
