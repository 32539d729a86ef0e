package pipeline

import (
	"github.com/dave/jennifer/jen"
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

func result(verdict string, egress jen.Code) *jen.Statement {
	return jen.Id("Result").Values(jen.Dict{jen.Id("Verdict"): jen.Id(verdict), jen.Id("Egress"): egress})
}

func drop(reason string) *jen.Statement { return jen.Return(jen.Id("drop").Call(jen.Id(reason))) }

// setStage is setChecked(f, migOff, <stage bit>, <stage bits>, v).
func (m *model) setStage(v string) *jen.Statement {
	return jen.Id("setChecked").Call(jen.Id("f"), jen.Id("migOff"), jen.Lit(m.stage.Offset), jen.Lit(m.stage.Bits), jen.Id(v))
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

	fU16 := func(at jen.Code) *jen.Statement { return be("Uint16", jen.Id("f").Index(jen.Add(at).Op(":"))) }
	f.Comment("process is steps 1 to 6 of gen/SWITCH.md.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("process").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.Comment("0. A frame ending inside a header the switch's parser extracts."),
		jen.If(jen.Id("malformed").Call(jen.Id("f"))).Block(drop("DropMalformed")),
		jen.Comment("1. Ethernet, and the ingress port's role."),
		jen.If(jen.Int().Call(jen.Id("ingress")).Op(">=").Id("MaxPorts").Op("||").Add(px("roles")).Index(jen.Id("ingress")).Op("==").Lit(0)).Block(drop("DropUnknownPort")),
		jen.Id("role").Op(":=").Add(px("roles")).Index(jen.Id("ingress")),
		jen.Comment("2. Not IPv4: bridged by l2_forward."),
		jen.If(fU16(jen.Id("ethType")).Op("!=").Id("typeIPv4")).Block(jen.Return(px("bridge").Call(jen.Id("f"), jen.Id("ingress")))),
		jen.Comment("3. IPv4 options or a fragment: routed, nothing else."),
		jen.If(jen.Id("f").Index(jen.Id("ipOff")).Op("&").Lit(0x0f).Op("!=").Lit(5).Op("||").Add(fU16(jen.Id("ipOff").Op("+").Lit(6))).Op("&").Lit(0x3fff).Op("!=").Lit(0)).Block(
			jen.Return(px("route").Call(jen.Id("f"))),
		),
		jen.Switch(jen.Id("f").Index(jen.Id("ipOff").Op("+").Lit(9))).Block(
			jen.Case(jen.Id("protoTCP")).Comment("5. TCP: the directory.").Line().Return(px("tcp").Call(jen.Id("f"), jen.Id("role"))),
			jen.Case(jen.Id("protoUDP")).Block(
				jen.Comment("4. TCPMig: the UDP port, a whole header in the frame, and its constants."),
				jen.If(jen.Add(fU16(jen.Id("l4Off").Op("+").Lit(2))).Op("==").Id("UDPPort").Op("&&").Len(jen.Id("f")).Op(">=").Id("migPayload").Op("&&").Id("migConstOK").Call(jen.Id("f").Index(jen.Id("migOff").Op(":")))).Block(
					jen.Return(px("tcpmig").Call(jen.Id("f"), jen.Id("ingress"), jen.Id("role"))),
				),
			),
		),
		jen.Comment("6. Everything else IPv4: routed. TTL is kept: the switch is a bump in the wire."),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("malformed says whether f ends inside a header the switch's parser")
	f.Comment("extracts: Ethernet; IPv4 (20 bytes); TCP (20) or UDP (8) after an IPv4")
	f.Comment("header without options that is not a fragment. The P4 parser stops there")
	f.Comment("with PARSER_ERROR_PARTIAL_HDR.")
	f.Func().Id("malformed").Params(jen.Id("f").Index().Byte()).Bool().Block(
		jen.If(jen.Len(jen.Id("f")).Op("<").Id("ethLen")).Block(jen.Return(jen.True())),
		jen.If(fU16(jen.Id("ethType")).Op("!=").Id("typeIPv4")).Block(jen.Return(jen.False())),
		jen.If(jen.Len(jen.Id("f")).Op("<").Id("l4Off")).Block(jen.Return(jen.True())),
		jen.If(jen.Id("f").Index(jen.Id("ipOff")).Op("&").Lit(0x0f).Op("!=").Lit(5).Op("||").Add(fU16(jen.Id("ipOff").Op("+").Lit(6))).Op("&").Lit(0x3fff).Op("!=").Lit(0)).Block(
			jen.Return(jen.False()),
		),
		jen.Switch(jen.Id("f").Index(jen.Id("ipOff").Op("+").Lit(9))).Block(
			jen.Case(jen.Id("protoTCP")).Block(jen.Return(jen.Len(jen.Id("f")).Op("<").Id("l4Off").Op("+").Id("tcpLen"))),
			jen.Case(jen.Id("protoUDP")).Block(jen.Return(jen.Len(jen.Id("f")).Op("<").Id("l4Off").Op("+").Id("udpLen"))),
		),
		jen.Return(jen.False()),
	)
	f.Line()

	f.Comment("migConstOK checks the header's constant fields (the magic number).")
	f.Func().Id("migConstOK").Params(jen.Id("h").Index().Byte()).Bool().BlockFunc(func(g *jen.Group) {
		if len(m.consts) == 0 {
			g.Return(jen.True())
			return
		}
		var cond *jen.Statement
		for _, c := range m.consts {
			x := readField("h", c, "").Op("==").Add(hex(c.Const, (c.Bits+3)/4))
			if cond == nil {
				cond = x
			} else {
				cond = cond.Op("&&").Add(x)
			}
		}
		g.Return(cond)
	})
	f.Line()

	f.Comment("tcpmig is step 4: a TCPMig message whose header the frame holds. Its")
	f.Comment("length is the UDP length field (padding after the datagram does not")
	f.Comment("count), and the frame must hold its stage's fixed payload too.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("tcpmig").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port"), jen.Id("role").Id("Role")).Id("Result").Block(
		jen.If(jen.Id("role").Op("!=").Id("RoleServer")).Block(drop("DropSpoofedControl")),
		jen.Id("h").Op(":=").Id("f").Index(jen.Id("migOff").Op(":")),
		jen.Id("stage").Op(":=").Add(readField("h", m.stage, "uint8")),
		jen.List(jen.Id("need"), jen.Id("ok")).Op(":=").Id("stagePayload").Call(jen.Id("stage")),
		jen.Id("least").Op(":=").Id("udpLen").Op("+").Id("migHeaderLen").Op("+").Id("need"),
		jen.If(jen.Op("!").Id("ok").Op("||").Int().Call(fU16(jen.Id("l4Off").Op("+").Lit(4))).Op("<").Id("least").Op("||").Len(jen.Id("f")).Op("<").Id("l4Off").Op("+").Id("least")).Block(drop("DropBadTCPMig")),
		jen.Switch(jen.Id("stage")).Block(
			jen.Case(jen.Id("stageHeartbeat")).Block(jen.Return(px("heartbeat").Call(jen.Id("f"), jen.Id("ingress")))),
			jen.Case(jen.Id("stagePrepare")).Block(jen.Return(px("prepare").Call(jen.Id("f"), jen.Id("ingress")))),
			jen.Case(jen.Id("stageAck")).Block(
				jen.If(readField("h", m.load, "uint8").Op("!=").Lit(0)).Block(jen.Return(px("insert").Call(jen.Id("f"), jen.Id("ingress")))),
			),
			jen.Do(func(st *jen.Statement) {
				if m.release != nil {
					st.Case(jen.Id("stageRelease")).Block(jen.Return(px("release").Call(jen.Id("f"), jen.Id("ingress"))))
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
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("heartbeat").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.Id("src").Op(":=").Add(frameU32(jen.Id("ipSrc"))),
		jen.Id("pl").Op(":=").Id("f").Index(jen.Id("migPayload").Op(":")),
		jen.Id("w").Op(":=").Add(readField("pl", m.metric, "uint32").Op("&").Id("workloadMask")),
		jen.If(px("holder").Op("==").Id("src").Op("||").Id("w").Op("<").Add(px("load"))).Block(
			jen.List(px("holder"), px("load")).Op("=").List(jen.Id("src"), jen.Id("w")),
		),
		px("counters", "Heartbeats").Op("++"),
		jen.Id("swapReply").Call(jen.Id("f")),
		m.setStage("stageResponse"),
		jen.Id("setChecked").Call(jen.Id("f"), jen.Id("migPayload"), jen.Lit(m.reply.Offset), jen.Lit(m.reply.Bits), jen.Uint64().Call(px("load"))),
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
		jen.Id("src").Op(":=").Add(frameU32(jen.Id("ipSrc"))),
		jen.Id("h").Op(":=").Id("f").Index(jen.Id("migOff").Op(":")),
		jen.If(
			jen.List(jen.Id("l"), jen.Id("i"), jen.Id("ok")).Op(":=").Add(px("lookup")).Call(readField("h", m.clientIP, "uint32"), readField("h", m.clientPort, "uint16")),
			jen.Id("ok"),
		).Block(
			jen.If(jen.Id("t").Op(":=").Add(px("dirAddr")).Index(jen.Id("l")).Index(jen.Id("i")).Dot("target"), jen.Id("t").Op("!=").Id("src")).Block(
				px("counters", "PrepareResends").Op("++"),
				jen.Id("setAddr").Call(jen.Id("f"), jen.Id("ipDst"), jen.Id("t"), jen.Id("udpCsum"), jen.True()),
				jen.Return(px("route").Call(jen.Id("f"))),
			),
		),
		jen.If(jen.Id("least").Op("==").Lit(0).Op("||").Id("least").Op("==").Id("src")).Block(
			px("counters", "PrepareRejects").Op("++"),
			jen.Id("swapReply").Call(jen.Id("f")),
			m.setStage("stageRejected"),
			jen.Return(result("Reply", jen.Id("ingress"))),
		),
		jen.Id("setAddr").Call(jen.Id("f"), jen.Id("ipDst"), jen.Id("least"), jen.Id("udpCsum"), jen.True()),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("keyInsert is the dir<i>_key_insert RegisterAction (two comparisons): an")
	f.Comment("empty slot takes the key and returns 0; a slot holding the client's IP")
	f.Comment("returns its port word, untouched; any other returns 1, which no port word")
	f.Comment("equals. The caller's gateway decides: won = seen == 0 || seen == want.port.")
	f.Func().Id("keyInsert").Params(jen.Id("c").Op("*").Id("keyCell"), jen.Id("want").Id("keyCell")).Parens(jen.Id("seen").Uint32()).Block(
		jen.If(jen.Id("c").Dot("port").Op("==").Lit(0)).Block(
			jen.Op("*").Id("c").Op("=").Id("want"),
			jen.Return(jen.Lit(0)),
		),
		jen.If(jen.Id("c").Dot("ip").Op("==").Id("want").Dot("ip")).Block(jen.Return(jen.Id("c").Dot("port"))),
		jen.Return(jen.Lit(1)),
	)
	f.Line()

	f.Comment("keyClear is the dir<i>_key_clear RegisterAction (two comparisons): it")
	f.Comment("empties the slot when it holds the key, and says whether it did.")
	f.Func().Id("keyClear").Params(jen.Id("c").Op("*").Id("keyCell"), jen.Id("want").Id("keyCell")).Bool().Block(
		jen.If(jen.Id("c").Dot("ip").Op("==").Id("want").Dot("ip").Op("&&").Id("c").Dot("port").Op("==").Id("want").Dot("port")).Block(
			jen.Op("*").Id("c").Op("=").Id("keyCell").Values(),
			jen.Return(jen.True()),
		),
		jen.Return(jen.False()),
	)
	f.Line()

	f.Comment("addrHandOver is the dir<i>_addr_hand_over RegisterAction (two comparisons):")
	f.Comment("the entry is a lease, so an ACK may rewrite the key's existing entry only when")
	f.Comment("its stored target is the ACK's sender (the same target again: a repeat) or the")
	f.Comment("ACK's destination (the holder that sent the PREPARE hands the connection over).")
	f.Comment("It says whether it wrote. It keeps the stored origin (a connection's origin never")
	f.Comment("changes), so the stateful ALU reads two packet values, IPv4 src and dst, as a")
	f.Comment("Tofino-1 SALU must.")
	f.Func().Id("addrHandOver").Params(jen.Id("c").Op("*").Id("addrCell"), jen.Id("a").Id("addrCell"), jen.Id("dst").Uint32()).Bool().Block(
		jen.If(jen.Id("c").Dot("target").Op("==").Id("a").Dot("target").Op("||").Id("c").Dot("target").Op("==").Id("dst")).Block(
			jen.Id("c").Dot("target").Op("=").Id("a").Dot("target"),
			jen.Return(jen.True()),
		),
		jen.Return(jen.False()),
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
		jen.Id("h").Op(":=").Id("f").Index(jen.Id("migOff").Op(":")),
		jen.List(jen.Id("ip"), jen.Id("port")).Op(":=").List(readField("h", m.clientIP, "uint32"), readField("h", m.clientPort, "uint16")),
		jen.Id("want").Op(":=").Id("keyCell").Values(jen.Id("ip"), jen.Uint32().Call(jen.Id("port")).Op("|").Id("keyValid")),
		jen.Id("addr").Op(":=").Id("addrCell").Values(jen.Dict{
			jen.Id("origin"): readField("h", m.originIP, "uint32"),
			jen.Id("target"): frameU32(jen.Id("ipSrc")),
		}),
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
		jen.List(jen.Id("won"), jen.Id("stale")).Op(":=").List(jen.False(), jen.False()),
		jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
			jen.Id("c").Op(":=").Op("&").Add(px("dirKey")).Index(jen.Id("l")).Index(jen.Id("i")),
			jen.If(jen.Id("won")).Block(
				jen.Comment("A copy on a deeper level (left by an earlier placement) goes."),
				jen.If(jen.Id("keyClear").Call(jen.Id("c"), jen.Id("want"))).Block(
					px("dirAddr").Index(jen.Id("l")).Index(jen.Id("i")).Op("=").Id("addrCell").Values(),
				),
				jen.Continue(),
			),
			jen.Switch(jen.Id("keyInsert").Call(jen.Id("c"), jen.Id("want"))).Block(
				jen.Case(jen.Lit(0)).Comment("The slot was empty: a fresh entry.").Line().Add(
					px("dirAddr").Index(jen.Id("l")).Index(jen.Id("i")).Op("=").Id("addr"),
				).Line().Id("won").Op("=").True(),
				jen.Case(jen.Id("want").Dot("port")).Comment("The key's own entry: the lease decides.").Line().Id("stale").Op("=").Op("!").Id("addrHandOver").Call(
					jen.Op("&").Add(px("dirAddr")).Index(jen.Id("l")).Index(jen.Id("i")), jen.Id("addr"), frameU32(jen.Id("ipDst")),
				).Line().Id("won").Op("=").True(),
			),
		),
		jen.Switch().Block(
			jen.Case(jen.Op("!").Id("won")).Block(
				px("counters", "Rejects").Op("++"),
				m.setStage("stageRejected"),
				jen.Return(px("route").Call(jen.Id("f"))),
			),
			jen.Case(jen.Id("stale")).Block(
				px("counters", "StaleAcks").Op("++"),
				jen.Id("swapReply").Call(jen.Id("f")),
				m.setStage("stageRejected"),
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
		f.Comment("the header names and empties its addr cell where it held it; the")
		f.Comment("datagram goes back to its sender, addresses swapped and the stage kept,")
		f.Comment("as the acknowledgement (no checksum changes). A retry after the key is")
		f.Comment("gone clears nothing and is echoed all the same.")
		f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("release").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
			jen.Id("h").Op(":=").Id("f").Index(jen.Id("migOff").Op(":")),
			jen.List(jen.Id("ip"), jen.Id("port")).Op(":=").List(readField("h", m.clientIP, "uint32"), readField("h", m.clientPort, "uint16")),
			jen.Id("want").Op(":=").Id("keyCell").Values(jen.Id("ip"), jen.Uint32().Call(jen.Id("port")).Op("|").Id("keyValid")),
			jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
			jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
				jen.If(jen.Id("keyClear").Call(jen.Op("&").Add(px("dirKey")).Index(jen.Id("l")).Index(jen.Id("i")), jen.Id("want"))).Block(
					px("dirAddr").Index(jen.Id("l")).Index(jen.Id("i")).Op("=").Id("addrCell").Values(),
					px("counters", "Deletes").Op("++"),
				),
			),
			jen.Id("swapReply").Call(jen.Id("f")),
			jen.Return(result("Reply", jen.Id("ingress"))),
		)
		f.Line()
	}

	f.Comment("tcp is step 5: a segment of a migrated connection is rewritten, toward")
	f.Comment("the target (client side) or back to the origin's address (server side),")
	f.Comment("by the first level holding its key. RST or FIN (per delete_on) then")
	f.Comment("removes the key from every level that holds it.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("tcp").Params(jen.Id("f").Index().Byte(), jen.Id("role").Id("Role")).Id("Result").Block(
		jen.List(jen.Id("ip"), jen.Id("port")).Op(":=").List(frameU32(jen.Id("ipDst")), fU16x(jen.Id("l4Off").Op("+").Lit(2))),
		jen.If(jen.Id("role").Op("==").Id("RoleClient")).Block(
			jen.List(jen.Id("ip"), jen.Id("port")).Op("=").List(frameU32(jen.Id("ipSrc")), fU16x(jen.Id("l4Off"))),
		),
		jen.Id("want").Op(":=").Id("keyCell").Values(jen.Id("ip"), jen.Uint32().Call(jen.Id("port")).Op("|").Id("keyValid")),
		jen.Id("del").Op(":=").Id("f").Index(jen.Id("tcpFlags")).Op("&").Id("deleteFlags").Op("!=").Lit(0),
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
		jen.Id("hit").Op(":=").False(),
		jen.For(jen.List(jen.Id("l"), jen.Id("i")).Op(":=").Range().Id("levelIndexes").Call(jen.Op("&").Id("k"))).Block(
			jen.Id("c").Op(":=").Op("&").Add(px("dirKey")).Index(jen.Id("l")).Index(jen.Id("i")),
			jen.Var().Id("match").Bool(),
			jen.If(jen.Id("del")).Block(
				jen.Id("match").Op("=").Id("keyClear").Call(jen.Id("c"), jen.Id("want")),
			).Else().If(jen.Op("!").Id("hit")).Block(
				jen.Id("match").Op("=").Op("*").Id("c").Op("==").Id("want"),
			),
			jen.If(jen.Op("!").Id("match")).Block(jen.Continue()),
			jen.Id("a").Op(":=").Add(px("dirAddr")).Index(jen.Id("l")).Index(jen.Id("i")),
			jen.If(jen.Id("del")).Block(
				px("dirAddr").Index(jen.Id("l")).Index(jen.Id("i")).Op("=").Id("addrCell").Values(),
				px("counters", "Deletes").Op("++"),
			),
			jen.If(jen.Id("hit")).Block(jen.Continue()),
			jen.Id("hit").Op("=").True(),
			jen.If(jen.Id("role").Op("==").Id("RoleClient")).Block(
				jen.Id("setAddr").Call(jen.Id("f"), jen.Id("ipDst"), jen.Id("a").Dot("target"), jen.Id("tcpCsum"), jen.False()),
			).Else().Block(
				jen.Id("setAddr").Call(jen.Id("f"), jen.Id("ipSrc"), jen.Id("a").Dot("origin"), jen.Id("tcpCsum"), jen.False()),
			),
			px("counters", "Hits").Op("++"),
		),
		jen.Return(px("route").Call(jen.Id("f"))),
	)
	f.Line()

	f.Comment("lookup returns the first level (and its slot) holding the client key.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("lookup").Params(jen.Id("ip").Uint32(), jen.Id("port").Uint16()).Params(jen.Id("level").Int(), jen.Id("index").Uint32(), jen.Id("ok").Bool()).Block(
		jen.Id("k").Op(":=").Id("keyBytes").Call(jen.Id("ip"), jen.Id("port")),
		jen.Id("want").Op(":=").Id("keyCell").Values(jen.Id("ip"), jen.Uint32().Call(jen.Id("port")).Op("|").Id("keyValid")),
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
		jen.List(jen.Id("h"), jen.Id("ok")).Op(":=").Add(px("hosts")).Index(frameU32(jen.Id("ipDst"))),
		jen.If(jen.Op("!").Id("ok")).Block(drop("DropNoRoute")),
		jen.Copy(jen.Id("f").Index(jen.Lit(0), jen.Lit(6)), jen.Id("h").Dot("mac").Index(jen.Op(":"))),
		jen.Return(result("Forward", jen.Id("h").Dot("port"))),
	)
	f.Line()

	f.Comment("bridge is step 2: l2_forward for unicast destinations, flood otherwise.")
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id("bridge").Params(jen.Id("f").Index().Byte(), jen.Id("ingress").Id("Port")).Id("Result").Block(
		jen.If(jen.Id("f").Index(jen.Lit(0)).Op("&").Lit(1).Op("==").Lit(0)).Block(
			jen.If(jen.List(jen.Id("port"), jen.Id("ok")).Op(":=").Add(px("l2")).Index(jen.Index(jen.Lit(6)).Byte().Call(jen.Id("f").Index(jen.Lit(0), jen.Lit(6)))), jen.Id("ok")).Block(
				jen.Return(result("Forward", jen.Id("port"))),
			),
		),
		jen.Return(result("Flood", jen.Id("ingress"))),
	)
	f.Line()
}

func (m *model) emitHelpers(f *jen.File) {
	f.Comment("swapReply turns a datagram around: Ethernet, IPv4 and UDP sources and")
	f.Comment("destinations swap. No checksum changes: each sum covers both halves.")
	f.Func().Id("swapReply").Params(jen.Id("f").Index().Byte()).Block(
		jen.For(jen.Id("i").Op(":=").Lit(0), jen.Id("i").Op("<").Lit(6), jen.Id("i").Op("++")).Block(
			jen.List(jen.Id("f").Index(jen.Id("i")), jen.Id("f").Index(jen.Lit(6).Op("+").Id("i"))).Op("=").List(jen.Id("f").Index(jen.Lit(6).Op("+").Id("i")), jen.Id("f").Index(jen.Id("i"))),
		),
		jen.For(jen.Id("i").Op(":=").Lit(0), jen.Id("i").Op("<").Lit(4), jen.Id("i").Op("++")).Block(
			jen.List(jen.Id("f").Index(jen.Id("ipSrc").Op("+").Id("i")), jen.Id("f").Index(jen.Id("ipDst").Op("+").Id("i"))).Op("=").List(jen.Id("f").Index(jen.Id("ipDst").Op("+").Id("i")), jen.Id("f").Index(jen.Id("ipSrc").Op("+").Id("i"))),
		),
		jen.For(jen.Id("i").Op(":=").Lit(0), jen.Id("i").Op("<").Lit(2), jen.Id("i").Op("++")).Block(
			jen.List(jen.Id("f").Index(jen.Id("l4Off").Op("+").Id("i")), jen.Id("f").Index(jen.Id("l4Off").Op("+").Lit(2).Op("+").Id("i"))).Op("=").List(jen.Id("f").Index(jen.Id("l4Off").Op("+").Lit(2).Op("+").Id("i")), jen.Id("f").Index(jen.Id("l4Off").Op("+").Id("i"))),
		),
	)
	f.Line()

	f.Comment("setAddr rewrites the IPv4 address at offset at and updates the IPv4 header")
	f.Comment("checksum and the TCP or UDP checksum at l4, whose pseudo header holds the")
	f.Comment("address, incrementally (RFC 1624). A UDP datagram sent without a checksum")
	f.Comment("(zero) keeps none.")
	f.Func().Id("setAddr").Params(jen.Id("f").Index().Byte(), jen.Id("at").Int(), jen.Id("v").Uint32(), jen.Id("l4").Int(), jen.Id("udp").Bool()).Block(
		jen.Id("old").Op(":=").Add(frameU32(jen.Id("at"))),
		be("PutUint32", jen.Id("f").Index(jen.Id("at").Op(":")), jen.Id("v")),
		be("PutUint16", jen.Id("f").Index(jen.Id("ipCsum").Op(":")), jen.Id("csumAdjust").Call(be("Uint16", jen.Id("f").Index(jen.Id("ipCsum").Op(":"))), jen.Id("old"), jen.Id("v"))),
		jen.Id("c").Op(":=").Add(be("Uint16", jen.Id("f").Index(jen.Id("l4").Op(":")))),
		jen.If(jen.Id("udp").Op("&&").Id("c").Op("==").Lit(0)).Block(jen.Return()),
		jen.Id("c").Op("=").Id("csumAdjust").Call(jen.Id("c"), jen.Id("old"), jen.Id("v")),
		jen.If(jen.Id("udp").Op("&&").Id("c").Op("==").Lit(0)).Block(
			jen.Comment("RFC 768: a computed zero is sent as all ones."),
			jen.Id("c").Op("=").Op("0xffff"),
		),
		be("PutUint16", jen.Id("f").Index(jen.Id("l4").Op(":")), jen.Id("c")),
	)
	f.Line()

	f.Comment("csumAdjust updates the Internet checksum sum for a 32-bit word of the")
	f.Comment("summed data changing from old to v: HC' = ~(~HC + ~m + m') (RFC 1624")
	f.Comment("eqn. 3) on both 16-bit halves.")
	f.Func().Id("csumAdjust").Params(jen.Id("sum").Uint16(), jen.List(jen.Id("old"), jen.Id("v")).Uint32()).Uint16().Block(
		jen.Id("s").Op(":=").Uint32().Call(jen.Op("^").Id("sum")).Op("+").
			Uint32().Call(jen.Op("^").Uint16().Call(jen.Id("old").Op(">>").Lit(16))).Op("+").
			Uint32().Call(jen.Op("^").Uint16().Call(jen.Id("old"))).Op("+").
			Id("v").Op(">>").Lit(16).Op("+").Id("v").Op("&").Op("0xffff"),
		jen.Id("s").Op("=").Id("s").Op("&").Op("0xffff").Op("+").Id("s").Op(">>").Lit(16),
		jen.Id("s").Op("=").Id("s").Op("&").Op("0xffff").Op("+").Id("s").Op(">>").Lit(16),
		jen.Return(jen.Op("^").Uint16().Call(jen.Id("s"))),
	)
	f.Line()

	f.Comment("setChecked writes v into the n bits at bit offset bit of the region of f")
	f.Comment("starting at base (inside the TCPMig datagram) and updates the UDP checksum")
	f.Comment("for every 16-bit word that changed. Words are aligned to the UDP header.")
	f.Func().Id("setChecked").Params(jen.Id("f").Index().Byte(), jen.List(jen.Id("base"), jen.Id("bit"), jen.Id("n")).Int(), jen.Id("v").Uint64()).Block(
		jen.Id("lo").Op(":=").Parens(jen.Id("base").Op("+").Id("bit").Op("/").Lit(8).Op("-").Id("l4Off")).Op("&^").Lit(1).Op("+").Id("l4Off"),
		jen.Id("hi").Op(":=").Id("base").Op("+").Parens(jen.Id("bit").Op("+").Id("n").Op("+").Lit(7)).Op("/").Lit(8),
		jen.Var().Id("old").Index(jen.Lit(10)).Byte(),
		jen.Copy(jen.Id("old").Index(jen.Op(":")), jen.Id("f").Index(jen.Id("lo").Op(":").Id("hi"))),
		jen.Id("putField").Call(jen.Id("f").Index(jen.Id("base").Op(":")), jen.Id("bit"), jen.Id("n"), jen.Id("v")),
		jen.Id("sum").Op(":=").Add(be("Uint16", jen.Id("f").Index(jen.Id("udpCsum").Op(":")))),
		jen.If(jen.Id("sum").Op("==").Lit(0)).Block(jen.Return()),
		jen.For(jen.Id("i").Op(":=").Id("lo"), jen.Id("i").Op("<").Id("hi"), jen.Id("i").Op("+=").Lit(2)).Block(
			jen.List(jen.Id("was"), jen.Id("now")).Op(":=").List(jen.Uint32().Call(jen.Id("old").Index(jen.Id("i").Op("-").Id("lo"))).Op("<<").Lit(8), jen.Uint32().Call(jen.Id("f").Index(jen.Id("i"))).Op("<<").Lit(8)),
			jen.Comment("A field ending on an odd byte leaves the word's second byte as it was."),
			jen.If(jen.Id("i").Op("+").Lit(1).Op("<").Id("hi")).Block(
				jen.Id("was").Op("|=").Uint32().Call(jen.Id("old").Index(jen.Id("i").Op("+").Lit(1).Op("-").Id("lo"))),
				jen.Id("now").Op("|=").Uint32().Call(jen.Id("f").Index(jen.Id("i").Op("+").Lit(1))),
			),
			jen.Id("sum").Op("=").Id("csumAdjust").Call(jen.Id("sum"), jen.Id("was"), jen.Id("now")),
		),
		jen.If(jen.Id("sum").Op("==").Lit(0)).Block(jen.Id("sum").Op("=").Op("0xffff")),
		be("PutUint16", jen.Id("f").Index(jen.Id("udpCsum").Op(":")), jen.Id("sum")),
	)
	f.Line()

	f.Comment("getField reads the n-bit big-endian field at bit offset bit of b; the")
	f.Comment("field spans at most 8 bytes and b holds them (checked by the caller).")
	f.Func().Id("getField").Params(jen.Id("b").Index().Byte(), jen.List(jen.Id("bit"), jen.Id("n")).Int()).Uint64().Block(
		jen.Var().Id("v").Uint64(),
		jen.List(jen.Id("first"), jen.Id("last")).Op(":=").List(jen.Id("bit").Op("/").Lit(8), jen.Parens(jen.Id("bit").Op("+").Id("n").Op("-").Lit(1)).Op("/").Lit(8)),
		jen.For(jen.Id("i").Op(":=").Id("first"), jen.Id("i").Op("<=").Id("last"), jen.Id("i").Op("++")).Block(
			jen.Id("v").Op("=").Id("v").Op("<<").Lit(8).Op("|").Uint64().Call(jen.Id("b").Index(jen.Id("i"))),
		),
		jen.Id("v").Op(">>=").Uint().Call(jen.Parens(jen.Id("last").Op("+").Lit(1)).Op("*").Lit(8).Op("-").Parens(jen.Id("bit").Op("+").Id("n"))),
		jen.Return(jen.Id("v").Op("&").Parens(jen.Uint64().Call(jen.Lit(1)).Op("<<").Uint().Call(jen.Id("n")).Op("-").Lit(1))),
	)
	f.Line()

	f.Comment("putField writes the n-bit big-endian field at bit offset bit of b,")
	f.Comment("keeping the bits around it.")
	f.Func().Id("putField").Params(jen.Id("b").Index().Byte(), jen.List(jen.Id("bit"), jen.Id("n")).Int(), jen.Id("v").Uint64()).Block(
		jen.List(jen.Id("first"), jen.Id("last")).Op(":=").List(jen.Id("bit").Op("/").Lit(8), jen.Parens(jen.Id("bit").Op("+").Id("n").Op("-").Lit(1)).Op("/").Lit(8)),
		jen.Id("shift").Op(":=").Uint().Call(jen.Parens(jen.Id("last").Op("+").Lit(1)).Op("*").Lit(8).Op("-").Parens(jen.Id("bit").Op("+").Id("n"))),
		jen.Id("mask").Op(":=").Parens(jen.Uint64().Call(jen.Lit(1)).Op("<<").Uint().Call(jen.Id("n")).Op("-").Lit(1)).Op("<<").Id("shift"),
		jen.Var().Id("cur").Uint64(),
		jen.For(jen.Id("i").Op(":=").Id("first"), jen.Id("i").Op("<=").Id("last"), jen.Id("i").Op("++")).Block(
			jen.Id("cur").Op("=").Id("cur").Op("<<").Lit(8).Op("|").Uint64().Call(jen.Id("b").Index(jen.Id("i"))),
		),
		jen.Id("cur").Op("=").Id("cur").Op("&^").Id("mask").Op("|").Id("v").Op("<<").Id("shift").Op("&").Id("mask"),
		jen.For(jen.Id("i").Op(":=").Id("last"), jen.Id("i").Op(">=").Id("first"), jen.Id("i").Op("--")).Block(
			jen.Id("b").Index(jen.Id("i")).Op("=").Byte().Call(jen.Id("cur")),
			jen.Id("cur").Op(">>=").Lit(8),
		),
	)
}

// fU16x is binary.BigEndian.Uint16(f[at:]).
func fU16x(at jen.Code) *jen.Statement { return be("Uint16", jen.Id("f").Index(jen.Add(at).Op(":"))) }
