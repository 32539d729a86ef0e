package pipeline

import (
	"encoding/binary"
	"testing"
)

// udpLenAt is the offset of the UDP length field in an IPv4 frame without
// options.
const udpLenAt = 14 + 20 + 4

// withUDPLen returns a copy of frame whose UDP length field says n.
func withUDPLen(frame []byte, n int) []byte {
	out := append([]byte(nil), frame...)
	binary.BigEndian.PutUint16(out[udpLenAt:], uint16(n))
	return out
}

// TestTCPMigLengthIsTheUDPLength: a TCPMig datagram's length is its UDP
// length field, not the frame's bytes (gen/SWITCH.md step 4), and the frame
// must hold the stage's fixed payload too.
func TestTCPMigLengthIsTheUDPLength(t *testing.T) {
	e := newEnv(t)
	e.heartbeatReply(ipB, portB, 5)
	hb := e.heartbeat(ipA, 7)
	full := len(hb) - (14 + 20) // the UDP length of a whole heartbeat
	headerOnly := 8 + e.s.Header.Bytes
	ack := e.ack(ipB, ipA, ipClient, cport, false) // no LOAD: forwarded unchanged
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Result
	}{
		{"whole heartbeat", hb, reply(portA)},
		{"padded after the datagram", append(append([]byte(nil), hb...), make([]byte, 24)...), reply(portA)},
		{"length above the frame", withUDPLen(hb, full+100), reply(portA)},
		{"length one byte short of the payload", withUDPLen(hb, full-1), dropped(DropBadTCPMig)},
		{"length of the header only, payload bytes still in the frame", withUDPLen(hb, headerOnly), dropped(DropBadTCPMig)},
		{"length below the header", withUDPLen(hb, 8), dropped(DropBadTCPMig)},
		{"length below the UDP header", withUDPLen(hb, 0), dropped(DropBadTCPMig)},
		{"frame cut inside the fixed payload, length whole", hb[:len(hb)-1], dropped(DropBadTCPMig)},
		{"frame cut inside the TCPMig header: other UDP", ack[:14+20+8+e.s.Header.Bytes-1], fwd(portA)},
	} {
		if r, _ := e.run(tc.frame, portA); r != tc.want {
			t.Errorf("%s: Process = %+v, want %+v", tc.name, r, tc.want)
		}
	}
	// A padded heartbeat with a short length is still short: padding zeros
	// are not its payload.
	padded := append(withUDPLen(hb, headerOnly), make([]byte, 32)...)
	if r, _ := e.run(padded, portA); r != dropped(DropBadTCPMig) {
		t.Errorf("padded heartbeat whose UDP length holds only the header: Process = %+v, want drop bad_tcpmig", r)
	}
	// The setup's heartbeat and the three answered above.
	if n := e.p.Counters().Heartbeats; n != 4 {
		t.Errorf("Counters().Heartbeats = %d, want 4: a dropped heartbeat was answered", n)
	}
	// Every message's minimum is its header and fixed payload.
	for _, m := range e.s.Messages {
		frame := e.migFrame(ipA, ipB, mig{msg: m.Name})
		least := 8 + e.s.Header.Bytes + m.PayloadBytes
		if r, _ := e.run(withUDPLen(frame, least-1), portA); r != dropped(DropBadTCPMig) {
			t.Errorf("%s with UDP length %d (one short): Process = %+v, want drop bad_tcpmig", m.Name, least-1, r)
		}
		if r, _ := e.run(withUDPLen(frame, least), portA); r.Verdict == Drop && r.Drop == DropBadTCPMig {
			t.Errorf("%s with UDP length %d (its minimum): dropped bad_tcpmig", m.Name, least)
		}
	}
}

// TestMalformed: a frame ending inside a header the parser extracts is
// dropped malformed, before the port role is looked up; one ending after
// them is not.
func TestMalformed(t *testing.T) {
	e := newEnv(t)
	tcp := tcpFrame(t, ipClient, ipA, cport, svport, "A", nil)
	udp := e.migFrame(ipA, ipB, mig{msg: "prepare_mig"})
	options := append([]byte(nil), tcp[:14+20+8]...)
	options[14] = 0x46 // IHL 6: the transport header is not parsed
	fragment := append([]byte(nil), tcp[:14+20+8]...)
	fragment[14+6] |= 0x20 // MF
	arp := append([]byte(nil), tcp[:20]...)
	arp[12], arp[13] = 0x08, 0x06
	for _, tc := range []struct {
		name  string
		frame []byte
		in    Port
		want  Result
	}{
		{"empty", nil, portClient, dropped(DropMalformed)},
		{"inside Ethernet", tcp[:13], portClient, dropped(DropMalformed)},
		{"inside IPv4", tcp[:14+19], portClient, dropped(DropMalformed)},
		{"inside IPv4, port without a role", tcp[:14+19], portNoRole, dropped(DropMalformed)},
		{"inside TCP", tcp[:14+20+19], portClient, dropped(DropMalformed)},
		{"inside TCP, port without a role", tcp[:14+20+19], portNoRole, dropped(DropMalformed)},
		{"inside UDP", udp[:14+20+7], portA, dropped(DropMalformed)},
		{"whole TCP header", tcp, portClient, fwd(portA)},
		{"IPv4 options, transport cut", options, portClient, fwd(portA)},
		{"fragment, transport cut", fragment, portClient, fwd(portA)},
		{"short non-IPv4 frame", arp, portClient, flood(portClient)},
		{"whole frame, port without a role", tcp, portNoRole, dropped(DropUnknownPort)},
	} {
		if r, _ := e.run(tc.frame, tc.in); r != tc.want {
			t.Errorf("%s: Process = %+v, want %+v", tc.name, r, tc.want)
		}
	}
	if n := e.p.Counters().Drops[DropMalformed]; n != 7 {
		t.Errorf("Counters().Drops[malformed] = %d, want 7", n)
	}
}
