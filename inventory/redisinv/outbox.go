package redisinv

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/inventory"
)

// The outbox of a tag is the stream P:{T}:o, appended to by the confirm
// script; every reader is a consumer of the group outboxGroup. Streams are
// created by their first XADD and the group is created from id 0 when a
// reader first meets the stream, so no entry appended before it is missed.
// Acknowledged entries are deleted at once: a stream holds only what is
// not done.
const outboxGroup = "surge-orders"

var _ inventory.Outbox = (*Store)(nil)

// outboxGroups remembers the streams whose group this process created.
type outboxGroups struct {
	mu   sync.Mutex
	made map[string]bool
}

// ConfirmWith implements inventory.Outbox.
func (s *Store) ConfirmWith(ctx context.Context, id string, entry []byte) (inventory.Reservation, error) {
	if len(entry) == 0 || len(entry) > inventory.OutboxEntryLenMax {
		return inventory.Reservation{}, inventory.ErrInvalid
	}
	return s.transition(ctx, "confirm", confirmScript, id, strconv.FormatInt(s.opts.Now().UnixMilli(), 10), string(entry))
}

// outboxStreams returns the outbox stream of every registered tag.
func (s *Store) outboxStreams(ctx context.Context) ([]string, error) {
	tags, err := s.tags(ctx)
	if err != nil {
		return nil, s.mapErr("list tags", err)
	}
	streams := make([]string, len(tags))
	for i, t := range tags {
		streams[i] = s.base(t) + "o"
	}
	return streams, nil
}

// ensureGroups creates the consumer group of the streams this process has
// not seen yet (BUSYGROUP: another reader made it first).
func (s *Store) ensureGroups(ctx context.Context, streams []string) error {
	s.groups.mu.Lock()
	var missing []string
	for _, st := range streams {
		if !s.groups.made[st] {
			missing = append(missing, st)
		}
	}
	s.groups.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, len(missing))
	for i, st := range missing {
		cmds[i] = s.client.B().XgroupCreate().Key(st).Group(outboxGroup).Id("0").Mkstream().Build()
	}
	for i, r := range s.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return s.mapErr("create the outbox group", err)
		}
		s.groups.mu.Lock()
		if s.groups.made == nil {
			s.groups.made = make(map[string]bool)
		}
		s.groups.made[missing[i]] = true
		s.groups.mu.Unlock()
	}
	return nil
}

// ReadOutbox implements inventory.Outbox.
func (s *Store) ReadOutbox(ctx context.Context, consumer string, max int, claimIdle time.Duration) ([]inventory.OutboxEntry, error) {
	if s.closed.Load() {
		return nil, inventory.ErrClosed
	}
	if consumer == "" || max <= 0 {
		return nil, inventory.ErrInvalid
	}
	streams, err := s.outboxStreams(ctx)
	if err != nil || len(streams) == 0 {
		return nil, err
	}
	if err := s.ensureGroups(ctx, streams); err != nil {
		return nil, err
	}
	var out []inventory.OutboxEntry
	// Each stream's commands go to its slot's node, all in one round
	// trip per kind. The budget max is split over the streams (the ones
	// that get a share this call rotate), so that no stream is asked for
	// more than is returned: an entry delivered and not returned would
	// wait, pending, for another reader's claim.
	idle := strconv.FormatInt(claimIdle.Milliseconds(), 10)
	first := int(s.outboxTurn.Add(1))
	for phase := 0; phase < 2 && len(out) < max; phase++ {
		shares := outboxShares(max-len(out), len(streams), first)
		cmds := make(rueidis.Commands, 0, len(streams))
		asked := make([]string, 0, len(streams))
		for i, st := range streams {
			if shares[i] == 0 {
				continue
			}
			n := strconv.Itoa(shares[i])
			if phase == 0 { // entries a dead reader left pending
				cmds = append(cmds, s.client.B().Arbitrary("XAUTOCLAIM", st, outboxGroup, consumer, idle, "0-0", "COUNT", n).Build())
			} else { // then new ones
				cmds = append(cmds, s.client.B().Xreadgroup().Group(outboxGroup, consumer).Count(int64(shares[i])).Streams().Key(st).Id(">").Build())
			}
			asked = append(asked, st)
		}
		for i, r := range s.client.DoMulti(ctx, cmds...) {
			var es []rueidis.XRangeEntry
			var err error
			if phase == 0 {
				var vals []rueidis.RedisMessage
				if vals, err = r.ToArray(); err == nil && len(vals) >= 2 {
					es, err = vals[1].AsXRange()
				}
			} else {
				var m map[string][]rueidis.XRangeEntry
				if m, err = r.AsXRead(); err == nil {
					es = m[asked[i]]
				}
			}
			switch {
			case err == nil:
			case rueidis.IsRedisNil(err):
				continue
			case strings.HasPrefix(err.Error(), "NOGROUP"):
				s.forgetGroup(asked[i])
				continue
			default:
				return out, s.mapErr("read outbox entries", err)
			}
			for _, e := range es {
				out = append(out, inventory.OutboxEntry{Stream: asked[i], ID: e.ID, Data: []byte(e.FieldValues["e"])})
			}
		}
	}
	return out, nil
}

