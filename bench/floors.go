package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/cockroachdb/pebble/v2"
	"github.com/redis/rueidis"
	"github.com/valyala/fasthttp"
)

// FloorServer is a bare fasthttp server that answers every request with
// the same JSON body: the floor for any HTTP endpoint of Surge.
type FloorServer struct {
	Addr string
	srv  *fasthttp.Server
	ln   net.Listener
}

// StartFloorServer serves body (as application/json) on addr
// ("127.0.0.1:0" for a free loopback port).
func StartFloorServer(addr string, body []byte) (*FloorServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the floor server: %w", err)
	}
	body = append([]byte(nil), body...)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("application/json")
			ctx.SetBody(body)
		},
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
	}
	go func() { _ = srv.Serve(ln) }()
	return &FloorServer{Addr: ln.Addr().String(), srv: srv, ln: ln}, nil
}

// Close stops the floor server.
func (f *FloorServer) Close() error { return f.srv.Shutdown() }

// PebbleFloor commits synced batches of batchBytes bytes into db: the floor
// for a durable reservation of the same size. It returns an op for
// Parallel.
func PebbleFloor(db *pebble.DB, batchBytes int) func(caller, seq int) error {
	if batchBytes < 16 {
		batchBytes = 16
	}
	return func(caller, seq int) error {
		var key [16]byte
		binary.BigEndian.PutUint64(key[:8], uint64(caller))
		binary.BigEndian.PutUint64(key[8:], uint64(seq))
		val := make([]byte, batchBytes-len(key))
		b := db.NewBatch()
		defer b.Close()
		if err := b.Set(key[:], val, nil); err != nil {
			return err
		}
		return b.Commit(pebble.Sync)
	}
}

// RedisFloor runs a trivial Lua script through rueidis with EVALSHA: the
// floor for one Lua-scripted reservation round trip.
func RedisFloor(client rueidis.Client) func(caller, seq int) error {
	script := rueidis.NewLuaScript("return 1")
	return func(caller, seq int) error {
		return script.Exec(context.Background(), client, []string{"{bench}:floor"}, nil).Error()
	}
}

// RedisWriteFloor runs a one-key INCR script through rueidis: like
// RedisFloor, but it writes, so with appendfsync always it pays the same
// AOF fsync as a reservation does. It shows how much of a reservation's
// cost is the durability every Redis write pays.
func RedisWriteFloor(client rueidis.Client) func(caller, seq int) error {
	script := rueidis.NewLuaScript("return redis.call('INCR', KEYS[1])")
	return func(caller, seq int) error {
		return script.Exec(context.Background(), client, []string{"{bench}:floor-write"}, nil).Error()
	}
}
