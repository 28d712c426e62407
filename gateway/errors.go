package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/surge-retail/surge/engine"
)

// API.md's error codes.
const (
	CodeOK                  = 0
	CodeBadRequest          = 40000
	CodeUnauthorized        = 40100
	CodeRiskDenied          = 40300
	CodeForbidden           = 40301
	CodeNotRegistered       = 40302
	CodeNotFound            = 40400
	CodeSoldOut             = 40900
	CodeLimitExceeded       = 40901
	CodeNotActive           = 40902
	CodeBadState            = 40903
	CodeIdempotencyConflict = 40904
	CodeTooLarge            = 41300
	CodeThrottled           = 42900
	CodeInternal            = 50000
	CodeUnavailable         = 50300
)

// codeInfo is one row of API.md's code table.
type codeInfo struct {
	code   int
	status int
	name   string
	msg    string // default plain-words message
}

// codeTable lists every API.md code; codeIndex finds a row by code.
var codeTable = [...]codeInfo{
	{CodeOK, 200, "ok", "ok"},
	{CodeBadRequest, 400, "bad_request", "bad request"},
	{CodeUnauthorized, 401, "unauthorized", "missing, bad or expired credentials"},
	{CodeRiskDenied, 403, "risk_denied", "denied by risk control"},
	{CodeForbidden, 403, "forbidden", "forbidden"},
	{CodeNotRegistered, 403, "not_registered", "the sale admits registered (or drawn) users only"},
	{CodeNotFound, 404, "not_found", "not found"},
	{CodeSoldOut, 409, "sold_out", "sold out"},
	{CodeLimitExceeded, 409, "limit_exceeded", "per-user limit reached"},
	{CodeNotActive, 409, "not_active", "not active: not started or ended"},
	{CodeBadState, 409, "bad_state", "not allowed in the current state"},
	{CodeIdempotencyConflict, 409, "idempotency_conflict", "Idempotency-Key reused with a different request"},
	{CodeTooLarge, 413, "too_large", "request body too large"},
	{CodeThrottled, 429, "throttled", "too many requests, retry later"},
	{CodeInternal, 500, "internal", "internal error"},
	{CodeUnavailable, 503, "unavailable", "service unavailable, retry later"},
}

// codeIndex returns the index of code in codeTable (CodeInternal's for an
// unknown code).
func codeIndex(code int) int {
	for i := range codeTable {
		if codeTable[i].code == code {
			return i
		}
	}
	return codeIndex(CodeInternal)
}

// statusOf returns the HTTP status of an API code.
func statusOf(code int) int { return codeTable[codeIndex(code)].status }

// errorMap is THE table mapping engine sentinel errors onto API codes. The
// first row whose error matches (errors.Is) wins; anything else is 50000.
var errorMap = [...]struct {
	err  error
	code int
}{
	{engine.ErrInvalid, CodeBadRequest},
	{engine.ErrRiskDenied, CodeRiskDenied},
	{engine.ErrForbidden, CodeForbidden},
	{engine.ErrNotRegistered, CodeNotRegistered},
	{engine.ErrNotFound, CodeNotFound},
	{engine.ErrSoldOut, CodeSoldOut},
	{engine.ErrLimitExceeded, CodeLimitExceeded},
	{engine.ErrNotActive, CodeNotActive},
	{engine.ErrBadState, CodeBadState},
	{engine.ErrIdempotencyConflict, CodeIdempotencyConflict},
	{engine.ErrThrottled, CodeThrottled},
	{engine.ErrUnavailable, CodeUnavailable},
	// A request that ran out of time is the backend being slow.
	{context.DeadlineExceeded, CodeUnavailable},
	{context.Canceled, CodeUnavailable},
}

// codeOf maps an error onto its API code (CodeInternal when unknown).
func codeOf(err error) int {
	if err == nil {
		return CodeOK
	}
	for i := range errorMap {
		if errors.Is(err, errorMap[i].err) {
			return errorMap[i].code
		}
	}
	return CodeInternal
}

// messageOf is the plain-words msg of an error answer: the error's own text
// without package prefixes for 4xx, a generic text otherwise (internal
// details are logged, not shown).
func messageOf(code int, err error) string {
	if err != nil && code == CodeUnavailable && (errors.Is(err, engine.ErrDataLost) || errors.Is(err, engine.ErrCircuitOpen)) {
		// What the operator and the client need to know, in the engine's
		// own words (no backend detail is in them).
		return strings.TrimPrefix(err.Error(), "engine: ")
	}
	if err == nil || code >= 50000 {
		return codeTable[codeIndex(code)].msg
	}
	var re *engine.RiskError
	if errors.As(err, &re) && re.Reason != "" {
		return "denied by risk control: " + re.Reason
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "engine: ")
	msg = strings.TrimPrefix(msg, "inventory: ")
	if msg == "" {
		return codeTable[codeIndex(code)].msg
	}
	return msg
}

// apiError is an error the gateway itself decided (bad input, auth, shed).
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

// errorsAsCode is the code of an *apiError in err's chain (0 otherwise).
func errorsAsCode(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	return 0
}

// errf makes an apiError.
func errf(code int, msg string) *apiError { return &apiError{code: code, msg: msg} }
