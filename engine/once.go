package engine

import (
	"context"
	"encoding/json"
	"errors"
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

// lookupOnce returns the kept answer of o without running anything or
// writing (Idempotency.Lookup): found when there is one, busy when the
// same key is being decided right now.
func lookupOnce[T any](ctx context.Context, e *Engine, userID string, o Once) (res T, found, busy bool, err error) {
	status, body, found, busy, err := e.idem.Lookup(ctx, userID, o.Key, o.Digest)
	if err != nil || !found {
		return res, false, busy, err
	}
	res, err = decodeAnswer[T](status, body)
	return res, true, false, err
}

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
