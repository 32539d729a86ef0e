package spec

import (
	"bytes"
	"embed"
	"fmt"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed capybara.yaml
var defaultSpec []byte

//go:embed targets/*.yaml
var targetFS embed.FS

// DefaultPath is the name the embedded default spec reports in diagnostics.
const DefaultPath = "spec/capybara.yaml"

// Default returns the embedded default spec (the authors' system).
func Default() (*Spec, error) { return Parse(DefaultPath, defaultSpec) }

// DefaultYAML returns the bytes of the embedded default spec.
func DefaultYAML() []byte { return bytes.Clone(defaultSpec) }

// Load reads and validates the spec at path.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates a spec; name is used in diagnostics. Every
// problem is reported: the error is an *ErrorList sorted by position.
// It is ParseNode of the decoded file, which must hold one YAML document.
func Parse(name string, data []byte) (*Spec, error) {
	d := newDecoder(name, "spec")
	return d.parse(d.Document(data))
}

// ParseNode validates a spec already decoded into a YAML node tree (a
// document node, or its root mapping); name is used in diagnostics, which
// take their line and column from the nodes. It lets a caller edit the
// tree (capygen's -set) and still report positions in the original file.
// The tree is only read.
func ParseNode(name string, doc *yaml.Node) (*Spec, error) {
	d := newDecoder(name, "spec")
	return d.parse(d.Root(doc))
}

// parse checks the spec whose root mapping is root (nil when the file
// has none, which is reported).
func (d *decoder) parse(root *yaml.Node) (*Spec, error) {
	s := &Spec{Source: d.File}
	if root != nil {
		s = d.spec(root)
	}
	if len(d.Diagnostics) == 0 {
		// Names are checked once whole: a collision spans sections.
		d.Diagnostics = goNameCollisions(s)
	}
	if err := d.Err(ErrInvalid); err != nil {
		return nil, err
	}
	s.Fingerprint = fingerprint(s)
	return s, nil
}

// TargetNames lists the embedded target profiles.
func TargetNames() []string {
	ents, _ := targetFS.ReadDir("targets")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(names)
	return names
}

// LoadTarget returns an embedded target profile by name. A profile that
// does not validate is an *ErrorList positioned in spec/targets/<name>.yaml.
func LoadTarget(name string) (*Target, error) {
	if !slices.Contains(TargetNames(), name) {
		return nil, fmt.Errorf("unknown target %q (known: %s): %w", name, strings.Join(TargetNames(), ", "), ErrInvalid)
	}
	b, err := targetFS.ReadFile("targets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("read target %s: %w", name, err)
	}
	d := newDecoder("spec/targets/"+name+".yaml", "target profile")
	t := d.target(b)
	if err := d.Err(ErrInvalid); err != nil {
		return nil, err
	}
	return t, nil
}

// targetFigures are the sourced figures of a target profile, in file order.
var targetFigures = []string{"port_bits", "stages", "sram_blocks_per_stage", "sram_block_bits", "map_ram_blocks_per_stage",
	"stateful_alus_per_stage", "hash_units_per_stage", "max_register_bits", "max_register_blocks", "min_index_bits", "max_index_bits"}

func (d *decoder) target(data []byte) *Target {
	root := d.Document(data)
	if root == nil {
		return nil
	}
	o := d.object(root, "", append([]string{"version", "name", "arch", "tofino_version"}, targetFigures...)...)
	if v, ok := o.int("version", true); ok && v != Version {
		d.Errorf(o.At("version"), "version", "%d is not supported; set version: %d", v, Version)
	}
	t := &Target{Pos: d.Pos(root), Sources: map[string]string{}}
	t.Name, _ = o.name("name", true)
	t.Arch, _ = o.str("arch", true)
	if t.Arch != "" && t.Arch != "tna" && t.Arch != "t2na" {
		d.Errorf(o.At("arch"), "arch", "%q is not a Tofino architecture; use tna or t2na", t.Arch)
	}
	t.TofinoVersion, _ = o.int("tofino_version", true)
	if o.Raw("tofino_version") != nil && t.TofinoVersion != 1 && t.TofinoVersion != 2 {
		d.Errorf(o.At("tofino_version"), "tofino_version", "%d is not a Tofino generation; set 1 or 2", t.TofinoVersion)
	}
	figs := map[string]*int{"port_bits": &t.PortBits, "stages": &t.Stages, "sram_blocks_per_stage": &t.SRAMBlocksPerStage,
		"sram_block_bits": &t.SRAMBlockBits, "map_ram_blocks_per_stage": &t.MapRAMBlocksPerStage,
		"stateful_alus_per_stage": &t.StatefulALUsPerStage, "hash_units_per_stage": &t.HashUnitsPerStage,
		"max_register_bits": &t.MaxRegisterBits, "max_register_blocks": &t.MaxRegisterBlocks,
		"min_index_bits": &t.MinIndexBits, "max_index_bits": &t.MaxIndexBits}
	for _, k := range targetFigures {
		f := o.object(k, true, "value", "source")
		if f == nil {
			continue
		}
		if v, ok := f.int("value", true); ok {
			if v < 1 {
				d.Errorf(f.At("value"), f.Sub("value"), "%d must be at least 1; raise it", v)
			}
			*figs[k] = v
		}
		if src, ok := f.str("source", true); ok {
			if strings.TrimSpace(src) == "" {
				d.Errorf(f.At("source"), f.Sub("source"), "is empty; say where the figure comes from")
			}
			t.Sources[k] = src
		}
	}
	if t.MinIndexBits > t.MaxIndexBits {
		d.Errorf(o.At("min_index_bits"), "min_index_bits", "%d is above max_index_bits %d; swap them", t.MinIndexBits, t.MaxIndexBits)
	}
	return t
}

// spec decodes and checks the whole document. The model it returns is
// only meaningful when no diagnostic was recorded.
func (d *decoder) spec(root *yaml.Node) *Spec {
	s := &Spec{Source: d.File}
	o := d.object(root, "", "version", "name", "doc", "target", "budget", "tables", "transport", "enums",
		"header", "messages", "directory", "workload", "machines")
	if o.Bad() {
		return s
	}
	if o.Raw("version") == nil {
		d.Errorf(root, "version", "missing; add version: %d as the first line", Version)
	} else if v, ok := o.int("version", false); ok {
		if v != Version {
			d.Errorf(o.At("version"), "version", "%d is not supported; set version: %d", v, Version)
		}
		s.Version = v
	}
	s.Name, _ = o.name("name", true)
	s.Doc, _ = o.str("doc", false)
	d.targetAndBudget(s, o)
	d.tables(s, o.object("tables", true, "hosts", "ports", "l2"))
	d.transport(s, o.object("transport", true, "udp_port", "mtu", "checksum"))
	d.enums(s, o)
	hdr := o.object("header", true, "name", "stage_field", "fields")
	d.header(s, hdr)
	d.messages(s, o)
	d.directory(s, o.object("directory", true, "key", "index_bits", "levels", "insert", "on_full", "delete_on", "release"))
	d.workload(s, o.object("workload", true, "bits", "heartbeat", "metric_field", "update", "age_step"))
	d.switchNames(s, hdr, o.Raw("messages"))
	d.machines(s, o)
	return s
}

func (d *decoder) targetAndBudget(s *Spec, o *obj) {
	name, ok := o.str("target", true)
	if ok {
		if !slices.Contains(TargetNames(), name) {
			d.Errorf(o.At("target"), "target", "unknown target %q; known targets are %s", name, strings.Join(TargetNames(), ", "))
		} else if t, err := LoadTarget(name); err != nil {
			if el, ok := err.(*ErrorList); ok {
				d.Diagnostics = append(d.Diagnostics, el.Errors...)
			} else {
				d.Errorf(o.At("target"), "target", "%v", err)
			}
		} else {
			s.Target = t
		}
	}
	b := o.object("budget", true, "sram", "map_ram", "stateful_alus", "hash_units", "stages")
	if b == nil {
		return
	}
	s.Budget.Pos = d.Pos(b.Node())
	t := s.Target
	pct := func(key string, perStage func(*Target) int) int {
		if n := b.Raw(key); n != nil && n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
			d.Errorf(n, b.Sub(key), "%s is not a percentage; write it like %s%%", n.Value, n.Value)
			return 0
		}
		v, ok := b.str(key, true)
		if !ok {
			return 0
		}
		num, isPct := strings.CutSuffix(v, "%")
		p, err := strconv.ParseFloat(num, 64)
		if !isPct || err != nil {
			d.Errorf(b.At(key), b.Sub(key), "%q is not a percentage; write it like 40%%", v)
			return 0
		}
		if !(p > 0 && p <= 100) {
			d.Errorf(b.At(key), b.Sub(key), "%s is outside (0%%, 100%%]; use a share above 0 and at most 100%%", v)
			return 0
		}
		if t == nil {
			return 0
		}
		return int(float64(t.Stages*perStage(t)) * p / 100)
	}
	s.Budget.SRAMBlocks = pct("sram", func(t *Target) int { return t.SRAMBlocksPerStage })
	s.Budget.MapRAMBlocks = pct("map_ram", func(t *Target) int { return t.MapRAMBlocksPerStage })
	s.Budget.StatefulALUs = pct("stateful_alus", func(t *Target) int { return t.StatefulALUsPerStage })
	s.Budget.HashUnits = pct("hash_units", func(t *Target) int { return t.HashUnitsPerStage })
	if v, ok := b.int("stages", true); ok {
		s.Budget.Stages = v
		if t != nil && (v < 1 || v > t.Stages) {
			d.Errorf(b.At("stages"), b.Sub("stages"), "%d is outside what %s has (1..%d); use a value in that range", v, t.Name, t.Stages)
		} else if t == nil && v < 1 {
			d.Errorf(b.At("stages"), b.Sub("stages"), "%d must be at least 1; raise it", v)
		}
	}
}

