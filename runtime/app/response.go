package app

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// respKind is how a response body is delimited.
type respKind uint8

const (
	respNone    respKind = iota // header not written yet
	respLength                  // Content-Length
	respChunked                 // Transfer-Encoding: chunked
	respClose                   // delimited by closing the connection (HTTP/1.0)
	respEmpty                   // no body can follow (HEAD, 1xx, 204, 304)
	numRespKinds
)

// respState is a response's framing as far as it was written; like
// bodyState it travels with a migration of a resumable request.
type respState struct {
	status  int
	kind    respKind
	length  int64 // respLength: the declared length
	written int64 // body bytes written (counted, not sent, for respEmpty)
}

// bodyAllowedForStatus is RFC 9110's rule: 1xx, 204 and 304 have no body.
func bodyAllowedForStatus(status int) bool {
	return !(status >= 100 && status < 200 || status == http.StatusNoContent || status == http.StatusNotModified)
}

// writeStatusLine writes "HTTP/1.1 <code> <text>".
func writeStatusLine(bw *bufio.Writer, status int) {
	text := http.StatusText(status)
	if text == "" {
		text = "status code " + strconv.Itoa(status)
	}
	fmt.Fprintf(bw, "HTTP/1.1 %03d %s\r\n", status, text)
}

// writeHead writes the status line and the header block; errors stick in
// bw and come out of its next Flush.
func writeHead(bw *bufio.Writer, status int, h http.Header) {
	writeStatusLine(bw, status)
	h.Write(bw) //nolint:errcheck // sticky in bw
	bw.WriteString("\r\n")
}

// wantsClose reports whether a Connection header asks for close.
func wantsClose(h http.Header) bool {
	for _, v := range h["Connection"] {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "close") {
				return true
			}
		}
	}
	return false
}

// setConnection states the keep-alive decision the way each protocol
// version needs: HTTP/1.1 is persistent unless told close, HTTP/1.0 only
// when told keep-alive.
func setConnection(h http.Header, protoMinor int, closeAfter bool) {
	switch {
	case closeAfter:
		h.Set("Connection", "close")
	case protoMinor == 0:
		h.Set("Connection", "keep-alive")
	default:
		h.Del("Connection")
	}
}

// frame decides a response's framing from its status, declared length
// (-1: unknown) and the request, and sets the headers that say so. It
// returns the new state and whether the connection must close after.
func frame(h http.Header, status int, length int64, head bool, protoMinor int, closeAfter bool) (respState, bool) {
	st := respState{status: status}
	h.Del("Transfer-Encoding") // the server frames the body, nobody else
	closeAfter = closeAfter || wantsClose(h)
	switch {
	case !bodyAllowedForStatus(status):
		st.kind = respEmpty
		h.Del("Content-Length")
	case head:
		st.kind = respEmpty
		if length >= 0 {
			h.Set("Content-Length", strconv.FormatInt(length, 10))
		}
	case length >= 0:
		st.kind, st.length = respLength, length
		h.Set("Content-Length", strconv.FormatInt(length, 10))
	case protoMinor >= 1:
		st.kind = respChunked
		h.Del("Content-Length")
		h.Set("Transfer-Encoding", "chunked")
	default:
		st.kind = respClose
		h.Del("Content-Length")
		closeAfter = true
	}
	setConnection(h, protoMinor, closeAfter)
	return st, closeAfter
}

// errBodyTooLong is a write past the declared Content-Length.
var errBodyTooLong = http.ErrContentLength

