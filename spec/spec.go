// Package spec is the single source of truth for capygen: the TCPMig message
// formats, the switch's migration directory and workload register, the
// migration state machines, and the switch target with its resource budget.
//
// A spec is a versioned YAML file (see capybara.yaml beside this file). Load
// decodes it strictly and validates it; every problem is reported as
// "file:line:col: message". Every emitter in gen/ reads only the types below,
// so the Go codecs, the pipeline model and the P4 program cannot disagree.
package spec

import "time"

// Version is the only spec format version this package reads.
const Version = 1

// Spec is a loaded, validated spec.
type Spec struct {
	Version int
	// Name names the system. It becomes the P4 program name and the
	// @pkginfo name, so it must be a lower_snake identifier.
	Name string
	Doc  string

	Transport Transport
	Enums     []*Enum
	Header    *Header
	Messages  []*Message
	Directory *Directory
	Workload  *Workload
	Machines  []*Machine

	// Target is the switch target profile the spec is planned for,
	// resolved from spec/targets/<name>.yaml.
	Target *Target
	// Budget is the share of Target this program may use, in absolute
	// units (percentages in the file are resolved against Target).
	Budget Budget
	// Tables sizes the control-plane tables of the switch program.
	Tables Tables

	// Fingerprint is a stable hash of the spec's semantic content (not
	// its formatting). It goes into @pkginfo, the p4info and the Go code,
	// so a runtime can refuse a pipeline generated from another spec.
	Fingerprint string

	// Source is the path the spec was loaded from, as given to Load.
	Source string
}

// Transport says how TCPMig travels.
type Transport struct {
	// UDPPort is the UDP destination port that carries TCPMig.
	UDPPort uint16
	// MTU is the link MTU that fragment sizes are derived from.
	MTU int
	// Checksum is "udp" (the standard UDP checksum over the pseudo
	// header, mandatory: a zero checksum is refused) or "wrapping16"
	// (the authors' 16-bit wrapping sum of the TCPMig payload, carried in
	// the UDP checksum field).
	Checksum string
	// Pos is the transport section; UDPPortPos its udp_port value.
	Pos        Pos
	UDPPortPos Pos
}

// Enum is a named set of values of a fixed bit width.
type Enum struct {
	Name   string
	Bits   int
	Doc    string
	Values []*EnumValue
	Pos    Pos
}

// EnumValue is one member of an Enum.
type EnumValue struct {
	Name  string
	Value uint64
	Doc   string
	Pos   Pos
}

// FieldType says how a field is interpreted.
type FieldType string

const (
	// TypeUint is an unsigned integer of Bits bits.
	TypeUint FieldType = "uint"
	// TypeIPv4 is a 32-bit IPv4 address.
	TypeIPv4 FieldType = "ipv4"
	// TypeMAC is a 48-bit Ethernet address.
	TypeMAC FieldType = "mac"
	// TypeFlag is a single bit.
	TypeFlag FieldType = "flag"
	// TypeEnum is an Enum of the enum's width.
	TypeEnum FieldType = "enum"
	// TypeBytes is a byte string with a length prefix of Bits bits; only
	// allowed as the last field of a payload.
	TypeBytes FieldType = "bytes"
)

// Field is one field of the header or a payload, in wire order. Fields are
// packed most significant bit first, as in P4 headers; the bit widths of
// consecutive non-byte-aligned fields must add up to whole bytes.
type Field struct {
	Name string
	Type FieldType
	// Bits is the width in bits. For ipv4 it is 32, for mac 48, for flag 1,
	// for enum the enum's width, for bytes the width of the length prefix.
	Bits int
	// Enum is set for TypeEnum.
	Enum *Enum
	// Const, when HasConst, is the only accepted value (a magic number):
	// decoders refuse anything else, encoders always write it.
	Const    uint64
	HasConst bool
	// Reserved fields are written as zero and ignored on decode.
	Reserved bool
	Doc      string
	// Offset is the field's bit offset from the start of its header or
	// payload, computed by Load.
	Offset int
	Pos    Pos
}

// Header is the fixed header that follows UDP in every TCPMig message.
type Header struct {
	Name   string
	Fields []*Field
	// StageField names the enum field that selects the message.
	StageField string
	// Bytes is the header length, computed by Load.
	Bytes int
	Pos   Pos
}

// Message is one TCPMig message kind, selected by its stage value.
type Message struct {
	Name string
	// Stage is the value of the header's stage field for this message; it
	// must be a value of the stage enum.
	Stage *EnumValue
	// Payload fields follow the header, in wire order.
	Payload []*Field
	// PayloadBytes is the fixed part of the payload, computed by Load
	// (a trailing bytes field adds its length prefix only).
	PayloadBytes int
	// From says who may send it: "server" (the default) or "switch".
	From string
	// Fragmented messages are cut into fragments that each fit the MTU;
	// see Fragmentation.
	Fragmented    bool
	Fragmentation *Fragmentation
	Doc           string
	Pos           Pos
}