func (d *decoder) tables(s *Spec, o *obj) {
	if o == nil {
		return
	}
	s.Tables.Pos = d.Pos(o.Node())
	for _, k := range []struct {
		key string
		dst *int
	}{{"hosts", &s.Tables.Hosts}, {"ports", &s.Tables.Ports}, {"l2", &s.Tables.L2}} {
		if v, ok := o.int(k.key, true); ok {
			if v < 1 {
				d.Errorf(o.At(k.key), o.Sub(k.key), "%d entries is too small; a table needs at least 1", v)
			}
			*k.dst = v
		}
	}
}

func (d *decoder) transport(s *Spec, o *obj) {
	if o == nil {
		return
	}
	s.Transport.Pos = d.Pos(o.Node())
	s.Transport.UDPPortPos = d.Pos(o.At("udp_port"))
	if v, ok := o.int("udp_port", true); ok {
		if v < 1 || v > 65535 {
			d.Errorf(o.At("udp_port"), o.Sub("udp_port"), "%d is not a UDP port; use 1..65535", v)
		} else {
			s.Transport.UDPPort = uint16(v)
		}
	}
	if v, ok := o.int("mtu", true); ok {
		if v < 576 || v > 9000 {
			d.Errorf(o.At("mtu"), o.Sub("mtu"), "%d is outside 576..9000 (the IPv4 minimum to jumbo frames); pick an MTU in that range", v)
		}
		s.Transport.MTU = v
	}
	if v, ok := o.str("checksum", true); ok {
		if v != "udp" && v != "wrapping16" {
			d.Errorf(o.At("checksum"), o.Sub("checksum"), "%q is not a checksum kind; use udp or wrapping16", v)
		}
		s.Transport.Checksum = v
	}
}

