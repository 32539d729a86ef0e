/*
Package p4rt is the software switch's P4Runtime v1 server: the control
plane a Tofino's switch OS would serve, over the generated pipeline model
(generated/pipeline), described by the generated p4info (generated/p4).

It follows the P4Runtime specification (v1.5.0) in what it implements:

  - Capabilities.
  - StreamChannel with client arbitration for the default role: the stream
    with the highest election ID is the primary; every client hears of each
    change of primary, and of a primary's re-arbitration. One departure,
    as in PI's server: when the primary goes, the next-highest connected
    client takes over at once (the specification waits for a client to
    arbitrate again with an id at least the old primary's).
  - SetForwardingPipelineConfig (VERIFY, VERIFY_AND_SAVE,
    VERIFY_AND_COMMIT, COMMIT) and GetForwardingPipelineConfig. The switch
    runs one program, the one it was generated with, so a pipeline is
    verified by its p4info: the spec fingerprint in pkg_info.version, then
    the whole p4info. VERIFY_AND_COMMIT clears the forwarding state, as a
    new program would; COMMIT of a saved config keeps the writes made
    since the save.
  - Write (INSERT, MODIFY, DELETE) of the exact-match tables (with their
    metadata), MODIFY of register cells (one, or all with no index) and of
    the drop counter's cells, with CONTINUE_ON_ERROR and ROLLBACK_ON_ERROR
    and one p4.v1.Error per update in the status details.
  - Read of table entries, register cells and the drop counter, with
    wildcards; a failing query is reported per query, as writes are.

Everything else (action profiles, meters, digests, packet I/O, roles other
than the default one, RECONCILE_AND_COMMIT, DATAPLANE_ATOMIC) is answered
UNIMPLEMENTED. Unknown ids are INVALID_ARGUMENT (the specification leaves
it open; PI and Stratum answer so); bytestrings are read in any length
whose value fits, written back canonical, and refused OUT_OF_RANGE.

Names are resolved once, at New, through the generated contract
(generated/p4's name constants and embedded p4info), so the server cannot
disagree with the P4 program it stands in for.
*/
package p4rt
