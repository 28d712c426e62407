package gateway

import (
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// connsSlack is how many connections fasthttp may serve beyond
	// ConnsMax: a closed connection leaves our count before fasthttp's
	// worker is released, and fasthttp's own refusal is plain text without
	// Retry-After.
	connsSlack = 1024
	// connRefuseTimeout bounds answering a connection over the limit.
	connRefuseTimeout = time.Second
	// connRefusingMax bounds the connections being refused at once; beyond
	// it they are closed without an answer.
	connRefusingMax = 256
	// connRefuseReadMax bounds what is read from a refused connection.
	connRefuseReadMax = 128 << 10
)

// connLimitListener sheds connections over max with the API's 503
// envelope and Retry-After (law 9), written after the request arrived.
type connLimitListener struct {
	net.Listener
	max      int64
	open     atomic.Int64
	refusal  []byte
	refusing chan struct{}
}

func (s *Server) limitListener(ln net.Listener) net.Listener {
	body := appendErr(nil, CodeUnavailable, "too many connections, retry later")
	resp := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: " + string(s.retry) +
		"\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body)
	return &connLimitListener{Listener: ln, max: int64(s.o.ConnsMax), refusal: []byte(resp),
		refusing: make(chan struct{}, connRefusingMax)}
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		select {
		case l.refusing <- struct{}{}:
			go l.refuse(c)
		default:
			_ = c.Close()
		}
	}
}

// refuse reads the request head, answers 503 and closes c.
func (l *connLimitListener) refuse(c net.Conn) {
	defer func() { <-l.refusing }()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(connRefuseTimeout))
	buf := make([]byte, 4096)
	if _, err := c.Read(buf); err != nil {
		return
	}
	if _, err := c.Write(l.refusal); err != nil {
		return
	}
	// Let the answer reach the client before the close: closing with
	// unread input would reset the connection.
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.CopyBuffer(io.Discard, io.LimitReader(c, connRefuseReadMax), buf)
}

// limitConn gives its slot back when closed.
type limitConn struct {
	net.Conn
	l    *connLimitListener
	once sync.Once
	// ip is the remote address as text, made by connIP at the first
	// request that needs it.
	ip atomic.Pointer[string]
}

func (c *limitConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
