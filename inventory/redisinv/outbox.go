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
	add := func(stream string, es []rueidis.XRangeEntry) {
		for _, e := range es {
			if len(out) < max {
				out = append(out, inventory.OutboxEntry{Stream: stream, ID: e.ID, Data: []byte(e.FieldValues["e"])})
			}
		}
	}
	// Entries a dead reader left pending, then new ones; each stream's
	// commands go to its slot's node, all in one round trip per kind.
	idle := strconv.FormatInt(claimIdle.Milliseconds(), 10)
	claims := make(rueidis.Commands, len(streams))
	for i, st := range streams {
		claims[i] = s.client.B().Arbitrary("XAUTOCLAIM", st, outboxGroup, consumer, idle, "0-0", "COUNT", strconv.Itoa(max)).Build()
	}
	for i, r := range s.client.DoMulti(ctx, claims...) {
		vals, err := r.ToArray()
		if err != nil {
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				s.forgetGroup(streams[i])
				continue
			}
			return out, s.mapErr("claim outbox entries", err)
		}
		if len(vals) < 2 {
			continue
		}
		es, err := vals[1].AsXRange()
		if err != nil {
			return out, s.mapErr("claim outbox entries", err)
		}
		add(streams[i], es)
	}
	if len(out) >= max {
		return out, nil
	}
	reads := make(rueidis.Commands, len(streams))
	for i, st := range streams {
		reads[i] = s.client.B().Xreadgroup().Group(outboxGroup, consumer).Count(int64(max)).Streams().Key(st).Id(">").Build()
	}
	for i, r := range s.client.DoMulti(ctx, reads...) {
		m, err := r.AsXRead()
		if err != nil {
			if rueidis.IsRedisNil(err) {
				continue
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				s.forgetGroup(streams[i])
				continue
			}
			return out, s.mapErr("read outbox entries", err)
		}
		add(streams[i], m[streams[i]])
	}
	return out, nil
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
