/*
Package softswitch is capygen's software switch: the stand-in for the
Tofino. It runs every Ethernet frame through the Go model of the switch
program (generated/pipeline, the semantics of gen/SWITCH.md) and carries
out the verdict (Forward, Flood, Reply or Drop) on ports that are
link.Endpoints.

The directory is runtime/switch, as DESIGN.md names it, but Go refuses
"switch" as a package name (it is a keyword), so the package is called
softswitch:

	import softswitch "github.com/capygen/capygen/runtime/switch"

One core, driven two ways:

  - Deterministically, for the simulator (runtime/sim): Deliver, Advance and
    NextDeadline take the time from the caller, never read a clock and
    start no goroutine, so a seed fixes the whole run. Node[*sim.Port]
    is the sim.Handler: it maps each simulator port to its pipeline.Port.
  - On real links (AF_XDP endpoints from link.OpenXDP): Run serves every
    port from one goroutine that polls them all (a goroutine per port for
    endpoints without a descriptor), with a monotonic clock, until its
    context ends.

Around the pipeline the switch adds what a Tofino's control plane and CPU
port would:

  - Config writes port_role, ipv4_host, l2_forward and the min_workload
    register through the pipeline's own control API.
  - A control address (Config.Control): the switch answers ARP requests and
    ICMP echo requests for it, outside the pipeline, and counts them, so
    servers can address TCPMig HEARTBEAT and PREPARE datagrams to the
    switch by IP. The pipeline itself recognises TCPMig by ingress role and
    UDP port whatever the destination address (gen/SWITCH.md step 4).
  - A seeded fault injector per port and direction (Fault): loss,
    duplication and delay. Frames an AF_XDP socket moves bypass nftables
    and tc, so this is the only place to fault switch-to-server links.
  - Targeted TCPMig drops (Config.StageDrops, capyrun switch -drop-stage):
    the first N datagrams of one stage, or all, optionally one CONN_STATE
    fragment index, as they reach the switch or as they leave it, counted
    in the order the switch sees them, so a test loses exactly the
    migration message it means to.
  - Counters and a Report (a struct, text and JSON): per-port traffic and
    faults, stage drops, verdicts, the pipeline's counters, directory
    occupancy per level and the min_workload register.

Locking: one mutex serialises the data path (ingress, faults, held frames,
egress and counters), so the per-port receive goroutines of Run see one
frame at a time, as a pipeline does. The pipeline is itself safe for
concurrent use (its doc, and generated/pipeline/concurrency_test.go), so
Report and the control plane read it without stopping traffic.
*/
package softswitch
