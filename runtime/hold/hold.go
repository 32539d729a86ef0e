// Package hold keeps a flow's packets in the kernel, through netfilter's
// NFQUEUE, while no socket is there to take them, and lets them go on
// when one is. It is the kernel path's counterpart of the bypass target's
// held segments: between a migration's dump on the origin and its restore
// on the target, the target's kernel has no socket for the connection and
// would answer the client with RST; held, the segments reach the restored
// socket at once instead of after the client's retransmission timeout.
//
// A Queue speaks nfnetlink_queue (include/uapi/linux/netfilter/
// nfnetlink_queue.h) over a netlink socket of the calling thread's network
// namespace. Packets reach it through a rule outside this package, such as
// iptables -A INPUT -p tcp --dport 80 -j NFQUEUE --queue-num N (the kernel
// needs CONFIG_NETFILTER_NETLINK_QUEUE and xt_NFQUEUE; nft's own queue
// statement needs CONFIG_NFT_QUEUE). The queue copies only packet
// metadata: a verdict needs the packet id, not the bytes.
//
// The protocol is written out here because the Go clients of the field
// (florianl/go-nfqueue over mdlayher/netlink) are not available from this
// project's module proxy.
package hold

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// nfnetlink_queue's messages, attributes and commands.
const (
	msgPacket  = 0 // NFQNL_MSG_PACKET
	msgVerdict = 1 // NFQNL_MSG_VERDICT
	msgConfig  = 2 // NFQNL_MSG_CONFIG

	attrPacketHdr  = 1  // NFQA_PACKET_HDR
	attrVerdictHdr = 2  // NFQA_VERDICT_HDR
	attrPayload    = 10 // NFQA_PAYLOAD

	attrCfgCmd    = 1 // NFQA_CFG_CMD
	attrCfgParams = 2 // NFQA_CFG_PARAMS
	attrCfgMaxLen = 3 // NFQA_CFG_QUEUE_MAXLEN

	cmdBind   = 1 // NFQNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFQNL_CFG_CMD_UNBIND

	copyMeta   = 1 // NFQNL_COPY_META
	copyPacket = 2 // NFQNL_COPY_PACKET

	verdictDrop   = 0 // NF_DROP
	verdictAccept = 1 // NF_ACCEPT
)

// ErrClosed is returned by a Queue after Close.
var ErrClosed = errors.New("hold: queue closed")

// Queue holds the packets netfilter sends to one queue number until
// Release or Drop.
type Queue struct {
	num  uint16
	fd   int
	seq  uint32
	mu   sync.Mutex
	held []uint32 // packet ids, in arrival order
	max  int
	over int // packets over max, dropped at once
	done chan struct{}
	wg   sync.WaitGroup
	err  error
	// closeMu makes Close once: it cannot take mu, which Drop takes.
	closeMu sync.Mutex

	kernel unix.Sockaddr // the destination of every message (nil: a connected socket, in tests)
	vbuf   []byte        // verdict's message, reused

	// In flow mode (OpenFlows), packets are classified by their TCP flow
	// and held per flow.
	decide func(Flow) Verdict
	flows  map[Flow]*flowHeld
	stats  FlowStats
}

type flowHeld struct {
	ids  []uint32
	over int
}

// Open binds queue num in the calling thread's network namespace and
// starts taking its packets; at most max are held, the rest are dropped
// (and counted) as a full NIC ring would.
func Open(num uint16, max int) (*Queue, error) {
	return open(num, max, copyMeta, nil)
}