// Fragmentation bounds the reassembly of a fragmented message.
type Fragmentation struct {
	// IndexField and MoreField name the header fields that carry the
	// fragment index and the "another fragment follows" flag.
	IndexField string
	MoreField  string
	// FragmentBytes is the payload carried per fragment: MTU - 20 (IPv4)
	// - 8 (UDP) - header bytes, computed by Load.
	FragmentBytes int
	// MaxBytes caps the total reassembled size.
	MaxBytes int
	// MaxPending caps how many messages may be in reassembly at once.
	MaxPending int
	// Timeout drops a partial message that has not completed in time.
	Timeout time.Duration
}

// Directory is the switch's migration directory: Levels hash-indexed
// register arrays of 2^IndexBits entries each, keyed by client address.
type Directory struct {
	// Key lists the header fields that identify a migrated connection in
	// TCPMig messages. It must be [client_ip, client_port] (FieldClientIP,
	// FieldClientPort), the names gen/SWITCH.md reads: the rule is by name
	// because the types alone (an ipv4 and a 16-bit field) would also admit
	// origin_ip and origin_port, the server's address. In TCP packets the
	// key is the client's address: source for requests, destination for
	// responses.
	Key []string
	// IndexBits is the hash width W: each level has 2^W entries.
	IndexBits int
	// Levels, in lookup order. Each level has its own hash.
	Levels []*Level
	// Insert is the insert policy; only "write_if_empty" exists: an entry
	// is written at the first level whose slot is empty or already holds
	// the key, and never over another key.
	Insert string
	// OnFull is what the switch does when every level's slot is taken:
	// "reject" answers REJECTED to the migration's origin.
	OnFull string
	// DeleteOn lists TCP flags whose appearance in a packet of a migrated
	// connection removes its entry: "rst", "fin". Empty is legal but Vet
	// warns: entries then pile up until the directory is full.
	DeleteOn []string
	// Release names the message (MessageConnClosed in the default spec)
	// that the server holding a migrated connection sends once the
	// connection has finished; its arrival clears the key from every level
	// and the switch echoes it back as the acknowledgement. Load checks it
	// is a header-only message from a server that the switch does not
	// otherwise act on. Empty: no message clears entries.
	Release string
	Pos     Pos
	// DeleteOnPos and ReleasePos are where delete_on and release are
	// written (zero when absent).
	DeleteOnPos Pos
	ReleasePos  Pos
}

// Level is one directory level.
type Level struct {
	Hash *CRC
	Pos  Pos
}

// CRC is a CRC hash as Tofino's CRCPolynomial extern describes it. The
// directory index is the CRC of the key bytes (client IPv4 then client
// port, big-endian) truncated to the low IndexBits bits.
type CRC struct {
	// Name is a label for documentation (e.g. "crc16_arc").
	Name string
	// Width is the CRC width in bits: 16 or 32.
	Width int
	// Poly is the polynomial without its top bit (e.g. 0x8005). Load
	// refuses 0, which hashes every key to Init.
	Poly uint64
	// Reversed reflects input bytes and the output (refin/refout).
	Reversed bool
	Init     uint64
	XorOut   uint64
	Pos      Pos
}

// Workload is the switch's minimum-workload register.
type Workload struct {
	// Bits is the width of the workload metric.
	Bits int
	// Update is the rule HEARTBEATs apply: "holder_or_smaller" (the
	// holder's own heartbeat always overwrites, so its load can rise;
	// another server's only when smaller).
	Update string
	// AgeStep is what each other server's report that does not take the
	// register adds to the held load (saturating). A holder that stops
	// reporting, a dead server, is then replaced once its aged load passes
	// a live server's report; the price is that the held minimum runs up
	// to (servers-1)*AgeStep above the holder's report between its
	// reports. 0 turns aging off: a dead holder stays the minimum until a
	// smaller report comes, which may be never.
	AgeStep uint32
	// MetricField names the heartbeat payload field with the metric.
	MetricField string
	// Heartbeat names the message that updates the register.
	Heartbeat string
	Pos       Pos
}

// Machine is a migration state machine (the origin's or the target's).
type Machine struct {
	Name    string
	Doc     string
	Initial *State
	States  []*State
	Events  []*Event
	Actions []*Action
	// Transitions, in spec order; at most one per (state, event).
	Transitions []*Transition
	// Ignores are (state, event) pairs that are accepted and change
	// nothing: duplicates and stale messages the spec expects.
	Ignores []*Ignore
	Pos     Pos
}

