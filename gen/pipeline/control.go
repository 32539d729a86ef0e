package pipeline

import (
	"github.com/dave/jennifer/jen"
)

// errf is fmt.Errorf(format, args...).
func errf(format string, args ...jen.Code) *jen.Statement {
	return jen.Qual("fmt", "Errorf").Call(append([]jen.Code{jen.Lit(format)}, args...)...)
}

// lock is p.mu.Lock(); defer p.mu.Unlock().
func lock() []jen.Code {
	return []jen.Code{
		jen.Id("p").Dot("mu").Dot("Lock").Call(),
		jen.Defer().Id("p").Dot("mu").Dot("Unlock").Call(),
	}
}

// method starts func (p *Pipeline) name(params) results.
func method(f *jen.File, doc []string, name string, params, results []jen.Code, body ...jen.Code) {
	for _, d := range doc {
		f.Comment(d)
	}
	f.Func().Params(jen.Id("p").Op("*").Id("Pipeline")).Id(name).Params(params...).Params(results...).Block(body...)
	f.Line()
}

func ip4() *jen.Statement  { return jen.Index(jen.Lit(4)).Byte() }
func mac6() *jen.Statement { return jen.Index(jen.Lit(6)).Byte() }

// u32 is binary.BigEndian.Uint32(x[:]).
func u32(x string) *jen.Statement { return be("Uint32", jen.Id(x).Index(jen.Op(":"))) }

// portCheck refuses a port id the target cannot carry.
func portCheck(what string) jen.Code {
	return jen.If(jen.Err().Op(":=").Add(pq("CheckPort")).Call(jen.Int().Call(jen.Id("port")), jen.Id("MaxPorts")), jen.Err().Op("!=").Nil()).Block(
		jen.Return(errf(what+": %w", jen.Err())),
	)
}

// wrapped returns err from a table call, with what before it.
func wrapped(call jen.Code, what string, args ...jen.Code) jen.Code {
	return jen.If(jen.Err().Op(":=").Add(call), jen.Err().Op("!=").Nil()).Block(
		jen.Return(errf(what+": %w", append(args, jen.Err())...)),
	)
}

// slotCheck refuses a directory level or index outside the registers.
func slotCheck(what string, ret ...jen.Code) jen.Code {
	return jen.If(jen.Id("level").Op("<").Lit(0).Op("||").Id("level").Op(">=").Id("Levels").Op("||").
		Id("index").Op("<").Lit(0).Op("||").Id("index").Op(">=").Id("Slots")).Block(
		jen.Return(append(ret, errf(what+" level %d index %d: %w (levels 0..%d, indexes 0..%d)",
			jen.Id("level"), jen.Id("index"), jen.Id("ErrOutOfRange"), jen.Id("Levels").Op("-").Lit(1), jen.Id("Slots").Op("-").Lit(1)))...),
	)
}

