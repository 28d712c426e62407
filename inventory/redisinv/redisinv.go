package redisinv

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/surge-retail/surge/inventory"
)

// tagsPerPipelineMax bounds the commands of one pipelined round trip when
// Expire looks for due holds in every tag.
const tagsPerPipelineMax = 512

// expireBudget bounds the ids one expire script examines (released or
// found stale), so that one call never blocks the server for long. A
// variable for tests.
var expireBudget = 4096

// Defaults of Options.
const (
	// AddrDefault is the default of Options.Addr.
	AddrDefault = "127.0.0.1:6379"
	// PrefixDefault is the default of Options.Prefix.
	PrefixDefault = "surge"
	// DialTimeoutDefault is the default of Options.DialTimeout.
	DialTimeoutDefault = 5 * time.Second
	// ConnTimeoutDefault is the default of Options.ConnTimeout.
	ConnTimeoutDefault = 5 * time.Second
)

// Options configures Open. The zero value means the defaults.
type Options struct {
	inventory.Options
	// Addr is the host:port of the Redis server. Default AddrDefault.
	// Ignored when InitAddress is set.
	Addr string
	// InitAddress lists seed addresses of a server or a cluster; rueidis
	// discovers a cluster's topology from them. Default [Addr].
	InitAddress []string
	// Username and Password authenticate to Redis. Default none.
	Username string
	Password string
	// Prefix starts every key, so several stores can share a server. It
	// must not contain '{' or '}'. Default PrefixDefault.
	Prefix string
	// DialTimeout bounds connecting. Default DialTimeoutDefault.
	DialTimeout time.Duration
	// ConnTimeout bounds each read and write on a connection, and an idle
	// connection is pinged at this interval: an unresponsive server fails
	// calls with ErrUnavailable after about this long even when the
	// caller's context has no deadline. Default ConnTimeoutDefault.
	ConnTimeout time.Duration
	// BatchMax bounds the reservations of one tag combined into one
	// script call (group commit, see the package doc); 1 sends every
	// reservation alone. Default BatchMaxDefault, at most BatchMaxLimit.
	BatchMax int
	// BatchesInFlight bounds the batches of one tag in flight at once.
	// Default BatchesInFlightDefault, at most BatchesInFlightLimit.
	BatchesInFlight int
}

// WithDefaults returns o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	o.Options = o.Options.WithDefaults()
	if o.Addr == "" {
		o.Addr = AddrDefault
	}
	if len(o.InitAddress) == 0 {
		o.InitAddress = []string{o.Addr}
	}
	if o.Prefix == "" {
		o.Prefix = PrefixDefault
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DialTimeoutDefault
	}
	if o.ConnTimeout <= 0 {
		o.ConnTimeout = ConnTimeoutDefault
	}
	if o.BatchMax <= 0 {
		o.BatchMax = BatchMaxDefault
	}
	o.BatchMax = min(o.BatchMax, BatchMaxLimit)
	if o.BatchesInFlight <= 0 {
		o.BatchesInFlight = BatchesInFlightDefault
	}
	o.BatchesInFlight = min(o.BatchesInFlight, BatchesInFlightLimit)
	return o
}

// Store is an inventory.Store kept in Redis. It holds no stock state of its
// own: any number of Stores (on any number of nodes) may share one server.
type Store struct {
	opts   Options
	client rueidis.Client
	// tagsKey is the registry of tags, "P:tags".
	tagsKey string
	closed  atomic.Bool
	// batchers combine concurrent reservations (batch.go).
	batchers [batchShards]batcher
	// groups remembers the outbox streams whose group exists (outbox.go).
	groups outboxGroups
	// outboxTurn rotates which streams a read with a small budget asks.
	outboxTurn atomic.Int64
}

var _ inventory.Store = (*Store)(nil)

