package tcp

import (
	"testing"
	"time"
)

// inState returns a conn (and its peer) driven into want.
func inState(t *testing.T, want State) (c, peer *Conn, now Time) {
	t.Helper()
	if want == StateSynReceived {
		a := Dial(Config{}, ID{Local: addrA, Remote: addrB}, 1000, 0)
		syn := emitted(a, 0)
		b, err := Accept(Config{}, ID{Local: addrB, Remote: addrA}, &syn[0], 5000, 0)
		if err != nil {
			t.Fatal(err)
		}
		emitted(b, 0)
		return b, a, 0
	}
	a, b, now := establish(t, Config{}, Config{})
	switch want {
	case StateEstablished:
	case StateFinWait1:
		a.Close()
		emitted(a, now) // FIN lost
	case StateFinWait2, StateCloseWait:
		a.Close()
		feed(b, now, emitted(a, now))
		feed(a, now, emitted(b, now))
		if want == StateCloseWait {
			return b, a, now
		}
	case StateClosing:
		a.Close()
		b.Close()
		fa := emitted(a, now)
		feed(a, now, emitted(b, now))
		_ = fa // A's FIN is lost: A stays CLOSING
	case StateLastAck:
		a.Close()
		feed(b, now, emitted(a, now))
		feed(a, now, emitted(b, now))
		b.Close()
		emitted(b, now) // B's FIN lost
		return b, a, now
	case StateTimeWait:
		a.Close()
		pingPong(a, b, now)
		b.Close()
		pingPong(a, b, now)
	}
	if a.State() != want {
		t.Fatalf("setup reached %v, want %v", a.State(), want)
	}
	return a, b, now
}

func TestAcceptabilityInEveryState(t *testing.T) {
	for _, st := range []State{StateSynReceived, StateEstablished, StateFinWait1, StateFinWait2,
		StateCloseWait, StateClosing, StateLastAck, StateTimeWait} {
		t.Run(st.String(), func(t *testing.T) {
			c, _, now := inState(t, st)
			if c.State() != st {
				t.Fatalf("setup reached %v, want %v", c.State(), st)
			}
			now += time.Millisecond
			emitted(c, now)
			ack := c.sndMax
			for _, seg := range []Segment{
				{Seq: c.rcvNxt + 1<<20, Ack: ack, Flags: FlagACK, Window: 100, Payload: []byte("far ahead")},
				{Seq: c.rcvNxt - 5000, Ack: ack, Flags: FlagACK, Window: 100, Payload: []byte("old")},
				{Seq: c.rcvNxt - 1, Ack: ack, Flags: FlagACK, Window: 100},
			} {
				before := c.Stats().Unacceptable
				c.Input(now, &seg)
				if c.Stats().Unacceptable != before+1 {
					t.Fatalf("%v in %v passed the acceptability test", seg.String(), st)
				}
				out := emitted(c, now)
				if len(out) == 0 {
					t.Fatalf("%v in %v got no answer, want an ACK", seg.String(), st)
				}
				for _, o := range out {
					if o.Flags&FlagRST != 0 {
						t.Fatalf("%v in %v was answered with %v", seg.String(), st, o.String())
					}
					if o.Flags&FlagACK == 0 || o.Ack != c.rcvNxt {
						t.Fatalf("%v in %v answered with %v, want ACK %d", seg.String(), st, o.String(), c.rcvNxt)
					}
				}
				if c.State() != st {
					t.Fatalf("%v moved %v to %v", seg.String(), st, c.State())
				}
				// An unacceptable RST is dropped silently.
				rst := Segment{Seq: c.rcvNxt + 1<<20, Flags: FlagRST}
				c.Input(now, &rst)
				if out := emitted(c, now); len(out) != 0 || c.State() != st {
					t.Fatalf("out-of-window RST in %v: emitted %v, state %v", st, out, c.State())
				}
			}
		})
	}
}
