package redisinv

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/inventory"
)

// SpreadTags returns n-1 tags "<base>~<k>" for the other buckets of a
// pool whose tag is base (the engine's stock buckets): on a Redis Cluster,
// bucket i's tag lives on the i-th master after base's (in address order,
// round-robin), so that n buckets on n masters take a master each; among
// the first `tries` candidates the first that fits is taken (any unused
// one when none does). On a single server the tags are "<base>~1" ...
// Slots are asked of the cluster (CLUSTER SLOTS, CLUSTER KEYSLOT), which
// computes them, in one round trip each.
func (s *Store) SpreadTags(ctx context.Context, base string, n, tries int) ([]string, error) {
	if n <= 1 {
		return nil, nil
	}
	tries = max(tries, n-1)
	cands := make([]string, tries)
	for k := range cands {
		cands[k] = base + "~" + strconv.Itoa(k+1)
	}
	ranges, err := s.slotRanges(ctx)
	if err != nil {
		return nil, err
	}
	if ranges == nil {
		return cands[:n-1], nil
	}
	cmds := make(rueidis.Commands, 0, tries+1)
	for _, t := range append([]string{base}, cands...) {
		cmds = append(cmds, s.client.B().ClusterKeyslot().Key(tagKey(t)).Build())
	}
	owner := make([]string, 0, len(cmds))
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		slot, err := r.AsInt64()
		if err != nil {
			return nil, s.mapErr("cluster keyslot", err)
		}
		owner = append(owner, ranges.owner(slot))
	}
	masters := ranges.masters()
	first := slices.Index(masters, owner[0])
	used := make([]bool, tries)
	out := make([]string, 0, n-1)
	for i := 1; i < n; i++ {
		want := masters[(first+i)%len(masters)]
		pick := -1
		for k := range cands {
			if !used[k] && owner[k+1] == want {
				pick = k
				break
			}
		}
		if pick < 0 {
			pick = slices.Index(used, false)
		}
		used[pick] = true
		out = append(out, cands[pick])
	}
	return out, nil
}

// slotRange is one range of CLUSTER SLOTS and its master's address.
type slotRange struct {
	lo, hi int64
	master string
}

type slotRanges []slotRange

func (rs slotRanges) owner(slot int64) string {
	for _, r := range rs {
		if slot >= r.lo && slot <= r.hi {
			return r.master
		}
	}
	return ""
}

// masters lists the masters in address order.
func (rs slotRanges) masters() []string {
	var out []string
	for _, r := range rs {
		if !slices.Contains(out, r.master) {
			out = append(out, r.master)
		}
	}
	slices.Sort(out)
	return out
}

// slotRanges reads the cluster's slot ranges; nil, nil on a server that is
// not a cluster.
func (s *Store) slotRanges(ctx context.Context) (slotRanges, error) {
	if s.closed.Load() {
		return nil, inventory.ErrClosed
	}
	arr, err := s.client.Do(ctx, s.client.B().ClusterSlots().Build()).ToArray()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && strings.Contains(strings.ToLower(re.Error()), "cluster support disabled") {
			return nil, nil
		}
		return nil, s.mapErr("cluster slots", err)
	}
	var out slotRanges
	for _, e := range arr {
		f, err := e.ToArray()
		if err != nil || len(f) < 3 {
			return nil, fmt.Errorf("redisinv: bad CLUSTER SLOTS reply: %w", inventory.ErrUnavailable)
		}
		lo, err1 := f[0].AsInt64()
		hi, err2 := f[1].AsInt64()
		node, err3 := f[2].ToArray()
		if err1 != nil || err2 != nil || err3 != nil || len(node) < 2 {
			return nil, fmt.Errorf("redisinv: bad CLUSTER SLOTS reply: %w", inventory.ErrUnavailable)
		}
		host, _ := node[0].ToString()
		port, _ := node[1].AsInt64()
		out = append(out, slotRange{lo, hi, host + ":" + strconv.FormatInt(port, 10)})
	}
	return out, nil
}
