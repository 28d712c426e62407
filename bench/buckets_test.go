package bench

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

func TestParseCommandUsec(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_evalsha:calls=10,usec=1000,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_hgetall:calls=2,usec=7,usec_per_call=3.50,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=5,usec=500,usec_per_call=100.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_cluster|slots:calls=5,usec=300,usec_per_call=60.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_ping:calls=5,usec=9,usec_per_call=1.80,rejected_calls=0,failed_calls=0\r\n"
	if got := parseCommandUsec(info); got != 1007 {
		t.Fatalf("parseCommandUsec = %d; want 1007 (evalsha + hgetall)", got)
	}
}

// TestBucketsScenario runs the buckets scenario briefly on a real
// 3-master cluster: where the work lands is a matter of key placement, not
// of speed, so the bounds are wide: with one bucket one master does most
// of it, with three every master does a real part.
func TestBucketsScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not on PATH")
	}
	res, err := Run(context.Background(), Options{Duration: 500 * time.Millisecond, Only: []string{"buckets"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tables) != 1 || len(res.Tables[0].Rows) != 6 {
		t.Fatalf("tables = %+v; want one of 6 rows", res.Tables)
	}
	share := map[string]float64{}
	for _, r := range res.Tables[0].Rows {
		share[r.Key] = r.Ratio()
	}
	if share["buckets/1-share-max"] < 0.5 {
		t.Errorf("one bucket: largest share %.2f; want most of the work on one master", share["buckets/1-share-max"])
	}
	if share["buckets/3-share-min"] < 0.1 {
		t.Errorf("three buckets: smallest share %.2f; want every master working", share["buckets/3-share-min"])
	}
}