func (d *decoder) enums(s *Spec, o *obj) {
	names := definedNames("enum")
	for i, n := range o.list("enums", true) {
		path := itemPath("enums", i, n)
		eo := d.object(n, path, "name", "bits", "doc", "values")
		if eo.Bad() {
			continue
		}
		e := &Enum{Pos: d.Pos(n)}
		e.Name, _ = eo.name("name", true)
		if !d.claim(names, eo, e.Name) {
			continue
		}
		e.Doc, _ = eo.str("doc", false)
		bitsOK := false
		if v, ok := eo.int("bits", true); ok {
			if v < 1 || v > 64 {
				d.Errorf(eo.At("bits"), eo.Sub("bits"), "%d is outside 1..64; pick a width in that range", v)
			} else {
				e.Bits, bitsOK = v, true
			}
		}
		vnames, vnums := map[string]*yaml.Node{}, map[uint64]*EnumValue{}
		vals := eo.list("values", true)
		if len(vals) == 0 && eo.Raw("values") != nil && eo.Raw("values").Kind == yaml.SequenceNode {
			d.Errorf(eo.At("values"), eo.Sub("values"), "is empty; an enum needs at least one value")
		}
		for j, vn := range vals {
			vo := d.object(vn, itemPath(eo.Sub("values"), j, vn), "name", "value", "doc")
			if vo.Bad() {
				continue
			}
			v := &EnumValue{Pos: d.Pos(vn)}
			v.Name, _ = vo.name("name", true)
			v.Doc, _ = vo.str("doc", false)
			num, numOK := vo.uint("value", true)
			v.Value = num
			if prev := vnames[v.Name]; prev != nil && v.Name != "" {
				d.Errorf(vo.At("name"), vo.Sub("name"), "value %q is already in enum %s at line %d; rename one", v.Name, e.Name, prev.Line)
				continue
			}
			vnames[v.Name] = vo.At("name")
			if numOK {
				if bitsOK && !fits(num, e.Bits) {
					d.Errorf(vo.At("value"), vo.Sub("value"), "%d does not fit enum %s's %d bits (max %d); widen bits or pick a smaller value", num, e.Name, e.Bits, maxOf(e.Bits))
				}
				if prev := vnums[num]; prev != nil {
					d.Errorf(vo.At("value"), vo.Sub("value"), "%d is already the value of %s (line %d); pick another number", num, prev.Name, prev.Pos.Line)
				} else {
					vnums[num] = v
				}
			}
			e.Values = append(e.Values, v)
		}
		s.Enums = append(s.Enums, e)
	}
}

