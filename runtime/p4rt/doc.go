/*
Package p4rt is the software switch's P4Runtime v1 server: the control
plane a Tofino's switch OS would serve, over the generated pipeline model
(generated/pipeline), described by the generated p4info (generated/p4).

It follows the P4Runtime specification (v1.5.0) in what it implements:

  - Capabilities.
  - StreamChannel with client arbitration for the default role: the stream
    with the highest election ID is the primary; every client hears of each
    change of primary, and of a primary's re-arbitration. Each stream has
    its own sender of these updates, holding only the newest unsent one, so
    a client that stops reading delays no other client and skips to the
    current outcome when it reads again. A stream's role cannot change:
    re-arbitrating with another ends it FAILED_PRECONDITION. One departure,
    as in PI's server: when the primary goes, the next-highest connected
    client takes over at once (the specification waits for a client to
    arbitrate again with an id at least the old primary's).
  - SetForwardingPipelineConfig (VERIFY, VERIFY_AND_SAVE,
    VERIFY_AND_COMMIT, COMMIT) and GetForwardingPipelineConfig. The switch
    runs one program, the one it was generated with, so a pipeline is
    verified by its p4info: the spec fingerprint in pkg_info.version, then
    the whole p4info. VERIFY_AND_COMMIT clears the forwarding state, as a
    new program would. After VERIFY_AND_SAVE the forwarding state is left
    as it is: writes change the state the saved config will start with
    (cleared, plus the writes since the save), which reads then see, and
    COMMIT clears the forwarding state and replays those writes;
    VERIFY_AND_COMMIT drops them.
  - Write (INSERT, MODIFY, DELETE) of the exact-match tables (with their
    metadata), MODIFY of register cells (one, or all with no index) and of
    the drop counter's cells, with CONTINUE_ON_ERROR and ROLLBACK_ON_ERROR
    and one p4.v1.Error per update in the status details. The keyless
    tables (mig_len_tbl, dir<i>_hash_tbl) hold only their const default
    entry: modifying it is PERMISSION_DENIED, any other write refused.
  - Read of table entries (filtered by match, default entry, action id,
    priority, controller_metadata and metadata), register cells and the
    drop counter, with wildcards. A Read sees the state between two
    writes, never part of one. A failing query is reported per query, as
    writes are: UNKNOWN, with one p4.v1.Error per query.

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
