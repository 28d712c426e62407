package engine

import (
	"encoding/json"
	"errors"
)

// Answers kept by versions before once.go are the gateway's envelope,
// {"code": N, "msg": "...", "data": {...}}, under the HTTP status. They
// are replayed for the rest of their TTL (IdempotencyOptions.TTL, 24h by
// default), after which this reader can go.

// legacyAnswerCodes maps API.md's error codes onto the sentinels.
var legacyAnswerCodes = map[int]error{
	40000: ErrInvalid, 40300: ErrRiskDenied, 40301: ErrForbidden, 40400: ErrNotFound,
	40900: ErrSoldOut, 40901: ErrLimitExceeded, 40902: ErrNotActive, 40903: ErrBadState,
	40904: ErrIdempotencyConflict, 42900: ErrThrottled, 50300: ErrUnavailable,
}

func decodeLegacyAnswer[T any](status int, body []byte) (T, error) {
	var env struct {
		Code int             `json:"code"`
		Msg  string          `json:"msg"`
		Data json.RawMessage `json:"data"`
	}
	var res T
	if err := json.Unmarshal(body, &env); err != nil {
		return res, errors.New("engine: cannot decode a kept answer: " + err.Error())
	}
	if env.Code != 0 || status != answerStatusOK {
		return res, &replayedError{kind: legacyAnswerCodes[env.Code], msg: env.Msg}
	}
	if err := json.Unmarshal(env.Data, &res); err != nil {
		return res, errors.New("engine: cannot decode a kept answer: " + err.Error())
	}
	return res, nil
}
