package engine

import (
	"context"
	"errors"
)

// OpenRedisRecords returns Records kept in the Redis server at addr.
func OpenRedisRecords(ctx context.Context, addr string) (Records, error) {
	return nil, errors.New("engine: not implemented")
}
