package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/surge-retail/surge/inventory"
)

// Once names a creating call for idempotency (law 5): the caller's
// Idempotency-Key and a digest of the request (route and body). The zero
// value means no key: the call simply runs.
type Once struct {
	Key    string
	Digest [32]byte
}

// Answers are kept through Idempotency as (status, body). Only results are
// kept (status 200), for the key's TTL: a refusal changes nothing (sold
// out, not active, limit, throttled, risk denied, bad request, not found,
// bad state), so it is not stored and the same key may be sent again and
// decided afresh (API.md); a refusal or failure is handed, with status
// 503, to the concurrent duplicates of the call that met it, and dropped.
// The body starts with answerVersion, then the index of the answer's
// sentinel in answerErrors (0 for a result), then the result's JSON or the
// error's text. A body that starts with '{' was kept by an earlier version
// (once_legacy.go).
const (
	answerVersion    = 2
	answerStatusOK   = 200
	answerStatusDrop = 503
)

// answerErrors are the sentinels an answer may carry, by index (0 is a
// result, or an error of no known class).
var answerErrors = [...]error{
	1: ErrInvalid, 2: ErrRiskDenied, 3: ErrForbidden, 4: ErrNotFound,
	5: ErrSoldOut, 6: ErrLimitExceeded, 7: ErrNotActive, 8: ErrBadState,
	9: ErrIdempotencyConflict, 10: ErrThrottled, 11: ErrUnavailable,
	12: context.DeadlineExceeded, 13: context.Canceled,
}

// replayedError is an error answer read back: errors.Is matches its
// sentinel, and its text is the first answer's.
type replayedError struct {
	kind error
	msg  string
}

func (e *replayedError) Error() string        { return e.msg }
func (e *replayedError) Is(target error) bool { return e.kind != nil && target == e.kind }

// once runs call at most once per (user, key) with the same digest and
// returns its first answer to every repeat (law 5); without a key it just
// runs call. A repeat with another digest is ErrIdempotencyConflict.
func once[T any](ctx context.Context, e *Engine, userID string, o Once, call func() (T, error)) (T, error) {
	if o.Key == "" {
		return call()
	}
	var (
		res    T
		resErr error
		ran    bool
	)
	status, body, err := e.idem.Do(ctx, userID, o.Key, o.Digest, func() (int, []byte) {
		ran = true
		res, resErr = call()
		return encodeAnswer(res, resErr)
	})
	if err != nil {
		var zero T
		return zero, err
	}
	if ran {
		// This call's own answer, with its original error value.
		return res, resErr
	}
	return decodeAnswer[T](status, body)
}

func encodeAnswer[T any](res T, err error) (int, []byte) {
	if err == nil {
		b, jerr := json.Marshal(res)
		if jerr != nil {
			return answerStatusDrop, append([]byte{answerVersion, 0}, jerr.Error()...)
		}
		return answerStatusOK, append([]byte{answerVersion, 0}, b...)
	}
	idx := 0
	for i, s := range answerErrors {
		if s != nil && errors.Is(err, s) {
			idx = i
			break
		}
	}
	return answerStatusDrop, append([]byte{answerVersion, byte(idx)}, err.Error()...)
}

func decodeAnswer[T any](status int, body []byte) (T, error) {
	var res T
	if len(body) > 0 && body[0] == '{' {
		return decodeLegacyAnswer[T](status, body)
	}
	if len(body) < 2 || body[0] != answerVersion || int(body[1]) >= len(answerErrors) {
		return res, errors.New("engine: cannot decode a kept answer")
	}
	if idx := int(body[1]); idx != 0 || status != answerStatusOK {
		return res, &replayedError{kind: answerErrors[idx], msg: string(body[2:])}
	}
	if err := json.Unmarshal(body[2:], &res); err != nil {
		return res, errors.New("engine: cannot decode a kept answer: " + err.Error())
	}
	return res, nil
}

// A keyed reserve (a flash reservation or a checkout under an
// Idempotency-Key) keeps no separate answer: its reservation is its
// record. The reservation id is derived from the user and the key
// (onceReservationID), and the inventory's Reserve is idempotent by id, so
// the one script (Redis) or synced batch (Pebble) that takes the units
// also writes what a retry finds, in the store's slot: no claim, no second
// call, no key shared by every request (DESIGN.md, "Scale-out"). A retry
// gets the reservation that exists, whatever its state, and the answer is
// built from it as the first one was; the request's digest is kept in the
// reservation's record (resRecord.Digest), so the same key with another
// body is ErrIdempotencyConflict. A refusal writes nothing, so the same key
// is decided afresh. A key lives as long as its reservation: the
// idempotency TTL, or the reservation retention when that is shorter.
//
// The key is per store: the same key used for reserves in two stores makes
// two reservations (in two slots, which no single script can see at once).
// Clients make one key per attempt, so only a broken client would notice.