func open(num uint16, max int, mode uint8, decide func(Flow) Verdict) (*Queue, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("hold: queue %d: netlink socket: %w", num, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hold: queue %d: bind netlink: %w", num, err)
	}
	// Receive wakes up now and then to see Close.
	tv := unix.Timeval{Usec: 50000}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	q := &Queue{num: num, fd: fd, max: max, done: make(chan struct{}), decide: decide, kernel: &unix.SockaddrNetlink{Family: unix.AF_NETLINK}}
	queueLen := max + 1
	if decide != nil {
		q.flows = map[Flow]*flowHeld{}
		queueLen = 1 << 16 // the per-flow bound is ours
	}
	// Netfilter hands each packet to the netlink socket at once; when its
	// buffer is full the packet is dropped ("user dropped" in
	// /proc/net/netfilter/nfnetlink_queue), which for a held client
	// segment means the client's retransmission timeout. The default
	// buffer takes about 250 packets, less than one window of a busy
	// connection arriving while the reader waits for a CPU; this one takes
	// the queue's bound (about 1 KiB of kernel memory each), up to 16 MiB.
	bufBytes := min(queueLen, 16<<10) * 1024
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, bufBytes); err != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, bufBytes) //nolint:errcheck // up to net.core.rmem_max without CAP_NET_ADMIN
	}
	params := binary.BigEndian.AppendUint32(nil, copyRange) // in meta mode, unused
	params = append(params, mode)
	// One message binds the queue and sets its copy mode and length, as
	// libnl's nfnl_queue_create does: the kernel applies them in one
	// call, so no packet is queued in the default (meta-only) mode before
	// the copy mode, where flow mode could not read its flow.
	cfg := attr(attrCfgCmd, []byte{cmdBind, 0, 0, 0})
	cfg = appendAttr(cfg, attrCfgParams, params)
	cfg = appendAttr(cfg, attrCfgMaxLen, binary.BigEndian.AppendUint32(nil, uint32(queueLen)))
	if err := q.request(msgConfig, unix.AF_UNSPEC, cfg); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hold: queue %d: bind with copy mode %d and length %d: %w", num, mode, queueLen, err)
	}
	q.wg.Add(1)
	go q.receive()
	return q, nil
}

// attr is one netlink attribute, padded to 4 bytes.
func attr(typ uint16, data []byte) []byte { return appendAttr(nil, typ, data) }

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// message builds a netlink message of nfnetlink_queue with the nfgenmsg
// header for this queue.
func (q *Queue) message(typ uint16, family uint8, flags uint16, attrs []byte) []byte {
	return append(q.appendHeader(nil, typ, family, flags, len(attrs)), attrs...)
}

// appendHeader appends the netlink and nfgenmsg headers of a message
// whose attributes take attrsLen bytes.
func (q *Queue) appendHeader(b []byte, typ uint16, family uint8, flags uint16, attrsLen int) []byte {
	q.seq++
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+4+attrsLen))
	b = binary.NativeEndian.AppendUint16(b, unix.NFNL_SUBSYS_QUEUE<<8|typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, q.seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, family, unix.NFNETLINK_V0)
	return binary.BigEndian.AppendUint16(b, q.num)
}

// request sends a config message and waits for its acknowledgement.
func (q *Queue) request(typ uint16, family uint8, attrs []byte) error {
	msg := q.message(typ, family, unix.NLM_F_REQUEST|unix.NLM_F_ACK, attrs)
	seq := q.seq // a verdict for a packet dispatched below moves q.seq on
	if err := unix.Sendto(q.fd, msg, 0, q.kernel); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for range 20 { // bounded: the ack comes first on a fresh socket
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		var ack error
		acked := false
		for _, m := range msgs {
			if m.Header.Type == unix.NLMSG_ERROR && m.Header.Seq == seq && len(m.Data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					ack = unix.Errno(-e)
				}
				acked = true
				continue
			}
			// Once bound, the queue's packets may come before the ack of
			// a later step: they are held (or settled) like any other,
			// not left to the client's retransmission timeout.
			q.dispatch(m)
		}
		if acked {
			return ack
		}
	}
	return errors.New("no acknowledgement")
}

// dispatch takes one netlink message of the queue's socket: a packet is
// held or settled, anything else ignored.
func (q *Queue) dispatch(m syscall.NetlinkMessage) {
	if m.Header.Type != unix.NFNL_SUBSYS_QUEUE<<8|msgPacket || len(m.Data) < 4 {
		return
	}
	id, payload, ok := packetAttrs(m.Data[4:])
	switch {
	case !ok:
	case q.decide != nil:
		q.takeFlow(id, payload)
	default:
		q.take(id)
	}
}