func (m *model) emitControl(f *jen.File) {
	errRet := []jen.Code{jen.Error()}
	addr := jen.Qual("net/netip", "AddrFrom4").Call(jen.Id("ip"))
	hw := jen.Qual("net", "HardwareAddr").Call(jen.Id("mac").Index(jen.Op(":")))
	method(f, []string{"SetPortRole writes port_role: port faces clients or servers."}, "SetPortRole",
		[]jen.Code{jen.Id("port").Id("Port"), jen.Id("role").Id("Role")}, errRet,
		jen.If(jen.Id("role").Op("!=").Id("RoleClient").Op("&&").Id("role").Op("!=").Id("RoleServer")).Block(
			jen.Return(errf("set port role: port %d role %d: %w (RoleClient or RoleServer)", jen.Id("port"), jen.Id("role"), jen.Id("ErrOutOfRange"))),
		),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		wrapped(px("roles", "Set").Call(jen.Int().Call(jen.Id("port")), jen.Id("role")), "set port role"),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"DeletePortRole removes port's port_role entry; its frames are then dropped."}, "DeletePortRole",
		[]jen.Code{jen.Id("port").Id("Port")}, errRet,
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		wrapped(px("roles", "Delete").Call(jen.Int().Call(jen.Id("port"))), "delete port role"),
		jen.Return(jen.Nil()),
	)

	method(f, []string{"SetHost writes ipv4_host: frames to ip leave by port with dst MAC mac."}, "SetHost",
		[]jen.Code{jen.Id("ip").Add(ip4()), jen.Id("port").Id("Port"), jen.Id("mac").Add(mac6())}, errRet,
		portCheck("set host"),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		wrapped(px("hosts", "Set").Call(u32("ip"), jen.Id("host").Values(jen.Id("port"), jen.Id("mac"))), "set host %v", addr),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"DeleteHost removes ip's ipv4_host entry."}, "DeleteHost",
		[]jen.Code{jen.Id("ip").Add(ip4())}, errRet,
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		wrapped(px("hosts", "Delete").Call(u32("ip")), "delete host %v", addr),
		jen.Return(jen.Nil()),
	)

	method(f, []string{"SetL2 writes l2_forward: non-IPv4 frames to mac leave by port. Frames",
		"to a broadcast or multicast MAC are flooded whatever the table holds."}, "SetL2",
		[]jen.Code{jen.Id("mac").Add(mac6()), jen.Id("port").Id("Port")}, errRet,
		portCheck("set l2"),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		wrapped(px("l2", "Set").Call(jen.Id("mac"), jen.Id("port")), "set l2 %v", hw),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"DeleteL2 removes mac's l2_forward entry."}, "DeleteL2",
		[]jen.Code{jen.Id("mac").Add(mac6())}, errRet,
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		wrapped(px("l2", "Delete").Call(jen.Id("mac")), "delete l2 %v", hw),
		jen.Return(jen.Nil()),
	)

	method(f, []string{"ReadTables copies port_role, ipv4_host and l2_forward, as a P4Runtime",
		"read of every entry sees them."}, "ReadTables", nil, []jen.Code{jen.Id("t").Id("Tables")},
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Id("t").Op("=").Id("Tables").Values(jen.Dict{
			jen.Id("PortRoles"): jen.Make(jen.Map(jen.Id("Port")).Id("Role")),
			jen.Id("Hosts"):     jen.Make(jen.Map(ip4()).Id("HostAction")),
			jen.Id("L2"):        jen.Id("p").Dot("l2").Dot("Copy").Call(),
		}),
		jen.For(jen.List(jen.Id("port"), jen.Id("r")).Op(":=").Range().Add(px("roles", "Copy")).Call()).Block(
			jen.Id("t").Dot("PortRoles").Index(jen.Id("Port").Call(jen.Id("port"))).Op("=").Id("r"),
		),
		jen.For(jen.List(jen.Id("ip"), jen.Id("h")).Op(":=").Range().Add(px("hosts", "Copy")).Call()).Block(
			jen.Var().Id("k").Add(ip4()),
			be("PutUint32", jen.Id("k").Index(jen.Op(":")), jen.Id("ip")),
			jen.Id("t").Dot("Hosts").Index(jen.Id("k")).Op("=").Id("HostAction").Values(jen.Id("h").Dot("port"), jen.Id("h").Dot("mac")),
		),
		jen.Return(jen.Id("t")),
	)

	method(f, []string{"ReadDirectoryCells reads one slot's dir<level>_key cell and its",
		"dir<level>_target and dir<level>_origin cells (as an AddrCell) as they are, as",
		"P4Runtime reads register cells."}, "ReadDirectoryCells",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int()}, []jen.Code{jen.Id("KeyCell"), jen.Id("AddrCell"), jen.Error()},
		slotCheck("read directory", jen.Id("KeyCell").Values(), jen.Id("AddrCell").Values()),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Return(jen.Id("p").Dot("dirKey").Index(jen.Id("level")).Index(jen.Id("index")), jen.Id("p").Dot("dirAddr").Index(jen.Id("level")).Index(jen.Id("index")), jen.Nil()),
	)
	method(f, []string{"WriteDirectoryKey writes one dir<level>_key cell as is, as P4Runtime",
		"writes a register cell (the target and origin beside it are untouched)."}, "WriteDirectoryKey",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int(), jen.Id("c").Id("KeyCell")}, errRet,
		slotCheck("write directory key"),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Id("p").Dot("dirKey").Index(jen.Id("level")).Index(jen.Id("index")).Op("=").Id("c"),
		jen.Return(jen.Nil()),
	)
	// dir<level>_target and dir<level>_origin: one field of the model's AddrCell each.
	for _, c := range []struct {
		reg, field string
		doc        []string
	}{
		{"target", "Target", []string{"WriteDirectoryTarget writes one dir<level>_target cell as is, as P4Runtime", "writes a register cell."}},
		{"origin", "Origin", []string{"WriteDirectoryOrigin writes one dir<level>_origin cell as is."}},
	} {
		method(f, c.doc, "WriteDirectory"+c.field,
			[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int(), jen.Id("ip").Uint32()}, errRet,
			slotCheck("write directory "+c.reg),
			jen.Add(lock()[0]), jen.Add(lock()[1]),
			jen.Id("p").Dot("dirAddr").Index(jen.Id("level")).Index(jen.Id("index")).Dot(c.field).Op("=").Id("ip"),
			jen.Return(jen.Nil()),
		)
	}
	method(f, []string{"WriteDirectoryAddr writes one slot's dir<level>_target and dir<level>_origin cells as is."}, "WriteDirectoryAddr",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int(), jen.Id("c").Id("AddrCell")}, errRet,
		slotCheck("write directory addr"),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Id("p").Dot("dirAddr").Index(jen.Id("level")).Index(jen.Id("index")).Op("=").Id("c"),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"ReadDirectoryPort reads one dir<level>_port cell as it is, as P4Runtime",
		"reads a register cell."}, "ReadDirectoryPort",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int()}, []jen.Code{jen.Uint16(), jen.Error()},
		slotCheck("read directory port", jen.Lit(0)),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Return(jen.Id("p").Dot("dirPort").Index(jen.Id("level")).Index(jen.Id("index")), jen.Nil()),
	)
	method(f, []string{"WriteDirectoryPort writes one dir<level>_port cell as is."}, "WriteDirectoryPort",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int(), jen.Id("c").Uint16()}, errRet,
		slotCheck("write directory port"),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Id("p").Dot("dirPort").Index(jen.Id("level")).Index(jen.Id("index")).Op("=").Id("c"),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"ReadDirectory reads one slot of the dir<level>_key, dir<level>_target and dir<level>_origin registers."}, "ReadDirectory",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int()}, []jen.Code{jen.Id("Entry"), jen.Error()},
		slotCheck("read directory", jen.Id("Entry").Values()),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Return(pq("EntryOf").Call(jen.Id("p").Dot("dirKey").Index(jen.Id("level")).Index(jen.Id("index")), jen.Id("p").Dot("dirAddr").Index(jen.Id("level")).Index(jen.Id("index"))), jen.Nil()),
	)
	method(f, []string{"WriteDirectory writes one slot as P4Runtime writes a register cell: as",
		"is, without checking that the key hashes to it. An Entry that is not Valid",
		"empties the slot."}, "WriteDirectory",
		[]jen.Code{jen.List(jen.Id("level"), jen.Id("index")).Int(), jen.Id("e").Id("Entry")}, errRet,
		slotCheck("write directory"),
		jen.List(jen.Id("k"), jen.Id("a"), jen.Id("port")).Op(":=").Id("e").Dot("Cells").Call(),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Id("p").Dot("dirKey").Index(jen.Id("level")).Index(jen.Id("index")).Op("=").Id("k"),
		jen.Id("p").Dot("dirAddr").Index(jen.Id("level")).Index(jen.Id("index")).Op("=").Id("a"),
		jen.Id("p").Dot("dirPort").Index(jen.Id("level")).Index(jen.Id("index")).Op("=").Id("port"),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"ClearDirectory empties every slot of every level."}, "ClearDirectory", nil, nil,
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Id("p").Dot("dirKey").Op("=").Index(jen.Id("Levels")).Index(jen.Id("Slots")).Add(pq("KeyCell")).Values(),
		jen.Id("p").Dot("dirAddr").Op("=").Index(jen.Id("Levels")).Index(jen.Id("Slots")).Add(pq("AddrCell")).Values(),
		jen.Id("p").Dot("dirPort").Op("=").Index(jen.Id("Levels")).Index(jen.Id("Slots")).Uint16().Values(),
	)
	method(f, []string{"Lookup finds the client key (ip, port) as a TCP segment would: the first",
		"level whose slot holds it."}, "Lookup",
		[]jen.Code{jen.Id("ip").Add(ip4()), jen.Id("port").Uint16()}, []jen.Code{jen.Id("level").Int(), jen.Id("e").Id("Entry"), jen.Id("ok").Bool()},
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.List(jen.Id("level"), jen.Id("i"), jen.Id("ok")).Op(":=").Id("p").Dot("lookup").Call(u32("ip"), jen.Id("port")),
		jen.If(jen.Op("!").Id("ok")).Block(jen.Return(jen.Lit(-1), jen.Id("Entry").Values(), jen.False())),
		jen.Return(jen.Id("level"), pq("EntryOf").Call(jen.Id("p").Dot("dirKey").Index(jen.Id("level")).Index(jen.Id("i")), jen.Id("p").Dot("dirAddr").Index(jen.Id("level")).Index(jen.Id("i"))), jen.True()),
	)

	method(f, []string{"ReadMinWorkload reads the min_workload register as it is: holder zero and",
		"load EmptyLoad when no heartbeat has arrived."}, "ReadMinWorkload", nil, []jen.Code{jen.Id("holder").Add(ip4()), jen.Id("load").Uint32()},
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		be("PutUint32", jen.Id("holder").Index(jen.Op(":")), jen.Id("p").Dot("holder")),
		jen.Return(jen.Id("holder"), jen.Id("p").Dot("load")),
	)
	method(f, []string{"WriteMinWorkload writes the min_workload register. A zero holder empties",
		"it: the register then holds {0, EmptyLoad} whatever load says, so the next",
		"heartbeat takes it."}, "WriteMinWorkload",
		[]jen.Code{jen.Id("holder").Add(ip4()), jen.Id("load").Uint32()}, errRet,
		jen.If(jen.Id("holder").Op("==").Parens(jen.Index(jen.Lit(4)).Byte().Values())).Block(
			jen.Add(lock()[0]), jen.Add(lock()[1]),
			jen.List(jen.Id("p").Dot("holder"), jen.Id("p").Dot("load")).Op("=").List(jen.Lit(0), jen.Id("EmptyLoad")),
			jen.Return(jen.Nil()),
		),
		jen.If(jen.Id("load").Op(">").Id("workloadMask")).Block(
			jen.Return(errf("write min workload %d: %w (the register holds %d bits)", jen.Id("load"), jen.Id("ErrOutOfRange"), jen.Id("WorkloadBits"))),
		),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.List(jen.Id("p").Dot("holder"), jen.Id("p").Dot("load")).Op("=").List(u32("holder"), jen.Id("load")),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"WriteMinWorkloadCell writes the min_workload cell as is, as P4Runtime",
		"writes a register cell: a zero holder with a load other than EmptyLoad",
		"stays so (WriteMinWorkload is the one that empties the register)."}, "WriteMinWorkloadCell",
		[]jen.Code{jen.Id("holder").Add(ip4()), jen.Id("load").Uint32()}, errRet,
		jen.If(jen.Id("load").Op(">").Id("workloadMask")).Block(
			jen.Return(errf("write min workload cell %d: %w (the register holds %d bits)", jen.Id("load"), jen.Id("ErrOutOfRange"), jen.Id("WorkloadBits"))),
		),
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.List(jen.Id("p").Dot("holder"), jen.Id("p").Dot("load")).Op("=").List(u32("holder"), jen.Id("load")),
		jen.Return(jen.Nil()),
	)
	method(f, []string{"Counters returns a copy of the counters."}, "Counters", nil, []jen.Code{jen.Id("Counters")},
		jen.Add(lock()[0]), jen.Add(lock()[1]),
		jen.Return(jen.Id("p").Dot("counters")),
	)
}