// fits reports whether v fits in n bits.
func fits(v uint64, n int) bool { return n >= 64 || bits.Len64(v) <= n }

func maxOf(n int) uint64 {
	if n >= 64 {
		return ^uint64(0)
	}
	return 1<<n - 1
}

// fields decodes the header's fields or a payload, computing offsets, and
// returns them with their total width in bits.
func (d *decoder) fields(s *Spec, list *yaml.Node, nodes []*yaml.Node, path string, payload bool) ([]*Field, int) {
	var out []*Field
	names := definedNames("field")
	off := 0
	for i, n := range nodes {
		fo := d.object(n, itemPath(path, i, n), "name", "type", "bits", "enum", "const", "reserved", "doc")
		if fo.Bad() {
			continue
		}
		f := &Field{Pos: d.Pos(n), Offset: off, Type: TypeUint}
		f.Name, _ = fo.name("name", true)
		if !d.claim(names, fo, f.Name) {
			continue
		}
		if payload && s.Header != nil && f.Name != "" {
			if hf := s.HeaderField(f.Name); hf != nil {
				d.Errorf(fo.At("name"), fo.Sub("name"), "%q is also a header field (line %d); rename the payload field", f.Name, hf.Pos.Line)
			}
		}
		f.Doc, _ = fo.str("doc", false)
		f.Reserved = fo.bool("reserved")
		if t, ok := fo.str("type", false); ok {
			f.Type = FieldType(t)
		}
		width, hasBits := fo.int("bits", false)
		fixed := map[FieldType]int{TypeIPv4: 32, TypeMAC: 48, TypeFlag: 1}
		switch f.Type {
		case TypeUint:
			if !hasBits {
				fo.get("bits", true) // absent, or null: "bits: ~" is no width
			} else {
				if width < 1 || width > 64 {
					d.Errorf(fo.At("bits"), fo.Sub("bits"), "%d is outside 1..64; pick a width in that range", width)
				} else {
					f.Bits = width
				}
			}
		case TypeIPv4, TypeMAC, TypeFlag:
			f.Bits = fixed[f.Type]
			if hasBits && width != f.Bits {
				d.Errorf(fo.At("bits"), fo.Sub("bits"), "a %s is always %d bits; remove bits: %d", f.Type, f.Bits, width)
			}
		case TypeEnum:
			en, ok := fo.str("enum", true)
			if ok {
				f.Enum = s.EnumByName(en)
				if f.Enum == nil {
					d.Errorf(fo.At("enum"), fo.Sub("enum"), "enum %q is not defined; define it under enums or use one of %s", en, enumNames(s))
				} else {
					f.Bits = f.Enum.Bits
					if hasBits && width != f.Bits {
						d.Errorf(fo.At("bits"), fo.Sub("bits"), "%d does not match enum %s's %d bits; set bits: %d or remove it", width, en, f.Bits, f.Bits)
					}
				}
			}
		case TypeBytes:
			if !payload {
				d.Errorf(fo.At("type"), fo.Sub("type"), "bytes fields are only allowed in a message payload; use uint")
			} else if i != len(nodes)-1 {
				d.Errorf(fo.At("type"), fo.Sub("type"), "a bytes field must be the last field of the payload; move it to the end")
			}
			if fo.Raw("bits") == nil {
				d.Errorf(fo.Node(), fo.Path(), "missing key bits (the length prefix: 8, 16 or 32); add it")
			} else if !hasBits {
				fo.get("bits", true) // null
			} else {
				if width != 8 && width != 16 && width != 32 {
					d.Errorf(fo.At("bits"), fo.Sub("bits"), "%d is not a length-prefix width; use 8, 16 or 32", width)
				} else {
					f.Bits = width
				}
			}
		default:
			d.Errorf(fo.At("type"), fo.Sub("type"), "unknown type %q; use uint, ipv4, mac, flag, enum or bytes", f.Type)
		}
		if f.Type != TypeEnum && fo.Raw("enum") != nil {
			d.Errorf(fo.Key("enum"), fo.Sub("enum"), "only fields of type: enum name an enum; remove it or set type: enum")
		}
		if fo.Raw("const") != nil {
			c, ok := fo.uint("const", false)
			switch {
			case f.Type != TypeUint:
				// The codecs, the P4 and the dissector match a constant as
				// an unsigned word: a flag or enum one generated Go that
				// did not compile.
				d.Errorf(fo.At("const"), fo.Sub("const"), "%s field cannot be a constant; only uint fields can (make it type: uint with bits: %d)", article(string(f.Type)), max(f.Bits, 1))
			case payload:
				d.Errorf(fo.At("const"), fo.Sub("const"), "a payload field cannot be a constant; the header's constants tell TCPMig apart (move it to the header, or drop const)")
			case f.Reserved:
				d.Errorf(fo.At("const"), fo.Sub("const"), "a reserved field is always zero; remove const or reserved")
			case ok && f.Bits > 0 && !fits(c, f.Bits):
				d.Errorf(fo.At("const"), fo.Sub("const"), "%#x does not fit the field's %d bits; widen the field or fix the constant", c, f.Bits)
			case ok:
				f.Const, f.HasConst = c, true
			}
		}
		if f.Reserved && f.Type != TypeUint {
			d.Errorf(fo.At("reserved"), fo.Sub("reserved"), "only uint fields can be reserved")
		}
		off += f.Bits
		out = append(out, f)
	}
	if off%8 != 0 {
		d.Errorf(list, path, "the fields add up to %d bits, not whole bytes; add a reserved field of %s", off, plural(8-off%8, "bit"))
	}
	return out, off
}