// outboxShares splits budget over n streams: equal shares, the remainder
// one each to the streams from first on (modulo n); with more streams than
// budget, only budget streams from first on get one. The shares add up to
// budget at most.
func outboxShares(budget, n, first int) []int {
	shares := make([]int, n)
	if n == 0 || budget <= 0 {
		return shares
	}
	each, rest := budget/n, budget%n
	for i := range shares {
		shares[i] = each
	}
	for k := 0; k < rest; k++ {
		shares[(first+k)%n]++
	}
	return shares
}

// forgetGroup makes the next read create a stream's group again (the
// stream was deleted, by hand or with its data).
func (s *Store) forgetGroup(stream string) {
	s.groups.mu.Lock()
	delete(s.groups.made, stream)
	s.groups.mu.Unlock()
}

// AckOutbox implements inventory.Outbox.
func (s *Store) AckOutbox(ctx context.Context, entries []inventory.OutboxEntry) error {
	if s.closed.Load() {
		return inventory.ErrClosed
	}
	byStream := map[string][]string{}
	for _, e := range entries {
		byStream[e.Stream] = append(byStream[e.Stream], e.ID)
	}
	cmds := make(rueidis.Commands, 0, 2*len(byStream))
	for st, ids := range byStream {
		cmds = append(cmds,
			s.client.B().Xack().Key(st).Group(outboxGroup).Id(ids...).Build(),
			s.client.B().Xdel().Key(st).Id(ids...).Build())
	}
	for _, r := range s.client.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return s.mapErr("acknowledge outbox entries", err)
		}
	}
	return nil
}

// OutboxLag implements inventory.Outbox.
func (s *Store) OutboxLag(ctx context.Context) (inventory.OutboxLag, error) {
	var lag inventory.OutboxLag
	if s.closed.Load() {
		return lag, inventory.ErrClosed
	}
	streams, err := s.outboxStreams(ctx)
	if err != nil || len(streams) == 0 {
		return lag, err
	}
	cmds := make(rueidis.Commands, 0, 2*len(streams))
	for _, st := range streams {
		cmds = append(cmds,
			s.client.B().Xlen().Key(st).Build(),
			s.client.B().Xrange().Key(st).Start("-").End("+").Count(1).Build())
	}
	res := s.client.DoMulti(ctx, cmds...)
	for i := 0; i < len(res); i += 2 {
		n, err := res[i].AsInt64()
		if err != nil {
			return lag, s.mapErr("measure the outbox", err)
		}
		lag.Entries += n
		first, err := res[i+1].AsXRange()
		if err != nil {
			return lag, s.mapErr("measure the outbox", err)
		}
		if len(first) == 1 {
			ms, _, _ := strings.Cut(first[0].ID, "-")
			if v, err := strconv.ParseInt(ms, 10, 64); err == nil {
				at := time.UnixMilli(v)
				if lag.Oldest.IsZero() || at.Before(lag.Oldest) {
					lag.Oldest = at
				}
			}
		}
	}
	return lag, nil
}
