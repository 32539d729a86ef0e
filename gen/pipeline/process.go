package pipeline

import (
	"github.com/dave/jennifer/jen"

	"github.com/capygen/capygen/spec"
)

// p.x
func px(names ...string) *jen.Statement {
	s := jen.Id("p")
	for _, n := range names {
		s = s.Dot(n)
	}
	return s
}

// frameU32 is binary.BigEndian.Uint32(f[at:]).
func frameU32(at jen.Code) *jen.Statement {
	return be("Uint32", jen.Id("f").Index(jen.Add(at).Op(":")))
}

// fU16x is binary.BigEndian.Uint16(f[at:]).
func fU16x(at jen.Code) *jen.Statement { return be("Uint16", jen.Id("f").Index(jen.Add(at).Op(":"))) }

func result(verdict string, egress jen.Code) *jen.Statement {
	return jen.Id("Result").Values(jen.Dict{jen.Id("Verdict"): jen.Id(verdict), jen.Id("Egress"): egress})
}

func drop(reason string) *jen.Statement { return jen.Return(jen.Id("drop").Call(jen.Id(reason))) }

// setChecked is pipe.SetChecked on a field of the TCPMig datagram: off is
// the codec's Offset constant of the field (from the start of the TCPMig
// header), f the spec field, whose Offset gives the bit within that byte.
func (m *model) setChecked(off string, f *spec.Field, v jen.Code) *jen.Statement {
	return jen.Qual(pipePkg, "SetChecked").Call(jen.Id("f"), jen.Id("migOff").Op("+").Add(m.codecID(off)), jen.Lit(f.Offset%8), jen.Lit(f.Bits), jen.Uint64().Call(v))
}

// setStage rewrites the stage to the codec's constant for message msg.
func (m *model) setStage(msg *spec.Message) *jen.Statement {
	return m.setChecked("Offset"+m.stage.GoName(), m.stage, m.stageOf(msg))
}

// headerAddr is a header address field as a uint32, read at the codec's
// Offset constant: binary.BigEndian.Uint32(h[tcpmig.OffsetClientIP:]).
func (m *model) headerAddr(f *spec.Field) *jen.Statement {
	return be("Uint32", jen.Id("h").Index(m.codecID("Offset"+f.GoName()).Op(":")))
}

// headerU16 is a 16-bit header field through the view's accessor.
func (m *model) headerU16(f *spec.Field) *jen.Statement {
	x := jen.Id("h").Dot(f.GoName()).Call()
	if f.Type == spec.TypeUint {
		return x
	}
	return jen.Uint16().Call(x)
}

// payloadField reads payload field f of message msg from the frame as a
// uint32, at the codec's Offset constant of the field.
func (m *model) payloadField(msg *spec.Message, f *spec.Field) *jen.Statement {
	at := jen.Id("migOff").Op("+").Add(m.codecID("Offset" + msg.GoName() + f.GoName()))
	if f.Offset%8 == 0 {
		switch f.Bits {
		case 8:
			return jen.Uint32().Call(jen.Id("f").Index(at))
		case 16:
			return jen.Uint32().Call(fU16x(at))
		case 32:
			return frameU32(at)
		}
	}
	return jen.Uint32().Call(jen.Qual(wirePkg, "Field").Call(jen.Id("f").Index(at.Op(":")), jen.Lit(f.Offset%8), jen.Lit(f.Bits)))
}