// Open connects to Redis and returns a Store. It fails with an error
// wrapping inventory.ErrUnavailable when the server cannot be reached.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts = opts.WithDefaults()
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redisinv: cannot open: prefix %q contains a brace: %w", opts.Prefix, inventory.ErrInvalid)
	}
	client, err := rueidis.NewClient(rueidis.ClientOption{
		InitAddress:      opts.InitAddress,
		Username:         opts.Username,
		Password:         opts.Password,
		Dialer:           net.Dialer{Timeout: opts.DialTimeout},
		ConnWriteTimeout: opts.ConnTimeout,
		// Client-side caching is of no use: every read must see the
		// server's current counters.
		DisableCache: true,
		// No hidden retries: rueidis would retry reads against a dead
		// server until the context ends. A failed call returns
		// ErrUnavailable at once and the caller decides.
		DisableRetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("redisinv: cannot connect to %v: %w: %w", opts.InitAddress, inventory.ErrUnavailable, err)
	}
	s := &Store{opts: opts, client: client, tagsKey: opts.Prefix + ":tags"}
	// Load the scripts now so that a bad server shows at Open, not at the
	// first sale.
	for _, l := range []*rueidis.Lua{reserveScript, confirmScript, releaseScript, refundScript,
		expireScript, forgetScript, purgeScript, createScript, moveScript, feedScript, scanScript,
		sendScript, receiveScript, closeScript} {
		l.ExecMulti(ctx, client) // with no executions it only loads the script
	}
	if err := client.Do(ctx, client.B().Ping().Build()).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redisinv: cannot ping %v: %w: %w", opts.InitAddress, inventory.ErrUnavailable, err)
	}
	return s, nil
}

// Close closes the connections. Later calls return inventory.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.client.Close()
	return nil
}

// Client returns the underlying client, for tests and benchmarks.
func (s *Store) Client() rueidis.Client { return s.client }

// tagKey returns the hash tag of tag t: t itself when it is non-empty,
// brace-free and does not start with '~'; otherwise '~' and t in hex. The
// mapping is one-to-one, so distinct tags never share keys.
func tagKey(t string) string {
	if t == "" || t[0] == '~' || strings.ContainsAny(t, "{}") {
		return "~" + hex.EncodeToString([]byte(t))
	}
	return t
}

// base returns the key base of tag t: "P:{T}:".
func (s *Store) base(t string) string {
	return s.opts.Prefix + ":{" + tagKey(t) + "}:"
}

// mapErr turns a script or connection error into the inventory answer.
func (s *Store) mapErr(op string, err error) error {
	if re, ok := rueidis.IsRedisErr(err); ok {
		msg := re.Error()
		if strings.HasPrefix(msg, errReplyPrefix) {
			code := msg
			if i := strings.IndexByte(code, ' '); i >= 0 {
				code = code[:i]
			}
			switch code {
			case errSoldOut:
				return inventory.ErrSoldOut
			case errLimit:
				return inventory.ErrLimitExceeded
			case errNoPool:
				return inventory.ErrPoolNotFound
			case errPoolExists:
				return inventory.ErrPoolExists
			case errNoRes:
				return inventory.ErrReservationNotFound
			case errIDConflict:
				return inventory.ErrIDConflict
			}
		}
	}
	if s.closed.Load() {
		return inventory.ErrClosed
	}
	return fmt.Errorf("redisinv: cannot %s: %w: %w", op, inventory.ErrUnavailable, err)
}

// transition runs a state-changing script (confirm, release, refund) that
// returns the record.
func (s *Store) transition(ctx context.Context, op string, l *rueidis.Lua, id string, extra ...string) (inventory.Reservation, error) {
	if s.closed.Load() {
		return inventory.Reservation{}, inventory.ErrClosed
	}
	if !inventory.ValidReservationID(id) {
		return inventory.Reservation{}, inventory.ErrInvalid
	}
	base := s.base(inventory.Tag(id))
	args := append([]string{base, id}, extra...)
	vals, err := l.Exec(ctx, s.client, []string{base + "r:" + id}, args).ToArray()
	if err != nil {
		return inventory.Reservation{}, s.mapErr(op, err)
	}
	if len(vals) != 2 {
		return inventory.Reservation{}, fmt.Errorf("redisinv: cannot %s: reply of %d values: %w", op, len(vals), inventory.ErrUnavailable)
	}
	status, err := vals[0].AsInt64()
	if err != nil {
		return inventory.Reservation{}, s.mapErr(op, err)
	}
	r, err := s.parseRes(op, id, &vals[1])
	if err == nil && status != 0 {
		err = fmt.Errorf("redisinv: cannot %s %q: %s: %w", op, id, r.State, inventory.ErrBadState)
	}
	return r, err
}

// Confirm implements inventory.Store.
func (s *Store) Confirm(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.transition(ctx, "confirm", confirmScript, id, strconv.FormatInt(s.opts.Now().UnixMilli(), 10))
}

