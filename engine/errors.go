package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/surge-retail/surge/inventory"
)

// storeErr maps an inventory error onto the engine's sentinels, keeping the
// original in the chain.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var target error
	switch {
	case errors.Is(err, inventory.ErrSoldOut):
		target = ErrSoldOut
	case errors.Is(err, inventory.ErrLimitExceeded):
		target = ErrLimitExceeded
	case errors.Is(err, inventory.ErrPoolNotFound), errors.Is(err, inventory.ErrReservationNotFound):
		target = ErrNotFound
	case errors.Is(err, inventory.ErrInvalid):
		target = ErrInvalid
	case errors.Is(err, inventory.ErrBadState), errors.Is(err, inventory.ErrIDConflict):
		target = ErrBadState
	case errors.Is(err, inventory.ErrClosed), errors.Is(err, inventory.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		target = ErrUnavailable
	default:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", target, err)
}
