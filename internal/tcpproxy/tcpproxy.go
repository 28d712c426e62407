// Package tcpproxy is a loopback TCP proxy for tests that need a backend
// to become unreachable and come back: Stop closes its listener and every
// connection through it (the client then sees refused connections, as
// with a server that went away), Start listens again on the same port.
// It is for tests only; it forwards bytes and nothing else.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// connsMax bounds the connections a Proxy carries at once; more are
// closed at once.
const connsMax = 256

// Proxy forwards connections to a target address.
type Proxy struct {
	target string
	// Addr is the proxy's loopback address ("127.0.0.1:port"), the same
	// across Stop and Start.
	Addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// New starts a proxy to target on a free loopback port; it is stopped when
// the test ends.
func New(tb testing.TB, target string) *Proxy {
	tb.Helper()
	p := &Proxy{target: target, Addr: "127.0.0.1:0", conns: make(map[net.Conn]struct{})}
	if err := p.Start(); err != nil {
		tb.Fatalf("tcpproxy: %v", err)
	}
	tb.Cleanup(p.Stop)
	return p
}

// Start listens again (no-op when listening).
func (p *Proxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		return err
	}
	p.ln, p.Addr = ln, ln.Addr().String()
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// Stop closes the listener and every connection, and waits for the
// proxy's goroutines.
func (p *Proxy) Stop() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil || len(p.conns) >= connsMax {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	b, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(b) {
		_ = b.Close()
		return
	}
	defer p.untrack(b)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.Close()
		_ = src.Close()
		done <- struct{}{}
	}
	go pipe(b, c)
	go pipe(c, b)
	<-done
	<-done
}