// Release implements inventory.Store.
func (s *Store) Release(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.transition(ctx, "release", releaseScript, id)
}

// Refund implements inventory.Store.
func (s *Store) Refund(ctx context.Context, id string) (inventory.Reservation, error) {
	return s.transition(ctx, "refund", refundScript, id)
}

// tags returns the registered tags in byte order.
func (s *Store) tags(ctx context.Context) ([]string, error) {
	tags, err := s.client.Do(ctx, s.client.B().Zrange().Key(s.tagsKey).Min("0").Max("-1").Build()).AsStrSlice()
	if err != nil {
		return nil, err
	}
	sort.Strings(tags) // ZRANGE of equal scores is already in byte order; be sure.
	return tags, nil
}

// Expire implements inventory.Store. It walks the tags: one pipelined
// round trip finds the tags with due holds, then one script per such tag
// releases them, so each reservation is released by exactly one caller.
func (s *Store) Expire(ctx context.Context, now time.Time, max int) ([]inventory.Reservation, error) {
	if s.closed.Load() {
		return nil, inventory.ErrClosed
	}
	if max <= 0 || max > inventory.ExpireMax {
		return nil, inventory.ErrInvalid
	}
	tags, err := s.tags(ctx)
	if err != nil {
		return nil, s.mapErr("expire", err)
	}
	nowArg := strconv.FormatInt(now.UnixMilli(), 10)
	var out []inventory.Reservation
	for len(tags) > 0 && len(out) < max {
		chunk := tags[:min(len(tags), tagsPerPipelineMax)]
		tags = tags[len(chunk):]
		cmds := make(rueidis.Commands, len(chunk))
		for i, t := range chunk {
			cmds[i] = s.client.B().Zcount().Key(s.base(t) + "x").Min("-inf").Max(nowArg).Build()
		}
		for i, r := range s.client.DoMulti(ctx, cmds...) {
			due, err := r.AsInt64()
			if err != nil {
				return out, s.mapErr("expire", err)
			}
			if due == 0 || len(out) >= max {
				continue
			}
			base := s.base(chunk[i])
			for more := true; more && len(out) < max; {
				vals, err := expireScript.Exec(ctx, s.client, []string{base + "x"},
					[]string{base, nowArg, strconv.Itoa(max - len(out)), strconv.Itoa(expireBudget)}).ToArray()
				if err != nil {
					return out, s.mapErr("expire", err)
				}
				if len(vals) == 0 {
					return out, fmt.Errorf("redisinv: cannot expire: empty reply: %w", inventory.ErrUnavailable)
				}
				flag, err := vals[0].AsInt64()
				if err != nil {
					return out, s.mapErr("expire", err)
				}
				more = flag == 1
				if out, err = s.appendPairs("expire", out, vals[1:]); err != nil {
					return out, err
				}
			}
		}
	}
	return out, nil
}

