package app

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// A chunked body's lines end in CRLF and nothing else (RFC 9112 §7.1): a
// front end that splits them elsewhere (a bare LF ending the size line is
// CVE-2025-22871) would see other requests in the body than the server.
// Every such body is answered 400 and the connection closed.
func TestChunkedBodyNeedsCRLF(t *testing.T) {
	for _, body := range []string{
		"5\nhello\r\n0\r\n\r\n",                  // bare LF after the size
		"5\r\nhello\n0\r\n\r\n",                  // bare LF after the data
		"5\r\nhello\r\r\n0\r\n\r\n",              // CR CR LF after the data
		"5\r\nhelloXY0\r\n\r\n",                  // data longer than its size
		"5;a\rb\r\nhello\r\n0\r\n\r\n",           // bare CR in an extension
		"5\r\r\nhello\r\n0\r\n\r\n",              // CR CR LF after the size
		"5 \r\nhello\r\n0\r\n\r\n",               // a blank with no extension
		"5;\r\nhello\r\n0\r\n\r\n",               // an extension without name
		"5;a=\r\nhello\r\n0\r\n\r\n",             // and without value
		"5;a=\"b\r\nhello\r\n0\r\n\r\n",          // an unterminated quoted string
		"5;a=b c\r\nhello\r\n0\r\n\r\n",          // two tokens
		"5;a=b \r\nhello\r\n0\r\n\r\n",           // a blank at the end
		"5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",     // a control character quoted
		"5\r\nhello\r\n0\n\r\n",                  // bare LF after the last size
		"5\r\nhello\r\n0\r\n\x00junk\r\n\r\n",    // a trailer line that is no field
		"5\r\nhello\r\n0\r\nX-T: a\x01b\r\n\r\n", // a control character in a trailer
		"5\r\nhello\r\n0\r\n: v\r\n\r\n",         // a trailer without name
		"5\r\nhello\r\n0\r\nX-T: v\n\r\n",        // a trailer ending in a bare LF
		"5\r\nhello\r\n0\r\n\n",                  // the last line a bare LF
	} {
		for _, chunk := range []int{0, 1} {
			in := "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body + "GET /ping HTTP/1.1\r\nHost: a\r\n\r\n"
			res, err := serveHTTPFake(testServer(), []byte(in), chunk, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.out)), nil)
			if err != nil {
				t.Fatalf("%q: %v", body, err)
			}
			if resp.StatusCode != http.StatusBadRequest || !resp.Close || !res.early {
				t.Errorf("chunked body %q (reads of %d): status %d, says close %v, closed %v; want 400 and closed", body, chunk, resp.StatusCode, resp.Close, res.early)
			}
		}
	}
}

// What RFC 9112 allows is still read: extensions with blanks around ";"
// and "=", quoted values with escapes, and trailer fields.
func TestChunkedBodyExtensionsAndTrailers(t *testing.T) {
	for _, body := range []string{
		"5;a=b\r\nhello\r\n0\r\n\r\n",
		"5 ; a = b ;c\r\nhello\r\n0\r\n\r\n",
		"5;a=\"q \\\" ;x\"\r\nhello\r\n0;end\r\n\r\n",
		"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B:\t2 3\r\nX-C:\r\n\r\n",
		"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
	} {
		for _, chunk := range []int{0, 1} {
			in := "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body + "GET /ping HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
			res, err := serveHTTPFake(testServer(), []byte(in), chunk, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkResponses(t, []exchange{
				{status: 200, body: bodyIs(hexSHA([]byte("hello")) + "\n")},
				{status: 200, body: bodyIs("pong\n")},
			}, res.out)
			if t.Failed() {
				t.Fatalf("chunked body %q (reads of %d)", body, chunk)
			}
		}
	}
}

// A chunk-size line must be whole before it is parsed: one split across
// reads at its CR is not taken for one with a bare CR.
func TestCRLFLineSplitAcrossReads(t *testing.T) {
	body := "a;x=" + strings.Repeat("y", 50) + "\r\n0123456789\r\n0\r\n\r\n"
	in := "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body
	for _, chunk := range []int{1, 2, 3, 7} {
		res, err := serveHTTPFake(testServer(), []byte(in), chunk, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkResponses(t, []exchange{{status: 200, body: bodyIs(hexSHA([]byte("0123456789")) + "\n")}}, res.out)
	}
}
