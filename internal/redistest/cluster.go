package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	var srvs []*Server
	for i := 0; i < n; i++ {
		srvs = append(srvs, Start(t, clusterArgs...))
	}
	if err := formCluster(srvs); err != nil {
		t.Fatal(err)
	}
	return srvs
}

// LaunchCluster is StartCluster for callers that are not tests (surge
// bench): n masters on free loopback ports, their data under dir. The
// caller stops them.
func LaunchCluster(dir string, n int) ([]*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: %w", err)
	}
	var srvs []*Server
	stop := func() {
		for _, s := range srvs {
			s.Stop()
		}
	}
	for i := 0; i < n; i++ {
		d := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o700); err != nil {
			stop()
			return nil, err
		}
		s, err := launch(bin, d, clusterArgs)
		if err != nil {
			stop()
			return nil, err
		}
		srvs = append(srvs, s)
	}
	if err := formCluster(srvs); err != nil {
		stop()
		return nil, err
	}
	return srvs, nil
}

var clusterArgs = []string{"--cluster-enabled", "yes", "--cluster-node-timeout", "2000"}

// formCluster gives node i the i-th of len(srvs) equal slot ranges, makes
// the nodes meet, and waits (bounded) until every node sees the cluster ok.
func formCluster(srvs []*Server) error {
	ctx := context.Background()
	n := len(srvs)
	var clients []rueidis.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i, srv := range srvs {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, ForceSingleClient: true, DisableCache: true})
		if err != nil {
			return err
		}
		clients = append(clients, c)
		lo, hi := i*16384/n, (i+1)*16384/n-1
		if err := c.Do(ctx, c.B().Arbitrary("CLUSTER", "ADDSLOTSRANGE", fmt.Sprint(lo), fmt.Sprint(hi)).Build()).Error(); err != nil {
			return fmt.Errorf("CLUSTER ADDSLOTSRANGE = %w", err)
		}
	}
	for _, srv := range srvs[1:] {
		host, port, _ := strings.Cut(srv.Addr, ":")
		p, err := strconv.ParseInt(port, 10, 64)
		if err != nil {
			return err
		}
		if err := clients[0].Do(ctx, clients[0].B().ClusterMeet().Ip(host).Port(p).Build()).Error(); err != nil {
			return fmt.Errorf("CLUSTER MEET = %w", err)
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
			return nil
		}
		if i == 1500 {
			return fmt.Errorf("redistest: cluster not ok after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