// writeBody frames p per st, counting it; it returns how much of p was
// accepted.
func writeBody(bw *bufio.Writer, st *respState, p []byte) (int, error) {
	switch st.kind {
	case respNone:
		return 0, fmt.Errorf("app: body written before the header")
	case respEmpty:
		st.written += int64(len(p))
		return len(p), nil
	case respLength:
		if left := st.length - st.written; int64(len(p)) > left {
			n, _ := bw.Write(p[:left])
			st.written += int64(n)
			return n, fmt.Errorf("%w: declared %d bytes", errBodyTooLong, st.length)
		}
	case respChunked:
		if len(p) == 0 {
			return 0, nil // an empty chunk would end the body
		}
		fmt.Fprintf(bw, "%x\r\n", len(p))
		defer bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	st.written += int64(n)
	return n, err
}

// endBody writes the chunked terminator; it reports false when the body
// fell short of its declared length, so the connection must close.
func endBody(bw *bufio.Writer, st *respState) bool {
	switch st.kind {
	case respChunked:
		bw.WriteString("0\r\n\r\n")
	case respLength:
		return st.written == st.length
	case respClose:
		return false
	}
	return true
}

// plainBufferSize is how much a plain handler's body is held before the
// header goes out: a response that fits gets a Content-Length.
const plainBufferSize = 4096

// response is the http.ResponseWriter of a plain handler. The request is
// served between quiescent points, so none of this travels.
type response struct {
	bw         *bufio.Writer
	now        func() time.Time
	logf       func(format string, args ...any)
	protoMinor int
	head       bool
	closeAfter bool
	// body is the request's; the header says close when what the handler
	// left of it will not be read away.
	body *bodyReader

	header      http.Header
	status      int // 0 until WriteHeader
	committed   bool
	held        []byte // body held until the header is committed
	st          respState
	handlerDone bool
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
)

func (w *response) Header() http.Header { return w.header }

// WriteHeader records the status; 1xx informational responses go out at
// once, as net/http sends them.
func (w *response) WriteHeader(code int) {
	if w.status != 0 || w.committed {
		w.logf("app: superfluous WriteHeader(%d) after %d", code, w.status)
		return
	}
	if code < 100 || code > 999 {
		w.logf("app: handler wrote status %d, outside 100..999; sending 500", code)
		code = http.StatusInternalServerError
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		writeHead(w.bw, code, w.header)
		w.bw.Flush() //nolint:errcheck // a failure shows on the final write
		return
	}
	w.status = code
}

func (w *response) Write(p []byte) (int, error) {
	if w.handlerDone {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if !w.committed {
		if len(w.held)+len(p) <= plainBufferSize {
			w.held = append(w.held, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return writeBody(w.bw, &w.st, p)
}

// commit writes the header. final: the handler returned, so all of the
// body is held and its length known.
func (w *response) commit(final bool) {
	if w.committed {
		return
	}
	w.committed = true
	h := w.header
	length := int64(-1)
	if cl := h.Get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || v < 0 {
			w.logf("app: handler set Content-Length %q, not a byte count; ignoring it", cl)
			h.Del("Content-Length")
		} else {
			length = v
		}
	}
	if length < 0 && final && (len(w.held) > 0 || !w.head) {
		length = int64(len(w.held))
	}
	if _, ok := h["Date"]; !ok {
		h.Set("Date", w.now().UTC().Format(http.TimeFormat))
	}
	if _, ok := h["Content-Type"]; !ok && len(w.held) > 0 && bodyAllowedForStatus(w.status) {
		h.Set("Content-Type", http.DetectContentType(w.held))
	}
	w.closeAfter = w.closeAfter || w.body != nil && (w.body.failed() || w.body.st.unreadable())
	w.st, w.closeAfter = frame(h, w.status, length, w.head, w.protoMinor, w.closeAfter)
	writeHead(w.bw, w.status, h)
	held := w.held
	w.held = nil
	if len(held) > 0 {
		if _, err := writeBody(w.bw, &w.st, held); err != nil {
			w.logf("app: %v", err)
		}
	}
}

// Flush sends the header and what the body has so far.
func (w *response) Flush() {
	if w.handlerDone {
		return // bw may serve another connection by now, as Write says
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.commit(false)
	w.bw.Flush() //nolint:errcheck // a failure shows on the final write
}

// finish completes the response after the handler returned; false means
// the body fell short of its Content-Length and the connection must close.
func (w *response) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	w.commit(true)
	w.handlerDone = true
	if !endBody(w.bw, &w.st) {
		if w.st.kind == respLength {
			w.logf("app: handler wrote %d of the %d body bytes it declared; closing the connection", w.st.written, w.st.length)
		}
		return false
	}
	return true
}
