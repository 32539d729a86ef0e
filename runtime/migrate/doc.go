// Package migrate is the TCPMig engine: it moves live TCP connections of a
// runtime/stack Stack to another server behind the Capybara switch, and takes
// connections in from others.
//
// It is the glue the spec promises between the generated code and the stack,
// and it holds no protocol logic of its own:
//   - every message, its fragmentation and its bounded reassembly come from
//     generated/tcpmig;
//   - every transition, timer, retry, resend and give-up comes from the
//     origin and target machines of generated/migstate; the engine only
//     carries out the actions a step names, in order;
//   - the TCP state travels as a runtime/tcp snapshot, restored under a
//     buffer cap (Config.MaxRestoreBuffer).
//
// The origin sends PREPARE_MIG to the switch, which steers it to the least
// loaded server. That target starts holding the client's segments and answers
// PREPARE_MIG_ACK with LOAD; as the ACK passes, the switch points the client at
// the target. The origin then freezes the connection (detaches it from its
// stack), sends its snapshot and the application's state as CONN_STATE
// fragments, and drops its copy on CONN_STATE_ACK. The target restores the
// connection under its own address, replays the held segments and serves it;
// the switch rewrites addresses so the client sees nothing.
//
// Applications take part through Migratory TCP's get/set-state contract: the
// origin asks for the application's state at a quiescent point (Start's app
// function, or a Session's), and the target hands the restored connection
// and that state to the port's listener (Session.Restored) or to a restorer
// registered with HandleRestored.
//
// Every migration is timed phase by phase on a monotonic clock shared by all
// processes of the machine (CLOCK_MONOTONIC), so the two halves of one
// migration, recorded by two servers, line up. See Record. A record's Work,
// the host overhead, is the handlers' time; what they need is made before
// (spares.go: the next migration's objects, kept buffers that fit a state,
// prefaulted), and what they leave is done after, at the unlock (the
// moved connection's queues recycled, the link kicked, the restored
// connection handed over). A host that is a TrainSender, the stack's,
// sends a state's fragments as UDP trains the link cuts.
//
// An Engine hooks itself into its stack (HandleUDP on the spec's port, the TCP
// interceptor, the timer hook); its hooks run on the stack's event loop, or
// under the simulator's virtual time, and never block.
package migrate
