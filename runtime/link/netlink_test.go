package link

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// nlmsg builds one netlink message of type typ and sequence seq with an
// errno payload (for NLMSG_ERROR) padded to 4 bytes.
func nlmsg(typ uint16, seq uint32, errno int32, extra int) []byte {
	l := 16 + 4 + extra
	b := make([]byte, (l+3)&^3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(l))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[16:], uint32(errno))
	return b
}

func TestParseAck(t *testing.T) {
	ack := func(seq uint32, errno int32) []byte { return nlmsg(unix.NLMSG_ERROR, seq, errno, 0) }
	concat := func(bs ...[]byte) (out []byte) {
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		b         []byte
		wantFound bool
		wantErr   error
	}{
		{"success", ack(7, 0), true, nil},
		{"errno", ack(7, -int32(unix.EBUSY)), true, unix.EBUSY},
		{"other seq", ack(6, 0), false, nil},
		{"after other message", concat(nlmsg(unix.RTM_NEWLINK, 7, 0, 5), ack(7, -int32(unix.EOPNOTSUPP))), true, unix.EOPNOTSUPP},
		{"empty", nil, false, nil},
		{"short header", make([]byte, 10), false, nil},
	} {
		found, err := parseAck(tc.b, 7)
		if found != tc.wantFound || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
			t.Errorf("parseAck(%s) = %v, %v, want %v, %v", tc.name, found, err, tc.wantFound, tc.wantErr)
		}
	}
	bad := ack(7, 0)
	binary.NativeEndian.PutUint32(bad, 1000)
	if _, err := parseAck(bad, 7); err == nil {
		t.Error("parseAck(length beyond the datagram) = nil error, want malformed")
	}
	short := nlmsg(unix.NLMSG_ERROR, 7, 0, 0)
	binary.NativeEndian.PutUint32(short, 16)
	if found, err := parseAck(short, 7); !found || err == nil {
		t.Errorf("parseAck(error message without errno) = %v, %v, want found with an error", found, err)
	}
}

func FuzzParseAck(f *testing.F) {
	f.Add(nlmsg(unix.NLMSG_ERROR, 7, 0, 0))
	f.Add(nlmsg(unix.NLMSG_ERROR, 7, -16, 0))
	f.Add(append(nlmsg(unix.RTM_NEWLINK, 1, 0, 3), nlmsg(unix.NLMSG_ERROR, 7, 0, 0)...))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		found, err := parseAck(b, 7)
		if err != nil && !found {
			var errno unix.Errno
			if errors.As(err, &errno) {
				t.Fatalf("parseAck returned errno %v without finding the ack", errno)
			}
		}
	})
}