// State is one state of a Machine.
type State struct {
	Name string
	Doc  string
	// Final states end the migration: the runtime may free the machine
	// after a grace period. They may only transition to themselves.
	Final bool
	// Timeout, when set, arms a timer on entering the state; when it fires
	// the machine receives the built-in "timeout" event.
	Timeout *Timeout
	Pos     Pos
}

// Timeout is the timer and retry policy of a state.
type Timeout struct {
	After time.Duration
	// Retries is how many times the timeout re-runs Resend before the
	// machine moves to Exhausted.
	Retries int
	// Resend is the action repeated on each retry (may be nil).
	Resend *Action
	// Exhausted is the state entered when the retries are used up.
	Exhausted *State
	// GiveUp are the actions done when moving to Exhausted.
	GiveUp []*Action
}

// Event is an input of a Machine. Message events name the TCPMig message
// that raises them.
type Event struct {
	Name string
	// Message is set when a received message raises the event.
	Message *Message
	Doc     string
	Pos     Pos
}

// Action is an output of a transition: something the runtime must do.
type Action struct {
	Name string
	// Send is set when the action sends a message.
	Send *Message
	Doc  string
	Pos  Pos
}

// Transition moves a Machine from From to To on On, doing Actions in order.
type Transition struct {
	From    *State
	On      *Event
	To      *State
	Actions []*Action
	Pos     Pos
}

// Ignore accepts On in State without a change.
type Ignore struct {
	State *State
	On    *Event
	Pos   Pos
}

// Target is a switch target profile with its resource budget. Every
// figure carries where it comes from in the profile file.
type Target struct {
	Name string
	// Arch is the P4 architecture include: "tna" or "t2na".
	Arch string
	// TofinoVersion selects __TARGET_TOFINO__ (1 or 2).
	TofinoVersion int
	// Per pipe.
	Stages int
	// Per stage.
	SRAMBlocksPerStage int
	// SRAMBlockBits is the size of one SRAM block (1024 words x 128 bits).
	SRAMBlockBits        int
	MapRAMBlocksPerStage int
	StatefulALUsPerStage int
	HashUnitsPerStage    int
	// MaxRegisterBits is the widest register cell (a pair of 32 bits = 64).
	MaxRegisterBits int
	// MaxRegisterBlocks is the most SRAM blocks one register may span.
	MaxRegisterBlocks int
	// MinIndexBits and MaxIndexBits bound the directory hash width.
	MinIndexBits int
	MaxIndexBits int
	// PortBits is the width of a port id (9 on Tofino).
	PortBits int
	// Sources cites each figure: figure name -> where it comes from.
	Sources map[string]string
	Pos     Pos
}

// Budget is what the program may use of a target, per pipe.
type Budget struct {
	SRAMBlocks   int
	MapRAMBlocks int
	StatefulALUs int
	HashUnits    int
	Stages       int
	Pos          Pos
}

// Tables sizes the switch's control-plane tables.
type Tables struct {
	// Hosts is the size of the IPv4 host table (dst IP -> port, MAC).
	Hosts int
	// Ports is the size of the port-role table (port -> client/server).
	Ports int
	// L2 is the size of the MAC table used for non-IPv4 frames.
	L2  int
	Pos Pos
}

// TimeoutEvent is the built-in event a state's timer raises.
const TimeoutEvent = "timeout"

// EnumByName returns the enum with that name, or nil.
func (s *Spec) EnumByName(name string) *Enum {
	for _, e := range s.Enums {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// MessageByName returns the message with that name, or nil.
func (s *Spec) MessageByName(name string) *Message {
	for _, m := range s.Messages {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// HeaderField returns the header field with that name, or nil.
func (s *Spec) HeaderField(name string) *Field {
	for _, f := range s.Header.Fields {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// StageEnum returns the enum of the header's stage field.
func (s *Spec) StageEnum() *Enum {
	if f := s.HeaderField(s.Header.StageField); f != nil {
		return f.Enum
	}
	return nil
}

// Entries is the number of slots per directory level.
func (d *Directory) Entries() int { return 1 << d.IndexBits }

// ReleaseMessage returns the message directory.release names, or nil when
// no message releases entries.
func (s *Spec) ReleaseMessage() *Message {
	if s.Directory == nil || s.Directory.Release == "" {
		return nil
	}
	return s.MessageByName(s.Directory.Release)
}

// DeletesOn reports whether the TCP flag ("rst" or "fin") removes entries.
func (d *Directory) DeletesOn(flag string) bool {
	for _, f := range d.DeleteOn {
		if f == flag {
			return true
		}
	}
	return false
}
