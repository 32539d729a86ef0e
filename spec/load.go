package spec

import (
	"bytes"
	"embed"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

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

// Parse decodes and validates a spec; name is used in diagnostics.
func Parse(name string, data []byte) (*Spec, error) {
	var raw rawSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s, err := resolve(name, &raw)
	if err != nil {
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

// LoadTarget returns an embedded target profile by name.
func LoadTarget(name string) (*Target, error) {
	b, err := targetFS.ReadFile("targets/" + name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(TargetNames(), ", "))
	}
	var raw rawTarget
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("spec/targets/%s.yaml: %w", name, err)
	}
	t := &Target{
		Name: raw.Name, Arch: raw.Arch, TofinoVersion: raw.TofinoVersion,
		Stages: raw.Stages.Value, SRAMBlocksPerStage: raw.SRAMBlocksPerStage.Value,
		SRAMBlockBits: raw.SRAMBlockBits.Value, MapRAMBlocksPerStage: raw.MapRAMBlocksPerStage.Value,
		StatefulALUsPerStage: raw.StatefulALUsPerStage.Value, HashUnitsPerStage: raw.HashUnitsPerStage.Value,
		MaxRegisterBits: raw.MaxRegisterBits.Value, MinIndexBits: raw.MinIndexBits.Value,
		MaxIndexBits: raw.MaxIndexBits.Value, PortBits: raw.PortBits.Value,
		Sources: map[string]string{
			"stages": raw.Stages.Source, "sram_blocks_per_stage": raw.SRAMBlocksPerStage.Source,
			"sram_block_bits": raw.SRAMBlockBits.Source, "map_ram_blocks_per_stage": raw.MapRAMBlocksPerStage.Source,
			"stateful_alus_per_stage": raw.StatefulALUsPerStage.Source, "hash_units_per_stage": raw.HashUnitsPerStage.Source,
			"max_register_bits": raw.MaxRegisterBits.Source, "min_index_bits": raw.MinIndexBits.Source,
			"max_index_bits": raw.MaxIndexBits.Source, "port_bits": raw.PortBits.Source,
		},
	}
	return t, nil
}

type sourced struct {
	Value  int    `yaml:"value"`
	Source string `yaml:"source"`
}

type rawTarget struct {
	Version              int     `yaml:"version"`
	Name                 string  `yaml:"name"`
	Arch                 string  `yaml:"arch"`
	TofinoVersion        int     `yaml:"tofino_version"`
	PortBits             sourced `yaml:"port_bits"`
	Stages               sourced `yaml:"stages"`
	SRAMBlocksPerStage   sourced `yaml:"sram_blocks_per_stage"`
	SRAMBlockBits        sourced `yaml:"sram_block_bits"`
	MapRAMBlocksPerStage sourced `yaml:"map_ram_blocks_per_stage"`
	StatefulALUsPerStage sourced `yaml:"stateful_alus_per_stage"`
	HashUnitsPerStage    sourced `yaml:"hash_units_per_stage"`
	MaxRegisterBits      sourced `yaml:"max_register_bits"`
	MinIndexBits         sourced `yaml:"min_index_bits"`
	MaxIndexBits         sourced `yaml:"max_index_bits"`
}

type rawSpec struct {
	Version   int          `yaml:"version"`
	Name      string       `yaml:"name"`
	Doc       string       `yaml:"doc"`
	Target    string       `yaml:"target"`
	Budget    rawBudget    `yaml:"budget"`
	Tables    rawTables    `yaml:"tables"`
	Transport rawTransport `yaml:"transport"`
	Enums     []rawEnum    `yaml:"enums"`
	Header    rawHeader    `yaml:"header"`
	Messages  []rawMessage `yaml:"messages"`
	Directory rawDirectory `yaml:"directory"`
	Workload  rawWorkload  `yaml:"workload"`
	Machines  []rawMachine `yaml:"machines"`
}

type rawBudget struct {
	SRAM         string `yaml:"sram"`
	MapRAM       string `yaml:"map_ram"`
	StatefulALUs string `yaml:"stateful_alus"`
	HashUnits    string `yaml:"hash_units"`
	Stages       int    `yaml:"stages"`
}

type rawTables struct {
	Hosts int `yaml:"hosts"`
	Ports int `yaml:"ports"`
	L2    int `yaml:"l2"`
}

type rawTransport struct {
	UDPPort  int    `yaml:"udp_port"`
	MTU      int    `yaml:"mtu"`
	Checksum string `yaml:"checksum"`
}

type rawEnum struct {
	Name   string `yaml:"name"`
	Bits   int    `yaml:"bits"`
	Doc    string `yaml:"doc"`
	Values []struct {
		Name  string `yaml:"name"`
		Value uint64 `yaml:"value"`
		Doc   string `yaml:"doc"`
	} `yaml:"values"`
}

type rawField struct {
	Name     string  `yaml:"name"`
	Type     string  `yaml:"type"`
	Bits     int     `yaml:"bits"`
	Enum     string  `yaml:"enum"`
	Const    *uint64 `yaml:"const"`
	Reserved bool    `yaml:"reserved"`
	Doc      string  `yaml:"doc"`
}

type rawHeader struct {
	Name       string     `yaml:"name"`
	StageField string     `yaml:"stage_field"`
	Fields     []rawField `yaml:"fields"`
}

type rawMessage struct {
	Name       string     `yaml:"name"`
	Stage      string     `yaml:"stage"`
	From       string     `yaml:"from"`
	Doc        string     `yaml:"doc"`
	Payload    []rawField `yaml:"payload"`
	Fragmented *struct {
		IndexField string `yaml:"index_field"`
		MoreField  string `yaml:"more_field"`
		MaxBytes   int    `yaml:"max_bytes"`
		MaxPending int    `yaml:"max_pending"`
		Timeout    string `yaml:"timeout"`
	} `yaml:"fragmented"`
}

type rawCRC struct {
	Name     string `yaml:"name"`
	Width    int    `yaml:"width"`
	Poly     uint64 `yaml:"poly"`
	Reversed bool   `yaml:"reversed"`
	Init     uint64 `yaml:"init"`
	XorOut   uint64 `yaml:"xor_out"`
}

type rawDirectory struct {
	Key       []string `yaml:"key"`
	IndexBits int      `yaml:"index_bits"`
	Levels    []struct {
		Hash rawCRC `yaml:"hash"`
	} `yaml:"levels"`
	Insert   string   `yaml:"insert"`
	OnFull   string   `yaml:"on_full"`
	DeleteOn []string `yaml:"delete_on"`
}

type rawWorkload struct {
	Bits        int    `yaml:"bits"`
	Heartbeat   string `yaml:"heartbeat"`
	MetricField string `yaml:"metric_field"`
	Update      string `yaml:"update"`
}

type rawMachine struct {
	Name    string `yaml:"name"`
	Doc     string `yaml:"doc"`
	Initial string `yaml:"initial"`
	States  []struct {
		Name    string `yaml:"name"`
		Doc     string `yaml:"doc"`
		Final   bool   `yaml:"final"`
		Timeout *struct {
			After     string   `yaml:"after"`
			Retries   int      `yaml:"retries"`
			Resend    string   `yaml:"resend"`
			Exhausted string   `yaml:"exhausted"`
			GiveUp    []string `yaml:"give_up"`
		} `yaml:"timeout"`
	} `yaml:"states"`
	Events []struct {
		Name    string `yaml:"name"`
		Message string `yaml:"message"`
		Doc     string `yaml:"doc"`
	} `yaml:"events"`
	Actions []struct {
		Name string `yaml:"name"`
		Send string `yaml:"send"`
		Doc  string `yaml:"doc"`
	} `yaml:"actions"`
	Transitions []struct {
		From string   `yaml:"from"`
		On   string   `yaml:"on"`
		To   string   `yaml:"to"`
		Do   []string `yaml:"do"`
	} `yaml:"transitions"`
	Ignore []struct {
		In string `yaml:"in"`
		On string `yaml:"on"`
	} `yaml:"ignore"`
}

// resolve turns the raw document into the model, resolving names.
func resolve(file string, r *rawSpec) (*Spec, error) {
	var errs []string
	fail := func(format string, a ...any) {
		errs = append(errs, fmt.Sprintf("%s: %s", file, fmt.Sprintf(format, a...)))
	}

	if r.Version != Version {
		fail("version %d is not supported; set version: %d", r.Version, Version)
	}
	s := &Spec{Version: r.Version, Name: r.Name, Doc: r.Doc, Source: file}
	s.Transport = Transport{UDPPort: uint16(r.Transport.UDPPort), MTU: r.Transport.MTU, Checksum: r.Transport.Checksum}
	s.Tables = Tables{Hosts: r.Tables.Hosts, Ports: r.Tables.Ports, L2: r.Tables.L2}

	t, err := LoadTarget(r.Target)
	if err != nil {
		fail("target: %v", err)
	} else {
		s.Target = t
		pct := func(field, v string, total int) int {
			p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
			if err != nil || !strings.HasSuffix(v, "%") {
				fail("budget.%s: %q is not a percentage like 40%%", field, v)
			}
			return int(float64(total) * p / 100)
		}
		s.Budget = Budget{
			SRAMBlocks:   pct("sram", r.Budget.SRAM, t.Stages*t.SRAMBlocksPerStage),
			MapRAMBlocks: pct("map_ram", r.Budget.MapRAM, t.Stages*t.MapRAMBlocksPerStage),
			StatefulALUs: pct("stateful_alus", r.Budget.StatefulALUs, t.Stages*t.StatefulALUsPerStage),
			HashUnits:    pct("hash_units", r.Budget.HashUnits, t.Stages*t.HashUnitsPerStage),
			Stages:       r.Budget.Stages,
		}
	}

	for _, re := range r.Enums {
		e := &Enum{Name: re.Name, Bits: re.Bits, Doc: re.Doc}
		for _, v := range re.Values {
			e.Values = append(e.Values, &EnumValue{Name: v.Name, Value: v.Value, Doc: v.Doc})
		}
		s.Enums = append(s.Enums, e)
	}

	fields := func(where string, rf []rawField) ([]*Field, int) {
		var out []*Field
		off := 0
		for _, f := range rf {
			fd := &Field{Name: f.Name, Type: FieldType(f.Type), Bits: f.Bits, Reserved: f.Reserved, Doc: f.Doc, Offset: off}
			if fd.Type == "" {
				fd.Type = TypeUint
			}
			switch fd.Type {
			case TypeIPv4:
				fd.Bits = 32
			case TypeMAC:
				fd.Bits = 48
			case TypeFlag:
				fd.Bits = 1
			case TypeEnum:
				fd.Enum = s.EnumByName(f.Enum)
				if fd.Enum == nil {
					fail("%s.%s: enum %q is not defined", where, f.Name, f.Enum)
				} else {
					fd.Bits = fd.Enum.Bits
				}
			}
			if f.Const != nil {
				fd.Const, fd.HasConst = *f.Const, true
			}
			off += fd.Bits
			out = append(out, fd)
		}
		return out, off
	}
	s.Header = &Header{Name: r.Header.Name, StageField: r.Header.StageField}
	var bits int
	s.Header.Fields, bits = fields("header", r.Header.Fields)
	s.Header.Bytes = bits / 8
	stage := s.StageEnum()
	if stage == nil {
		fail("header.stage_field: %q is not an enum field of the header", r.Header.StageField)
	}

	for _, rm := range r.Messages {
		m := &Message{Name: rm.Name, From: rm.From, Doc: rm.Doc}
		if m.From == "" {
			m.From = "server"
		}
		if stage != nil {
			for _, v := range stage.Values {
				if v.Name == rm.Stage {
					m.Stage = v
				}
			}
		}
		if m.Stage == nil {
			fail("messages.%s.stage: %q is not a value of the stage enum", rm.Name, rm.Stage)
		}
		m.Payload, bits = fields("messages."+rm.Name+".payload", rm.Payload)
		m.PayloadBytes = bits / 8
		if rf := rm.Fragmented; rf != nil {
			d, err := time.ParseDuration(rf.Timeout)
			if err != nil {
				fail("messages.%s.fragmented.timeout: %v", rm.Name, err)
			}
			m.Fragmented = true
			m.Fragmentation = &Fragmentation{
				IndexField: rf.IndexField, MoreField: rf.MoreField, MaxBytes: rf.MaxBytes,
				MaxPending: rf.MaxPending, Timeout: d,
				FragmentBytes: s.Transport.MTU - 20 - 8 - s.Header.Bytes - m.PayloadBytes,
			}
		}
		s.Messages = append(s.Messages, m)
	}

	s.Directory = &Directory{Key: r.Directory.Key, IndexBits: r.Directory.IndexBits, Insert: r.Directory.Insert,
		OnFull: r.Directory.OnFull, DeleteOn: r.Directory.DeleteOn}
	for _, l := range r.Directory.Levels {
		h := l.Hash
		s.Directory.Levels = append(s.Directory.Levels, &Level{Hash: &CRC{Name: h.Name, Width: h.Width, Poly: h.Poly,
			Reversed: h.Reversed, Init: h.Init, XorOut: h.XorOut}})
	}
	s.Workload = &Workload{Bits: r.Workload.Bits, Update: r.Workload.Update, MetricField: r.Workload.MetricField,
		Heartbeat: r.Workload.Heartbeat}

	for _, rm := range r.Machines {
		m := &Machine{Name: rm.Name, Doc: rm.Doc}
		state := map[string]*State{}
		for _, st := range rm.States {
			x := &State{Name: st.Name, Doc: st.Doc, Final: st.Final}
			state[st.Name] = x
			m.States = append(m.States, x)
		}
		event := map[string]*Event{}
		for _, ev := range rm.Events {
			x := &Event{Name: ev.Name, Doc: ev.Doc}
			if ev.Message != "" {
				x.Message = s.MessageByName(ev.Message)
				if x.Message == nil {
					fail("machines.%s.events.%s: message %q is not defined", rm.Name, ev.Name, ev.Message)
				}
			}
			event[ev.Name] = x
			m.Events = append(m.Events, x)
		}
		action := map[string]*Action{}
		for _, a := range rm.Actions {
			x := &Action{Name: a.Name, Doc: a.Doc}
			if a.Send != "" {
				x.Send = s.MessageByName(a.Send)
				if x.Send == nil {
					fail("machines.%s.actions.%s: message %q is not defined", rm.Name, a.Name, a.Send)
				}
			}
			action[a.Name] = x
			m.Actions = append(m.Actions, x)
		}
		actions := func(names []string) []*Action {
			var out []*Action
			for _, n := range names {
				if a := action[n]; a != nil {
					out = append(out, a)
				} else {
					fail("machines.%s: action %q is not defined", rm.Name, n)
				}
			}
			return out
		}
		hasTimeout := false
		for i, st := range rm.States {
			if st.Timeout == nil {
				continue
			}
			hasTimeout = true
			d, err := time.ParseDuration(st.Timeout.After)
			if err != nil {
				fail("machines.%s.states.%s.timeout.after: %v", rm.Name, st.Name, err)
			}
			to := &Timeout{After: d, Retries: st.Timeout.Retries, Exhausted: state[st.Timeout.Exhausted], GiveUp: actions(st.Timeout.GiveUp)}
			if st.Timeout.Resend != "" {
				to.Resend = action[st.Timeout.Resend]
			}
			if to.Exhausted == nil {
				fail("machines.%s.states.%s.timeout.exhausted: state %q is not defined", rm.Name, st.Name, st.Timeout.Exhausted)
			}
			m.States[i].Timeout = to
		}
		if hasTimeout {
			m.Events = append(m.Events, &Event{Name: TimeoutEvent, Doc: "The state's timer fired."})
			event[TimeoutEvent] = m.Events[len(m.Events)-1]
		}
		m.Initial = state[rm.Initial]
		if m.Initial == nil {
			fail("machines.%s.initial: state %q is not defined", rm.Name, rm.Initial)
		}
		for _, tr := range rm.Transitions {
			x := &Transition{From: state[tr.From], On: event[tr.On], To: state[tr.To], Actions: actions(tr.Do)}
			if x.From == nil || x.On == nil || x.To == nil {
				fail("machines.%s.transitions: %s --%s--> %s names an undefined state or event", rm.Name, tr.From, tr.On, tr.To)
				continue
			}
			m.Transitions = append(m.Transitions, x)
		}
		for _, ig := range rm.Ignore {
			x := &Ignore{State: state[ig.In], On: event[ig.On]}
			if x.State == nil || x.On == nil {
				fail("machines.%s.ignore: (%s, %s) names an undefined state or event", rm.Name, ig.In, ig.On)
				continue
			}
			m.Ignores = append(m.Ignores, x)
		}
		s.Machines = append(s.Machines, m)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return s, nil
}
