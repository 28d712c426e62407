package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOversizedHeadersAre431 sends request headers over fasthttp's read
// buffer over a real loopback connection: the answer is HTTP 431 (RFC
// 6585 requires it; the one status that differs from its code's row) with
// the JSON envelope of 41300, and the connection is closed. Headers within
// the buffer are served as usual.
func TestOversizedHeadersAre431(t *testing.T) {
	h := newHarness(t, "memory")
	addr := strings.TrimPrefix(h.base, "http://")
	send := func(hdrBytes int) (*http.Response, []byte) {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		req := "GET /healthz HTTP/1.1\r\nHost: surge\r\nX-Padding: " + strings.Repeat("a", hdrBytes) + "\r\n\r\n"
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("reading the answer to %d header bytes: %v", hdrBytes, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}

	res, body := send(1 << 10)
	if res.StatusCode != 200 {
		t.Fatalf("1 KiB of headers: HTTP %d %s; want 200", res.StatusCode, body)
	}

	for _, n := range []int{8 << 10, 64 << 10} {
		res, body = send(n)
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d header bytes: HTTP %d; want 431", n, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%d header bytes: Content-Type %q; want JSON", n, ct)
		}
		var env struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Code != CodeTooLarge || env.Msg == "" {
			t.Errorf("%d header bytes: body %q (%v); want the envelope of %d", n, body, err, CodeTooLarge)
		}
		if !res.Close {
			t.Errorf("%d header bytes: connection kept; want Connection: close", n)
		}
		if res.Header.Get("X-Request-Id") == "" {
			t.Errorf("%d header bytes: no X-Request-Id", n)
		}
	}
}
