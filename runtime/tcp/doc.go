// Package tcp is capygen's userspace TCP: a deterministic state machine in
// which segments and time go in and segments come out, so that a connection
// is a value that can be serialized and moved to another server (Capybara's
// live migration).
//
// A Conn never reads a clock and starts no goroutines. The caller feeds it
// received segments with Input, drains what it has to send with Output,
// and calls Output again at the time Deadline names:
//
//	c := tcp.Dial(cfg, id, iss, now)
//	c.Output(now, send)             // emits the SYN
//	c.Input(now, &seg)              // a parsed segment for this connection
//	c.Output(now, send)             // ACKs, data, retransmissions
//	if t, ok := c.Deadline(); ok {} // wake up at t and call Output
//
// Listening and demultiplexing belong to the caller (runtime/stack): it
// parses with ParseSegment, finds the Conn by ID, calls Accept for a SYN
// with no connection, and answers other strays with ResetFor. NewISS
// derives initial sequence numbers per RFC 6528 from a caller's secret.
//
// Deadline reports timer work (retransmission, persist, delayed ACK,
// TIME-WAIT) and, when Input, Read, Write, Close or Abort left something
// to send at once, the time of the latest Input/Output call. After Output
// it is always later than Output's time, so an event loop never spins.
//
// Every state change goes through one choke point and is recorded:
// Transitions returns the states entered since its last call, so that a
// caller reacts to transitions (runtime/stack queues an accepted
// connection when it enters ESTABLISHED) instead of polling State.
//
// Config.DelayedACK: zero means the 40 ms default (WithDefaults fills zero
// fields), and a negative value disables delayed ACKs.
//
// Close in SYN-SENT ends the attempt when nothing is queued (RFC 9293
// §3.10.4); with data already written, the data and then the FIN follow
// the handshake, so connect-write-close works without waiting.
//
// # Implemented
//
//   - RFC 9293: active, passive and simultaneous open; the acceptability
//     test in every state, with the special allowance for ACKs when our
//     window is zero (an unacceptable segment within one maximum window
//     of rcv.nxt still has its ACK field and window processed, its text
//     dropped); RST processing and generation; FIN in both
//     directions, half close, simultaneous close, TIME-WAIT (2MSL, with
//     re-ACK of retransmitted FINs; an exact RST ends it, as RFC 9293 and
//     Linux do, and Reusable tells the stack when a new SYN may take the
//     address pair over, by a higher sequence number or, RFC 6191, a newer
//     timestamp, which runtime/stack then does). Old duplicates get
//     an ACK, never a RST. FIN-WAIT-2 of a connection its application let
//     go (Orphan) ends after Config.FinWait2, as Linux's tcp_fin_timeout.
//   - RFC 4987 §3.6 SYN cookies, the connection side: CookieSYNACK answers
//     the SYN and AcceptCookie builds the passive open the cookie stood
//     for (the stack makes and checks cookies when a listener's backlog
//     is full). As on Linux, a client that sends timestamps keeps its
//     window scale and SACK, which ride in the low bits of the SYN-ACK's
//     timestamp; without timestamps neither side scales and there is no
//     SACK.
//   - RFC 5961: RSTs must hit rcv.nxt exactly, other in-window RSTs and
//     any SYN on a synchronized connection get a challenge ACK; ACKs
//     outside [snd.una-max.snd.wnd, snd.max] are dropped with an ACK.
//     These ACKs, and those answering out-of-window or PAWS-rejected
//     segments, go out at most once per 500 ms per connection for
//     segments without data (§7; Linux's tcp_invalid_ratelimit); a data
//     segment is always answered.
//   - MSS option; RFC 7323 window scaling, with windows computed in 32-bit
//     arithmetic and a right edge that never moves left.
//   - Sliding windows, out-of-order reassembly into the receive buffer
//     (at most 16 disjoint ranges, always within the advertised window),
//     in-order delivery, receiver and sender silly-window avoidance.
//   - RFC 6298 RTO (SRTT/RTTVAR, Karn's algorithm, exponential backoff,
//     MinRTO/MaxRTO), go-back-N retransmission on timeout without SACK,
//     retry limits.
//   - RFC 9438 CUBIC congestion avoidance, Linux's default: a loss cuts
//     the window to 0.7 of the flight (fast convergence included), and it
//     grows along the cubic curve or, where that is slower (short round
//     trips), the Reno-friendly estimate. Config.Reno selects RFC 5681's
//     halving and one segment per round trip instead.
//   - RFC 5681 slow start and congestion avoidance with the RFC 6928
//     initial window (10 segments, at most 14600 bytes unless under two),
//     fast retransmit, RFC 3042 limited transmit and RFC 6582 NewReno fast
//     recovery; delayed ACKs (every second full segment or after
//     Config.DelayedACK; immediate for out-of-order data, gap fills and
//     FINs). After an idle period over the RTO the window restarts
//     (§4.1), halving per RTO idle down to the initial window, as Linux's
//     tcp_slow_start_after_idle; a window that a lost SYN cut (more than
//     one retransmission) starts at one segment; Reno grows by bytes
//     acknowledged (RFC 3465).
//   - RFC 7323 timestamps, on by default (Config.NoTimestamps): offered in
//     the SYN, agreed when both ends send them, then on every non-RST
//     segment. The clock ticks every millisecond from a per-address-pair
//     offset (the keyed part of a NewISS ISS), so it grows across
//     incarnations and reveals no uptime. TS.Recent follows §4.3 (only a
//     segment at or before Last.ACK.sent updates it); PAWS (§5.3) drops a
//     non-RST segment with an older TSval, with an ACK, unless TS.Recent
//     is over 24 days old. Segments without the option are accepted, as
//     Linux does. RTT samples come from our own timing at the caller's
//     clock resolution, and from the echoed TSval when Karn's rule
//     forbids timing (an ACK of retransmitted data). A full segment's
//     payload is the MSS less the 12 option bytes (RFC 6691).
//   - RFC 2018 SACK, on by default (Config.NoSACK): SACK-permitted in the
//     SYN; ACKs carry blocks for the out-of-order ranges, the one holding
//     the latest segment first and the rest from the highest, as many as
//     fit (three beside timestamps, four without), and a new data
//     segment leaves room for them. RFC 2883 D-SACK: a duplicate below
//     rcv.nxt (also one PAWS drops) or of data held out of order is
//     reported in the first block, the latter followed by the block that
//     holds it. An out-of-order FIN's
//     sequence number is reported with the data before it, as Linux does,
//     so the sender's segment that carried it counts as delivered.
//   - The SACK sender (RFC 6675's scoreboard of segments in flight, with
//     pipe in place of flight size) with RFC 8985 RACK as the loss
//     detector: a segment sent before the latest delivered one by more
//     than RACK.rtt plus the reordering window is lost. The window is a
//     quarter of the minimum RTT (over the last 5 minutes, as Linux's
//     tcp_min_rtt_wlen; capped at SRTT), zero before any
//     reordering is seen once three segments are SACKed or in recovery,
//     and grows by a quarter per round trip with D-SACKs (up to twice the
//     minimum RTT); segments inside it arm the reordering timer. Lost
//     segments go out again before new data. When D-SACKs report every
//     retransmission of a recovery or RTO as a duplicate, its cut of cwnd
//     and ssthresh is undone (Stats.Undos). Fast recovery follows RFC
//     6675 (ssthresh the congestion controller's cut of the flight) with
//     RFC 6937 PRR (including PRR-SSRB) pacing what leaves; it ends when
//     snd.una passes recover.
//     An RTO marks every unSACKed segment lost and resends them from a
//     one-segment window without rewinding snd.nxt; SACKed ones are kept
//     unless the peer reneged (the segment at snd.una SACKed, or a second
//     RTO).
//     Without SACK the connection keeps NewReno and duplicate-ACK
//     counting, below. One deviation: with SACK a tail loss probe may
//     also go out in fast recovery, after a retransmission, where RFC
//     8985 §7.2 (and Linux) arm none. A retransmission lost with nothing
//     sent after it leaves RACK no later delivery to go by, and at
//     datacenter round trips the 200 ms RTO that ends it costs a thousand
//     of them; on the netns testbed at 3% loss each way this cut RTOs from
//     5-8 to 0-2 per 10 MiB transfer. The scoreboard holds at most 16384 records; past
//     that, new segments join the last record.
//   - Tail loss probes (RFC 8985 §7): 2*SRTT+2ms after the last new data
//     or ACK, with more than one segment in flight, up to two new
//     segments (so a delaying receiver ACKs at once) or the last one
//     again draw an ACK so that a lost tail or lost ACKs
//     recover without waiting for the RTO. Without SACK a duplicate ACK
//     answering a resent probe starts fast recovery at once, and an
//     answered resent probe cuts cwnd as a fast retransmit would. With
//     SACK the episode follows RFC 8985 §7.4.2 as Linux's
//     tcp_process_tlp_ack: a D-SACK for the probe, or a pure duplicate
//     ACK at its end, means nothing was lost and there is no cut.
//   - Lost retransmissions in fast recovery: more duplicate ACKs since the
//     last retransmission than segments were in flight when it left (plus
//     a sixteenth and three, for duplicated segments) send it again
//     instead of waiting for the RTO.
//   - Zero-window probing with a backed-off persist timer, window updates
//     when reading opens the window.
//   - Receive buffer auto-tuning, Linux's tcp_rcv_space_adjust (dynamic
//     right-sizing): while the application reads as fast as data comes,
//     the buffer, and so the window, grows from RecvBuffer towards
//     RecvBufferMax, to twice what the application read in an RTT (at
//     least 1 ms), up to RecvBufferMax (4 MiB by default; a RecvBuffer
//     set alone stays fixed, as SO_RCVBUF does). The window scale is
//     chosen for RecvBufferMax. A receiver that stops reading holds its
//     edge; since rcv.nxt then moves by amounts that are not multiples of
//     the scale, the held edge is rounded up while that still fits the
//     buffer and down otherwise: it may retract by less than one scale
//     unit (RFC 7323 §2.4), but never promises room the buffer lacks, so
//     the sender probes a zero window instead of losing trimmed bytes.
//   - Send buffer auto-tuning, Linux's tcp_sndbuf_expand: the buffer grows
//     to twice cwnd, up to SendBufferMax (4 MiB by default), so that what
//     an ACK lets out is already written. A SendBuffer set alone stays
//     fixed, as SO_SNDBUF does.
//   - AppendSnapshot/Restore: a versioned, hand-written binary encoding of
//     the state Capybara moves, plus an application blob (SetAppState):
//     addresses, state, the send sequence variables (snd.una, snd.nxt,
//     snd.max, window, max window, WL1/WL2, MSS, scale), the unacked and
//     unsent queues, the receive queue (reader_next = rcv.nxt minus its
//     length), the out-of-order ranges and any out-of-order FIN, buffer
//     sizes and window scales, the agreed SACK and timestamp options,
//     our timestamp clock (the target's goes on from it, so the peer's
//     PAWS never sees it step back) and TS.Recent. Restore checks every field and returns
//     errors wrapping ErrSnapshotTruncated, ErrSnapshotMagic,
//     ErrSnapshotVersion or ErrSnapshotCorrupt. Buffers are allocated as
//     data arrives, up to the sizes the snapshot declares (at most 1 GiB).
//
// # Not implemented
//
//   - ECN, urgent data, Nagle's algorithm (segments go out as soon as
//     the windows allow, as with TCP_NODELAY), keep-alives, TCP Fast Open.
//   - Path MTU discovery is per connection (PathMTU, fed by the stack's
//     ICMP "fragmentation needed"): there is no per-destination cache, so
//     each new connection over a narrower path learns it again with one
//     loss, and no probing back up (RFC 4821).
//   - Undo of a spurious cut is by D-SACK only (RFC 3708's idea, as
//     Linux's tcp_try_undo_dsack), not by timestamps (Eifel, RFC 3522).
//     The SACK sender does not detect a receiver reneging on SACKed data
//     other than by the RTO.
//   - Restore does not move congestion control, the RTO estimator or
//     timers (retransmission, probe): they restart from their initial
//     values at the restore time. Nor does it move the SACK scoreboard:
//     the data in flight becomes unSACKed segments sent at the restore
//     time. The options and the timestamp clock do move (version 3).
//     Buffers that grew move at their grown sizes; the receive side's
//     measurement starts again, which can only delay further growth.
package tcp