func (m *model) emitProcess(f *jen.File) {
	f.Comment("Process runs the pipeline of gen/SWITCH.md on frame, which arrived on")
	f.Comment("ingress. It rewrites frame in place, never changing its length, and says")
	f.Comment("where it goes. It never panics and allocates nothing.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("Process").Params(jen.Id("frame").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		px("mu", "Lock").Call(),
		jen.Id("r").Op(":=").Add(px("process")).Call(jen.Id("frame"), jen.Id("ingress")),
		jen.If(jen.Id("r").Dot("Verdict").Op("==").Id("Drop")).Block(
			px("counters", "Drops").Index(jen.Id("r").Dot("Drop")).Op("++"),
		),
		px("mu", "Unlock").Call(),
		jen.Return(jen.Id("r")),
	)
	f.Line()

	f.Func().Id("drop").Params(jen.Id("why").Id("DropReason")).Id("Result").Block(
		jen.Return(jen.Id("Result").Values(jen.Dict{jen.Id("Verdict"): jen.Id("Drop"), jen.Id("Drop"): jen.Id("why")})),
	)
	f.Line()

	f.Comment("process is steps 1 to 6 of gen/SWITCH.md.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("process").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.Comment("0. A frame ending inside a header the switch's parser extracts."),
		jen.If(jen.Qual(pipePkg, "Malformed").Call(jen.Id("f"))).Block(drop("DropMalformed")),
		jen.Comment("1. Ethernet, and the ingress port's role."),
		jen.Id("role").Op(":=").Add(px("roles", "Role")).Call(jen.Int().Call(jen.Id("ingress"))),
		jen.If(jen.Id("role").Op("==").Lit(0)).Block(drop("DropUnknownPort")),
		jen.Comment("2. Not IPv4: bridged by l2_forward."),
		jen.If(jen.Op("!").Qual(pipePkg, "IsIPv4").Call(jen.Id("f"))).Block(jen.Return(px("bridge").Call(jen.Id("f"), jen.Id("ingress")))),
		jen.Comment("3. IPv4 options or a fragment: routed, nothing else."),
		jen.If(jen.Op("!").Qual(pipePkg, "Parsed").Call(jen.Id("f"))).Block(jen.Return(px("route").Call(jen.Id("f")))),
		jen.Switch(jen.Id("f").Index(pq("IPOff").Op("+").Lit(9))).Block(
			jen.Case(pq("ProtoTCP")).Comment("5. TCP: the directory.").Line().Return(px("tcp").Call(jen.Id("f"), jen.Id("role"))),
			jen.Case(pq("ProtoUDP")).Block(
				jen.Comment("4. TCPMig: the UDP port, a whole header in the frame, and its constants."),
				jen.If(fU16x(pq("UDPDst")).Op("==").Id("UDPPort").Op("&&").Len(jen.Id("f")).Op(">=").Id("migPayload").Op("&&").
					Add(m.codecID(m.view)).Call(jen.Id("f").Index(jen.Id("migOff").Op(":"))).Dot("ConstantsOK").Call()).Block(
					jen.Return(px("tcpmig").Call(jen.Id("f"), jen.Id("ingress"), jen.Id("role"))),
				),
			),
		),
		jen.Comment("6. Everything else IPv4: routed. TTL is kept: the switch is a bump in the wire."),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("tcpmig is step 4: a TCPMig message whose header the frame holds. Its")
	f.Comment("length is the UDP length field (padding after the datagram does not")
	f.Comment("count), and the frame must hold its stage's fixed payload too.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("tcpmig").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port"), jen.Id("role").Id("Role")).Id("Result").Block(
		jen.If(jen.Id("role").Op("!=").Id("RoleServer")).Block(drop("DropSpoofedControl")),
		jen.Id("h").Op(":=").Add(m.codecID(m.view)).Call(jen.Id("f").Index(jen.Id("migOff").Op(":"))),
		jen.Id("stage").Op(":=").Id("h").Dot(m.stage.GoName()).Call(),
		jen.List(jen.Id("least"), jen.Id("ok")).Op(":=").Add(m.codecID("MinLen")).Call(jen.Id("stage")),
		jen.Id("least").Op("+=").Add(pq("UDPLen")),
		jen.If(jen.Op("!").Id("ok").Op("||").Int().Call(fU16x(pq("UDPSize"))).Op("<").Id("least").Op("||").Len(jen.Id("f")).Op("<").Add(pq("L4Off")).Op("+").Id("least")).Block(drop("DropBadTCPMig")),
		jen.Switch(jen.Id("stage")).Block(
			jen.Case(m.stageOf(m.heartbeat)).Block(jen.Return(px("heartbeat").Call(jen.Id("f"), jen.Id("ingress")))),
			jen.Case(m.stageOf(m.prepare)).Block(jen.Return(px("prepare").Call(jen.Id("f"), jen.Id("ingress")))),
			jen.Case(m.stageOf(m.ack)).Block(
				jen.If(jen.Id("h").Dot(m.load.GoName()).Call()).Block(jen.Return(px("insert").Call(jen.Id("f"), jen.Id("ingress")))),
			),
			jen.Do(func(st *jen.Statement) {
				if m.release != nil {
					st.Case(m.stageOf(m.release)).Block(jen.Return(px("release").Call(jen.Id("f"), jen.Id("ingress"))))
				}
			}),
		),
		jen.Comment("Every other stage, and an ACK without LOAD, passes unchanged."),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("heartbeat updates min_workload (one RegisterAction, two comparisons: the")
	f.Comment("holder's own report always overwrites, so its load can rise; another")
	f.Comment("server's only when smaller; the empty register holds load 0xFFFFFFFF, so")
	f.Comment("the first report takes it) and answers with the minimum after the update.")
	update := jen.If(px("holder").Op("==").Id("src").Op("||").Id("w").Op("<").Add(px("load"))).Block(
		jen.List(px("holder"), px("load")).Op("=").List(jen.Id("src"), jen.Id("w")),
	)
	if m.ageStep > 0 {
		f.Comment("Any other report ages the held load by AgeStep, saturating (the P4's |+|):")
		f.Comment("a holder that stopped reporting is replaced once its load passes a live")
		f.Comment("server's report.")
		update = update.Else().If(px("load").Op(">").Id("EmptyLoad").Op("-").Id("AgeStep")).Block(
			px("load").Op("=").Id("EmptyLoad"),
		).Else().Block(
			px("load").Op("+=").Id("AgeStep"),
		)
	}
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("heartbeat").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.Id("src").Op(":=").Add(frameU32(pq("IPSrc"))),
		jen.Id("w").Op(":=").Add(m.payloadField(m.heartbeat, m.metric)).Op("&").Id("workloadMask"),
		update,
		px("counters", "Heartbeats").Op("++"),
		jen.Qual(pipePkg, "SwapReply").Call(jen.Id("f")),
		m.setStage(m.response),
		m.setChecked("Offset"+m.response.GoName()+m.reply.GoName(), m.reply, px("load")),
		jen.Return(result("Reply", jen.Id("ingress"))),
	)
	f.Line()

	f.Comment("prepare steers a PREPARE_MIG. min_workload is read first (one access). When")
	f.Comment("the directory holds the PREPARE's key (key_lookup level by level, first hit;")
	f.Comment("that level's addr read once) and the entry's target is not the sender, a")
	f.Comment("migration of it is in progress and this is a resend: it goes to that target,")
	f.Comment("which ACKs again. Otherwise (no entry, or the sender holds it and moves it on)")
	f.Comment("it goes to the least-loaded server, or is answered REJECTED when there is none")
	f.Comment("or the sender is it (it would loop back).")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("prepare").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.Id("least").Op(":=").Add(px("holder")),
		jen.Id("src").Op(":=").Add(frameU32(pq("IPSrc"))),
		jen.Id("h").Op(":=").Add(m.codecID(m.view)).Call(jen.Id("f").Index(jen.Id("migOff").Op(":"))),
		jen.If(
			jen.List(jen.Id("l"), jen.Id("i"), jen.Id("ok")).Op(":=").Add(px("lookup")).Call(m.headerAddr(m.clientIP), m.headerU16(m.clientPort)),
			jen.Id("ok"),
		).Block(
			jen.If(jen.Id("t").Op(":=").Add(px("dirAddr")).Index(jen.Id("l")).Index(jen.Id("i")).Dot("Target"), jen.Id("t").Op("!=").Id("src")).Block(
				px("counters", "PrepareResends").Op("++"),
				jen.Qual(pipePkg, "SetAddr").Call(jen.Id("f"), pq("IPDst"), jen.Id("t"), pq("UDPCsum"), jen.True()),
				jen.Return(px("route").Call(jen.Id("f"))),
			),
		),
		jen.If(jen.Id("least").Op("==").Lit(0).Op("||").Id("least").Op("==").Id("src")).Block(
			px("counters", "PrepareRejects").Op("++"),
			jen.Qual(pipePkg, "SwapReply").Call(jen.Id("f")),
			m.setStage(m.rejected),
			jen.Return(result("Reply", jen.Id("ingress"))),
		),
		jen.Qual(pipePkg, "SetAddr").Call(jen.Id("f"), pq("IPDst"), jen.Id("least"), pq("UDPCsum"), jen.True()),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("insert installs the entry of a PREPARE_MIG_ACK with LOAD: the first level")
	f.Comment("whose slot is empty or holds the key wins (write-if-empty, never over")
	f.Comment("another key), and every later level drops a copy of the key it holds, so")
	f.Comment("a key is on one level at most. An empty slot takes the entry; the key's own")
	f.Comment("entry is rewritten only through addrHandOver, and an ACK it refuses is stale:")
	f.Comment("it goes back to its sender as REJECTED, so that target frees its buffer, and")
	f.Comment("nothing reaches the origin. When every level is taken the ACK becomes")
	f.Comment("REJECTED and still goes to its IPv4 destination, the origin.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("insert").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.Id("h").Op(":=").Add(m.codecID(m.view)).Call(jen.Id("f").Index(jen.Id("migOff").Op(":"))),
		jen.List(jen.Id("ip"), jen.Id("port")).Op(":=").List(m.headerAddr(m.clientIP), m.headerU16(m.clientPort)),
		jen.Id("want").Op(":=").Add(pq("Key").Call(jen.Id("ip"), jen.Id("port"))),
		jen.Id("addr").Op(":=").Add(pq("AddrCell")).Values(jen.Dict{
			jen.Id("Origin"): m.headerAddr(m.originIP),
			jen.Id("Target"): frameU32(pq("IPSrc")),
		}),
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
		jen.List(jen.Id("won"), jen.Id("stale")).Op(":=").List(jen.False(), jen.False()),
		jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
			jen.Id("c").Op(":=").Op("&").Add(px("dirKey")).Index(jen.Id("l")).Index(jen.Id("i")),
			jen.If(jen.Id("won")).Block(
				jen.Comment("A copy on a deeper level (left by an earlier placement) goes;"),
				jen.Comment("its target and origin stay, meaningless without the key (as in the P4)."),
				pq("KeyClear").Call(jen.Id("c"), jen.Id("want")),
				jen.Continue(),
			),
			jen.Switch(jen.Id("seen").Op(":=").Add(pq("KeyInsert")).Call(jen.Id("c"), jen.Id("want")), jen.True()).Block(
				jen.Case(jen.Id("seen").Op("==").Lit(0)).Comment("The slot was empty: a fresh entry.").Line().Add(
					px("dirPort").Index(jen.Id("l")).Index(jen.Id("i")).Op("=").Id("port"),
				).Line().Add(
					px("dirAddr").Index(jen.Id("l")).Index(jen.Id("i")).Op("=").Id("addr"),
				).Line().Id("won").Op("=").True(),
				jen.Case(jen.Id("seen").Op("==").Id("ip").Op("&&").Add(pq("PortHolds")).Call(px("dirPort").Index(jen.Id("l")).Index(jen.Id("i")), jen.Id("port"))).Comment("The key's own entry: the lease decides.").Line().Id("stale").Op("=").Op("!").Add(pq("AddrHandOver")).Call(
					jen.Op("&").Add(px("dirAddr")).Index(jen.Id("l")).Index(jen.Id("i")), jen.Id("addr"), frameU32(pq("IPDst")),
				).Line().Id("won").Op("=").True(),
			),
		),
		jen.Switch().Block(
			jen.Case(jen.Op("!").Id("won")).Block(
				px("counters", "Rejects").Op("++"),
				m.setStage(m.rejected),
				jen.Return(px("route").Call(jen.Id("f"))),
			),
			jen.Case(jen.Id("stale")).Block(
				px("counters", "StaleAcks").Op("++"),
				jen.Qual(pipePkg, "SwapReply").Call(jen.Id("f")),
				m.setStage(m.rejected),
				jen.Return(result("Reply", jen.Id("ingress"))),
			),
		),
		px("counters", "Inserts").Op("++"),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	if m.release != nil {
		f.Commentf("release is %s (directory.release): the server holding a migrated", m.release.Name)
		f.Comment("connection reports it finished. Every level runs key_clear on the key")
		f.Comment("the header names (its target and origin stay: only a key gives them meaning); the")
		f.Comment("datagram goes back to its sender, addresses swapped and the stage kept,")
		f.Comment("as the acknowledgement (no checksum changes). A retry after the key is")
		f.Comment("gone clears nothing and is echoed all the same.")
		f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("release").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
			jen.Id("h").Op(":=").Add(m.codecID(m.view)).Call(jen.Id("f").Index(jen.Id("migOff").Op(":"))),
			jen.List(jen.Id("ip"), jen.Id("port")).Op(":=").List(m.headerAddr(m.clientIP), m.headerU16(m.clientPort)),
			jen.Id("want").Op(":=").Add(pq("Key").Call(jen.Id("ip"), jen.Id("port"))),
			jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
			jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
				jen.If(pq("KeyClear").Call(jen.Op("&").Add(px("dirKey")).Index(jen.Id("l")).Index(jen.Id("i")), jen.Id("want"))).Block(
					px("counters", "Deletes").Op("++"),
				),
			),
			jen.Qual(pipePkg, "SwapReply").Call(jen.Id("f")),
			jen.Return(result("Reply", jen.Id("ingress"))),
		)
		f.Line()
	}

	f.Comment("tcp is step 5: a segment of a migrated connection is rewritten, toward")
	f.Comment("the target (client side) or back to the origin's address (server side),")
	f.Comment("by the first level holding its key. RST or FIN (per delete_on) then")
	f.Comment("removes the key from every level that holds it.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("tcp").Params(jen.Id("f").Index().Byte(), jen.Id("role").Id("Role")).Id("Result").Block(
		jen.List(jen.Id("ip"), jen.Id("port")).Op(":=").List(frameU32(pq("IPDst")), fU16x(pq("L4Off").Op("+").Lit(2))),
		jen.If(jen.Id("role").Op("==").Id("RoleClient")).Block(
			jen.List(jen.Id("ip"), jen.Id("port")).Op("=").List(frameU32(pq("IPSrc")), fU16x(pq("L4Off"))),
		),
		jen.Id("want").Op(":=").Add(pq("Key").Call(jen.Id("ip"), jen.Id("port"))),
		jen.Id("del").Op(":=").Id("f").Index(pq("TCPFlags")).Op("&").Id("deleteFlags").Op("!=").Lit(0),
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
		jen.Id("hit").Op(":=").False(),
		jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
			jen.Id("c").Op(":=").Op("&").Add(px("dirKey")).Index(jen.Id("l")).Index(jen.Id("i")),
			jen.Var().Id("match").Bool(),
			jen.If(jen.Id("del")).Block(
				jen.Id("match").Op("=").Add(pq("KeyClear")).Call(jen.Id("c"), jen.Id("want")),
			).Else().If(jen.Op("!").Id("hit")).Block(
				jen.Id("match").Op("=").Op("*").Id("c").Op("==").Id("want"),
			),
			jen.If(jen.Op("!").Id("match")).Block(jen.Continue()),
			jen.Id("a").Op(":=").Add(px("dirAddr")).Index(jen.Id("l")).Index(jen.Id("i")),
			jen.If(jen.Id("del")).Block(
				px("counters", "Deletes").Op("++"),
			),
			jen.If(jen.Id("hit")).Block(jen.Continue()),
			jen.Id("hit").Op("=").True(),
			jen.If(jen.Id("role").Op("==").Id("RoleClient")).Block(
				jen.Qual(pipePkg, "SetAddr").Call(jen.Id("f"), pq("IPDst"), jen.Id("a").Dot("Target"), pq("TCPCsum"), jen.False()),
			).Else().Block(
				jen.Qual(pipePkg, "SetAddr").Call(jen.Id("f"), pq("IPSrc"), jen.Id("a").Dot("Origin"), pq("TCPCsum"), jen.False()),
			),
			px("counters", "Hits").Op("++"),
		),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("lookup returns the first level (and its slot) holding the client key.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("lookup").Params(jen.Id("ip").Uint32(), jen.Id("port").Uint16()).Params(jen.Id("level").Int(), jen.Id("index").Uint32(), jen.Id("ok").Bool()).Block(
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
		jen.Id("want").Op(":=").Add(pq("Key").Call(jen.Id("ip"), jen.Id("port"))),
		jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
			jen.If(px("dirKey").Index(jen.Id("l")).Index(jen.Id("i")).Op("==").Id("want")).Block(
				jen.Return(jen.Id("l"), jen.Id("i"), jen.True()),
			),
		),
		jen.Return(jen.Lit(0), jen.Lit(0), jen.False()),
	)
	f.Line()

	f.Comment("route is ipv4_host on the IPv4 destination: the egress port, and the next")
	f.Comment("hop's MAC as Ethernet destination.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("route").Params(jen.Id("f").Index().Byte()).Id("Result").Block(
		jen.List(jen.Id("h"), jen.Id("ok")).Op(":=").Add(px("hosts", "Lookup")).Call(frameU32(pq("IPDst"))),
		jen.If(jen.Op("!").Id("ok")).Block(drop("DropNoRoute")),
		jen.Copy(jen.Id("f").Index(jen.Lit(0), jen.Lit(6)), jen.Id("h").Dot("mac").Index(jen.Op(":"))),
		jen.Return(result("Forward", jen.Id("h").Dot("port"))),
	)
	f.Line()

	f.Comment("bridge is step 2: l2_forward for unicast destinations, flood otherwise.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("bridge").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.If(jen.Id("f").Index(jen.Lit(0)).Op("&").Lit(1).Op("==").Lit(0)).Block(
			jen.If(jen.List(jen.Id("port"), jen.Id("ok")).Op(":=").Add(px("l2", "Lookup")).Call(jen.Index(jen.Lit(6)).Byte().Call(jen.Id("f").Index(jen.Lit(0), jen.Lit(6)))), jen.Id("ok")).Block(
				jen.Return(result("Forward", jen.Id("port"))),
			),
		),
		jen.Return(result("Flood", jen.Id("ingress"))),
	)
	f.Line()
}
