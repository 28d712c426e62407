package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/surge-retail/surge/engine"
)

func TestErrorMap(t *testing.T) {
	f := func(err error, code, status int) {
		t.Helper()
		if got := codeOf(err); got != code {
			t.Errorf("codeOf(%v) = %d; want %d", err, got, code)
		}
		if got := statusOf(codeOf(err)); got != status {
			t.Errorf("statusOf(codeOf(%v)) = %d; want %d", err, got, status)
		}
	}
	f(nil, CodeOK, 200)
	f(engine.ErrInvalid, CodeBadRequest, 400)
	f(engine.ErrRiskDenied, CodeRiskDenied, 403)
	f(&engine.RiskError{Reason: "rate_user"}, CodeRiskDenied, 403)
	f(engine.ErrForbidden, CodeForbidden, 403)
	f(engine.ErrNotFound, CodeNotFound, 404)
	f(engine.ErrSoldOut, CodeSoldOut, 409)
	f(engine.ErrLimitExceeded, CodeLimitExceeded, 409)
	f(engine.ErrNotActive, CodeNotActive, 409)
	f(engine.ErrNotRegistered, CodeNotRegistered, 403)
	f(engine.ErrBadState, CodeBadState, 409)
	f(engine.ErrIdempotencyConflict, CodeIdempotencyConflict, 409)
	f(engine.ErrThrottled, CodeThrottled, 429)
	f(engine.ErrUnavailable, CodeUnavailable, 503)
	f(context.DeadlineExceeded, CodeUnavailable, 503)
	f(fmt.Errorf("cannot reserve: %w", engine.ErrSoldOut), CodeSoldOut, 409)
	f(fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", engine.ErrNotFound)), CodeNotFound, 404)
	f(errors.New("boom"), CodeInternal, 500)

	if got := messageOf(CodeRiskDenied, &engine.RiskError{Reason: "blocklist"}); got != "denied by risk control: blocklist" {
		t.Errorf("messageOf(risk) = %q", got)
	}
	if got := messageOf(CodeSoldOut, fmt.Errorf("sale f1: %w", engine.ErrSoldOut)); got != "sale f1: engine: sold out" {
		t.Errorf("messageOf(wrapped) = %q", got)
	}
	if got := messageOf(CodeInternal, errors.New("secret detail")); got != "internal error" {
		t.Errorf("messageOf(internal) = %q; must not leak details", got)
	}
}

func TestCodeTable(t *testing.T) {
	want := map[int]int{0: 200, 40000: 400, 40100: 401, 40300: 403, 40301: 403, 40302: 403, 40400: 404, 40900: 409,
		40901: 409, 40902: 409, 40903: 409, 40904: 409, 41300: 413, 42900: 429, 50000: 500, 50300: 503}
	if len(want) != len(codeTable) {
		t.Fatalf("code table has %d codes; API.md has %d", len(codeTable), len(want))
	}
	for code, status := range want {
		if got := statusOf(code); got != status {
			t.Errorf("statusOf(%d) = %d; want %d", code, got, status)
		}
	}
	if got := statusOf(12345); got != 500 {
		t.Errorf("statusOf(unknown) = %d; want 500", got)
	}
}