// appendPairs parses a flat array of id, record pairs.
func (s *Store) appendPairs(op string, out []inventory.Reservation, vals []rueidis.RedisMessage) ([]inventory.Reservation, error) {
	if len(vals)%2 != 0 {
		return out, fmt.Errorf("redisinv: cannot %s: bad reply: odd length: %w", op, inventory.ErrUnavailable)
	}
	for i := 0; i < len(vals); i += 2 {
		id, err := vals[i].ToString()
		if err != nil {
			return out, fmt.Errorf("redisinv: cannot %s: bad id: %w", op, errors.Join(inventory.ErrUnavailable, err))
		}
		r, err := s.parseRes(op, id, &vals[i+1])
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// CreatePool implements inventory.Store.
func (s *Store) CreatePool(ctx context.Context, pool string, supplied int64) error {
	if s.closed.Load() {
		return inventory.ErrClosed
	}
	if !inventory.ValidID(pool) || supplied < 0 || supplied > inventory.UnitsMax {
		return inventory.ErrInvalid
	}
	tag := inventory.Tag(pool)
	// Register the tag first: a registered tag without pools costs one
	// empty look in Expire, a pool of an unregistered tag would never expire.
	if err := s.client.Do(ctx, s.client.B().Zadd().Key(s.tagsKey).ScoreMember().ScoreMember(0, tag).Build()).Error(); err != nil {
		return s.mapErr("register tag", err)
	}
	base := s.base(tag)
	err := createScript.Exec(ctx, s.client, []string{base + "p:" + pool},
		[]string{base, pool, strconv.FormatInt(supplied, 10)}).Error()
	if err != nil {
		return s.mapErr("create pool", err)
	}
	return nil
}

// Move implements inventory.Store.
func (s *Store) Move(ctx context.Context, from, to string, qty int64) error {
	if qty <= 0 || qty > inventory.UnitsMax {
		return inventory.ErrInvalid
	}
	_, err := s.move(ctx, "move", from, to, strconv.FormatInt(qty, 10))
	return err
}

// Drain implements inventory.Store.
func (s *Store) Drain(ctx context.Context, from, to string) (int64, error) {
	return s.move(ctx, "drain", from, to, "all")
}

func (s *Store) move(ctx context.Context, op, from, to, qty string) (int64, error) {
	if s.closed.Load() {
		return 0, inventory.ErrClosed
	}
	if !inventory.ValidID(from) || !inventory.ValidID(to) || from == to || inventory.Tag(from) != inventory.Tag(to) {
		return 0, inventory.ErrInvalid
	}
	base := s.base(inventory.Tag(from))
	n, err := moveScript.Exec(ctx, s.client, []string{base + "p:" + from},
		[]string{base, from, to, qty}).AsInt64()
	if err != nil {
		return 0, s.mapErr(op, err)
	}
	return n, nil
}

// SetOnHand implements inventory.Store.
func (s *Store) SetOnHand(ctx context.Context, pool string, onHand int64, seq uint64) (inventory.FeedResult, error) {
	if s.closed.Load() {
		return inventory.FeedResult{}, inventory.ErrClosed
	}
	if !inventory.ValidID(pool) || onHand < 0 || onHand > inventory.UnitsMax {
		return inventory.FeedResult{}, inventory.ErrInvalid
	}
	base := s.base(inventory.Tag(pool))
	vals, err := feedScript.Exec(ctx, s.client, []string{base + "p:" + pool},
		[]string{base, pool, strconv.FormatInt(onHand, 10), strconv.FormatUint(seq, 10)}).ToArray()
	if err != nil {
		return inventory.FeedResult{}, s.mapErr("set on hand", err)
	}
	if len(vals) != 6 {
		return inventory.FeedResult{}, fmt.Errorf("redisinv: cannot set on hand: reply of %d values: %w", len(vals), inventory.ErrUnavailable)
	}
	applied, err := vals[0].AsInt64()
	if err != nil {
		return inventory.FeedResult{}, s.mapErr("set on hand", err)
	}
	p, err := parsePool(pool, vals[1:])
	if err != nil {
		return inventory.FeedResult{}, err
	}
	return inventory.FeedResult{Applied: applied == 1, Pool: p}, nil
}

// Pool implements inventory.Store.
func (s *Store) Pool(ctx context.Context, pool string) (inventory.Pool, error) {
	if s.closed.Load() {
		return inventory.Pool{}, inventory.ErrClosed
	}
	if !inventory.ValidID(pool) {
		return inventory.Pool{}, inventory.ErrInvalid
	}
	key := s.base(inventory.Tag(pool)) + "p:" + pool
	vals, err := s.client.Do(ctx, s.client.B().Hmget().Key(key).Field("fr", "hd", "sd", "oh", "sq", "cl").Build()).ToArray()
	if err != nil {
		return inventory.Pool{}, s.mapErr("read pool", err)
	}
	if len(vals) != 6 || vals[0].IsNil() {
		return inventory.Pool{}, inventory.ErrPoolNotFound
	}
	p, err := parsePool(pool, vals[:5])
	p.Closed = !vals[5].IsNil()
	return p, err
}

// ClosePool implements inventory.Store: one script marks the pool closed
// (reserves of it answer sold out from then on) and deletes its per-user
// counts hash.
func (s *Store) ClosePool(ctx context.Context, pool string) error {
	if s.closed.Load() {
		return inventory.ErrClosed
	}
	if !inventory.ValidID(pool) {
		return inventory.ErrInvalid
	}
	base := s.base(inventory.Tag(pool))
	held, err := closeScript.Exec(ctx, s.client, []string{base + "p:" + pool}, []string{base, pool}).AsInt64()
	if err != nil {
		return s.mapErr("close pool", err)
	}
	if held != 0 {
		return fmt.Errorf("redisinv: cannot close pool %q: %d units held: %w", pool, held, inventory.ErrBadState)
	}
	return nil
}

// parsePool parses fr hd sd oh sq.
func parsePool(id string, vals []rueidis.RedisMessage) (inventory.Pool, error) {
	var n [5]int64
	var seq uint64
	for i := range vals {
		str, err := vals[i].ToString()
		if err == nil && i == 4 {
			seq, err = strconv.ParseUint(str, 10, 64)
		} else if err == nil {
			n[i], err = strconv.ParseInt(str, 10, 64)
		}
		if err != nil {
			return inventory.Pool{}, fmt.Errorf("redisinv: cannot parse pool %q: %w", id, errors.Join(inventory.ErrUnavailable, err))
		}
	}
	p := inventory.Pool{ID: id, Held: n[1], Sold: n[2], OnHand: n[3], Seq: seq}
	if free := n[0]; free >= 0 {
		p.Available = free
	} else {
		p.Short = -free
	}
	p.Supplied = p.Available + p.Held + p.Sold
	return p, nil
}

// Reservation implements inventory.Store.
func (s *Store) Reservation(ctx context.Context, id string) (inventory.Reservation, error) {
	if s.closed.Load() {
		return inventory.Reservation{}, inventory.ErrClosed
	}
	if !inventory.ValidReservationID(id) {
		return inventory.Reservation{}, inventory.ErrInvalid
	}
	key := s.base(inventory.Tag(id)) + "r:" + id
	v, err := s.client.Do(ctx, s.client.B().Get().Key(key).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return inventory.Reservation{}, inventory.ErrReservationNotFound
	}
	if err != nil {
		return inventory.Reservation{}, s.mapErr("read reservation", err)
	}
	return parseRecord("read reservation", id, v)
}

// parseRes parses a reservation record from a reply (a string, see
// record.go).
func (s *Store) parseRes(op, id string, msg *rueidis.RedisMessage) (inventory.Reservation, error) {
	v, err := msg.ToString()
	if err != nil {
		return inventory.Reservation{}, s.mapErr(op, err)
	}
	return parseRecord(op, id, v)
}

// Scan implements inventory.Store. Each tag keeps its reservations of a
// state in a sorted set by id; Scan merges the tags in id order. Every id
// of tag T lies in [T, T+";"), so tags are visited in byte order and the
// walk stops once the next tag cannot hold an id among the first limit+1.
func (s *Store) Scan(ctx context.Context, state inventory.State, cursor string, limit int) ([]inventory.Reservation, string, error) {
	if s.closed.Load() {
		return nil, "", inventory.ErrClosed
	}
	if state < inventory.StateHeld || state > inventory.StateReleased ||
		limit <= 0 || limit > inventory.ScanLimitMax || len(cursor) > inventory.IDLenMax {
		return nil, "", inventory.ErrInvalid
	}
	tags, err := s.tags(ctx)
	if err != nil {
		return nil, "", s.mapErr("scan", err)
	}
	lexMin := "-"
	if cursor != "" {
		lexMin = "(" + cursor
	}
	stateArg := strconv.Itoa(int(state))
	countArg := strconv.Itoa(limit + 1)
	var got []inventory.Reservation
	for _, t := range tags {
		if cursor != "" && t+";" <= cursor {
			continue // every id of t is below the cursor
		}
		if len(got) > limit && t > got[limit].ID {
			break // every id of t and of later tags is above the first limit+1
		}
		base := s.base(t)
		msg, err := scanScript.Exec(ctx, s.client, []string{base + "s" + stateArg},
			[]string{base, stateArg, lexMin, countArg}).ToMessage()
		if err != nil {
			return nil, "", s.mapErr("scan", err)
		}
		vals, err := msg.ToArray()
		if err != nil {
			return nil, "", s.mapErr("scan", err)
		}
		n := len(got)
		if got, err = s.appendPairs("scan", got, vals); err != nil {
			return nil, "", err
		}
		if n > 0 && len(got) > n {
			sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
		}
		if len(got) > limit+1 {
			got = got[:limit+1]
		}
	}
	if len(got) > limit {
		return got[:limit], got[limit-1].ID, nil
	}
	return got, "", nil
}
