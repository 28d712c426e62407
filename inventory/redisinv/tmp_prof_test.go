package redisinv_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/redis/rueidis"
	"github.com/surge-retail/surge/internal/redistest"
)

func TestTmpVariants(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "no")
	ctx := context.Background()
	c, _ := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	defer c.Close()
	variants := map[string]string{
		"empty": `return 1`,
		"hset20": `redis.call('HSET', KEYS[1], 'u', ARGV[1], 'n', '1', 's', '1', 'm', '', 'c', '1', 'e', '2', 'f', '0', 'p1', 'shop:sku', 'q1', '1', 'k1', '0') return 1`,
		"set1": `redis.call('SET', KEYS[1], ARGV[1] .. ' 1 1 1 2 0 shop:sku 1 0 ') return 1`,
		"zadd": `redis.call('ZADD', 'zz', 0, KEYS[1]) return 1`,
		"zadd2": `redis.call('ZADD', 'zz', 0, KEYS[1]) redis.call('ZADD', 'zx', 5, KEYS[1]) return 1`,
		"hincr3": `redis.call('HINCRBY', 'p', 'fr', -1) redis.call('HINCRBY', 'p', 'hd', 1) redis.call('HINCRBY', 'u', ARGV[1], 1) return 1`,
		"reads": `redis.call('HGETALL', KEYS[1] .. 'x') redis.call('EXISTS', 'p') redis.call('HGET', 'p', 'fr') redis.call('HGET', 'u', ARGV[1]) return 1`,
	}
	for name, src := range variants {
		l := rueidis.NewLuaScript(src)
		c.Do(ctx, c.B().Flushall().Build())
		c.Do(ctx, c.B().Arbitrary("CONFIG", "RESETSTAT").Build())
		for i := 0; i < 5000; i++ {
			if err := l.Exec(ctx, c, []string{"r:" + strconv.Itoa(i)}, []string{"u" + strconv.Itoa(i%1000)}).Error(); err != nil {
				t.Fatal(err)
			}
		}
		info, _ := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
		for _, line := range splitLines(info) {
			if len(line) > 14 && line[:15] == "cmdstat_evalsha" {
				fmt.Println(name, line)
			}
		}
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