// article puts "a" or "an" before word.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// oneOf lists the names of items for a "use one of" hint.
func oneOf[T any](items []T, name func(T) string) string {
	if len(items) == 0 {
		return "(none defined)"
	}
	ns := make([]string, len(items))
	for i, it := range items {
		ns[i] = name(it)
	}
	return strings.Join(ns, ", ")
}

func enumNames(s *Spec) string { return oneOf(s.Enums, func(e *Enum) string { return e.Name }) }

func valueNames(e *Enum) string { return oneOf(e.Values, func(v *EnumValue) string { return v.Name }) }

func (d *decoder) header(s *Spec, o *obj) {
	s.Header = &Header{}
	if o == nil {
		return
	}
	s.Header.Pos = d.Pos(o.Node())
	s.Header.Name, _ = o.name("name", true)
	switch s.Header.Name {
	case "migstate", "pipeline", "p4", "wireshark", "wire", "machine", "pipe", "genrt":
		// The codec package would share another emitter's directory (an
		// import cycle), or the name of a package the generated Go imports.
		d.Errorf(o.At("name"), o.Sub("name"), "%q is the name of a generated or imported package; pick another name for the codec package", s.Header.Name)
	}
	list := o.get("fields", true)
	nodes := o.list("fields", false)
	if list != nil && list.Kind == yaml.SequenceNode && len(nodes) == 0 {
		d.Errorf(list, o.Sub("fields"), "is empty; the header needs fields")
	}
	var total int
	if list != nil && list.Kind == yaml.SequenceNode {
		s.Header.Fields, total = d.fields(s, list, nodes, o.Sub("fields"), false)
	}
	s.Header.Bytes = total / 8
	if sf, ok := o.str("stage_field", true); ok {
		s.Header.StageField = sf
		if f := s.HeaderField(sf); f == nil || f.Type != TypeEnum {
			d.Errorf(o.At("stage_field"), o.Sub("stage_field"), "%q is not an enum field of the header; name the field that selects the message", sf)
		}
	}
}

