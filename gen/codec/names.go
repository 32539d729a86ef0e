package codec

import "strings"

// initialisms are the spec words written in capitals in Go identifiers,
// following the Go convention (golint's list, trimmed to what specs use).
var initialisms = map[string]string{
	"ack": "Ack", "crc": "CRC", "id": "ID", "ip": "IP", "ipv4": "IPv4", "mac": "MAC",
	"mtu": "MTU", "tcp": "TCP", "udp": "UDP", "ttl": "TTL", "rst": "RST", "fin": "FIN",
}

// protocolPrefixes are initialisms that often start a compound protocol
// name ("tcpmig" -> "TCPMig"); no English word starts with them.
var protocolPrefixes = []string{"tcp", "udp"}

// goName turns a lower_snake spec name into an exported Go identifier.
func goName(name string) string {
	var b strings.Builder
	for _, w := range strings.Split(name, "_") {
		if w == "" {
			continue
		}
		b.WriteString(goWord(w))
	}
	return b.String()
}

func goWord(w string) string {
	if v, ok := initialisms[w]; ok {
		return v
	}
	for _, p := range protocolPrefixes {
		if rest, ok := strings.CutPrefix(w, p); ok && rest != "" && isLetters(rest) {
			return strings.ToUpper(p) + goWord(rest)
		}
	}
	return strings.ToUpper(w[:1]) + w[1:]
}

func isLetters(s string) bool {
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// lowerFirst makes an unexported identifier from an exported one.
func lowerFirst(s string) string {
	// A leading initialism is lowered whole ("TCPMig" -> "tcpMig").
	i := 0
	for i < len(s) && s[i] >= 'A' && s[i] <= 'Z' {
		i++
	}
	switch {
	case i == 0:
		return s
	case i == 1 || i == len(s):
		return strings.ToLower(s[:i]) + s[i:]
	default:
		return strings.ToLower(s[:i-1]) + s[i-1:]
	}
}
