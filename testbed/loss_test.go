package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Bulk transfers between capygen's stack and a Linux curl under packet
// loss and duplication in both directions (issue 11: TCP at the Linux
// kernel's level).

// impairTable prefixes the names of the nftables tables impair installs,
// and holeIface the veth pair (names ending in a and b) that its egress
// losses are forwarded into, where they vanish; each call adds its own
// number, so that impairments can follow one another in one test.
const (
	impairTable = "capyimpair"
	holeIface   = "capyhole"
)

// impairSeq numbers impair's calls.
var impairSeq atomic.Uint32

// impair installs nftables rules in host's namespace that lose lossPct%
// and duplicate dupPct% of the packets in each direction on iface (this
// kernel has no netem):
//
//   - leaving: lost packets are forwarded (fwd) into holeIface, a veth
//     whose peer drops them, rather than dropped. A netdev egress drop
//     reaches the local sender's TCP as a failed transmission (the kernel
//     keeps the segment and sends it again later, only entering CWR), so
//     no data is ever missing at the receiver; a forwarded packet was
//     "sent" as far as the sender knows, which is what a lossy wire is.
//     Duplicates are a netdev dup out of iface itself.
//   - arriving: lost packets are dropped at the netdev ingress hook (real
//     loss for the receiver). A netdev dup can only transmit, so arriving
//     packets are duplicated by an ip-family prerouting dup to host's
//     own address through lo: the copy is received a second time.
//   - the egress hook runs before GSO segmentation, and Linux TCP always
//     builds GSO packets (up to 64 KB) even with the offloads off: one
//     rule hit would lose or duplicate a whole burst. impair sets iface's
//     gso_max_segs to 1 for the duration, so every skb the hook sees is
//     one segment (connections opened after impair).
//
// host is a kernel-stack host (a client): the stack under test (or the
// switch, in the migration testbed) owns the other end through AF_XDP,
// whose transmissions and receptions bypass its own interface's
// netfilter hooks. Everything is removed by the impairment's remove, or
// with tb.
func impair(tb testing.TB, bed *Testbed, host, iface string, lossPct, dupPct int) *impairment {
	tb.Helper()
	if err := CheckTools("nft"); err != nil {
		tb.Skip(err)
	}
	n := impairSeq.Add(1)
	im := &impairment{bed: bed, host: host, table: fmt.Sprintf("%s%d", impairTable, n)}
	tb.Cleanup(im.remove)
	hole, peer := fmt.Sprintf("%s%da", holeIface, n), fmt.Sprintf("%s%db", holeIface, n)
	var local string
	for _, ifc := range bed.Topology.Interfaces(host) {
		if ifc.Name == iface && ifc.Prefix.IsValid() {
			local = ifc.Prefix.Addr().String()
		}
	}
	if local == "" {
		tb.Fatalf("host %s has no addressed interface %s", host, iface)
	}
	out, err := bed.Exec(host, "ip", "-d", "link", "show", "dev", iface)
	if err != nil {
		tb.Fatal(err)
	}
	m := gsoSegsRE.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("ip -d link show %s printed no gso_max_segs:\n%s", iface, out)
	}
	if _, err := bed.Exec(host, "ip", "link", "set", "dev", iface, "gso_max_segs", "1"); err != nil {
		tb.Fatal(err)
	}
	im.undo = append(im.undo, func() { bed.Exec(host, "ip", "link", "set", "dev", iface, "gso_max_segs", string(m[1])) })
	var egress, ingress, pre strings.Builder
	if lossPct > 0 {
		if _, err := bed.Exec(host, "ip", "link", "add", hole, "type", "veth", "peer", "name", peer); err != nil {
			tb.Fatal(err)
		}
		im.undo = append(im.undo, func() { bed.Exec(host, "ip", "link", "del", hole) })
		for _, l := range []string{hole, peer} {
			if _, err := bed.Exec(host, "ip", "link", "set", l, "up"); err != nil {
				tb.Fatal(err)
			}
		}
		fmt.Fprintf(&egress, "\t\tnumgen random mod 100 < %d counter fwd to %q\n", lossPct, hole)
		fmt.Fprintf(&ingress, "\t\tnumgen random mod 100 < %d counter drop\n", lossPct)
	}
	if dupPct > 0 {
		fmt.Fprintf(&egress, "\t\tnumgen random mod 100 < %d counter dup to %q\n", dupPct, iface)
		fmt.Fprintf(&pre, "\t\tiifname %q ip daddr %s numgen random mod 100 < %d counter dup to %s device \"lo\"\n", iface, local, dupPct, local)
	}
	ruleset := fmt.Sprintf(`table netdev %[1]s {
	chain egress {
		type filter hook egress device %[2]q priority 0; policy accept;
%[3]s	}
	chain ingress {
		type filter hook ingress device %[2]q priority 0; policy accept;
%[4]s	}
}
table ip %[1]s {
	chain prerouting {
		type filter hook prerouting priority 0; policy accept;
%[5]s	}
}
`, im.table, iface, egress.String(), ingress.String(), pre.String())
	path := filepath.Join(tb.TempDir(), "impair.nft")
	if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
		tb.Fatal(err)
	}
	if _, err := bed.Exec(host, "nft", "-f", path); err != nil {
		tb.Fatal(err)
	}
	im.undo = append(im.undo, func() {
		bed.Exec(host, "nft", "delete", "table", "netdev", im.table)
		bed.Exec(host, "nft", "delete", "table", "ip", im.table)
	})
	return im
}

