/*
Package p4rt is the software switch's P4Runtime v1 server: the control
plane a Tofino's switch OS would serve, over the generated pipeline model
(generated/pipeline), described by the generated p4info (generated/p4).

It follows the P4Runtime specification (v1.5.0) in what it implements:

  - Capabilities.
  - StreamChannel with client arbitration for the default role: the stream
    with the highest election ID is the primary; every client hears of each
    change of primary; when the primary goes, the next-highest takes over.
  - SetForwardingPipelineConfig (VERIFY, VERIFY_AND_SAVE,
    VERIFY_AND_COMMIT, COMMIT) and GetForwardingPipelineConfig. The switch
    runs one program, the one it was generated with, so a pipeline is
    verified by its p4info: the spec fingerprint in pkg_info.version, then
    the whole p4info. A commit clears the forwarding state, as a new
    program would.
  - Write (INSERT, MODIFY, DELETE) of the exact-match tables and MODIFY of
    the register cells, with CONTINUE_ON_ERROR and ROLLBACK_ON_ERROR and one
    p4.v1.Error per update in the status details.
  - Read of table entries, register cells and the drop counter, with
    wildcards.

Everything else (action profiles, meters, digests, packet I/O, roles other
than the default one, DATAPLANE_ATOMIC) is answered UNIMPLEMENTED.

Names are resolved once, at New, through the generated contract
(generated/p4's name constants and embedded p4info), so the server cannot
disagree with the P4 program it stands in for.
*/
package p4rt