func (d *decoder) messages(s *Spec, o *obj) {
	names := definedNames("message")
	stages := map[*EnumValue]*Message{}
	stage := s.StageEnum()
	for i, n := range o.list("messages", true) {
		path := itemPath("messages", i, n)
		mo := d.object(n, path, "name", "stage", "from", "doc", "payload", "fragmented")
		if mo.Bad() {
			continue
		}
		m := &Message{Pos: d.Pos(n), From: "server"}
		m.Name, _ = mo.name("name", true)
		if !d.claim(names, mo, m.Name) {
			continue
		}
		m.Doc, _ = mo.str("doc", false)
		if f, ok := mo.str("from", false); ok {
			if f != "server" && f != "switch" && f != "any" {
				d.Errorf(mo.At("from"), mo.Sub("from"), "%q is not a sender; use server, switch or any", f)
			}
			m.From = f
		}
		if sv, ok := mo.str("stage", true); ok && stage != nil {
			for _, v := range stage.Values {
				if v.Name == sv {
					m.Stage = v
				}
			}
			switch {
			case m.Stage == nil:
				d.Errorf(mo.At("stage"), mo.Sub("stage"), "%q is not a value of enum %s; use one of %s", sv, stage.Name, valueNames(stage))
			case stages[m.Stage] != nil:
				d.Errorf(mo.At("stage"), mo.Sub("stage"), "stage %s already selects message %s (line %d); give each message its own stage", sv, stages[m.Stage].Name, stages[m.Stage].Pos.Line)
			default:
				stages[m.Stage] = m
			}
		}
		if pl := mo.get("payload", false); pl != nil {
			nodes := mo.list("payload", false)
			var total int
			if pl.Kind == yaml.SequenceNode {
				m.Payload, total = d.fields(s, pl, nodes, mo.Sub("payload"), true)
			}
			m.PayloadBytes = total / 8
		}
		if fo := mo.object("fragmented", false, "index_field", "more_field", "max_bytes", "max_pending", "timeout"); fo != nil && !fo.Bad() {
			m.Fragmented = true
			fr := &Fragmentation{}
			m.Fragmentation = fr
			if v, ok := fo.str("index_field", true); ok {
				fr.IndexField = v
				if f := s.HeaderField(v); f == nil || f.Type != TypeUint || f.Bits != 16 {
					d.Errorf(fo.At("index_field"), fo.Sub("index_field"), "%q is not a 16-bit uint header field; name the header field that carries the fragment index", v)
				}
			}
			if v, ok := fo.str("more_field", true); ok {
				fr.MoreField = v
				if f := s.HeaderField(v); f == nil || f.Type != TypeFlag {
					d.Errorf(fo.At("more_field"), fo.Sub("more_field"), "%q is not a flag header field; name the flag that says another fragment follows", v)
				}
			}
			for _, k := range []struct {
				key string
				dst *int
			}{{"max_bytes", &fr.MaxBytes}, {"max_pending", &fr.MaxPending}} {
				if v, ok := fo.int(k.key, true); ok {
					if v <= 0 {
						d.Errorf(fo.At(k.key), fo.Sub(k.key), "%d must be above 0; set a positive value", v)
					}
					*k.dst = v
				}
			}
			if v, ok := fo.duration("timeout", true); ok {
				if v <= 0 {
					d.Errorf(fo.At("timeout"), fo.Sub("timeout"), "%v must be above 0; set a positive duration like 5ms", v)
				}
				fr.Timeout = v
			}
			if s.Transport.MTU > 0 && s.Header != nil {
				fr.FragmentBytes = s.Transport.MTU - 20 - 8 - s.Header.Bytes - m.PayloadBytes
				if fr.FragmentBytes <= 0 {
					d.Errorf(fo.Node(), fo.Path(), "no room for fragment data at MTU %d (IPv4 20 + UDP 8 + header %d + payload %d bytes); raise transport.mtu or shrink the payload",
						s.Transport.MTU, s.Header.Bytes, m.PayloadBytes)
				}
			}
		}
		if !m.Fragmented && s.Transport.MTU > 0 && s.Header != nil {
			if room := s.Transport.MTU - 20 - 8 - s.Header.Bytes; m.PayloadBytes > room {
				d.Errorf(mo.Node(), mo.Path(), "is %d bytes with its header, over the %d a datagram holds at MTU %d; shrink the payload, raise transport.mtu or fragment it",
					s.Header.Bytes+m.PayloadBytes, s.Transport.MTU-28, s.Transport.MTU)
			}
		}
		s.Messages = append(s.Messages, m)
	}
}