var gsoSegsRE = regexp.MustCompile(`gso_max_segs (\d+)`)

type impairment struct {
	bed         *Testbed
	host, table string
	undo        []func() // what remove runs, last first
	removed     bool
}

// remove takes the impairment away (rules, hole veth, gso_max_segs), once;
// impair also registers it with its tb.
func (im *impairment) remove() {
	if im.removed {
		return
	}
	im.removed = true
	for i := len(im.undo) - 1; i >= 0; i-- {
		im.undo[i]()
	}
}

// impairCounts is how many packets the rules lost and duplicated, by
// direction as seen from the impaired host.
type impairCounts struct {
	LostOut, LostIn, DupOut, DupIn uint64
}

// lost and duplicated are the totals over both directions.
func (c impairCounts) lost() uint64       { return c.LostOut + c.LostIn }
func (c impairCounts) duplicated() uint64 { return c.DupOut + c.DupIn }

func (c impairCounts) String() string {
	return fmt.Sprintf("lost %d leaving and %d arriving, duplicated %d leaving and %d arriving", c.LostOut, c.LostIn, c.DupOut, c.DupIn)
}

var impairCounterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+ (fwd to|drop|dup to "|dup to \d)`)

// counts reads the rules' counters.
func (im *impairment) counts(tb testing.TB) impairCounts {
	tb.Helper()
	var c impairCounts
	for _, family := range []string{"netdev", "ip"} {
		out, err := im.bed.Exec(im.host, "nft", "list", "table", family, im.table)
		if err != nil {
			tb.Fatal(err)
		}
		for _, m := range impairCounterRE.FindAllStringSubmatch(string(out), -1) {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			switch m[2] {
			case "fwd to":
				c.LostOut += n
			case "drop":
				c.LostIn += n
			case `dup to "`:
				c.DupOut += n
			default:
				c.DupIn += n
			}
		}
	}
	return c
}

// lossTransferTimeout bounds each curl transfer under impairment.
const lossTransferTimeout = "120"

// curlGet downloads url into path from the client namespace and returns
// curl's total time.
func curlGet(bed *Testbed, url, path string) (time.Duration, error) {
	out, err := bed.Exec("client", "curl", "-sS", "--fail", "-m", lossTransferTimeout, "-o", path, "-w", "%{time_total}", url)
	if err != nil {
		return 0, err
	}
	return curlTime(out)
}

// curlPost uploads the file at path to url from the client namespace,
// saves the response body in resp and returns curl's total time.
func curlPost(bed *Testbed, url, path, resp string) (time.Duration, error) {
	out, err := bed.Exec("client", "curl", "-sS", "--fail", "-m", lossTransferTimeout, "-H", "Content-Type: application/octet-stream",
		"--data-binary", "@"+path, "-o", resp, "-w", "%{time_total}", url)
	if err != nil {
		return 0, err
	}
	return curlTime(out)
}

func curlTime(out []byte) (time.Duration, error) {
	s, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("curl -w %%{time_total} printed %q", out)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// TestBulkUnderLossAndDuplication moves 10 MiB each way between curl and
// capygen's stack, once with 3% loss in both directions and once with 3%
// duplication in both directions. Every byte must arrive intact, within
// curl's 120 s, and the stack must never send a RST.
func TestBulkUnderLossAndDuplication(t *testing.T) {
	needPeers(t)
	if err := CheckTools("nft"); err != nil {
		t.Skip(err)
	}
	bed := up(t, Default())
	addr, _, _ := serverAddr(t, bed)
	upload := writePayload(t, bulk)
	wantUp := sha256File(t, upload)
	for _, c := range []struct {
		name      string
		loss, dup int
	}{
		{"3pct-loss", 3, 0},
		{"3pct-duplication", 0, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			im := impair(t, bed, "client", "veth0", c.loss, c.dup)
			rsts := watchRST(t, bed, "client", "veth0", addr)
			s := startServe(t, bed)

			down := filepath.Join(t.TempDir(), "download")
			url := fmt.Sprintf("http://%s/bytes?n=%d", addr, bulk)
			if took, err := curlGet(bed, url, down); err != nil {
				t.Errorf("download: %v", err)
			} else {
				t.Logf("download of %d bytes: %v (%.1f MB/s)", bulk, took.Round(time.Millisecond), float64(bulk)/took.Seconds()/1e6)
				if got, want := sha256File(t, down), PayloadSHA256(bulk); got != want {
					t.Errorf("download: sha256 %s, want %s", got, want)
				}
			}
			after := im.counts(t)
			t.Logf("during the download nftables %s", after)

			resp := filepath.Join(t.TempDir(), "upload-response")
			if took, err := curlPost(bed, "http://"+addr+"/upload", upload, resp); err != nil {
				t.Errorf("upload: %v", err)
			} else {
				t.Logf("upload of %d bytes: %v (%.1f MB/s)", bulk, took.Round(time.Millisecond), float64(bulk)/took.Seconds()/1e6)
				body, _ := os.ReadFile(resp)
				if got := strings.TrimSpace(string(body)); got != wantUp {
					t.Errorf("upload: the server's sha256 of the body is %q, want %s", got, wantUp)
				}
			}
			total := im.counts(t)
			t.Logf("during the upload nftables lost %d leaving and %d arriving, duplicated %d leaving and %d arriving",
				total.LostOut-after.LostOut, total.LostIn-after.LostIn, total.DupOut-after.DupOut, total.DupIn-after.DupIn)

			// curl is done once it has its answer; the closing handshake
			// may still be under way (a lost FIN costs a retransmission
			// timeout). capyrun serve's exit resets the connections its
			// stack still holds, which is not what this test looks for:
			// let the handshakes finish first. The time shows which RSTs
			// the exit sent.
			time.Sleep(2 * time.Second)
			t.Logf("stopping the server at %s", time.Now().Format("15:04:05.000000"))
			cs := s.stop(t)
			t.Logf("in all nftables %s; the stack retransmitted %d segments, received %d RSTs", total, cs.TCPRetransmits, cs.RSTIn)
			if c.loss > 0 && (total.LostOut == 0 || total.LostIn == 0) {
				t.Errorf("the loss rules never fired in one direction (%s): the test did not exercise loss", total)
			}
			if c.dup > 0 && (total.DupOut == 0 || total.DupIn == 0) {
				t.Errorf("the duplication rules never fired in one direction (%s): the test did not exercise duplication", total)
			}
			if cs.RSTOut != 0 {
				t.Errorf("the stack sent %d RSTs; it must never reset a live connection", cs.RSTOut)
			}
			if r := rsts(); len(r) > 0 {
				t.Errorf("tcpdump saw %d RSTs from the stack:\n%s", len(r), strings.Join(r, "\n"))
			}
		})
	}
}

// impair's impairments can follow one another in one test: each has its
// own table and hole veth, and remove takes it all away.
func TestImpairAgainAfterRemove(t *testing.T) {
	needNetns(t, "nft")
	bed := up(t, Default())
	links := func() string {
		out, err := bed.Exec("client", "ip", "-o", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	first := impair(t, bed, "client", "veth0", 1, 1)
	first.remove()
	first.remove() // once only
	if l := links(); strings.Contains(l, holeIface) {
		t.Errorf("the first impairment's hole veth outlived remove:\n%s", l)
	}
	third := impair(t, bed, "client", "veth0", 3, 0)
	if c := third.counts(t); c != (impairCounts{}) {
		t.Errorf("a fresh impairment counts %s", c)
	}
	third.remove()
	out, err := bed.Exec("client", "nft", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), impairTable) {
		t.Errorf("tables left after remove:\n%s", out)
	}
}
