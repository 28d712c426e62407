package engine

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestAnswerRoundTrip: a kept answer reads back as the same result; an
// error is never kept (refusals change nothing, API.md) but reads back,
// for the concurrent duplicates of its call, with its sentinel and text.
func TestAnswerRoundTrip(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 123e6, time.UTC)
	res := Reservation{ReservationID: "s1:r", Kind: kindFlash, SaleID: "f1", UserID: "u1", StoreID: "s1", SKUID: "k1",
		Quantity: 2, UnitPrice: 50, Amount: 100, Items: []Item{{SKUID: "k1", Title: "羊毛大衣", Quantity: 2, UnitPrice: 50}},
		State: "held", CreatedAt: at, ExpiresAt: at.Add(time.Minute), ExpiresAtMs: at.Add(time.Minute).UnixMilli()}
	status, body := encodeAnswer(res, nil)
	got, err := decodeAnswer[Reservation](status, body)
	if status != answerStatusOK || err != nil || !reflect.DeepEqual(got, res) {
		t.Fatalf("result: status %d, %+v, %v; want %+v", status, got, err, res)
	}
	team := Team{TeamID: "t1", DealID: "d1", Size: 2, Members: []TeamMember{{UserID: "u1", ReservationID: "s1:r", Leader: true}},
		State: "forming", ExpiresAt: at, ExpiresAtMs: at.UnixMilli()}
	status, body = encodeAnswer(team, nil)
	if gt, err := decodeAnswer[Team](status, body); err != nil || !reflect.DeepEqual(gt, team) {
		t.Fatalf("team: %+v, %v", gt, err)
	}

	f := func(err error, sentinel error) {
		t.Helper()
		status, body := encodeAnswer(Reservation{}, err)
		if status != answerStatusDrop {
			t.Errorf("%v: status %d; want %d (not kept)", err, status, answerStatusDrop)
		}
		_, got := decodeAnswer[Reservation](status, body)
		if got == nil || got.Error() != err.Error() || sentinel != nil && !errors.Is(got, sentinel) {
			t.Errorf("decode(encode(%v)) = %v; want the same text and sentinel %v", err, got, sentinel)
		}
	}
	f(fmt.Errorf("%w: sale %q", ErrSoldOut, "f1"), ErrSoldOut)
	f(fmt.Errorf("%w: sale is ended", ErrNotActive), ErrNotActive)
	f(fmt.Errorf("%w: %w", ErrLimitExceeded, errors.New("inventory: limit")), ErrLimitExceeded)
	f(&RiskError{Reason: "blocklist"}, ErrRiskDenied)
	f(ErrInvalid, ErrInvalid)
	f(ErrNotFound, ErrNotFound)
	f(ErrBadState, ErrBadState)
	f(ErrForbidden, ErrForbidden)
	f(fmt.Errorf("%w: rate_user", ErrThrottled), ErrThrottled)
	f(fmt.Errorf("%w: redis down", ErrUnavailable), ErrUnavailable)
	f(errors.New("a bug"), nil)

	if _, err := decodeAnswer[Reservation](200, []byte{9, 0}); err == nil {
		t.Error("unknown answer version decoded")
	}
}

// TestAnswerLegacy: answers kept by earlier versions (the gateway's
// envelope) replay as the same result or refusal.
func TestAnswerLegacy(t *testing.T) {
	got, err := decodeAnswer[Reservation](200, []byte(`{"code":0,"msg":"ok","data":{"reservation_id":"s1:r","quantity":1,"items":[{"sku_id":"k1","quantity":1,"unit_price":5}]}}`))
	if err != nil || got.ReservationID != "s1:r" || got.Quantity != 1 || len(got.Items) != 1 || got.Items[0].UnitPrice != 5 {
		t.Fatalf("legacy result = %+v, %v", got, err)
	}
	_, err = decodeAnswer[Reservation](409, []byte(`{"code":40900,"msg":"sold out"}`))
	if !errors.Is(err, ErrSoldOut) || err.Error() != "sold out" {
		t.Fatalf("legacy refusal = %v", err)
	}
	if _, err := decodeAnswer[Reservation](200, []byte(`{"code":`)); err == nil {
		t.Fatal("broken legacy answer decoded")
	}
}
