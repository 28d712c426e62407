package records

import (
	"log/slog"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configures the Pebble and Redis backends (the memory backend has
// none). The zero value of each field means its default.
type Options struct {
	// FS is the Pebble backend's file system. Default vfs.Default (the
	// real disk); tests pass vfs.NewCrashableMem or an errorfs wrapper.
	FS vfs.FS
	// CacheBytes is the Pebble backend's block cache: the order store and
	// PutIfAbsent look up keys that mostly do not exist yet, and the bloom
	// filters they read stay in it. Default CacheBytesDefault (32 MiB).
	CacheBytes int64
	// Logger receives the Pebble backend's errors. Default slog.Default().
	Logger *slog.Logger
	// RedisAddrs are the Redis backend's seeds: one server, or any nodes
	// of a Redis Cluster (host:port each). Required by OpenRedis.
	RedisAddrs []string
	// RedisUsername and RedisPassword authenticate to Redis. Default none.
	RedisUsername string
	RedisPassword string
}

// CacheBytesDefault is the default Options.CacheBytes.
const CacheBytesDefault = 32 << 20

// WithDefaults returns o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = CacheBytesDefault
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