func (d *decoder) directory(s *Spec, o *obj) {
	dir := &Directory{}
	s.Directory = dir
	if o == nil || o.Bad() {
		return
	}
	dir.Pos = d.Pos(o.Node())
	// The key names the client's address fields by the names gen/SWITCH.md
	// uses; switchNames checks those fields' shapes in the header.
	keys, _ := o.strings("key", true)
	dir.Key = keys
	if o.Raw("key") != nil && o.Raw("key").Kind == yaml.SequenceNode {
		if len(keys) != 2 || keys[0] != FieldClientIP || keys[1] != FieldClientPort {
			d.Errorf(o.At("key"), o.Sub("key"), "must be [%s, %s]: the switch keys its directory on the client's address, which it reads from those header fields (gen/SWITCH.md); got [%s]",
				FieldClientIP, FieldClientPort, strings.Join(keys, ", "))
		}
	}
	if v, ok := o.int("index_bits", true); ok {
		dir.IndexBits = v
		if t := s.Target; t != nil && (v < t.MinIndexBits || v > t.MaxIndexBits) {
			d.Errorf(o.At("index_bits"), o.Sub("index_bits"), "%d is outside what %s allows (%d..%d); %s", v, t.Name, t.MinIndexBits, t.MaxIndexBits, indexBitsHint(t, v))
		}
	}
	lnodes := o.list("levels", true)
	if o.Raw("levels") != nil && o.Raw("levels").Kind == yaml.SequenceNode && len(lnodes) < 1 {
		d.Errorf(o.At("levels"), o.Sub("levels"), "has no levels; a directory needs at least 1")
	}
	for i, ln := range lnodes {
		lo := d.object(ln, fmt.Sprintf("%s[%d]", o.Sub("levels"), i), "hash")
		if lo.Bad() {
			continue
		}
		l := &Level{Pos: d.Pos(ln), Hash: &CRC{}}
		if ho := lo.object("hash", true, "name", "width", "poly", "reversed", "init", "xor_out"); ho != nil && !ho.Bad() {
			c := l.Hash
			c.Pos = d.Pos(ho.Node())
			c.Name, _ = ho.name("name", true)
			c.Reversed = ho.bool("reversed")
			widthOK := false
			if w, ok := ho.int("width", true); ok {
				if w != 16 && w != 32 {
					d.Errorf(ho.At("width"), ho.Sub("width"), "%d is not a CRC width Tofino hashes; use 16 or 32", w)
				} else {
					c.Width, widthOK = w, true
					if dir.IndexBits > w {
						d.Errorf(ho.At("width"), ho.Sub("width"), "a %d-bit CRC cannot index %d bits; use width: 32 or lower index_bits", w, dir.IndexBits)
					}
				}
			}
			for _, k := range []struct {
				key      string
				dst      *uint64
				required bool
			}{{"poly", &c.Poly, true}, {"init", &c.Init, false}, {"xor_out", &c.XorOut, false}} {
				if v, ok := ho.uint(k.key, k.required); ok {
					*k.dst = v
					if widthOK && !fits(v, c.Width) {
						d.Errorf(ho.At(k.key), ho.Sub(k.key), "%#x is wider than the %d-bit CRC; use a value up to %#x", v, c.Width, maxOf(c.Width))
					}
					if k.key == "poly" && v == 0 {
						d.Errorf(ho.At(k.key), ho.Sub(k.key), "0x0: a zero polynomial hashes every key to init, so every key lands in one slot; use an odd polynomial such as 0x8005")
					}
				}
			}
		}
		dir.Levels = append(dir.Levels, l)
	}
	if v, ok := o.str("insert", true); ok {
		dir.Insert = v
		if v != "write_if_empty" {
			d.Errorf(o.At("insert"), o.Sub("insert"), "unknown insert policy %q; use write_if_empty", v)
		}
	}
	if v, ok := o.str("on_full", true); ok {
		dir.OnFull = v
		if v != "reject" {
			d.Errorf(o.At("on_full"), o.Sub("on_full"), "unknown on_full policy %q; use reject", v)
		}
	}
	dir.DeleteOnPos = d.Pos(o.At("delete_on"))
	flags, fnodes := o.strings("delete_on", true)
	seen := map[string]bool{}
	for i, f := range flags {
		switch {
		case f != "rst" && f != "fin":
			d.Errorf(fnodes[i], fmt.Sprintf("%s[%d]", o.Sub("delete_on"), i), "%q is not a TCP flag that deletes entries; use rst or fin", f)
		case seen[f]:
			d.Errorf(fnodes[i], fmt.Sprintf("%s[%d]", o.Sub("delete_on"), i), "%s is listed twice; remove one", f)
		}
		seen[f] = true
	}
	dir.DeleteOn = flags
	// release names a message; switchNames checks it once the workload's
	// heartbeat, which it must not be, is known.
	if v, ok := o.name("release", false); ok {
		dir.Release = v
		dir.ReleasePos = d.Pos(o.At("release"))
	}
	// A directory cell is a register pair of two 32-bit halves.
	if t := s.Target; t != nil && 64 > t.MaxRegisterBits {
		d.Errorf(o.Node(), o.Path(), "a directory cell needs 64-bit registers (ip + port, origin + target) but %s's max_register_bits is %d; pick another target", t.Name, t.MaxRegisterBits)
	}
}