func (q *Queue) receive() {
	defer q.wg.Done()
	buf := make([]byte, 1<<16)
	for {
		select {
		case <-q.done:
			return
		default:
		}
		n, _, err := unix.Recvfrom(q.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOBUFS) {
				continue // the kernel dropped a burst; those packets were dropped
			}
			q.mu.Lock()
			q.err = fmt.Errorf("hold: queue %d: receive: %w", q.num, err)
			q.mu.Unlock()
			return
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			q.dispatch(m)
		}
	}
}

// packetID finds NFQA_PACKET_HDR's packet_id in a packet message's
// attributes.
func packetID(b []byte) (uint32, bool) {
	id, _, ok := packetAttrs(b)
	return id, ok
}

// packetAttrs finds the packet id and the payload (the packet's first
// bytes, in copy-packet mode) in a packet message's attributes.
func packetAttrs(b []byte) (id uint32, payload []byte, ok bool) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		typ := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return 0, nil, false
		}
		switch {
		case typ == attrPacketHdr && l >= 8:
			id, ok = binary.BigEndian.Uint32(b[4:]), true
		case typ == attrPayload:
			payload = b[4:l]
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return id, payload, ok
}

func (q *Queue) take(id uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.held) >= q.max {
		q.over++
		q.verdict(id, verdictDrop) //nolint:errcheck // dropped either way
		return
	}
	q.held = append(q.held, id)
}

// verdict settles one packet. It runs for every packet the queue takes,
// so it builds the message in q.vbuf; q.mu is held.
func (q *Queue) verdict(id uint32, v uint32) error {
	var hdr [8]byte // struct nfqnl_msg_verdict_hdr
	binary.BigEndian.PutUint32(hdr[:], v)
	binary.BigEndian.PutUint32(hdr[4:], id)
	b := q.appendHeader(q.vbuf[:0], msgVerdict, unix.AF_INET, unix.NLM_F_REQUEST, 4+len(hdr))
	q.vbuf = appendAttr(b, attrVerdictHdr, hdr[:])
	return unix.Sendto(q.fd, q.vbuf, 0, q.kernel)
}

// Held is how many packets are held now; Overflow how many were dropped
// because max were held already.
func (q *Queue) Held() (held, overflow int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.held), q.over
}

// Release lets every held packet go on through the stack, in arrival
// order, and returns how many it released.
func (q *Queue) Release() (int, error) { return q.settle(verdictAccept) }

// Drop discards every held packet.
func (q *Queue) Drop() (int, error) { return q.settle(verdictDrop) }

func (q *Queue) settle(v uint32) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return 0, q.err
	}
	n := 0
	for _, id := range q.held {
		if err := q.verdict(id, v); err != nil {
			q.held = q.held[n:]
			return n, fmt.Errorf("hold: queue %d: verdict for packet %d: %w", q.num, id, err)
		}
		n++
	}
	q.held = q.held[:0]
	return n, nil
}

// Wait waits until at least n packets are held or d passes, and says
// whether they are.
func (q *Queue) Wait(n int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if h, _ := q.Held(); h >= n {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// Close drops what is still held, unbinds the queue and closes the
// socket; the kernel then drops the queue's packets (the rule stays).
func (q *Queue) Close() error {
	q.closeMu.Lock() // two Closes at once would both pass the check and close done twice
	defer q.closeMu.Unlock()
	select {
	case <-q.done:
		return ErrClosed
	default:
	}
	q.Drop() //nolint:errcheck // closing anyway
	q.mu.Lock()
	flows := make([]Flow, 0, len(q.flows))
	for f := range q.flows {
		flows = append(flows, f)
	}
	q.mu.Unlock()
	for _, f := range flows {
		q.DropFlow(f) //nolint:errcheck // closing anyway
	}
	close(q.done)
	q.wg.Wait()
	q.request(msgConfig, unix.AF_UNSPEC, attr(attrCfgCmd, []byte{cmdUnbind, 0, 0, 0})) //nolint:errcheck // the close unbinds too
	return unix.Close(q.fd)
}
