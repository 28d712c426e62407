package redisinv

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/inventory"
)

// Forget drops a released reservation; its id may then be reused. Held or
// paid: ErrBadState; unknown: ErrReservationNotFound. Pool counters and
// per-user counts do not change: a released reservation no longer counts.
func (s *Store) Forget(ctx context.Context, id string) error {
	if s.closed.Load() {
		return inventory.ErrClosed
	}
	if !inventory.ValidReservationID(id) {
		return inventory.ErrInvalid
	}
	base := s.base(inventory.Tag(id))
	status, err := forgetScript.Exec(ctx, s.client, []string{base + "r:" + id}, []string{base, id}).AsInt64()
	if err != nil {
		return s.mapErr("forget", err)
	}
	if status != 0 {
		return fmt.Errorf("redisinv: cannot forget %q: not released: %w", id, inventory.ErrBadState)
	}
	return nil
}

// Purge forgets up to max released reservations whose ExpiresAt is at or
// before before and returns how many it forgot. Held and paid
// reservations are never purged. Safe to call from many goroutines and
// nodes at once: each reservation is forgotten by exactly one call. max
// out of (0, inventory.ExpireMax]: ErrInvalid.
//
// Released reservations wait in a per-tag sorted set by expiry (filled by
// release, expiry and refund, never by Reserve), so Purge reads only what
// it forgets plus one count per tag.
func (s *Store) Purge(ctx context.Context, before time.Time, max int) (int, error) {
	if s.closed.Load() {
		return 0, inventory.ErrClosed
	}
	if max <= 0 || max > inventory.ExpireMax {
		return 0, inventory.ErrInvalid
	}
	tags, err := s.tags(ctx)
	if err != nil {
		return 0, s.mapErr("purge", err)
	}
	beforeArg := strconv.FormatInt(before.UnixMilli(), 10)
	total := 0
	for len(tags) > 0 && total < max {
		chunk := tags[:min(len(tags), tagsPerPipelineMax)]
		tags = tags[len(chunk):]
		cmds := make(rueidis.Commands, len(chunk))
		for i, t := range chunk {
			cmds[i] = s.client.B().Zcount().Key(s.base(t) + "d").Min("-inf").Max(beforeArg).Build()
		}
		for i, r := range s.client.DoMulti(ctx, cmds...) {
			due, err := r.AsInt64()
			if err != nil {
				return total, s.mapErr("purge", err)
			}
			if due == 0 || total >= max {
				continue
			}
			base := s.base(chunk[i])
			n, err := purgeScript.Exec(ctx, s.client, []string{base + "d"},
				[]string{base, beforeArg, strconv.Itoa(max - total)}).AsInt64()
			if err != nil {
				return total, s.mapErr("purge", err)
			}
			total += int(n)
		}
	}
	return total, nil
}