// indexBitsHint says what to change when index_bits does not fit t.
func indexBitsHint(t *Target, v int) string {
	var ok []string
	for _, n := range TargetNames() {
		if n == t.Name {
			continue
		}
		if o, err := LoadTarget(n); err == nil && v >= o.MinIndexBits && v <= o.MaxIndexBits {
			ok = append(ok, n)
		}
	}
	verb := "lower"
	if v < t.MinIndexBits {
		verb = "raise"
	}
	if len(ok) > 0 {
		return verb + " it or pick target " + strings.Join(ok, " or ")
	}
	return fmt.Sprintf("%s it into %d..%d", verb, t.MinIndexBits, t.MaxIndexBits)
}

// maxAgeStep bounds workload.age_step: a step is a constant of the
// switch's stateful ALU, and a larger one would make the held minimum
// meaningless between the holder's reports anyway.
const maxAgeStep = 1<<16 - 1

func (d *decoder) workload(s *Spec, o *obj) {
	w := &Workload{}
	s.Workload = w
	if o == nil || o.Bad() {
		return
	}
	w.Pos = d.Pos(o.Node())
	if v, ok := o.int("bits", true); ok {
		w.Bits = v
		if v < 1 || v > 32 {
			d.Errorf(o.At("bits"), o.Sub("bits"), "%d is outside 1..32 (the register holds a 32-bit load); pick a width in that range", v)
		} else if t := s.Target; t != nil && 32+v > t.MaxRegisterBits {
			d.Errorf(o.At("bits"), o.Sub("bits"), "holder ip (32) + %d bits exceeds %s's max_register_bits %d; lower bits", v, t.Name, t.MaxRegisterBits)
		}
	}
	var hb *Message
	if v, ok := o.str("heartbeat", true); ok {
		w.Heartbeat = v
		if hb = s.MessageByName(v); hb == nil {
			d.Errorf(o.At("heartbeat"), o.Sub("heartbeat"), "%q is not a message; name the message servers report their load with", v)
		}
	}
	if v, ok := o.str("metric_field", true); ok {
		w.MetricField = v
		if hb != nil {
			var f *Field
			for _, pf := range hb.Payload {
				if pf.Name == v {
					f = pf
				}
			}
			if f == nil || f.Type != TypeUint {
				d.Errorf(o.At("metric_field"), o.Sub("metric_field"), "%q is not a uint field of %s's payload; name the field with the load", v, hb.Name)
			}
		}
	}
	if v, ok := o.str("update", true); ok {
		w.Update = v
		if v != "holder_or_smaller" {
			d.Errorf(o.At("update"), o.Sub("update"), "unknown update rule %q; use holder_or_smaller", v)
		}
	}
	if v, ok := o.int("age_step", false); ok {
		if v < 0 || v > maxAgeStep {
			d.Errorf(o.At("age_step"), o.Sub("age_step"), "%d is outside 0..%d; use 0 (no aging) or a small step such as 1", v, maxAgeStep)
		} else if v > 0 && w.Bits >= 1 && w.Bits < 32 { // a bad width has its own error
			// The aged load saturates at the register half's 2^32-1, which
			// a narrower load could neither report nor write back.
			d.Errorf(o.At("age_step"), o.Sub("age_step"), "aging needs workload.bits 32 (it is %d): an aged load runs past %d bits; set bits to 32 or age_step to 0", w.Bits, w.Bits)
		} else {
			w.AgeStep = uint32(v)
		}
	}
}

// defined is where each name of one kind was defined in one scope.
type defined struct {
	kind string // "enum", "state", ...: how errors name it
	at   map[string]*yaml.Node
}

func definedNames(kind string) defined { return defined{kind, map[string]*yaml.Node{}} }

// claim records the name of the item o, or reports that the scope has it
// already and returns false. An empty name, reported as missing already,
// is not recorded.
func (d *decoder) claim(scope defined, o *obj, name string) bool {
	if name == "" {
		return true
	}
	if prev := scope.at[name]; prev != nil {
		d.Errorf(o.At("name"), o.Sub("name"), "%s %q is already defined at line %d; rename one", scope.kind, name, prev.Line)
		return false
	}
	scope.at[name] = o.At("name")
	return true
}
