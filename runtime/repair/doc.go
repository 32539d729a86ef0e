// Package repair dumps a live Linux TCP socket and rebuilds it, on the same
// host or another one, with the kernel's TCP_REPAIR interface: the kernel
// half of a Capybara migration, where an application's connections leave
// one server and resume on another without the peer noticing.
//
// It follows CRIU's libsoccr (soccr/soccr.c), which is the reference for
// the order of operations and the kernel's quirks:
//
// Dump (DumpConn, DumpFD), with the socket in repair mode:
//
//   - TCP_REPAIR on: from here the socket sends nothing by itself and a
//     close is silent.
//   - TCP_INFO for the state and the negotiated options (SACK, timestamps,
//     window scale), SIOCOUTQ / SIOCOUTQNSD / SIOCINQ for the queue sizes.
//   - TCP_MAXSEG (in repair mode the kernel reports the MSS clamp),
//     TCP_TIMESTAMP (the socket's timestamp clock, offset included),
//     TCP_REPAIR_WINDOW.
//   - For each queue, TCP_REPAIR_QUEUE then TCP_QUEUE_SEQ and a MSG_PEEK
//     read: the receive queue's rcv_nxt and unread bytes, the send queue's
//     write_seq and every byte not yet acknowledged, of which the last
//     SIOCOUTQNSD bytes were never transmitted.
//
// CloseSilently then closes the socket still in repair mode, so no FIN and
// no RST leaves. Resume is the other way out: repair off, and the original
// socket carries on (a migration that is called off).
//
// Restore, on the target, with a new socket in repair mode:
//
//   - bind to the target's own address (IP_FREEBIND on request: the
//     address may be configured on the host only later);
//   - TCP_QUEUE_SEQ for both queues, set to where the dumped queues start;
//   - connect, which in repair mode sends no SYN and goes straight to
//     ESTABLISHED;
//   - TCP_REPAIR_OPTIONS (SACK permitted, window scale, timestamps, MSS)
//     and TCP_TIMESTAMP. libsoccr sets these before the queues are
//     refilled, and so do we: the kernel accepts TCP_REPAIR_OPTIONS only
//     while the socket has transmitted nothing, and the send queue is cut
//     into segments with the MSS in force when it is written;
//   - refill: the receive queue, then the part of the send queue that had
//     been transmitted (the kernel marks it sent, to be acknowledged or
//     retransmitted);
//   - TCP_REPAIR_WINDOW (snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup);
//   - TCP_REPAIR off, which sends one window probe so the peer answers
//     with its current window;
//   - the unsent part of the send queue, written as ordinary data: written
//     in repair mode it would be taken for sent and wait for a
//     retransmission timeout, and libsoccr writes it with repair off too.
//
// Only ESTABLISHED sockets are dumped. libsoccr also restores the FIN
// states (FIN_WAIT1/2, CLOSE_WAIT, LAST_ACK, CLOSING), which needs a
// forged FIN from a raw socket to put a peer's FIN back into the receive
// queue; DumpFD refuses those states with an error naming the state and
// leaves the socket running. It refuses, likewise, a socket that turns
// CLOSE_WAIT during the dump (the peer's FIN would be in the dumped
// rcv_nxt and never reach the application), and one whose receive queue
// holds an urgent mark (MSG_OOB) the application has not read past: the
// kernel's queue size and the peek stop at the mark, while rcv_nxt is past
// it, so the bytes after it would be lost.
//
// A failed Restore tears down what it built, in repair mode so nothing
// leaves, and reports the step and the errno, as in
// "repair: restore: TCP_REPAIR_WINDOW: setsockopt: invalid argument".
// Dump has a versioned binary encoding (MarshalBinary, AppendBinary,
// UnmarshalBinary) ending in a CRC-32C; a truncated or corrupt encoding is
// refused with an error naming the field, and Restore validates a Dump
// before it creates any socket.
//
// Per-step durations are reported through WithStepHook, with the step
// names of the Step constants, for a migration agent's phase report.
//
// Everything here needs CAP_NET_ADMIN in the socket's network namespace.
// The caller must keep packets away from the socket between the dump and
// the restore (an interface down, a firewall rule, or a switch that holds
// the flow): the kernel keeps processing input in repair mode, and a
// closed origin answers stray segments with RST.
package repair
