package migrate

import (
	"net"
	"net/netip"
	"time"

	"github.com/capygen/capygen/runtime/tcp"
)

// Host is the server an Engine moves connections out of and into: the
// userspace stack (New), or Linux's own sockets through TCP_REPAIR
// (runtime/kernel). The engine keeps every piece of the protocol (the
// generated machines, messages, epochs, timers, records, the directory's
// release); a Host only carries out what touches connections and packets,
// so both paths run the very same TCPMig.
//
// The engine calls a Host with its lock held, except Attach, Detach,
// Replay and the deliver function Restore returns; a Host must not call
// back into the engine from those calls.
type Host interface {
	// Addr is the server's own address: TCPMig's source, and the local
	// address of connections it restores.
	Addr() netip.Addr
	// Now is the host's clock for the machines' timers.
	Now() tcp.Time
	// Attach makes the host deliver TCPMig datagrams to e.Datagram and
	// run e's timers (NextDeadline, Advance); Detach stops it.
	Attach(e *Engine) error
	Detach()
	// SendUDP sends a TCPMig datagram from the host's TCPMig port to dst's.
	SendUDP(dst netip.Addr, payload []byte) error
	// Burst runs fn, whose sends may go out as one batch.
	Burst(fn func())
	// Post runs fn where the host's datagrams are handled (its event
	// loop), or at once if it has none; fn must not block. Start posts
	// the machine's first step, so that a migration's work never waits
	// for the locks the loop keeps taking.
	Post(fn func())
	// NumConns is the default workload heartbeats report.
	NumConns() int
	// Lookup says what the host knows of a connection.
	Lookup(id tcp.ID) (ConnInfo, bool)
	// Freeze stops a connection for good here: from now on it sends
	// nothing and the host no longer serves it. steps, if not nil,
	// receives the time of host-specific sub-steps.
	Freeze(id tcp.ID, steps func(string, time.Duration)) (Frozen, error)
	// Restore rebuilds a connection from a state a Frozen serialized. The
	// state must be of the connection origin-client (origin is the
	// address the client knows); the host files it under self (its own
	// address, origin's port, the client) and refuses buffers over
	// maxBuffer. It returns the application state that came with it, and
	// deliver, which hands the connection to the port's restorer or nil
	// when the connection waits for the port's listener (see Manage).
	// state is valid only during the call: the engine reuses its buffer.
	Restore(now tcp.Time, state []byte, self tcp.ID, origin netip.AddrPort, maxBuffer int, steps func(string, time.Duration)) (app []byte, deliver func(), err error)
	// Hold makes the host keep the client's segments of id (a connection
	// on its way in) instead of answering them; Replay lets them on to
	// the restored connection and Discard drops them. Both return how many
	// segments were held and how many were dropped over the hold's
	// bounds.
	Hold(id tcp.ID)
	Replay(id tcp.ID) (held, overflow int)
	Discard(id tcp.ID) (held, overflow int)
	// Tomb drops, silently, segments of a connection that left, until
	// until (a new connection's SYN still passes); Untomb ends it.
	Tomb(id tcp.ID, until tcp.Time)
	Untomb(id tcp.ID)
	// Counters are the host's cumulative packet counters.
	Counters() HostCounters
}

// ConnInfo is what Lookup reports of a connection.
type ConnInfo struct {
	// Established: the handshake is done, so the connection can move.
	Established bool
	// Done: the connection has ended (closed or reset) but is still
	// known.
	Done bool
	// Origin is the address the client knows the connection by: this
	// server's for a connection accepted here, the first server's for one
	// migrated in.
	Origin netip.AddrPort
}

// Frozen is a connection between Freeze and the end of its migration.
type Frozen interface {
	// Serialize appends the connection's state, with the application's
	// state app, to dst.
	Serialize(dst, app []byte) ([]byte, error)
	// Release forgets the connection without a word to the client: the
	// target serves it now.
	Release()
	// Abort resets the connection: its state was lost in flight, and the
	// client must not hang. The host follows the RST with keep-alive
	// probes (tcp.AbortProbesAfter), and, if probeLater is not 0, one more
	// that long after the abort.
	Abort(probeLater time.Duration)
}

// TrainSender is implemented by a Host that sends a train of datagrams to
// one destination at once, payloads back to back, segSize bytes each but
// the last: the userspace stack hands it to a link that cuts it (UDP
// GSO), so a state's fragments cost one set of headers per train. The
// engine sends CONN_STATE fragments this way when it can.
type TrainSender interface {
	SendUDPTrain(dst netip.Addr, payloads []byte, segSize int) error
}

// TransmitTimer is implemented by a Host whose SendUDP transmits before it
// returns (Linux's sockets: a system call, and on a veth the peer's
// receive path as well). TransmitTime is the total time those sends took
// so far; the engine leaves it out of a migration's Work, as the
// userspace stack's transmit, which happens after the handlers, is left
// out. Sends made outside the engine's calls (a pacer) are not in it.
type TransmitTimer interface {
	TransmitTime() time.Duration
}

// Sizer is implemented by a Frozen that knows how long Serialize's output
// will be: the engine then serializes into a kept buffer that fits rather
// than into new memory.
type Sizer interface {
	SerializedSize(app []byte) int
}

// HostCounters are a host's packet counters.
type HostCounters struct {
	Held, HeldOverflow, TombstoneDrops uint64
}

// Conn is what a Session needs of a connection: a runtime/stack Conn, or
// a kernel socket's (runtime/kernel).
type Conn interface {
	net.Conn
	CloseWrite() error
	// Abort resets the connection.
	Abort()
	// ID is the connection's address pair as its host files it.
	ID() tcp.ID
	// Origin is the address the client knows the server by.
	Origin() netip.AddrPort
}