// onceIDMark starts the token of a keyed reservation id; it is outside
// idAlphabet, so that a derived id never equals a random one.
const onceIDMark = 'x'

// onceReservationID is the id of userID's reservation under key in
// storeID: "<store>:x<22 base32hex characters of SHA-256(user, key)>".
func onceReservationID(storeID, userID, key string) string {
	h := sha256.New()
	h.Write([]byte(userID))
	h.Write([]byte{0})
	h.Write([]byte(key))
	var sum [32]byte
	d := h.Sum(sum[:0])
	b := make([]byte, 0, len(storeID)+1+tokenLen)
	b = append(b, storeID...)
	b = append(b, ':', onceIDMark)
	// 22 characters of 5 bits: the first 110 bits of the hash.
	var acc uint64
	bits := 0
	for i := 0; len(b) < len(storeID)+1+tokenLen; {
		if bits < 5 {
			acc = acc<<8 | uint64(d[i])
			i++
			bits += 8
		}
		bits -= 5
		b = append(b, idAlphabet[(acc>>bits)&31])
	}
	return string(b)
}

// keyedAnswer is the answer to a keyed reserve whose reservation r exists
// (created by this call or an earlier one): the view of the first answer,
// or ErrIdempotencyConflict when r was made by another request.
func (e *Engine) keyedAnswer(r inventory.Reservation, o Once) (Reservation, error) {
	m, err := recordOf(r)
	if err != nil {
		return Reservation{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !m.Keyed || m.Digest != o.Digest {
		return Reservation{}, ErrIdempotencyConflict
	}
	v := e.viewRecord(r, &m)
	v.State = inventory.StateHeld.String() // as the first answer said
	return v, nil
}

// keyedRefusal is a keyed reserve's answer when its checks refused it:
// the refusal, unless the key already made a reservation, whose first
// answer is given again whatever the checks say now (law 5). Only a
// refusal costs the look (one read in the store's slot).
func (e *Engine) keyedRefusal(ctx context.Context, a Attempt, storeID string, refusal error) (Reservation, error) {
	if a.Once.Key == "" || errors.Is(refusal, ErrThrottled) || errors.Is(refusal, ErrUnavailable) {
		return Reservation{}, refusal
	}
	if !IdempotencyKeyValid(a.Once.Key) {
		return Reservation{}, fmt.Errorf("%w: Idempotency-Key must be 1 to %d printable ASCII characters", ErrInvalid, keyLenMax)
	}
	r, err := e.store.Reservation(ctx, onceReservationID(storeID, a.UserID, a.Once.Key))
	switch {
	case errors.Is(err, inventory.ErrReservationNotFound):
		return Reservation{}, refusal
	case err != nil:
		return Reservation{}, storeErr(err)
	case r.User != a.UserID:
		return Reservation{}, ErrIdempotencyConflict
	}
	return e.keyedAnswer(r, a.Once)
}

// reserveID is the id of a new reservation in m.StoreID: derived from the
// key under one (m is then marked keyed, with the request's digest),
// random without.
func (e *Engine) reserveID(a Attempt, m *resRecord) (string, error) {
	return e.reserveIDIn(a, m, m.StoreID)
}

// reserveIDIn is reserveID in the tag of a sale's bucket (buckets.go).
func (e *Engine) reserveIDIn(a Attempt, m *resRecord, tag string) (string, error) {
	if a.Once.Key == "" {
		return e.newReservationID(tag), nil
	}
	if !IdempotencyKeyValid(a.Once.Key) {
		return "", fmt.Errorf("%w: Idempotency-Key must be 1 to %d printable ASCII characters", ErrInvalid, keyLenMax)
	}
	m.Keyed, m.Digest = true, a.Once.Digest
	return onceReservationID(tag, a.UserID, a.Once.Key), nil
}

// reserveErr maps a reserve's error: under a key, a reservation of the
// same id with other lines is a request that differs from the first.
func (e *Engine) reserveErr(err error, keyed bool) error {
	if keyed && errors.Is(err, inventory.ErrIDConflict) {
		return fmt.Errorf("%w: %w", ErrIdempotencyConflict, err)
	}
	return storeErr(err)
}
