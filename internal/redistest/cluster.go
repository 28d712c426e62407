package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// StartCluster starts a Redis Cluster of n masters splitting the slots
// evenly, and returns its nodes. A script that touches a key of a
// slot its node does not own fails ("non local key"), so running the
// backend on it checks that every script keeps to one hash tag, and
// rueidis talks to it as a cluster client (slot routing, redirections).
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	ctx := context.Background()
	var srvs []*Server
	var clients []rueidis.Client
	for i := 0; i < n; i++ {
		srv := Start(t, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000")
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, c.B().Arbitrary("CLUSTER", "ADDSLOTSRANGE", fmt.Sprint(lo), fmt.Sprint(hi)).Build()).Error(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE = %v", err)
		}
		srvs = append(srvs, srv)
		clients = append(clients, c)
	}
	for _, srv := range srvs[1:] {
		host, port, _ := strings.Cut(srv.Addr, ":")
		if err := clients[0].Do(ctx, clients[0].B().ClusterMeet().Ip(host).Port(mustAtoi(t, port)).Build()).Error(); err != nil {
			t.Fatalf("CLUSTER MEET = %v", err)
		}
	}
	// A bounded readiness poll while the nodes gossip, not a timing
	// assertion.
	for i := 0; ; i++ {
		ok := 0
		for _, c := range clients {
			info, err := c.Do(ctx, c.B().ClusterInfo().Build()).ToString()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", n)) {
				ok++
			}
		}
		if ok == n {
			return srvs
		}
		if i == 1500 {
			t.Fatalf("cluster not ok after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustAtoi(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
