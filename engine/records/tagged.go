package records

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// Tagged keeps point records next to other data of a hash tag (a store):
// on Redis Cluster a tagged record lives in the tag's slot, so the writes
// of one store's payments spread over the cluster with its stock, instead
// of all meeting in the records' own slot. Tagged records are not meant to
// be scanned: Redis never lists them; other Records (memory, Pebble: one
// node, no slot to pick) keep them as plain records under "t/<tag>/<key>"
// through TaggedOf.
type Tagged interface {
	// GetTagged reads a tagged record; ok is false when there is none.
	GetTagged(ctx context.Context, tag, key string) (val []byte, ok bool, err error)
	// PutIfAbsentTagged writes a tagged record unless one exists, and
	// reports whether it wrote.
	PutIfAbsentTagged(ctx context.Context, tag, key string, val []byte) (bool, error)
	// DeleteTagged removes a tagged record (none: no error).
	DeleteTagged(ctx context.Context, tag, key string) error
}

// TaggedOf returns rec's Tagged (Redis), or one that keeps tagged records
// of rec as plain ones under "t/<tag>/<key>".
func TaggedOf(rec Records) Tagged {
	if t, ok := rec.(Tagged); ok {
		return t
	}
	return plainTagged{rec}
}

// checkTag refuses a tag that would not name one slot: empty, or with a
// brace or '/'.
func checkTag(tag string) error {
	if tag == "" || len(tag) > KeyLenMax || strings.ContainsAny(tag, "{}/") {
		return fmt.Errorf("%w: bad tag %q", ErrInvalid, tag)
	}
	return nil
}

// plainTagged keeps tagged records as plain records (one node: there is
// no slot to pick).
type plainTagged struct{ rec Records }

func plainKey(tag, key string) string { return "t/" + tag + "/" + key }

func (p plainTagged) GetTagged(ctx context.Context, tag, key string) ([]byte, bool, error) {
	if err := checkTag(tag); err != nil {
		return nil, false, err
	}
	return p.rec.Get(ctx, plainKey(tag, key))
}

func (p plainTagged) PutIfAbsentTagged(ctx context.Context, tag, key string, val []byte) (bool, error) {
	if err := checkTag(tag); err != nil {
		return false, err
	}
	return p.rec.PutIfAbsent(ctx, plainKey(tag, key), val)
}

func (p plainTagged) DeleteTagged(ctx context.Context, tag, key string) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	return p.rec.Delete(ctx, plainKey(tag, key))
}

// redisTaggedKey is a tagged record's Redis key: in the slot of {tag}.
func redisTaggedKey(tag, key string) string { return "{" + tag + "}:rec:" + key }

func (r *redisRecords) GetTagged(ctx context.Context, tag, key string) ([]byte, bool, error) {
	if err := checkTag(tag); err != nil {
		return nil, false, err
	}
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if r.closed.Load() {
		return nil, false, ErrClosed
	}
	v, err := r.c.Do(ctx, r.c.B().Get().Key(redisTaggedKey(tag, key)).Build()).AsBytes()
	if rueidis.IsRedisNil(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, r.fail("read record "+strconv.Quote(key), err)
	}
	return v, true, nil
}

func (r *redisRecords) PutIfAbsentTagged(ctx context.Context, tag, key string, val []byte) (bool, error) {
	if err := checkTag(tag); err != nil {
		return false, err
	}
	if err := checkKey(key); err != nil {
		return false, err
	}
	if r.closed.Load() {
		return false, ErrClosed
	}
	err := r.c.Do(ctx, r.c.B().Set().Key(redisTaggedKey(tag, key)).Value(rueidis.BinaryString(val)).Nx().Build()).Error()
	if rueidis.IsRedisNil(err) {
		return false, nil // SET NX found one
	}
	if err != nil {
		return false, r.fail("write record "+strconv.Quote(key), err)
	}
	return true, nil
}

func (r *redisRecords) DeleteTagged(ctx context.Context, tag, key string) error {
	if err := checkTag(tag); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if r.closed.Load() {
		return ErrClosed
	}
	if err := r.c.Do(ctx, r.c.B().Del().Key(redisTaggedKey(tag, key)).Build()).Error(); err != nil {
		return r.fail("delete record "+strconv.Quote(key), err)
	}
	return nil
}

var _ Tagged = (*redisRecords)(nil)
