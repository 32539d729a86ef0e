// Package kernel migrates ordinary Linux TCP sockets with the same TCPMig
// engine, the same generated machines and the same switch as the
// userspace stack: it is a migrate.Host whose connections are kernel
// sockets, frozen and rebuilt through TCP_REPAIR (runtime/repair), and
// whose held segments wait in an NFQUEUE (runtime/hold). It is the paper's
// baseline (Prism, Socket Launcher) and a mode of its own for applications
// that stay on the kernel's stack.
//
// A Server runs in one network namespace, on one address:
//   - TCPMig travels over a kernel UDP socket on the spec's port;
//   - Listen's Listener hands out both the connections accepted here and
//     those migrated in (Socket Launcher's accept), so applications built
//     on runtime/app serve both alike, and Transfer moves one connection
//     without an application state machine;
//   - a chain of iptables rules sends to an NFQUEUE the TCP segments to
//     this address that find no established socket (xt_socket) and are not
//     a SYN: a connection on its way in, whose segments are held until its
//     restore, or one that left, whose late segments are dropped instead of
//     answered with RST. Every other segment never leaves the kernel.
//     A socket being restored is transparent until it is whole, and its
//     segments are queued too: from its connect on, it would answer them
//     half-built. Start binds the queue before it adds the rules, so the
//     rules of a server of the same queue that ended without Close (no
//     live server holds the queue) are found stale and removed.
//
// The CONN_STATE payload is the repair dump (runtime/repair's encoding)
// followed by the application's state, behind a magic that tells it from
// the userspace stack's snapshot: the two modes cannot exchange
// connections, and a target of the other mode refuses the state.
//
// An abort (the spec's give-up) resets the socket, then sends keep-alive
// probes built from its dump through a raw socket (probe.go), as the
// userspace stack's Stack.AbortDetached does.
//
// It needs CAP_NET_ADMIN and CAP_NET_RAW in the namespace, iptables, and a
// kernel with CONFIG_NETFILTER_NETLINK_QUEUE,
// CONFIG_NETFILTER_XT_TARGET_NFQUEUE and CONFIG_NETFILTER_XT_MATCH_SOCKET
// (and, with iptables-legacy, CONFIG_NETFILTER_XT_MATCH_COMMENT: the mute
// rule names its server's chain).
package kernel
