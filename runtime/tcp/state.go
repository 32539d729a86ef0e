package tcp

// State is a connection state of RFC 9293 §3.3.2. The zero value is invalid
// so that an uninitialised Conn is never mistaken for a closed one.
type State uint8

// Connection states.
const (
	StateInvalid State = iota
	StateClosed
	StateListen // not used by Conn: listening belongs to the stack's demux
	StateSynSent
	StateSynReceived
	StateEstablished
	StateFinWait1
	StateFinWait2
	StateCloseWait
	StateClosing
	StateLastAck
	StateTimeWait
	numStates
)

var stateNames = [...]string{
	StateInvalid:     "INVALID",
	StateClosed:      "CLOSED",
	StateListen:      "LISTEN",
	StateSynSent:     "SYN-SENT",
	StateSynReceived: "SYN-RECEIVED",
	StateEstablished: "ESTABLISHED",
	StateFinWait1:    "FIN-WAIT-1",
	StateFinWait2:    "FIN-WAIT-2",
	StateCloseWait:   "CLOSE-WAIT",
	StateClosing:     "CLOSING",
	StateLastAck:     "LAST-ACK",
	StateTimeWait:    "TIME-WAIT",
}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "STATE(" + itoa(int(s)) + ")"
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// StateSet is a set of states, one bit each: what Conn.Transitions
// reports.
type StateSet uint16

// Has reports whether st is in the set.
func (ss StateSet) Has(st State) bool { return st < numStates && ss&(1<<st) != 0 }

func (ss StateSet) String() string {
	b := []byte{'{'}
	for st := StateInvalid; st < numStates; st++ {
		if ss.Has(st) {
			if len(b) > 1 {
				b = append(b, ' ')
			}
			b = append(b, st.String()...)
		}
	}
	return string(append(b, '}'))
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return s > StateInvalid && s < numStates }

// Synchronized reports whether both sequence spaces are known: the states
// after the handshake, where RFC 9293 §3.10.7.4 processing applies.
func (s State) Synchronized() bool { return s >= StateEstablished && s < numStates }

// Connected reports whether the handshake has completed and the connection
// has not yet fully closed (it may be half closed).
func (s State) Connected() bool { return s >= StateEstablished && s <= StateLastAck }

// Handshaking reports whether a SYN exchange is in progress.
func (s State) Handshaking() bool { return s == StateSynSent || s == StateSynReceived }

// CanReceive reports whether the peer may still send data in s.
func (s State) CanReceive() bool {
	return s == StateEstablished || s == StateFinWait1 || s == StateFinWait2
}

// CanSend reports whether the application may still queue data in s.
func (s State) CanSend() bool {
	return s == StateSynSent || s == StateSynReceived || s == StateEstablished || s == StateCloseWait
}

// finQueued reports whether our FIN belongs to the sequence space in s.
func (s State) finQueued() bool {
	return s == StateFinWait1 || s == StateFinWait2 || s == StateClosing || s == StateLastAck || s == StateTimeWait
}
