package redisinv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/rueidis"
	"github.com/surge-retail/surge/internal/redistest"
)

func TestTmpReal(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "no")
	ctx := context.Background()
	c, _ := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	defer c.Close()
	src := strings.TrimPrefix(reserveScript.script, "")
	noPrelude := strings.Replace(src, prelude, "\nlocal base = ARGV[1]\nlocal function err(code) return redis.error_reply(code) end\n", 1)
	for name, s := range map[string]string{"real": src, "noprelude": noPrelude} {
		l := rueidis.NewLuaScript(s)
		c.Do(ctx, c.B().Flushall().Build())
		c.Do(ctx, c.B().Hset().Key("P:{shop}:p:shop:sku").FieldValue().FieldValue("fr", "100000000").FieldValue("hd", "0").Build())
		c.Do(ctx, c.B().Arbitrary("CONFIG", "RESETSTAT").Build())
		for i := 0; i < 5000; i++ {
			id := "shop:" + strconv.Itoa(i)
			if err := l.Exec(ctx, c, []string{"P:{shop}:r:" + id}, []string{"P:{shop}:", id, "u" + strconv.Itoa(i%1000), "1000", "2000", "", "1", "shop:sku", "1", "1000000"}).Error(); err != nil {
				t.Fatal(err)
			}
		}
		info, _ := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "cmdstat_") {
				fmt.Println(name, line)
			}
		}
	}
}
