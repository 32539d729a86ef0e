package spec

import "testing"

func TestGoName(t *testing.T) {
	for in, want := range map[string]string{
		"tcpmig": "TCPMig", "prepare_mig_ack": "PrepareMigAck", "origin_ip": "OriginIP", "client_port": "ClientPort",
		"udpecho": "UDPEcho", "tcp": "TCP", "ipv4_addr": "IPv4Addr", "server_mac": "ServerMAC", "tcp2": "Tcp2",
	} {
		if got := GoName(in); got != want {
			t.Errorf("GoName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"TCPMig": "tcpMig", "ConnState": "connState", "TCP": "tcp", "X": "x"} {
		if got := GoUnexported(in); got != want {
			t.Errorf("GoUnexported(%q) = %q, want %q", in, got, want)
		}
	}
}
