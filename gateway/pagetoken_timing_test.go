package gateway

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkPageTokenSet is what a page view pays for its token.
func BenchmarkPageTokenSet(b *testing.B) {
	p := newPageTokens([]byte("bench-session-secret-0123456789ab"))
	var h fasthttp.ResponseHeader
	now := time.Now().UnixMilli()
	b.ReportAllocs()
	for b.Loop() {
		p.set(&h, "s001", now)
	}
}

// BenchmarkPageTokenRead is what a reserve pays to read one.
func BenchmarkPageTokenRead(b *testing.B) {
	p := newPageTokens([]byte("bench-session-secret-0123456789ab"))
	var in interner
	in.init()
	in.keep("s001")
	tok := []byte(p.sign("s001", time.Now().UnixMilli()))
	b.ReportAllocs()
	for b.Loop() {
		p.read(tok, &in)
	}
}
